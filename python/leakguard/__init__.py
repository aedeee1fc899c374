"""leakguard: find memory leaks in Python programs, fast enough to leave on.

The tracemalloc-compatible core works as the stdlib module does::

    import leakguard

    leakguard.start(nframe=10)
    before = leakguard.take_snapshot()
    work()
    after = leakguard.take_snapshot()
    for diff in after.compare_to(before, "lineno")[:10]:
        print(diff)

Beyond tracemalloc: ``leakguard.hunt(work)`` runs ``work`` round after round
and reports what keeps growing, where it was allocated and what holds it;
``with leakguard.track() as t:`` measures one block.

``leakguard.tracemalloc`` is a drop-in replacement for the stdlib module; the
functions and classes here are the same objects as there, except
:func:`start`, which leaves the interpreter's free lists on (the drop-in's
switches them off while tracing, so that an object reused from one is
charged to the line that created it, as the stdlib's tracer does).
"""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING, Any

from . import _leakguard
from ._errors import (
    LeakError,
    LeakguardError,
    SnapshotError,
    TracingError,
    UsageError,
    UsageTypeError,
)
from .tracemalloc import (
    BaseFilter,
    DomainFilter,
    Filter,
    Frame,
    Snapshot,
    Statistic,
    StatisticDiff,
    Trace,
    Traceback,
    clear_traces,
    get_object_traceback,
    get_traceback_limit,
    get_traced_memory,
    get_tracemalloc_memory,
    is_tracing,
    reset_peak,
    stop,
    take_snapshot,
)
from .tracemalloc import _start as _start_tracing


def start(nframe: int = 1) -> None:
    """Start tracing memory allocations, keeping at most ``nframe`` frames per
    traceback; does nothing (after checking ``nframe``) when tracing already.

    As ``tracemalloc.start``, except that objects the interpreter reuses from
    its free lists (floats, tuples, lists, dicts) keep the traceback of their
    block's first allocation: ``leakguard.tracemalloc.start`` switches those
    free lists off for exact tracebacks, at some cost on code that churns
    small objects; this one leaves them on."""
    _start_tracing(nframe, exact=False)


if TYPE_CHECKING:
    from ._export import export
    from ._export.flamegraph import FlameGraph, flame_graph
    from ._export.jsonfmt import load_json
    from ._hunter.report import (
        CycleReport,
        Holder,
        LeakReport,
        LeakSite,
        OpenDescriptor,
        ResourceReport,
        ResourceWarningRecord,
    )
    from ._hunter.rounds import hunt
    from ._hunter.sites import IGNORED_CACHES
    from ._hunter.track import Tracker
    from ._hunter.track import track as track
    from ._profile import Profile, profile_of

__all__ = [
    # tracing
    "start",
    "stop",
    "is_tracing",
    "get_traceback_limit",
    "get_traced_memory",
    "reset_peak",
    "clear_traces",
    "get_tracemalloc_memory",
    "get_object_traceback",
    "take_snapshot",
    # data model
    "Snapshot",
    "Frame",
    "Traceback",
    "Trace",
    "Statistic",
    "StatisticDiff",
    "BaseFilter",
    "Filter",
    "DomainFilter",
    # leak hunting
    "hunt",
    "track",
    "Tracker",
    "LeakReport",
    "LeakSite",
    "Holder",
    "ResourceReport",
    "OpenDescriptor",
    "ResourceWarningRecord",
    "CycleReport",
    "IGNORED_CACHES",
    # views and exports
    "Profile",
    "profile_of",
    "flame_graph",
    "FlameGraph",
    "export",
    "load_json",
    # errors
    "LeakguardError",
    "TracingError",
    "SnapshotError",
    "UsageError",
    "UsageTypeError",
    "LeakError",
]


def _stop_tracing_at_exit() -> None:
    # Unhook the allocators while the interpreter is still whole, rather than
    # trace its teardown.
    if _leakguard.is_tracing():
        _leakguard.stop()


atexit.register(_stop_tracing_at_exit)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext leakguard`` in IPython or Jupyter: the ``%%leakguard`` cell
    magic and the ``%leakguard_snapshot`` line magic (see docs/notebooks.md)."""
    from ._notebook.magics import load_ipython_extension as load

    load(ipython)


# Public names whose modules are imported on first use, so that a program (or
# a pytest run with the plugin installed) that only traces does not pay for
# the leak hunter, the views or the exports at start-up: module -> names.
_LAZY = {
    "._hunter": (
        "hunt",
        "track",
        "Tracker",
        "LeakReport",
        "LeakSite",
        "Holder",
        "ResourceReport",
        "OpenDescriptor",
        "ResourceWarningRecord",
        "CycleReport",
        "IGNORED_CACHES",
    ),
    "._export": ("export",),
    "._export.flamegraph": ("flame_graph", "FlameGraph"),
    "._export.jsonfmt": ("load_json",),
    "._profile": ("Profile", "profile_of"),
}
_LAZY_MODULE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY_MODULE.get(name)
    if module is not None:
        from importlib import import_module

        value = getattr(import_module(module, __name__), name)
        globals()[name] = value
        return value
    # importlib.metadata is slow to import: only pay for it when asked.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("leakguard")
        except PackageNotFoundError:
            found = "0+unknown"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""A drop-in replacement for the stdlib :mod:`tracemalloc` module, on leakguard's engine.

``import leakguard.tracemalloc as tracemalloc`` and code written for the
stdlib keeps working: the same functions, classes and private helpers, with
the same arguments, defaults, results, exceptions and messages. Snapshots are
held in Rust, so :func:`take_snapshot` and :meth:`Snapshot.statistics` stay fast
on millions of blocks, and :meth:`Snapshot.dump` writes leakguard's safe binary
format instead of a pickle.

Known differences: ``start()`` also accepts ``nframe`` as a keyword; the
interpreter's ``-X tracemalloc`` option and ``PYTHONTRACEMALLOC`` start the
stdlib tracer, not this one; the C-API (``PyTraceMalloc_Track``) feeds the
stdlib tracer only.

Objects reused from the interpreter's free lists (floats, tuples, lists,
dicts): the interpreter tells only its own tracer when it hands one out
again, so while tracing started by :func:`start` runs, those free lists are
switched off (CPython 3.10+; 3.9 keeps them out of reach) and every such
object comes from the allocator: :func:`get_object_traceback` names the line
that created it, as the stdlib's does, not the line that first allocated its
memory. That costs time on code that churns small objects (up to 1.8x that
of tracing with the free lists on). ``leakguard.start()``, the engine at full
speed, leaves them on; ``leakguard.track`` switches them off while it runs,
and ``leakguard.hunt`` for the rounds it runs again when its first ones saw
growth.
"""

from __future__ import annotations

# Names the stdlib module has at module level (some of them tests reach
# through, e.g. ``tracemalloc.linecache.getline``); ``pickle`` is loaded lazily.
import fnmatch  # noqa: F401
import gc as _gc
import linecache  # noqa: F401
import operator
import os  # noqa: F401
import sys
from collections.abc import Iterable, Sequence  # noqa: F401
from functools import total_ordering  # noqa: F401
from typing import Any, List, Optional, Tuple

from . import _leakguard
from ._errors import TracingError, UsageError, UsageTypeError
from ._model import (
    BaseFilter,
    DomainFilter,
    Filter,
    Frame,
    Snapshot,
    Statistic,
    StatisticDiff,
    # What statistics() and compare_to() return: lists, with notebook views.
    StatisticDiffList,  # noqa: F401
    StatisticList,  # noqa: F401
    Trace,
    Traceback,
    # The stdlib module's private helpers, for code that reaches for them:
    _compare_grouped_stats,  # noqa: F401
    _format_size,  # noqa: F401
    _normalize_filename,  # noqa: F401
    _Traces,  # noqa: F401
)

__all__ = [
    "BaseFilter",
    "DomainFilter",
    "Filter",
    "Frame",
    "Snapshot",
    "Statistic",
    "StatisticDiff",
    "Trace",
    "Traceback",
    "clear_traces",
    "get_object_traceback",
    "get_traceback_limit",
    "get_traced_memory",
    "get_tracemalloc_memory",
    "is_tracing",
    "reset_peak",
    "start",
    "stop",
    "take_snapshot",
]

_C_INT_MIN = -(2**31)
_C_INT_MAX = 2**31 - 1
_MAX_NFRAME = 65535


def _check_nframe(nframe: Any) -> int:
    """``nframe`` as ``_tracemalloc.start`` converts and checks it (same errors)."""
    if sys.version_info < (3, 10) and not hasattr(type(nframe), "__index__"):
        # 3.9 converts with PyLong_AsLong: floats refused by name, __int__
        # honoured, anything else "an integer is required".
        if isinstance(nframe, float):
            raise UsageTypeError("integer argument expected, got float")
        if not hasattr(type(nframe), "__int__"):
            raise UsageTypeError(f"an integer is required (got type {type(nframe).__name__})")
        try:
            nframe = int(nframe)
        except TypeError as exc:
            raise UsageTypeError(str(exc)) from None
    try:
        count = operator.index(nframe)
    except TypeError as exc:
        raise UsageTypeError(str(exc)) from None
    if not _C_INT_MIN <= count <= _C_INT_MAX:
        raise OverflowError("Python int too large to convert to C int")
    if not 1 <= count <= _MAX_NFRAME:
        raise UsageError(f"the number of frames must be in range [1; {_MAX_NFRAME}]")
    return count


def start(nframe: int = 1) -> None:
    """Start tracing memory allocations, keeping at most ``nframe`` frames per traceback.

    When already tracing, does nothing (after checking ``nframe``), as the
    stdlib does: the limit stays what it was. Switches the interpreter's
    free lists off while tracing (see the module's documentation).
    """
    _start(nframe, exact=True)


def _start(nframe: int, exact: bool) -> None:
    """:func:`start`, with the free lists switched off (``exact``) or left on
    (``leakguard.start``)."""
    global _switched_off
    count = _check_nframe(nframe)
    if not _leakguard.is_tracing():
        _leakguard.start(count)
        if exact and not _switched_off:
            try:
                _switched_off = _free_lists_off()
            except TracingError:
                pass  # another interpreter holds the switch: tracing as it can


def stop() -> None:
    """Stop tracing memory allocations and forget every trace."""
    global _switched_off
    _leakguard.stop()
    if _switched_off:
        _switched_off = False
        _free_lists_on()


def _reapply_exact(phase: str, info: Any) -> None:
    """A ``gc.callbacks`` entry while the free lists are to stay off: a full
    collection empties them and makes some usable again."""
    if phase == "stop" and info.get("generation") == 2:
        _leakguard._exact_objects(True)


def _free_lists_off() -> bool:
    """Switches the interpreter's free lists off (see ``_exact_objects``)
    until :func:`_free_lists_on`, re-applied after each full collection.
    True when this call switched them (and must give them back); False when
    they were off already. Raises :class:`TracingError` when another
    interpreter holds the switch or a deallocator was replaced."""
    if _leakguard._exact_objects(True):
        return False
    _gc.callbacks.append(_reapply_exact)
    return True


def _free_lists_on() -> None:
    """Gives back the free lists a :func:`_free_lists_off` switched off."""
    try:
        _gc.callbacks.remove(_reapply_exact)
    except ValueError:  # removed by the program
        pass
    _leakguard._exact_objects(False)


#: Whether :func:`start` switched the free lists off (and :func:`stop` must
#: give them back).
_switched_off = False


def is_tracing() -> bool:
    """True if memory allocations are being traced."""
    return _leakguard.is_tracing()


def clear_traces() -> None:
    """Forget the traces of the blocks traced so far (tracing goes on)."""
    _leakguard.clear_traces()


def get_traceback_limit() -> int:
    """The most frames a traceback keeps (the ``nframe`` given to :func:`start`)."""
    return _leakguard.get_traceback_limit()


def get_traced_memory() -> Tuple[int, int]:
    """``(current, peak)`` size in bytes of the traced blocks; ``(0, 0)`` when not tracing."""
    return _leakguard.get_traced_memory()


def reset_peak() -> None:
    """Set the peak of :func:`get_traced_memory` to the current size."""
    _leakguard.reset_peak()


def get_tracemalloc_memory() -> int:
    """Bytes the tracer itself uses to store the traces."""
    return _leakguard.get_tracemalloc_memory()


def _get_traces() -> List[Tuple[int, int, Tuple[Tuple[str, int], ...], int]]:
    """Every live trace as a raw ``(domain, size, traceback, total_nframe)`` tuple.

    Tracebacks are most recent frame first; equal tracebacks are one tuple
    object. An empty list when not tracing.
    """
    return _leakguard.get_traces()


def _get_object_traceback(obj: object, /) -> Optional[Tuple[Tuple[str, int], ...]]:
    """The raw traceback (most recent first) where ``obj`` was allocated, or None."""
    return _leakguard.get_object_traceback(obj)


_native_get_traces = _get_traces


def get_object_traceback(obj: object) -> Optional[Traceback]:
    """The :class:`Traceback` where ``obj`` was allocated.

    None when not tracing or when the allocation of ``obj`` was not traced.
    """
    frames = _get_object_traceback(obj)
    if frames is None:
        return None
    return Traceback(frames)


def take_snapshot() -> Snapshot:
    """A :class:`Snapshot` of the traces of the memory blocks alive now.

    Raises :class:`~leakguard.TracingError` (a :class:`RuntimeError`) when not tracing.
    """
    # is_tracing, _get_traces and get_traceback_limit are looked up as module
    # globals on every call, so that they can be patched (the stdlib's tests do).
    if not is_tracing():
        raise TracingError(
            "the tracemalloc module must be tracing memory allocations to take a snapshot"
        )
    if _get_traces is _native_get_traces:
        try:
            raw = _leakguard.take_snapshot()
        except TracingError:
            pass  # stopped since (or is_tracing is patched): empty, as the stdlib's
        else:
            return Snapshot(raw, get_traceback_limit())
    traces = _get_traces()
    return Snapshot(traces, get_traceback_limit())


def __getattr__(name: str) -> Any:
    # The stdlib module imports pickle at module level; few need it here.
    if name == "pickle":
        import pickle

        globals()["pickle"] = pickle
        return pickle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted({*globals(), "pickle"})

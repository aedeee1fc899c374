"""Living alongside stdlib ``tracemalloc``.

Both tracers hook the allocators with ``PyMem_SetAllocator`` and forward to
what they replaced. When stdlib tracemalloc was started first and leakguard
hooked on top of it, stdlib's ``stop()`` restores the allocators *it* saved
and so cuts leakguard out of the chain. To keep "stopping either leaves the
other working", leakguard wraps ``_tracemalloc.stop`` (and ``tracemalloc.stop``)
once: the wrapper steps leakguard's hooks aside, lets stdlib restore its
allocators, then puts leakguard's hooks back on top.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from . import _leakguard

_WRAPPED_ATTR = "__leakguard_wrapped__"


def _wrap(stop: Callable[[], Any]) -> Callable[[], Any]:
    def stop_tracemalloc() -> Any:
        _leakguard._before_foreign_stop()
        try:
            return stop()
        finally:
            _leakguard._after_foreign_stop()

    stop_tracemalloc.__name__ = getattr(stop, "__name__", "stop")
    stop_tracemalloc.__qualname__ = getattr(stop, "__qualname__", "stop")
    stop_tracemalloc.__doc__ = getattr(stop, "__doc__", None)
    setattr(stop_tracemalloc, _WRAPPED_ATTR, stop)
    return stop_tracemalloc


def guard_stdlib_stop() -> None:
    """Wrap stdlib tracemalloc's ``stop`` (idempotent)."""
    import _tracemalloc

    original: Callable[[], Any] = _tracemalloc.stop
    if getattr(original, _WRAPPED_ATTR, None) is None:
        wrapped = _wrap(original)
        setattr(_tracemalloc, "stop", wrapped)  # noqa: B010 - a module's attribute, on purpose
    else:
        wrapped = original
    stdlib = sys.modules.get("tracemalloc")
    if stdlib is not None and getattr(getattr(stdlib, "stop", None), _WRAPPED_ATTR, None) is None:
        setattr(stdlib, "stop", wrapped)  # noqa: B010

"""``leakguard.track``: scoped tracing of one block of code (or of each call
of a function): its peak, what it left alive, the diff by line."""

from __future__ import annotations

import functools
import gc
import time
from types import TracebackType
from typing import Any, Callable, List, Optional, Type, TypeVar

from .. import _leakguard as native
from .._errors import UsageError
from .._model import Snapshot, StatisticDiff, _format_size
from ..tracemalloc import _check_nframe, take_snapshot
from .session import TracingSession, unrecorded

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_NFRAME = 16


class Tracker:
    """What a block of code did to memory. Use ``with leakguard.track() as t:``
    or decorate a function with ``@leakguard.track()`` (each call is tracked
    by a tracker of its own; ``func.tracker`` is the latest call's).

    After the block:

    * ``peak``: the most bytes the block had allocated at once (traced bytes
      at their highest during the block, minus the level at its start);
    * ``leaked`` / ``leaked_blocks``: bytes and blocks allocated during the
      block and still alive after it (after a full collection when
      ``collect`` is true);
    * ``net``: traced bytes after minus before (what it freed counts too);
    * ``diff(key_type)``: the per-line (or file, traceback) diff, as
      ``Snapshot.compare_to``; ``before`` / ``after``: the snapshots.

    Tracing is left as it was: if the program traces already, its traces are
    kept and the frame limit is raised to ``nframe`` only for the block; the
    program's own peak (``get_traced_memory()[1]``) still covers the block.
    """

    def __init__(self, nframe: int = DEFAULT_NFRAME, *, collect: bool = True) -> None:
        self.nframe = _check_nframe(nframe)
        self.collect = bool(collect)
        self.before: Optional[Snapshot] = None
        self.after: Optional[Snapshot] = None
        self.peak = 0
        self.net = 0
        self.duration = 0.0
        self._active: Optional[TracingSession] = None
        self._start_bytes = 0
        self._outer_peak = 0
        self._started = 0.0

    def __enter__(self) -> Tracker:
        if self._active is not None:
            raise UsageError("this tracker is already tracking a block: use another to nest")
        session = TracingSession(self.nframe)
        session.__enter__()
        self._active = session
        if self.collect:
            gc.collect()
        with unrecorded():
            self.before = take_snapshot()
            self.after = None
            self._start_bytes, self._outer_peak = native.get_traced_memory()
        native.reset_peak()
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        session, self._active = self._active, None
        assert session is not None
        try:
            self.duration = time.perf_counter() - self._started
            _, block_peak = native.get_traced_memory()
            if self.collect:
                gc.collect()
            with unrecorded():
                self.after = take_snapshot()
                current = native.get_traced_memory()[0]
            self.peak = max(block_peak - self._start_bytes, 0)
            self.net = current - self._start_bytes
            native._set_peak(max(self._outer_peak, block_peak))
        finally:
            session.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            # A tracker per call, so that recursive and concurrent calls nest.
            tracker = Tracker(self.nframe, collect=self.collect)
            tracked.tracker = tracker  # type: ignore[attr-defined]
            with tracker:
                return func(*args, **kwargs)

        tracked.tracker = self  # type: ignore[attr-defined]
        return tracked  # type: ignore[return-value]

    def diff(self, key_type: str = "lineno", cumulative: bool = False) -> List[StatisticDiff]:
        """``after.compare_to(before, key_type, cumulative)``."""
        if self.before is None or self.after is None:
            raise UsageError("nothing tracked yet: use the tracker as a context manager first")
        return self.after.compare_to(self.before, key_type, cumulative)

    @property
    def leaked(self) -> int:
        """Bytes allocated during the block and alive after it."""
        if self.before is None or self.after is None:
            return 0
        return sum(d.size_diff for d in self.diff("traceback") if d.size_diff > 0)

    @property
    def leaked_blocks(self) -> int:
        if self.before is None or self.after is None:
            return 0
        return sum(d.count_diff for d in self.diff("traceback") if d.count_diff > 0)

    def __repr__(self) -> str:
        if self.after is None:
            return f"<Tracker nframe={self.nframe} (nothing tracked yet)>"
        return (
            f"<Tracker peak={_format_size(self.peak, False)} "
            f"leaked={_format_size(self.leaked, False)} net={_format_size(self.net, True)} "
            f"duration={self.duration:.3f}s>"
        )

    def __str__(self) -> str:
        if self.after is None:
            return repr(self)
        lines = [
            f"peak {_format_size(self.peak, False)}, left alive "
            f"{_format_size(self.leaked, False)} in {self.leaked_blocks:,} blocks, "
            f"net {_format_size(self.net, True)}, {self.duration:.3f} s"
        ]
        for d in self.diff("lineno")[:10]:
            if d.size_diff:
                lines.append(f"  {d}")
        return "\n".join(lines)


def track(nframe: int = DEFAULT_NFRAME, *, collect: bool = True) -> Tracker:
    """A :class:`Tracker`: ``with leakguard.track(nframe=10) as t: work()``,
    then ``t.peak``, ``t.leaked``, ``t.diff("lineno")``; or ``@leakguard.track()``."""
    return Tracker(nframe, collect=collect)

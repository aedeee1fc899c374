"""``leakguard.track``: scoped tracing of one block of code (or of each call
of a function): its peak, what it left alive, the diff by line."""

from __future__ import annotations

import functools
import gc
import os
import time
from types import TracebackType
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Type, TypeVar

from .. import _leakguard as native
from .._errors import UsageError
from .._model import (
    BaseFilter,
    Filter,
    Snapshot,
    Statistic,
    StatisticDiff,
    StatisticDiffList,
    Traceback,
    _check_key_type,
    _format_size,
)
from ..tracemalloc import _check_nframe, take_snapshot
from .session import TracingSession, unrecorded

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_NFRAME = 16

#: Tracebacks with the most bytes at the peak that a tracker reads back from
#: the engine's peak watch (the rest never become Python objects).
PEAK_TRACEBACKS = 300

#: ``(traceback, bytes at the peak, blocks at the peak, bytes now, blocks
#: now)``, counted from the tracker's start: the engine's peak watch.
WatchedTrace = Tuple[Tuple[Tuple[str, int], ...], int, int, int, int]

# The engine has one peak watch: the outermost tracker running holds it.
_watch_taken = False


def left_alive(diffs: List[StatisticDiff]) -> Tuple[int, int]:
    """Bytes and blocks allocated and still alive, from a per-traceback diff."""
    grew = [d for d in diffs if d.size_diff > 0]
    return sum(d.size_diff for d in grew), sum(d.count_diff for d in grew)


class _Compared(NamedTuple):
    """A tracker's snapshots without leakguard's own blocks, and the bytes and
    blocks the block left alive; ``of``: the snapshots they were made from."""

    of: Tuple[Snapshot, Snapshot]
    before: Snapshot
    after: Snapshot
    left: Tuple[int, int]


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
      ``Snapshot.compare_to``; ``before`` / ``after``: the snapshots;
    * ``at_peak(key_type)``: what the block held, per line, at its peak.

    ``snapshots=False`` skips the two snapshots (no ``diff``, ``leaked``:
    peak, ``net`` and ``at_peak`` only); ``exact=False`` leaves CPython's free
    lists on (cheaper, but an object reused from them keeps the line of its
    first allocation); ``thread_only=True`` records only the calling thread's
    allocations during the block.

    Tracing is left as it was: if the program traces already, its traces are
    kept and the frame limit is raised to ``nframe`` only for the block; the
    program's own peak (``get_traced_memory()[1]``) still covers the block.
    """

    def __init__(
        self,
        nframe: int = DEFAULT_NFRAME,
        *,
        collect: bool = True,
        snapshots: bool = True,
        exact: bool = True,
        thread_only: bool = False,
    ) -> None:
        self.nframe = _check_nframe(nframe)
        self.collect = bool(collect)
        self.snapshots = bool(snapshots)
        self.exact = bool(exact)
        self.thread_only = bool(thread_only)
        self.before: Optional[Snapshot] = None
        self.after: Optional[Snapshot] = None
        self.peak = 0
        self.net = 0
        self.duration = 0.0
        self._traces: List[WatchedTrace] = []
        self._done: Optional[_Compared] = None
        # How many tracebacks at_peak() reads back (the pytest plugin's
        # summary, which shows a test's top 3 lines, needs fewer).
        self._peak_tracebacks = PEAK_TRACEBACKS
        # None, or the peak below which nothing is read back (at_peak() is
        # then empty): the plugin's summary shows the lines of its biggest
        # tests only, and the read-back is most of a short test's cost.
        self._peak_floor: Optional[int] = None
        # Blocks left out of diff(), leaked and leaked_blocks besides
        # leakguard's own: what the machinery running the block allocated
        # meanwhile (a notebook kernel's other threads).
        self._left_out: List[BaseFilter] = []
        self._tracked = False
        self._active: Optional[TracingSession] = None
        self._watching = False
        self._start_bytes = 0
        self._outer_peak = 0
        self._started = 0.0

    def __enter__(self) -> Tracker:
        global _watch_taken
        if self._active is not None:
            raise UsageError("this tracker is already tracking a block: use another to nest")
        session = TracingSession(self.nframe, exact=self.exact)
        session.__enter__()
        self._active = session
        if self.collect:
            gc.collect()
        with unrecorded():
            self.before = take_snapshot() if self.snapshots else None
            self.after = None
            self._start_bytes, self._outer_peak = native.get_traced_memory()
        self._watching = not _watch_taken
        if self._watching:
            _watch_taken = True
            native._peak_watch(True)  # also resets the peak
        else:
            native.reset_peak()
        if self.thread_only:
            native._only_this_thread(True)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        global _watch_taken
        session, self._active = self._active, None
        assert session is not None
        try:
            if self.thread_only:
                native._only_this_thread(False)
            self.duration = time.perf_counter() - self._started
            _, block_peak = native.get_traced_memory()
            if self.collect:
                gc.collect()
            with unrecorded():
                if self.snapshots:
                    self.after = take_snapshot()
                current = native.get_traced_memory()[0]
                self.peak = max(block_peak - self._start_bytes, 0)
                floor = self._peak_floor
                if self._watching and (floor is None or self.peak >= floor):
                    self._traces = native._peak_sites(self._peak_tracebacks, self.collect)
                else:
                    self._traces = []
            self.net = current - self._start_bytes
            self._tracked = True
            native._set_peak(max(self._outer_peak, block_peak))
        finally:
            if self._watching:
                native._peak_watch(False)
                _watch_taken = False
            session.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            # A tracker per call, so that recursive and concurrent calls nest.
            tracker = Tracker(
                self.nframe,
                collect=self.collect,
                snapshots=self.snapshots,
                exact=self.exact,
                thread_only=self.thread_only,
            )
            tracked.tracker = tracker  # type: ignore[attr-defined]
            with tracker:
                return func(*args, **kwargs)

        tracked.tracker = self  # type: ignore[attr-defined]
        return tracked  # type: ignore[return-value]

    def diff(self, key_type: str = "lineno", cumulative: bool = False) -> StatisticDiffList:
        """``after.compare_to(before, key_type, cumulative)``, leaving out
        blocks allocated by leakguard itself (the tracker's own bookkeeping)."""
        compared = self._compared()
        return compared.after.compare_to(compared.before, key_type, cumulative)

    def _compared(self) -> _Compared:
        # Filtered, and what was left alive counted, once per tracked block:
        # leaked, leaked_blocks, str() and the notebook table all read them.
        if self.before is None or self.after is None:
            raise UsageError("nothing tracked yet: use the tracker as a context manager first")
        done = self._done
        if done is None or done.of[0] is not self.before or done.of[1] is not self.after:
            own = [
                Filter(False, os.path.join(os.path.dirname(os.path.dirname(__file__)), "*")),
                *self._left_out,
            ]
            before, after = self.before.filter_traces(own), self.after.filter_traces(own)
            left = left_alive(after.compare_to(before, "traceback"))
            done = self._done = _Compared((self.before, self.after), before, after, left)
        return done

    def at_peak(self, key_type: str = "lineno") -> List[Statistic]:
        """What the block held when its traced memory was at its highest:
        bytes and blocks it had allocated (minus freed) per line, file or
        traceback, biggest first — even if all of it was freed by the end.
        Read from the engine's peak watch (the 300 tracebacks with the most
        bytes at the peak); empty for a tracker nested in another, which
        holds the watch."""
        key_type = _check_key_type(key_type, False)
        groups: Dict[Tuple[Tuple[str, int], ...], List[int]] = {}
        for raw, size, count, _, _ in self._traces:
            if size <= 0:
                continue
            # what diff() leaves out (a notebook kernel's own threads) too
            if raw and not all(f._match((0, size, raw, len(raw))) for f in self._left_out):
                continue
            if key_type == "traceback" or not raw:
                key = raw
            elif key_type == "lineno":
                key = raw[:1]
            else:
                key = ((raw[0][0], 0),)
            acc = groups.setdefault(key, [0, 0])
            acc[0] += size
            acc[1] += count
        stats = [Statistic(Traceback(key), size, count) for key, (size, count) in groups.items()]
        stats.sort(key=Statistic._sort_key, reverse=True)
        return stats

    @property
    def leaked(self) -> int:
        """Bytes allocated during the block and alive after it."""
        if self.before is None or self.after is None:
            return 0
        return self._compared().left[0]

    @property
    def leaked_blocks(self) -> int:
        if self.before is None or self.after is None:
            return 0
        return self._compared().left[1]

    def __repr__(self) -> str:
        if not self._tracked:
            return f"<Tracker nframe={self.nframe} (nothing tracked yet)>"
        return (
            f"<Tracker peak={_format_size(self.peak, False)} "
            f"leaked={_format_size(self.leaked, False)} net={_format_size(self.net, True)} "
            f"duration={self.duration:.3f}s>"
        )

    def _repr_html_(self) -> str:
        from .._notebook.html import tracker_html

        return tracker_html(self)

    def __str__(self) -> str:
        if not self._tracked or self.after is None:
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


#: ``with leakguard.track(nframe=10) as t: work()``, then ``t.peak``,
#: ``t.leaked``, ``t.diff("lineno")``, ``t.at_peak()``; or ``@leakguard.track()``.
#: The tracker class itself, under the name the API gives it.
track = Tracker

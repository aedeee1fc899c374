"""The ``leakguard`` fixture: a tracker for one test."""

from __future__ import annotations

import gc
from typing import Any, Callable, List, Optional

from .._hunter.report import LeakReport
from .._hunter.rounds import hunt
from .._hunter.session import TracingSession, unrecorded
from .._hunter.sites import RUNNER_PACKAGES, LeaveOut
from .._hunter.track import Tracker, left_alive
from .._model import Snapshot, StatisticDiff
from ..tracemalloc import take_snapshot


class LeakguardFixture:
    """What the ``leakguard`` fixture gives a test.

    Tracing is on (``nframe`` frames, free lists off so every object is
    charged to the line that made it) from the fixture's set-up to its
    teardown; the program's own tracing state is restored after.

    * ``baseline``: the snapshot taken at set-up (after a full collection),
      or at the last :meth:`reset`;
    * :meth:`snapshot`: the live traces now;
    * :meth:`diff`: what changed since the baseline, per line (or file,
      traceback), after a full collection, leaving out what leakguard and
      pytest allocated for themselves (and the interpreter caches of
      ``leakguard.IGNORED_CACHES``);
    * :attr:`leaked`: bytes allocated since the baseline and alive now, as
      :meth:`diff` counts them;
    * :meth:`assert_no_leaks`: hunts ``func`` and fails the test with the
      leak report when it leaks; :meth:`hunt` returns the report;
    * :meth:`track`: a :class:`leakguard.Tracker` for a block of the test.
    """

    def __init__(self, nframe: int) -> None:
        self.nframe = nframe
        self.baseline: Optional[Snapshot] = None
        self._session: Optional[TracingSession] = None
        self._leave_out = LeaveOut(RUNNER_PACKAGES)
        # the baseline without what diff() leaves out, made once
        self._base: Optional[Snapshot] = None

    def _start(self) -> None:
        self._session = TracingSession(self.nframe)
        self._session.__enter__()
        self.reset()

    def _stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.__exit__(None, None, None)

    def snapshot(self) -> Snapshot:
        """The live traces now (the snapshot itself is not traced)."""
        with unrecorded():
            return take_snapshot()

    def reset(self) -> None:
        """Makes now the baseline (after a full collection)."""
        gc.collect()
        self.baseline = self.snapshot()
        self._base = None

    def diff(self, key_type: str = "lineno", cumulative: bool = False) -> List[StatisticDiff]:
        """``snapshot().compare_to(baseline, key_type, cumulative)`` after a
        full collection: what the test allocated (or freed) since the
        baseline, without leakguard's, pytest's and the interpreter caches'
        own blocks. The comparison is not traced: neither its work nor the
        list returned counts as the test's memory."""
        assert self.baseline is not None
        gc.collect()
        with unrecorded():
            if self._base is None:
                self._base = self.baseline.filter_traces([self._leave_out])
            now = take_snapshot().filter_traces([self._leave_out])
            return now.compare_to(self._base, key_type, cumulative)

    @property
    def leaked(self) -> int:
        """Bytes allocated since the baseline and alive now (after a full collection)."""
        return left_alive(self.diff("traceback"))[0]

    def hunt(
        self,
        func: Callable[..., Any],
        /,
        *args: Any,
        rounds: int = 5,
        warmup: int = 2,
        **kwargs: Any,
    ) -> LeakReport:
        """:func:`leakguard.hunt` with this fixture's frame limit."""
        return hunt(func, *args, rounds=rounds, warmup=warmup, nframe=self.nframe, **kwargs)

    def assert_no_leaks(
        self,
        func: Callable[..., Any],
        /,
        *args: Any,
        rounds: int = 5,
        warmup: int = 2,
        **kwargs: Any,
    ) -> LeakReport:
        """Hunts ``func(*args, **kwargs)``; raises :class:`leakguard.LeakError`
        (an ``AssertionError``: the test fails with the report) if it leaks."""
        __tracebackhide__ = True
        report = self.hunt(func, *args, rounds=rounds, warmup=warmup, **kwargs)
        report.raise_if_leaking()
        return report

    def track(self, *, collect: bool = True) -> Tracker:
        """A tracker for a block: ``with leakguard.track() as t: ...``."""
        return Tracker(self.nframe, collect=collect)

    def __repr__(self) -> str:
        return f"<leakguard fixture nframe={self.nframe}>"

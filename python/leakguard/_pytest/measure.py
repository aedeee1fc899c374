"""Running one test under its plan, and what was measured.

The first run of the test is *probed*: its peak (and which lines held the
memory at that moment) and, when a leak limit asks for it, what it left
alive after a full collection, per line. When the plan hunts, the hunt
follows: that first run counts as one of its warm-up runs; the rest run
through :func:`leakguard.hunt`. Between runs the test gets back the per-test
state a fresh run would find (:class:`_BetweenRuns`), so that a test that
prints, logs or patches does not grow pytest's buffers round after round.

A run that fails for its own reasons stops everything: its exception
propagates unchanged and the test gets no memory verdict.
"""

from __future__ import annotations

import ast
import functools
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest

from .._hunter.report import LeakReport
from .._hunter.rounds import run_hunt
from .._hunter.session import flush_free_lists, unrecorded
from .._hunter.sites import RUNNER_PACKAGES, RawTraceback, SiteResolver
from .._hunter.track import Tracker
from .._model import Traceback
from .._source import source_line, where
from .plan import Limit, Plan

#: Lines listed per failure and per test in the summary.
SITES_SHOWN = 10
#: Tracebacks read back at a test's peak when only the summary needs them.
SUMMARY_TRACEBACKS = 48


@dataclass(frozen=True)
class SiteUse:
    """Bytes and blocks charged to one line (``where`` is ``file:line``)."""

    where: str
    line: str
    size: int
    count: int
    #: the biggest traceback at this line, most recent frame first
    traceback: RawTraceback = ()


class SiteList(NamedTuple):
    """The biggest lines (``shown``), and how many lines and bytes in all."""

    shown: List[SiteUse]
    lines: int
    total: int


@dataclass
class Measured:
    """What the plugin found for one test."""

    nodeid: str
    #: whether a run was probed (peak and lines at the peak are known)
    probed: bool = False
    peak: int = 0
    peak_sites: SiteList = SiteList([], 0, 0)
    leaked: Optional[int] = None
    leaked_sites: SiteList = SiteList([], 0, 0)
    report: Optional[LeakReport] = None
    failures: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        """Plain data for the terminal summary (it crosses xdist's wire)."""
        return {
            "peak": self.peak if self.probed else None,
            "leaked": self.leaked,
            "sites": [(s.where, s.line, s.size, s.count) for s in self.peak_sites.shown[:3]],
            "hunted": self.report is not None,
            "leaking": bool(self.report is not None and self.report.leaking),
        }


class MemoryFailure(AssertionError):
    """A test broke one of its memory rules; ``measured`` says what was found."""

    def __init__(self, measured: Measured) -> None:
        super().__init__("; ".join(measured.failures))
        self.measured = measured


class AllocationStack:
    """What a ``limit_leaks(filter_fn=…)`` filter is given for each traceback.

    ``traceback`` is the :class:`leakguard.Traceback`; ``frames`` the same as
    ``(function, filename, lineno)`` tuples, the allocating frame first, the
    form pytest-memray's filters read (``stack.frames[0][1]``…).
    """

    __slots__ = ("traceback", "frames")

    def __init__(self, raw: RawTraceback) -> None:
        self.traceback = Traceback(raw)
        self.frames = tuple((_function_at(f, n), f, n) for f, n in raw)

    def __repr__(self) -> str:
        return f"<AllocationStack {self.frames!r}>"


@functools.lru_cache(maxsize=256)
def _functions(filename: str) -> Tuple[Tuple[int, int, str], ...]:
    """(first line, last line, name) of each function in a source file."""
    try:
        with open(filename, "rb") as f:
            tree = ast.parse(f.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return ()
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            name = getattr(node, "name", "<lambda>")
            spans.append((node.lineno, node.end_lineno or node.lineno, name))
    return tuple(spans)


def _function_at(filename: str, lineno: int) -> str:
    """The innermost function of ``filename`` holding line ``lineno``."""
    best: Optional[Tuple[int, int, str]] = None
    for span in _functions(filename):
        if span[0] <= lineno <= span[1] and (best is None or span[0] >= best[0]):
            best = span
    return best[2] if best else "<module>"


# ---------------------------------------------------------------------------
# Attribution


class _Attribution:
    """Charges tracebacks to lines, leaving out interpreter caches, leakguard
    and the test runner's own frames (pytest, pluggy)."""

    def __init__(self) -> None:
        self.resolver = SiteResolver(RUNNER_PACKAGES)
        self._where: Dict[Tuple[str, int], Tuple[str, str]] = {}

    def where(self, site: Tuple[str, int]) -> Tuple[str, str]:
        """``file:line`` and the source line, cached: a probe per test asks often."""
        found = self._where.get(site)
        if found is None:
            found = self._where[site] = (where(*site), source_line(*site))
        return found

    def by_site(self, entries: List[Tuple[RawTraceback, int, int]], keep: int) -> SiteList:
        """``(traceback, bytes, blocks)`` entries summed per line: the ``keep``
        biggest lines, and how many lines and bytes in all."""
        sums: Dict[Tuple[str, int], List[Any]] = {}
        for raw, size, count in entries:
            if size <= 0:
                continue
            site = self.resolver.site(raw)
            if site is None:
                continue
            acc = sums.get(site)
            if acc is None:
                sums[site] = [size, count, raw, size]
            else:
                acc[0] += size
                acc[1] += count
                if size > acc[3]:
                    acc[2], acc[3] = raw, size
        order = sorted(sums, key=lambda site: (-sums[site][0], site))
        shown = []
        for site in order[:keep]:
            acc = sums[site]
            where, line = self.where(site)
            shown.append(SiteUse(where, line, acc[0], acc[1], acc[2]))
        return SiteList(shown, len(order), sum(acc[0] for acc in sums.values()))


_ATTRIBUTION: Optional[_Attribution] = None


def attribution() -> _Attribution:
    global _ATTRIBUTION
    if _ATTRIBUTION is None:
        _ATTRIBUTION = _Attribution()
    return _ATTRIBUTION


# ---------------------------------------------------------------------------
# Between runs of one test


class _BetweenRuns:
    """Puts back, between runs of one test, the per-test state a fresh run
    would find: what pytest captured (output, log records, ``capsys``,
    ``recwarn``) is set aside (and for ``recwarn`` the warnings shown once
    are shown again), ``monkeypatch``'s changes are undone, a doctest's
    globals (which the doctest runner clears after each run) are restored,
    and so are the attributes of a test method's instance (a unittest
    ``TestCase``, a test class's instance) as its fixtures left them; then
    the free lists are emptied. The first run's output is kept and shown at
    the end."""

    def __init__(self, item: pytest.Item) -> None:
        pm = item.config.pluginmanager
        self.item = item
        self.capman = pm.get_plugin("capturemanager")
        self.logging = pm.get_plugin("logging-plugin")
        self.kept: Optional[Tuple[str, str, str]] = None
        dtest = getattr(item, "dtest", None)
        globs = getattr(dtest, "globs", None)
        self.doctest_globs = dict(globs) if isinstance(globs, dict) else None
        # A test method's instance, as its fixtures left it: what the test
        # sets on it (a unittest test counting calls in self.count) must not
        # carry over into the next run.
        state = getattr(getattr(item, "instance", None), "__dict__", None)
        self.instance_state = dict(state) if isinstance(state, dict) else None

    def _read_capture(self) -> Tuple[str, str]:
        if self.capman is None:
            return "", ""
        try:
            out, err = self.capman.read_global_capture()
        except (AssertionError, AttributeError, ValueError):
            return "", ""  # not capturing (-s), or capture closed
        return out, err

    def _reset_log(self) -> str:
        report = getattr(self.logging, "report_handler", None)
        if report is None:
            return ""
        text: str = report.stream.getvalue()
        report.reset()
        return text

    def before_next_run(self) -> None:
        with unrecorded():
            out, err = self._read_capture()
            log = self._reset_log()
            if self.kept is None:
                self.kept = (out, err, log)
            caplog = getattr(self.logging, "caplog_handler", None)
            if caplog is not None:
                caplog.reset()
                self._point_caplog_at(caplog)
            fixture = getattr(self.capman, "_capture_fixture", None)
            if fixture is not None:
                try:
                    fixture.readouterr()  # capsys/capfd: what the last run left unread
                except Exception:  # pragma: no cover - a fixture already closed
                    pass
            funcargs = getattr(self.item, "funcargs", None)
            if not isinstance(funcargs, dict):
                funcargs = {}
            patcher = funcargs.get("monkeypatch")
            if patcher is not None:
                patcher.undo()
            recorder = funcargs.get("recwarn")
            if recorder is not None:
                recorder.clear()  # the warnings the last run raised
                # recwarn's filters, new for each test, empty the once-only
                # registries (__warningregistry__): the warning it saw in
                # the last run must be raised again in this one.
                mutated = getattr(warnings, "_filters_mutated", None)
                if mutated is not None:
                    mutated()
            if self.doctest_globs is not None:
                globs = self.item.dtest.globs  # type: ignore[attr-defined]
                globs.clear()
                globs.update(self.doctest_globs)
            if self.instance_state is not None:
                state = self.item.instance.__dict__  # type: ignore[attr-defined]
                state.clear()
                state.update(self.instance_state)
        # What that freed (pytest's objects, some from before tracing) must
        # not hand the test untraced blocks from the free lists.
        flush_free_lists()

    def _point_caplog_at(self, handler: Any) -> None:
        # caplog.get_records("call") reads a list saved when the phase began.
        try:
            from _pytest.logging import caplog_records_key

            records = self.item.stash[caplog_records_key]
        except (ImportError, KeyError):  # pragma: no cover - other pytest versions
            return
        records["call"] = handler.records

    def restore(self, keep_last: bool) -> None:
        """Puts the first run's output back: alone when the runs went well,
        before what the last run left when it failed (that output is the
        one that explains the failure)."""
        if self.kept is None:
            return
        out, err, log = self.kept
        if keep_last:
            last_out, last_err = self._read_capture()
            last_log = self._reset_log()
            out, err, log = out + last_out, err + last_err, log + last_log
        else:
            self._read_capture()
            self._reset_log()
        if out:
            sys.stdout.write(out)
        if err:
            sys.stderr.write(err)
        report = getattr(self.logging, "report_handler", None)
        if log and report is not None:
            report.stream.write(log)


class _Subtests:
    """The reports of a test's subtests (pytest's ``subtests`` fixture) when
    the test runs more than once: the first run's go out as usual; a later
    run's passing subtests are not reported again (the test passed them
    once), and its first failing subtest is reported and stops the runs.
    A failing subtest is the test's own failure: no memory verdict."""

    def __init__(self, item: pytest.Item) -> None:
        funcargs = getattr(item, "funcargs", None)
        fixture = funcargs.get("subtests") if isinstance(funcargs, dict) else None
        # pytest's own fixture keeps the hooks it reports through in
        # ``_ihook``, the pytest-subtests plugin's in ``ihook``.
        self.attr = next((a for a in ("_ihook", "ihook") if hasattr(fixture, a)), None)
        self.fixture = fixture
        self.hooks: Any = getattr(fixture, self.attr) if self.attr else None
        self.quiet = False
        self.failed = False
        if self.attr is not None:
            setattr(fixture, self.attr, self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hooks, name)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            if self.failed and self.quiet:
                return  # the runs stop at the end of this one: one failure shown
            self.failed = True
        elif self.quiet:
            return
        self.hooks.pytest_runtest_logreport(report=report)

    def pytest_exception_interact(self, **kwargs: Any) -> None:
        # (--pdb) for the failures that are reported
        if not self.quiet or self.failed:
            self.hooks.pytest_exception_interact(**kwargs)

    def restore(self) -> None:
        if self.attr is not None:
            setattr(self.fixture, self.attr, self.hooks)


# ---------------------------------------------------------------------------
# Running a test


class _Stop(Exception):
    """A unittest-style run reported its own failure (it does not raise)."""


def _own_failure(item: pytest.Item, subtests: Optional[_Subtests]) -> bool:
    # unittest.TestCase items record their errors instead of raising them;
    # a subtest's failure is reported, not raised.
    return bool(getattr(item, "_excinfo", None)) or bool(subtests and subtests.failed)


def run(
    item: pytest.Item, plan: Plan, runtest: Callable[[], None], floor: Optional[int] = None
) -> Measured:
    """Runs ``item`` under ``plan`` (``runtest`` is its own ``runtest``);
    raises :class:`MemoryFailure` when it breaks a memory rule. ``floor``:
    the peak below which the summary will not list the test, or None; its
    lines at the peak are not read when no one will show them."""
    measured = Measured(item.nodeid)
    between = _BetweenRuns(item)
    subtests = _Subtests(item) if plan.hunt is not None else None
    finished = False
    leak_limit = plan.limit_leaks
    thread_only = any(
        lim is not None and lim.current_thread_only for lim in (plan.limit_memory, leak_limit)
    )
    ran = 0
    try:
        if plan.limit_memory or leak_limit or plan.summary:
            leaks = leak_limit is not None
            # Snapshots are not needed: the peak watch gives the lines at the
            # peak and, after the collection, what each line left alive.
            tracker = Tracker(
                plan.nframe, collect=leaks, snapshots=False, exact=leaks, thread_only=thread_only
            )
            if not leaks:
                tracker._peak_floor = _lines_shown_from(floor, plan.limit_memory)
            if not (plan.limit_memory or leaks):
                # Only the summary reads the lines at the peak: its top 3 per test.
                tracker._peak_tracebacks = SUMMARY_TRACEBACKS
            with tracker:
                runtest()
            ran = 1
            if _own_failure(item, subtests):
                return measured
            _fill(measured, tracker, leak_limit, SITES_SHOWN if plan.limit_memory else 3)
        if plan.hunt is not None:
            calls = 0

            def once() -> None:
                nonlocal calls
                if ran or calls:
                    between.before_next_run()
                    assert subtests is not None
                    subtests.quiet = True
                calls += 1
                try:
                    runtest()
                except Exception as e:
                    if ran + calls > 1:
                        _note_run(e, ran + calls)
                    raise
                if _own_failure(item, subtests):
                    raise _Stop

            try:
                measured.report = run_hunt(
                    once,
                    (),
                    {},
                    rounds=plan.hunt.rounds,
                    warmup=max(plan.hunt.warmup - ran, 0),
                    nframe=plan.nframe,
                    runner=RUNNER_PACKAGES,
                    roots=_shared_fixtures(item),
                )
            except _Stop:
                return measured
        finished = True
    finally:
        between.restore(keep_last=not finished)
        if subtests is not None:
            subtests.restore()
    _judge(measured, plan)
    if measured.failures:
        raise MemoryFailure(measured)
    return measured


def _note_run(error: Exception, run: int) -> None:
    """Notes on a test's own failure that it came in a later run (3.11+:
    pytest shows an exception's notes), the runs before having passed."""
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        add_note(
            f"(in run {run} of the test: leakguard runs it again and again to find "
            "leaks, with its fixtures set up once; the runs before passed)"
        )


def _shared_fixtures(item: pytest.Item) -> List[Tuple[str, str, object]]:
    """The test's fixtures of a wider scope than the function (``session``,
    ``module``...), but for pytest's own, as roots for the holder search.
    In a run of the suite they live on from test to test: what grows in them
    is the program's, not an effect of running the test again (a function
    fixture's value, set up once for all runs, is held by pytest only)."""
    funcargs = getattr(item, "funcargs", None)
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", None)
    if not isinstance(funcargs, dict) or not isinstance(defs, dict):
        return []
    roots: List[Tuple[str, str, object]] = []
    for name, value in funcargs.items():
        chain = defs.get(name)
        if not chain:
            continue
        fixturedef = chain[-1]  # the one closest to the test
        scope = str(getattr(fixturedef, "scope", "function"))
        module = getattr(getattr(fixturedef, "func", None), "__module__", None) or ""
        if scope == "function" or module.split(".", 1)[0] in RUNNER_PACKAGES:
            continue
        roots.append(("fixture", f"fixture {name!r} ({scope} scope)", value))
    return roots


def _lines_shown_from(floor: Optional[int], limit: Optional[Limit]) -> Optional[int]:
    """The peak from which a test's lines at its peak are shown: listed in
    the summary (from ``floor``) or in the failure of its memory limit
    (above it). None: at any peak."""
    if floor is None or limit is None:
        return floor
    return min(floor, limit.nbytes + 1)


def _fill(measured: Measured, tracker: Tracker, leak_limit: Optional[Limit], shown: int) -> None:
    """The peak and the ``shown`` lines holding most at it (more for a memory
    limit's failure than for the summary, which shows 3); with a leak limit,
    what each line left alive."""
    where = attribution()
    measured.probed = True
    measured.peak = tracker.peak
    traces = tracker._traces
    measured.peak_sites = where.by_site([(t[0], t[1], t[2]) for t in traces], shown)
    if leak_limit is None:
        return
    entries = [(t[0], t[3], t[4]) for t in traces]
    if leak_limit.filter_fn is not None:
        keep = leak_limit.filter_fn
        entries = [e for e in entries if keep(AllocationStack(e[0]))]
    measured.leaked_sites = where.by_site(entries, SITES_SHOWN)
    measured.leaked = measured.leaked_sites.total


def _judge(measured: Measured, plan: Plan) -> None:
    from .sizes import format_size

    lim = plan.limit_memory
    if lim is not None and measured.peak > lim.nbytes:
        measured.failures.append(
            f"peak memory {format_size(measured.peak)} is above the limit of {lim.text}"
            + (f" ({lim.source})" if lim.source != "marker" else "")
        )
    lim = plan.limit_leaks
    if lim is not None and measured.leaked is not None and measured.leaked > lim.nbytes:
        measured.failures.append(
            f"left {format_size(measured.leaked)} alive, above the limit of {lim.text}"
            + (f" ({lim.source})" if lim.source != "marker" else "")
        )
    if measured.report is not None and measured.report.leaking:
        found = measured.report.summary().split(": ", 1)[-1]
        measured.failures.append(f"memory grows round after round: {found}")

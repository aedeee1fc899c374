"""The pytest hooks of leakguard's plugin.

Markers (``no_leaks``, ``limit_memory``, ``limit_leaks``) and options are read
at collection into a :class:`~.plan.Plan` per test; a test without one runs
exactly as without the plugin. A test with one has its ``runtest`` wrapped
for the call phase (fixtures are set up once, before) by :func:`.measure.run`.
"""

from __future__ import annotations

import sys
from typing import Any, Generator, Iterator, List, Optional

import pytest

from .board import PeakBoard
from .plan import (
    DEFAULT_NFRAME,
    MARKERS,
    MarkerError,
    Plan,
    Settings,
    add_options,
    plan_for,
    read_settings,
)

_PLAN = pytest.StashKey[Plan]()
_MEASURED = pytest.StashKey[Any]()
_STATE = pytest.StashKey["_RunState"]()


class _RunState:
    """Per run: the session-wide tracing of ``--leakguard`` and the summary."""

    def __init__(self, settings: Settings, board: Optional[PeakBoard]) -> None:
        self.settings = settings
        #: the peaks this process reported, when the summary lists their
        #: lines for the biggest tests only (None: every test's are read)
        self.board = board
        self.session: Any = None
        self._summary: Any = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Reports of xdist's workers arrive here too, with their data.
        data = getattr(report, "leakguard", None)
        if report.when == "call" and isinstance(data, dict):
            self.summary.add(report.nodeid, data)

    @property
    def summary(self) -> Any:
        if self._summary is None:
            from .reporting import Summary

            self._summary = Summary(self.settings.top)
        return self._summary


def _is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("dsession") and not hasattr(config, "workerinput")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _every_worker_runs_every_test(config: pytest.Config) -> bool:
    """xdist's --dist=each: the summary then keeps whichever worker's report
    of a test came last, and no worker can tell which of its tests will be
    listed."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # a worker's own --dist is reset to "no"
        return bool(workerinput.get("leakguard_dist_each"))
    return bool(config.getoption("dist", None) == "each")


def _board(config: pytest.Config, settings: Settings) -> Optional[PeakBoard]:
    if not settings.trace_all or _every_worker_runs_every_test(config):
        return None
    return PeakBoard(settings.top)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist's controller, before it starts a worker."""
    node.workerinput["leakguard_dist_each"] = _every_worker_runs_every_test(node.config)


def pytest_configure(config: pytest.Config) -> None:
    for text in MARKERS.values():
        config.addinivalue_line("markers", text)
    settings = read_settings(config)
    state = _RunState(settings, _board(config, settings))
    config.stash[_STATE] = state
    config.pluginmanager.register(state, "leakguard-run-state")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, Any, None]:
    """One tracing session for the tests of the run, each probed inside it.
    It begins after collection: importing and collecting the test modules is
    no test's work, and tracing it would only slow the run down."""
    config = session.config
    state = config.stash.get(_STATE, None)
    if (
        state is not None
        and state.settings.trace_all
        and not _is_xdist_controller(config)
        and not config.option.collectonly
    ):
        from .._hunter.session import TracingSession

        state.session = TracingSession(state.settings.nframe, exact=False)
        state.session.__enter__()
    try:
        yield
    finally:
        _end_tracing(config)


def _end_tracing(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None and state.session is not None:
        session, state.session = state.session, None
        session.__exit__(None, None, None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _end_tracing(session.config)


def pytest_unconfigure(config: pytest.Config) -> None:
    _end_tracing(config)
    state = config.stash.get(_STATE, None)
    if state is not None and config.pluginmanager.is_registered(state):
        config.pluginmanager.unregister(state)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: List[pytest.Item]
) -> None:
    settings = config.stash[_STATE].settings
    errors = []
    for item in items:
        try:
            plan = plan_for(item, settings)
        except MarkerError as e:
            errors.append(str(e))
            continue
        if plan is not None:
            item.stash[_PLAN] = plan
    if errors:
        # every bad marker of the run at once, before any test runs
        raise pytest.UsageError("leakguard: bad markers:\n" + "\n".join(errors))


def _listed_from(state: _RunState, nodeid: str) -> Optional[int]:
    """The peak from which the summary may list the test; None: any peak."""
    if not (state.settings.trace_all or state.settings.hunt):
        return sys.maxsize  # no summary is written
    return state.board.floor(nodeid) if state.board is not None else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    plan = item.stash.get(_PLAN, None)
    if plan is None:
        yield
        return
    from .measure import run

    runtest = item.runtest
    floor = _listed_from(item.config.stash[_STATE], item.nodeid)

    def measured_runtest() -> None:
        __tracebackhide__ = True
        item.stash[_MEASURED] = run(item, plan, runtest, floor)

    item.runtest = measured_runtest  # type: ignore[method-assign]
    try:
        yield
    finally:
        item.__dict__.pop("runtest", None)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    if call.when != "call" or _PLAN not in item.stash:
        return
    from .measure import MemoryFailure
    from .reporting import FailureRepr

    rep = outcome.get_result()
    measured = item.stash.get(_MEASURED, None)
    if call.excinfo is not None and isinstance(call.excinfo.value, MemoryFailure):
        measured = call.excinfo.value.measured
        if rep.failed:
            path, lineno, _ = item.reportinfo()
            rep.longrepr = FailureRepr(measured, str(path), (lineno or 0) + 1)
    if (
        measured is not None
        and item.stash[_PLAN].summary
        or (measured is not None and measured.report is not None)
    ):
        rep.leakguard = data = measured.as_dict()
        board = item.config.stash[_STATE].board
        if board is not None and data["peak"] is not None:
            board.add(item.nodeid, data["peak"])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or hasattr(config, "workerinput"):
        return
    if not (state.settings.trace_all or state.settings.hunt):
        return
    lines = state.summary.lines()
    if not lines:
        return
    terminalreporter.write_sep("=", "leakguard")
    for line in lines:
        terminalreporter.write_line(line)


@pytest.fixture
def leakguard(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A tracker for this test: ``leakguard.snapshot()``, ``leakguard.diff()``,
    ``leakguard.leaked``, ``leakguard.assert_no_leaks(func, *args)``."""
    from .fixture import LeakguardFixture

    state = request.config.stash.get(_STATE, None)
    fx = LeakguardFixture(state.settings.nframe if state else DEFAULT_NFRAME)
    fx._start()
    try:
        yield fx
    finally:
        fx._stop()

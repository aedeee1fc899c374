"""IPython magics: ``%load_ext leakguard``, then

* ``%%leakguard [-n NFRAME] [-l ROWS] [--hunt ROUNDS [--warmup N]]`` — runs
  the cell under a tracker and shows its peak and what it left alive, per
  line; with ``--hunt``, runs the cell round after round and shows the leak
  report;
* ``%leakguard_snapshot [-n NFRAME] [-l ROWS] [--key KEY] [--first] [--reset] [--stop]``
  — quick before/after diffs: the first call starts tracing (if needed) and
  takes a baseline snapshot, each later call shows what changed since the
  previous one (``--first``: since the baseline).

IPython is imported only here, and this module only when the extension loads.
"""

from __future__ import annotations

import ast
import linecache
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .. import _leakguard as native
from .._hunter.rounds import DEFAULT_NFRAME, run_hunt
from .._hunter.sites import NOTEBOOK_PACKAGES, _library_dirs, package_dirs
from .._hunter.track import Tracker
from .._model import BaseFilter, Snapshot, StatisticDiffList, _format_size
from ..tracemalloc import take_snapshot
from .html import TOP_LINES, _e, _view, diffs_html, tracker_html

__all__ = ["LeakguardMagics", "NOTEBOOK_PACKAGES", "load_ipython_extension"]


class KernelFilter(BaseFilter):
    """Leaves out blocks the notebook's machinery allocated: those whose
    traceback runs through the kernel's packages (:data:`NOTEBOOK_PACKAGES`)
    or leakguard and otherwise only through the standard library (compiling
    and caching cells, history, output). A traceback with any other frame,
    a cell's or a library's the cell called, is the user's."""

    # Decided by the traceback alone: filter_traces judges each distinct
    # traceback once.
    _key_only = True

    def __init__(self) -> None:
        super().__init__(False)
        self._kernel = package_dirs(("leakguard", *NOTEBOOK_PACKAGES))
        self._stdlib, self._packages = _library_dirs()
        self._verdicts: Dict[Tuple[Tuple[str, int], ...], bool] = {}

    def _kernel_owned(self, frames: Tuple[Tuple[str, int], ...]) -> bool:
        saw_kernel = False
        for filename, _ in frames:
            name = os.path.normcase(filename)
            if name.startswith(self._kernel):
                saw_kernel = True
            elif name.startswith(self._stdlib) and not name.startswith(self._packages):
                continue
            elif not filename.startswith("<frozen "):
                return False
        return saw_kernel

    def _match(self, trace: Any) -> bool:
        frames = trace[2]
        verdict = self._verdicts.get(frames)
        if verdict is None:
            verdict = self._verdicts[frames] = not self._kernel_owned(frames)
        return verdict


class TrackedCell:
    """What ``%%leakguard`` shows: the cell's tracker as tables (``tracker``
    holds everything: ``peak``, ``leaked``, ``diff()``, ``at_peak()``)."""

    def __init__(self, tracker: Tracker, limit: int) -> None:
        self.tracker = tracker
        self.limit = limit

    def _repr_html_(self) -> str:
        return tracker_html(self.tracker, self.limit)

    def __repr__(self) -> str:
        return str(self.tracker)


class SnapshotStep:
    """What ``%leakguard_snapshot`` shows after the first call: the diff from
    ``base`` to ``snapshot`` (``diffs``, as ``Snapshot.compare_to``)."""

    def __init__(
        self, snapshot: Snapshot, base: Snapshot, diffs: StatisticDiffList, title: str, limit: int
    ) -> None:
        self.snapshot = snapshot
        self.base = base
        self.diffs = diffs
        self.title = title
        self.limit = limit

    def _repr_html_(self) -> str:
        return diffs_html(self.diffs, self.limit, self.title)

    def __repr__(self) -> str:
        change = sum(d.size_diff for d in self.diffs)
        lines = [f"{self.title}: {_format_size(change, True)} in all"]
        lines.extend(f"  {d}" for d in self.diffs[: self.limit] if d.size_diff or d.count_diff)
        return "\n".join(lines)


class Baseline:
    """What the first ``%leakguard_snapshot`` shows."""

    def __init__(self, snapshot: Snapshot, started: bool) -> None:
        self.snapshot = snapshot
        self.started = started

    def _text(self) -> str:
        size = sum(t.size for t in self.snapshot.traces)
        started = (
            f"tracing started (nframe={self.snapshot.traceback_limit}); " if self.started else ""
        )
        return (
            f"{started}baseline snapshot taken: {len(self.snapshot.traces):,} blocks, "
            f"{_format_size(size, False)}. Run %leakguard_snapshot again to see what changed."
        )

    def _repr_html_(self) -> str:
        return _view(f'<div class="lg-head"><b>leakguard</b> {_e(self._text())}</div>')

    def __repr__(self) -> str:
        return self._text()


@magics_class
class LeakguardMagics(Magics):
    """``%%leakguard`` and ``%leakguard_snapshot``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._cells = 0
        self._snapshots: List[Snapshot] = []
        self._started = False

    @property
    def _shell(self) -> Any:
        # Set for every Magics IPython registers; typed as optional.
        return self.shell

    # -- running a cell -----------------------------------------------------

    def _compile_cell(self, cell: str) -> Callable[[], Any]:
        """The cell as a function that runs it in the user's namespace and
        returns the value of its last expression, as IPython would show it.
        The source is registered with linecache so tracebacks show its lines."""
        self._cells += 1
        source = self._shell.transform_cell(cell)
        filename = f"<leakguard cell {self._cells}>"
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
        tree = ast.parse(source, filename)
        last: Optional[ast.expr] = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body.pop().value  # type: ignore[attr-defined,unused-ignore]
        body = compile(tree, filename, "exec")
        expr = compile(ast.Expression(last), filename, "eval") if last is not None else None
        namespace: Dict[str, Any] = self._shell.user_ns

        def run() -> Any:
            exec(body, namespace)
            return eval(expr, namespace) if expr is not None else None

        return run

    @magic_arguments()
    @argument(
        "-n",
        "--nframe",
        type=int,
        default=DEFAULT_NFRAME,
        help=f"frames kept per traceback (default {DEFAULT_NFRAME})",
    )
    @argument(
        "-l",
        "--limit",
        type=int,
        default=TOP_LINES,
        help=f"rows in each table (default {TOP_LINES})",
    )
    @argument(
        "--hunt",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="run the cell ROUNDS times after the warm-up and show the leak report",
    )
    @argument("--warmup", type=int, default=2, help="warm-up runs before a hunt (default 2)")
    @argument(
        "-f",
        "--flame",
        action="store_true",
        help="also show a flame graph of what the cell left alive (or of the leaking sites)",
    )
    @cell_magic
    def leakguard(self, line: str, cell: str) -> Any:
        """Run the cell and show its peak memory and what it left alive, per
        line, with the allocation tracebacks; with --hunt, run it round after
        round and show what keeps growing, where it was allocated and what
        holds it."""
        args = parse_argstring(self.leakguard, line)
        if args.limit < 1:
            raise ValueError(f"--limit must be at least 1, not {args.limit}")
        run = self._compile_cell(cell)
        if args.hunt:
            report = run_hunt(
                run,
                (),
                {},
                rounds=args.hunt,
                warmup=args.warmup,
                nframe=args.nframe,
                runner=NOTEBOOK_PACKAGES,
            )
            self._display(str(report), report._repr_html_())
            if args.flame and report.leaks:
                self._flame(report)
            return None
        tracker = Tracker(args.nframe)
        # The kernel keeps running on its other threads (sending output,
        # heartbeats) while the cell runs: not the cell's memory.
        tracker._left_out.append(KernelFilter())
        with tracker:
            value = run()
        shown = TrackedCell(tracker, args.limit)
        self._display(repr(shown), shown._repr_html_())
        if args.flame:
            self._flame(tracker)
        return value

    def _flame(self, obj: Any) -> None:
        from .._export.flamegraph import flame_graph

        graph = flame_graph(obj)
        self._display(repr(graph), graph._repr_html_())

    def _display(self, text: str, page: str) -> None:
        """Shows one output below the cell: ``page`` where HTML renders, else ``text``."""
        self._shell.display_pub.publish({"text/plain": text, "text/html": page})

    # -- before/after snapshots ------------------------------------------------

    @magic_arguments()
    @argument(
        "-n",
        "--nframe",
        type=int,
        default=DEFAULT_NFRAME,
        help=f"frames per traceback when this starts tracing (default {DEFAULT_NFRAME})",
    )
    @argument("-l", "--limit", type=int, default=TOP_LINES, help="rows shown")
    @argument(
        "--key",
        default="lineno",
        choices=("lineno", "filename", "traceback"),
        help="group by line (default), file or whole traceback",
    )
    @argument(
        "--first", action="store_true", help="diff against the baseline, not the previous snapshot"
    )
    @argument("--reset", action="store_true", help="take a new baseline")
    @argument(
        "--stop", action="store_true", help="forget the snapshots; stop tracing if this started it"
    )
    @line_magic
    def leakguard_snapshot(self, line: str) -> Any:
        """Quick before/after diffs: the first call takes a baseline snapshot
        (starting tracing if it is off), each later call shows what changed
        since the previous snapshot."""
        args = parse_argstring(self.leakguard_snapshot, line)
        if args.stop:
            self._snapshots.clear()
            if self._started and native.is_tracing():
                native.stop()
            self._started = False
            return None
        if args.reset:
            self._snapshots.clear()
        started = False
        if not native.is_tracing():
            native.start(args.nframe)
            self._started = started = True
            self._snapshots.clear()
        snapshot = take_snapshot().filter_traces([KernelFilter()])
        if not self._snapshots:
            self._snapshots.append(snapshot)
            return Baseline(snapshot, started)
        index = 0 if args.first else len(self._snapshots) - 1
        base = self._snapshots[index]
        self._snapshots.append(snapshot)
        diffs = snapshot.compare_to(base, args.key)
        title = f"Since snapshot {index + 1} (now {len(self._snapshots)})"
        return SnapshotStep(snapshot, base, diffs, title, args.limit)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext leakguard``: registers the magics."""
    ipython.register_magics(LeakguardMagics)

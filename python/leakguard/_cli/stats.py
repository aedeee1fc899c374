"""``leakguard stats FILE``: where the memory of a snapshot was allocated."""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Sequence, Tuple

from .._model import Snapshot, Statistic, _format_size
from .._source import source_line, where
from .common import (
    EXIT_OK,
    CliError,
    count,
    is_runner_frame,
    load_snapshot,
    program_frames,
)
from .term import Cell, Terminal

KEYS = ("lineno", "filename", "traceback")

#: What one row of a statistics table is, per key.
_UNIT = {"lineno": "line", "filename": "file", "traceback": "traceback"}


def entries(n: int, key: str, what: str = "") -> str:
    """``"3 lines"``, ``"1 more file"``: ``n`` rows of a ``key`` table."""
    unit = _UNIT[key] + ("s" if n != 1 else "")
    return f"{n:,} {what} {unit}" if what else f"{n:,} {unit}"


EPILOG = """\
examples:
  leakguard stats app.lgsnap                     the 10 lines holding the most memory
  leakguard stats app.lgsnap --key filename      per file
  leakguard stats app.lgsnap --key traceback --limit 3
                                                 the 3 biggest call stacks, in full
  leakguard stats app.lgsnap --cumulative        count a block in every frame of its
                                                 traceback, not only the innermost one
"""


def add_view_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--key",
        choices=KEYS,
        default="lineno",
        help=f"group {what} by source line (default), file or whole traceback",
    )
    parser.add_argument(
        "--cumulative",
        action="store_true",
        help="count a block in every frame of its traceback (lineno and filename keys)",
    )
    parser.add_argument(
        "--limit",
        type=count(0),
        default=10,
        metavar="N",
        help="show the N biggest entries (default 10; 0 shows them all)",
    )


def check_view_options(args: argparse.Namespace) -> None:
    if args.cumulative and args.key == "traceback":
        raise CliError("--cumulative needs --key lineno or --key filename")


def totals(snapshot: Snapshot) -> Tuple[int, int]:
    """(bytes, blocks) traced in ``snapshot``."""
    size = blocks = 0
    for stat in snapshot.statistics("filename"):
        size += stat.size
        blocks += stat.count
    return size, blocks


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _average(size: int, blocks: int) -> str:
    return _format_size(size / blocks, False) if blocks else "-"


def describe(path: str, snapshot: Snapshot) -> str:
    """One line saying what the snapshot is, from what ``leakguard run`` stored."""
    size, blocks = totals(snapshot)
    text = (
        f"{path}: {_format_size(size, False)} in {blocks:,} blocks, "
        f"traceback limit {snapshot.traceback_limit}"
    )
    info: Any = getattr(snapshot, "leakguard_run", None)
    if isinstance(info, dict):
        command = info.get("command")
        moment = info.get("moment")
        if isinstance(command, list) and all(isinstance(c, str) for c in command):
            text += f"\n  taken {moment if isinstance(moment, str) else 'by'} "
            text += f"`{' '.join(command)}`"
            pid, time = info.get("pid"), info.get("time")
            if isinstance(pid, int):
                text += f" (pid {pid}"
                text += f", {time})" if isinstance(time, str) else ")"
    return text


def show_statistics(
    term: Terminal,
    stats: Sequence[Statistic],
    key: str,
    total: Tuple[int, int],
    limit: int,
    cumulative: bool,
) -> None:
    """The biggest ``limit`` (0: all) of ``stats`` as an aligned table, with
    what is left and the total."""
    shown = stats[:limit] if limit else stats
    total_size, total_blocks = total
    if key == "traceback":
        _show_tracebacks(term, shown, total_size)
    else:
        rows: List[List[Cell]] = []
        for stat in shown:
            frame = stat.traceback[-1]
            lineno = frame.lineno if key == "lineno" else 0
            rows.append(
                [
                    Cell(_format_size(stat.size, False), "bold"),
                    Cell(f"{stat.count:,}"),
                    Cell(_average(stat.size, stat.count)),
                    Cell(_share(stat.size, total_size)),
                    Cell(where(frame.filename, lineno), "cyan"),
                    Cell(source_line(frame.filename, lineno) if key == "lineno" else ""),
                ]
            )
        if not rows:
            term.line("nothing traced")
            return
        rest = stats[len(shown) :]
        if rest:
            rows.append(_rest_row(rest, key, cumulative))
        rows.append(
            [
                Cell(_format_size(total_size, False), "bold"),
                Cell(f"{total_blocks:,}", "bold"),
                Cell(_average(total_size, total_blocks)),
                Cell("100.0%" if total_size else "-"),
                Cell("total", "bold"),
                Cell(""),
            ]
        )
        header = ["Size", "Blocks", "Average", "Share", "Location" if key == "lineno" else "File"]
        term.table([*header, "Source" if key == "lineno" else ""], rows, "rrrrll")
        return
    rest = stats[len(shown) :]
    if rest:
        term.line(f"… {entries(len(rest), key, 'more')}", "dim")
    term.line(
        f"total: {_format_size(total_size, False)} in {total_blocks:,} blocks "
        f"({entries(len(stats), key)})",
        "bold",
    )


def _rest_row(rest: Sequence[Statistic], key: str, cumulative: bool) -> List[Cell]:
    label = f"… {entries(len(rest), key, 'more')}"
    if cumulative:  # a block counts in several rows: no meaningful sum
        return [Cell(""), Cell(""), Cell(""), Cell(""), Cell(label, "dim"), Cell("")]
    size = sum(s.size for s in rest)
    blocks = sum(s.count for s in rest)
    return [
        Cell(_format_size(size, False), "dim"),
        Cell(f"{blocks:,}", "dim"),
        Cell(_average(size, blocks), "dim"),
        Cell(""),
        Cell(label, "dim"),
        Cell(""),
    ]


def _show_tracebacks(term: Terminal, shown: Sequence[Statistic], total_size: int) -> None:
    style = term.style
    for i, stat in enumerate(shown, 1):
        term.line(
            f"#{i}  {style(_format_size(stat.size, False), 'bold')} in {stat.count:,} blocks "
            f"(average {_average(stat.size, stat.count)}), {_share(stat.size, total_size)}"
        )
        for frame in reversed(program_frames(stat.traceback)):  # most recent first
            text = source_line(frame.filename, frame.lineno)
            term.line(f"    {style(where(frame.filename, frame.lineno), 'cyan')}  {text}".rstrip())
        term.line()


class StatsCommand:
    name = "stats"
    help = "show where the memory of a snapshot was allocated"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.description = (
            "Show the lines (files, tracebacks) holding the most memory in a snapshot "
            "file written by 'leakguard run' or Snapshot.dump(), biggest first."
        )
        parser.epilog = EPILOG
        parser.add_argument("file", metavar="FILE", help="a snapshot file (.lgsnap)")
        add_view_options(parser, "memory")

    def run(self, args: argparse.Namespace) -> int:
        check_view_options(args)
        snapshot = load_snapshot(args.file)
        stats: List[Statistic] = snapshot.statistics(args.key, args.cumulative)
        if args.cumulative:  # the runner's frames are in every traceback
            stats = [s for s in stats if not is_runner_frame(s.traceback[-1].filename)]
        term = Terminal(sys.stdout, args.color)
        term.line(describe(args.file, snapshot))
        term.line()
        show_statistics(term, stats, args.key, totals(snapshot), args.limit, args.cumulative)
        return EXIT_OK

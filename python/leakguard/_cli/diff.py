"""``leakguard diff OLD NEW``: what changed between two snapshots."""

from __future__ import annotations

import argparse
import sys
from typing import List, Sequence

from .._model import StatisticDiff, _format_size
from .._pytest.sizes import parse_size
from .._source import source_line, where
from .common import (
    EXIT_LEAKS,
    EXIT_OK,
    is_runner_frame,
    load_snapshot,
    program_frames,
)
from .stats import add_view_options, check_view_options, describe, entries, totals
from .term import Cell, Terminal

EPILOG = """\
examples:
  leakguard diff before.lgsnap after.lgsnap       the 10 lines that changed most
  leakguard diff before.lgsnap after.lgsnap --key filename --limit 0
                                                  every file that changed
  leakguard diff old.lgsnap new.lgsnap --fail-on-growth 10MB
                                                  exit status 1 when the traced total
                                                  grew by more than 10 MiB (for CI)
"""


def _size_type(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _growth_style(value: int) -> str:
    return "red" if value > 0 else "green" if value < 0 else ""


class DiffCommand:
    name = "diff"
    help = "show what changed between two snapshots"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.description = (
            "Compare two snapshot files: the lines (files, tracebacks) whose memory "
            "changed most from OLD to NEW, growth in red and shrinking in green."
        )
        parser.epilog = EPILOG
        parser.add_argument("old", metavar="OLD", help="the earlier snapshot file")
        parser.add_argument("new", metavar="NEW", help="the later snapshot file")
        add_view_options(parser, "the changes")
        parser.add_argument(
            "--fail-on-growth",
            type=_size_type,
            metavar="SIZE",
            help="exit with status 1 when the traced total grew by more than SIZE "
            "(e.g. '512 KiB', '10MB'; 1 MB = 1024 KiB)",
        )

    def run(self, args: argparse.Namespace) -> int:
        check_view_options(args)
        old = load_snapshot(args.old)
        new = load_snapshot(args.new)
        diffs: List[StatisticDiff] = new.compare_to(old, args.key, args.cumulative)
        if args.cumulative:  # the runner's frames are in every traceback
            diffs = [d for d in diffs if not is_runner_frame(d.traceback[-1].filename)]
        old_size, old_blocks = totals(old)
        new_size, new_blocks = totals(new)
        term = Terminal(sys.stdout, args.color)
        term.line(f"old: {describe(args.old, old)}")
        term.line(f"new: {describe(args.new, new)}")
        term.line()
        changed = [d for d in diffs if d.size_diff or d.count_diff]
        shown = changed[: args.limit] if args.limit else changed
        if args.key == "traceback":
            self._tracebacks(term, shown)
        else:
            self._table(term, shown, args.key)
        rest = len(changed) - len(shown)
        if rest:
            term.line(f"… {entries(rest, args.key, 'more changed')}", "dim")
        if len(diffs) > len(changed):
            term.line(f"{entries(len(diffs) - len(changed), args.key)} unchanged", "dim")
        grew = new_size - old_size
        style = term.style
        term.line(
            f"total: {_format_size(old_size, False)} → {_format_size(new_size, False)} "
            f"({style(_format_size(grew, True), 'bold ' + _growth_style(grew))}), "
            f"blocks {old_blocks:,} → {new_blocks:,} ({new_blocks - old_blocks:+,})"
        )
        limit = args.fail_on_growth
        if limit is not None and grew > limit:
            sys.stdout.flush()
            print(
                f"leakguard: memory grew by {_format_size(grew, False)}, more than "
                f"--fail-on-growth {_format_size(limit, False)}",
                file=sys.stderr,
            )
            return EXIT_LEAKS
        return EXIT_OK

    def _table(self, term: Terminal, shown: Sequence[StatisticDiff], key: str) -> None:
        if not shown:
            term.line("no change")
            return
        rows: List[List[Cell]] = []
        for d in shown:
            frame = d.traceback[-1]
            lineno = frame.lineno if key == "lineno" else 0
            rows.append(
                [
                    Cell(_format_size(d.size, False)),
                    Cell(_format_size(d.size_diff, True), "bold " + _growth_style(d.size_diff)),
                    Cell(f"{d.count:,}"),
                    Cell(f"{d.count_diff:+,}", _growth_style(d.count_diff)),
                    Cell(where(frame.filename, lineno), "cyan"),
                    Cell(source_line(frame.filename, lineno) if key == "lineno" else ""),
                ]
            )
        header = ["Size", "Change", "Blocks", "Change", "Location" if key == "lineno" else "File"]
        term.table([*header, "Source" if key == "lineno" else ""], rows, "rrrrll")

    def _tracebacks(self, term: Terminal, shown: Sequence[StatisticDiff]) -> None:
        style = term.style
        if not shown:
            term.line("no change")
        for i, d in enumerate(shown, 1):
            change = style(_format_size(d.size_diff, True), "bold " + _growth_style(d.size_diff))
            term.line(
                f"#{i}  {change} ({d.count_diff:+,} blocks), now "
                f"{_format_size(d.size, False)} in {d.count:,} blocks"
            )
            for frame in reversed(program_frames(d.traceback)):  # most recent first
                text = source_line(frame.filename, frame.lineno)
                term.line(
                    f"    {style(where(frame.filename, frame.lineno), 'cyan')}  {text}".rstrip()
                )
            term.line()

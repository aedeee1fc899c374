"""``leakguard export FILE``: a snapshot (or the diff from another one) in a
format another tool reads, through the export registry."""

from __future__ import annotations

import argparse
import os
import sys

from .. import _export
from .._profile import profile_of
from .common import EXIT_OK, CliError, load_snapshot

EPILOG = """\
formats:
  html         an interactive flame graph, one self-contained file
  pprof        gzipped profile.proto, for 'go tool pprof' and other pprof viewers
  speedscope   a speedscope.app file
  json         leakguard's profile as plain JSON

examples:
  leakguard export app.lgsnap -o app.html          the format told by the file name
  leakguard export app.lgsnap --format pprof       written to app.pb.gz
  leakguard export after.lgsnap --base before.lgsnap -o growth.html
                                                   what changed from before to after
  leakguard export app.lgsnap --format json -o -   to standard output
"""


def _default_output(path: str, format: str) -> str:
    stem = path[: -len(".lgsnap")] if path.lower().endswith(".lgsnap") else path
    suffix: str = _export.format_module(format).SUFFIX
    return os.path.basename(stem) + suffix


class ExportCommand:
    name = "export"
    help = "write a snapshot as a flame graph, pprof, speedscope or JSON file"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.description = (
            "Write a snapshot file (or, with --base, what changed since another one) "
            "in a format other tools read."
        )
        parser.epilog = EPILOG
        parser.add_argument("file", metavar="FILE", help="a snapshot file (.lgsnap)")
        parser.add_argument(
            "--format",
            "-f",
            choices=sorted(_export.FORMATS),
            help="the output format (default: told by the ending of OUT)",
        )
        parser.add_argument(
            "-o",
            "--output",
            metavar="OUT",
            help="the file to write ('-' for standard output; default: FILE's name "
            "with the format's ending, in the working directory)",
        )
        parser.add_argument(
            "--base",
            metavar="OLD",
            help="an earlier snapshot file: export what changed from OLD to FILE",
        )

    def run(self, args: argparse.Namespace) -> int:
        output = args.output
        if output is None and args.format is None:
            raise CliError("pass --format or -o OUT (whose ending tells the format)")
        if output == "-" and args.format is None:
            raise CliError("writing to standard output ('-o -') needs --format")
        fmt = args.format or _export.format_for_path(output)
        if output is None:
            output = _default_output(args.file, fmt)
        snapshot = load_snapshot(args.file)
        base = load_snapshot(args.base) if args.base is not None else None
        profile = profile_of(snapshot, base)
        name = os.path.basename(args.file)
        profile.title = (
            f"what changed: {os.path.basename(args.base)} → {name}"
            if args.base is not None
            else f"live memory: {name}"
        )
        data = _export.render(profile, fmt)
        if output == "-":
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return EXIT_OK
        try:
            with open(output, "wb") as out:
                out.write(data)
        except OSError as error:
            raise CliError(f"cannot write {output!r}: {error.strerror or error}") from None
        print(f"wrote {fmt} to {output} ({len(data):,} bytes)")
        return EXIT_OK

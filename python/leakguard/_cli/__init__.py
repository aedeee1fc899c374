"""The ``leakguard`` command line (also ``python -m leakguard``).

Each subcommand is a module of this package with a class that meets
:class:`Command`: ``prepare_parser`` fills in its argparse parser, ``run``
does the work and returns the exit status. :func:`main` turns every failure
into an exit status and, for errors, a single line on stderr (see
:mod:`.common` for the statuses).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import traceback
from typing import Any, Dict, List, NoReturn, Optional, Protocol, Sequence, Tuple, Union

from .._errors import LeakguardError
from .common import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, CliError
from .diff import DiffCommand
from .export import ExportCommand
from .run import EXIT_INTERRUPTED, RunCommand
from .stats import StatsCommand
from .term import COLOR_CHOICES

__all__ = ["Command", "COMMANDS", "main"]


class Command(Protocol):
    """A subcommand: its name and one-line help, its options, its work."""

    name: str
    help: str

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's description, epilog and arguments to ``parser``."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; the exit status. Raise :class:`.common.CliError` for a
        failure the user can act on."""


COMMANDS: Sequence[Command] = (RunCommand(), StatsCommand(), DiffCommand(), ExportCommand())

EPILOG = """\
exit status:
  0  success
  1  leaks found (run --hunt; diff --fail-on-growth), or the traced program failed
  2  bad usage or bad input (unknown option, missing or corrupt snapshot file)
  3  internal error in leakguard (rerun with --debug for the traceback)
  run passes on the traced program's own exit status when it fails.

'leakguard COMMAND --help' shows a command's options and examples.
"""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line (and a pointer to ``--help``) instead
    of argparse's usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked."""

    def __init__(self, option_strings: List[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show leakguard's version and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Union[str, Sequence[Any], None],
        option_string: Optional[str] = None,
    ) -> None:
        import leakguard

        print(f"leakguard {leakguard.__version__}")
        parser.exit()


def _common_options() -> _Parser:
    # Accepted before and after the command; a default only where nothing
    # sets them (``_option``), so that the subcommand's parser keeps a value
    # given before the command.
    common = _Parser(add_help=False)
    common.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default=argparse.SUPPRESS,
        help="colour the output: auto (default: on a terminal, unless NO_COLOR is set; "
        "FORCE_COLOR forces it), always or never",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on an internal error, show the traceback (also LEAKGUARD_DEBUG=1)",
    )
    return common


def build_parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The parser of the command line, and each command's parser by name."""
    common = _common_options()
    parser = _Parser(
        prog="leakguard",
        description=textwrap.fill(
            "Find memory leaks in Python programs: trace a program, read and compare its "
            "snapshots, export them for other tools.",
            79,
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    parsers: Dict[str, argparse.ArgumentParser] = {}
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name,
            help=command.help,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        sub.set_defaults(handler=command)
        command.prepare_parser(sub)
        if sub.description:  # the raw formatter keeps the epilog's layout: wrap this
            sub.description = textwrap.fill(sub.description, 79)
        parsers[command.name] = sub
    return parser, parsers


def parse(argv: List[str]) -> argparse.Namespace:
    """The parsed command line; ``run`` stops reading options at the program."""
    parser, parsers = build_parser()
    # Find the command: the first word that is not an option of leakguard's own
    # (``--color`` takes a value).
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--color" else 1
    program: List[str] = []
    if i < len(argv) and argv[i] == RunCommand.name:
        ours, program = RunCommand.split_argv(parsers[RunCommand.name], argv[i + 1 :])
        argv = [*argv[: i + 1], *ours]
    args = parser.parse_args(argv)
    if args.command is None:
        names = ", ".join(c.name for c in COMMANDS)
        parser.error(f"a command is needed: one of {names}")
    if args.command == RunCommand.name:
        args.args = [*args.args, *program]
    return args


def _debugging(args: Optional[argparse.Namespace]) -> bool:
    if args is not None and getattr(args, "debug", False):
        return True
    return os.environ.get("LEAKGUARD_DEBUG", "") not in ("", "0")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    args: Optional[argparse.Namespace] = None
    try:
        args = parse(list(sys.argv[1:] if argv is None else argv))
        if not hasattr(args, "color"):
            args.color = "auto"
        command: Command = args.handler
        return command.run(args)
    except _UsageError as error:
        return _fail(f"leakguard: error: {error}", EXIT_USAGE)
    except CliError as error:
        return _fail(f"leakguard: error: {error}", error.status)
    except LeakguardError as error:  # a value leakguard's API refused: the input's fault
        return _fail(f"leakguard: error: {error}", EXIT_USAGE)
    except SystemExit as exit:  # --help, --version
        return exit.code if isinstance(exit.code, int) else EXIT_OK
    except KeyboardInterrupt:
        return _fail("leakguard: interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (``leakguard stats x | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except Exception as error:
        if _debugging(args):
            traceback.print_exc()
        hint = "" if _debugging(args) else " (rerun with --debug or LEAKGUARD_DEBUG=1 for details)"
        return _fail(
            f"leakguard: internal error: {type(error).__name__}: {error}{hint}", EXIT_INTERNAL
        )


def _fail(message: str, status: int) -> int:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    print(message.replace("\n", " "), file=sys.stderr)
    return status

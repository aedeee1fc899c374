"""``leakguard run``: trace a program and save a snapshot when it ends (or on
a signal); with ``--hunt``, run it round after round and report its leaks.

The program runs in this interpreter through :mod:`runpy`, as ``python
script.py`` or ``python -m module`` would run it: ``__name__`` is
``"__main__"``, ``sys.argv`` is the program's, ``sys.path[0]`` the script's
directory (the working directory for a module).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import pkgutil  # noqa: F401 - runpy imports it on first use: not the program's memory
import runpy
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import _leakguard as native
from .._hunter.rounds import DEFAULT_NFRAME, run_hunt
from .._model import Snapshot, _format_size
from ..tracemalloc import start, take_snapshot
from .common import EXIT_LEAKS, EXIT_OK, EXIT_USAGE, CliError, count, is_runner_frame
from .stats import show_statistics, totals
from .term import Progress, Terminal

#: Frames kept per traceback when tracing a program (``--nframe``).
DEFAULT_RUN_NFRAME = 10

#: Status of a program ended by KeyboardInterrupt, as a shell reports it.
EXIT_INTERRUPTED = 128 + int(signal.SIGINT)

_SNAPSHOT_SIGNAL = getattr(signal, "SIGUSR1", None)

EPILOG = """\
examples:
  leakguard run app.py --port 8000        trace app.py; at exit, save
                                          leakguard-app-<pid>.lgsnap and show
                                          the lines holding the most memory
  leakguard run -o app.lgsnap -m mypkg.tool --verbose
                                          run a module, save to app.lgsnap
  leakguard run --hunt 5 job.py           run job.py 2 + 5 times and report
                                          what grows (exit status 1 if it leaks)

Options go before the script (or -m module); everything after it is the
program's. While it runs, 'kill -USR1 <pid>' saves a numbered snapshot
(app.1.lgsnap, app.2.lgsnap, ...) and the program carries on; on SIGTERM the
snapshot is saved before the program dies. See docs/cli.md for exit statuses.
"""


class Target:
    """The program to run: a script path or a module name, and its arguments."""

    def __init__(self, script: Optional[str], module: Optional[str], args: List[str]) -> None:
        self.script = script
        self.module = module
        self.args = args

    @property
    def argv(self) -> List[str]:
        """``sys.argv`` for the program (runpy puts a module's file in ``argv[0]``)."""
        return [self.script or self.module or "", *self.args]

    @property
    def command(self) -> List[str]:
        """The command line as the user would type it to Python."""
        if self.module is not None:
            return ["-m", self.module, *self.args]
        return [self.script or "", *self.args]

    @property
    def stem(self) -> str:
        if self.module is not None:
            return self.module.rsplit(".", 1)[-1]
        name = os.path.basename(self.script or "")
        return os.path.splitext(name)[0] or "program"

    def check(self) -> None:
        """A :class:`CliError` when there is nothing runnable at the target."""
        if self.script is not None:
            if os.path.isdir(self.script):
                if not os.path.exists(os.path.join(self.script, "__main__.py")):
                    raise CliError(f"cannot run {self.script!r}: no __main__.py in the directory")
            elif not os.path.isfile(self.script):
                reason = "No such file" if not os.path.exists(self.script) else "not a file"
                raise CliError(f"cannot run {self.script!r}: {reason}")
            return
        name = self.module or ""
        try:
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.submodule_search_locations is not None:
                spec = importlib.util.find_spec(f"{name}.__main__")
                if spec is None:
                    raise CliError(
                        f"cannot run module {name!r}: it is a package with no __main__ module"
                    )
        except CliError:
            raise
        except Exception as error:  # what the import of a parent package raised, too
            raise CliError(f"cannot run module {name!r}: {error}") from None
        if spec is None:
            raise CliError(f"cannot run module {name!r}: no module of that name")

    def prepare(self) -> None:
        """``sys.argv`` and ``sys.path[0]`` as Python sets them for the program."""
        sys.argv = self.argv
        if not getattr(sys.flags, "safe_path", False) and sys.path:
            if self.script is not None:
                sys.path[0] = os.path.dirname(os.path.realpath(self.script))
            else:
                sys.path[0] = os.getcwd()

    def run_once(self) -> Dict[str, Any]:
        """Run the program as ``__main__``; its globals when it returns."""
        if self.module is not None:
            return runpy.run_module(self.module, run_name="__main__", alter_sys=True)
        return runpy.run_path(self.script or "", run_name="__main__")


def show_program_error(error: BaseException) -> None:
    """Print an uncaught exception as Python does at exit (through
    ``sys.excepthook``), without the frames of the machinery that ran it."""
    tb: Optional[TracebackType] = error.__traceback__
    while tb is not None and is_runner_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    flush(sys.stdout)
    # The interpreter's hook prints the exception's own traceback: trim that.
    sys.excepthook(type(error), error.with_traceback(tb), tb)


def exit_status(code: object) -> int:
    """The exit status of ``SystemExit(code)``, as Python computes it (a code
    that is not an int or None is printed to stderr, and the status is 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    flush(sys.stdout)
    print(code, file=sys.stderr)
    return 1


def flush(stream: Any) -> None:
    """Flush one of the program's streams, which it may have closed or replaced."""
    try:
        stream.flush()
    except Exception:  # whatever the program left there
        pass


def numbered(path: str, n: int) -> str:
    """``app.lgsnap`` -> ``app.<n>.lgsnap``."""
    root, ext = os.path.splitext(path)
    return f"{root}.{n}{ext}"


def _say(text: str) -> None:
    """A line on stderr, written without Python's buffered stream: safe from a
    signal handler that interrupted the program in the middle of a write."""
    data = (text + "\n").encode(errors="replace")
    while data:
        try:
            written = os.write(2, data)
        except InterruptedError:  # pragma: no cover - retried by Python already
            continue
        except OSError:
            return
        data = data[written:]


class Recorder:
    """Takes and writes the program's snapshots: at exit, on SIGUSR1 (numbered
    files, the program carries on), on SIGTERM (then the program dies of it)."""

    def __init__(self, target: Target, output: str) -> None:
        self.target = target
        self.output = output
        self.taken = 0
        self._pending = 0
        self._busy = False
        self._saved: List[Tuple[int, Any]] = []

    def snapshot(self, moment: str) -> Optional[Snapshot]:
        """A snapshot of what the program holds now (None if it stopped
        tracing), with what it was taken of; leakguard's work left untraced."""
        # Not ``with unrecorded()``: creating that object would be recorded.
        was = native._pause_thread(True)
        try:
            if not native.is_tracing():
                return None
            snapshot = take_snapshot()
            snapshot.leakguard_run = {  # type: ignore[attr-defined]
                "command": self.target.command,
                "pid": os.getpid(),
                "moment": moment,
                "time": datetime.datetime.now().isoformat(timespec="seconds"),
            }
            return snapshot
        finally:
            native._pause_thread(was)

    def save(self, snapshot: Snapshot, path: str) -> bool:
        was = native._pause_thread(True)
        try:
            snapshot.dump(path)
        except OSError as error:
            _say(f"leakguard: error: cannot write snapshot {path!r}: {error.strerror or error}")
            return False
        finally:
            native._pause_thread(was)
        return True

    def install(self) -> None:
        wanted: List[Tuple[int, Callable[[int, Optional[FrameType]], None]]] = [
            (int(signal.SIGTERM), self._on_terminate)
        ]
        if _SNAPSHOT_SIGNAL is not None:
            wanted.append((int(_SNAPSHOT_SIGNAL), self._on_snapshot_signal))
        for signum, handler in wanted:
            self._saved.append((signum, signal.signal(signum, handler)))

    def uninstall(self) -> None:
        for signum, previous in self._saved:
            # Only ours go back: a handler the program installed stays.
            if signal.getsignal(signum) in (self._on_terminate, self._on_snapshot_signal):
                signal.signal(signum, previous)
        self._saved = []

    def _on_snapshot_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        # Python runs this in the main thread between two bytecodes of the
        # program; a signal arriving while a snapshot is written is served
        # by the loop once that one is done. Nothing here is recorded.
        was = native._pause_thread(True)
        try:
            self._pending += 1
            if self._busy:
                return
            self._busy = True
            try:
                while self._pending:
                    self._pending -= 1
                    self.taken += 1
                    path = numbered(self.output, self.taken)
                    snapshot = self.snapshot(f"on SIGUSR1 (#{self.taken}) of")
                    if snapshot is None:
                        _say("leakguard: SIGUSR1: the program stopped tracing, no snapshot")
                    elif self.save(snapshot, path):
                        _say(f"leakguard: snapshot #{self.taken} written to {path}")
                    del snapshot
            finally:
                self._busy = False
        finally:
            native._pause_thread(was)

    def _on_terminate(self, signum: int, frame: Optional[FrameType]) -> None:
        native._pause_thread(True)  # for good: the process ends here
        name = signal.Signals(signum).name
        snapshot = self.snapshot(f"on {name} to")
        if snapshot is not None and self.save(snapshot, self.output):
            _say(f"leakguard: {name}: snapshot written to {self.output}")
        # Then end as the program would have without leakguard: killed by the signal.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # pragma: no cover - the signal is not blocked


def _wait_for_threads() -> None:
    """Wait for the program's non-daemon threads, as the interpreter would
    before exiting."""
    main = threading.main_thread()
    was = native._pause_thread(True)
    try:
        threads = [t for t in threading.enumerate() if t is not main and not t.daemon]
    finally:
        native._pause_thread(was)
    for thread in threads:
        thread.join()


def _run_program(target: Target) -> Tuple[int, Optional[BaseException], Any]:
    """Run the program once: (exit status, uncaught exception or None, what
    to keep alive until the snapshot)."""
    try:
        kept: Any = target.run_once()
    except SystemExit as error:
        return exit_status(error.code), None, None
    except KeyboardInterrupt as error:
        return EXIT_INTERRUPTED, error, None
    except BaseException as error:  # noqa: B036 - the program's, shown as Python would
        return 1, error, None
    try:
        _wait_for_threads()
    except KeyboardInterrupt as error:
        return EXIT_INTERRUPTED, error, kept
    return EXIT_OK, None, kept


class RunCommand:
    name = "run"
    help = "trace a program, save a snapshot when it ends; --hunt: find its leaks"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.usage = "%(prog)s [options] (script.py | -m module) [args ...]"
        parser.description = (
            "Run a Python program with leakguard tracing its allocations. When it ends, "
            "save a snapshot and show the lines holding the most memory; with --hunt, "
            "run it round after round and report what keeps growing."
        )
        parser.epilog = EPILOG
        parser.add_argument(
            "script", nargs="?", help="the Python file to run (or a directory with __main__.py)"
        )
        parser.add_argument("args", nargs="*", help="the program's arguments")
        parser.add_argument(
            "-m",
            dest="module",
            metavar="module",
            help="run a module as 'python -m' does (ends the options, like -m of python)",
        )
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help="where to save the snapshot (default: leakguard-<name>-<pid>.lgsnap "
            "in the working directory)",
        )
        parser.add_argument(
            "--nframe",
            type=count(1, 65535),
            metavar="N",
            help=f"frames kept per traceback (default {DEFAULT_RUN_NFRAME}; "
            f"with --hunt, {DEFAULT_NFRAME})",
        )
        parser.add_argument(
            "--limit",
            type=count(0),
            default=10,
            metavar="N",
            help="show the N lines holding the most memory at exit (default 10; 0: all)",
        )
        parser.add_argument(
            "--hunt",
            type=count(1),
            metavar="ROUNDS",
            help="instead: run the program ROUNDS times after the warm-up and report "
            "what grows round after round (exit status 1 if something leaks)",
        )
        parser.add_argument(
            "--warmup",
            type=count(0),
            metavar="N",
            help="with --hunt: runs before the judged rounds (default 2)",
        )

    @staticmethod
    def split_argv(
        parser: argparse.ArgumentParser, tokens: List[str]
    ) -> Tuple[List[str], List[str]]:
        """``tokens`` (what follows ``run``) cut where the program starts:
        (leakguard's options and the script or ``-m module``, the program's
        arguments). The program's own options are never read as leakguard's."""
        actions = parser._option_string_actions
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token == "--":
                return tokens[: i + 2], tokens[i + 2 :]
            if token == "-m":
                return tokens[: i + 2], tokens[i + 2 :]
            if token.startswith("-m") and not token.startswith("--"):
                return tokens[: i + 1], tokens[i + 1 :]  # -mmodule
            if token.startswith("-") and token != "-":
                long = token.startswith("--")
                name = token.split("=", 1)[0] if long else token[:2]
                action = actions.get(name)
                attached = "=" in token if long else len(token) > 2
                if action is not None and action.nargs != 0 and not attached:
                    i += 2
                else:
                    i += 1
                continue
            return tokens[: i + 1], tokens[i + 1 :]
        return tokens, []

    def run(self, args: argparse.Namespace) -> int:
        if (args.script is None) == (args.module is None):
            raise CliError("run needs a script to run, or -m and a module name")
        target = Target(args.script, args.module, list(args.args))
        if args.hunt is not None:
            if args.output is not None:
                raise CliError("--hunt writes no snapshot: leave out -o/--output")
            return self._hunt(target, args)
        if args.warmup is not None:
            raise CliError("--warmup is for --hunt")
        # Named as given, written where it pointed before the program could chdir.
        name = args.output or f"leakguard-{target.stem}-{os.getpid()}.lgsnap"
        output = os.path.abspath(name)
        if not os.path.isdir(os.path.dirname(output)):
            raise CliError(f"cannot write the snapshot to {name!r}: no such directory")
        return self._trace(target, name, output, args)

    def _trace(self, target: Target, name: str, output: str, args: argparse.Namespace) -> int:
        recorder = Recorder(target, output)
        target.prepare()
        recorder.install()
        start(args.nframe or DEFAULT_RUN_NFRAME)
        try:
            try:
                # Traced: finding a module imports its parent packages.
                target.check()
            except CliError:
                native.stop()
                raise
            status, error, kept = _run_program(target)
            snapshot = recorder.snapshot("at exit of")
        finally:
            recorder.uninstall()
        del kept
        if native.is_tracing():
            native.stop()
        # Saved before anything is printed: a program that closed or replaced
        # its standard streams still gets its snapshot.
        saved = snapshot is not None and recorder.save(snapshot, output)
        if error is not None:
            show_program_error(error)
            del error
        flush(sys.stdout)
        term = Terminal(sys.stderr, args.color)
        if snapshot is None:
            term.line("leakguard: the program stopped tracing: no snapshot at exit", "yellow")
            return status
        size, blocks = totals(snapshot)
        term.line()
        term.line(
            f"leakguard: {_format_size(size, False)} in {blocks:,} "
            f"block{'s' if blocks != 1 else ''} alive at exit of {' '.join(target.command)}",
            "bold",
        )
        stats = snapshot.statistics("lineno")
        show_statistics(term, stats, "lineno", (size, blocks), args.limit, False)
        if not saved:
            return status or EXIT_USAGE
        term.line(f"leakguard: snapshot written to {name}")
        return status

    def _hunt(self, target: Target, args: argparse.Namespace) -> int:
        target.check()
        target.prepare()
        argv = target.argv
        term = Terminal(sys.stderr, args.color)
        bar = Progress(sys.stderr, term.style)
        labels = {
            "warmup": "leakguard: warm-up",
            "rounds": "leakguard: round",
            "exact": "leakguard: round, exact",
        }

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(labels.get(stage, "leakguard: analysing"), done, total)

        def one_run() -> None:
            sys.argv = list(argv)
            try:
                target.run_once()
            except SystemExit as error:
                if error.code not in (None, 0):
                    raise

        try:
            report = run_hunt(
                one_run,
                (),
                {},
                rounds=args.hunt,
                warmup=2 if args.warmup is None else args.warmup,
                nframe=args.nframe or DEFAULT_NFRAME,
                progress=progress,
            )
        except SystemExit as error:
            bar.close()
            status = exit_status(error.code)
            term.line(f"leakguard: the program exited with status {status}: no report", "yellow")
            return status
        except KeyboardInterrupt as error:
            bar.close()
            show_program_error(error)
            return EXIT_INTERRUPTED
        except BaseException as error:  # noqa: B036 - the program's, shown as Python would
            bar.close()
            show_program_error(error)
            term.line("leakguard: the program failed during the hunt: no report", "yellow")
            return 1
        bar.close()
        flush(sys.stdout)
        style = term.style
        lines = str(report).rstrip("\n").split("\n")
        term.line()
        term.line(lines[0], "bold red" if report.leaking else "bold green")
        for text in lines[1:]:
            term.line(style(text, "bold") if text.startswith("#") else text)
        return EXIT_LEAKS if report.leaking else EXIT_OK

"""The command line, run as a user runs it: ``python -m leakguard`` in a
subprocess, on real scripts, real snapshot files, real signals and a real
pseudo-terminal."""

from __future__ import annotations

import gzip
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import leakguard
from leakguard._cli import main, parse
from leakguard._cli.term import use_color

POSIX_SIGNALS = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")

ALLOC = """\
import sys
print("argv", sys.argv)
print("path0", sys.path[0])
print("name", __name__)
data = [bytearray(1000) for _ in range(500)]  # BIG
words = {str(i): i for i in range(2000)}
"""

# Imported by LEAKY: a module stays in sys.modules from round to round, so
# what it holds accumulates as a real program's state does.
STORE = "ITEMS = []\n"

LEAKY = """\
import store
store.ITEMS.append(bytearray(20_000))  # LEAK
scratch = [bytearray(100) for _ in range(50)]
"""

STEADY = """\
import sys
scratch = [bytearray(100) for _ in range(50)]
sys.exit(0)
"""

SERVER = """\
import time
keep = []
def grow():
    keep.append(bytearray(10_000))  # GROWS
grow()  # something to see in the first snapshot, whenever it comes
print("ready", flush=True)
while True:
    grow()
    time.sleep(0.005)
"""


def environment(**extra: str) -> Dict[str, str]:
    """The test's environment (PYTHONPATH included) without colour settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    env.update(extra)
    return env


def cli(
    *args: str, cwd: Path, env: Optional[Dict[str, str]] = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leakguard", *args],
        cwd=cwd,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def line_of(path: Path, tag: str) -> int:
    hits = [i for i, t in enumerate(path.read_text().splitlines(), 1) if t.endswith(f"# {tag}")]
    assert len(hits) == 1
    return hits[0]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def snapshots(tmp_path: Path) -> Dict[str, Path]:
    """Two snapshot files written by ``leakguard run``: a small program and
    the same with a big allocation more."""
    write(tmp_path / "small.py", "keep = [bytearray(100) for _ in range(10)]\n")
    write(tmp_path / "alloc.py", ALLOC)
    for name in ("small", "alloc"):
        done = cli("run", "-o", f"{name}.lgsnap", f"{name}.py", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    return {"old": tmp_path / "small.lgsnap", "new": tmp_path / "alloc.lgsnap"}


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("leakguard: error: ")
    return lines[0]


# --- help, version, parsing -----------------------------------------------------


@pytest.mark.parametrize("command", [[], ["run"], ["stats"], ["diff"], ["export"]])
def test_help(tmp_path: Path, command: List[str]) -> None:
    done = cli(*command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: leakguard {' '.join(command)}".rstrip())
    assert "examples:" in done.stdout or "exit status:" in done.stdout


def test_version(tmp_path: Path) -> None:
    done = cli("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"leakguard {leakguard.__version__}"


def test_run_leaves_the_programs_options_to_it() -> None:
    args = parse(["--color", "never", "run", "--limit", "3", "-m", "pkg.mod", "--limit", "x"])
    assert (args.module, args.limit, args.args, args.color) == (
        "pkg.mod",
        3,
        ["--limit", "x"],
        "never",
    )
    args = parse(["run", "--nframe=4", "-o", "out", "app.py", "-o", "y", "--", "z"])
    assert (args.script, args.nframe, args.output) == ("app.py", 4, "out")
    assert args.args == ["-o", "y", "--", "z"]


def test_color_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), open(os.devnull, "w")  # noqa: SIM115
    try:
        for var in ("NO_COLOR", "FORCE_COLOR", "TERM"):
            monkeypatch.delenv(var, raising=False)
        assert use_color("auto", tty) and not use_color("auto", pipe)  # type: ignore[arg-type]
        assert use_color("always", pipe) and not use_color("never", tty)  # type: ignore[arg-type]
        monkeypatch.setenv("FORCE_COLOR", "1")
        assert use_color("auto", pipe) and not use_color("never", pipe)
        monkeypatch.setenv("NO_COLOR", "1")
        assert not use_color("auto", tty) and use_color("always", tty)  # type: ignore[arg-type]
        monkeypatch.delenv("NO_COLOR")
        monkeypatch.delenv("FORCE_COLOR")
        monkeypatch.setenv("TERM", "dumb")
        assert not use_color("auto", tty)  # type: ignore[arg-type]
    finally:
        pipe.close()


# --- run --------------------------------------------------------------------------


def test_run_script(tmp_path: Path) -> None:
    script = write(tmp_path / "alloc.py", ALLOC)
    done = cli("run", "-o", "out.lgsnap", "alloc.py", "x", "--limit", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "argv ['alloc.py', 'x', '--limit', '3']" in done.stdout
    assert f"path0 {tmp_path.resolve()}" in done.stdout
    assert "name __main__" in done.stdout
    big = line_of(script, "BIG")
    assert f"alloc.py:{big}" in done.stderr
    assert "data = [bytearray(1000) for _ in range(500)]" in done.stderr
    assert "snapshot written to out.lgsnap" in done.stderr
    top = leakguard.Snapshot.load(tmp_path / "out.lgsnap").statistics("lineno")[0]
    assert (Path(top.traceback[0].filename).name, top.traceback[0].lineno) == ("alloc.py", big)
    assert top.size >= 500 * 1000


def test_run_default_output_and_limit(tmp_path: Path) -> None:
    write(tmp_path / "alloc.py", ALLOC)
    done = cli("run", "--limit", "1", "alloc.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = list(tmp_path.glob("leakguard-alloc-*.lgsnap"))
    assert len(written) == 1
    assert f"snapshot written to {written[0].name}" in done.stderr
    assert "more lines" in done.stderr and "total" in done.stderr
    leakguard.Snapshot.load(written[0])


def test_run_module(tmp_path: Path) -> None:
    (tmp_path / "mypkg").mkdir()
    write(tmp_path / "mypkg" / "__init__.py", "")
    tool = write(tmp_path / "mypkg" / "tool.py", ALLOC)
    done = cli("run", "-o", "m.lgsnap", "-m", "mypkg.tool", "--flag", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"argv [{str(tool.resolve())!r}, '--flag']" in done.stdout
    assert "name __main__" in done.stdout
    assert f"tool.py:{line_of(tool, 'BIG')}" in done.stderr
    leakguard.Snapshot.load(tmp_path / "m.lgsnap")


@pytest.mark.parametrize(
    "body, status, shown",
    [
        ("import sys\nkeep = bytearray(5000)\nsys.exit(7)\n", 7, None),
        ("import sys\nsys.exit('goodbye')\n", 1, "goodbye"),
        (
            "def f():\n    big = bytearray(10**6)\n    raise ValueError('boom')\nf()\n",
            1,
            "ValueError: boom",
        ),
    ],
)
def test_run_passes_on_the_programs_status(
    tmp_path: Path, body: str, status: int, shown: Optional[str]
) -> None:
    write(tmp_path / "prog.py", body)
    done = cli("run", "-o", "p.lgsnap", "prog.py", cwd=tmp_path)
    assert done.returncode == status, done.stderr
    if shown:
        assert shown in done.stderr
    if "Traceback" in done.stderr:
        # As Python shows it: from the program's first frame, not leakguard's or runpy's.
        trace = done.stderr.split("Traceback (most recent call last):\n", 1)[1]
        trace = trace.split("ValueError: boom")[0]
        assert trace.startswith('  File "prog.py", line 4, in <module>'), trace
        assert "runpy" not in trace and "leakguard" not in trace
    assert "snapshot written to p.lgsnap" in done.stderr
    leakguard.Snapshot.load(tmp_path / "p.lgsnap")


def test_run_saves_when_the_program_closed_its_stdout(tmp_path: Path) -> None:
    write(tmp_path / "closer.py", "import sys\nx = bytearray(5000)\nsys.stdout.close()\n")
    done = cli("run", "-o", "c.lgsnap", "closer.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "snapshot written to c.lgsnap" in done.stderr
    leakguard.Snapshot.load(tmp_path / "c.lgsnap")


def test_run_hunt_finds_the_leaking_line(tmp_path: Path) -> None:
    write(tmp_path / "store.py", STORE)
    script = write(tmp_path / "leaky.py", LEAKY)
    done = cli("run", "--hunt", "3", "leaky.py", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "1 leaking site" in done.stderr
    assert f"leaky.py:{line_of(script, 'LEAK')}" in done.stderr
    assert "store.ITEMS.append(bytearray(20_000))" in done.stderr
    assert "held by: store.ITEMS" in done.stderr
    assert not list(tmp_path.glob("*.lgsnap"))


def test_run_hunt_without_leak(tmp_path: Path) -> None:
    write(tmp_path / "steady.py", STEADY)
    done = cli("run", "--hunt", "3", "--warmup", "1", "steady.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no leaks in 3 rounds after 1 warm-up" in done.stderr


def test_run_hunt_module(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "store.py", STORE)
    job = write(tmp_path / "app" / "job.py", LEAKY.replace("import store", "from app import store"))
    done = cli("run", "--hunt", "3", "-m", "app.job", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"job.py:{line_of(job, 'LEAK')}" in done.stderr


def test_run_hunt_program_failure(tmp_path: Path) -> None:
    write(tmp_path / "fails.py", "import sys\nsys.exit(5)\n")
    done = cli("run", "--hunt", "2", "fails.py", cwd=tmp_path)
    assert done.returncode == 5
    assert "exited with status 5" in done.stderr


# --- signals ---------------------------------------------------------------------


def _start_server(tmp_path: Path) -> subprocess.Popen[str]:
    write(tmp_path / "server.py", SERVER)
    # A process started in the background by a shell without job control
    # ignores SIGINT, and so would its children (an ignored signal stays
    # ignored across exec): the program gets the default disposition, as
    # from a terminal.
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = _spawn_server(tmp_path)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def _spawn_server(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "leakguard", "run", "-o", "srv.lgsnap"]
        + ["server.py"],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _communicate(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """The program's stderr once it ends. Should it hang, it is made to
    dump every thread's Python stack (faulthandler, on SIGABRT) and the test
    fails with that dump."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            err = proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
        pytest.fail(f"the program did not end within {timeout} s; its stderr:\n{err}")


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the program ended"
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)


@POSIX_SIGNALS
def test_sigusr1_then_sigterm(tmp_path: Path) -> None:
    proc = _start_server(tmp_path)
    try:
        proc.send_signal(signal.SIGUSR1)
        _wait_for(tmp_path / "srv.1.lgsnap", proc)
        time.sleep(0.2)
        proc.send_signal(signal.SIGUSR1)
        _wait_for(tmp_path / "srv.2.lgsnap", proc)
        time.sleep(0.2)
        assert proc.poll() is None, "SIGUSR1 must leave the program running"
        proc.send_signal(signal.SIGTERM)
        err = _communicate(proc)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test failed
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGTERM, err
    assert "snapshot #1 written to" in err and "snapshot #2 written to" in err
    assert "SIGTERM: snapshot written to" in err
    first = leakguard.Snapshot.load(tmp_path / "srv.1.lgsnap")
    last = leakguard.Snapshot.load(tmp_path / "srv.lgsnap")
    line = line_of(tmp_path / "server.py", "GROWS")

    def grown(snapshot: leakguard.Snapshot) -> int:
        return sum(s.size for s in snapshot.statistics("lineno") if s.traceback[0].lineno == line)

    assert grown(last) > grown(first) > 0
    assert last.leakguard_run["moment"] == "on SIGTERM to"  # type: ignore[attr-defined]
    assert first.leakguard_run["command"] == ["server.py"]  # type: ignore[attr-defined]


@POSIX_SIGNALS
def test_sigint_saves_then_ends_as_python_does(tmp_path: Path) -> None:
    proc = _start_server(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        err = _communicate(proc)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test failed
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "KeyboardInterrupt" in err
    assert "snapshot written to srv.lgsnap" in err
    leakguard.Snapshot.load(tmp_path / "srv.lgsnap")


# --- stats, diff ------------------------------------------------------------------


def test_stats(tmp_path: Path, snapshots: Dict[str, Path]) -> None:
    big = line_of(tmp_path / "alloc.py", "BIG")
    done = cli("stats", "alloc.lgsnap", "--limit", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "taken at exit of `alloc.py`" in out
    header = next(t for t in out.splitlines() if t.lstrip().startswith("Size"))
    assert header.split() == ["Size", "Blocks", "Average", "Share", "Location", "Source"]
    rows = out.split(header, 1)[1].strip("\n").splitlines()
    assert f"alloc.py:{big}" in rows[0] and "bytearray(1000)" in rows[0]
    assert "more lines" in rows[-2] and rows[-1].split()[-1] == "total"
    # aligned: every row's "Location" column starts where the header's does
    column = header.index("Location")
    assert rows[0][column:].startswith("alloc.py:")
    assert "\x1b[" not in out  # a pipe: no colour

    by_file = cli("stats", "alloc.lgsnap", "--key", "filename", "--cumulative", cwd=tmp_path)
    assert by_file.returncode == 0, by_file.stderr
    assert "alloc.py" in by_file.stdout and "runpy" not in by_file.stdout
    tracebacks = cli("stats", "alloc.lgsnap", "--key", "traceback", "--limit", "1", cwd=tmp_path)
    assert tracebacks.returncode == 0, tracebacks.stderr
    assert "#1  " in tracebacks.stdout and f"alloc.py:{big}" in tracebacks.stdout
    assert "_cli" not in tracebacks.stdout  # the runner's frames are left out


def test_diff(tmp_path: Path, snapshots: Dict[str, Path]) -> None:
    big = line_of(tmp_path / "alloc.py", "BIG")
    done = cli("diff", "small.lgsnap", "alloc.lgsnap", "--limit", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [t for t in done.stdout.splitlines() if f"alloc.py:{big}" in t]
    assert rows and "+" in rows[0].split(f"alloc.py:{big}")[0]
    assert done.stdout.splitlines()[-1].startswith("total: ")
    assert "\x1b[" not in done.stdout

    fail = cli("diff", "small.lgsnap", "alloc.lgsnap", "--fail-on-growth", "100 KiB", cwd=tmp_path)
    assert fail.returncode == 1
    assert "more than --fail-on-growth" in fail.stderr
    ok = cli("diff", "small.lgsnap", "alloc.lgsnap", "--fail-on-growth", "100 MB", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    "before, after, env",
    [
        ([], ["--color", "always"], {}),
        (["--color=always"], [], {}),  # before the command
        ([], [], {"FORCE_COLOR": "1"}),
        ([], ["--color", "always"], {"NO_COLOR": "1"}),  # the option wins
    ],
)
def test_colour_when_asked(
    tmp_path: Path,
    snapshots: Dict[str, Path],
    before: List[str],
    after: List[str],
    env: Dict[str, str],
) -> None:
    args = [*before, "diff", "small.lgsnap", "alloc.lgsnap", *after]
    done = cli(*args, cwd=tmp_path, env=environment(**env))
    assert done.returncode == 0, done.stderr
    assert "\x1b[1;31m+" in done.stdout  # growth in red


def test_no_colour_with_no_color(tmp_path: Path, snapshots: Dict[str, Path]) -> None:
    done = cli(
        "stats", "alloc.lgsnap", cwd=tmp_path, env=environment(NO_COLOR="1", FORCE_COLOR="1")
    )
    assert done.returncode == 0 and "\x1b[" not in done.stdout


def test_pseudo_terminal_shows_colour_and_progress(tmp_path: Path) -> None:
    write(tmp_path / "store.py", STORE)
    write(tmp_path / "leaky.py", LEAKY)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leakguard", "run", "--hunt", "3", "leaky.py"],
        cwd=tmp_path,
        env=environment(TERM="xterm"),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=60) == 1
    finally:
        os.close(primary)
        if proc.poll() is None:  # pragma: no cover - only when the test failed
            proc.kill()
            proc.wait()
    text = output.decode("utf-8", "replace")
    assert "\r\x1b[Kleakguard: round" in text and "3/3" in text  # the progress bar
    assert "\x1b[1;31mleakguard hunt: 1 leaking site" in text  # the verdict, in red


# --- bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        (["stats", "missing.lgsnap"], "cannot read snapshot 'missing.lgsnap': No such file"),
        (["stats", "truncated.lgsnap"], "cannot read snapshot 'truncated.lgsnap': truncated"),
        (["stats", "corrupt.lgsnap"], "cannot read snapshot 'corrupt.lgsnap': checksum"),
        (["stats", "text.txt"], "cannot read snapshot 'text.txt': not a leakguard snapshot"),
        (["diff", "alloc.lgsnap", "missing.lgsnap"], "cannot read snapshot 'missing.lgsnap'"),
        (["export", "missing.lgsnap", "--format", "json", "-o", "x"], "cannot read snapshot"),
        (["stats", "alloc.lgsnap", "--key", "function"], "argument --key: invalid choice"),
        (["diff", "small.lgsnap", "alloc.lgsnap", "--key", "x"], "argument --key: invalid"),
        (["stats", "alloc.lgsnap", "--key", "traceback", "--cumulative"], "--cumulative needs"),
        (["export", "alloc.lgsnap", "--format", "svg", "-o", "x"], "argument --format/-f"),
        (["export", "alloc.lgsnap"], "pass --format or -o OUT"),
        (["stats"], "the following arguments are required: FILE"),
        (["stats", "alloc.lgsnap", "--limit", "-1"], "must be at least 0"),
        (["diff", "small.lgsnap", "alloc.lgsnap", "--fail-on-growth", "lots"], "invalid memory"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "a command is needed"),
        (["run"], "run needs a script"),
        (["run", "nothere.py"], "cannot run 'nothere.py'"),
        (["run", "-m", "no_such_module_here"], "cannot run module 'no_such_module_here'"),
        (["run", "--nframe", "0", "alloc.py"], "argument --nframe"),
        (["run", "-o", "nodir/x.lgsnap", "alloc.py"], "no such directory"),
        (["run", "--hunt", "2", "-o", "x.lgsnap", "alloc.py"], "--hunt writes no snapshot"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, snapshots: Dict[str, Path], args: List[str], expected: str
) -> None:
    data = snapshots["new"].read_bytes()
    (tmp_path / "truncated.lgsnap").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    (tmp_path / "corrupt.lgsnap").write_bytes(bytes(corrupt))
    (tmp_path / "text.txt").write_text("not a snapshot\n")
    line = one_error_line(cli(*args, cwd=tmp_path))
    assert expected in line, line
    assert not list(tmp_path.glob("leakguard-*.lgsnap"))


class _Broken:
    name = "stats"
    help = ""

    def prepare_parser(self, parser: object) -> None:
        pass

    def run(self, args: object) -> int:
        raise RuntimeError("something broke")


def test_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import leakguard._cli as cli_package

    monkeypatch.setattr(cli_package, "COMMANDS", (_Broken(),))
    monkeypatch.delenv("LEAKGUARD_DEBUG", raising=False)
    assert main(["stats"]) == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "leakguard: internal error: RuntimeError: something broke "
        "(rerun with --debug or LEAKGUARD_DEBUG=1 for details)"
    ]
    assert main(["stats", "--debug"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: something broke" in err
    monkeypatch.setenv("LEAKGUARD_DEBUG", "1")
    assert main(["stats"]) == 3
    assert "Traceback" in capsys.readouterr().err


# --- export -----------------------------------------------------------------------


def _check_export(fmt: str, data: bytes) -> None:
    if fmt == "html":
        assert data.lstrip()[:15].lower() == b"<!doctype html>"
    elif fmt == "pprof":
        assert data[:2] == b"\x1f\x8b"
        gzip.decompress(data)
    else:
        json.loads(data)


@pytest.mark.parametrize("fmt", ["html", "pprof", "speedscope", "json"])
def test_export(tmp_path: Path, snapshots: Dict[str, Path], fmt: str) -> None:
    done = cli("export", "alloc.lgsnap", "--format", fmt, "-o", f"out.{fmt}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"wrote {fmt} to out.{fmt}" in done.stdout
    _check_export(fmt, (tmp_path / f"out.{fmt}").read_bytes())
    diff = subprocess.run(
        [sys.executable, "-m", "leakguard", "export", "alloc.lgsnap", "--base", "small.lgsnap"]
        + ["-f", fmt, "-o", "-"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        timeout=120,
    )
    assert diff.returncode == 0, diff.stderr
    _check_export(fmt, diff.stdout)


def test_export_format_from_the_file_name(tmp_path: Path, snapshots: Dict[str, Path]) -> None:
    done = cli("export", "alloc.lgsnap", "-o", "flame.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _check_export("html", (tmp_path / "flame.html").read_bytes())
    unknown = cli("export", "alloc.lgsnap", "-o", "flame.unknown", cwd=tmp_path)
    assert "cannot tell the export format" in one_error_line(unknown)


# --- the console script -----------------------------------------------------------


def test_console_script(tmp_path: Path) -> None:
    script = shutil.which("leakguard", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the leakguard console script is not installed next to this Python")
    write(tmp_path / "alloc.py", ALLOC)
    done = subprocess.run(
        [script, "run", "-o", "c.lgsnap", "alloc.py", "arg"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "argv ['alloc.py', 'arg']" in done.stdout
    assert f"path0 {tmp_path.resolve()}" in done.stdout
    assert "snapshot written to c.lgsnap" in done.stderr

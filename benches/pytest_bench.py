"""leakguard's pytest plugin on real test suites: wall time and the tests it flags.

    python benches/pytest_bench.py                          # every suite, 3 reps per mode
    python benches/pytest_bench.py --modes traced,leakguard  # without the (slow) hunt
    python benches/pytest_bench.py --package toolz --reps 1
    python benches/pytest_bench.py --package more-itertools --extra="-k Chunked" --keep

Each suite is a third-party pure-Python package's own tests, at a pinned version from the
package index, installed with this interpreter's pip (``pip install --target``) into a cache
under ``benches/.cache/`` that later runs reuse; no virtualenv is made, and nothing goes into the
interpreter's own site-packages. The children find the package through ``PYTHONPATH`` and
leakguard and pytest in the interpreter's environment.

Every run is a fresh ``python -m pytest -p no:cacheprovider -q`` timed from outside with
``time.perf_counter()`` (interpreter start, collection and the tests), in four modes: *plain*
(no leakguard option), *traced* (the core's tracing alone: ``leakguard.start(16)`` before
``pytest.main``, no plugin option — the yardstick for the plugin's own cost), *leakguard*
(``--leakguard``: every test traced and probed, a summary of the tests and lines that allocated
most) and *hunt* (``--leakguard-hunt=3``: every test run 3 rounds after 2 warm-up runs, failed
if its memory grows). Runs are interleaved (plain, traced, leakguard, hunt, plain, ...) for
``--reps`` repetitions and the median wall time of each mode is reported, with its ratio to
plain. Per-test outcomes come from ``--junitxml``: a test *flagged* by a mode
is one that fails there but passed in every plain run; each is listed with the first line of
its failure. Tests that fail in the plain run already are listed apart and are not flags.
A leakguard without the pytest plugin leaves its modes pending; the plain mode runs regardless.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from _report import describe, format_table, machine_facts
from _tracers import child_env, probe

BENCHES = Path(__file__).resolve().parent
CACHE = BENCHES / ".cache" / "pytest_bench"
DEFAULT_REPS = 3
TIMEOUT_S = 3600.0
HUNT_ROUNDS = 3
# Mode name -> the pytest options that select it.
MODES: Dict[str, Tuple[str, ...]] = {
    "plain": (),
    "traced": (),
    "leakguard": ("--leakguard",),
    "hunt": (f"--leakguard-hunt={HUNT_ROUNDS}",),
}
NO_PLUGIN = "this leakguard has no pytest plugin"
# The core's tracing alone, started before pytest (nframe as the plugin's
# default), with no plugin option: what --leakguard is compared with.
TRACED_LAUNCHER = (
    "import sys, leakguard, pytest; leakguard.start(16); sys.exit(pytest.main(sys.argv[1:]))"
)
LABELS = {"plain": "plain", "traced": "traced (start(16))"}


def label_of(mode: str) -> str:
    return LABELS.get(mode) or " ".join(MODES[mode])


@dataclass(frozen=True)
class Suite:
    """A package from the index whose own tests are run.

    ``tests_in_sdist``: the tests ship in the source distribution only, and are copied from it
    into the suite's directory; otherwise they are inside the installed package. ``targets`` are
    what pytest collects, ``rootdir`` is relative to the suite's directory, and ``deselect`` maps
    node ids (relative to rootdir) left out to why.
    """

    name: str
    version: str
    targets: Tuple[str, ...]
    rootdir: str = "."
    tests_in_sdist: bool = False
    deselect: Dict[str, str] = field(default_factory=dict)

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def directory(self) -> Path:
        return CACHE / f"{self.name}-{self.version}"


SUITES: Dict[str, Suite] = {
    suite.name: suite
    for suite in (
        # Functional helpers; tests inside the package (toolz/tests, toolz/sandbox/tests).
        Suite("toolz", "1.2.0", targets=("--pyargs", "toolz"), rootdir="site"),
        # Iterator recipes; unittest-style tests in the sdist. 10.8.0 still supports Python 3.9,
        # as leakguard does (11.2.1 needs 3.11).
        # Caches of every kind (LRU, LFU, TTL, FIFO, decorators): what a leak hunt must not
        # flag. unittest-style tests in the sdist; some keep state on their TestCase instance.
        Suite("cachetools", "5.5.0", targets=("tests",), tests_in_sdist=True),
        Suite(
            "more-itertools",
            "10.8.0",
            targets=("tests",),
            tests_in_sdist=True,
            deselect={
                "tests/test_recipes.py::PrimeFunctionTests::test_primes": (
                    "about 12 s of the suite's 17 s in one loop (10,000 subtests calling "
                    "nth_prime), which would make every ratio that one test's"
                ),
            },
        ),
    )
}

Run = Dict[str, Any]
# (classname::name) -> (outcome, message, full failure text)
Outcomes = Dict[str, Tuple[str, str, str]]


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args, "--no-input", "--disable-pip-version-check"]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stdout}{proc.stderr}")


def extract_tests(sdist: Path, into: Path) -> int:
    """Copy the sdist's top-level ``tests/`` into ``into/tests``; the number of files copied."""
    copied = 0
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 3 or parts[1] != "tests" or not member.isfile():
                continue
            if member.name.startswith("/") or ".." in parts:
                raise SystemExit(f"{sdist}: unexpected path {member.name!r}")
            source = archive.extractfile(member)
            assert source is not None
            target = into.joinpath(*parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
            copied += 1
    return copied


def prepare(suite: Suite) -> None:
    """Install ``suite`` into its cache directory unless a finished install is there already.

    Built in a scratch directory beside it and renamed into place once complete, so an
    interrupted set-up is redone, not reused. A collection run at the end checks that the tests
    import, and leaves pytest's rewritten test modules compiled, so that the first timed run
    does not pay for that.
    """
    stamp = suite.directory / ".ready"
    if stamp.is_file() and stamp.read_text().strip() == suite.requirement:
        return
    print(f"setting up {suite.requirement} in {suite.directory}", file=sys.stderr)
    scratch = suite.directory.with_name(suite.directory.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    site = scratch / "site"
    if suite.tests_in_sdist:
        downloads = scratch / "download"
        pip(
            "download", "--no-deps", "--no-binary", ":all:", "-d", str(downloads), suite.requirement
        )
        (sdist,) = downloads.iterdir()
        if extract_tests(sdist, scratch) == 0:
            raise SystemExit(f"{sdist.name} has no tests/ directory")
        pip("install", "--no-deps", "--target", str(site), str(sdist))
        shutil.rmtree(downloads)
    else:
        pip("install", "--no-deps", "--target", str(site), suite.requirement)
    # An ini file of its own, so that pytest neither reads this repository's settings nor
    # goes looking above the cache for some.
    (scratch / "pytest.ini").write_text(
        f"# {suite.requirement}: pytest_bench.py's own settings\n[pytest]\n"
    )
    shutil.rmtree(suite.directory, ignore_errors=True)
    scratch.rename(suite.directory)
    proc = subprocess.run(
        pytest_command(suite, "plain", ["--collect-only"]),
        capture_output=True,
        text=True,
        cwd=suite.directory,
        env=suite_env(suite),
        timeout=TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"{suite.requirement}: its tests do not collect:\n{proc.stdout}{proc.stderr}"
        )
    stamp.write_text(suite.requirement + "\n")


def suite_env(suite: Suite) -> Dict[str, str]:
    env = child_env()
    paths = [str(suite.directory / "site"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def pytest_command(suite: Suite, mode: str, extra: Sequence[str]) -> List[str]:
    launcher = ["-c", TRACED_LAUNCHER] if mode == "traced" else ["-m", "pytest"]
    command = [sys.executable, *launcher, "-p", "no:cacheprovider", "-q"]
    command += ["-c", str(suite.directory / "pytest.ini")]
    command += ["--rootdir", str(suite.directory / suite.rootdir)]
    for nodeid in suite.deselect:
        command += ["--deselect", nodeid]
    return [*command, *MODES[mode], *extra, *suite.targets]


def read_junit(path: Path) -> Outcomes:
    """Each test's outcome (passed, failed, error, skipped), message and failure text; a test
    reported more than once (an error in teardown after its call passed) keeps the worst."""
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
    tags = {"failure": "failed", "error": "error", "skipped": "skipped"}
    outcomes: Outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message, text = outcomes.get(key, ("passed", "", ""))
        for child in case:
            tag = tags.get(child.tag)
            if tag is None:
                continue
            if rank[tag] > rank[outcome]:
                outcome, message = tag, child.get("message") or ""
            text += (child.text or "") + "\n"
        outcomes[key] = (outcome, message, text)
    return outcomes


def run_pytest(suite: Suite, mode: str, extra: Sequence[str], out: Path, rep: int) -> Run:
    junit = out / f"{suite.name}-{mode}-{rep + 1}.xml"
    command = pytest_command(suite, mode, [f"--junitxml={junit}", *extra])
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=suite.directory,
            env=suite_env(suite),
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT_S:.0f} s"}
    wall = time.perf_counter() - started
    junit.with_suffix(".log").write_text(proc.stdout + proc.stderr)
    # pytest's exit status: 0 all passed, 1 some failed; anything else is no test run.
    if proc.returncode not in (0, 1) or not junit.is_file():
        if "unrecognized arguments" in proc.stderr and "--leakguard" in proc.stderr:
            return {"error": NO_PLUGIN, "pending": True}
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"error": f"pytest exit status {proc.returncode}: {lines[-1] if lines else ''}"}
    return {"wall_s": wall, "outcomes": read_junit(junit)}


def counts(outcomes: Outcomes) -> str:
    tally = {k: 0 for k in ("passed", "failed", "error", "skipped")}
    for outcome, _, _ in outcomes.values():
        tally[outcome] += 1
    return f"{len(outcomes)} tests (" + ", ".join(f"{n} {k}" for k, n in tally.items() if n) + ")"


def first_line(message: str, text: str, flag: bool = False) -> str:
    """The failure's first line; for a flag, whether leakguard's own report is in it."""
    lines = [line.strip() for line in (message or text).splitlines() if line.strip()]
    shown = lines[0] if lines else "(no message)"
    if flag and "leakguard:" not in message + text:
        shown += "  [no 'leakguard:' in the failure]"
    return shown


def median(values: Sequence[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def report(suite: Suite, runs: Dict[str, List[Run]]) -> Tuple[List[str], List[str]]:
    """The suite's table row, and the lines below the table about it."""
    done = {mode: [r for r in runs[mode] if "wall_s" in r] for mode in MODES}
    walls = {mode: median([r["wall_s"] for r in done[mode]]) for mode in MODES}
    plain_runs = [r["outcomes"] for r in done["plain"]]
    tests = str(len(plain_runs[0])) if plain_runs else "-"
    row = [suite.requirement, tests]
    for mode in MODES:
        wall = walls[mode]
        if wall is None:
            pending = any(r.get("pending") for r in runs[mode])
            row.append("pending" if pending else "failed")
        else:
            row.append(f"{wall:.2f}")
        if mode != "plain":
            base = walls["plain"]
            row.append(f"{wall / base:.2f}x" if wall is not None and base else "-")

    lines = [f"{suite.requirement}:"]
    for nodeid, reason in suite.deselect.items():
        lines.append(f"  deselected {nodeid}: {reason}")
    for mode in MODES:
        label = label_of(mode)
        errors = sorted({r["error"] for r in runs[mode] if "error" in r})
        for error in errors:
            state = "pending" if error == NO_PLUGIN else "error"
            lines.append(f"  {label}: {state}, {error}")
        tallies = [counts(r["outcomes"]) for r in done[mode]]
        if tallies and len(set(tallies)) == 1:
            each = "in 1 run" if len(tallies) == 1 else f"in each of {len(tallies)} runs"
            lines.append(f"  {label}: {tallies[0]} {each}")
        elif tallies:
            lines.append(
                f"  {label}: " + "; ".join(f"run {i}: {t}" for i, t in enumerate(tallies, 1))
            )
    # A test that failed in any plain run was failing before leakguard came into it.
    broken: Dict[str, Tuple[str, str, str]] = {}
    for outcomes in plain_runs:
        for key, result in outcomes.items():
            if result[0] in ("failed", "error") and key not in broken:
                broken[key] = result
    passed = {k for k, (o, _, _) in plain_runs[0].items() if o == "passed"} if plain_runs else set()
    for outcomes in plain_runs[1:]:
        passed &= {k for k, (o, _, _) in outcomes.items() if o == "passed"}
    lines.append(f"  failing in the plain run already: {len(broken) or 'none'}")
    for key, (outcome, message, text) in sorted(broken.items()):
        lines.append(f"    {key} ({outcome}): {first_line(message, text)}")
    for mode in MODES:
        if mode == "plain" or not done[mode]:
            continue
        flagged: Dict[str, List[Tuple[str, str, str]]] = {}
        for outcomes in (r["outcomes"] for r in done[mode]):
            for key, result in outcomes.items():
                if key in passed and result[0] in ("failed", "error"):
                    flagged.setdefault(key, []).append(result)
        label = label_of(mode)
        if not flagged:
            lines.append(f"  {label} flagged: none")
            continue
        lines.append(f"  {label} flagged: {len(flagged)}")
        for key, results in sorted(flagged.items()):
            outcome, message, text = results[0]
            lines.append(
                f"    {key} ({outcome} in {len(results)} of {len(done[mode])} runs): "
                f"{first_line(message, text, flag=True)}"
            )
    return row, lines


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="suites: " + ", ".join(s.requirement for s in SUITES.values()),
    )
    parser.add_argument(
        "--package",
        action="append",
        choices=sorted(SUITES),
        help="a suite to run; repeatable (default: all of them)",
    )
    parser.add_argument(
        "--reps", type=int, default=DEFAULT_REPS, help=f"runs per mode (default {DEFAULT_REPS})"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="modes to run, comma-separated; plain always runs (default: %(default)s)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep each run's junit xml and pytest output"
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="ARGS",
        help='more pytest arguments, for every mode: --extra="-x -k curry"',
    )
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    wanted = {m.strip() for m in args.modes.split(",") if m.strip()} | {"plain"}
    unknown = wanted - set(MODES)
    if unknown:
        parser.error(f"unknown modes {', '.join(sorted(unknown))}: expected {', '.join(MODES)}")
    for mode in [m for m in MODES if m not in wanted]:
        del MODES[mode]  # the report and the runs go by MODES
    args.package = list(dict.fromkeys(args.package or SUITES))
    args.extra = [arg for chunk in args.extra for arg in shlex.split(chunk)]
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    ok, leakguard = probe("leakguard")
    if not ok:
        raise SystemExit(
            f"leakguard does not import and start in {sys.executable} ({leakguard}); "
            "build it first: make build"
        )
    proc = subprocess.run([sys.executable, "-m", "pytest", "--version"], capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"pytest does not run in {sys.executable}: pip install pytest")
    pytest_version = (proc.stdout + proc.stderr).decode().strip()
    suites = [SUITES[name] for name in args.package]
    for suite in suites:
        prepare(suite)

    out = Path(tempfile.mkdtemp(prefix="lg-pytest-bench-"))
    runs: Dict[str, Dict[str, List[Run]]] = {s.name: {m: [] for m in MODES} for s in suites}
    pending: Set[str] = set()
    started = time.perf_counter()
    for rep in range(args.reps):
        for suite in suites:
            for mode in MODES:
                if mode in pending:  # no plugin for the earlier suites: none for this one
                    runs[suite.name][mode].append({"error": NO_PLUGIN, "pending": True})
                    continue
                run = run_pytest(suite, mode, args.extra, out, rep)
                runs[suite.name][mode].append(run)
                if run.get("pending"):
                    pending.add(mode)
                shown = run["error"] if "error" in run else f"{run['wall_s']:.2f} s"
                print(f"  rep {rep + 1} {suite.name:15} {mode:9} {shown}", flush=True)
    elapsed = time.perf_counter() - started

    rows, notes = [], []
    for suite in suites:
        row, lines = report(suite, runs[suite.name])
        rows.append(row)
        notes += lines
    headers = ["package", "tests", "plain s"]
    for mode in MODES:
        if mode != "plain":
            headers += [f"{label_of(mode)} s", "ratio"]
    print(f"\n{describe(machine_facts())}  {args.reps} reps  {elapsed:.0f} s in all")
    print(f"{pytest_version}; leakguard {leakguard}")
    if args.extra:
        print(f"extra pytest arguments: {shlex.join(args.extra)}")
    print("\nMedian wall time of the whole pytest run, and its ratio to plain\n")
    print(format_table(headers, rows))
    print()
    print("\n".join(notes))
    if args.keep:
        print(f"\njunit xml and pytest output kept in {out}")
    else:
        shutil.rmtree(out, ignore_errors=True)
    failed = [
        run
        for by_mode in runs.values()
        for mode_runs in by_mode.values()
        for run in mode_runs
        if "error" in run and not run.get("pending")
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

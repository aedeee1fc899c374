"""The tracers a benchmark can run under, behind one small interface.

stdlib ``tracemalloc`` and ``leakguard`` share tracemalloc's API and differ only in the module;
``memray`` writes a capture file and reports no traced-memory figures; ``untraced`` is the
baseline. Every measurement runs in a fresh interpreter, so a tracer here is started at most once.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional, Protocol

TRACERS: tuple[str, ...] = ("untraced", "tracemalloc", "leakguard", "memray")
# Tracers whose ``start()`` takes a traceback depth; the others run once per workload.
NFRAME_TRACERS: frozenset[str] = frozenset({"tracemalloc", "leakguard"})
DEFAULT_NFRAMES: tuple[int, ...] = (1, 10, 25)

# What a tracer must survive to count as available: imported, started, stopped, in a
# subprocess, so that a half-built extension that crashes cannot take the harness down with it.
# The probe prints the tracer's version and where it was imported from, for the record.
_PROBES: dict[str, str] = {
    "untraced": "import platform; print(platform.python_version())",
    "tracemalloc": "import tracemalloc as t, platform; t.start(1); t.stop(); "
    "print(platform.python_version())",
    "leakguard": "import leakguard as t; t.start(1); t.stop(); "
    "print(getattr(t, '__version__', '?'), t.__file__)",
    "memray": "import memray as t; print(t.__version__, t.__file__)",
}


class Tracer(Protocol):
    def start(self, nframe: int) -> None: ...

    def stop(self) -> None: ...

    def traced_memory(self) -> Optional[tuple[int, int]]:
        """(current, peak) traced bytes, or None if the tracer does not report them."""

    def tracer_memory(self) -> Optional[int]:
        """Bytes the tracer itself uses, as it reports them, or None."""


class Untraced:
    def start(self, nframe: int) -> None:
        pass

    def stop(self) -> None:
        pass

    def traced_memory(self) -> Optional[tuple[int, int]]:
        return None

    def tracer_memory(self) -> Optional[int]:
        return None


class TracemallocApi:
    """A module with tracemalloc's API: the stdlib one, or leakguard."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def start(self, nframe: int) -> None:
        self.module.start(nframe)

    def stop(self) -> None:
        self.module.stop()

    def traced_memory(self) -> Optional[tuple[int, int]]:
        current, peak = self.module.get_traced_memory()
        return int(current), int(peak)

    def tracer_memory(self) -> Optional[int]:
        return int(self.module.get_tracemalloc_memory())

    def take_snapshot(self) -> Any:
        return self.module.take_snapshot()


class MemrayTracer:
    """memray's ``Tracker`` writing to a file in a private temporary directory."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="lg-bench-memray-")
        self._tracker: Any = None
        self.capture_bytes: Optional[int] = None

    def start(self, nframe: int) -> None:
        import memray

        path = os.path.join(self._dir, "capture.bin")
        self._tracker = memray.Tracker(path, native_traces=False)
        self._tracker.__enter__()

    def stop(self) -> None:
        self._tracker.__exit__(None, None, None)
        self.capture_bytes = os.path.getsize(os.path.join(self._dir, "capture.bin"))
        shutil.rmtree(self._dir, ignore_errors=True)

    def traced_memory(self) -> Optional[tuple[int, int]]:
        return None

    def tracer_memory(self) -> Optional[int]:
        return None


def make_tracer(name: str) -> Tracer:
    if name == "untraced":
        return Untraced()
    if name in NFRAME_TRACERS:
        return TracemallocApi(importlib.import_module(name))
    if name == "memray":
        return MemrayTracer()
    raise ValueError(f"unknown tracer {name!r}; expected one of {', '.join(TRACERS)}")


@dataclass(frozen=True)
class Mode:
    """A tracer and, for tracers that take one, the traceback depth it starts with."""

    tracer: str
    nframe: int = 0

    @property
    def label(self) -> str:
        return f"{self.tracer}:{self.nframe}" if self.tracer in NFRAME_TRACERS else self.tracer


def parse_modes(spec: str) -> list[Mode]:
    """``"untraced,tracemalloc:1,leakguard"``; a bare nframe tracer expands to 1, 10 and 25."""
    modes: list[Mode] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, depth = item.partition(":")
        if name not in TRACERS:
            raise ValueError(f"unknown tracer {name!r}; expected one of {', '.join(TRACERS)}")
        if name not in NFRAME_TRACERS:
            if depth:
                raise ValueError(f"{name} takes no traceback depth: {item!r}")
            modes.append(Mode(name))
        elif depth:
            if not depth.isdigit() or int(depth) < 1:
                raise ValueError(f"traceback depth must be a positive integer: {item!r}")
            modes.append(Mode(name, int(depth)))
        else:
            modes.extend(Mode(name, n) for n in DEFAULT_NFRAMES)
    return list(dict.fromkeys(modes))


def probe(tracer: str, python: str = sys.executable) -> tuple[bool, str]:
    """Whether ``tracer`` imports, starts and stops in a fresh ``python``: (True, its version
    and location) or (False, why not)."""
    try:
        proc = subprocess.run(
            [python, "-c", _PROBES[tracer]],
            capture_output=True,
            text=True,
            timeout=120,
            env=child_env(),
        )
    except subprocess.TimeoutExpired:
        return False, "probe timed out"
    if proc.returncode == 0:
        return True, proc.stdout.strip()
    lines = proc.stderr.strip().splitlines()
    return False, lines[-1] if lines else f"probe exited with status {proc.returncode}"


def run_measurement(command: list[str], timeout: float, cwd: str) -> dict[str, Any]:
    """Runs one measurement in a fresh interpreter (``command``, in ``child_env()``): the
    JSON object its last line of output holds, or ``{"error": why}`` when it timed out or
    failed (the last line of its error output)."""
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=child_env()
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def child_env() -> dict[str, str]:
    """The environment of a measurement: no tracing switched on from outside, fixed hashing."""
    env = dict(os.environ)
    env.pop("PYTHONTRACEMALLOC", None)
    env["PYTHONHASHSEED"] = "0"
    return env


def rss_bytes() -> int:
    """Current resident set size (Linux ``/proc``), or peak RSS where that is unavailable."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024

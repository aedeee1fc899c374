"""What the plugin writes: a failed test's memory report, and the run's summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from .._hunter.report import shown_frames
from .._model import Traceback
from .measure import Measured, SiteList
from .sizes import format_size

#: Frames shown per traceback in a failure.
FRAMES_SHOWN = 6


def _sites(title: str, sites: SiteList, tracebacks: int) -> List[str]:
    if not sites.shown:
        return [f"{title}: none of it allocated by the test's own lines"]
    lines = [f"{title}:"]
    for i, s in enumerate(sites.shown):
        lines.append(f"  {format_size(s.size):>10} in {s.count:,} blocks  {s.where}")
        if s.line:
            lines.append(f"        {s.line}")
        shown = shown_frames(Traceback(s.traceback))
        if i < tracebacks and len(shown) > 1:
            lines.append("      allocated at (most recent call first):")
            for text in shown.format(FRAMES_SHOWN, most_recent_first=True):
                lines.append(f"      {text}")
    if sites.lines > len(sites.shown):
        rest = sites.total - sum(s.size for s in sites.shown)
        lines.append(
            f"  ... {sites.lines - len(sites.shown)} more lines, {format_size(rest)} together"
        )
    return lines


def failure_lines(measured: Measured) -> List[str]:
    """The failure text: one ``E`` line per broken rule, then the details."""
    lines = [f"E   leakguard: {f}" for f in measured.failures]
    if any(f.startswith("peak memory") for f in measured.failures):
        lines.append("")
        title = "Lines holding the most memory at the peak"
        lines.extend(_sites(title, measured.peak_sites, 3))
    if any(f.startswith("left ") for f in measured.failures):
        lines.append("")
        title = "Allocated during the test and alive at its end"
        lines.extend(_sites(title, measured.leaked_sites, 3))
    report = measured.report
    if report is not None and report.leaking:
        # The report's own first line is the E line above; the descriptor
        # and cycle blocks only when they have something to say.
        lines.extend(report.format(steady=False)[1:])
    return lines


@dataclass(frozen=True)
class _Crash:
    """What pytest's short summary reads (``-ra``: ``FAILED test - message``)."""

    path: str
    lineno: int
    message: str

    def toterminal(self, tw: Any) -> None:
        tw.line(str(self))

    def __str__(self) -> str:
        # What `--tb=line` prints, as pytest's own crash locations do.
        return f"{self.path}:{self.lineno}: {self.message}"


class FailureRepr:
    """A failed test's ``longrepr``: written in red where it says what broke.

    Crosses xdist's wire as its text (no ``reprtraceback``)."""

    def __init__(self, measured: Measured, path: str, lineno: int) -> None:
        self.lines = failure_lines(measured)
        self.reprcrash = _Crash(path, lineno, "leakguard: " + "; ".join(measured.failures))

    def toterminal(self, tw: Any) -> None:
        for line in self.lines:
            if line.startswith("E   "):
                tw.line(line, red=True, bold=True)
            else:
                tw.line(line)

    def __str__(self) -> str:
        return "\n".join(self.lines)


# ---------------------------------------------------------------------------
# The summary at the end of a run


class Summary:
    """Collects each test's measurements (from its report, so xdist workers'
    results arrive too) and writes the ``leakguard`` section."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.tests: Dict[str, Dict[str, Any]] = {}

    def add(self, nodeid: str, data: Dict[str, Any]) -> None:
        self.tests[nodeid] = data

    def lines(self) -> List[str]:
        if not self.tests:
            return []
        traced = [(d["peak"], n, d) for n, d in self.tests.items() if d.get("peak") is not None]
        traced.sort(key=lambda t: (-t[0], t[1]))
        out: List[str] = []
        if self.top and traced:
            shown = traced[: self.top]
            out.append(
                f"Tests that allocated most (peak traced memory; {len(shown)} of {len(traced)}):"
            )
            for peak, nodeid, d in shown:
                extra = ""
                if d.get("leaked") is not None:
                    extra = f"  (left alive {format_size(d['leaked'])})"
                out.append(f"  {format_size(peak):>10}  {nodeid}{extra}")
                for where, line, size, count in d.get("sites", ()):
                    text = f"      {format_size(size):>10} in {count:,} blocks  {where}"
                    out.append(text + (f"  {line}" if line else ""))
        hunted = [n for n, d in self.tests.items() if d.get("hunted")]
        if hunted:
            leaking = sorted(n for n in hunted if self.tests[n].get("leaking"))
            out.append(
                f"Hunted {len(hunted)} test{'s' if len(hunted) != 1 else ''} for leaks: "
                + (f"{len(leaking)} leaking" if leaking else "none leaking")
            )
            for nodeid in leaking:
                out.append(f"  LEAKING  {nodeid}")
        return out

"""The leak report: what grew, where it was allocated, what holds it.

Plain immutable records; ``str(report)`` is the text a person acts on.
"""

from __future__ import annotations

import os
import runpy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .._errors import LeakError
from .._model import Traceback, _format_size
from .._source import source_line, where
from .sites import NOTEBOOK_PACKAGES, RUNNER_PACKAGES, package_dirs

__all__ = [
    "Holder",
    "LeakSite",
    "OpenDescriptor",
    "ResourceWarningRecord",
    "ResourceReport",
    "CycleReport",
    "LeakReport",
]


_RUNPY = ("<frozen runpy>", os.path.normcase(os.path.splitext(runpy.__file__)[0] + ".py"))


def shown_frames(traceback: Traceback) -> Traceback:
    """The frames of ``traceback`` worth showing: the most recent ones, up to
    the first frame of the machinery that ran the work (leakguard's hunt, a
    test runner's or a notebook kernel's packages when loaded), which only
    ever repeats itself. A frame at the very line of the one before it (a
    comprehension's own frame, before 3.12, on its function's line) is shown
    once."""
    harness = package_dirs(("leakguard", *RUNNER_PACKAGES, *NOTEBOOK_PACKAGES))
    kept: List[Tuple[str, int]] = []
    for frame in reversed(traceback):  # most recent first
        name = os.path.normcase(frame.filename)
        # runpy starts a script or module (``python -m``, ``leakguard run``).
        if name.startswith(harness) or name in _RUNPY:
            break
        if not kept or kept[-1] != (frame.filename, frame.lineno):
            kept.append((frame.filename, frame.lineno))
    return Traceback(tuple(kept) or ((traceback[-1].filename, traceback[-1].lineno),))


def _series(values: Tuple[int, ...], unit: str) -> str:
    if unit == "bytes":
        return " → ".join(_format_size(v, False) for v in values)
    return " → ".join(f"{v:,}" for v in values)


@dataclass(frozen=True)
class Holder:
    """A chain of references from a root to an object allocated at a site.

    ``root`` names where the chain starts (``app.cache``, ``thread
    MainThread: worker() local 'buf'``…), ``kind`` what sort of root it is,
    ``steps`` the references followed (``[1199]``, ``.items``,
    ``['key']``…; ``""`` for a native object's field, which has no name)
    and ``nodes`` a description of each object on the way, the root's value
    first and the object from the site last (``len(nodes) == len(steps) +
    1``). ``bounded`` is true when the chain runs through a container with a
    size limit (``lru_cache(maxsize=…)``, a ``deque`` with ``maxlen``) and
    through no container that can grow above it. ``runner`` is true when the
    chain starts at the machinery that runs the rounds (a test runner's
    reports, fixture cache or frames; kind ``"test runner"``), not in the
    program.
    """

    kind: str
    root: str
    steps: Tuple[str, ...]
    nodes: Tuple[str, ...]
    bounded: bool = False
    runner: bool = False

    def __str__(self) -> str:
        parts = [f"{self.root} ({self.nodes[0]})"]
        for step, node in zip(self.steps, self.nodes[1:]):
            if step:  # "" is a reference with no name (a native object's field)
                parts.append(step)
            parts.append(node)
        return " → ".join(parts)


@dataclass(frozen=True)
class LeakSite:
    """An allocation site whose live memory grew round after round.

    ``sizes`` and ``counts`` are the site's live bytes and blocks after the
    warm-up and after each round; ``rule`` the growth rule it met (see
    :mod:`leakguard._hunter.growth`); ``traceback`` the allocation traceback
    that grew most at this site.
    """

    filename: str
    lineno: int
    line: str
    traceback: Traceback
    sizes: Tuple[int, ...]
    counts: Tuple[int, ...]
    rule: str
    holders: Tuple[Holder, ...] = ()

    @property
    def rounds(self) -> int:
        return len(self.sizes) - 1

    @property
    def growth(self) -> int:
        """Bytes gained from the end of the warm-up to the end of the last round."""
        return self.sizes[-1] - self.sizes[0]

    @property
    def size_per_round(self) -> float:
        return self.growth / max(self.rounds, 1)

    @property
    def count_per_round(self) -> float:
        return (self.counts[-1] - self.counts[0]) / max(self.rounds, 1)

    @property
    def where(self) -> str:
        return where(self.filename, self.lineno)

    def format(self, index: Optional[int] = None, traceback_limit: int = 8) -> List[str]:
        head = f"#{index}  " if index is not None else ""
        lines = [
            f"{head}{self.where}  {_format_size(self.size_per_round, True)} per round "
            f"({_blocks(self.count_per_round)}), {self.rule}"
        ]
        if self.line:
            lines.append(f"      {self.line}")
        else:
            caller = _first_with_source(self.traceback)
            if caller is not None:
                # generated code (a dataclass's __init__, exec'd text): no
                # source of its own; the line that called it is what to read
                lines.append(f"      (no source) called from {where(*caller)}:")
                lines.append(f"      {source_line(*caller)}")
        lines.append(f"    live after each round: {_series(self.sizes, 'bytes')}")
        if self.holders:
            for holder in self.holders:
                lines.append(f"    held by: {holder}")
        else:
            lines.append("    held by: no referrer found (native code, or not a Python object)")
        shown = shown_frames(self.traceback)
        if len(shown) > 1:
            lines.append("    allocated at (most recent call first):")
            for text in shown.format(limit=traceback_limit, most_recent_first=True):
                lines.append(f"    {text}")
        return lines


def _warmup(runs: int, first_rounds: int = 0) -> str:
    """``after 2 warm-up runs``; with ``first_rounds``, the rounds that ran
    before the ones reported (with the free lists on) are named too."""
    first = ""
    if first_rounds:
        first = f"{first_rounds} first round{'s' if first_rounds != 1 else ''}"
    if runs == 0:
        return f"after {first}" if first else "with no warm-up"
    warm = f"{runs} warm-up run{'s' if runs != 1 else ''}"
    return f"after {warm} and {first}" if first else f"after {warm}"


def _blocks(per_round: float) -> str:
    """``+4 blocks``, ``+1 block``; ``no new blocks`` when the site's blocks
    grew in place (a buffer reallocated larger)."""
    n = round(per_round)
    if n == 0:
        return "no new blocks"
    return f"{n:+,} block" if abs(n) == 1 else f"{n:+,} blocks"


def _first_with_source(traceback: Traceback) -> Optional[Tuple[str, int]]:
    """The most recent frame of ``traceback`` whose source line can be read."""
    for frame in reversed(shown_frames(traceback)):
        if source_line(frame.filename, frame.lineno):
            return frame.filename, frame.lineno
    return None


@dataclass(frozen=True)
class OpenDescriptor:
    """A file descriptor opened during the rounds and still open at the end:
    what it points at, the type of the object owning it (empty when no
    Python object does), where that object was allocated."""

    fd: int
    target: str
    owner: str
    traceback: Optional[Traceback]
    site: Optional[Tuple[str, int]]


@dataclass(frozen=True)
class ResourceWarningRecord:
    """``ResourceWarning``s raised during the hunt for objects allocated at
    one site: the first message, how many, where the objects were allocated."""

    message: str
    count: int
    traceback: Optional[Traceback]
    site: Optional[Tuple[str, int]]


@dataclass(frozen=True)
class ResourceReport:
    """Open file descriptors counted after the warm-up and each round (``fds``,
    empty where the platform cannot list them), the descriptors still open that
    were opened during the rounds, and the ``ResourceWarning``s seen."""

    fds: Tuple[int, ...]
    rule: Optional[str]
    leaked: Tuple[OpenDescriptor, ...] = ()
    warnings: Tuple[ResourceWarningRecord, ...] = ()

    @property
    def leaking(self) -> bool:
        return self.rule is not None

    @property
    def quiet(self) -> bool:
        """Nothing to say but "steady": no growth, nothing left open, no warning."""
        return not self.leaking and not self.leaked and not self.warnings and bool(self.fds)

    def format(self) -> List[str]:
        if not self.fds:
            lines = ["Resources: open file descriptors cannot be listed on this platform"]
        else:
            grow = (self.fds[-1] - self.fds[0]) / max(len(self.fds) - 1, 1)
            verdict = f"LEAKING ({grow:+,.1f} per round, {self.rule})" if self.leaking else "steady"
            lines = [f"Resources: open file descriptors {_series(self.fds, 'n')}: {verdict}"]
        by_site: Dict[Tuple[str, int], List[OpenDescriptor]] = {}
        for d in self.leaked:
            by_site.setdefault(d.site or ("<unknown>", 0), []).append(d)
        for (filename, lineno), fds in by_site.items():
            kinds = sorted({d.owner or "descriptor" for d in fds})
            at = where(filename, lineno) if filename != "<unknown>" else "an unknown line"
            lines.append(f"    {len(fds)} still open ({', '.join(kinds)}), opened at {at}")
            src = source_line(filename, lineno)
            if src:
                lines.append(f"        {src}")
            targets = sorted({d.target for d in fds if d.target})
            if targets:
                shown = ", ".join(targets[:3]) + (", …" if len(targets) > 3 else "")
                lines.append(f"        {shown}")
        for w in self.warnings:
            site = w.site
            at = f", allocated at {where(*site)}" if site else ""
            lines.append(f"    ResourceWarning ×{w.count}: {w.message}{at}")
            if site:
                src = source_line(*site)
                if src:
                    lines.append(f"        {src}")
        return lines


@dataclass(frozen=True)
class CycleReport:
    """What only the cycle collector freed, and uncollectable garbage.

    ``collected[i]`` is how many objects the cycle collector freed during
    judged round ``i`` (automatic collections and the hunt's own);
    ``types[i]`` the types of the objects found by the hunt's collection at
    the end of that round. ``uncollectable`` is ``len(gc.garbage)`` after the
    warm-up and after each round, ``uncollectable_types`` the types of what was
    added to it during the rounds.
    """

    collected: Tuple[int, ...]
    types: Tuple[Dict[str, int], ...]
    uncollectable: Tuple[int, ...]
    uncollectable_types: Dict[str, int] = field(default_factory=dict)
    rule: Optional[str] = None

    @property
    def leaking(self) -> bool:
        return self.rule is not None

    @property
    def quiet(self) -> bool:
        """Nothing to say: no cycle freed, nothing uncollectable added."""
        grew = bool(self.uncollectable) and self.uncollectable[-1] > self.uncollectable[0]
        return not self.leaking and not grew and not any(self.collected)

    def format(self) -> List[str]:
        total: Dict[str, int] = {}
        for per_round in self.types:
            for name, n in per_round.items():
                total[name] = total.get(name, 0) + n
        rounds = max(len(self.collected), 1)
        top = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        kinds = ", ".join(f"{name} ×{n / rounds:,.0f}" for name, n in top)
        freed = sum(self.collected) / rounds
        line = f"Cycles: the collector freed {freed:,.0f} objects per round"
        lines = [line + (f" ({kinds})" if kinds else "")]
        if self.uncollectable and self.uncollectable[-1] > self.uncollectable[0]:
            kinds = ", ".join(f"{k} ×{v}" for k, v in sorted(self.uncollectable_types.items()))
            verdict = f"LEAKING ({self.rule})" if self.leaking else "grew"
            lines.append(
                f"    uncollectable (gc.garbage): {_series(self.uncollectable, 'n')}: {verdict}"
                + (f" ({kinds})" if kinds else "")
            )
        else:
            lines.append("    uncollectable (gc.garbage): none added")
        return lines


@dataclass(frozen=True)
class LeakReport:
    """The result of :func:`leakguard.hunt`.

    ``leaks``: sites whose live memory grew round after round, most growth
    first. ``bounded``: sites that grew in every round but are held by a
    container with a size limit that is still filling (an
    ``lru_cache(maxsize=…)``), reported for information, not as leaks.
    ``runner_held``: sites that grew but are held only by the machinery
    running the rounds (a test runner keeping a report per run, a fixture
    set up once and filled by every run): artifacts of the repetition.
    ``resources`` and ``cycles``: descriptors, ``ResourceWarning``s and the
    cycle collector. ``traced``: total traced bytes after the warm-up and each
    round. ``rerun``: the rounds first ran with the interpreter's free lists
    on and something grew, so they ran again with the free lists off, each
    object charged to the line that created it; the report is of that second
    set (``func`` ran ``rounds`` more times).
    """

    rounds: int
    warmup: int
    nframe: int
    duration: float
    traced: Tuple[int, ...]
    leaks: Tuple[LeakSite, ...]
    bounded: Tuple[LeakSite, ...]
    resources: ResourceReport
    cycles: CycleReport
    runner_held: Tuple[LeakSite, ...] = ()
    rerun: bool = False

    @property
    def leaking(self) -> bool:
        """True when memory, descriptors or uncollectable garbage leak."""
        return bool(self.leaks) or self.resources.leaking or self.cycles.leaking

    def raise_if_leaking(self) -> None:
        """Raise :class:`leakguard.LeakError` carrying this report if anything leaks."""
        if self.leaking:
            raise LeakError(self)

    def summary(self) -> str:
        what = []
        if self.leaks:
            n = len(self.leaks)
            what.append(f"{n} leaking site{'s' if n != 1 else ''}")
        if self.resources.leaking:
            what.append("leaking file descriptors")
        if self.cycles.leaking:
            what.append("growing uncollectable garbage")
        found = ", ".join(what) if what else "no leaks"
        return (
            f"leakguard hunt: {found} in {self.rounds} round{'s' if self.rounds != 1 else ''} "
            f"{_warmup(self.warmup, self.rounds if self.rerun else 0)} "
            f"(nframe={self.nframe}, {self.duration:.2f} s)"
        )

    def __str__(self) -> str:
        return "\n".join(self.format()) + "\n"

    def format(self, steady: bool = True) -> List[str]:
        """The report's lines (``str(report)``). ``steady=False`` leaves out
        the file-descriptor and cycle blocks when they have nothing to say
        (what a test runner's failure report shows)."""
        lines = [self.summary(), ""]
        if self.traced:
            lines.append(f"Traced memory after each round: {_series(self.traced, 'bytes')}")
            lines.append("")
        for i, leak in enumerate(self.leaks, 1):
            lines.extend(leak.format(i))
            lines.append("")
        if steady or not self.resources.quiet:
            lines.extend(self.resources.format())
            lines.append("")
        if steady or not self.cycles.quiet:
            lines.extend(self.cycles.format())
        if self.bounded:
            lines.append("")
            lines.append(
                "Growing, but bounded (a size-limited cache still filling, a full one "
                "replacing entries, or spare room in an emptied container): not leaks:"
            )
            for site in self.bounded:
                lines.append(
                    f"    {site.where}  {_format_size(site.size_per_round, True)} per round: "
                    + "; ".join(str(h) for h in site.holders[:1])
                )
        if self.runner_held:
            lines.append("")
            lines.append("Growing, but held only by what runs the rounds (not leaks):")
            for site in self.runner_held:
                lines.append(
                    f"    {site.where}  {_format_size(site.size_per_round, True)} per round: "
                    + "; ".join(str(h) for h in site.holders[:1])
                )
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def _repr_html_(self) -> str:
        from .._notebook.html import leak_report_html

        return leak_report_html(self)

    def to_dataframe(self) -> Any:
        """A ``pandas.DataFrame``, one row per leaking site (``filename``,
        ``lineno``, ``line``, ``size_per_round``, ``count_per_round``,
        ``growth``, ``sizes``, ``counts``, ``rule``, ``holder``, ``traceback``).
        Raises :class:`leakguard.UsageError` naming pandas when it is not installed."""
        from .._notebook.dataframe import leak_report_frame

        return leak_report_frame(self)

"""Profile: the one model every picture and export of leakguard reads.

A snapshot, a diff between two snapshots, a tracked block or a leak report
becomes a :class:`Profile`: a table of code locations (file, line, function)
and a list of samples, each a call stack (indices into the table, outermost
call first) with the bytes and blocks allocated there, and for diffs the
change. The flame graph, the pprof, speedscope and JSON exports, the command
line and the notebook tables all start from it, so a number means the same in
every view.

Identical tracebacks are aggregated before anything is built (the engine groups
them), so the work is proportional to the number of distinct tracebacks, not
to the number of blocks.
"""

from __future__ import annotations

import ast
import linecache
import os
import sys
from bisect import bisect_right
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from ._errors import UsageTypeError
from ._model import Snapshot, Statistic, StatisticDiff, Traceback, _raw_of

if TYPE_CHECKING:
    from ._hunter.report import LeakReport
    from ._hunter.track import Tracker

__all__ = ["Location", "Sample", "Profile", "profile_of", "function_name"]

#: What a profile describes: live memory, what changed between two snapshots,
#: or what a leak hunt found growing.
KINDS = ("snapshot", "diff", "leaks")


class Location(NamedTuple):
    """A line of code: its file, line number and the function it is in
    (``"<module>"`` at module level, ``""`` when the source is not available)."""

    filename: str
    lineno: int
    function: str


class Sample(NamedTuple):
    """Memory attributed to one call stack.

    ``stack`` holds indices into :attr:`Profile.locations`, outermost call
    first, the allocating line last. ``size``/``count``: live bytes and blocks
    (for a diff, in the newer snapshot; for a leak report, after the last
    round). ``size_diff``/``count_diff``: the change (newer minus older; for a
    leak report, the growth over the judged rounds); 0 in a snapshot profile.
    """

    stack: Tuple[int, ...]
    size: int
    count: int  # type: ignore[assignment]  # shadows tuple.count, as Statistic.count reads
    size_diff: int = 0
    count_diff: int = 0


class Profile:
    """Samples of memory per call stack, with their code locations.

    Build one with :func:`profile_of` (or the ``from_*`` constructors). ``kind``
    is ``"snapshot"``, ``"diff"`` or ``"leaks"``; ``title`` a short
    description for headings; ``traceback_limit`` the number of frames kept
    per traceback when tracing (stacks deeper than that are cut at the
    outermost end).
    """

    __slots__ = (
        "kind",
        "title",
        "locations",
        "samples",
        "traceback_limit",
        "_index",
        "_inline_lines",
    )

    def __init__(self, kind: str, title: str = "", traceback_limit: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown profile kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.title = title
        self.traceback_limit = traceback_limit
        self.locations: List[Location] = []
        self.samples: List[Sample] = []
        self._index: Dict[Tuple[Any, ...], int] = {}
        # Locations on a line holding a comprehension, generator expression or
        # lambda: stacks through them need a look for that construct's frame.
        self._inline_lines: Set[Optional[int]] = set()

    # -- building -------------------------------------------------------------

    def _stack(self, frames: Tuple[Tuple[str, int], ...], names: FunctionNames) -> Tuple[int, ...]:
        # The raw (filename, lineno) pairs, oldest first, without a Frame
        # object for each: most stacks are made of lines already seen.
        index = self._index
        known = [index.get(key) for key in frames]
        # Known lines, none of them holding a comprehension or a lambda whose
        # frame could sit on it: done (a recursion repeats a location, rightly).
        if None not in known and self._inline_lines.isdisjoint(known):
            return tuple(known)  # type: ignore[arg-type]
        stack = []
        caller: Optional[Tuple[str, int]] = None
        last = len(frames) - 1
        for i, key in enumerate(frames):
            # A frame on the very line of its caller is a comprehension's or
            # a lambda's (until 3.12 comprehensions run as functions of their
            # own): a location of its own, named as the interpreter names it.
            # A recursive call on one line repeats a frame too: only the last
            # of a run of repeats, on a line holding a comprehension or a
            # lambda, is taken for one.
            repeat = key == caller and (i == last or frames[i + 1] != key)
            inline = names.inline(key[0], key[1]) if repeat else None
            caller = key
            slot: Tuple[Any, ...] = key if inline is None else (*key, "inline")
            at = index.get(slot)
            if at is None:
                at = index[slot] = len(self.locations)
                if inline is not None:
                    name = inline
                else:
                    name = names.lookup(key[0], key[1])
                    if names.inline(key[0], key[1]) is not None:
                        self._inline_lines.add(at)
                self.locations.append(Location(key[0], key[1], name))
            stack.append(at)
        return tuple(stack)

    def add(
        self,
        traceback: Traceback,
        size: int,
        count: int,
        size_diff: int = 0,
        count_diff: int = 0,
        names: Optional[FunctionNames] = None,
    ) -> None:
        """Add a sample for ``traceback`` (a :class:`leakguard.Traceback`)."""
        stack = self._stack(traceback._frames, names or _NAMES)
        self.samples.append(Sample(stack, size, count, size_diff, count_diff))

    @classmethod
    def from_statistics(
        cls, stats: Iterable[Statistic], title: str = "", traceback_limit: int = 1
    ) -> Profile:
        """A snapshot profile from ``Snapshot.statistics(...)`` rows."""
        profile = cls("snapshot", title, traceback_limit)
        names = FunctionNames()
        for stat in stats:
            profile.add(stat.traceback, stat.size, stat.count, names=names)
        return profile

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, title: str = "") -> Profile:
        """Live memory per allocation traceback."""
        profile = cls("snapshot", title or "live memory", max(int(snapshot.traceback_limit), 1))
        names = FunctionNames()
        # The engine's rows as they come (frames most recent first): no
        # Statistic and Traceback objects for tracebacks seen only here.
        for size, count, frames in snapshot._raw_snapshot().statistics("traceback", False):
            stack = profile._stack(frames[::-1], names)
            profile.samples.append(Sample(stack, size, count))
        return profile

    @classmethod
    def from_diffs(
        cls, diffs: Iterable[StatisticDiff], title: str = "", traceback_limit: int = 1
    ) -> Profile:
        """A diff profile from ``Snapshot.compare_to(...)`` rows."""
        profile = cls("diff", title or "what changed", traceback_limit)
        names = FunctionNames()
        for d in diffs:
            profile.add(d.traceback, d.size, d.count, d.size_diff, d.count_diff, names=names)
        return profile

    @classmethod
    def from_compare(cls, new: Snapshot, old: Snapshot, title: str = "") -> Profile:
        """What changed from ``old`` to ``new``, per allocation traceback."""
        limit = max(int(new.traceback_limit), int(old.traceback_limit), 1)
        profile = cls("diff", title or "what changed", limit)
        names = FunctionNames()
        rows = new._raw_snapshot().compare_to(_raw_of(old), "traceback", False)
        for size, size_diff, count, count_diff, frames in rows:  # as from_snapshot
            stack = profile._stack(frames[::-1], names)
            profile.samples.append(Sample(stack, size, count, size_diff, count_diff))
        return profile

    @classmethod
    def from_tracker(cls, tracker: Tracker, title: str = "") -> Profile:
        """What a tracked block changed (its ``before`` and ``after`` snapshots)."""
        if tracker.before is None or tracker.after is None:
            raise UsageTypeError(
                "this tracker has no snapshots to show: track a block first "
                "(with snapshots=True, the default)"
            )
        return cls.from_compare(tracker.after, tracker.before, title or "what the block changed")

    @classmethod
    def from_leak_report(cls, report: LeakReport, title: str = "") -> Profile:
        """The leaking sites of a hunt: live bytes after the last round, and the
        growth over the judged rounds as the change."""
        profile = cls("leaks", title or report.summary(), max(report.nframe, 1))
        names = FunctionNames()
        for site in report.leaks:
            profile.add(
                site.traceback,
                site.sizes[-1],
                site.counts[-1],
                site.sizes[-1] - site.sizes[0],
                site.counts[-1] - site.counts[0],
                names=names,
            )
        return profile

    # -- reading --------------------------------------------------------------

    @property
    def total_size(self) -> int:
        return sum(s.size for s in self.samples)

    @property
    def total_count(self) -> int:
        return sum(s.count for s in self.samples)

    @property
    def total_size_diff(self) -> int:
        return sum(s.size_diff for s in self.samples)

    @property
    def total_count_diff(self) -> int:
        return sum(s.count_diff for s in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (
            f"<Profile kind={self.kind!r} samples={len(self.samples)} "
            f"locations={len(self.locations)} size={self.total_size}>"
        )


def profile_of(obj: Any, base: Any = None) -> Profile:
    """The :class:`Profile` of anything leakguard shows.

    ``obj`` is a :class:`~leakguard.Snapshot` (with ``base``, another snapshot:
    the diff from ``base`` to ``obj``), a list of :class:`~leakguard.Statistic`
    or :class:`~leakguard.StatisticDiff`, a :class:`~leakguard.LeakReport`, a
    tracker (``leakguard.track()``) or a profile (returned as is).
    """
    from ._hunter.report import LeakReport
    from ._hunter.track import Tracker

    if isinstance(obj, Profile):
        return obj
    if isinstance(obj, Snapshot):
        if base is None:
            return Profile.from_snapshot(obj)
        if not isinstance(base, Snapshot):
            raise UsageTypeError(
                f"base must be a leakguard Snapshot to diff against, not {type(base).__name__}"
            )
        return Profile.from_compare(obj, base)
    if base is not None:
        raise UsageTypeError("base is only for diffing two snapshots: pass a Snapshot as obj")
    if isinstance(obj, LeakReport):
        return Profile.from_leak_report(obj)
    if isinstance(obj, Tracker):
        return Profile.from_tracker(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        items = list(obj)
        if items and all(isinstance(x, StatisticDiff) for x in items):
            return Profile.from_diffs(items)
        if all(isinstance(x, Statistic) for x in items):
            return Profile.from_statistics(items)
    raise UsageTypeError(
        "expected a Snapshot, a list of Statistic or StatisticDiff, a LeakReport, "
        f"a tracker or a Profile, not {type(obj).__name__}"
    )


class FunctionNames:
    """Which function a line of a source file is in, read from the source with
    :mod:`ast` (tracebacks hold only file names and line numbers). Each file is
    parsed once; a file that cannot be read or parsed gives ``""``."""

    def __init__(self) -> None:
        self._files: Dict[str, Optional[_Spans]] = {}

    def _spans(self, filename: str) -> Optional[_Spans]:
        spans = self._files.get(filename, False)
        if spans is False:
            spans = self._files[filename] = _function_spans(filename)
        return spans  # type: ignore[return-value]

    def inline(self, filename: str, lineno: int) -> Optional[str]:
        """The name of a comprehension's or lambda's frame at ``filename:lineno``
        (``load.<locals>.<listcomp>``): the innermost one on that line; None
        when there is none there."""
        spans = self._spans(filename)
        if spans is None:
            return None
        label = spans[2].get(lineno)
        if label is None:
            return None
        outer = self.lookup(filename, lineno)
        if outer == "<module>":
            return label
        return f"{outer}.<locals>.{label}"

    def lookup(self, filename: str, lineno: int) -> str:
        spans = self._spans(filename)
        if spans is None:
            return ""
        starts, rows, _ = spans
        # Innermost enclosing definition: the last one starting at or before
        # the line whose end is at or after it. Spans are sorted by start and
        # nest, so walk back from the last start <= lineno.
        i = bisect_right(starts, lineno) - 1
        while i >= 0:
            start, end, name = rows[i]
            if start <= lineno <= end:
                return name
            i -= 1
        return "<module>"


#: Per file: the start lines of its definitions, the definitions as (start,
#: end, qualified name) sorted by start, and each line a comprehension or
#: lambda covers with the innermost one's name (``<listcomp>``…).
_Spans = Tuple[List[int], List[Tuple[int, int, str]], Dict[int, str]]

_INLINE: Dict[type, str] = {ast.GeneratorExp: "<genexpr>", ast.Lambda: "<lambda>"}
if sys.version_info < (3, 12):  # from 3.12 on, comprehensions run in their caller's frame
    _INLINE.update(
        {ast.ListComp: "<listcomp>", ast.SetComp: "<setcomp>", ast.DictComp: "<dictcomp>"}
    )


def _function_spans(filename: str) -> Optional[_Spans]:
    # linecache looks for a missing file along sys.path: only ask it about
    # files it holds already (cells of a notebook, "<...>" sources registered
    # by their creators) or that exist.
    if filename not in linecache.cache and (
        filename.startswith("<") or (os.path.isabs(filename) and not os.path.isfile(filename))
    ):
        return None
    lines = linecache.getlines(filename)
    if not lines:
        return None
    try:
        tree = ast.parse("".join(lines), filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    rows: List[Tuple[int, int, str]] = []
    inline: List[Tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            kind = _INLINE.get(type(child))
            if kind is not None:
                end = getattr(child, "end_lineno", None) or child.lineno  # type: ignore[attr-defined]
                inline.append((child.lineno, end, kind))  # type: ignore[attr-defined]
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualname = prefix + child.name
                end = getattr(child, "end_lineno", None) or child.lineno
                # The body, not the decorators: those run in the enclosing scope.
                rows.append((child.lineno, end, qualname))
                inner = ".<locals>." if not isinstance(child, ast.ClassDef) else "."
                visit(child, qualname + inner)
            else:
                visit(child, prefix)

    visit(tree, "")
    rows.sort(key=lambda r: (r[0], -r[1]))
    # Each line a comprehension or lambda covers -> the innermost one's name
    # (sorted outermost first, so inner ones write last).
    inline.sort(key=lambda r: (r[0], -r[1]))
    inline_at = {line: kind for start, end, kind in inline for line in range(start, end + 1)}
    return [r[0] for r in rows], rows, inline_at


_NAMES = FunctionNames()


def function_name(filename: str, lineno: int) -> str:
    """The qualified name of the function containing ``filename:lineno``."""
    return FunctionNames().lookup(filename, lineno)

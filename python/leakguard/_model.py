"""tracemalloc's data model as thin views over leakguard's raw data.

The native core hands out raw tuples in ``_tracemalloc``'s conventions (a frame
is ``(filename, lineno)``, a traceback is a tuple of frames most recent first,
a trace is ``(domain, size, traceback, total_nframe)``) and keeps whole
snapshots in a :class:`~leakguard._leakguard.RawSnapshot`. The classes here
wrap that data on demand, with the attributes, equality, ordering, hashing,
``repr`` and ``str`` of the stdlib ``tracemalloc`` classes of the same names,
so code written against ``tracemalloc`` sees no difference.

Grouping, sorting and diffing run in Rust; filters run here, once per
distinct (domain, traceback) key rather than once per trace, so that their
semantics (``fnmatch`` patterns, ``.pyc`` normalisation, ``all_frames``) are
exactly the stdlib's.
"""

from __future__ import annotations

import fnmatch
import json
import linecache
import math
import os
import os.path
from collections.abc import Iterable, Iterator, Sequence
from functools import total_ordering
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    NoReturn,
    Optional,
    SupportsIndex,
    Tuple,
    TypeVar,
    Union,
    cast,
    overload,
)

from . import _leakguard
from ._errors import SnapshotError, UsageError, UsageTypeError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "BaseFilter",
    "DomainFilter",
    "Filter",
    "Frame",
    "Snapshot",
    "Statistic",
    "StatisticDiff",
    "StatisticList",
    "StatisticDiffList",
    "Trace",
    "Traceback",
    "_Traces",
    "_compare_grouped_stats",
    "_format_size",
    "_normalize_filename",
]

RawFrame = Tuple[str, int]
RawTraceback = Tuple[RawFrame, ...]
RawTrace = Tuple[Any, ...]  # (domain, size, traceback, total_nframe); stdlib also reads 3-tuples

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _format_size(size: float, sign: bool) -> str:
    """``size`` bytes as tracemalloc prints them: ``"10 B"``, ``"1.5 KiB"``, ``"+12 MiB"``.

    Up to 10 KiB-1 a unit keeps four digits and no decimal; from 100 units on
    the next unit is used; below 100 of a unit above bytes, one decimal.
    """
    for unit in _SIZE_UNITS:
        if unit != "B" and abs(size) < 100:
            return ("%+.1f %s" if sign else "%.1f %s") % (size, unit)
        if unit == "TiB" or abs(size) < 10 * 1024:
            return ("%+.0f %s" if sign else "%.0f %s") % (size, unit)
        size /= 1024
    raise AssertionError("unreachable: TiB always formats")  # pragma: no cover


def _normalize_filename(filename: str) -> str:
    """Case-normalise for the platform and map a ``.pyc`` name to its ``.py``."""
    filename = os.path.normcase(filename)
    return filename[:-1] if filename.endswith(".pyc") else filename


@total_ordering
class Frame:
    """One frame of a traceback: a file name and a line number."""

    __slots__ = ("_frame",)

    def __init__(self, frame: RawFrame) -> None:
        self._frame = frame

    @property
    def filename(self) -> str:
        return self._frame[0]

    @property
    def lineno(self) -> int:
        return self._frame[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame == other._frame

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame < other._frame

    def __hash__(self) -> int:
        return hash(self._frame)

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def __repr__(self) -> str:
        return f"<Frame filename={self.filename!r} lineno={self.lineno!r}>"


@total_ordering
class Traceback(Sequence[Frame]):
    """The frames where a block was allocated, oldest first.

    ``frames`` is a raw traceback, most recent first (the engine's order);
    ``total_nframe`` is how deep the stack really was before truncation to
    the traceback limit, or None when unknown (e.g. for statistics keys).
    """

    __slots__ = ("_frames", "_total_nframe")

    def __init__(self, frames: Sequence[RawFrame], total_nframe: Optional[int] = None) -> None:
        # Stored oldest first, as the stdlib does: code that reads ``_frames``
        # (the stdlib's own tests do) expects that order.
        self._frames: Tuple[RawFrame, ...] = tuple(reversed(frames))
        self._total_nframe = total_nframe

    @property
    def total_nframe(self) -> Optional[int]:
        return self._total_nframe

    def __len__(self) -> int:
        return len(self._frames)

    @overload
    def __getitem__(self, index: int) -> Frame: ...

    @overload
    def __getitem__(self, index: slice) -> Tuple[Frame, ...]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Frame, Tuple[Frame, ...]]:
        if isinstance(index, slice):
            return tuple(Frame(frame) for frame in self._frames[index])
        return Frame(self._frames[index])

    def __iter__(self) -> Iterator[Frame]:
        return map(Frame, self._frames)

    def __contains__(self, frame: object) -> bool:
        # Like the stdlib: anything but a Frame raises AttributeError.
        return frame._frame in self._frames  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._frames)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._frames == other._frames

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._frames < other._frames

    def __str__(self) -> str:
        return str(self[0])

    def __repr__(self) -> str:
        frames = tuple(self)
        if self._total_nframe is None:
            return f"<Traceback {frames}>"
        return f"<Traceback {frames} total_nframe={self._total_nframe}>"

    def format(self, limit: Optional[int] = None, most_recent_first: bool = False) -> List[str]:
        """Lines like the interpreter's tracebacks: ``  File "x.py", line 3`` and the source.

        A positive ``limit`` keeps the ``limit`` most recent frames, a negative
        one the ``-limit`` oldest; ``most_recent_first`` reverses the order.
        """
        frames: Iterable[RawFrame] = self._frames
        if limit is not None:
            frames = self._frames[-limit:] if limit > 0 else self._frames[:limit]
        if most_recent_first:
            frames = reversed(tuple(frames))
        lines = []
        for filename, lineno in frames:
            lines.append(f'  File "{filename}", line {lineno}')
            # Looked up through the module at call time, so that it can be patched.
            source = linecache.getline(filename, lineno).strip()
            if source:
                lines.append(f"    {source}")
        return lines


class Trace:
    """One traced memory block: its domain, size and allocation traceback."""

    __slots__ = ("_trace",)

    def __init__(self, trace: RawTrace) -> None:
        self._trace = trace

    @property
    def domain(self) -> int:
        return cast(int, self._trace[0])

    @property
    def size(self) -> int:
        return cast(int, self._trace[1])

    @property
    def traceback(self) -> Traceback:
        # A 3-tuple (older raw format) has no total_nframe.
        return Traceback(*self._trace[2:])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return self._trace == other._trace

    def __hash__(self) -> int:
        return hash(self._trace)

    def __str__(self) -> str:
        return f"{self.traceback}: {_format_size(self.size, False)}"

    def __repr__(self) -> str:
        size = _format_size(self.size, False)
        return f"<Trace domain={self.domain} size={size}, traceback={self.traceback!r}>"


class _Traces(Sequence[Trace]):
    """The traces of a snapshot as a sequence of :class:`Trace` views.

    Backed either by a native snapshot (the usual case: nothing is copied into
    Python until asked for) or, like the stdlib's, by a sequence of raw trace
    tuples, which is kept as given and only handed to the native core when a
    statistic, a filter or a dump needs it.
    """

    __slots__ = ("_raw", "_tuples")

    def __init__(self, traces: Union[_leakguard.RawSnapshot, Sequence[RawTrace]]) -> None:
        self._raw: Optional[_leakguard.RawSnapshot]
        self._tuples: Optional[Sequence[RawTrace]]
        if isinstance(traces, _leakguard.RawSnapshot):
            self._raw, self._tuples = traces, None
        elif isinstance(traces, _Traces):  # share another snapshot's traces
            self._raw, self._tuples = traces._raw, traces._tuples
        else:
            self._raw, self._tuples = None, traces

    @property
    def _traces(self) -> Sequence[RawTrace]:
        """The raw trace tuples (a list, unless built from another sequence)."""
        if self._tuples is None:
            assert self._raw is not None
            self._tuples = self._raw.traces()
        return self._tuples

    @_traces.setter
    def _traces(self, traces: Sequence[RawTrace]) -> None:
        self._raw, self._tuples = None, traces

    def _raw_snapshot(self, traceback_limit: int) -> _leakguard.RawSnapshot:
        if self._raw is None:
            assert self._tuples is not None
            self._raw = _leakguard.RawSnapshot.from_traces(self._tuples, traceback_limit)
        return self._raw

    def __len__(self) -> int:
        if self._tuples is None:
            assert self._raw is not None
            return len(self._raw)
        return len(self._tuples)

    @overload
    def __getitem__(self, index: int) -> Trace: ...

    @overload
    def __getitem__(self, index: slice) -> Tuple[Trace, ...]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Trace, Tuple[Trace, ...]]:
        if self._tuples is not None:
            if isinstance(index, slice):
                return tuple(Trace(trace) for trace in self._tuples[index])
            return Trace(self._tuples[index])
        raw = self._raw
        assert raw is not None
        positions = range(len(raw))
        if isinstance(index, slice):
            return tuple(Trace(raw.trace(i)) for i in positions[index])
        try:
            return Trace(raw.trace(positions[index]))
        except IndexError:
            raise IndexError("list index out of range") from None
        except TypeError:
            raise TypeError(
                f"list indices must be integers or slices, not {type(index).__name__}"
            ) from None

    def __iter__(self) -> Iterator[Trace]:
        if self._tuples is not None:
            return map(Trace, self._tuples)
        assert self._raw is not None
        # One native call converts every trace (sharing tracebacks), much faster
        # than one call per trace; the list is not kept.
        return map(Trace, self._raw.traces())

    def __contains__(self, trace: object) -> bool:
        return trace._trace in self._traces  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Traces):
            return NotImplemented
        if self._raw is not None and self._raw is other._raw:
            return True
        return self._traces == other._traces

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like the stdlib's

    def __repr__(self) -> str:
        return f"<Traces len={len(self)}>"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_Traces, (list(self._traces),))


class Statistic:
    """The size and count of the traces grouped under one key."""

    __slots__ = ("traceback", "size", "count")

    def __init__(self, traceback: Traceback, size: int, count: int) -> None:
        self.traceback = traceback
        self.size = size
        self.count = count

    def __hash__(self) -> int:
        return hash((self.traceback, self.size, self.count))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Statistic):
            return NotImplemented
        return (self.traceback, self.size, self.count) == (
            other.traceback,
            other.size,
            other.count,
        )

    def __str__(self) -> str:
        text = "%s: size=%s, count=%i" % (  # noqa: UP031 (%i as the stdlib: truncates floats)
            self.traceback,
            _format_size(self.size, False),
            self.count,
        )
        if self.count:
            text += f", average={_format_size(self.size / self.count, False)}"
        return text

    def __repr__(self) -> str:
        return "<Statistic traceback=%r size=%i count=%i>" % (  # noqa: UP031 (%i, stdlib)
            self.traceback,
            self.size,
            self.count,
        )

    def _sort_key(self) -> Tuple[int, int, Traceback]:
        return (self.size, self.count, self.traceback)


class StatisticDiff:
    """How the traces under one key changed between an old and a new snapshot."""

    __slots__ = ("traceback", "size", "size_diff", "count", "count_diff")

    def __init__(
        self, traceback: Traceback, size: int, size_diff: int, count: int, count_diff: int
    ) -> None:
        self.traceback = traceback
        self.size = size
        self.size_diff = size_diff
        self.count = count
        self.count_diff = count_diff

    def _fields(self) -> Tuple[Traceback, int, int, int, int]:
        return (self.traceback, self.size, self.size_diff, self.count, self.count_diff)

    def __hash__(self) -> int:
        return hash(self._fields())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatisticDiff):
            return NotImplemented
        return self._fields() == other._fields()

    def __str__(self) -> str:
        text = "%s: size=%s (%s), count=%i (%+i)" % (  # noqa: UP031 (%i as in the stdlib)
            self.traceback,
            _format_size(self.size, False),
            _format_size(self.size_diff, True),
            self.count,
            self.count_diff,
        )
        if self.count:
            text += f", average={_format_size(self.size / self.count, False)}"
        return text

    def __repr__(self) -> str:
        return "<StatisticDiff traceback=%r size=%i (%+i) count=%i (%+i)>" % (  # noqa: UP031
            self.traceback,
            self.size,
            self.size_diff,
            self.count,
            self.count_diff,
        )

    def _sort_key(self) -> Tuple[int, int, int, int, Traceback]:
        return (
            abs(self.size_diff),
            self.size,
            abs(self.count_diff),
            self.count,
            self.traceback,
        )


_Row = TypeVar("_Row", Statistic, StatisticDiff)


class _Rows(List[_Row]):
    """A plain ``list`` (it compares, prints and pickles as one) whose slices
    keep its type, so that ``stats[:10]`` still shows as a table."""

    __slots__ = ()

    @overload
    def __getitem__(self, index: SupportsIndex) -> _Row: ...

    @overload
    def __getitem__(self, index: slice) -> Self: ...

    def __getitem__(self, index: Any) -> Any:
        item = list.__getitem__(self, index)
        return type(self)(item) if isinstance(index, slice) else item


class StatisticList(_Rows[Statistic]):
    """What :meth:`Snapshot.statistics` returns: a list of :class:`Statistic`
    that a notebook shows as a table and that converts to a pandas DataFrame."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        from ._notebook.html import statistics_html

        return statistics_html(self)

    def to_dataframe(self) -> Any:
        """A ``pandas.DataFrame``, one row per statistic: ``filename``,
        ``lineno`` (of the most recent frame), ``size``, ``count``,
        ``average`` and ``traceback`` (tuple of ``"file:line"``, oldest first).
        Raises :class:`leakguard.UsageError` naming pandas when it is not installed."""
        from ._notebook.dataframe import statistics_frame

        return statistics_frame(self)


class StatisticDiffList(_Rows[StatisticDiff]):
    """What :meth:`Snapshot.compare_to` returns: a list of :class:`StatisticDiff`
    that a notebook shows as a table (growth in red) and that converts to a
    pandas DataFrame."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        from ._notebook.html import diffs_html

        return diffs_html(self)

    def to_dataframe(self) -> Any:
        """A ``pandas.DataFrame``, one row per diff: ``filename``, ``lineno``,
        ``size``, ``size_diff``, ``count``, ``count_diff`` and ``traceback``.
        Raises :class:`leakguard.UsageError` naming pandas when it is not installed."""
        from ._notebook.dataframe import diffs_frame

        return diffs_frame(self)


def _compare_grouped_stats(
    old_group: Dict[Traceback, Statistic], new_group: Dict[Traceback, Statistic]
) -> List[StatisticDiff]:
    """Diff two ``{key: Statistic}`` groupings (unsorted); consumes ``old_group``."""
    diffs = []
    for key, stat in new_group.items():
        before = old_group.pop(key, None)
        old_size, old_count = (before.size, before.count) if before is not None else (0, 0)
        diffs.append(
            StatisticDiff(key, stat.size, stat.size - old_size, stat.count, stat.count - old_count)
        )
    for key, stat in old_group.items():
        diffs.append(StatisticDiff(key, 0, -stat.size, 0, -stat.count))
    return diffs


class BaseFilter:
    """A trace filter: ``inclusive`` keeps what matches, otherwise drops it."""

    def __init__(self, inclusive: bool) -> None:
        self.inclusive = inclusive

    def _match(self, trace: RawTrace) -> bool:
        raise NotImplementedError


class Filter(BaseFilter):
    """Match traces by file name pattern (``fnmatch``), line number and domain.

    Only the most recent frame is looked at unless ``all_frames`` is true.
    """

    def __init__(
        self,
        inclusive: bool,
        filename_pattern: str,
        lineno: Optional[int] = None,
        all_frames: bool = False,
        domain: Optional[int] = None,
    ) -> None:
        super().__init__(inclusive)
        self._filename_pattern = _normalize_filename(filename_pattern)
        self.lineno = lineno
        self.all_frames = all_frames
        self.domain = domain

    @property
    def filename_pattern(self) -> str:
        return self._filename_pattern

    def _match_frame_impl(self, filename: str, lineno: int) -> bool:
        if not fnmatch.fnmatch(_normalize_filename(filename), self._filename_pattern):
            return False
        return self.lineno is None or lineno == self.lineno

    def _match_frame(self, filename: str, lineno: int) -> bool:
        return self._match_frame_impl(filename, lineno) ^ (not self.inclusive)

    def _match_traceback(self, traceback: RawTraceback) -> bool:
        if not self.all_frames:
            filename, lineno = traceback[0]
            return self._match_frame(filename, lineno)
        matched = any(self._match_frame_impl(filename, lineno) for filename, lineno in traceback)
        return matched if self.inclusive else not matched

    def _match(self, trace: RawTrace) -> bool:
        domain, _size, traceback, _total_nframe = trace
        matched = self._match_traceback(traceback)
        if self.domain is None:
            return matched
        if self.inclusive:
            return matched and domain == self.domain
        return matched or domain != self.domain


class DomainFilter(BaseFilter):
    """Match traces by address-space domain."""

    def __init__(self, inclusive: bool, domain: int) -> None:
        super().__init__(inclusive)
        self._domain = domain

    @property
    def domain(self) -> int:
        return self._domain

    def _match(self, trace: RawTrace) -> bool:
        domain, _size, _traceback, _total_nframe = trace
        matched: bool = domain == self.domain
        return matched ^ (not self.inclusive)


# Filters whose verdict depends only on (domain, traceback, total_nframe), never on
# the size, and may therefore be evaluated once per distinct key.
_KEY_ONLY_MATCHERS = (Filter._match, DomainFilter._match)

_KEY_TYPES = ("traceback", "filename", "lineno")
_CUMULATIVE_KEY_TYPES = ("lineno", "filename")

# Attributes a snapshot file stores natively; the others go to the JSON attribute block.
_NATIVE_ATTRIBUTES = ("traces", "traceback_limit")


def _check_key_type(key_type: object, cumulative: object) -> str:
    """The canonical key type, after the stdlib's checks with the stdlib's messages."""
    for known in _KEY_TYPES:
        if key_type is known or key_type == known:
            break
    else:
        raise UsageError(f"unknown key_type: {key_type!r}")
    if cumulative and known not in _CUMULATIVE_KEY_TYPES:
        raise UsageError(f"cumulative mode cannot by used with key type {key_type!r}")
    return known


def _traceback_limit_for_native(traceback_limit: object) -> int:
    # The stdlib stores whatever it is given; the native snapshot needs a count.
    if isinstance(traceback_limit, int) and 0 <= traceback_limit <= 0xFFFF:
        return int(traceback_limit)
    return 0


def _check_json_exact(value: object, where: str, seen: Tuple[int, ...] = ()) -> None:
    """Raise unless ``value`` comes back from JSON as an equal value of the same type."""
    kind = type(value)
    if value is None or kind in (str, int, bool):
        return
    if kind is float:
        if not math.isfinite(cast(float, value)):
            raise UsageTypeError(
                f"cannot dump Snapshot attribute {where}: {value!r} has no JSON form"
            )
        return
    if kind is list or kind is dict:
        if id(value) in seen:
            raise UsageTypeError(f"cannot dump Snapshot attribute {where}: it contains itself")
        seen = (*seen, id(value))
        if kind is list:
            for i, item in enumerate(cast(List[object], value)):
                _check_json_exact(item, f"{where}[{i}]", seen)
            return
        for key, item in cast(Dict[object, object], value).items():
            if type(key) is not str:
                raise UsageTypeError(
                    f"cannot dump Snapshot attribute {where}: dict key {key!r} is not a str"
                )
            _check_json_exact(item, f"{where}[{key!r}]", seen)
        return
    raise UsageTypeError(
        f"cannot dump Snapshot attribute {where}: a {kind.__name__} is not stored; "
        "snapshot files keep only str, int, float, bool, None, and lists and "
        "str-keyed dicts of those"
    )


def _encode_attributes(attributes: Dict[str, object]) -> bytes:
    for name, value in attributes.items():
        if type(name) is not str:
            raise UsageTypeError(f"cannot dump Snapshot attribute {name!r}: its name is not a str")
        _check_json_exact(value, repr(name))
    try:
        text = json.dumps(attributes, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # e.g. an int beyond sys.get_int_max_str_digits()
        raise UsageTypeError(f"cannot dump Snapshot attributes: {exc}") from None
    return text.encode("utf-8")


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _decode_attributes(blob: bytes, filename: str) -> Dict[str, object]:
    if not blob:
        return {}
    try:
        attributes = json.loads(blob.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError included
        raise SnapshotError(
            f"{filename}: the attribute block is not valid JSON ({exc})", filename
        ) from None
    if type(attributes) is not dict:
        raise SnapshotError(
            f"{filename}: the attribute block is a JSON {type(attributes).__name__}, not an object",
            filename,
        )
    for name in attributes:
        if name in _NATIVE_ATTRIBUTES:
            raise SnapshotError(
                f"{filename}: the attribute block redefines the reserved attribute {name!r}",
                filename,
            )
    return cast(Dict[str, object], attributes)


def _path_str(filename: Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]) -> str:
    return os.fsdecode(os.fspath(filename))


def _raise_like_open(error: OSError, path: str, mode: str) -> NoReturn:
    """Re-raise an I/O error of the native core as ``open()`` would have raised it.

    The native error says what failed but carries no errno or file name; the
    stdlib's ``dump``/``load`` raise ``open()``'s own, e.g.
    ``FileNotFoundError: [Errno 2] No such file or directory: 'x'``.
    """
    if error.filename is None:
        try:
            with open(path, mode):
                pass
        except OSError as detailed:
            raise detailed from None
    raise error


class Snapshot:
    """The traces of the memory blocks alive at one moment.

    ``Snapshot(traces, traceback_limit)`` takes a native snapshot or, like the
    stdlib, any sequence of raw trace tuples. Extra attributes set on a snapshot
    survive :meth:`dump`/:meth:`load` when they are plain JSON values.
    """

    def __init__(
        self,
        traces: Union[_leakguard.RawSnapshot, Sequence[RawTrace]],
        traceback_limit: int,
    ) -> None:
        self.traces = _Traces(traces)
        self.traceback_limit = traceback_limit

    def _raw_snapshot(self) -> _leakguard.RawSnapshot:
        return self.traces._raw_snapshot(_traceback_limit_for_native(self.traceback_limit))

    def __reduce__(self) -> Tuple[Any, ...]:
        # Pickling (multiprocessing, copy.deepcopy) sends plain tuples; the
        # snapshot *file* format never involves pickle.
        extra = {k: v for k, v in vars(self).items() if k not in _NATIVE_ATTRIBUTES}
        return (Snapshot, (list(self.traces._traces), self.traceback_limit), extra or None)

    def dump(self, filename: Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]) -> None:
        """Write the snapshot to ``filename`` in leakguard's binary format (no pickle).

        Extra attributes are stored as JSON; any value that would not come back
        equal and of the same type raises :class:`~leakguard.UsageTypeError`.
        """
        path = _path_str(filename)
        limit = self.traceback_limit
        if type(limit) is not int and type(limit) is not bool:
            raise UsageTypeError(
                "cannot dump Snapshot attribute 'traceback_limit': "
                f"expected an int, not {type(limit).__name__}"
            )
        attributes = {k: v for k, v in vars(self).items() if k not in _NATIVE_ATTRIBUTES}
        blob = _encode_attributes(attributes)
        raw = self._raw_snapshot()
        if raw.traceback_limit != limit:
            raw = _leakguard.RawSnapshot.from_traces(raw.traces(), int(limit))
        try:
            raw.dump(path, blob)
        except OSError as error:
            _raise_like_open(error, path, "ab")

    @staticmethod
    def load(filename: Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]) -> Snapshot:
        """Read a snapshot written by :meth:`dump`.

        A file that is not one, or is truncated or corrupted, raises
        :class:`~leakguard.SnapshotError` naming the file.
        """
        path = _path_str(filename)
        try:
            raw, blob = _leakguard.RawSnapshot.load(path)
        except OSError as error:
            _raise_like_open(error, path, "rb")
        attributes = _decode_attributes(blob, path)
        snapshot = Snapshot(raw, raw.traceback_limit)
        vars(snapshot).update(attributes)
        return snapshot

    def _filter_trace(
        self,
        include_filters: Sequence[BaseFilter],
        exclude_filters: Sequence[BaseFilter],
        trace: RawTrace,
    ) -> bool:
        if include_filters and not any(f._match(trace) for f in include_filters):
            return False
        if exclude_filters and not all(f._match(trace) for f in exclude_filters):
            return False
        return True

    def filter_traces(self, filters: Iterable[BaseFilter]) -> Snapshot:
        """A new snapshot with the traces that pass ``filters``.

        A trace passes when it matches at least one inclusive filter (if there
        are any) and every exclusive one. No filters: a copy of the snapshot.
        """
        if not isinstance(filters, Iterable):
            raise UsageTypeError(f"filters must be a list of filters, not {type(filters).__name__}")
        raw = self._raw_snapshot()
        if filters:
            include_filters: List[BaseFilter] = []
            exclude_filters: List[BaseFilter] = []
            for trace_filter in filters:
                if trace_filter.inclusive:
                    include_filters.append(trace_filter)
                else:
                    exclude_filters.append(trace_filter)
            every_filter = include_filters + exclude_filters
            if all(
                getattr(f._match, "__func__", None) in _KEY_ONLY_MATCHERS
                or getattr(f, "_key_only", False)
                for f in every_filter
            ):
                keys = raw.filter_keys()
                mask = bytearray(len(keys))
                for index, (domain, traceback, total_nframe) in enumerate(keys):
                    key_trace = (domain, 0, traceback, total_nframe)
                    if self._filter_trace(include_filters, exclude_filters, key_trace):
                        mask[index] = 1
                raw = raw.select(bytes(mask))
            else:
                # A custom filter may look at the size: evaluate it trace by trace.
                kept = [
                    trace
                    for trace in raw.traces()
                    if self._filter_trace(include_filters, exclude_filters, trace)
                ]
                raw = _leakguard.RawSnapshot.from_traces(kept, raw.traceback_limit)
        return Snapshot(raw, self.traceback_limit)

    def _group_by(self, key_type: str, cumulative: bool) -> Dict[Traceback, Statistic]:
        return {stat.traceback: stat for stat in self.statistics(key_type, cumulative)}

    def statistics(self, key_type: str, cumulative: bool = False) -> StatisticList:
        """Statistics grouped by ``"filename"``, ``"lineno"`` or ``"traceback"``,
        biggest first. ``cumulative`` counts a block in every frame of its
        traceback, not only the most recent one."""
        key = _check_key_type(key_type, cumulative)
        rows = self._raw_snapshot().statistics(key, bool(cumulative))
        return StatisticList(
            Statistic(Traceback(frames), size, count) for size, count, frames in rows
        )

    def compare_to(
        self, old_snapshot: Snapshot, key_type: str, cumulative: bool = False
    ) -> StatisticDiffList:
        """What changed since ``old_snapshot``, grouped by ``key_type``, biggest change first."""
        key = _check_key_type(key_type, cumulative)
        new_raw = self._raw_snapshot()
        old_raw = _raw_of(old_snapshot)
        rows = new_raw.compare_to(old_raw, key, bool(cumulative))
        return StatisticDiffList(
            StatisticDiff(Traceback(frames), size, size_diff, count, count_diff)
            for size, size_diff, count, count_diff, frames in rows
        )

    def _repr_html_(self) -> str:
        from ._notebook.html import snapshot_html

        return snapshot_html(self)

    def to_dataframe(self, key_type: Optional[str] = None, cumulative: bool = False) -> Any:
        """A ``pandas.DataFrame``: one row per trace (``domain``, ``size``,
        ``filename``, ``lineno`` of the most recent frame, ``traceback`` as a
        tuple of ``"file:line"`` oldest first, ``total_nframe``), or with
        ``key_type`` the :meth:`statistics` rows. Raises
        :class:`leakguard.UsageError` naming pandas when it is not installed."""
        from ._notebook.dataframe import snapshot_frame, statistics_frame

        if key_type is not None:
            return statistics_frame(self.statistics(key_type, cumulative))
        return snapshot_frame(self)


def _raw_of(snapshot: object) -> _leakguard.RawSnapshot:
    """The native snapshot of ``snapshot``: ours, or one with the stdlib's shape."""
    if isinstance(snapshot, Snapshot):
        return snapshot._raw_snapshot()
    # A stdlib tracemalloc.Snapshot (or anything shaped like one); anything else
    # raises AttributeError, as the stdlib does for a non-snapshot.
    traces = snapshot.traces._traces  # type: ignore[attr-defined]
    limit = snapshot.traceback_limit  # type: ignore[attr-defined]
    return _leakguard.RawSnapshot.from_traces(traces, _traceback_limit_for_native(limit))

"""pprof: a profile as a gzipped ``profile.proto`` message.

The format of ``go tool pprof``, Pyroscope, Parca and Google Cloud Profiler
(https://github.com/google/pprof/blob/main/proto/profile.proto). The protobuf
wire format is written here by hand (varints, length-delimited fields, packed
repeated integers), so exporting needs nothing beyond the standard library.

Sample values, by profile kind (``docs/exports.md`` says the same for users):

- ``snapshot``: ``inuse_objects`` (count) and ``inuse_space`` (bytes), the
  blocks and bytes live per allocation traceback, as in a Go heap profile.
- ``diff`` and ``leaks``: ``inuse_objects`` and ``inuse_space`` hold the
  *change* (newer minus older snapshot; for a leak report, the growth over the
  judged rounds), negative where memory was freed, as in the profile
  ``go tool pprof -diff_base`` builds; then ``final_inuse_objects`` and
  ``final_inuse_space``, what is live at the end (in the newer snapshot, after
  the last round). The default sample type is ``inuse_space`` in every kind.

Every location is one line of Python code with one ``Line`` and no address,
in the one mapping, which says that functions, file names and line numbers are
all known (so pprof does not look for a binary to symbolise). Functions are
deduplicated by (name, file); ``system_name`` is left empty: Python code has no
mangled name, and pprof takes a ``system_name`` equal to the name for one it
must demangle, which cuts names such as ``<module>`` or ``<lambda>`` to nothing
(its C++ heuristics drop anything between angle brackets).
``Sample.location_id`` lists the allocating line first, the outermost call
last, the reverse of :attr:`leakguard._profile.Sample.stack`.
"""

from __future__ import annotations

import gzip
import time
from typing import Dict, List, Optional, Sequence, Tuple

from .._profile import Profile
from ._names import function_label, utf8

__all__ = ["SUFFIX", "DESCRIPTION", "render", "encode", "sample_types"]

SUFFIX = ".pb.gz"
DESCRIPTION = "gzipped pprof profile.proto (go tool pprof, Pyroscope, Parca)"

_SNAPSHOT_TYPES = (("inuse_objects", "count"), ("inuse_space", "bytes"))
_CHANGE_TYPES = _SNAPSHOT_TYPES + (("final_inuse_objects", "count"), ("final_inuse_space", "bytes"))
_DEFAULT_TYPE = "inuse_space"

_EXPLAINED = {
    "snapshot": "inuse_objects/inuse_space: blocks and bytes live per allocation traceback",
    "diff": "inuse_objects/inuse_space: change from the older to the newer snapshot "
    "(negative: freed); final_inuse_objects/final_inuse_space: live in the newer snapshot",
    "leaks": "inuse_objects/inuse_space: growth over the hunt's judged rounds; "
    "final_inuse_objects/final_inuse_space: live after the last round",
}

# Field numbers of profile.proto.
# Profile
_P_SAMPLE_TYPE = 1
_P_SAMPLE = 2
_P_MAPPING = 3
_P_LOCATION = 4
_P_FUNCTION = 5
_P_STRING_TABLE = 6
_P_TIME_NANOS = 9
_P_PERIOD_TYPE = 11
_P_PERIOD = 12
_P_COMMENT = 13
_P_DEFAULT_SAMPLE_TYPE = 14
# ValueType
_VT_TYPE = 1
_VT_UNIT = 2
# Sample
_S_LOCATION_ID = 1
_S_VALUE = 2
# Mapping
_M_ID = 1
_M_HAS_FUNCTIONS = 7
_M_HAS_FILENAMES = 8
_M_HAS_LINE_NUMBERS = 9
# Location
_L_ID = 1
_L_MAPPING_ID = 2
_L_LINE = 4
# Line
_LN_FUNCTION_ID = 1
_LN_LINE = 2
# Function
_F_ID = 1
_F_NAME = 2
_F_FILENAME = 4

_VARINT = 0
_LEN = 2
_MASK64 = (1 << 64) - 1
_ONE_BYTE = [bytes((i,)) for i in range(128)]


# The one mapping: every location is in it, fully symbolised.
_MAPPING_ID = 1


def _varint(n: int) -> bytes:
    """``n`` as a base-128 varint; a negative ``n`` as its 64-bit two's
    complement (ten bytes), as protobuf writes ``int64``."""
    if 0 <= n < 0x80:
        return _ONE_BYTE[n]
    if 0 < n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    n &= _MASK64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _int(field: int, value: int) -> bytes:
    """A varint field; nothing for 0 (proto3 leaves defaults out)."""
    return _key(field, _VARINT) + _varint(value) if value else b""


def _bytes(field: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, a message or a packed repeated field."""
    return _key(field, _LEN) + _varint(len(payload)) + payload


def _packed(field: int, values: Sequence[int]) -> bytes:
    return _bytes(field, b"".join([_varint(v) for v in values])) if values else b""


_MAPPING = (
    _int(_M_ID, _MAPPING_ID)
    + _int(_M_HAS_FUNCTIONS, 1)
    + _int(_M_HAS_FILENAMES, 1)
    + _int(_M_HAS_LINE_NUMBERS, 1)
)


class _Strings:
    """The string table: index 0 is ``""``, every other string once."""

    def __init__(self) -> None:
        self.table: List[str] = [""]
        self._index: Dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        at = self._index.get(text)
        if at is None:
            at = self._index[text] = len(self.table)
            self.table.append(text)
        return at


def sample_types(kind: str) -> Tuple[Tuple[str, str], ...]:
    """The (type, unit) of each sample value of a profile of ``kind``."""
    return _SNAPSHOT_TYPES if kind == "snapshot" else _CHANGE_TYPES


def encode(profile: Profile, time_nanos: Optional[int] = None) -> bytes:
    """``profile`` as a serialised (not compressed) ``perftools.profiles.Profile``.
    ``time_nanos``: when it was collected (default: now)."""
    strings = _Strings()
    key_function = _key(_P_FUNCTION, _LEN)
    key_location = _key(_P_LOCATION, _LEN)
    key_sample = _key(_P_SAMPLE, _LEN)

    # Functions, deduplicated by (name, file), and one location per code line.
    function_ids: Dict[Tuple[str, str], int] = {}
    functions: List[bytes] = []
    locations: List[bytes] = []
    mapping_id = _int(_L_MAPPING_ID, _MAPPING_ID)
    for number, location in enumerate(profile.locations, 1):
        name = function_label(location)
        function_id = function_ids.get((name, location.filename))
        if function_id is None:
            function_id = function_ids[name, location.filename] = len(function_ids) + 1
            body = (
                _int(_F_ID, function_id)
                + _int(_F_NAME, strings(name))
                + _int(_F_FILENAME, strings(location.filename))
            )
            functions.append(key_function + _varint(len(body)) + body)
        line = _int(_LN_FUNCTION_ID, function_id) + _int(_LN_LINE, location.lineno)
        body = _int(_L_ID, number) + mapping_id + _bytes(_L_LINE, line)
        locations.append(key_location + _varint(len(body)) + body)

    # Samples: location ids leaf first, then the values in sample-type order.
    # Values repeat (block counts, sizes of same-sized objects), and a negative
    # one takes ten bytes to write: each distinct value is encoded once.
    ids = [_varint(number) for number in range(1, len(profile.locations) + 1)]
    key_ids = _key(_S_LOCATION_ID, _LEN)
    key_values = _key(_S_VALUE, _LEN)
    varint = _varint
    encoded: Dict[int, bytes] = {}
    known = encoded.get

    def new(value: int) -> bytes:
        data = encoded[value] = varint(value)
        return data

    samples: List[bytes] = []
    append = samples.append
    snapshot = profile.kind == "snapshot"
    for sample in profile.samples:
        stack = sample.stack
        packed_ids = b"".join([ids[i] for i in reversed(stack)])
        count, size = sample.count, sample.size
        if snapshot:
            values = (known(count) or new(count)) + (known(size) or new(size))
        else:
            count_diff, size_diff = sample.count_diff, sample.size_diff
            values = (
                (known(count_diff) or new(count_diff))
                + (known(size_diff) or new(size_diff))
                + (known(count) or new(count))
                + (known(size) or new(size))
            )
        body = key_values + varint(len(values)) + values
        if packed_ids:
            body = key_ids + varint(len(packed_ids)) + packed_ids + body
        append(key_sample + varint(len(body)) + body)

    types = [
        _bytes(_P_SAMPLE_TYPE, _int(_VT_TYPE, strings(kind)) + _int(_VT_UNIT, strings(unit)))
        for kind, unit in sample_types(profile.kind)
    ]
    comments = [strings(text) for text in _comments(profile)]
    period_type = _int(_VT_TYPE, strings("space")) + _int(_VT_UNIT, strings("bytes"))
    default_type = strings(_DEFAULT_TYPE)
    when = time.time_ns() if time_nanos is None else time_nanos

    key_string = _key(_P_STRING_TABLE, _LEN)
    table = []
    for text in strings.table:
        data = utf8(text)
        table.append(key_string + varint(len(data)) + data)

    return b"".join(
        [
            *types,
            *samples,
            _bytes(_P_MAPPING, _MAPPING),
            *locations,
            *functions,
            *table,
            _int(_P_TIME_NANOS, when),
            _bytes(_P_PERIOD_TYPE, period_type),
            _int(_P_PERIOD, 1),
            _packed(_P_COMMENT, comments),
            _int(_P_DEFAULT_SAMPLE_TYPE, default_type),
        ]
    )


def _comments(profile: Profile) -> List[str]:
    lines = [profile.title] if profile.title else []
    lines.append(f"leakguard {profile.kind} profile: {_EXPLAINED[profile.kind]}")
    lines.append(
        f"traceback_limit {profile.traceback_limit}: deeper stacks are cut at the outer end"
    )
    return lines


def render(profile: Profile) -> bytes:
    """``profile`` as a gzipped ``profile.proto``, the way pprof files are stored."""
    return gzip.compress(encode(profile), compresslevel=6, mtime=0)

"""Snapshot files: dump/load round trips, extra attributes, and bad files.

Whatever is wrong with a file, ``Snapshot.load`` raises ``leakguard.SnapshotError``
naming the file (never another exception, never unpickling, never a crash);
a file that cannot be opened at all raises the ``OSError`` that ``open()``
raises, as the stdlib's ``load`` does.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import struct
import tracemalloc as stdlib
import zlib

import pytest

import leakguard
import leakguard.tracemalloc as lgt
from leakguard import _leakguard

RAW = [
    (0, 48, (("shop/cart.py", 21), ("shop/views.py", 8)), 2),
    (0, 48, (("shop/cart.py", 21), ("shop/views.py", 8)), 2),
    (1, 9000, (("shop/cart.py", 30), ("shop/views.py", 9)), 2),
    (4, 640, (("shop/réport.py", 112), ("shop/views.py", 12)), 3),
    (2, 13, (("<unknown>", 0),), 1),
    (0, 7, (("x.py", 1),), None),
]


def rendered(items):
    return [(str(item), repr(item)) for item in items]


def assert_same_snapshot(loaded, original):
    assert isinstance(loaded, lgt.Snapshot)
    assert loaded.traceback_limit == original.traceback_limit
    assert loaded.traces == original.traces
    assert loaded.traces._traces == list(original.traces._traces)
    for key_type in ("lineno", "filename", "traceback"):
        assert rendered(loaded.statistics(key_type)) == rendered(original.statistics(key_type))


@pytest.fixture
def dumped(tmp_path):
    """A valid snapshot file (with one extra attribute) and its bytes."""
    path = tmp_path / "valid.lgsnap"
    snapshot = lgt.Snapshot(RAW, 5)
    snapshot.label = "nightly"
    snapshot.dump(path)
    return path, path.read_bytes()


def assert_rejected(path):
    with pytest.raises(leakguard.SnapshotError) as info:
        lgt.Snapshot.load(path)
    assert str(path) in str(info.value)
    assert info.value.filename == str(path)
    return info.value


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("as_path", [str, pathlib.Path, os.fsencode], ids=["str", "Path", "bytes"])
def test_round_trip_from_raw_traces(tmp_path, as_path):
    original = lgt.Snapshot(RAW, 5)
    path = tmp_path / "snap.lgsnap"
    original.dump(as_path(str(path)))
    loaded = lgt.Snapshot.load(as_path(str(path)))
    assert_same_snapshot(loaded, original)
    assert vars(loaded).keys() == {"traces", "traceback_limit"}
    assert loaded.traces[-1].traceback.total_nframe is None


def test_round_trip_of_an_empty_snapshot(tmp_path):
    path = tmp_path / "empty.lgsnap"
    lgt.Snapshot([], 1).dump(path)
    loaded = lgt.Snapshot.load(path)
    assert len(loaded.traces) == 0
    assert loaded.traceback_limit == 1
    assert loaded.statistics("lineno") == []


def test_round_trip_of_a_live_snapshot(tmp_path):
    assert not stdlib.is_tracing()
    lgt.start(5)
    try:
        keep = [bytes(1000) for _ in range(50)]
        original = lgt.take_snapshot()
    finally:
        lgt.stop()
    path = tmp_path / "live.lgsnap"
    original.dump(path)
    assert_same_snapshot(lgt.Snapshot.load(path), original)
    del keep


def test_round_trip_after_filtering(tmp_path):
    original = lgt.Snapshot(RAW, 5).filter_traces([lgt.DomainFilter(False, 2)])
    path = tmp_path / "filtered.lgsnap"
    original.dump(path)
    assert_same_snapshot(lgt.Snapshot.load(path), original)


def test_changed_traceback_limit_is_saved(tmp_path):
    snapshot = lgt.Snapshot(RAW, 5).filter_traces([])
    snapshot.traceback_limit = 9
    path = tmp_path / "limit.lgsnap"
    snapshot.dump(path)
    assert lgt.Snapshot.load(path).traceback_limit == 9


def test_dump_overwrites_an_existing_file(tmp_path, dumped):
    path, _ = dumped
    lgt.Snapshot(RAW[:1], 2).dump(path)
    loaded = lgt.Snapshot.load(path)
    assert loaded.traces._traces == RAW[:1]
    assert not hasattr(loaded, "label")


# -- extra attributes -----------------------------------------------------------------


def test_custom_attribute_survives(dumped):
    path, _ = dumped
    assert lgt.Snapshot.load(path).label == "nightly"


def test_every_json_exact_value_survives_with_its_type(tmp_path):
    snapshot = lgt.Snapshot(RAW, 5)
    values = {
        "text": "héllo \u2603 \x00",
        "number": 2**80,
        "negative": -3,
        "ratio": 0.1,
        "yes": True,
        "no": False,
        "nothing": None,
        "items": [1, "two", [3.5, None], {"k": [True]}],
        "mapping": {"a": {"b": {"c": []}}, "": 0},
        "empty_list": [],
        "empty_dict": {},
    }
    for name, value in values.items():
        setattr(snapshot, name, value)
    path = tmp_path / "attrs.lgsnap"
    snapshot.dump(path)
    loaded = lgt.Snapshot.load(path)
    for name, value in values.items():
        got = getattr(loaded, name)
        assert got == value and type(got) is type(value), name
    assert type(loaded.items[2][0]) is float
    assert type(loaded.yes) is bool


class Marker:
    pass


@pytest.mark.parametrize(
    "value, where",
    [
        ((1, 2), "'bad'"),
        ({1, 2}, "'bad'"),
        (b"bytes", "'bad'"),
        (Marker(), "'bad'"),
        ([1, (2,)], "'bad'[1]"),
        ({"ok": [{"deep": Marker()}]}, "'bad'['ok'][0]['deep']"),
        ({1: "int key"}, "'bad'"),
        (type("S", (str,), {})("str subclass"), "'bad'"),
        (lgt.Frame(("a.py", 1)), "'bad'"),
    ],
    ids=["tuple", "set", "bytes", "object", "nested-tuple", "nested-object", "int-key",
         "str-subclass", "frame"],
)  # fmt: skip
def test_dump_refuses_values_json_would_not_give_back(tmp_path, value, where):
    snapshot = lgt.Snapshot(RAW, 5)
    snapshot.bad = value
    path = tmp_path / "refused.lgsnap"
    with pytest.raises(leakguard.UsageTypeError) as info:
        snapshot.dump(path)
    assert isinstance(info.value, TypeError)
    assert f"attribute {where}" in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_dump_refuses_non_finite_floats(tmp_path, value):
    snapshot = lgt.Snapshot(RAW, 5)
    snapshot.ratio = value
    with pytest.raises(leakguard.UsageTypeError, match="'ratio'"):
        snapshot.dump(tmp_path / "nan.lgsnap")


def test_dump_refuses_a_self_containing_value(tmp_path):
    snapshot = lgt.Snapshot(RAW, 5)
    loop: list = []
    loop.append(loop)
    snapshot.loop = loop
    with pytest.raises(leakguard.UsageTypeError, match="'loop'"):
        snapshot.dump(tmp_path / "loop.lgsnap")


def test_dump_refuses_ints_json_cannot_write(tmp_path):
    snapshot = lgt.Snapshot(RAW, 5)
    snapshot.huge = 10**5000  # beyond the interpreter's int-to-str digit limit
    with pytest.raises(leakguard.UsageTypeError, match="attributes"):
        snapshot.dump(tmp_path / "huge.lgsnap")


def test_dump_refuses_a_non_str_attribute_name(tmp_path):
    snapshot = lgt.Snapshot(RAW, 5)
    vars(snapshot)[7] = "seven"
    with pytest.raises(leakguard.UsageTypeError, match="attribute 7"):
        snapshot.dump(tmp_path / "name.lgsnap")


def test_dump_refuses_a_non_int_traceback_limit(tmp_path):
    snapshot = lgt.Snapshot(RAW, "5")
    with pytest.raises(leakguard.UsageTypeError, match="'traceback_limit'"):
        snapshot.dump(tmp_path / "limit.lgsnap")


def write_with_attrs(path, blob):
    """A snapshot file whose attribute block is ``blob``, as written by the native core."""
    _leakguard.RawSnapshot.from_traces(RAW, 5).dump(str(path), blob)


@pytest.mark.parametrize(
    "blob, complaint",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'"text"', "not an object"),
        (b"null", "not an object"),
        (b'{"traces": []}', "'traces'"),
        (b'{"traceback_limit": 3}', "'traceback_limit'"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
    ids=["syntax", "utf8", "nan", "array", "string", "null", "traces", "limit", "deep"],
)
def test_load_rejects_a_bad_attribute_block(tmp_path, blob, complaint):
    path = tmp_path / "attrs.lgsnap"
    write_with_attrs(path, blob)
    error = assert_rejected(path)
    assert complaint in str(error)


def test_load_accepts_an_empty_attribute_block(tmp_path):
    path = tmp_path / "noattrs.lgsnap"
    write_with_attrs(path, b"")
    loaded = lgt.Snapshot.load(path)
    assert vars(loaded).keys() == {"traces", "traceback_limit"}
    assert loaded.traces._traces == RAW


# -- bad files ------------------------------------------------------------------------


def test_truncated_files_are_rejected(tmp_path, dumped):
    _, data = dumped
    path = tmp_path / "truncated.lgsnap"
    for length in range(len(data)):
        path.write_bytes(data[:length])
        assert_rejected(path)


def test_every_flipped_byte_is_noticed(tmp_path, dumped):
    # The format ends with a CRC-32 of everything before it.
    _, data = dumped
    path = tmp_path / "flipped.lgsnap"
    for index in range(len(data)):
        corrupted = bytearray(data)
        corrupted[index] ^= 0x5A
        path.write_bytes(bytes(corrupted))
        assert_rejected(path)


def with_header_field(data, offset, fmt, value):
    """``data`` with one little-endian header field replaced and the CRC-32 trailer redone,
    so that only the field's value is wrong (see src/snapshot/format.rs for the layout)."""
    body = bytearray(data[:-4])
    struct.pack_into(fmt, body, offset, value)
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    "offset, fmt, value",
    [
        (28, "<I", 2**32 - 1),  # filename_count
        (32, "<I", 2**32 - 1),  # traceback_count
        (40, "<Q", 2**64 - 1),  # trace_count
        (40, "<Q", 2**40),
        (48, "<Q", 2**63),  # attrs_len
        (16, "<Q", 2**64 - 1),  # file_len
    ],
    ids=["filenames", "tracebacks", "traces-max", "traces-2^40", "attrs", "file-len"],
)
def test_huge_declared_counts_are_rejected_without_allocating(tmp_path, dumped, offset, fmt, value):
    _, data = dumped
    path = tmp_path / "huge.lgsnap"
    path.write_bytes(with_header_field(data, offset, fmt, value))
    assert_rejected(path)


def test_header_layout_assumed_by_these_tests(dumped):
    # Rewriting a field with its own value must give back the very same file.
    _, data = dumped
    assert with_header_field(data, 40, "<Q", len(RAW)) == data
    assert with_header_field(data, 24, "<I", 5) == data


def test_trailing_garbage_is_rejected(tmp_path, dumped):
    _, data = dumped
    path = tmp_path / "trailing.lgsnap"
    path.write_bytes(data + b"\x00garbage")
    assert_rejected(path)


def test_wrong_magic_is_rejected(tmp_path, dumped):
    _, data = dumped
    path = tmp_path / "magic.lgsnap"
    path.write_bytes(b"NOTASNAP" + data[8:])
    assert_rejected(path)


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.lgsnap"
    path.write_bytes(b"")
    assert_rejected(path)


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
def test_random_bytes_are_rejected(tmp_path, size):
    path = tmp_path / "random.lgsnap"
    path.write_bytes(os.urandom(size))
    assert_rejected(path)


class _Boom:
    """Unpickling this creates the file named in ``path``: proof of code execution."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_stdlib_pickle_files_are_rejected_and_never_unpickled(tmp_path):
    pickled = tmp_path / "stdlib.pickle"
    stdlib.Snapshot(RAW[:3], 5).dump(pickled)
    assert_rejected(pickled)

    marker = tmp_path / "executed"
    hostile = tmp_path / "hostile.pickle"
    hostile.write_bytes(pickle.dumps(_Boom(str(marker)), protocol=pickle.HIGHEST_PROTOCOL))
    assert_rejected(hostile)
    assert not marker.exists()


def test_missing_file_raises_what_open_raises(tmp_path):
    path = tmp_path / "missing.lgsnap"
    with pytest.raises(FileNotFoundError) as ours:
        lgt.Snapshot.load(path)
    with pytest.raises(FileNotFoundError) as theirs:
        stdlib.Snapshot.load(path)
    assert str(ours.value) == str(theirs.value)
    assert ours.value.filename == str(path)


def test_directory_raises_what_open_raises(tmp_path):
    with pytest.raises(IsADirectoryError) as ours:
        lgt.Snapshot.load(tmp_path)
    with pytest.raises(IsADirectoryError) as theirs:
        stdlib.Snapshot.load(tmp_path)
    assert str(ours.value) == str(theirs.value)


def test_dump_into_a_missing_directory_raises_what_open_raises(tmp_path):
    path = tmp_path / "no" / "such" / "dir.lgsnap"
    with pytest.raises(FileNotFoundError) as ours:
        lgt.Snapshot(RAW, 5).dump(path)
    with pytest.raises(FileNotFoundError) as theirs:
        stdlib.Snapshot(RAW, 5).dump(path)
    assert str(ours.value) == str(theirs.value)
    assert not path.parent.exists()

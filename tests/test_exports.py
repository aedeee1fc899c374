"""Exports read by their real consumers.

Snapshots, diffs and a leak report from real tracing are exported and read
back the way the consumers read them: the pprof file decoded by the protobuf
library (from a descriptor of ``profile.proto`` built here) and loaded by
``go tool pprof`` (skipped where Go is not installed); the speedscope file
validated against the format's JSON schema (``tests/data/speedscope-schema.json``,
transcribed from speedscope's TypeScript definitions); leakguard's JSON read
back by ``leakguard.load_json``, which must reject bad input with
``leakguard.SnapshotError``. Every check compares with figures computed another
way (the snapshot's own ``statistics("lineno")``, the hunt's sites).
"""

from __future__ import annotations

import gc
import gzip
import inspect
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest

import leakguard
from leakguard import _export
from leakguard._export import jsonfmt, pprof, speedscope
from leakguard._profile import Location, Profile, Sample

HERE = Path(__file__).resolve().parent
SCHEMA_FILE = HERE / "data" / "speedscope-schema.json"
DOCS = HERE.parent / "docs" / "exports.md"

BLOB = 8000
BLOBS = 300
SMALL = 20000
MORE = 3000


# -- allocations from known functions ----------------------------------------------


class Small:
    __slots__ = ("n",)


# Loops, not comprehensions: a comprehension runs in a frame of its own before
# 3.12 (named make_blobs.<locals>.<listcomp>), and the checks below look for
# the function's own name at the leaf on every version.
def make_blobs(n: int) -> List[bytearray]:
    blobs = []
    for _ in range(n):
        blobs.append(bytearray(BLOB))
    return blobs


def make_small(n: int) -> List[Small]:
    small = []
    for _ in range(n):
        small.append(Small())
    return small


def make_more(n: int) -> List[str]:
    more = []
    for i in range(n):
        more.append(f"more-{i:06d}-" * 4)
    return more


def build() -> Tuple[List[bytearray], List[Small]]:
    return make_blobs(BLOBS), make_small(SMALL)


LEAKED: List[bytearray] = []


def leak_some() -> None:
    for _ in range(100):
        LEAKED.append(bytearray(1024))


def body_lines(func: Callable[..., Any]) -> range:
    """The line numbers of ``func``'s body."""
    source, first = inspect.getsourcelines(func)
    return range(first + 1, first + len(source))


class Traced(NamedTuple):
    first: leakguard.Snapshot
    second: leakguard.Snapshot
    report: Any


@pytest.fixture(scope="module")
def traced() -> Iterator[Traced]:
    """Two snapshots 10 frames deep: after ``build()``, and after dropping the
    small objects and making more strings; and a hunt's report on ``leak_some``."""
    assert not leakguard.is_tracing()
    leakguard.start(10)
    try:
        blobs, small = build()
        gc.collect()
        first = leakguard.take_snapshot()
        del small
        more = make_more(MORE)
        gc.collect()
        second = leakguard.take_snapshot()
    finally:
        leakguard.stop()
    del blobs, more
    report = leakguard.hunt(leak_some, rounds=4)
    LEAKED.clear()
    assert report.leaks, str(report)
    yield Traced(first, second, report)


@pytest.fixture(scope="module")
def profiles(traced: Traced) -> Dict[str, Profile]:
    return {
        "snapshot": leakguard.profile_of(traced.first),
        "diff": leakguard.profile_of(traced.second, base=traced.first),
        "leaks": leakguard.profile_of(traced.report),
    }


def line_stats(snapshot: leakguard.Snapshot, func: Callable[..., Any]) -> Tuple[int, int]:
    """(bytes, blocks) the snapshot's own per-line statistics give ``func``'s body."""
    lines = body_lines(func)
    size = count = 0
    for stat in snapshot.statistics("lineno"):
        frame = stat.traceback[0]
        if frame.filename == __file__ and frame.lineno in lines:
            size += stat.size
            count += stat.count
    return size, count


def leaf_function(profile: Profile, sample: Sample) -> str:
    return profile.locations[sample.stack[-1]].function if sample.stack else ""


def by_leaf_function(profile: Profile, name: str, value: str) -> int:
    return sum(getattr(s, value) for s in profile.samples if leaf_function(profile, s) == name)


def test_the_traced_profiles_hold_what_the_functions_allocated(
    traced: Traced, profiles: Dict[str, Profile]
) -> None:
    # The ground truth the export checks compare with: the profile agrees with
    # the snapshot's per-line statistics, and those with what was allocated.
    snapshot = profiles["snapshot"]
    size, count = line_stats(traced.first, make_blobs)
    assert size >= BLOBS * BLOB
    assert by_leaf_function(snapshot, "make_blobs", "size") == size
    assert by_leaf_function(snapshot, "make_blobs", "count") == count
    size, count = line_stats(traced.first, make_small)
    assert count >= SMALL
    assert by_leaf_function(snapshot, "make_small", "count") == count
    diff = profiles["diff"]
    assert by_leaf_function(diff, "make_small", "count_diff") <= -SMALL
    assert by_leaf_function(diff, "make_more", "count_diff") >= MORE
    assert snapshot.traceback_limit == 10


# -- pprof: decoded by the protobuf library ------------------------------------------


def profile_proto() -> Any:
    """The ``perftools.profiles.Profile`` message class, from a descriptor of
    profile.proto written out here field by field (no protoc needed)."""
    pytest.importorskip("google.protobuf", reason="protobuf is not installed")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    I64, U64, STR, BOOL, MSG = (
        F.TYPE_INT64,
        F.TYPE_UINT64,
        F.TYPE_STRING,
        F.TYPE_BOOL,
        F.TYPE_MESSAGE,
    )
    ONE, MANY = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    messages: Dict[str, List[Tuple[Any, ...]]] = {
        "Profile": [
            ("sample_type", 1, MSG, MANY, "ValueType"),
            ("sample", 2, MSG, MANY, "Sample"),
            ("mapping", 3, MSG, MANY, "Mapping"),
            ("location", 4, MSG, MANY, "Location"),
            ("function", 5, MSG, MANY, "Function"),
            ("string_table", 6, STR, MANY),
            ("drop_frames", 7, I64, ONE),
            ("keep_frames", 8, I64, ONE),
            ("time_nanos", 9, I64, ONE),
            ("duration_nanos", 10, I64, ONE),
            ("period_type", 11, MSG, ONE, "ValueType"),
            ("period", 12, I64, ONE),
            ("comment", 13, I64, MANY),
            ("default_sample_type", 14, I64, ONE),
        ],
        "ValueType": [("type", 1, I64, ONE), ("unit", 2, I64, ONE)],
        "Sample": [
            ("location_id", 1, U64, MANY),
            ("value", 2, I64, MANY),
            ("label", 3, MSG, MANY, "Label"),
        ],
        "Label": [
            ("key", 1, I64, ONE),
            ("str", 2, I64, ONE),
            ("num", 3, I64, ONE),
            ("num_unit", 4, I64, ONE),
        ],
        "Mapping": [
            ("id", 1, U64, ONE),
            ("memory_start", 2, U64, ONE),
            ("memory_limit", 3, U64, ONE),
            ("file_offset", 4, U64, ONE),
            ("filename", 5, I64, ONE),
            ("build_id", 6, I64, ONE),
            ("has_functions", 7, BOOL, ONE),
            ("has_filenames", 8, BOOL, ONE),
            ("has_line_numbers", 9, BOOL, ONE),
            ("has_inline_frames", 10, BOOL, ONE),
        ],
        "Location": [
            ("id", 1, U64, ONE),
            ("mapping_id", 2, U64, ONE),
            ("address", 3, U64, ONE),
            ("line", 4, MSG, MANY, "Line"),
            ("is_folded", 5, BOOL, ONE),
        ],
        "Line": [("function_id", 1, U64, ONE), ("line", 2, I64, ONE)],
        "Function": [
            ("id", 1, U64, ONE),
            ("name", 2, I64, ONE),
            ("system_name", 3, I64, ONE),
            ("filename", 4, I64, ONE),
            ("start_line", 5, I64, ONE),
        ],
    }
    file = descriptor_pb2.FileDescriptorProto(
        name="leakguard_tests/profile.proto", package="perftools.profiles", syntax="proto3"
    )
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, label, *ref in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if ref:
                field.type_name = f".perftools.profiles.{ref[0]}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("perftools.profiles.Profile"))


def decode_pprof(data: bytes) -> Any:
    assert data[:2] == b"\x1f\x8b", "a pprof file is gzipped"
    raw = gzip.decompress(data)
    message = profile_proto().FromString(raw)
    # Every field is one profile.proto declares, written the way protobuf
    # itself writes it (field order, packed repeated fields, no defaults).
    assert message.SerializeToString() == raw
    return message


EXPECTED_TYPES = {
    "snapshot": [("inuse_objects", "count"), ("inuse_space", "bytes")],
    "diff": [
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
        ("final_inuse_objects", "count"),
        ("final_inuse_space", "bytes"),
    ],
}
EXPECTED_TYPES["leaks"] = EXPECTED_TYPES["diff"]


def expected_values(kind: str, sample: Sample) -> List[int]:
    if kind == "snapshot":
        return [sample.count, sample.size]
    return [sample.count_diff, sample.size_diff, sample.count, sample.size]


def check_pprof(message: Any, profile: Profile, before_ns: int, after_ns: int) -> None:
    """Every field of the decoded message against the profile it came from."""
    strings = list(message.string_table)
    assert strings[0] == ""
    assert len(set(strings)) == len(strings), "each string once in the table"

    def s(index: int) -> str:
        return strings[index]

    assert [(s(t.type), s(t.unit)) for t in message.sample_type] == EXPECTED_TYPES[profile.kind]
    assert s(message.default_sample_type) == "inuse_space"
    assert (s(message.period_type.type), s(message.period_type.unit)) == ("space", "bytes")
    assert message.period == 1
    assert before_ns <= message.time_nanos <= after_ns
    assert message.duration_nanos == 0
    assert message.drop_frames == 0 and message.keep_frames == 0
    comments = [s(c) for c in message.comment]
    if profile.title:
        assert comments[0] == profile.title
    assert any(f"leakguard {profile.kind} profile" in c for c in comments)
    assert any(f"traceback_limit {profile.traceback_limit}" in c for c in comments)

    assert len(message.mapping) == 1
    mapping = message.mapping[0]
    assert mapping.id == 1
    assert mapping.has_functions and mapping.has_filenames and mapping.has_line_numbers
    assert not mapping.has_inline_frames
    assert (mapping.memory_start, mapping.memory_limit, mapping.filename) == (0, 0, 0)

    functions = {f.id: f for f in message.function}
    assert sorted(functions) == list(range(1, len(message.function) + 1))
    keys = [(s(f.name), s(f.filename)) for f in message.function]
    assert len(set(keys)) == len(keys), "functions deduplicated by (name, file)"
    for function in message.function:
        assert function.system_name == 0
        assert function.start_line == 0

    assert [loc.id for loc in message.location] == list(range(1, len(profile.locations) + 1))
    for loc, expected in zip(message.location, profile.locations):
        assert loc.mapping_id == 1
        assert loc.address == 0 and not loc.is_folded
        assert len(loc.line) == 1
        line = loc.line[0]
        assert line.line == expected.lineno
        function = functions[line.function_id]
        name = expected.function or f"{expected.filename}:{expected.lineno}"
        assert (s(function.name), s(function.filename)) == (name, expected.filename)
    used = {line.function_id for loc in message.location for line in loc.line}
    assert used == set(functions), "no function without a location"

    assert len(message.sample) == len(profile.samples)
    for sample, expected in zip(message.sample, profile.samples):
        # Leaf first: the reverse of the profile's outermost-first stack.
        assert list(sample.location_id) == [i + 1 for i in reversed(expected.stack)]
        assert list(sample.value) == expected_values(profile.kind, expected)
        assert len(sample.label) == 0


@pytest.mark.parametrize("kind", ["snapshot", "diff", "leaks"])
def test_pprof_decodes_field_by_field(profiles: Dict[str, Profile], kind: str) -> None:
    profile = profiles[kind]
    before = time.time_ns()
    data = pprof.render(profile)
    after = time.time_ns()
    check_pprof(decode_pprof(data), profile, before, after)


def test_pprof_values_of_the_known_functions(traced: Traced, profiles: Dict[str, Profile]) -> None:
    def leaf_totals(message: Any, index: int) -> Dict[str, int]:
        strings = message.string_table
        name_of = {f.id: strings[f.name] for f in message.function}
        leaf = {loc.id: name_of[loc.line[0].function_id] for loc in message.location}
        totals: Dict[str, int] = {}
        for sample in message.sample:
            name = leaf[sample.location_id[0]]
            totals[name] = totals.get(name, 0) + sample.value[index]
        return totals

    snapshot = decode_pprof(pprof.render(profiles["snapshot"]))
    size, count = line_stats(traced.first, make_blobs)
    assert leaf_totals(snapshot, 1)["make_blobs"] == size
    assert leaf_totals(snapshot, 0)["make_blobs"] == count
    assert leaf_totals(snapshot, 0)["make_small"] == line_stats(traced.first, make_small)[1]

    diff = decode_pprof(pprof.render(profiles["diff"]))
    old_size, old_count = line_stats(traced.first, make_small)
    new_size, new_count = line_stats(traced.second, make_small)
    assert leaf_totals(diff, 0)["make_small"] == new_count - old_count <= -SMALL
    assert leaf_totals(diff, 1)["make_small"] == new_size - old_size < 0
    assert leaf_totals(diff, 3)["make_small"] == new_size
    assert leaf_totals(diff, 0)["make_more"] == line_stats(traced.second, make_more)[1] >= MORE

    leaks = decode_pprof(pprof.render(profiles["leaks"]))
    site = traced.report.leaks[0]
    assert site.lineno in body_lines(leak_some)
    assert leaf_totals(leaks, 1)["leak_some"] == site.sizes[-1] - site.sizes[0] > 0
    assert leaf_totals(leaks, 3)["leak_some"] == site.sizes[-1]


def test_pprof_varints_negative_and_large_values() -> None:
    profile = Profile("diff", "edge values", 3)
    profile.locations = [
        Location("a.py", 1, "f"),
        Location("a.py", 2, "f"),
        Location("b.py", 0, ""),
    ]
    profile.samples = [
        Sample((0, 1), 2**63 - 1, 127, -(2**63), -1),
        Sample((2,), 128, 300, 16384, -128),
        Sample((), 0, 0, 0, 0),
    ]
    message = decode_pprof(pprof.render(profile))
    check_pprof(message, profile, 0, time.time_ns())
    # Two lines of one function, and a location whose function is unknown.
    assert len(message.function) == 2
    assert message.string_table[message.function[1].name] == "b.py:0"


def test_pprof_of_an_empty_profile_and_non_utf8_file_names() -> None:
    empty = Profile("snapshot")
    message = decode_pprof(pprof.render(empty))
    assert len(message.sample) == len(message.location) == len(message.function) == 0
    assert len(message.sample_type) == 2

    odd = Profile("snapshot", "caf\u00e9")
    odd.locations = [Location("caf\udce9.py", 3, "g\u00e9")]
    odd.samples = [Sample((0,), 10, 1)]
    message = decode_pprof(pprof.render(odd))
    strings = list(message.string_table)
    assert "caf\\udce9.py" in strings and "g\u00e9" in strings and "caf\u00e9" in strings


# -- pprof: loaded by go tool pprof ---------------------------------------------------

GO = shutil.which("go")
needs_go = pytest.mark.skipif(
    GO is None, reason="Go is not installed (Debian: apt-get install golang-go): no go tool pprof"
)


class TopRow(NamedTuple):
    flat: float
    cum: float
    name: str


_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _amount(text: str) -> float:
    match = re.fullmatch(r"(-?[0-9.]+)([a-zA-Z]*)", text)
    assert match, text
    return float(match.group(1)) * _UNITS.get(match.group(2), 1)


def go_pprof_top(path: Path, tmp_path: Path, *options: str) -> Tuple[List[TopRow], str]:
    assert GO is not None
    home = tmp_path / "go-home"
    env = {
        **os.environ,
        "HOME": str(home),
        "GOCACHE": str(home / "cache"),
        "GOPATH": str(home / "path"),
        "GOTOOLCHAIN": "local",
        "PPROF_TMPDIR": str(home / "pprof"),
    }
    proc = subprocess.run(
        [GO, "tool", "pprof", "-top", *options, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    rows = []
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["flat", "flat%"])
    for line in lines[start + 1 :]:
        flat, _, _, cum, _, name = line.split(None, 5)
        rows.append(TopRow(_amount(flat), _amount(cum), name))
    return rows, proc.stdout + proc.stderr


def top_row(rows: List[TopRow], name: str) -> TopRow:
    found = [row for row in rows if row.name == name]
    assert len(found) == 1, (name, rows)
    return found[0]


@needs_go
def test_go_tool_pprof_reads_the_snapshot(
    traced: Traced, profiles: Dict[str, Profile], tmp_path: Path
) -> None:
    path = tmp_path / "snapshot.pb.gz"
    leakguard.export(profiles["snapshot"], path, format="pprof")
    rows, output = go_pprof_top(path, tmp_path)
    assert "Type: inuse_space" in output
    assert "Main binary filename not available" not in output
    assert rows[0].name == "make_blobs"
    size, count = line_stats(traced.first, make_blobs)
    assert rows[0].flat == pytest.approx(size, rel=0.01)
    assert top_row(rows, "build").cum >= size

    rows, output = go_pprof_top(path, tmp_path, "-sample_index=inuse_objects")
    assert "Type: inuse_objects" in output
    assert rows[0].name == "make_small"
    assert rows[0].flat == line_stats(traced.first, make_small)[1]
    assert top_row(rows, "make_blobs").flat == count


@needs_go
def test_go_tool_pprof_reads_the_diff_and_the_leak_report(
    traced: Traced, profiles: Dict[str, Profile], tmp_path: Path
) -> None:
    path = tmp_path / "diff.pb.gz"
    path.write_bytes(pprof.render(profiles["diff"]))
    rows, output = go_pprof_top(path, tmp_path, "-sample_index=inuse_objects")
    assert "Type: inuse_objects" in output
    old, new = line_stats(traced.first, make_small), line_stats(traced.second, make_small)
    assert top_row(rows, "make_small").flat == new[1] - old[1] <= -SMALL
    assert top_row(rows, "make_more").flat == line_stats(traced.second, make_more)[1]
    assert all(row.name != "make_blobs" or row.flat == 0 for row in rows)

    rows, output = go_pprof_top(path, tmp_path, "-sample_index=final_inuse_space")
    assert "Type: final_inuse_space" in output
    assert rows[0].name == "make_blobs"

    path = tmp_path / "leaks.pb.gz"
    path.write_bytes(pprof.render(profiles["leaks"]))
    rows, output = go_pprof_top(path, tmp_path)
    site = traced.report.leaks[0]
    assert rows[0].name == "leak_some"
    assert rows[0].flat == pytest.approx(site.sizes[-1] - site.sizes[0], rel=0.01)


@needs_go
def test_go_tool_pprof_keeps_python_names_in_angle_brackets(tmp_path: Path) -> None:
    profile = Profile("snapshot", "names")
    profile.locations = [
        Location("app.py", 1, "<module>"),
        Location("app.py", 2, "<lambda>"),
        Location("app.py", 3, "outer.<locals>.inner"),
        Location("<string>", 1, ""),
    ]
    profile.samples = [
        Sample((0, 1), 3000, 3),
        Sample((0, 2), 2000, 2),
        Sample((0, 3), 1000, 1),
    ]
    path = tmp_path / "names.pb.gz"
    path.write_bytes(pprof.render(profile))
    rows, _ = go_pprof_top(path, tmp_path, "-sample_index=inuse_objects")
    assert [(row.name, row.flat) for row in rows] == [
        ("<lambda>", 3),
        ("outer.<locals>.inner", 2),
        ("<string>:1", 1),
        ("<module>", 0),
    ]
    assert top_row(rows, "<module>").cum == 6


# -- speedscope ------------------------------------------------------------------------


def speedscope_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def check_speedscope(doc: Dict[str, Any], profile: Profile) -> None:
    speedscope_validator().validate(doc)
    # What the schema cannot say.
    frames = doc["shared"]["frames"]
    assert frames == [
        {
            "name": loc.function or f"{loc.filename}:{loc.lineno}",
            "file": loc.filename,
            "line": loc.lineno,
        }
        for loc in profile.locations
    ]
    assert doc["activeProfileIndex"] == 0
    for view in doc["profiles"]:
        assert view["type"] == "sampled"
        assert len(view["samples"]) == len(view["weights"])
        assert all(w > 0 and isinstance(w, int) for w in view["weights"])
        assert all(0 <= i < len(frames) for stack in view["samples"] for i in stack)
        assert view["startValue"] == 0 and view["endValue"] == sum(view["weights"])


def view(doc: Dict[str, Any], name: str) -> Dict[str, Any]:
    found = [p for p in doc["profiles"] if p["name"].endswith(name)]
    assert len(found) == 1, name
    return found[0]


def weight_by_leaf(doc: Dict[str, Any], name: str) -> Dict[str, int]:
    frames = doc["shared"]["frames"]
    totals: Dict[str, int] = {}
    chosen = view(doc, name)
    for stack, weight in zip(chosen["samples"], chosen["weights"]):
        leaf = frames[stack[-1]]["name"]
        totals[leaf] = totals.get(leaf, 0) + weight
    return totals


def test_speedscope_snapshot(traced: Traced, profiles: Dict[str, Profile]) -> None:
    profile = profiles["snapshot"]
    doc = json.loads(speedscope.render(profile))
    check_speedscope(doc, profile)
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert [(p["name"], p["unit"]) for p in doc["profiles"]] == [
        ("live memory: live bytes", "bytes"),
        ("live memory: live blocks", "none"),
    ]
    # Samples in the profile's order, outermost call first.
    live = doc["profiles"][0]
    assert live["samples"] == [list(s.stack) for s in profile.samples if s.size > 0]
    assert live["endValue"] == profile.total_size
    size, count = line_stats(traced.first, make_blobs)
    assert weight_by_leaf(doc, "live bytes")["make_blobs"] == size
    assert weight_by_leaf(doc, "live blocks")["make_blobs"] == count
    assert weight_by_leaf(doc, "live blocks")["make_small"] >= SMALL


def test_speedscope_diff_splits_growth_and_shrinkage(
    traced: Traced, profiles: Dict[str, Profile]
) -> None:
    profile = profiles["diff"]
    doc = json.loads(speedscope.render(profile))
    check_speedscope(doc, profile)
    assert [p["name"].split(": ", 1)[1] for p in doc["profiles"]] == [
        "grown bytes",
        "grown blocks",
        "shrunk bytes",
        "shrunk blocks",
        "live bytes at the end",
        "live blocks at the end",
    ]
    assert view(doc, "grown bytes")["endValue"] == sum(
        s.size_diff for s in profile.samples if s.size_diff > 0
    )
    assert view(doc, "shrunk bytes")["endValue"] == sum(
        -s.size_diff for s in profile.samples if s.size_diff < 0
    )
    assert view(doc, "live bytes at the end")["endValue"] == profile.total_size
    old, new = line_stats(traced.first, make_small), line_stats(traced.second, make_small)
    assert weight_by_leaf(doc, "shrunk blocks")["make_small"] == old[1] - new[1] >= SMALL
    assert "make_small" not in weight_by_leaf(doc, "grown blocks")
    assert weight_by_leaf(doc, "grown blocks")["make_more"] >= MORE
    assert "make_more" not in weight_by_leaf(doc, "shrunk blocks")


def test_speedscope_leak_report(traced: Traced, profiles: Dict[str, Profile]) -> None:
    profile = profiles["leaks"]
    doc = json.loads(speedscope.render(profile))
    check_speedscope(doc, profile)
    site = traced.report.leaks[0]
    assert weight_by_leaf(doc, "grown bytes")["leak_some"] == site.sizes[-1] - site.sizes[0]
    assert view(doc, "shrunk bytes")["samples"] == []
    assert doc["name"] == profile.title == traced.report.summary()


def test_the_speedscope_schema_rejects_what_speedscope_would() -> None:
    validator = speedscope_validator()
    good = json.loads(speedscope.render(Profile("snapshot")))
    validator.validate(good)
    bad: List[Tuple[str, Callable[[Dict[str, Any]], None]]] = [
        ("no weights", lambda d: d["profiles"].append({**_sampled(), "weights": None})),
        ("unknown unit", lambda d: d["profiles"].append({**_sampled(), "unit": "kilobytes"})),
        ("unknown type", lambda d: d["profiles"].append({**_sampled(), "type": "heap"})),
        ("frame without name", lambda d: d["shared"]["frames"].append({"file": "a.py"})),
        ("stack of strings", lambda d: d["profiles"].append({**_sampled(), "samples": [["a"]]})),
        ("other $schema", lambda d: d.update({"$schema": "https://example.com/schema.json"})),
        ("no version", lambda d: d.pop("version")),
        ("no shared", lambda d: d.pop("shared")),
    ]
    for what, spoil in bad:
        doc = json.loads(json.dumps(good))
        spoil(doc)
        assert not validator.is_valid(doc), what


def _sampled() -> Dict[str, Any]:
    return {
        "type": "sampled",
        "name": "x",
        "unit": "bytes",
        "startValue": 0,
        "endValue": 1,
        "samples": [[0]],
        "weights": [1],
    }


# -- leakguard JSON -------------------------------------------------------------------


def assert_same_profile(loaded: Profile, original: Profile) -> None:
    assert isinstance(loaded, Profile)
    assert (loaded.kind, loaded.title, loaded.traceback_limit) == (
        original.kind,
        original.title,
        original.traceback_limit,
    )
    assert loaded.locations == original.locations
    assert loaded.samples == original.samples
    assert all(isinstance(s.stack, tuple) for s in loaded.samples)


@pytest.mark.parametrize("kind", ["snapshot", "diff", "leaks"])
def test_json_round_trip(profiles: Dict[str, Profile], kind: str, tmp_path: Path) -> None:
    profile = profiles[kind]
    data = jsonfmt.render(profile)
    doc = json.loads(data)
    assert doc["format"] == "leakguard-profile" and doc["version"] == 1
    assert doc["kind"] == kind
    assert doc["totals"] == {
        "size": profile.total_size,
        "count": profile.total_count,
        "size_diff": profile.total_size_diff,
        "count_diff": profile.total_count_diff,
    }
    loaded = leakguard.load_json(data)
    assert_same_profile(loaded, profile)
    assert jsonfmt.render(loaded) == data  # nothing lost, nothing reordered
    path = tmp_path / f"{kind}.json"
    leakguard.export(profile, path, format="json")
    assert_same_profile(leakguard.load_json(path), profile)
    assert_same_profile(leakguard.load_json(str(path)), profile)


def test_json_samples_are_outermost_first(traced: Traced, profiles: Dict[str, Profile]) -> None:
    doc = json.loads(jsonfmt.render(profiles["snapshot"]))
    locations = doc["locations"]
    blobs = [s for s in doc["samples"] if locations[s["stack"][-1]]["function"] == "make_blobs"]
    assert blobs
    for sample in blobs:
        functions = [locations[i]["function"] for i in sample["stack"]]
        assert functions.index("build") < functions.index("make_blobs")
    assert sum(s["size"] for s in blobs) == line_stats(traced.first, make_blobs)[0]


def test_json_edge_values_round_trip() -> None:
    profile = Profile("diff", 't\u00eftle "quoted"\n', 25)
    profile.locations = [Location("caf\udce9.py", 0, ""), Location("b.py", 7, "<module>")]
    profile.samples = [Sample((), 0, 0, -(2**62), -1), Sample((1, 0, 0), 2**63 - 1, 1, 2**62, 1)]
    data = jsonfmt.render(profile)
    data.decode("ascii")
    assert_same_profile(leakguard.load_json(data), profile)
    empty = Profile("leaks")
    assert_same_profile(leakguard.load_json(jsonfmt.render(empty)), empty)


def test_json_is_documented() -> None:
    # Every key the writer puts in a file is described in docs/exports.md.
    text = DOCS.read_text(encoding="utf-8")
    profile = Profile("snapshot", "x")
    profile.locations = [Location("a.py", 1, "f")]
    profile.samples = [Sample((0,), 1, 1)]
    doc = json.loads(jsonfmt.render(profile))
    keys = set(doc) | set(doc["totals"]) | set(doc["locations"][0]) | set(doc["samples"][0])
    missing = [key for key in sorted(keys) if f"`{key}`" not in text]
    assert not missing, missing
    # The example in the docs is a valid file.
    example = re.search(r"```json\n(.*?)```", text, re.S)
    assert example is not None
    loaded = leakguard.load_json(example.group(1).encode())
    assert loaded.kind == "diff" and len(loaded.samples) == 1


def _valid_doc() -> Dict[str, Any]:
    profile = Profile("diff", "two samples", 4)
    profile.locations = [Location("a.py", 1, "f"), Location("a.py", 2, "g")]
    profile.samples = [Sample((0, 1), 100, 2, 40, 1), Sample((0,), 10, 1, -10, -1)]
    doc: Dict[str, Any] = json.loads(jsonfmt.render(profile))
    return doc


def _set(path: str, value: Any) -> Callable[[Dict[str, Any]], None]:
    def spoil(doc: Dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        elif value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return spoil


_DELETE = object()

BAD_DOCUMENTS: List[Tuple[str, Callable[[Dict[str, Any]], None], str]] = [
    ("other format", _set("format", "pprof"), 'not a leakguard JSON profile (no "format"'),
    ("no format", _set("format", _DELETE), "not a leakguard JSON profile"),
    ("newer version", _set("version", 2), "version 2 (written by a newer leakguard)"),
    ("version 0", _set("version", 0), "version 0: this leakguard reads version 1"),
    ("version as text", _set("version", "1"), '"version" must be an integer, not a string ("1")'),
    ("version true", _set("version", True), '"version" must be an integer, not a boolean'),
    (
        "unknown kind",
        _set("kind", "heap"),
        "\"kind\" must be one of snapshot, diff, leaks, not 'heap'",
    ),
    ("title null", _set("title", None), '"title" must be a string, not null'),
    ("no title", _set("title", _DELETE), '"title" is missing'),
    ("limit 0", _set("traceback_limit", 0), '"traceback_limit" must be between 1 and'),
    (
        "limit float",
        _set("traceback_limit", 2.0),
        '"traceback_limit" must be an integer, not a number',
    ),
    ("no locations", _set("locations", _DELETE), '"locations" is missing'),
    ("locations object", _set("locations", {}), '"locations" must be an array, not an object'),
    (
        "location not object",
        _set("locations/1", [1]),
        "locations[1] must be an object, not an array",
    ),
    (
        "filename number",
        _set("locations/0/filename", 3),
        'locations[0]."filename" must be a string',
    ),
    ("lineno text", _set("locations/1/lineno", "2"), 'locations[1]."lineno" must be an integer'),
    ("no function", _set("locations/1/function", _DELETE), 'locations[1]."function" is missing'),
    (
        "repeated location",
        _set("locations/1/lineno", 1),
        "locations[1] repeats locations[0] (a.py:1)",
    ),
    ("stack object", _set("samples/0/stack", {"0": 1}), 'samples[0]."stack" must be an array'),
    (
        "index out of range",
        _set("samples/0/stack/1", 2),
        "samples[0].stack[1]: location index 2 out of range (2 locations)",
    ),
    (
        "negative index",
        _set("samples/1/stack/0", -1),
        "samples[1].stack[0]: location index -1 out of range",
    ),
    (
        "index true",
        _set("samples/0/stack/0", True),
        "samples[0].stack[0] must be a location index, not a boolean",
    ),
    (
        "index float",
        _set("samples/0/stack/0", 0.0),
        "samples[0].stack[0] must be a location index, not a number",
    ),
    ("negative size", _set("samples/0/size", -1), 'samples[0]."size" must be at least 0, got -1'),
    (
        "count float",
        _set("samples/0/count", 2.5),
        'samples[0]."count" must be an integer, not a number (2.5)',
    ),
    ("huge diff", _set("samples/1/size_diff", 2**63), 'samples[1]."size_diff" must be between'),
    ("no count_diff", _set("samples/1/count_diff", _DELETE), 'samples[1]."count_diff" is missing'),
    ("sample not object", _set("samples/0", 5), "samples[0] must be an object, not a number (5)"),
    ("totals off", _set("totals/size", 111), 'totals."size" is 111 but the samples add up to 110'),
    ("totals missing", _set("totals", _DELETE), '"totals" is missing'),
    ("totals diff text", _set("totals/count_diff", "0"), 'totals."count_diff" must be an integer'),
]


@pytest.mark.parametrize(
    "spoil, message", [case[1:] for case in BAD_DOCUMENTS], ids=[case[0] for case in BAD_DOCUMENTS]
)
def test_json_reader_names_what_is_wrong(
    spoil: Callable[[Dict[str, Any]], None], message: str, tmp_path: Path
) -> None:
    doc = _valid_doc()
    leakguard.load_json(json.dumps(doc).encode())  # the unspoiled document is fine
    spoil(doc)
    data = json.dumps(doc).encode()
    with pytest.raises(leakguard.SnapshotError) as info:
        leakguard.load_json(data)
    assert message in str(info.value)
    assert info.value.filename is None
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    with pytest.raises(leakguard.SnapshotError) as info:
        leakguard.load_json(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert info.value.filename == str(path)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not valid JSON (Expecting value at line 1 column 1)"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
        (b'{"format": "leakguard-profile", "version": 1', "not valid JSON"),
        (b"[1, 2]", "not a leakguard JSON profile"),
        (b"null", "not a leakguard JSON profile"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"format": "leakguard-profile", "version": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"format": "leakguard-profile", "version": NaN}', '"version" must be an integer'),
    ],
    ids=["empty", "not utf-8", "truncated", "array", "null", "deep", "long int", "nan"],
)
def test_json_reader_rejects_what_is_not_a_profile(data: bytes, message: str) -> None:
    with pytest.raises(leakguard.SnapshotError) as info:
        leakguard.load_json(data)
    assert message in str(info.value)


def test_json_reader_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        leakguard.load_json(tmp_path / "missing.json")
    with pytest.raises(leakguard.UsageTypeError, match="not int"):
        leakguard.load_json(42)  # type: ignore[arg-type]
    assert leakguard.SnapshotError is not None and issubclass(leakguard.SnapshotError, ValueError)


# -- exporting while tracing ------------------------------------------------------------


def test_what_an_export_allocates_is_not_recorded(tmp_path: Path) -> None:
    from leakguard import _leakguard

    assert not leakguard.is_tracing()
    leakguard.start(5)
    try:
        blobs = make_blobs(10)
        snapshot = leakguard.take_snapshot()
        outputs = [_export.render(snapshot, fmt) for fmt in ("pprof", "speedscope", "json")]
        leakguard.export(snapshot, tmp_path / "while-tracing.json", format="json")
        after = bytearray(100)
        assert leakguard.is_tracing()
        assert leakguard.get_object_traceback(blobs[0]) is not None
        assert [leakguard.get_object_traceback(data) for data in outputs] == [None] * 3
        assert leakguard.get_object_traceback(after) is not None, "recording resumes"
        # A thread that was not recording stays so.
        assert _leakguard._pause_thread(True) is False
        inside = _export.render(snapshot, "json")
        assert _leakguard._pause_thread(False) is True
        assert leakguard.get_object_traceback(inside) is None
        later = bytearray(100)
        assert leakguard.get_object_traceback(later) is not None
    finally:
        leakguard.stop()
    assert leakguard.load_json(tmp_path / "while-tracing.json").kind == "snapshot"


# -- choosing the format ----------------------------------------------------------------


def _all_formats_importable() -> Optional[str]:
    for name in _export.FORMATS:
        try:
            _export.format_module(name)
        except ImportError as e:
            return f"the {name!r} export is not importable here ({e})"
    return None


needs_every_format = pytest.mark.skipif(
    _all_formats_importable() is not None, reason=str(_all_formats_importable())
)


@needs_every_format
def test_export_chooses_the_format_by_the_file_name(traced: Traced, tmp_path: Path) -> None:
    snapshot = traced.first
    leakguard.export(snapshot, tmp_path / "a.pb.gz")
    decode_pprof((tmp_path / "a.pb.gz").read_bytes())
    leakguard.export(snapshot, tmp_path / "B.PB.GZ")
    decode_pprof((tmp_path / "B.PB.GZ").read_bytes())
    leakguard.export(snapshot, str(tmp_path / "a.speedscope.json"))
    doc = json.loads((tmp_path / "a.speedscope.json").read_bytes())
    assert doc["$schema"] == speedscope.SCHEMA
    leakguard.export(traced.second, tmp_path / "d.json", base=traced.first)
    loaded = leakguard.load_json(tmp_path / "d.json")
    assert loaded.kind == "diff"
    assert_same_profile(loaded, leakguard.profile_of(traced.second, traced.first))


@needs_every_format
def test_export_names_the_endings_it_knows(traced: Traced, tmp_path: Path) -> None:
    with pytest.raises(leakguard.UsageError) as info:
        leakguard.export(traced.first, tmp_path / "profile.txt")
    text = str(info.value)
    assert "cannot tell the export format from the file name" in text
    for ending in (".pb.gz (pprof)", ".speedscope.json (speedscope)", ".json (json)"):
        assert ending in text
    assert not (tmp_path / "profile.txt").exists()


def test_unknown_format_is_a_usage_error(traced: Traced, tmp_path: Path) -> None:
    with pytest.raises(leakguard.UsageError) as info:
        leakguard.export(traced.first, tmp_path / "x.pb.gz", format="yaml")
    assert "unknown export format 'yaml'" in str(info.value)
    assert "json" in str(info.value) and "pprof" in str(info.value)
    with pytest.raises(leakguard.UsageError, match="unknown export format 'PPROF'"):
        _export.render(traced.first, "PPROF")
    assert not (tmp_path / "x.pb.gz").exists()


def test_export_of_something_else_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(leakguard.UsageTypeError, match="expected a Snapshot"):
        leakguard.export({"not": "a snapshot"}, tmp_path / "x.json", format="json")


def test_each_format_module_declares_itself() -> None:
    for module in (pprof, speedscope, jsonfmt):
        assert module.SUFFIX.startswith(".") and module.DESCRIPTION
    assert _export.FORMATS["pprof"] == "pprof"
    assert _export.FORMATS["speedscope"] == "speedscope"
    assert _export.FORMATS["json"] == "jsonfmt"

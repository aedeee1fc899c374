"""From traced blocks back to live objects: ``_live_blocks`` lists the live
blocks of a traceback, ``_locate_objects`` finds the objects that own them.

Every test allocates real objects on a line marked ``# site: <name>``, finds
that line's blocks through a real snapshot, and checks that the objects found
are the very objects it keeps (identity, not equality). Buffers are tested by
creating the containers on one line and growing them on the marked one, so
that only the buffer belongs to the site.
"""

from __future__ import annotations

import gc
import io
import sys
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest

import leakguard
from leakguard import _leakguard as native

PY = sys.version_info[:2]

with open(__file__, encoding="utf-8") as _f:
    SOURCE = _f.read().splitlines()

Key = Tuple[Tuple[str, int], ...]
Found = List[Tuple[int, Any, bool, List[Any]]]


@pytest.fixture(autouse=True)
def tracing() -> Iterator[None]:
    native.start(1)
    try:
        yield
    finally:
        native.stop()


def line_of(site: str) -> int:
    """The line marked ``# site: <site>`` in this file."""
    marker = f"# site: {site}"
    lines = [i for i, text in enumerate(SOURCE, 1) if text.rstrip().endswith(marker)]
    assert len(lines) == 1, marker
    return lines[0]


def key_of(site: str) -> Key:
    """The ``statistics("traceback")`` key of the marked line (nframe=1)."""
    key = ((__file__, line_of(site)),)
    stats = native.take_snapshot().statistics("traceback", False)
    assert key in [k for _, _, k in stats], f"no live block allocated at {site}"
    return key


def blocks_of(site: str, limit: int = 1_000_000) -> List[int]:
    (blocks,) = native._live_blocks([key_of(site)], limit)
    return blocks


def locate(blocks: Dict[int, int], per_key: int = 1000, extra: Sequence[Any] = ()) -> Found:
    objects = gc.get_objects()
    objects.extend(extra)
    return native._locate_objects(objects, blocks, per_key)


def keyed(blocks: Sequence[int], key: int = 0) -> Dict[int, int]:
    return dict.fromkeys(blocks, key)


def is_member(obj: object, container: Sequence[Any]) -> bool:
    return any(obj is x for x in container)


def only_buffers(found: Found, kind: type) -> List[Any]:
    """The objects of type ``kind`` found; all must have matched by a buffer."""
    objs = [obj for _, obj, _, _ in found if type(obj) is kind]
    assert all(via for _, obj, via, _ in found if type(obj) is kind)
    return objs


class Obj:
    def __init__(self, i: int) -> None:
        self.a = i  # site: instance dict
        self.b = -i


def alloc_bytearrays(n: int) -> List[bytearray]:
    return [bytearray(1000) for _ in range(n)]  # site: bytearrays


# ---------------------------------------------------------------------------
# _live_blocks


def test_live_blocks_are_the_blocks_of_the_site() -> None:
    arrays = alloc_bytearrays(100)
    blocks = blocks_of("bytearrays")
    # Each bytearray and its 1000-byte buffer, at least.
    assert len(blocks) >= 200
    assert len(set(blocks)) == len(blocks)
    assert {native._object_block(b) for b in arrays} <= set(blocks)
    assert {native._owned_blocks(b)[1] for b in arrays} <= set(blocks)


def test_live_blocks_limit_and_parallel_results() -> None:
    arrays = alloc_bytearrays(50)
    key = key_of("bytearrays")
    assert len(native._live_blocks([key], 5)[0]) == 5
    assert native._live_blocks([key], 0) == [[]]
    nowhere: Key = (("nowhere.py", 1),)
    res = native._live_blocks([key, nowhere, key, (), ((__file__, -1),)], 7)
    assert [len(r) for r in res] == [7, 0, 7, 0, 0]
    assert res[0] == res[2]
    assert native._live_blocks([], 10) == []
    del arrays


def test_live_blocks_ignores_total_nframe() -> None:
    # The same frame (nframe=1) at two stack depths: two engine tracebacks.
    shallow = alloc_bytearrays(20)
    deep = (lambda: (lambda: alloc_bytearrays(20))())()
    blocks = set(blocks_of("bytearrays"))
    for b in shallow + deep:
        assert native._object_block(b) in blocks


def test_live_blocks_needs_tracing_and_a_valid_limit() -> None:
    with pytest.raises(leakguard.UsageError):
        native._live_blocks([], -1)
    native.stop()
    with pytest.raises(leakguard.TracingError):
        native._live_blocks([], 10)


# ---------------------------------------------------------------------------
# _locate_objects: objects by their own block


def test_objects_found_by_their_own_block() -> None:
    arrays = alloc_bytearrays(100)
    found = locate(keyed(blocks_of("bytearrays")), per_key=1000)
    got = [obj for _, obj, via, _ in found if not via]
    assert len(got) >= 100
    assert all(type(obj) is bytearray and is_member(obj, arrays) for obj in got)
    assert all(key == 0 for key, _, _, _ in found)


def test_non_gc_objects_found_as_references() -> None:
    n = 100
    strs = [f"s{i}-{i * 7919}" for i in range(n)]  # site: strs
    raw = [b"x" * 40 + i.to_bytes(4, "little") for i in range(n)]  # site: bytes
    ints = [(1 << 70) + i for i in range(n)]  # site: ints
    for site, kind, container in (("strs", str, strs), ("bytes", bytes, raw), ("ints", int, ints)):
        found = locate(keyed(blocks_of(site)), per_key=1000)
        objs = [obj for _, obj, _, _ in found if type(obj) is kind]
        assert len(objs) == n, site
        assert all(is_member(obj, container) for obj in objs), site
        assert not gc.is_tracked(objs[0])


def test_references_of_untracked_containers_are_followed() -> None:
    def make_strs() -> List[str]:
        return [f"u{i}-{i * 31}" for i in range(50)]  # site: untracked

    holder = [(s,) for s in make_strs()]
    gc.collect()  # untracks the tuples: they hold only a str
    assert not gc.is_tracked(holder[0])
    found = locate(keyed(blocks_of("untracked")), per_key=1000)
    objs = [obj for _, obj, _, _ in found if type(obj) is str]
    assert len(objs) == 50
    assert all(is_member(obj, [t[0] for t in holder]) for obj in objs)
    # each comes with the way down: its untracked tuple, then the tracked list
    paths = [path for _, obj, _, path in found if type(obj) is str]
    for obj, path in zip(objs, paths):
        assert len(path) == 2
        assert type(path[0]) is tuple and path[0][0] is obj and not gc.is_tracked(path[0])
        assert path[1] is holder


def test_objects_reached_from_tracked_containers_have_no_path() -> None:
    def make_strs() -> List[str]:
        return [f"t{i}-{i * 17}" for i in range(20)]  # site: tracked-parent

    holder = make_strs()
    found = locate(keyed(blocks_of("tracked-parent")), per_key=1000)
    paths = [path for _, obj, _, path in found if type(obj) is str]
    assert len(paths) == 20 and all(p == [] for p in paths)
    del holder


# ---------------------------------------------------------------------------
# _locate_objects: objects by a buffer they own


class SubList(list):  # type: ignore[type-arg]
    pass


class SubDict(dict):  # type: ignore[type-arg]
    pass


def test_list_found_by_its_item_array() -> None:
    lists: List[List[int]] = [[] for _ in range(20)]
    for lst in lists:
        lst.extend(range(50))  # site: list items
    found = locate(keyed(blocks_of("list items")))
    objs = only_buffers(found, list)
    assert len(objs) == 20
    assert all(is_member(obj, lists) for obj in objs)
    assert native._owned_blocks(lists[0])[1] in blocks_of("list items")


def test_subclass_instances_found_by_their_buffers() -> None:
    template = {f"k{j}": j for j in range(10)}
    subs = [(SubList(), SubDict()) for _ in range(20)]
    for sub_list, sub_dict in subs:
        sub_list.attr = sub_dict.attr = 1  # type: ignore[attr-defined]
        sub_list.extend(range(50))  # site: subclass list items
        sub_dict.update(template)  # site: subclass dict keys
    cases = (("subclass list items", SubList, 0), ("subclass dict keys", SubDict, 1))
    for site, kind, index in cases:
        objs = only_buffers(locate(keyed(blocks_of(site))), kind)
        assert len(objs) == 20, site
        assert all(is_member(obj, [pair[index] for pair in subs]) for obj in objs), site


def test_dict_found_by_its_keys() -> None:
    template = {f"k{j}": j for j in range(10)}
    dicts: List[Dict[str, int]] = [{} for _ in range(20)]
    for d in dicts:
        d.update(template)  # site: dict keys
    objs = only_buffers(locate(keyed(blocks_of("dict keys"))), dict)
    assert len(objs) == 20
    assert all(is_member(obj, dicts) for obj in objs)


def test_empty_dicts_own_no_shared_table() -> None:
    for d in ({}, dict(), {"a": 1}):
        d.clear()
        assert native._owned_blocks(d) == [native._object_block(d)]


def test_set_found_by_its_table() -> None:
    sets: List[Any] = [set() for _ in range(20)]
    for s in sets:
        s.update(range(100, 120))  # site: set table
    objs = only_buffers(locate(keyed(blocks_of("set table"))), set)
    assert len(objs) == 20
    assert all(is_member(obj, sets) for obj in objs)
    small = {1, 2}
    assert native._owned_blocks(small) == [native._object_block(small)]
    frozen = frozenset(range(100))
    assert len(native._owned_blocks(frozen)) == 2


def test_bytearray_found_by_its_buffer() -> None:
    arrays = [bytearray() for _ in range(20)]
    for b in arrays:
        b.extend(bytes(500))  # site: bytearray buffer
    del b[:10]  # the buffer still starts where it was allocated
    objs = only_buffers(locate(keyed(blocks_of("bytearray buffer"))), bytearray)
    assert len(objs) == 20
    assert all(is_member(obj, arrays) for obj in objs)


def test_stringio_found_by_its_text_buffer() -> None:
    streams = [io.StringIO() for _ in range(10)]
    for sio in streams:
        sio.write("x" * 300)  # site: stringio text
        sio.seek(0)  # realized: the text is in its own buffer
        sio.write("y" * 5000)  # site: stringio text grown
    objs = only_buffers(locate(keyed(blocks_of("stringio text grown"))), io.StringIO)
    assert len(objs) == 10
    assert all(is_member(obj, streams) for obj in objs)
    assert all(native._hidden_referents(sio) == [] for sio in streams)


def test_text_a_stringio_accumulates_is_a_hidden_referent() -> None:
    # Written from an empty start, without a read or a seek, the text is
    # kept where the StringIO's traverse does not look (up to 3.11).
    sio = io.StringIO()
    for i in range(50):
        sio.write(f"line {i}\n")
    hidden = native._hidden_referents(sio)
    if PY >= (3, 12):  # the traverse visits the str being built
        assert hidden == []
        assert any(isinstance(obj, str) for obj in gc.get_referents(sio))
    else:  # the lists of str written, not yet joined
        assert hidden and all(isinstance(part, list) for part in hidden)
        assert "".join(s for part in hidden for s in part) == sio.getvalue()
        assert not any(obj is part for obj in gc.get_referents(sio) for part in hidden)
    sio.seek(0)
    assert sio.read(4) == "line"  # a partial read "realizes" the text in its buffer
    assert native._hidden_referents(sio) == []
    assert native._hidden_referents(io.StringIO("given")) == []
    sio.close()
    assert native._hidden_referents(sio) == []


def test_a_bytesio_buffer_is_a_hidden_referent() -> None:
    bio = io.BytesIO()
    bio.write(b"z" * 1000)
    hidden = native._hidden_referents(bio)
    if PY >= (3, 12):  # the traverse visits it
        assert hidden == [] and any(isinstance(o, bytes) for o in gc.get_referents(bio))
    else:
        (buf,) = hidden
        assert isinstance(buf, bytes) and buf.startswith(b"z" * 1000)
        assert not any(obj is buf for obj in gc.get_referents(bio))
    bio.close()
    assert native._hidden_referents(bio) == []
    assert native._hidden_referents([1, 2]) == [] and native._hidden_referents(5) == []


def test_instance_values() -> None:
    objs = [Obj(i) for i in range(50)]  # site: instances
    own = {native._object_block(o) for o in objs}
    if PY in ((3, 11), (3, 12)):
        # The values array is allocated with the instance, apart from it.
        assert all(len(native._owned_blocks(o)) == 2 for o in objs)
        values = [b for b in blocks_of("instances") if b not in own]
        found = only_buffers(locate(keyed(values)), Obj)
        assert len(found) == 50
        assert all(is_member(obj, objs) for obj in found)
    elif PY >= (3, 13):
        # Inline values: inside the object's own block.
        assert all(native._owned_blocks(o) == [native._object_block(o)] for o in objs)
    else:
        # 3.9/3.10: the values belong to the instance's __dict__ (split).
        dicts = [o.__dict__ for o in objs]
        mine = {native._object_block(d) for d in dicts}
        values = [b for b in blocks_of("instance dict") if b not in mine]
        found = only_buffers(locate(keyed(values)), dict)
        assert len(found) == 50
        assert all(is_member(obj, dicts) for obj in found)


def test_heap_type_owns_its_cached_keys() -> None:
    class Fresh:
        def __init__(self) -> None:
            self.x = 1

    Fresh()
    blocks = native._owned_blocks(Fresh)
    assert blocks[0] == native._object_block(Fresh)
    assert len(blocks) == 2
    assert native._owned_blocks(int) == [native._object_block(int)]


# ---------------------------------------------------------------------------
# _locate_objects: limits, keys, edge cases


def test_per_key_limit_and_several_keys() -> None:
    strs = [f"p{i}-{i * 13}" for i in range(100)]  # site: per key
    arrays = alloc_bytearrays(30)
    blocks = keyed(blocks_of("per key"), 1)
    blocks.update(keyed(blocks_of("bytearrays"), 2))
    found = locate(blocks, per_key=5)
    assert sorted(key for key, _, _, _ in found) == [1] * 5 + [2] * 5
    by_key = {k: [obj for key, obj, _, _ in found if key == k] for k in (1, 2)}
    # The lists' item arrays are allocated on the same lines.
    assert all(obj is strs or is_member(obj, strs) for obj in by_key[1])
    assert all(obj is arrays or is_member(obj, arrays) for obj in by_key[2])
    assert len({id(obj) for obj in by_key[1]}) == 5
    assert locate(blocks, per_key=0) == []


def test_each_object_is_reported_once_per_key() -> None:
    target = [object() for _ in range(3)]
    # In gc.get_objects(), and referenced from the extra roots too.
    found = locate({native._object_block(target): 9}, per_key=10, extra=[target, [target]])
    assert [(key, via) for key, _, via, _ in found] == [(9, False)]
    assert found[0][1] is target


def test_found_objects_are_strong_references() -> None:
    def make() -> List[str]:
        return [f"w{i}-{i * 17}" for i in range(10)]  # site: strong

    strs = make()
    found = locate(keyed(blocks_of("strong")))
    expected = sorted(strs)
    del strs
    gc.collect()
    assert sorted(obj for _, obj, _, _ in found if type(obj) is str) == expected


def test_locate_without_tracing_and_bad_arguments() -> None:
    native.stop()
    target = [1, 2, 3]
    found = native._locate_objects(gc.get_objects(), {native._object_block(target): 4}, 1)
    assert [(key, obj is target, via) for key, obj, via, _ in found] == [(4, True, False)]
    assert native._locate_objects(gc.get_objects(), {}, 5) == []
    with pytest.raises(TypeError):
        native._locate_objects(tuple(gc.get_objects()), {}, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        native._locate_objects([], [], 5)  # type: ignore[arg-type]
    with pytest.raises(leakguard.UsageError):
        native._locate_objects([], {}, -1)


# ---------------------------------------------------------------------------
# _set_peak


def test_set_peak() -> None:
    keep = bytearray(5_000_000)
    native.reset_peak()
    current, peak = native.get_traced_memory()
    assert peak < current + 1_000_000
    native._set_peak(current + 100_000_000)
    assert native.get_traced_memory()[1] >= current + 100_000_000
    native._set_peak(0)  # never below the current traced bytes
    current, peak = native.get_traced_memory()
    assert current <= peak < current + 1_000_000
    with pytest.raises(leakguard.UsageError):
        native._set_peak(-1)
    native.stop()
    native._set_peak(10**9)
    assert native.get_traced_memory() == (0, 0)
    del keep

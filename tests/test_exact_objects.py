"""``_leakguard._exact_objects``: objects reused from the interpreter's free
lists get the traceback of their own creation.

CPython hands freed floats, tuples, lists and dicts out again without asking
the allocator, so the hooks see only the block's first allocation. Each
scenario here frees a temporary created on one line and keeps an object of
the same kind created on the next line: without the switch the kept object is
charged to the first line, with it to its own, as stdlib tracemalloc (which
CPython tells of each reuse) charges it.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections import Counter
from typing import Callable, List, Optional

import pytest

import leakguard
from leakguard import _leakguard

PY = sys.version_info[:2]
SWITCH = PY >= (3, 10)
needs_switch = pytest.mark.skipif(
    not SWITCH, reason="CPython 3.9 keeps its free lists in static variables, out of reach"
)

N = 60
TUPLE_SIZES = (1, 2, 3, 7, 19)
KINDS = ["dict", "list", "float"] + [f"tuple{n}" for n in TUPLE_SIZES]
HERE = os.path.abspath(__file__)
with open(HERE) as _f:
    SOURCE = _f.read().splitlines()


def line_of(marker: str) -> int:
    """The line of this file that ends with the comment ``# <marker>``."""
    (found,) = [i + 1 for i, text in enumerate(SOURCE) if text.endswith(f"# {marker}")]
    return found


@pytest.fixture(autouse=True)
def _everything_off_after():
    yield
    _leakguard._exact_objects(False)
    leakguard.stop()
    tracemalloc.stop()


def scenario(kind: str, n: int = N) -> List[object]:
    """Frees a temporary created on line "A <kind>" and keeps an object of
    the same kind created on line "B <kind>", n times. With free lists in use
    each kept object takes the block the temporary just gave back."""
    kept: List[object] = []
    if kind == "dict":
        for i in range(n):
            tmp: object = {"i": i}  # A dict
            del tmp
            kept.append({"i": i})  # B dict
    elif kind == "list":
        for i in range(n):
            tmp = [i]  # A list
            del tmp
            kept.append([i])  # B list
    elif kind == "float":
        for i in range(n):
            tmp = i + 0.5  # A float
            del tmp
            kept.append(i + 0.25)  # B float
    else:
        items = list(range(int(kind[len("tuple") :])))
        for _ in range(n):
            tmp = tuple(items)  # A tuple
            del tmp
            kept.append(tuple(items))  # B tuple
    return kept


def markers(kind: str) -> tuple[int, int]:
    base = "tuple" if kind.startswith("tuple") else kind
    return line_of(f"A {base}"), line_of(f"B {base}")


Lookup = Callable[[object], Optional[object]]


def lines(objs: List[object], lookup: Lookup) -> Counter[Optional[int]]:
    """How many of `objs` each line of this file is charged with (None: not
    traced, or charged elsewhere)."""
    counts: Counter[Optional[int]] = Counter()
    for obj in objs:
        tb = lookup(obj)
        frame = tb[-1] if tb else None  # type: ignore[index]
        counts[frame.lineno if frame is not None and frame.filename == HERE else None] += 1
    return counts


def run_leakguard(kind: str, exact: bool) -> Counter[Optional[int]]:
    """Runs the scenario under leakguard, from empty free lists, and counts
    the lines its kept objects are charged with."""
    leakguard.start(5)
    # A full collection empties the free lists: what they hold from now on
    # was allocated while tracing.
    gc.collect()
    if exact:
        _leakguard._exact_objects(True)  # again after the collection
    kept = scenario(kind)
    counts = lines(kept, leakguard.get_object_traceback)
    leakguard.stop()
    return counts


def run_stdlib(kind: str) -> Counter[Optional[int]]:
    tracemalloc.start(5)
    gc.collect()
    kept = scenario(kind)
    counts = lines(kept, tracemalloc.get_object_traceback)
    tracemalloc.stop()
    return counts


@needs_switch
@pytest.mark.parametrize("kind", KINDS)
def test_kept_objects_are_charged_to_their_own_line(kind):
    _, b = markers(kind)
    assert run_leakguard(kind, exact=True) == {b: N}
    # The oracle: stdlib tracemalloc, told of each reuse by the interpreter.
    assert run_stdlib(kind) == {b: N}


@pytest.mark.parametrize("kind", KINDS)
def test_without_the_switch_reused_objects_keep_the_first_line(kind):
    """The problem the switch solves, as it stands: each kept object took
    the temporary's block and is charged to the temporary's line."""
    a, b = markers(kind)
    counts = run_leakguard(kind, exact=False)
    if counts[a] == 0:
        pytest.skip(f"{kind} objects are not reused from a free list on {PY}")
    assert counts[b] == 0
    assert counts[a] >= N // 2, counts


@needs_switch
def test_switch_reports_its_previous_state_and_is_idempotent():
    assert _leakguard._exact_objects(False) is False
    assert _leakguard._exact_objects(True) is False
    assert _leakguard._exact_objects(True) is True
    assert _leakguard._exact_objects(True) is True
    assert _leakguard._exact_objects(False) is True
    assert _leakguard._exact_objects(False) is False


@needs_switch
def test_state_says_whether_the_switch_is_on_here():
    assert _leakguard._exact_objects_state() is False
    _leakguard._exact_objects(True)
    try:
        assert _leakguard._exact_objects_state() is True
    finally:
        _leakguard._exact_objects(False)
    assert _leakguard._exact_objects_state() is False


@pytest.mark.skipif(SWITCH, reason="3.9 only")
def test_on_39_the_switch_does_nothing():
    assert _leakguard._exact_objects_state() is None
    assert _leakguard._exact_objects(True) is False
    assert _leakguard._exact_objects(True) is False
    assert _leakguard._exact_objects(False) is False
    a, _ = markers("dict")
    assert run_leakguard("dict", exact=True)[a] >= N // 2


@needs_switch
def test_switching_off_restores_the_free_lists():
    _leakguard._exact_objects(True)
    _leakguard._exact_objects(False)
    for kind in KINDS:
        a, b = markers(kind)
        counts = run_leakguard(kind, exact=False)
        assert counts[b] == 0 and counts[a] >= N // 2, (kind, counts)
    # A float freed and created again right after is the same object.
    x = 3
    first = x + 0.5
    address = id(first)
    del first
    again = x + 0.75
    assert id(again) == address


@needs_switch
def test_reapplying_after_a_full_collection_keeps_objects_exact():
    leakguard.start(5)
    _leakguard._exact_objects(True)
    gc.collect()
    # A full collection makes the float and tuple free lists usable again
    # (3.10-3.13 all reset their counts); lists and dicts stay exact.
    after_collect = {kind: lines(scenario(kind), leakguard.get_object_traceback) for kind in KINDS}
    for kind in ("dict", "list"):
        assert after_collect[kind] == {markers(kind)[1]: N}, kind
    a, _ = markers("float")
    assert after_collect["float"][a] >= N // 2
    assert _leakguard._exact_objects(True) is True
    for kind in KINDS:
        counts = lines(scenario(kind), leakguard.get_object_traceback)
        assert counts == {markers(kind)[1]: N}, (kind, counts)
    current, in_table = _leakguard._consistency()
    assert current == in_table


@needs_switch
def test_toggling_while_threads_churn():
    """4 threads create and drop dicts, lists, tuples and floats (nested,
    kept for a while, subclasses, collections) while the main thread turns
    the switch on and off 1000 times; the traces stay consistent."""
    leakguard.start(3)
    stop = threading.Event()
    errors: list[BaseException] = []

    class D(dict):
        pass

    class L(list):
        pass

    def churn(seed: int) -> None:
        try:
            keep: list[object] = []
            i = seed
            while not stop.is_set():
                i += 1
                d = {"i": i, "f": i * 0.5, "t": (i, i + 1), "l": [i, (i,)]}
                keep.append(d)
                keep.append([float(i), (i, i, i), {"x": [i]}, D(a=i), L([i])])
                keep.append(tuple(range(i % 25)))
                if i % 200 == 0:
                    nested: object = None
                    for _ in range(2000):
                        nested = [{"n": nested}]
                    keep.append(nested)
                if i % 997 == 0 and seed == 0:
                    gc.collect()
                if len(keep) > 300:
                    del keep[: 150 + i % 100]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(k * 100_000,)) for k in range(4)]
    # Hand the GIL over every millisecond, so that the churning threads run
    # between any two toggles without the test taking minutes.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        for t in threads:
            t.start()
        end = time.monotonic() + 3.0
        for n in range(1000):
            _leakguard._exact_objects(n % 2 == 0)
            if n % 100 == 0:
                current, in_table = _leakguard._consistency()
                assert current == in_table
            time.sleep(0)  # lets the others take the GIL
        time.sleep(max(0.0, end - time.monotonic()))
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(interval)
    assert not errors, errors
    current, in_table = _leakguard._consistency()
    assert current == in_table
    assert _leakguard._exact_objects(False) is False


def run_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@needs_switch
def test_freeing_deeply_nested_lists_and_dicts_while_on():
    """The list and dict deallocators keep the interpreter's guard against
    deep recursion (the trashcan) while the switch is on. In a child
    process, on a thread with a small C stack: without the guard this
    crashes."""
    proc = run_python(
        """
        import collections, gc, threading, leakguard
        from leakguard import _leakguard

        class L(list):
            pass

        class D(dict):
            pass

        def nest_and_free():
            for kind in ("list", "dict", "mixed", "ordered", "default", "subclasses"):
                nest_and_free_one(kind)

        def nest_and_free_one(kind):
            x = None
            for i in range(100_000):
                if kind == "list":
                    x = [x]
                elif kind == "dict":
                    x = {"k": x}
                elif kind == "mixed":
                    x = [{"k": (x,)}]
                elif kind == "ordered":
                    x = collections.OrderedDict(k=x)
                elif kind == "default":
                    x = collections.defaultdict(None, k=[x])
                else:
                    x = D(k=L([x]))
            del x
            current, in_table = _leakguard._consistency()
            assert current == in_table, (kind, current, in_table)
            print(kind)

        def nest_and_free_off():
            x = None
            for i in range(100_000):
                x = [{"k": x}]
            del x
            print("off")

        def on_small_stack(target):
            failed = []

            def run():
                try:
                    target()
                except BaseException as e:
                    failed.append(e)

            threading.stack_size(2 * 1024 * 1024)
            t = threading.Thread(target=run)
            t.start()
            t.join()
            assert not failed, failed

        leakguard.start(2)
        assert _leakguard._exact_objects(True) is False
        on_small_stack(nest_and_free)
        gc.collect()
        assert _leakguard._exact_objects(False) is True
        on_small_stack(nest_and_free_off)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "list",
        "dict",
        "mixed",
        "ordered",
        "default",
        "subclasses",
        "off",
    ]


@needs_switch
@pytest.mark.skipif(PY != (3, 12), reason="the watched-dict path is 3.12's")
def test_watched_dicts_are_freed_and_reported():
    _testcapi = pytest.importorskip("_testcapi")
    if not hasattr(_testcapi, "watch_dict"):
        pytest.skip("no dict watcher helpers")
    watcher = _testcapi.add_dict_watcher(0)  # records events
    try:
        leakguard.start(2)
        _leakguard._exact_objects(True)
        watched = [{"n": i} for i in range(100)]
        for d in watched:
            _testcapi.watch_dict(watcher, d)
        outer = {"inner": watched[0]}
        _testcapi.watch_dict(watcher, outer)
        del d, outer, watched
        events = _testcapi.get_dict_watcher_events()
        assert events.count("dealloc") == 101, events
        current, in_table = _leakguard._consistency()
        assert current == in_table
    finally:
        _testcapi.clear_dict_watcher(watcher)

"""The core engine under real conditions: threads, fork, interpreter exit,
blocks that predate tracing, and stdlib tracemalloc running alongside."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import leakguard
from leakguard import _leakguard


@pytest.fixture(autouse=True)
def _tracing_off_after():
    yield
    leakguard.stop()


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter with this leakguard importable."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_current_grows_and_shrinks_with_live_blocks():
    leakguard.start()
    before, _ = leakguard.get_traced_memory()
    block = bytearray(10_000_000)
    grown, peak = leakguard.get_traced_memory()
    assert grown - before >= 10_000_000
    assert peak >= grown
    del block
    after, peak_after = leakguard.get_traced_memory()
    assert after < grown - 9_000_000
    assert peak_after >= grown
    leakguard.reset_peak()
    assert leakguard.get_traced_memory()[1] < grown - 9_000_000


def test_object_traceback_names_the_allocating_line():
    leakguard.start(5)
    obj = bytearray(100)  # the allocating line
    tb = leakguard.get_object_traceback(obj)
    assert tb is not None
    frame = tb[-1]  # most recent frame last, as tracemalloc's Traceback
    assert frame.filename == __file__
    with open(__file__) as f:
        src = f.read().splitlines()[frame.lineno - 1]
    assert "the allocating line" in src
    assert len(tb) >= 2  # the test runner's frames are there too


def test_tracer_memory_is_reported_and_released():
    leakguard.start()
    keep = [object() for _ in range(100_000)]
    used = leakguard.get_tracemalloc_memory()
    assert used > 0
    del keep
    leakguard.stop()
    assert leakguard.get_traced_memory() == (0, 0)


def test_clear_traces_forgets_blocks_but_keeps_tracing():
    leakguard.start()
    keep = bytearray(1_000_000)
    leakguard.clear_traces()
    assert leakguard.is_tracing()
    assert leakguard.get_object_traceback(keep) is None
    assert leakguard.get_traced_memory()[0] < 1_000_000
    fresh = bytearray(1_000_000)
    assert leakguard.get_object_traceback(fresh) is not None


def test_blocks_allocated_before_start_and_freed_after_are_ignored():
    old = [bytearray(1000) for _ in range(2000)]
    leakguard.start()
    base, _ = leakguard.get_traced_memory()
    del old
    gc.collect()
    now, _ = leakguard.get_traced_memory()
    # Freeing untraced blocks never drives the counter down (or below zero).
    assert 0 <= now and now < base + 1_000_000
    current, tracked = _leakguard._consistency()
    assert current == tracked


@pytest.mark.parametrize("nframe", [0, -1, 2**16, 2**30])
def test_out_of_range_nframe_is_a_value_error(nframe):
    with pytest.raises(ValueError, match=r"the number of frames must be in range \[1; 65535\]"):
        leakguard.start(nframe)
    assert not leakguard.is_tracing()


def test_nframe_limit_and_total_are_kept():
    leakguard.start(3)
    assert leakguard.get_traceback_limit() == 3

    def deep(n):
        if n == 0:
            return bytearray(100)
        return deep(n - 1)

    obj = deep(40)
    tb = leakguard.get_object_traceback(obj)
    assert len(tb) == 3
    trace = next(t for t in leakguard.take_snapshot().traces if t.traceback == tb)
    assert trace.traceback.total_nframe >= 41
    leakguard.start(65535)  # like tracemalloc: no effect while tracing
    assert leakguard.get_traceback_limit() == 3
    leakguard.stop()
    leakguard.start(65535)
    assert leakguard.get_traceback_limit() == 65535
    obj2 = deep(200)
    snap = leakguard.take_snapshot()
    trace = next(t for t in snap.traces if t.traceback == leakguard.get_object_traceback(obj2))
    assert len(trace.traceback) == trace.traceback.total_nframe >= 201


def test_threads_allocating_while_tracing_starts_stops_and_snapshots():
    """8 threads churn memory for several seconds while another thread starts
    and stops tracing and takes snapshots; afterwards the counters agree with
    the table exactly."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        try:
            keep: list[object] = []
            i = seed
            while not stop.is_set():
                i += 1
                keep.append(bytearray(i % 3000))
                keep.append({"k": i, "v": [i] * (i % 7)})
                if len(keep) > 500:
                    del keep[: 250 + i % 100]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def controller() -> None:
        try:
            n = 0
            while not stop.is_set():
                n += 1
                leakguard.start(1 + n % 25)
                snap = leakguard.take_snapshot()
                snap.statistics("lineno")
                if n % 3 == 0:
                    leakguard.clear_traces()
                if n % 2 == 0:
                    leakguard.stop()
                time.sleep(0.005)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(k * 1000,)) for k in range(8)]
    threads.append(threading.Thread(target=controller))
    for t in threads:
        t.start()
    time.sleep(4.0)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors

    leakguard.start(5)
    junk = [bytearray(100) for _ in range(1000)]
    current, in_table = _leakguard._consistency()
    assert current == in_table
    snap = leakguard.take_snapshot()
    del junk
    by_file = snap.statistics("filename")
    assert sum(t.size for t in snap.traces) == sum(s.size for s in by_file)


def test_current_equals_sum_of_traces_after_raw_allocations_without_gil():
    # zlib and bz2 compress with the GIL released and allocate through
    # PyMem_RawMalloc from worker threads.
    import bz2
    import zlib

    leakguard.start(10)
    data = os.urandom(200_000) * 5

    def work() -> None:
        for _ in range(20):
            zlib.compress(data, 9)
            bz2.compress(data[:200_000])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    current, in_table = _leakguard._consistency()
    assert current == in_table


def test_tracing_continues_in_a_forked_child():
    r = run_python(
        """
        import os, threading, leakguard
        leakguard.start(5)
        stop = False
        def churn():
            while not stop:
                [bytearray(50) for _ in range(100)]
        workers = [threading.Thread(target=churn) for _ in range(3)]
        for w in workers: w.start()
        codes = []
        for _ in range(20):
            pid = os.fork()
            if pid == 0:
                obj = bytearray(10)
                tb = leakguard.get_object_traceback(obj)
                snap = leakguard.take_snapshot()
                ok = tb is not None and leakguard.is_tracing() and len(snap.traces) > 0
                os._exit(0 if ok else 3)
            codes.append(os.waitpid(pid, 0)[1])
        stop = True
        for w in workers: w.join()
        assert leakguard.get_object_traceback(bytearray(4)) is not None
        print("codes", codes)
        assert all(c == 0 for c in codes), codes
        """
    )
    assert r.returncode == 0, r.stderr
    assert "codes" in r.stdout


def test_tracing_left_on_at_interpreter_exit():
    # A daemon thread keeps allocating while the interpreter shuts down,
    # except on 3.10, where CPython itself sometimes crashes in take_gil()
    # when a daemon thread outlives finalization (with or without leakguard).
    daemon_at_exit = sys.version_info[:2] != (3, 10)
    r = run_python(
        f"""
        import threading, time, leakguard
        leakguard.start(25)
        keep = [bytearray(100) for _ in range(10000)]
        running = True
        def churn():
            while running:
                [dict(a=1) for _ in range(100)]
        worker = threading.Thread(target=churn, daemon=True)
        worker.start()
        time.sleep(0.2)
        if not {daemon_at_exit}:
            running = False
            worker.join()
        print("exiting", leakguard.is_tracing())
        """
    )
    assert r.returncode == 0, r.stderr
    assert "exiting True" in r.stdout


def test_leakguard_on_top_of_stdlib_tracemalloc_survives_its_stop():
    r = run_python(
        """
        import tracemalloc, leakguard
        tracemalloc.start(3)
        leakguard.start(3)
        a = bytearray(12)
        assert leakguard.get_object_traceback(a) is not None
        assert tracemalloc.get_object_traceback(a) is not None
        tracemalloc.stop()
        b = bytearray(34)
        assert leakguard.get_object_traceback(b) is not None, "leakguard lost its hooks"
        del a, b
        from leakguard import _leakguard
        cur, table = _leakguard._consistency()
        assert cur == table
        leakguard.stop()
        tracemalloc.start()
        c = bytearray(5)
        assert tracemalloc.get_object_traceback(c) is not None
        print("ok")
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_stdlib_tracemalloc_on_top_of_leakguard():
    r = run_python(
        """
        import tracemalloc, leakguard
        from leakguard import _leakguard
        leakguard.start(3)
        tracemalloc.start(3)
        a = bytearray(12)
        assert leakguard.get_object_traceback(a) is not None
        assert tracemalloc.get_object_traceback(a) is not None
        leakguard.stop()           # covered by tracemalloc: becomes pass-through
        assert _leakguard._hooks_position() == "covered"
        b = bytearray(3)
        assert tracemalloc.get_object_traceback(b) is not None
        leakguard.start(3)         # still in the chain: tracing again
        c = bytearray(4)
        assert leakguard.get_object_traceback(c) is not None
        tracemalloc.stop()         # restores leakguard's hooks on top
        assert _leakguard._hooks_position() == "on top"
        d = bytearray(55)
        assert leakguard.get_object_traceback(d) is not None
        leakguard.stop()
        assert _leakguard._hooks_position() == "absent"
        print("ok")
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_traced_bytes_match_stdlib_tracemalloc_within_one_percent():
    workload = """
        keep = []
        for i in range(20000):
            keep.append({"id": i, "name": f"item-{i}", "tags": [str(i)] * 3})
            keep.append(json.dumps(keep[-1]))
        keep.append(re.sub(r"\\d", "#", " ".join(map(str, range(5000)))))
        gc.collect()
    """
    results = {}
    for tracer in ("tracemalloc", "leakguard"):
        code = (
            f"import gc, json, re, {tracer} as t\nt.start(1)\n"
            "before = t.get_traced_memory()[0]\n"
            + textwrap.dedent(workload)
            + "print(t.get_traced_memory()[0] - before)\n"
        )
        r = run_python(code)
        assert r.returncode == 0, r.stderr
        results[tracer] = int(r.stdout.split()[-1])
    ratio = results["leakguard"] / results["tracemalloc"]
    assert abs(ratio - 1) < 0.01, results


def _depth() -> int:
    """Frames on the caller's stack, as sys._getframe() sees them."""
    n, f = 0, sys._getframe(1)
    while f is not None:
        n, f = n + 1, f.f_back
    return n


def test_total_frame_count_stays_exact_as_the_stack_changes_under_the_same_frames():
    # The frame count below the kept frames is cached per thread; these
    # shapes reuse the same functions, lines and (often) frame addresses at
    # different depths, which is what the cache must not be fooled by.
    def probe(limit):
        got = _leakguard._capture_stack(limit)[1]
        return got, _depth()

    def at_depth(n, limit):
        if n == 0:
            return probe(limit)
        return at_depth(n - 1, limit)

    def gen(limit):
        while True:
            yield probe(limit)

    for limit in (1, 2, 5):
        for n in [0, 7, 3, 50, 3, 0, 120, 1, 1, 64, 2] * 3:
            got, expected = at_depth(n, limit)
            assert got == expected, (limit, n)
        g = gen(limit)
        for n in [5, 40, 5, 0, 17, 17, 3]:

            def resume(k, g=g):
                if k == 0:
                    return next(g)
                return resume(k - 1, g)

            got, expected = resume(n)
            assert got == expected, (limit, n)

        def nested(n, limit):
            # Generator frames live in heap objects, recycled between rounds.
            if n == 0:
                yield probe(limit)
            else:
                yield from nested(n - 1, limit)

        for n in [5, 30, 5, 60, 2, 30, 31, 29] * 2:
            got, expected = next(nested(n, limit))
            assert got == expected, (limit, n, "nested generators")


def test_each_depth_of_one_stack_keeps_its_own_total() -> None:
    # One line allocating at every depth of a recursion, down and up again,
    # in three threads at once: the same kept frame under hundreds of totals,
    # each pair its own traceback (what a deep recursion makes the tracer
    # resolve on nearly every allocation).
    kept: dict[int, list[tuple[int, bytearray]]] = {}

    def descend(depth: int, base: int, out: list[tuple[int, bytearray]]) -> None:
        if depth:
            out.append((_depth(), bytearray(base + depth)))
            descend(depth - 1, base, out)
            out.append((_depth(), bytearray(base + depth)))

    def worker(n: int) -> None:
        out = kept.setdefault(n, [])
        for _ in range(3):
            descend(300, 1000 * (n + 1), out)

    leakguard.start(1)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    worker(2)
    for t in threads:
        t.join()
    snapshot = leakguard.take_snapshot()
    leakguard.stop()
    # Each buffer (its size + 1 bytes) was allocated in the frame that called
    # _depth(), which counted that frame and every frame below it: the total.
    expected = {len(b) + 1: d for out in kept.values() for d, b in out}
    seen: dict[int, set[int]] = {}
    for _, size, frames, total in snapshot.traces._traces:
        if frames[0][0] == __file__ and size in expected:
            seen.setdefault(size, set()).add(total)
    assert len(seen) == 900
    assert seen == {size: {expected[size]} for size in seen}


def test_total_frame_count_stays_exact_through_mixed_recursion():
    # A recursion whose every level picks another way to call the next one:
    # directly, through a generator resumed from C (str.join, sum), a
    # comprehension, `yield from`, a class's __init__, a __str__ reached
    # through str(), map(). Generator objects, data-stack slots and C frames
    # are recycled from one descent to the next while the stack below them
    # differs, which is what the per-thread frame-count cache must see
    # through; the same shapes repeat, so it also gets to hit.
    import random

    rng = random.Random(20261124)
    seen: list[tuple[int, int]] = []

    def probe(limit):
        seen.append((_leakguard._capture_stack(limit)[1], _depth()))
        return 1

    class Step:
        def __init__(self, plan, limit):
            self.value = level(plan, limit)

    class Text:
        def __init__(self, plan, limit):
            self.plan, self.limit = plan, limit

        def __str__(self):
            return str(level(self.plan, self.limit))

    def nested(plan, limit):
        yield level(plan, limit)

    def forward(plan, limit):
        yield from nested(plan, limit)

    def level(plan, limit):
        if not plan:
            return probe(limit)
        how, rest = plan[0], plan[1:]
        if how == 0:
            return level(rest, limit)
        if how == 1:
            return len(" ".join(str(level(rest, limit)) for _ in (0,)))
        if how == 2:
            return sum(level(rest, limit) for _ in (0,))
        if how == 3:
            return [level(rest, limit) for _ in (0,)][0]
        if how == 4:
            return next(forward(rest, limit))
        if how == 5:
            return Step(rest, limit).value
        if how == 6:
            return int(str(Text(rest, limit)))
        return list(map(lambda p: level(p, limit), [rest]))[0]

    shapes = [[rng.randrange(8) for _ in range(rng.randrange(0, 60))] for _ in range(12)]
    shapes += [[4] * 40, [1, 0] * 30, [2, 4, 0] * 15]  # generator runs, alternations
    for _ in range(2000):
        plan = rng.choice(shapes)
        # Shapes that share a prefix and differ below, or the reverse.
        if rng.random() < 0.5:
            cut = rng.randrange(len(plan) + 1)
            plan = plan[:cut] + rng.choice(shapes)[cut:]
        level(plan, rng.choice((1, 2, 5, 25)))
    bad = [(got, want) for got, want in seen if got != want]
    # 3.9/3.10 always walk. From 3.11 a cached count may be taken over by a
    # new activation whose frames below fill exactly the same data-stack and
    # C-stack bytes (3.11) or hold as many units (3.12+), under the same four
    # frames with the same first locals: the risk the README states. Random
    # shapes like these meet it about once in 20,000 captures; the cache
    # before witnesses and first locals got 1 in 600 wrong here.
    allowed = 0 if sys.version_info < (3, 11) else len(seen) // 1000
    assert len(bad) <= allowed, f"{len(bad)} of {len(seen)} counts wrong, e.g. {bad[:5]}"

"""numpy's array data, which numpy allocates out of sight of the PyMem hooks,
seen through its allocator handler (NEP 49): traced, charged to the line
that made the array, in hunts and in the pytest plugin's limits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

np = pytest.importorskip("numpy")
numpy_version = tuple(int(p) for p in np.__version__.split(".")[:2])
if numpy_version < (1, 22):
    pytest.skip("numpy before 1.22 has no allocator handler", allow_module_level=True)

import leakguard  # noqa: E402
import leakguard.tracemalloc as lg_tracemalloc  # noqa: E402

MIB = 1024 * 1024


def run_python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_numpy_imported_after_start_is_traced_in_every_thread() -> None:
    out = run_python(
        """
        import threading
        import leakguard.tracemalloc as tm

        tm.start(5)
        import numpy as np  # loaded while tracing: wrapped at its import

        base = tm.get_traced_memory()[0]
        a = np.ones(2 * 1024 * 1024)  # 16 MiB: the line
        grew = tm.get_traced_memory()[0] - base
        stats = tm.take_snapshot().statistics("traceback")
        here = [s for s in stats if any(f.filename == "<string>" for f in s.traceback)]
        biggest = max(here, key=lambda s: s.size)
        alive = tm.get_traced_memory()[0]
        del a
        freed = alive - tm.get_traced_memory()[0]

        seen = []
        def work():
            before = tm.get_traced_memory()[0]
            b = np.zeros(1024 * 1024)  # 8 MiB in another thread
            seen.append(tm.get_traced_memory()[0] - before)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        tm.stop()
        c = np.arange(1000)  # numpy still works with tracing off
        print(grew, biggest.size, freed, seen[0], int(c.sum()))
        """
    )
    grew, biggest, freed, in_thread, total = map(int, out.split())
    assert 16 * MIB <= grew < 16 * MIB + 64 * 1024
    assert biggest >= 16 * MIB  # charged to the line that made the array
    assert freed >= 16 * MIB  # and forgotten when the array went
    assert 8 * MIB - 4096 <= in_thread < 9 * MIB
    assert total == 499500


def test_same_numpy_bytes_as_stdlib_tracemalloc() -> None:
    # Stdlib tracemalloc sees numpy's buffers (numpy reports them to it);
    # leakguard must see the same bytes.
    out = run_python(
        """
        import tracemalloc
        import numpy as np
        import leakguard.tracemalloc as lg

        def work():
            return [np.full(1000 + 37 * i, 1.5) for i in range(200)]

        tracemalloc.start(25)
        kept = work()
        std = tracemalloc.take_snapshot().statistics("traceback")
        tracemalloc.stop()
        del kept
        lg.start(25)
        kept = work()
        ours = lg.take_snapshot().statistics("traceback")
        lg.stop()
        size = lambda stats: sum(
            s.size for s in stats if any(f.filename == "<string>" for f in s.traceback)
        )
        print(size(std), size(ours))
        """
    )
    std, ours = map(int, out.split())
    assert std > 2 * MIB
    assert abs(ours - std) <= std * 0.01, (ours, std)


KEPT: list = []


def grow_arrays() -> None:
    KEPT.append(np.ones(5000))  # 40 KB of data per call


def test_hunt_finds_a_numpy_leak_with_its_holder() -> None:
    try:
        report = leakguard.hunt(grow_arrays)
    finally:
        KEPT.clear()
    assert report.leaking, str(report)
    site = report.leaks[0]
    assert site.filename == __file__ and "KEPT.append(np.ones(5000))" in site.line, str(report)
    assert site.size_per_round >= 40_000
    assert any(h.root.endswith("test_numpy.KEPT") for h in site.holders), str(report)


def test_tracemalloc_api_in_process_sees_numpy() -> None:
    lg_tracemalloc.start(1)
    try:
        before = lg_tracemalloc.get_traced_memory()[0]
        a = np.empty(3 * MIB, dtype=np.uint8)
        assert lg_tracemalloc.get_traced_memory()[0] - before >= 3 * MIB
        del a
    finally:
        lg_tracemalloc.stop()


def test_limit_memory_and_limit_leaks_see_numpy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_np="""
        import numpy as np
        import pytest

        KEEP = []

        @pytest.mark.limit_memory("5 MB")
        def test_peak():
            a = np.ones(2 * 1024 * 1024)  # 16 MiB
            del a

        @pytest.mark.limit_leaks("1 MB")
        def test_left_alive():
            KEEP.append(np.ones(2 * 1024 * 1024))

        @pytest.mark.limit_memory("20 MB")
        def test_under():
            a = np.ones(1024 * 1024)  # 8 MiB
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    assert "peak memory 16.0 MiB is above the limit of 5 MB" in out, out
    assert "left 16.0 MiB alive, above the limit of 1 MB" in out, out
    assert "a = np.ones(2 * 1024 * 1024)  # 16 MiB" in out

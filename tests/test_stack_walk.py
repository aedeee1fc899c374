"""The native frame walker agrees with the interpreter and with tracemalloc.

``_leakguard._capture_stack`` reads the interpreter's frames from C without
allocating. Every capture here is taken on the same line as
``sys._getframe()`` and as the allocation of an object stdlib tracemalloc
traces, so all three must name the same frames, files and lines: the chain of
``f_back`` (``f_code.co_filename``, ``f_lineno``) and tracemalloc's traceback
of that object, including its ``total_nframe``.

``_leakguard._object_block`` must be the block address tracemalloc looks an
object up by in ``get_object_traceback``.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import sys
import threading
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable, List, Tuple

import pytest

from leakguard import _leakguard

# More frames than any stack here (pytest included), so nothing is cut.
LIMIT = 1000
# tracemalloc's saturation point for total_nframe.
MAX_TOTAL = 65535
PY = sys.version_info[:2]

Frames = List[Tuple[str, int]]


class Allocated:
    """A fresh heap block per instance (no free list), for tracemalloc to trace.

    No __dict__: 3.11's tracemalloc cannot find objects with a pre-header.
    """

    __slots__ = ()


def frame_chain(frame: Any) -> Frames:
    """The stack as frame objects see it, most recent first."""
    chain = []
    while frame is not None:
        # f_lineno is None where the code has no line; tracemalloc says 0.
        chain.append((frame.f_code.co_filename, frame.f_lineno or 0))
        frame = frame.f_back
    return chain


@dataclass
class Observation:
    frames: Frames
    total: int
    chain: Frames
    allocated: Allocated  # allocated on the capture's line, alive for tracemalloc
    limit: int

    def check(self, filename_fix: Callable[[str], str] = lambda name: name) -> None:
        """Asserts the capture agrees with the frame chain and with tracemalloc."""
        expected = [(filename_fix(name), line) for name, line in self.chain]
        assert self.frames == expected[: self.limit]
        assert self.total == min(len(self.chain), MAX_TOTAL)
        if tracemalloc.is_tracing():
            traced = tracemalloc._get_object_traceback(self.allocated)
            assert traced is not None
            fixed = [(filename_fix(name), line) for name, line in traced]
            assert self.frames == fixed[: self.limit]
            # Only a trace carries total_nframe; every trace with this exact
            # traceback was allocated on this line of this stack.
            traces = tracemalloc._get_traces()
            totals = {total for _, _, frames, total in traces if frames == traced}
            assert totals == {self.total}


def observe(limit: int = LIMIT) -> Observation:
    """What each source says about the stack at this very line.

    The chain is read on the same line too: a live frame's f_lineno moves on.
    """
    capture = _leakguard._capture_stack
    obj, (frames, total), chain = Allocated(), capture(limit), frame_chain(sys._getframe())
    return Observation(frames, total, chain, obj, limit)


@pytest.fixture(autouse=True)
def traced():
    """Stdlib tracemalloc runs during every test, deep enough to keep all frames."""
    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start(LIMIT)
    yield
    if not was_tracing:
        tracemalloc.stop()


def test_observe_sees_tracemalloc():
    """Guards the other tests: the comparison with tracemalloc really happens."""
    seen = observe()
    assert tracemalloc.is_tracing()
    assert tracemalloc.get_object_traceback(seen.allocated) is not None
    assert seen.frames[0] == (__file__, seen.chain[0][1])
    seen.check()


def test_limit_caps_the_frames_not_the_total():
    full = observe()
    none = observe(0)
    assert none.frames == []
    assert none.total == full.total == len(full.chain)
    assert len(observe(3).frames) == 3


def test_negative_limit_is_rejected():
    with pytest.raises(ValueError):
        _leakguard._capture_stack(-1)


def test_nested_calls():
    def outer():
        return middle()

    def middle():
        return inner()

    def inner():
        return observe()

    seen = outer()
    seen.check()
    lines = [line for _, line in seen.frames[:4]]
    assert len(set(lines)) == 4  # observe, inner, middle, outer


@pytest.mark.parametrize("limit", [1, 2, 3, LIMIT])
def test_count_below_a_class_call(limit):
    # 3.13 specialises Make(...) into a trampoline frame under __init__ that
    # tracemalloc does not count, below the kept frames as well as on top.
    class Make:
        def __init__(self, limit):
            self.seen = observe(limit)

    def chain(n):
        return Make(limit).seen if n == 0 else chain(n - 1)

    for _ in range(64):  # past the interpreter's specialisation warm-up
        seen = chain(3)
    seen.check()


def test_line_far_down_a_long_function():
    # Long bodies, big line gaps and one line with a lot of bytecode exercise
    # the multi-entry parts of the line tables (lnotab deltas > 255 bytes or
    # > 127 lines on 3.9, EXTENDED_ARG offsets, long 3.11+ location entries).
    lines = ["def long_function(observe):", "    x = 0"]
    lines += [f"    x += {i}" for i in range(700)]
    lines += ["    # a gap" for _ in range(400)]
    lines.append("    y = (" + " + ".join(["x"] * 400) + ")")
    lines += ["" for _ in range(300)]
    lines.append("    return observe()")
    namespace: dict = {}
    exec(compile("\n".join(lines), "<leakguard-long-function>", "exec"), namespace)
    seen = namespace["long_function"](observe)
    seen.check()
    assert seen.frames[1] == ("<leakguard-long-function>", len(lines))


def test_generators_and_yield_from():
    def produce():
        yield observe()
        yield observe()

    def delegate():
        yield from produce()

    def drive(gen):
        return next(gen)

    gen = delegate()
    first = drive(gen)
    second = next(gen)  # resumed from a different caller
    first.check()
    second.check()
    assert first.chain[3][1] != second.chain[3][1]


def test_coroutines_driven_by_asyncio():
    async def leaf():
        await asyncio.sleep(0)  # resumed by the event loop, through C
        return observe()

    async def branch():
        return await leaf()

    async def gather():
        return await asyncio.gather(branch(), branch())

    for seen in asyncio.run(gather()):
        seen.check()


def test_async_generators():
    async def numbers():
        yield observe()
        await asyncio.sleep(0)
        yield observe()

    async def consume():
        return [seen async for seen in numbers()]

    for seen in asyncio.run(consume()):
        seen.check()


def test_class_body():
    class Body:
        seen = observe()

    Body.seen.check()


def test_lambda():
    seen = (lambda: observe())()
    seen.check()


def test_comprehensions():
    # Inlined into the enclosing function on 3.12+, their own frames before.
    listed = [observe() for _ in range(1)]
    setted = {id(seen): seen for seen in [observe() for _ in range(1)]}
    dicted = {index: observe() for index in range(1)}
    generated = list(observe() for _ in range(1))
    for seen in listed + list(setted.values()) + list(dicted.values()) + generated:
        seen.check()


def test_except_and_finally():
    seen = []
    try:
        raise ValueError("boom")
    except ValueError:
        seen.append(observe())
    finally:
        seen.append(observe())

    def reraising():
        try:
            raise KeyError("boom")
        finally:
            seen.append(observe())  # runs while the exception propagates

    with pytest.raises(KeyError):
        reraising()

    class Exiting:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            seen.append(observe())
            return True

    with Exiting():
        raise RuntimeError("swallowed")
    assert len(seen) == 4
    for each in seen:
        each.check()


def test_decorators():
    at_decoration = []

    def recording(fn):
        at_decoration.append(observe())
        return fn

    def wrapping(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper

    @recording
    @wrapping
    def decorated():
        return observe()

    decorated().check()
    at_decoration[0].check()


def test_recursion_with_a_small_limit_counts_every_frame():
    def recurse(depth):
        if depth == 0:
            return observe(25)
        return recurse(depth - 1)

    seen = recurse(300)
    seen.check()
    assert len(seen.frames) == 25
    assert seen.total == len(seen.chain) > 300


@pytest.mark.skipif(PY < (3, 11), reason="65k Python calls overflow the C stack before 3.11")
def test_total_saturates_at_65535():
    tracemalloc.stop()  # it would walk all 66k frames on every allocation
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(MAX_TOTAL + 2000)
    try:

        def recurse(depth):
            if depth == 0:
                return observe(10)
            return recurse(depth - 1)

        seen = recurse(MAX_TOTAL + 100)
    finally:
        sys.setrecursionlimit(limit)
    assert len(seen.chain) > MAX_TOTAL
    assert seen.total == MAX_TOTAL
    seen.check()


def test_thread():
    results = []

    def work():
        results.append(observe())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    (seen,) = results
    seen.check()
    # Only the thread's own stack: observe, work, run, _bootstrap_inner, _bootstrap.
    assert seen.total == 5
    assert [name for name, _ in seen.frames[2:]] == [threading.__file__] * 3


def test_calls_through_c():
    # C code calling back into Python: entry frames (3.12+ owned by the C
    # stack) sit between the Python frames and must not show.
    by_key: list = []
    sorted([1, 2], key=lambda item: by_key.append(observe()) or item)
    by_map = list(map(lambda _: observe(), [1]))

    class Hashed:
        def __hash__(self):
            by_hash.append(observe())
            return 0

    by_hash: list = []
    _ = {Hashed(): 1}
    assert len(by_key) == 2 and len(by_map) == 1 and len(by_hash) == 1
    for seen in by_key + by_map + by_hash:
        seen.check()


def test_callback_from_the_garbage_collector():
    # Before 3.12 a collection runs inside the allocation that triggers it,
    # so on 3.11 a callback can run while a frame is still in its prologue
    # (MAKE_CELL allocates): that incomplete frame must be skipped, as
    # f_back and tracemalloc skip it.
    seen = []
    prologue_hits = []
    calling = []

    def on_gc(phase, info):
        if phase != "start" or len(seen) >= 40:
            return
        caller = sys._getframe(1)
        if calling and caller.f_code is not with_cells.__code__:
            prologue_hits.append(caller.f_code.co_name)
        seen.append(observe())

    def with_cells(a, b, c, d, e, f):
        def inner():
            return a, b, c, d, e, f

        return inner

    threshold = gc.get_threshold()
    gc.callbacks.append(on_gc)
    gc.set_threshold(1)
    try:
        for _ in range(40):
            calling.append(True)
            with_cells(1, 2, 3, 4, 5, 6)
            calling.pop()
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(on_gc)
    assert seen
    for each in seen:
        each.check()
    if PY == (3, 11):
        assert prologue_hits, "no collection ran inside a frame prologue"


def test_under_a_tracer():
    # With a tracer, PyFrame_GetLineNumber (3.9/3.10) reports f_lineno, which
    # the interpreter keeps moving even with line events off.
    seen = []

    def tracer(frame, event, arg):
        frame.f_trace_lines = False
        return tracer

    def traced():
        seen.append(observe())
        return 1

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        traced()
    finally:
        sys.settrace(previous)
    seen[0].check()


def test_frame_with_a_trace_function_but_no_tracer():
    # On 3.9 PyFrame_GetLineNumber trusts f_lineno whenever f_trace is set,
    # even if no tracer runs to move it: tracemalloc and frame objects both
    # report the stale line (where f_trace was set), so must the capture.
    def stale():
        sys._getframe().f_trace = lambda *args: None
        return observe()

    seen = stale()
    seen.check()
    set_at = stale.__code__.co_firstlineno + 1
    assert seen.frames[1][1] == (set_at if PY == (3, 9) else set_at + 1)


def test_inside_a_trace_callback():
    seen = []

    def tracer(frame, event, arg):
        if frame.f_code is traced.__code__ and len(seen) < 6:
            seen.append(observe())
        return tracer

    def traced():
        x = 1
        return x

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        traced()
    finally:
        sys.settrace(previous)
    assert len(seen) >= 3
    for each in seen:
        each.check()


def without_surrogates(name: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in name)


@pytest.mark.parametrize(
    "filename",
    [
        "/tmp/plain.py",
        "/tmp/café.py",  # latin-1
        "/tmp/файл/модуль.py",  # UCS-2
        "/tmp/🐍/snake.py",  # UCS-4
        "/tmp/" + "long" * 1000 + ".py",  # more than the inline buffer
        "/tmp/" + "é" * 200 + "🐍" * 20 + ".py",  # multi-byte across the buffer edge
        "/tmp/bad\udcff\udc80.py",  # undecodable bytes, as surrogateescape keeps them
        "/tmp/pair\ud83d\udc0d.py",  # a surrogate pair is still two lone surrogates
    ],
)
def test_filenames_are_utf8(filename):
    namespace: dict = {}
    exec(compile("def f(observe):\n    return observe()\n", filename, "exec"), namespace)
    seen = namespace["f"](observe)
    seen.check(without_surrogates)
    assert seen.frames[1] == (without_surrogates(filename), 2)


# --- _object_block -----------------------------------------------------------

_get_traceback = ctypes.pythonapi._PyTraceMalloc_GetTraceback
_get_traceback.argtypes = [ctypes.c_uint, ctypes.c_size_t]
_get_traceback.restype = ctypes.py_object


def traced_at(block: int) -> Any:
    """tracemalloc's raw traceback of the block at `block` (domain 0), or None."""
    return _get_traceback(0, block)


class Slotted:
    """GC type (a slot holds a reference), no dict, no weakref: no pre-header."""

    __slots__ = ("a",)


class WithDict:
    """Instances have a __dict__: managed, in a pre-header, on 3.11+."""


GC_HEAD = 16  # sizeof(PyGC_Head) on 64-bit builds, 3.9 to 3.13
if PY >= (3, 11):
    DICT_OFFSET = GC_HEAD + 2 * ctypes.sizeof(ctypes.c_void_p)
else:
    DICT_OFFSET = GC_HEAD


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="offsets for 64-bit builds")
@pytest.mark.parametrize(
    ("make", "offset"),
    [
        pytest.param(Slotted, GC_HEAD, id="gc-object"),
        pytest.param(lambda: int("7" * 60), 0, id="int"),
        pytest.param(lambda: "".join(["leak"] * 100), 0, id="str"),
        pytest.param(WithDict, DICT_OFFSET, id="instance-with-dict"),
    ],
)
def test_object_block_is_the_block_tracemalloc_traces(make, offset):
    obj = make()
    block = _leakguard._object_block(obj)
    assert id(obj) - block == offset
    raw = traced_at(block)
    assert raw is not None, "tracemalloc traces no block there"
    if PY == (3, 11) and offset == DICT_OFFSET:
        # 3.11's get_object_traceback skips the GC header only and misses
        # objects with a managed dict (gh-101430, fixed in 3.12): the block
        # is still the one its allocator hook traced.
        assert tracemalloc._get_object_traceback(obj) is None
    else:
        assert raw == tracemalloc._get_object_traceback(obj)
    for wrong in (block - 8, block + 8):
        assert traced_at(wrong) is None


def test_object_block_of_common_objects():
    items = [1, 2, 3]
    assert id(items) - _leakguard._object_block(items) == GC_HEAD
    obj = WithDict()
    obj.attribute = items  # materialises the dict on 3.11+; the block does not move
    assert id(obj) - _leakguard._object_block(obj) == DICT_OFFSET
    assert _leakguard._object_block(12345678901234567890) == id(12345678901234567890)

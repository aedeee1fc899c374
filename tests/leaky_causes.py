"""Programs with one leak each (and controls without), for the hunter's tests.

Each leaking line carries a ``# LEAK: name`` comment and each control a
``# CONTROL: name`` comment, so tests find their line numbers by name.
"""

from __future__ import annotations

import array
import asyncio
import atexit
import collections
import functools
import gc
import io
import itertools
import logging
import queue
import random
import re
import struct
import sys
import threading
import types
import weakref
from typing import Any, Dict, List, Optional

# --- a global list that keeps growing ---------------------------------------

EVENTS: List[Dict[str, Any]] = []


def record_events(n: int = 200) -> None:
    for i in range(n):
        scratch = {"tmp": i, "other": str(i)}  # CONTROL: scratch-dict
        del scratch
        EVENTS.append({"event": i, "kind": "click"})  # LEAK: global-list


# --- an unbounded per-request cache -----------------------------------------

PAGES: Dict[int, str] = {}


class Renderer:
    def __init__(self) -> None:
        self.next_request = 0

    def serve(self, n: int = 100) -> None:
        for _ in range(n):
            rid = self.next_request
            self.next_request += 1
            PAGES[rid] = "<html>" + f"page {rid} " * 8  # LEAK: unbounded-cache


# --- a bounded lru_cache, a cache that fills once, pure churn ----------------


@functools.lru_cache(maxsize=64)
def lookup(key: int) -> str:
    return f"value {key:05d}" * 4  # CONTROL: bounded-lru


def use_bounded_cache(n: int = 300) -> None:
    for i in range(n):
        lookup(i % 200)


COUNTRIES: Dict[str, str] = {}


def use_fill_once_cache() -> None:
    if not COUNTRIES:
        for i in range(2000):
            COUNTRIES[f"C{i:04d}"] = f"country {i}"  # CONTROL: fill-once


def churn(seed: int = 0) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        junk = [str(rng.random()) * rng.randint(1, 20) for _ in range(10)]  # CONTROL: churn
        table = {i: (i, str(i)) for i in range(rng.randint(1, 30))}
        del junk, table


@functools.lru_cache(maxsize=100_000)
def slow_fill(key: int) -> str:
    return f"cached {key:07d}" * 3  # BOUNDED: large-lru


class Paginator:
    def __init__(self) -> None:
        self.i = 0

    def step(self, n: int = 50) -> None:
        for _ in range(n):
            slow_fill(self.i)
            self.i += 1


# --- a reference cycle whose __del__ keeps it in a registry ------------------

GRAVEYARD: List[Node] = []


class Node:
    def __init__(self) -> None:
        self.peer = Peer(self)
        self.payload = [0] * 40

    def __del__(self) -> None:
        GRAVEYARD.append(self)  # resurrected: it never goes away


class Peer:
    def __init__(self, node: Node) -> None:
        self.node = node


def make_cycles(n: int = 20) -> None:
    for _ in range(n):
        Node()  # LEAK: cycle-del


class Pair:
    def __init__(self) -> None:
        self.other: Optional[Pair] = None


def cycle_churn(n: int = 50) -> None:
    for _ in range(n):
        a, b = Pair(), Pair()  # CONTROL: cycle-churn
        a.other, b.other = b, a


def uncollectable(n: int = 10) -> None:
    # With DEBUG_SAVEALL the collector keeps what it finds in gc.garbage.
    assert gc.get_debug() & gc.DEBUG_SAVEALL
    cycle_churn(n)


# --- full caches that replace their entries (controls) -------------------------

PAGES: collections.OrderedDict[int, str] = collections.OrderedDict()
PAGE_KEYS = [0]


def render_page(key: int) -> str:
    return f"{key:08d}" * 20  # CONTROL: page-text


def rotate_full_cache() -> None:
    # Filled by the first (warm-up, untraced) call, then 20 of its 500 pages
    # replaced per call: what it drops was never traced, what it adds is.
    if not PAGES:
        for key in range(500):
            PAGES[key] = render_page(key)
    for _ in range(20):
        PAGE_KEYS[0] += 1
        key = 100_000 + PAGE_KEYS[0]  # CONTROL: page-key
        PAGES[key] = render_page(key)
        PAGES.popitem(last=False)


RING: List[Any] = [None] * 400
RING_AT = [0]


def overwrite_ring() -> None:
    for _ in range(40):
        RING[RING_AT[0] % len(RING)] = [RING_AT[0]] * 8  # CONTROL: ring-slot
        RING_AT[0] += 1


FRESH = [0]


def fresh_patterns() -> None:
    # re keeps at most re._MAXCACHE compiled patterns, keyed by these strings.
    for _ in range(30):
        FRESH[0] += 1
        re.search(rf"\bname{FRESH[0]}\b", "alpha beta")  # CONTROL: fresh-pattern


def fresh_struct_formats() -> None:
    # struct keeps the Struct of each format it was given, at most 100.
    for _ in range(3):
        FRESH[0] += 1
        struct.pack(f"{FRESH[0] % 100_000}x")  # CONTROL: fresh-format


class Journal:
    def __init__(self) -> None:
        self.entries: List[Any] = []


JOURNAL = Journal()


def rebuild_journal() -> None:
    # A new, longer list each call: the list the hunt measured is dropped.
    JOURNAL.entries = JOURNAL.entries + [{"n": len(JOURNAL.entries)}]  # LEAK: rebuilt-list


HISTORY: List[Any] = []
LATEST: Any = None


def remember_latest() -> None:
    global LATEST
    LATEST = {"request": len(HISTORY), "body": "x" * 40}  # LEAK: history
    HISTORY.append(LATEST)


class Revenant:
    """In a cycle with itself; its finalizer parks it in gc.garbage."""

    def __init__(self) -> None:
        self.me = self
        self.payload = [0] * 50

    def __del__(self) -> None:
        gc.garbage.append(self)


def park_in_garbage(n: int = 5) -> None:
    for _ in range(n):
        Revenant()  # LEAK: parked-by-finalizer


# --- size-limited containers, one per leaked object or one for all --------------


class Session:
    """Each session memoises its lookups in a cache of its own."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lookup = functools.lru_cache(maxsize=64)(self._lookup)

    def _lookup(self, key: str) -> Dict[str, Any]:
        return {"key": key, "session": self.n}  # LEAK: per-session-cache


SESSIONS: List[Session] = []


def open_sessions(n: int = 5) -> None:
    for _ in range(n):
        session = Session(len(SESSIONS))
        session.lookup("home")
        SESSIONS.append(session)


INBOXES: Dict[int, Any] = {}


def open_inboxes(n: int = 5) -> None:
    for _ in range(n):
        inbox: collections.deque[Dict[str, int]] = collections.deque(maxlen=8)
        for i in range(3):
            inbox.append({"message": i})  # LEAK: per-inbox-deque
        INBOXES[len(INBOXES)] = inbox


class Service:
    """One service for the whole program, its cache a size-limited one."""

    def __init__(self) -> None:
        self.lookup = functools.lru_cache(maxsize=512)(self._lookup)

    def _lookup(self, key: int) -> Dict[str, Any]:
        return {"key": key, "values": [key] * 3}  # CONTROL: service-cache


SERVICE = Service()
SERVICE_CALLS = [0]


def use_service() -> None:
    SERVICE_CALLS[0] += 1
    for i in range(20):
        SERVICE.lookup(SERVICE_CALLS[0] * 100 + i)


# --- generated code (no source of its own), as a dataclass's __init__ ----------

_GENERATED: Dict[str, Any] = {}
exec(
    compile(
        "def make_order(n):\n    return {'order': n, 'lines': [n] * 4}\n", "<generated>", "exec"
    ),
    _GENERATED,
)
ORDERS: List[Any] = []


def take_orders(n: int = 10) -> None:
    for i in range(n):
        ORDERS.append(_GENERATED["make_order"](i))  # LEAK: generated-caller


# --- a leak on every other call ------------------------------------------------

RETRY_QUEUE: List[Dict[str, Any]] = []
JOBS = [0]


def run_job() -> None:
    # Only even-numbered jobs fail; they wait for a retry that never runs.
    JOBS[0] += 1
    job = {"id": JOBS[0], "payload": list(range(20))}  # LEAK: every-other-call
    if JOBS[0] % 2 == 0:
        RETRY_QUEUE.append(job)


# --- classes made at run time, a closure bound to a module global ----------------

ROUTES: List[type] = []


def add_route(n: int = 3) -> None:
    for _ in range(n):

        def handle(self: Any) -> int:  # LEAK: route-handler
            return len(ROUTES)

        ROUTES.append(type(f"Route{len(ROUTES)}", (), {"handle": handle}))


def make_recorder() -> Any:
    history: List[Any] = []

    def record(n: int = 10) -> None:
        for i in range(n):
            history.append((i, str(i) * 8))  # LEAK: bound-closure

    return record


RECORD = make_recorder()


# --- buffers of extension types that grow in place ------------------------------

SAMPLES = array.array("d")
AUDIT = io.BytesIO()


def record_samples(n: int = 64) -> None:
    SAMPLES.extend([float(len(SAMPLES))] * n)  # LEAK: array-buffer
    AUDIT.write(b"event %d\n" % len(SAMPLES) * 4)  # LEAK: bytesio-buffer


# --- unclosed files -----------------------------------------------------------

HANDLES: List[Any] = []


def open_and_keep(path: str) -> None:
    HANDLES.append(open(path))  # LEAK: open-file


def open_and_drop(path: str) -> int:
    return len(open(path).read())  # LEAK: unclosed-file


def open_and_close(path: str) -> int:
    with open(path) as f:  # CONTROL: closed-file
        return len(f.read())


# --- a slow leak in a worker loop ---------------------------------------------


class Worker(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="job-worker", daemon=True)
        self.jobs: queue.Queue[Optional[int]] = queue.Queue()
        self.retries: Dict[int, str] = {}

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                if job % 7 == 0:
                    self.retries[job] = f"job {job} failed once"  # LEAK: worker
            finally:
                self.jobs.task_done()


class JobSource:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.next_job = 0

    def submit(self, n: int = 70) -> None:
        for _ in range(n):
            self.worker.jobs.put(self.next_job)
            self.next_job += 1
        self.worker.jobs.join()


# --- a closure and a mutable default -------------------------------------------


def make_handler() -> Any:
    seen: List[str] = []

    def handler(n: int = 30) -> None:
        for i in range(n):
            seen.append(f"request {i}" * 3)  # LEAK: closure

    return handler


def remember(n: int = 30, _memo: Dict[int, List[int]] = {}) -> None:  # noqa: B006
    base = len(_memo)
    for i in range(n):
        _memo[base + i] = [i] * 5  # LEAK: default-arg


class Registry:
    items: List[bytes] = []

    @classmethod
    def register(cls, n: int = 30) -> None:
        for i in range(n):
            cls.items.append(b"x" * (100 + i % 5))  # LEAK: class-attr


# --- closures and partials kept by a growing list, a closure by native code ----

CALLBACKS: List[Any] = []
PENDING: List[Any] = []
#: the callbacks given to atexit (weakly: only atexit's own list holds them)
AT_EXIT: weakref.WeakSet[Any] = weakref.WeakSet()


def make_callback(size: int) -> Any:
    data = bytearray(size)  # LEAK: closure-in-list
    return lambda: len(data)


def add_callbacks(n: int = 3) -> None:
    for _ in range(n):
        CALLBACKS.append(make_callback(5000))


def process(payload: bytes) -> int:
    return len(payload)


def queue_partials(n: int = 3) -> None:
    for _ in range(n):
        payload = bytearray(4000)  # LEAK: partial-payload
        PENDING.append(functools.partial(process, payload=payload))


def register_at_exit() -> None:
    data = bytearray(6000)  # LEAK: atexit-closure

    def flush() -> int:
        return len(data)

    atexit.register(flush)
    AT_EXIT.add(flush)


# --- a logging handler added on every call -------------------------------------

REQUEST_LOG = logging.getLogger("leaky_causes.requests")
REQUEST_LOG.propagate = False


def attach_request_handler() -> None:
    handler = logging.StreamHandler(io.StringIO())  # LEAK: handler-per-call
    REQUEST_LOG.addHandler(handler)
    REQUEST_LOG.warning("request handled")


# --- names kept as the keys of a dict ---------------------------------------------

SEEN_NAMES: Dict[str, int] = {}


def remember_name() -> None:
    name = f"visitor-{len(SEEN_NAMES)}-{'x' * 40}"  # LEAK: str-key
    SEEN_NAMES[name] = 1


def register_module() -> None:
    name = f"leaky_causes_dynamic_{next(MODULE_NUMBERS)}"  # LEAK: module-name
    sys.modules[name] = types.ModuleType(name)


MODULE_NUMBERS = itertools.count()


# --- one buffer growing in place, a little on each call -------------------------

PAYLOAD = bytearray()
FLAGS: List[bool] = []
TRANSCRIPT = io.StringIO()
WORKSPACE = bytearray()


def append_payload() -> None:
    PAYLOAD.extend(b"x" * 100)  # LEAK: bytearray-steps


def note_flag() -> None:
    FLAGS.append(True)  # LEAK: flag-steps


def write_transcript() -> None:
    TRANSCRIPT.write(f"turn {len(FLAGS)}: {'ok' * 40}\n")  # LEAK: transcript-steps


ENTRIES: List[Dict[str, int]] = []


def record_entry() -> None:
    entry = {"n": len(ENTRIES)}  # LEAK: entry-dict
    ENTRIES.append(entry)  # LEAK: entry-append


def reuse_workspace() -> None:
    # the buffer keeps its size; each call refills it
    WORKSPACE.clear()
    WORKSPACE.extend(b"y" * 3000)  # CONTROL: workspace-steps


# --- a list in a threading.local that keeps growing ------------------------------

PER_THREAD = threading.local()


def remember_per_thread() -> None:
    seen = getattr(PER_THREAD, "seen", None)
    if seen is None:
        seen = PER_THREAD.seen = []
    seen.append({"n": len(seen)})  # LEAK: thread-local


# --- a leak whose objects come from a free list --------------------------------

KEPT_FLOATS: List[float] = []
SCATTER_CALLS = [0]


def keep_a_float_after_churn() -> None:
    # Each call churns floats at one of six lines in turn, then keeps one
    # float. With the free lists on, the kept float reuses a block the churn
    # freed, charged to that call's churn line: six lines growing once each,
    # none round after round, while the total grows every round.
    turn = SCATTER_CALLS[0] % 6
    SCATTER_CALLS[0] += 1
    if turn == 0:
        junk = [i * 0.5 for i in range(300)]
    elif turn == 1:
        junk = [i * 1.5 for i in range(300)]
    elif turn == 2:
        junk = [i * 2.5 for i in range(300)]
    elif turn == 3:
        junk = [i * 3.5 for i in range(300)]
    elif turn == 4:
        junk = [i * 4.5 for i in range(300)]
    else:
        junk = [i * 5.5 for i in range(300)]
    del junk
    KEPT_FLOATS.append(SCATTER_CALLS[0] * 0.25)  # LEAK: float-from-free-list


# --- finished asyncio tasks kept, with their results ---------------------------

TASK_RESULTS: List[Any] = []


async def _fetch_page() -> bytearray:
    return bytearray(3000)  # LEAK: task-result


def keep_finished_tasks() -> None:
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(_fetch_page())
        loop.run_until_complete(task)
        TASK_RESULTS.append(task)
    finally:
        loop.close()


# --- a StringIO that accumulates text ------------------------------------------

AUDIT_TEXT = io.StringIO()


def write_audit_text(n: int = 20) -> None:
    for i in range(n):
        AUDIT_TEXT.write(f"event {i}; " * 3)  # LEAK: stringio-text

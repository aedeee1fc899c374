"""The native core of leakguard (Rust). Private: use :mod:`leakguard`.

Raw data crosses this boundary as tuples in CPython ``_tracemalloc``'s own
conventions: a frame is ``(filename, lineno)``; a traceback is a tuple of
frames, **most recent first**; a trace is
``(domain, size, traceback, total_nframe)``.
"""

from typing import Iterable, Optional, Sequence, Tuple, final

from typing_extensions import TypeAlias

__all__ = [
    "start",
    "stop",
    "_before_foreign_stop",
    "_after_foreign_stop",
    "_hooks_position",
    "_consistency",
    "_pause_thread",
    "is_tracing",
    "get_traceback_limit",
    "get_traced_memory",
    "reset_peak",
    "_set_peak",
    "clear_traces",
    "get_tracemalloc_memory",
    "get_object_traceback",
    "get_traces",
    "take_snapshot",
    "RawSnapshot",
    "_capture_stack",
    "_object_block",
    "_live_blocks",
    "_locate_objects",
    "_owned_blocks",
    "_hidden_referents",
    "_wrap_numpy",
    "_numpy_wrapped",
    "_exact_objects",
    "_exact_objects_state",
    "_peak_watch",
    "_peak_sites",
    "_only_this_thread",
]

_RawFrame: TypeAlias = Tuple[str, int]
_RawTraceback: TypeAlias = Tuple[_RawFrame, ...]
_RawTrace: TypeAlias = Tuple[int, int, _RawTraceback, int]

def start(nframe: int) -> None:
    """Start tracing, storing at most ``nframe`` frames (already validated to
    be in 1..=65535) per traceback. Raises TracingError if the frame walk
    self-check fails on this interpreter. Called while tracing, it only
    changes the limit (the public ``start`` keeps stdlib's no-op instead)."""

def stop() -> None:
    """Stop tracing and clear every trace."""

def is_tracing() -> bool: ...
def get_traceback_limit() -> int: ...
def get_traced_memory() -> Tuple[int, int]:
    """``(current, peak)`` traced bytes; ``(0, 0)`` when not tracing."""

def reset_peak() -> None: ...
def _set_peak(nbytes: int) -> None:
    """Set the peak traced bytes to ``max(nbytes, current)``, so that a
    scoped measurement that called ``reset_peak`` can put back the peak it
    found. No effect when not tracing. Raises UsageError for a negative
    ``nbytes``."""

def clear_traces() -> None: ...
def get_tracemalloc_memory() -> int:
    """Bytes the tracer itself uses for its tables and interning."""

def get_object_traceback(obj: object) -> Optional[_RawTraceback]:
    """Raw traceback of the block holding ``obj``, or None if untraced."""

def get_traces() -> list[_RawTrace]:
    """Every live trace; equal tracebacks are the same tuple object."""

def take_snapshot() -> RawSnapshot:
    """A consistent copy of the live traces. Raises TracingError when not tracing."""

@final
class RawSnapshot:
    """An immutable snapshot held in Rust."""

    @staticmethod
    def from_traces(traces: Iterable[_RawTrace], traceback_limit: int) -> RawSnapshot:
        """Build from raw trace tuples (as ``tracemalloc.Snapshot(traces, limit)``)."""

    @staticmethod
    def load(path: str) -> Tuple[RawSnapshot, bytes]:
        """Read a snapshot file; returns the snapshot and its attribute blob.
        Raises SnapshotError naming the file and what is wrong."""

    @property
    def traceback_limit(self) -> int: ...
    def __len__(self) -> int: ...
    def trace(self, index: int) -> _RawTrace:
        """The trace at ``index`` (negative indices count from the end)."""

    def traces(self) -> list[_RawTrace]:
        """Every trace; equal tracebacks are the same tuple object."""

    def total_size(self) -> int: ...
    def statistics(self, key_type: str, cumulative: bool) -> list[Tuple[int, int, _RawTraceback]]:
        """``(size, count, key)`` sorted like ``tracemalloc.Snapshot.statistics``.
        ``key`` is the group's traceback, most recent first. Raises ValueError
        (UsageError) for an unknown key type or cumulative traceback keys."""

    def compare_to(
        self, old: RawSnapshot, key_type: str, cumulative: bool
    ) -> list[Tuple[int, int, int, int, _RawTraceback]]:
        """``(size, size_diff, count, count_diff, key)`` sorted like
        ``tracemalloc.Snapshot.compare_to``."""

    def filter_keys(self) -> list[Tuple[int, _RawTraceback, int]]:
        """Distinct ``(domain, traceback, total_nframe)`` of the traces, in
        order of first appearance: filters are evaluated once per key."""

    def select(self, mask: bytes) -> RawSnapshot:
        """A snapshot of the traces whose key (index into ``filter_keys()``)
        has a non-zero byte in ``mask``."""

    def dump(self, path: str, attrs: bytes) -> None:
        """Write the snapshot and an attribute blob to ``path``."""

# Internals used by leakguard's own modules and tests.
def _consistency() -> Tuple[int, int]: ...
def _pause_thread(paused: bool) -> bool:
    """Stop (``True``) or resume recording the calling thread's new blocks;
    returns whether they were paused before. Frees are still seen."""

def _peak_watch(on: bool) -> bool:
    """Start (discarding the last watch's counts) or stop counting bytes and
    blocks per traceback with their values at the peak; starting resets the
    peak to the current traced bytes. Returns whether a watch was on."""

def _peak_sites(
    peak_limit: int = 0, left: bool = True
) -> list[Tuple[_RawTraceback, int, int, int, int]]:
    """``(traceback, bytes at peak, blocks at peak, bytes now, blocks now)``
    per traceback the watch counted, allocated minus freed since it began;
    with ``peak_limit``, only that many with the most bytes at the peak (plus,
    with ``left``, those with bytes alive now)."""

def _only_this_thread(on: bool) -> bool:
    """Record only the calling thread's new blocks (frees of every thread are
    still seen), or every thread's again; returns whether a restriction was on."""

def _before_foreign_stop() -> None: ...
def _after_foreign_stop() -> None: ...
def _hooks_position() -> str: ...
def _capture_stack(limit: int) -> Tuple[list[_RawFrame], int]:
    """The calling thread's stack as the hooks see it (most recent first)
    and its full depth: for the start-up self-check and tests."""

def _object_block(obj: object) -> int:
    """Address of the memory block holding ``obj``."""

# From traced blocks to live objects (the leak hunter).
def _live_blocks(tracebacks: Sequence[Sequence[_RawFrame]], limit: int) -> list[list[int]]:
    """For each traceback (frames ``(filename, lineno)``, most recent first:
    the keys of ``RawSnapshot.statistics("traceback", False)``), the addresses
    of up to ``limit`` currently live traced blocks whose traceback has
    exactly those frames, whatever its ``total_nframe``. The result is
    parallel to ``tracebacks``; a traceback no live block has gets ``[]``.
    Raises TracingError when not tracing, UsageError for a negative limit.
    Blocks may be freed (and their addresses reused) as soon as it returns."""

def _locate_objects(
    objects: list[object], blocks: dict[int, int], per_key: int
) -> list[Tuple[int, object, bool, list[object]]]:
    """Objects that own the blocks of ``blocks`` (block address -> key).

    Walks ``objects`` (a list, normally ``gc.get_objects()`` plus extra
    roots) and, for each object that the collector handles, the objects it
    references (as ``gc.get_referents``), following untracked GC objects
    (tuples, dicts that hold no cycle) further down. An object owns its own
    block and, for lists, dicts, sets, bytearrays, heap types and (3.11,
    3.12) instances with inline values, the buffers only it points to.
    Returns ``(key, obj, via_buffer, untracked_path)`` in the order met,
    ``via_buffer`` False when ``obj``'s own block matched and True when a
    buffer did; ``untracked_path`` the untracked containers ``obj`` was
    reached through (which ``gc.get_referrers`` cannot see), its direct
    referrer first, ending with the tracked object they hang from, or empty; at
    most ``per_key`` distinct objects per key, stopping once every key has
    them. Does not need tracing. Raises TypeError when ``objects`` is not a
    list, UsageError for a negative ``per_key``."""

def _wrap_numpy(api: object) -> bool:
    """Puts leakguard's functions into numpy's default array-data handler
    (NEP 49); ``api`` is numpy's ``_ARRAY_API`` capsule. Call it in an empty
    context. False when numpy has no handlers (before 1.22)."""

def _numpy_wrapped() -> bool:
    """Whether numpy's default array-data handler is wrapped."""

def _owned_blocks(obj: object) -> list[int]:
    """Addresses of the blocks ``obj`` owns, as ``_locate_objects`` sees
    them: its own block first (``_object_block``), then its buffers."""

def _hidden_referents(obj: object) -> list[object]:
    """The objects ``obj`` holds through fields its type's traverse does not
    visit (so ``gc.get_referents`` and ``gc.get_referrers`` miss them): on
    CPython 3.9-3.11, a BytesIO's bytes and a StringIO's lists of the text it
    accumulates. Empty for other types, and from 3.12 (whose traverse visits
    both)."""

def _exact_objects_state() -> Optional[bool]:
    """True when exact objects (see ``_exact_objects``) are on in the current
    interpreter, False when they are off and ``_exact_objects(True)`` would
    switch them on, None when it cannot (CPython 3.9, or on in another
    interpreter)."""

def _exact_objects(enable: bool) -> bool:
    """Make floats, tuples, lists and dicts (and dict keys objects) come from
    the allocator while on, instead of from the interpreter's free lists, so
    that tracebacks name the line that created each object. Acts on the
    current interpreter; returns whether it was on before. Turning it on while
    on re-applies it: needed after each full collection, which makes the float
    and tuple free lists usable again. Off leaves the free lists empty and
    usable. Does nothing and returns False on CPython 3.9. Raises TracingError
    if it is on in another interpreter."""

"""The native core of leakguard (Rust). Private: use :mod:`leakguard`.

Raw data crosses this boundary as tuples in CPython ``_tracemalloc``'s own
conventions: a frame is ``(filename, lineno)``; a traceback is a tuple of
frames, **most recent first**; a trace is
``(domain, size, traceback, total_nframe)``.
"""

from typing import Iterable, Optional, Tuple, final

from typing_extensions import TypeAlias

__all__ = [
    "start",
    "stop",
    "_before_foreign_stop",
    "_after_foreign_stop",
    "_hooks_position",
    "_consistency",
    "is_tracing",
    "get_traceback_limit",
    "get_traced_memory",
    "reset_peak",
    "clear_traces",
    "get_tracemalloc_memory",
    "get_object_traceback",
    "get_traces",
    "take_snapshot",
    "RawSnapshot",
    "_capture_stack",
    "_object_block",
    "_exact_objects",
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
def _before_foreign_stop() -> None: ...
def _after_foreign_stop() -> None: ...
def _hooks_position() -> str: ...
def _capture_stack(limit: int) -> Tuple[list[_RawFrame], int]:
    """The calling thread's stack as the hooks see it (most recent first)
    and its full depth: for the start-up self-check and tests."""

def _object_block(obj: object) -> int:
    """Address of the memory block holding ``obj``."""

def _exact_objects(enable: bool) -> bool:
    """Make floats, tuples, lists and dicts (and dict keys objects) come from
    the allocator while on, instead of from the interpreter's free lists, so
    that tracebacks name the line that created each object. Acts on the
    current interpreter; returns whether it was on before. Turning it on while
    on re-applies it: needed after each full collection, which makes the float
    and tuple free lists usable again. Off leaves the free lists empty and
    usable. Does nothing and returns False on CPython 3.9. Raises TracingError
    if it is on in another interpreter."""

"""The cycle collector's side of a hunt.

After each round the hunt runs a full collection with ``gc.DEBUG_SAVEALL``
set: what the collector finds unreachable is then parked in ``gc.garbage``
instead of freed, so its types can be counted; finalizers and weakref
callbacks have already run, exactly as in a normal collection. Those come
last in ``gc.garbage``, as many as ``gc.collect()`` returns; anything a
finalizer appended there itself comes before them and stays (a program that
parks objects in ``gc.garbage`` from ``__del__`` keeps them, and the hunt sees
that garbage grow). The parked objects are released and a second
collection frees them for real; whatever that one leaves in ``gc.garbage``
is uncollectable. Collections the interpreter runs by itself during a round
are counted through ``gc.callbacks`` (counts only: their objects are gone
before anyone can look).
"""

from __future__ import annotations

import gc
from typing import Any, Dict, List, Tuple

from .session import flush_free_lists, unrecorded


def _type_name(obj: object) -> str:
    cls = type(obj)
    module = getattr(cls, "__module__", "")
    if module in ("builtins", None, ""):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


class CycleWatch:
    """Counts what the cycle collector frees during the rounds."""

    def __init__(self) -> None:
        self._automatic = 0
        self._collecting = False

    def _callback(self, phase: str, info: Dict[str, Any]) -> None:
        if phase == "stop" and not self._collecting:
            self._automatic += int(info.get("collected", 0))

    def __enter__(self) -> CycleWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            gc.callbacks.remove(self._callback)
        except ValueError:  # pragma: no cover - removed by the program
            pass

    def collect(self, with_types: bool) -> Tuple[int, Dict[str, int], int]:
        """A full collection. Returns (objects the collector freed since the
        last call, their types as far as this collection saw them, and
        ``len(gc.garbage)`` after it)."""
        flags = gc.get_debug()
        kept = len(gc.garbage)
        self._collecting = True
        try:
            types: Dict[str, int] = {}
            if with_types:
                gc.set_debug(flags | gc.DEBUG_SAVEALL)
                try:
                    parked = gc.collect()
                finally:
                    gc.set_debug(flags)
                # What the collector's callbacks allocated and freed (their
                # info dicts) must not be reused by the counts kept below.
                flush_free_lists()
                start = max(len(gc.garbage) - parked, kept)
                # The hunt's own: the counts are kept with the round's
                # figures and must not read as memory the round left.
                with unrecorded():
                    found: List[object] = gc.garbage[start:]
                    del gc.garbage[start:]
                    types = count_types(found)
                    freed = len(found)
                if found:
                    found.clear()
                    # Released: this collection frees them (and parks the
                    # uncollectable ones in gc.garbage, as a normal one
                    # would). With nothing found there is nothing to free.
                    gc.collect()
            else:
                freed = gc.collect()
        finally:
            self._collecting = False
        # The counts are kept with the round's figures: not recorded, or
        # they would read as memory the rounds left.
        with unrecorded():
            freed += self._automatic
            self._automatic = 0
            return freed, types, len(gc.garbage)


def count_types(objects: List[object]) -> Dict[str, int]:
    """How many of ``objects`` there are of each type, by qualified name."""
    types: Dict[str, int] = {}
    for name in map(_type_name, objects):
        types[name] = types.get(name, 0) + 1
    return types

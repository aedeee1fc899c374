"""Tracing for the length of a hunt or a tracked block, leaving the user's
tracing state as it was; and running leakguard's own work unrecorded."""

from __future__ import annotations

from types import TracebackType
from typing import Optional, Type

from .. import _leakguard as native
from .._errors import TracingError
from ..tracemalloc import _check_nframe, _free_lists_off, _free_lists_on


class unrecorded:  # noqa: N801 - used like a function: ``with unrecorded():``
    """Blocks this thread allocates inside are not recorded (frees still are),
    so the analysis never finds its own working data among the traces."""

    __slots__ = ("_was",)

    def __enter__(self) -> None:
        self._was = native._pause_thread(True)

    def __exit__(self, *exc: object) -> None:
        native._pause_thread(self._was)


def flush_free_lists() -> None:
    """Empties the interpreter's free lists (3.10+, while they are on and the
    switch is free): the blocks in them are freed, and the next objects of
    those types come from the allocator. Between rounds this keeps the hunt's
    own objects from taking blocks charged to the program's lines, and the
    program's from taking the hunt's untraced ones."""
    if native._exact_objects_state() is False:
        try:
            native._exact_objects(True)
        except TracingError:
            return  # the deallocators were replaced by other code: left as they are
        native._exact_objects(False)


class ExactObjects:
    """Exact objects (the free lists off, see ``_exact_objects``) on demand,
    for the length of a :class:`TracingSession`: ``possible`` says whether
    :meth:`switch` would switch them on (they are off, and can be switched
    here: not on CPython 3.9, nor while another interpreter holds the
    switch); once switched, they stay on until :meth:`release`."""

    __slots__ = ("possible", "_switched")

    def __init__(self) -> None:
        self.possible = native._exact_objects_state() is False
        self._switched = False

    def switch(self) -> None:
        if self.possible and not self._switched:
            try:
                self._switched = _free_lists_off()
            except TracingError:
                self.possible = False  # taken since: the objects stay as they are

    def release(self) -> None:
        if self._switched:
            self._switched = False
            _free_lists_on()


class TracingSession:
    """Traces with at least ``nframe`` frames while open, with exact objects
    (free lists off: every object comes from the allocator and is charged to
    the line that created it; see ``_exact_objects``) from the start unless
    ``exact`` is false; ``objects.switch()`` switches them on later (a
    hunt's confirming rounds), until the session closes. Where they cannot
    be switched (3.9, another interpreter holding the switch), tracing goes
    on without.

    If the program was tracing already, its traces are kept and only the
    frame limit is raised; on close the limit goes back. If it was not, tracing
    starts and stops again on close. Either way the state after is the state
    before, also when the traced code raised or stopped tracing itself.
    """

    def __init__(self, nframe: int, *, exact: bool = True) -> None:
        self.requested = _check_nframe(nframe)
        self.exact = exact
        self.nframe = self.requested
        self._was_tracing = False
        self._old_nframe = 0
        self.objects: Optional[ExactObjects] = None

    def __enter__(self) -> TracingSession:
        self.objects = ExactObjects()
        if self.exact:
            self.objects.switch()
        self._was_tracing = native.is_tracing()
        if self._was_tracing:
            self._old_nframe = native.get_traceback_limit()
            self.nframe = max(self.requested, self._old_nframe)
            if self.nframe != self._old_nframe:
                native.start(self.nframe)  # while tracing: changes the limit, keeps the traces
        else:
            native.start(self.nframe)
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            if self._was_tracing:
                if not native.is_tracing() or native.get_traceback_limit() != self._old_nframe:
                    native.start(self._old_nframe)
            elif native.is_tracing():
                native.stop()
        finally:
            if self.objects is not None:
                self.objects.release()

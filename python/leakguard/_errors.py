"""leakguard's exceptions: one hierarchy rooted at :class:`LeakguardError`.

Each error also subclasses the builtin that users of stdlib ``tracemalloc``
(or pytest) already catch, so code written for those keeps working.
"""

from __future__ import annotations

__all__ = [
    "LeakguardError",
    "TracingError",
    "SnapshotError",
    "UsageError",
    "UsageTypeError",
    "LeakError",
]


class LeakguardError(Exception):
    """Root of every error leakguard raises on purpose."""


class TracingError(LeakguardError, RuntimeError):
    """Tracing is not in the state the call needs (e.g. a snapshot while not
    tracing), or the tracer cannot run on this interpreter."""


class SnapshotError(LeakguardError, ValueError):
    """A snapshot file is truncated, corrupted, hostile or of another format.

    The message names the file and what is wrong with it; ``filename`` holds
    the path.
    """

    def __init__(self, message: str, filename: str | None = None) -> None:
        super().__init__(message)
        self.filename = filename


class UsageError(LeakguardError, ValueError):
    """An argument has the right type but a wrong value."""


class UsageTypeError(LeakguardError, TypeError):
    """An argument has the wrong type."""


class LeakError(LeakguardError, AssertionError):
    """Memory, file descriptors or uncollectable garbage grew round after
    round: raised by ``LeakReport.raise_if_leaking()``.

    ``report`` is the :class:`leakguard.LeakReport`; the message is its text.
    An ``AssertionError``, so test runners count it as a failed check.
    """

    def __init__(self, report: object) -> None:
        super().__init__(str(report))
        self.report = report


def check_count(what: str, value: object, low: int) -> int:
    """``value`` as a count of at least ``low``; ``what`` names it in the error
    (``"hunt() argument 'rounds'"``): :class:`UsageTypeError` for a non-int
    (``bool`` included), :class:`UsageError` for one below ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageTypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < low:
        raise UsageError(f"{what} must be at least {low}, got {value}")
    return value

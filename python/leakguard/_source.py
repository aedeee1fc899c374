"""How a line of code is shown to a person, in every report and view:
``file:line`` with the file relative to the working directory when it is
below it, and the line's source text."""

from __future__ import annotations

import linecache
import os

__all__ = ["where", "source_line"]


def where(filename: str, lineno: int = 0) -> str:
    """``file:line``, or the file alone for ``lineno`` 0 (no line: a
    statistic grouped by file, or a frame without one)."""
    shown = filename
    if not filename.startswith("<"):
        try:
            rel = os.path.relpath(filename)
        except ValueError:  # pragma: no cover - another drive on Windows
            rel = filename
        if not rel.startswith(os.pardir):
            shown = rel
    return f"{shown}:{lineno}" if lineno else shown


def source_line(filename: str, lineno: int) -> str:
    """The stripped source line, or ``""`` when the file cannot be read."""
    return linecache.getline(filename, lineno).strip()

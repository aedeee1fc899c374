"""The terminal side of the command line: when to colour, aligned tables, a
progress bar.

Colour (``use_color``), in order: ``--color always`` or ``never`` decides;
with ``auto`` (the default) a non-empty ``NO_COLOR`` turns it off, a non-empty
``FORCE_COLOR`` turns it on, ``TERM=dumb`` turns it off, and otherwise the
stream must be a terminal. The progress bar is drawn only on a terminal.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from typing import IO, NamedTuple, Optional, Sequence, Union

__all__ = ["COLOR_CHOICES", "use_color", "Style", "Cell", "Terminal", "Progress"]

COLOR_CHOICES = ("auto", "always", "never")

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "cyan": "36",
}


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def use_color(choice: str, stream: IO[str]) -> bool:
    """Whether to colour what goes to ``stream`` (see the module's docstring)."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    return _isatty(stream)


class Style:
    """Wraps text in ANSI escapes, or leaves it alone when colour is off.

    ``style("text", "bold red")``: any of bold, dim, red, green, yellow, cyan.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or not style or not text:
            return text
        codes = ";".join(_CODES[name] for name in style.split())
        return f"\x1b[{codes}m{text}\x1b[0m"


class Cell(NamedTuple):
    """A table cell: its text and the style to draw it in (padding unstyled)."""

    text: str
    style: str = ""


CellLike = Union[Cell, str]


class Terminal:
    """Where a command writes: a stream, whether to colour it, how wide it is
    (``None`` when it is not a terminal: nothing is cut)."""

    def __init__(self, stream: IO[str], color: str) -> None:
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            # Arrows and ellipses on a terminal that cannot show them: "?", not a crash.
            stream.reconfigure(errors="replace")
        self.stream = stream
        self.style = Style(use_color(color, stream))
        self.width: Optional[int] = shutil.get_terminal_size().columns if _isatty(stream) else None

    def line(self, text: str = "", style: str = "") -> None:
        self.stream.write(self.style(text, style) + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[CellLike]], align: str) -> None:
        """Columns padded to their widest cell, two spaces apart; ``align`` has
        an ``r`` (right) or ``l`` (left) per column. The last column is cut to
        the terminal's width, if there is one."""
        cells = [[Cell(h, "bold") for h in header]]
        cells += [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
        widths = [max(len(row[i].text) for row in cells) for i in range(len(header))]
        for row in cells:
            parts = []
            used = 0
            for i, (cell, width) in enumerate(zip(row, widths)):
                last = i == len(row) - 1
                text = cell.text
                if last and self.width is not None and len(text) > self.width - used - 1:
                    text = text[: max(self.width - used - 2, 0)] + "…"
                pad = " " * (width - len(text))
                styled = self.style(text, cell.style)
                if align[i] == "r":
                    parts.append(pad + styled)
                else:
                    parts.append(styled if last else styled + pad)
                used += width + 2
            self.stream.write("  ".join(parts).rstrip() + "\n")


class Progress:
    """A one-line progress bar on a terminal stream, redrawn in place.

    Does nothing when the stream is not a terminal. ``update(label, done,
    total)`` redraws; ``close()`` erases the line. Redraws closer together than
    ``interval`` seconds are skipped unless the count changed.
    """

    WIDTH = 24

    def __init__(self, stream: IO[str], style: Style, interval: float = 0.1) -> None:
        self.stream = stream
        self.style = style
        self.enabled = _isatty(stream)
        utf8 = (getattr(stream, "encoding", "") or "").lower().replace("-", "") == "utf8"
        self.marks = ("█", "░") if utf8 else ("#", "-")
        self.interval = interval
        self._shown: Optional[str] = None
        self._last = 0.0

    def update(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        key = f"{label}{done}/{total}"
        if key == self._shown and now - self._last < self.interval:
            return
        filled = self.WIDTH * done // total if total > 0 else self.WIDTH
        full, empty = self.marks
        bar = self.style(full * filled, "cyan") + self.style(empty * (self.WIDTH - filled), "dim")
        self.stream.write(f"\r\x1b[K{label} {bar} {done}/{total}")
        self.stream.flush()
        self._shown = key
        self._last = now

    def close(self) -> None:
        if self.enabled and self._shown is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = None

"""Plain-text tables and machine facts shared by the benchmark reports."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the first column left-aligned, the rest right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = (str(c) for c in cells)
        padded = [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:])]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def fmt_bytes(n: Optional[float]) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def machine_facts() -> dict[str, Any]:
    """When and where a benchmark ran: what a results table must be read against."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }


def describe(facts: dict[str, Any]) -> str:
    return (
        f"{facts['date']}  {facts['implementation']} {facts['python']}  {facts['platform']}  "
        f"{facts['cpu_count']} CPUs  load {facts['loadavg'][0]:.2f}"
    )


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    """``action()``'s value and how long it took, in seconds."""
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


def median_of(values: Iterable[Optional[float]]) -> Optional[float]:
    """The median of the values present (None for a run that lacks the figure), or None."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def write_json(path: str | Path, document: Any) -> None:
    """Writes a benchmark's results (``--json FILE``) and says so."""
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")

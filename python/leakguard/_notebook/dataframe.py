"""pandas DataFrames of snapshots, statistics and diffs (``to_dataframe()``).

pandas is optional: it is imported when a DataFrame is asked for, and its
absence is a :class:`leakguard.UsageError` that names the package to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

from .._errors import UsageError

if TYPE_CHECKING:
    from .._hunter.report import LeakReport
    from .._model import Snapshot, Statistic, StatisticDiff, Traceback

__all__ = ["snapshot_frame", "statistics_frame", "diffs_frame", "leak_report_frame"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise UsageError(
            "to_dataframe() needs pandas, which is not installed: pip install pandas"
        ) from None
    return pandas


def _frames(traceback: Traceback) -> Tuple[str, ...]:
    return tuple(f"{frame.filename}:{frame.lineno}" for frame in traceback)


def _last(traceback: Traceback) -> Tuple[str, int]:
    if not len(traceback):
        return ("", 0)
    frame = traceback[-1]
    return (frame.filename, frame.lineno)


def snapshot_frame(snapshot: Snapshot) -> Any:
    """One row per trace."""
    pandas = _pandas()
    columns: Dict[str, List[Any]] = {
        "domain": [],
        "size": [],
        "filename": [],
        "lineno": [],
        "traceback": [],
        "total_nframe": [],
    }
    # Frames are shared between traces: build each traceback's tuple once.
    cache: Dict[Any, Tuple[Tuple[str, int], Tuple[str, ...]]] = {}
    for raw in snapshot.traces._traces:
        domain, size, frames = raw[0], raw[1], raw[2]
        found = cache.get(frames)
        if found is None:
            oldest_first = tuple(reversed(frames))
            found = cache[frames] = (
                frames[0] if frames else ("", 0),
                tuple(f"{f}:{n}" for f, n in oldest_first),
            )
        columns["domain"].append(domain)
        columns["size"].append(size)
        columns["filename"].append(found[0][0])
        columns["lineno"].append(found[0][1])
        columns["traceback"].append(found[1])
        columns["total_nframe"].append(raw[3] if len(raw) > 3 else None)
    return pandas.DataFrame(columns)


def statistics_frame(stats: Sequence[Statistic]) -> Any:
    pandas = _pandas()
    rows = []
    for stat in stats:
        filename, lineno = _last(stat.traceback)
        rows.append(
            (
                filename,
                lineno,
                stat.size,
                stat.count,
                stat.size / stat.count if stat.count else 0.0,
                _frames(stat.traceback),
            )
        )
    return pandas.DataFrame(
        rows, columns=["filename", "lineno", "size", "count", "average", "traceback"]
    )


def diffs_frame(diffs: Sequence[StatisticDiff]) -> Any:
    pandas = _pandas()
    rows = []
    for d in diffs:
        filename, lineno = _last(d.traceback)
        rows.append(
            (filename, lineno, d.size, d.size_diff, d.count, d.count_diff, _frames(d.traceback))
        )
    return pandas.DataFrame(
        rows,
        columns=["filename", "lineno", "size", "size_diff", "count", "count_diff", "traceback"],
    )


def leak_report_frame(report: LeakReport) -> Any:
    """One row per leaking site."""
    pandas = _pandas()
    rows = []
    for site in report.leaks:
        rows.append(
            (
                site.filename,
                site.lineno,
                site.line,
                site.size_per_round,
                site.count_per_round,
                site.growth,
                site.sizes,
                site.counts,
                site.rule,
                str(site.holders[0]) if site.holders else "",
                _frames(site.traceback),
            )
        )
    return pandas.DataFrame(
        rows,
        columns=[
            "filename",
            "lineno",
            "line",
            "size_per_round",
            "count_per_round",
            "growth",
            "sizes",
            "counts",
            "rule",
            "holder",
            "traceback",
        ],
    )

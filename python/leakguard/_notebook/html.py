"""HTML tables for notebooks: the ``_repr_html_`` of snapshots, statistics and
diff lists, leak reports and trackers.

Compact tables with sizes in human units, growth in red and shrinkage in green,
the source line beside each ``file:line``, and the allocation traceback folded
in a ``<details>`` element that opens on click. Every piece of text goes
through :func:`html.escape`; the styles are scoped to the ``leakguard-view``
class and use colours that read on light and dark notebook themes.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Dict, Iterable, List, NamedTuple, Sequence, Tuple

from .._hunter.report import shown_frames
from .._model import Snapshot, Statistic, StatisticDiff, Traceback, _format_size
from .._source import source_line, where

if TYPE_CHECKING:
    from .._hunter.report import Holder, LeakReport, LeakSite
    from .._hunter.track import Tracker

__all__ = [
    "MAX_ROWS",
    "snapshot_html",
    "statistics_html",
    "diffs_html",
    "leak_report_html",
    "tracker_html",
]

#: Rows a table shows before it says how many more there are.
MAX_ROWS = 20
#: Rows of a snapshot's or a tracker's per-line tables.
TOP_LINES = 10

_STYLE = """<style>
.leakguard-view{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;
 line-height:1.4;max-width:100%;overflow-x:auto}
.leakguard-view .lg-head{margin:4px 0 6px}
.leakguard-view .lg-head b{font-size:14px}
.leakguard-view .lg-muted{opacity:.7}
.leakguard-view table.lg-table{border-collapse:collapse;margin:2px 0 8px;width:auto}
.leakguard-view .lg-table th,.leakguard-view .lg-table td{padding:2px 8px;
 border-bottom:1px solid rgba(128,128,128,.25);text-align:left;vertical-align:top}
.leakguard-view .lg-table th{font-weight:600;white-space:nowrap}
.leakguard-view td.lg-num,.leakguard-view th.lg-num{text-align:right;white-space:nowrap;
 font-variant-numeric:tabular-nums}
.leakguard-view .lg-grow{color:#d62728;font-weight:600}
.leakguard-view .lg-shrink{color:#2ca02c;font-weight:600}
.leakguard-view .lg-share{position:relative;min-width:64px}
.leakguard-view .lg-bar{position:absolute;left:0;top:3px;height:1.1em;
 background:rgba(31,119,180,.25);border-radius:2px}
.leakguard-view .lg-bar.lg-grow{background:rgba(214,39,40,.3)}
.leakguard-view .lg-share span.lg-pct{position:relative}
.leakguard-view code{font-family:var(--jp-code-font-family,ui-monospace,monospace);font-size:12px}
.leakguard-view .lg-src{font-family:var(--jp-code-font-family,ui-monospace,monospace);
 font-size:12px;opacity:.8;margin-left:6px;white-space:pre}
.leakguard-view details>summary{cursor:pointer}
.leakguard-view pre.lg-tb{margin:4px 0 2px 14px;padding:4px 6px;font-size:12px;
 background:rgba(128,128,128,.1);border-radius:3px;white-space:pre;overflow-x:auto}
.leakguard-view .lg-badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;
 font-weight:600;font-size:12px;margin-right:6px}
.leakguard-view .lg-badge.lg-bad{background:#d62728}
.leakguard-view .lg-badge.lg-good{background:#2ca02c}
.leakguard-view h4{margin:10px 0 4px;font-size:13px}
.leakguard-view ul.lg-list{margin:2px 0 8px;padding-left:18px}
</style>"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _size(size: float) -> str:
    return _format_size(size, False)


def _signed(size: float) -> str:
    return _format_size(size, True)


def _trend(value: float) -> str:
    return "lg-grow" if value > 0 else "lg-shrink" if value < 0 else ""


def _view(*parts: str) -> str:
    return '<div class="leakguard-view">' + _STYLE + "".join(parts) + "</div>"


def _table(headers: Sequence[Tuple[str, bool]], rows: List[str], more: str = "") -> str:
    head = "".join(
        f'<th class="lg-num">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>" for h, num in headers
    )
    body = "".join(rows)
    if more:
        body += f'<tr><td colspan="{len(headers)}" class="lg-muted">{_e(more)}</td></tr>'
    return f'<table class="lg-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _num(text: str, cls: str = "") -> str:
    return (
        f'<td class="lg-num {cls}">{_e(text)}</td>'
        if cls
        else f'<td class="lg-num">{_e(text)}</td>'
    )


def _share(part: float, total: float, grow: bool = False) -> str:
    pct = 100.0 * part / total if total > 0 else 0.0
    width = max(0.0, min(pct, 100.0))
    cls = "lg-bar lg-grow" if grow else "lg-bar"
    return (
        f'<td class="lg-num lg-share"><span class="{cls}" style="width:{width:.1f}%"></span>'
        f'<span class="lg-pct">{pct:.1f}%</span></td>'
    )


def _traceback_lines(traceback: Traceback) -> str:
    """The traceback, most recent call first, as the interpreter words it."""
    return "\n".join(traceback.format(most_recent_first=True))


def _location(traceback: Traceback, extra: str = "") -> str:
    """``file:line`` and its source line, with the traceback folded under it
    when it has more than one frame (up to the machinery running the code:
    leakguard, a test runner, a notebook kernel, which is left out)."""
    if not len(traceback):
        return "<td>?</td>"
    traceback = shown_frames(traceback)
    frame = traceback[-1]  # the most recent
    source = source_line(frame.filename, frame.lineno)
    label = f"<code>{_e(where(frame.filename, frame.lineno))}</code>"
    if source:
        label += f'<span class="lg-src">{_e(source)}</span>'
    if len(traceback) > 1 or extra:
        folded = (
            f'<pre class="lg-tb">{_e(_traceback_lines(traceback))}</pre>'
            if len(traceback) > 1
            else ""
        )
        return f"<td><details><summary>{label}</summary>{extra}{folded}</details></td>"
    return f"<td>{label}</td>"


def _more(limit: int, total: int, what: str) -> str:
    """What a table of ``limit`` rows out of ``total`` leaves out, if anything."""
    return f"… {total - limit:,} more {what}" if total > limit else ""


# -- per-line grouping with the biggest traceback --------------------------


class _Line(NamedTuple):
    traceback: Traceback  # the traceback with the most bytes at this line
    size: int
    count: int  # type: ignore[assignment]  # shadows tuple.count, as Statistic.count reads
    size_diff: int
    count_diff: int


def _by_line(entries: Iterable[Tuple[Traceback, int, int, int, int]], key: int) -> List[_Line]:
    """Per-traceback entries summed per allocating line, each line keeping its
    biggest traceback (by field ``key`` of the entry: 1 size, 3 size_diff), so
    a folded row shows a whole stack. Sorted by that field, biggest first."""
    groups: Dict[Tuple[str, int], List[object]] = {}
    for entry in entries:
        traceback = entry[0]
        if not len(traceback):
            continue
        frame = traceback[-1]._frame
        acc = groups.get(frame)
        if acc is None:
            groups[frame] = [traceback, entry[1], entry[2], entry[3], entry[4], entry[key]]
            continue
        for i in range(1, 5):
            acc[i] += entry[i]  # type: ignore[operator]
        if entry[key] > acc[5]:  # type: ignore[operator]
            acc[0], acc[5] = traceback, entry[key]
    lines = [_Line(*acc[:5]) for acc in groups.values()]  # type: ignore[arg-type]
    lines.sort(key=lambda line: (line[key], line.size), reverse=True)
    return lines


# -- snapshots and statistics ------------------------------------------------


def _stat_rows(stats: Sequence[Statistic], total: int, limit: int) -> List[str]:
    rows = []
    for i, stat in enumerate(stats[:limit], 1):
        average = stat.size / stat.count if stat.count else 0
        rows.append(
            "<tr>"
            + _num(str(i))
            + _num(_size(stat.size))
            + _num(f"{stat.count:,}")
            + _num(_size(average))
            + _share(stat.size, total)
            + _location(stat.traceback)
            + "</tr>"
        )
    return rows


_STAT_HEADERS = (
    ("#", True),
    ("size", True),
    ("blocks", True),
    ("average", True),
    ("share", True),
    ("allocated at", False),
)


def snapshot_html(snapshot: Snapshot, limit: int = TOP_LINES) -> str:
    """The snapshot's totals and its top lines, each with its biggest traceback."""
    per_traceback = snapshot.statistics("traceback")
    lines = _by_line(((s.traceback, s.size, s.count, 0, 0) for s in per_traceback), 1)
    total = sum(s.size for s in per_traceback)
    blocks = sum(s.count for s in per_traceback)
    stats = [Statistic(line.traceback, line.size, line.count) for line in lines]
    head = (
        f'<div class="lg-head"><b>leakguard Snapshot</b> '
        f'<span class="lg-muted">{blocks:,} blocks · {_e(_size(total))} · '
        f"{len(lines):,} lines · traceback limit {_e(snapshot.traceback_limit)}</span></div>"
    )
    table = _table(
        _STAT_HEADERS,
        _stat_rows(stats, total, limit),
        _more(limit, len(stats), "lines"),
    )
    return _view(head, table)


def statistics_html(stats: Sequence[Statistic], limit: int = MAX_ROWS) -> str:
    """A ``Snapshot.statistics()`` list."""
    total = sum(s.size for s in stats)
    blocks = sum(s.count for s in stats)
    head = (
        f'<div class="lg-head"><b>Statistics</b> <span class="lg-muted">{len(stats):,} rows · '
        f"{blocks:,} blocks · {_e(_size(total))}</span></div>"
    )
    more = _more(limit, len(stats), "rows")
    return _view(head, _table(_STAT_HEADERS, _stat_rows(stats, total, limit), more))


def _diff_rows(diffs: Sequence[Tuple[Traceback, int, int, int, int]], limit: int) -> List[str]:
    grown = sum(max(d[2], 0) for d in diffs) or 1
    rows = []
    for i, (traceback, size, size_diff, count, count_diff) in enumerate(diffs[:limit], 1):
        rows.append(
            "<tr>"
            + _num(str(i))
            + _num(_signed(size_diff), _trend(size_diff))
            + _num(f"{count_diff:+,}", _trend(count_diff))
            + _num(_size(size))
            + _num(f"{count:,}")
            + _share(max(size_diff, 0), grown, grow=True)
            + _location(traceback)
            + "</tr>"
        )
    return rows


_DIFF_HEADERS = (
    ("#", True),
    ("change", True),
    ("blocks", True),
    ("size now", True),
    ("blocks now", True),
    ("of growth", True),
    ("allocated at", False),
)


def diffs_html(diffs: Sequence[StatisticDiff], limit: int = MAX_ROWS, title: str = "Diff") -> str:
    """A ``Snapshot.compare_to()`` list: growth in red, shrinkage in green."""
    rows = [(d.traceback, d.size, d.size_diff, d.count, d.count_diff) for d in diffs]
    change = sum(d.size_diff for d in diffs)
    grew = sum(1 for d in diffs if d.size_diff > 0)
    head = (
        f'<div class="lg-head"><b>{_e(title)}</b> '
        f'<span class="{_trend(change)}">{_e(_signed(change))}</span> '
        f'<span class="lg-muted">in all · {grew:,} of {len(diffs):,} rows grew</span></div>'
    )
    more = _more(limit, len(diffs), "rows")
    return _view(head, _table(_DIFF_HEADERS, _diff_rows(rows, limit), more))


# -- leak reports ---------------------------------------------------------------


def _sparkline(values: Sequence[int], width: int = 90, height: int = 18) -> str:
    """An inline SVG line of a per-round series (its own scale)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1
    step = (width - 4) / (len(values) - 1)
    points = " ".join(
        f"{2 + i * step:.1f},{height - 2 - (v - low) * (height - 4) / span:.1f}"
        for i, v in enumerate(values)
    )
    return (
        f'<svg class="lg-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="live after each round">'
        f'<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{points}"/></svg>'
    )


def _holder_html(holders: Sequence[Holder]) -> str:
    if not holders:
        return (
            '<span class="lg-muted">no referrer found (native code, or not a Python object)</span>'
        )
    return "<br>".join(f"<code>{_e(h)}</code>" for h in holders)


def _site_rows(sites: Sequence[LeakSite]) -> List[str]:
    rows = []
    for i, site in enumerate(sites, 1):
        series = " → ".join(_size(v) for v in site.sizes)
        extra = f'<div class="lg-muted">{_e(site.rule)}</div>'
        rows.append(
            "<tr>"
            + _num(str(i))
            + _num(_signed(site.size_per_round), "lg-grow")
            + _num(f"{site.count_per_round:+,.0f}", "lg-grow")
            + f'<td>{_sparkline(site.sizes)}<div class="lg-muted">{_e(series)}</div></td>'
            + f"<td>{_holder_html(site.holders)}</td>"
            + _location(site.traceback, extra)
            + "</tr>"
        )
    return rows


_SITE_HEADERS = (
    ("#", True),
    ("per round", True),
    ("blocks", True),
    ("live after each round", False),
    ("held by", False),
    ("allocated at", False),
)


def _other_sites(title: str, sites: Sequence[LeakSite]) -> str:
    if not sites:
        return ""
    items = "".join(
        f"<li><code>{_e(s.where)}</code> "
        f'<span class="lg-grow">{_e(_signed(s.size_per_round))}</span> per round'
        + (f": <code>{_e(s.holders[0])}</code>" if s.holders else "")
        + "</li>"
        for s in sites
    )
    return f'<h4>{_e(title)}</h4><ul class="lg-list">{items}</ul>'


def leak_report_html(report: LeakReport) -> str:
    """A hunt's verdict, its leaking sites with holders and tracebacks,
    descriptors, cycles, and what grew without leaking."""
    badge = (
        '<span class="lg-badge lg-bad">LEAKING</span>'
        if report.leaking
        else '<span class="lg-badge lg-good">no leaks</span>'
    )
    parts = [f'<div class="lg-head">{badge}<b>{_e(report.summary())}</b></div>']
    if report.traced:
        series = " → ".join(_size(v) for v in report.traced)
        parts.append(f'<div class="lg-muted">Traced memory after each round: {_e(series)}</div>')
    if report.leaks:
        parts.append("<h4>Leaking sites</h4>")
        parts.append(_table(_SITE_HEADERS, _site_rows(report.leaks)))
    for title, lines in (
        ("Resources", report.resources.format()),
        ("Cycles", report.cycles.format()),
    ):
        # The text report's lines, without the heading the first one starts with.
        lines = [lines[0].split(": ", 1)[-1], *lines[1:]] if lines else []
        items = "".join(f"<li>{_e(line.strip())}</li>" for line in lines)
        parts.append(f'<h4>{_e(title)}</h4><ul class="lg-list">{items}</ul>')
    parts.append(
        _other_sites(
            "Growing, but bounded (a size-limited cache filling or replacing entries, "
            "or spare room): not leaks",
            report.bounded,
        )
    )
    parts.append(
        _other_sites(
            "Growing, but held only by what runs the rounds: not leaks", report.runner_held
        )
    )
    return _view(*parts)


# -- trackers ---------------------------------------------------------------------


def tracker_html(tracker: Tracker, limit: int = TOP_LINES) -> str:
    """What a tracked block left alive, per line, and what it held at its peak."""
    if not tracker._tracked:
        return _view(
            '<div class="lg-head"><b>leakguard tracker</b> '
            '<span class="lg-muted">nothing tracked yet</span></div>'
        )
    parts = []
    if tracker.after is not None:
        head = (
            f'<div class="lg-head"><b>leakguard</b> peak <b>{_e(_size(tracker.peak))}</b> · '
            f'left alive <b class="{_trend(tracker.leaked)}">{_e(_size(tracker.leaked))}</b> '
            f"in {tracker.leaked_blocks:,} blocks · "
            f'net <span class="{_trend(tracker.net)}">{_e(_signed(tracker.net))}</span> · '
            f'<span class="lg-muted">{tracker.duration:.3f} s, nframe {tracker.nframe}</span></div>'
        )
        parts.append(head)
        diffs = tracker.diff("traceback")
        grew = _by_line(
            (
                (d.traceback, d.size, d.count, d.size_diff, d.count_diff)
                for d in diffs
                if d.size_diff > 0
            ),
            3,
        )
        rows = [
            (line.traceback, line.size, line.size_diff, line.count, line.count_diff)
            for line in grew
        ]
        parts.append("<h4>Left alive</h4>")
        if rows:
            parts.append(
                _table(
                    _DIFF_HEADERS,
                    _diff_rows(rows, limit),
                    _more(limit, len(rows), "lines"),
                )
            )
        else:
            parts.append(
                '<div class="lg-muted">nothing: every block allocated in the block was freed</div>'
            )
    else:
        parts.append(
            f'<div class="lg-head"><b>leakguard</b> peak <b>{_e(_size(tracker.peak))}</b> · net '
            f'<span class="{_trend(tracker.net)}">{_e(_signed(tracker.net))}</span> · '
            f'<span class="lg-muted">{tracker.duration:.3f} s</span></div>'
        )
    at_peak = tracker.at_peak("traceback")
    if at_peak:
        lines = _by_line(((s.traceback, s.size, s.count, 0, 0) for s in at_peak), 1)
        stats = [Statistic(line.traceback, line.size, line.count) for line in lines]
        total = sum(s.size for s in stats)
        parts.append(
            f'<h4>At the peak <span class="lg-muted">({_e(_size(total))} held)</span></h4>'
        )
        parts.append(
            _table(
                _STAT_HEADERS,
                _stat_rows(stats, total, limit),
                _more(limit, len(stats), "lines"),
            )
        )
    return _view(*parts)

"""Snapshots, tracer memory and accuracy on a heap of a million live traced blocks.

    python benches/snapshot_bench.py                  # 1,000,000 blocks, 3 reps, nframe 1
    python benches/snapshot_bench.py --quick          # 100,000 blocks, 1 rep
    python benches/snapshot_bench.py --blocks 2000000 --nframe 10 --json snapshot.json

Each measurement runs in a fresh process (this script re-invoked with ``--child``) that builds the
same heap: ``--blocks`` distinct small objects allocated from 50 different lines, kept alive. At
that quiescent point (after ``gc.collect()``) it records the traced bytes and the tracer's own
memory, then times ``take_snapshot()``, ``statistics("lineno")``, and, after freeing five sites and
allocating five new ones, ``compare_to(first, "lineno")``. Processes are interleaved across
tracers (untraced, stdlib tracemalloc, leakguard when it imports) and medians are reported.

Tracer memory per live block is measured twice: self-reported (``get_tracemalloc_memory()`` over
the number of live traces) and from outside (RSS growth while building the heap, minus the same
growth untraced, over the number of live traces), since a tracer's own figure can leave things
out. Accuracy is leakguard's traced bytes against stdlib tracemalloc's for the identical heap.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from _report import describe, fmt_bytes, format_table, machine_facts, median_of, timed, write_json
from _tracers import TracemallocApi, make_tracer, probe, rss_bytes, run_measurement

SITES = 50
TRACERS = ("untraced", "tracemalloc", "leakguard")
# leakguard's targets against stdlib tracemalloc on this heap.
SPEEDUP_TARGET = 10.0
MEMORY_TARGET = 0.5
ACCURACY_TARGET = 0.01

Result = dict[str, Any]


class Slotted:
    __slots__ = ("a",)


class Plain:
    pass


def build_heap(per_site: int) -> list[list[Any]]:
    """``50 * per_site`` live blocks of 16-100 bytes, one site per line, one block per object."""
    r = range(per_site)
    return [
        [Slotted() for _ in r],
        [object() for _ in r],
        [f"s{i}" for i in r],
        [[] for _ in r],
        [{} for _ in r],
        [str(i) for i in r],
        [b"b%d" % i for i in r],
        [bytearray() for _ in r],
        [f"longer-string-{i}-with-padding" for i in r],
        [Slotted() for _ in r],
        [object() for _ in r],
        [f"t{i}" for i in r],
        [[] for _ in r],
        [{} for _ in r],
        [str(i * 3) for i in r],
        [b"c%d" % i for i in r],
        [bytearray() for _ in r],
        [f"key:{i}:value" for i in r],
        [Slotted() for _ in r],
        [object() for _ in r],
        [f"u{i}" for i in r],
        [[] for _ in r],
        [{} for _ in r],
        [str(i * 7) for i in r],
        [b"d%d" % i for i in r],
        [bytearray() for _ in r],
        [f"/api/users/{i}/orders" for i in r],
        [Slotted() for _ in r],
        [object() for _ in r],
        [f"v{i}" for i in r],
        [[] for _ in r],
        [{} for _ in r],
        [str(i * 11) for i in r],
        [b"e%d" % i for i in r],
        [bytearray() for _ in r],
        [f"session-{i:08x}" for i in r],
        [Slotted() for _ in r],
        [object() for _ in r],
        [f"w{i}" for i in r],
        [[] for _ in r],
        [{} for _ in r],
        [str(i * 13) for i in r],
        [b"f%d" % i for i in r],
        [bytearray() for _ in r],
        [f"user{i}@example.com" for i in r],
        [Slotted() for _ in r],
        [object() for _ in r],
        [f"x{i}" for i in r],
        [[] for _ in r],
        [{} for _ in r],
    ]


def grow_heap(per_site: int) -> list[list[Any]]:
    """Five new sites, allocated between the two snapshots that ``compare_to`` diffs."""
    r = range(per_site)
    return [
        [f"new{i}" for i in r],
        [Slotted() for _ in r],
        [object() for _ in r],
        [[] for _ in r],
        [b"g%d" % i for i in r],
    ]


def child(tracer_name: str, nframe: int, blocks: int) -> Result:
    per_site = blocks // SITES
    tracer = make_tracer(tracer_name)
    gc.collect()
    rss_before = rss_bytes()
    tracer.start(nframe)
    heap, build_s = timed(lambda: build_heap(per_site))
    gc.collect()
    rss_after = rss_bytes()
    result: Result = {
        "tracer": tracer_name,
        "nframe": nframe,
        "blocks": per_site * SITES,
        "build_s": build_s,
        "rss_growth_bytes": rss_after - rss_before,
    }
    if isinstance(tracer, TracemallocApi):
        current, peak = tracer.traced_memory() or (0, 0)
        result.update(current_bytes=current, peak_bytes=peak, tracer_bytes=tracer.tracer_memory())
        first, result["snapshot_s"] = timed(tracer.take_snapshot)
        result["traces"] = len(first.traces)
        stats, result["statistics_s"] = timed(lambda: first.statistics("lineno"))
        result["statistics_count"] = len(stats)
        result["top_site_count"] = stats[0].count if stats else 0
        del heap[:5]
        heap.extend(grow_heap(per_site))
        gc.collect()
        second = tracer.take_snapshot()
        diff, result["compare_s"] = timed(lambda: second.compare_to(first, "lineno"))
        result["diff_count"] = len(diff)
    tracer.stop()
    return result


def run_child(tracer: str, nframe: int, blocks: int, timeout: float) -> Result:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", tracer]
    command += ["--nframe", str(nframe), "--blocks", str(blocks)]
    result = run_measurement(command, timeout, str(Path(__file__).resolve().parent))
    return {"tracer": tracer, **result} if "error" in result else result


def _median(results: list[Result], key: str) -> Optional[float]:
    return median_of(r.get(key) for r in results)


def summarise(results: list[Result]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    untraced = [r for r in results if r["tracer"] == "untraced" and "error" not in r]
    base_rss = _median(untraced, "rss_growth_bytes")
    for tracer in TRACERS[1:]:
        done = [r for r in results if r["tracer"] == tracer and "error" not in r]
        if not done:
            continue
        row: dict[str, Any] = {"runs": len(done)}
        for key in (
            "build_s",
            "snapshot_s",
            "statistics_s",
            "compare_s",
            "traces",
            "current_bytes",
            "tracer_bytes",
            "rss_growth_bytes",
            "statistics_count",
            "diff_count",
        ):
            row[key] = _median(done, key)
        row["snapshot_statistics_s"] = row["snapshot_s"] + row["statistics_s"]
        traces = row["traces"]
        row["tracer_bytes_per_trace"] = row["tracer_bytes"] / traces if traces else None
        if base_rss is not None and traces:
            row["rss_bytes_per_trace"] = (row["rss_growth_bytes"] - base_rss) / traces
        summary[tracer] = row
    return summary


def comparisons(summary: dict[str, dict[str, Any]]) -> dict[str, Optional[float]]:
    """leakguard against stdlib tracemalloc: speed-ups, memory ratios, traced-bytes difference."""
    tm, lg = summary.get("tracemalloc"), summary.get("leakguard")
    if not tm or not lg:
        return {}

    def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return a / b if a is not None and b else None

    return {
        "snapshot_statistics_speedup": ratio(
            tm["snapshot_statistics_s"], lg["snapshot_statistics_s"]
        ),
        "compare_speedup": ratio(tm["compare_s"], lg["compare_s"]),
        "tracer_memory_ratio": ratio(lg["tracer_bytes_per_trace"], tm["tracer_bytes_per_trace"]),
        "rss_memory_ratio": ratio(lg.get("rss_bytes_per_trace"), tm.get("rss_bytes_per_trace")),
        "current_bytes_difference": ratio(
            lg["current_bytes"] - tm["current_bytes"], tm["current_bytes"]
        ),
        "traces_difference": ratio(lg["traces"] - tm["traces"], tm["traces"]),
    }


def report(summary: dict[str, dict[str, Any]], pending: dict[str, str]) -> str:
    def seconds(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.3f}"

    def per_trace(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.1f} B"

    headers = ["tracer", "build s", "snapshot s", "statistics s", "snap+stats s", "compare_to s"]
    headers += ["traces", "stats", "diffs", "current", "self-reported/trace", "RSS/trace"]
    rows = []
    for tracer in TRACERS[1:]:
        row = summary.get(tracer)
        if row is None:
            status = "pending" if tracer in pending else "failed"
            rows.append([tracer, status, *["-"] * (len(headers) - 2)])
            continue
        rows.append(
            [
                tracer,
                seconds(row["build_s"]),
                seconds(row["snapshot_s"]),
                seconds(row["statistics_s"]),
                seconds(row["snapshot_statistics_s"]),
                seconds(row["compare_s"]),
                f"{row['traces']:,.0f}",
                f"{row['statistics_count']:.0f}",
                f"{row['diff_count']:.0f}",
                fmt_bytes(row["current_bytes"]),
                per_trace(row["tracer_bytes_per_trace"]),
                per_trace(row.get("rss_bytes_per_trace")),
            ]
        )
    return format_table(headers, rows)


# (key in comparisons(), what it is, how to show it, the target, whether a value meets it)
_CHECKS: tuple[tuple[str, str, str, str, Callable[[float], bool]], ...] = (
    (
        "snapshot_statistics_speedup",
        "take_snapshot + statistics, leakguard faster by",
        "{:.1f}x",
        f">= {SPEEDUP_TARGET:.0f}x",
        lambda v: v >= SPEEDUP_TARGET,
    ),
    ("compare_speedup", "compare_to, leakguard faster by", "{:.1f}x", "", lambda v: True),
    (
        "tracer_memory_ratio",
        "tracer memory per block (self-reported), leakguard / tracemalloc",
        "{:.2f}",
        f"<= {MEMORY_TARGET}",
        lambda v: v <= MEMORY_TARGET,
    ),
    (
        "rss_memory_ratio",
        "tracer memory per block (RSS growth), leakguard / tracemalloc",
        "{:.2f}",
        f"<= {MEMORY_TARGET}",
        lambda v: v <= MEMORY_TARGET,
    ),
    (
        "current_bytes_difference",
        "traced bytes at the quiescent point, leakguard vs tracemalloc",
        "{:+.3%}",
        f"within {ACCURACY_TARGET:.0%}",
        lambda v: abs(v) <= ACCURACY_TARGET,
    ),
    ("traces_difference", "live traces, leakguard vs tracemalloc", "{:+.3%}", "", lambda v: True),
)


def comparison_lines(compared: dict[str, Optional[float]]) -> list[str]:
    lines = []
    for key, label, shown, target, meets in _CHECKS:
        value = compared.get(key)
        line = f"{label}: {'pending' if value is None else shown.format(value)}"
        if target:
            line += f"  (target {target})"
            if value is not None:
                line += " meets" if meets(value) else " MISSES"
        lines.append(line)
    return lines


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100,000 blocks, 1 rep")
    parser.add_argument("--blocks", type=int, help="live blocks to build (default 1,000,000)")
    parser.add_argument("--nframe", type=int, default=1, help="traceback depth (default 1)")
    parser.add_argument("--reps", type=int, help="processes per tracer (default 3)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per process")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--child", choices=TRACERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.blocks is None:
        args.blocks = 100_000 if args.quick else 1_000_000
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.blocks < SITES or args.reps < 1 or args.nframe < 1:
        parser.error("--blocks must be at least 50, --reps and --nframe at least 1")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.nframe, args.blocks)))
        return 0
    probes = {t: probe(t) for t in TRACERS[1:]}
    pending = {t: detail for t, (ok, detail) in probes.items() if not ok}
    versions = {t: detail for t, (ok, detail) in probes.items() if ok}
    for tracer, reason in pending.items():
        print(f"{tracer}: not available, its rows stay pending ({reason})", file=sys.stderr)
    tracers = [t for t in TRACERS if t not in pending]
    results: list[Result] = []
    for rep in range(args.reps):
        for tracer in tracers[rep % len(tracers) :] + tracers[: rep % len(tracers)]:
            result = run_child(tracer, args.nframe, args.blocks, args.timeout)
            results.append({**result, "rep": rep})
            shown = result.get("error") or f"built in {result['build_s']:.2f} s"
            print(f"rep {rep + 1} {tracer}: {shown}", file=sys.stderr)
    summary = summarise(results)
    compared = comparisons(summary)
    machine = {**machine_facts(), "tracers": versions}
    print(
        f"\n{describe(machine)}  {args.blocks:,} blocks from {SITES} lines  "
        f"nframe {args.nframe}  {args.reps} reps (medians)\n"
    )
    print(report(summary, pending))
    print()
    print("\n".join(comparison_lines(compared)))
    for tracer, reason in pending.items():
        print(f"\n{tracer}: pending, not importable here ({reason})")
    if args.json:
        document = {
            "benchmark": "snapshot",
            "machine": machine,
            "blocks": args.blocks,
            "nframe": args.nframe,
            "reps": args.reps,
            "pending": pending,
            "summary": summary,
            "comparisons": compared,
            "runs": results,
        }
        write_json(args.json, document)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

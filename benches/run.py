"""Tracing overhead: workload wall time untraced vs under each tracer, one fresh process per run.

    python benches/run.py                      # every workload, every available mode, 5 reps
    python benches/run.py --quick              # CI smoke: 3 reps at scale 0.025, under 2 minutes
    python benches/run.py --workloads json_roundtrip,deep_recursion --modes untraced,leakguard:1
    python benches/run.py --reps 7 --json results.json

Modes are ``untraced``, ``tracemalloc:N``, ``leakguard:N`` (a bare name means N = 1, 10 and 25)
and ``memray``; leakguard and memray are skipped, and said to be, when they do not import and
start in this interpreter. Runs are interleaved: each repetition visits every workload and, for
each, every mode, in an order rotated by one place per repetition, so that drift in the machine's
load spreads over all modes instead of landing on one. The report gives medians, ratios to the
untraced median, and the tracers' own memory figures; it reports and never asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

from _report import describe, fmt_bytes, format_table, machine_facts, median_of, write_json
from _tracers import Mode, parse_modes, probe, run_measurement
from workloads import WORKLOADS

BENCHES = Path(__file__).resolve().parent
CHILD = BENCHES / "_child.py"
DEFAULT_MODES = "untraced,tracemalloc,leakguard,memray"
DEFAULT_REPS = 5
DEFAULT_SCALE = 1.0
QUICK_REPS = 3
QUICK_SCALE = 0.025
# The overhead targets leakguard is held to (traced / untraced median wall time), by nframe.
LEAKGUARD_TARGETS: dict[int, float] = {1: 2.0, 25: 3.0}

Run = dict[str, Any]
Summary = dict[str, Any]


def schedule(workloads: Sequence[str], modes: Sequence[Mode], reps: int) -> list[tuple]:
    """(rep, workload, mode) in run order: round-robin over modes, rotated each repetition."""
    order = []
    for rep in range(reps):
        shift = rep % len(modes)
        rotated = list(modes[shift:]) + list(modes[:shift])
        for workload in workloads:
            order.extend((rep, workload, mode) for mode in rotated)
    return order


def run_child(mode: Mode, workload: str, scale: float, timeout: float) -> Run:
    command = [sys.executable, str(CHILD), mode.tracer, str(mode.nframe), workload, str(scale)]
    return run_measurement(command, timeout, str(BENCHES))


def summarise(runs: list[Run], workloads: Sequence[str], modes: Sequence[Mode]) -> list[Summary]:
    by_key: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        by_key[run["workload"], run["mode"]].append(run)
    summaries = []
    for workload in workloads:
        baseline = median_of([r["wall_s"] for r in by_key[workload, "untraced"] if "wall_s" in r])
        for mode in modes:
            done = [r for r in by_key[workload, mode.label] if "wall_s" in r]
            walls = [r["wall_s"] for r in done]
            median = median_of(walls)
            summaries.append(
                {
                    "workload": workload,
                    "mode": mode.label,
                    "tracer": mode.tracer,
                    "nframe": mode.nframe,
                    "runs": len(walls),
                    "errors": len(by_key[workload, mode.label]) - len(walls),
                    "median_s": median,
                    "min_s": min(walls) if walls else None,
                    "max_s": max(walls) if walls else None,
                    "ratio": median / baseline if median and baseline else None,
                    "current_bytes": median_of([r["current_bytes"] for r in done]),
                    "peak_bytes": median_of([r["peak_bytes"] for r in done]),
                    "tracer_bytes": median_of([r["tracer_bytes"] for r in done]),
                    "capture_bytes": median_of([r["capture_bytes"] for r in done]),
                    "maxrss_kib": median_of([r["maxrss_kib"] for r in done]),
                }
            )
    return summaries


def checksum_mismatches(runs: list[Run]) -> dict[str, list[int]]:
    """Workloads whose runs did not all compute the same result (they must, under any tracer)."""
    seen: dict[str, set[int]] = defaultdict(set)
    for run in runs:
        if "checksum" in run:
            seen[run["workload"]].add(run["checksum"])
    return {w: sorted(sums) for w, sums in seen.items() if len(sums) > 1}


def fmt_ratio(ratio: Optional[float]) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def detail_table(summaries: list[Summary], pending: dict[str, str]) -> str:
    headers = ["workload", "mode", "median s", "vs untraced", "min s", "max s", "n"]
    headers += ["current", "peak", "tracer mem"]
    rows = []
    for s in summaries:
        if s["median_s"] is None:
            status = "pending" if s["tracer"] in pending else "failed"
            rows.append([s["workload"], s["mode"], status, *["-"] * 7])
            continue
        rows.append(
            [
                s["workload"],
                s["mode"],
                f"{s['median_s']:.3f}",
                fmt_ratio(s["ratio"]),
                f"{s['min_s']:.3f}",
                f"{s['max_s']:.3f}",
                str(s["runs"]),
                fmt_bytes(s["current_bytes"]),
                fmt_bytes(s["peak_bytes"]),
                fmt_bytes(s["tracer_bytes"]),
            ]
        )
    return format_table(headers, rows)


def ratio_table(
    summaries: list[Summary],
    workloads: Sequence[str],
    modes: Sequence[Mode],
    pending: dict[str, str],
) -> str:
    """Workloads down, modes across, each cell the median ratio to untraced; geometric mean last."""
    ratio = {(s["workload"], s["mode"]): s["ratio"] for s in summaries}
    untraced_s = {s["workload"]: s["median_s"] for s in summaries if s["mode"] == "untraced"}
    traced = [m for m in modes if m.tracer != "untraced"]
    headers = ["workload", "untraced s", *(m.label for m in traced)]
    rows = []
    for workload in workloads:
        base = untraced_s.get(workload)
        cells = [
            "pending" if m.tracer in pending else fmt_ratio(ratio.get((workload, m.label)))
            for m in traced
        ]
        rows.append([workload, "-" if base is None else f"{base:.3f}", *cells])
    geo = []
    for mode in traced:
        values = [ratio.get((w, mode.label)) for w in workloads]
        present = [v for v in values if v]
        if mode.tracer in pending:
            geo.append("pending")
        else:
            geo.append(fmt_ratio(statistics.geometric_mean(present)) if present else "-")
    rows.append(["geometric mean", "", *geo])
    return format_table(headers, rows)


def target_report(summaries: list[Summary]) -> list[str]:
    lines = []
    for nframe, limit in LEAKGUARD_TARGETS.items():
        hits = [s for s in summaries if s["tracer"] == "leakguard" and s["nframe"] == nframe]
        for s in hits:
            if s["ratio"] is None:
                continue
            verdict = "meets" if s["ratio"] <= limit else "MISSES"
            lines.append(
                f"leakguard nframe={nframe} on {s['workload']}: {s['ratio']:.2f}x "
                f"(target <= {limit:.1f}x) {verdict}"
            )
    return lines


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Tracing overhead of stdlib tracemalloc, leakguard and memray.",
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke: fewer reps, small scale")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated (default: all)"
    )
    parser.add_argument(
        "--modes", default=DEFAULT_MODES, help=f"comma-separated (default: {DEFAULT_MODES})"
    )
    parser.add_argument("--reps", type=int, help=f"repetitions (default {DEFAULT_REPS})")
    parser.add_argument("--scale", type=float, help=f"workload scale (default {DEFAULT_SCALE})")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = QUICK_REPS if args.quick else DEFAULT_REPS
    if args.scale is None:
        args.scale = QUICK_SCALE if args.quick else DEFAULT_SCALE
    if args.reps < 1 or args.scale <= 0:
        parser.error("--reps must be at least 1 and --scale positive")
    args.workloads = [w for w in (x.strip() for x in args.workloads.split(",")) if w]
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {', '.join(WORKLOADS)}")
    try:
        args.modes = parse_modes(args.modes)
    except ValueError as exc:
        parser.error(str(exc))
    if Mode("untraced") not in args.modes:
        args.modes.insert(0, Mode("untraced"))
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    tracers = dict.fromkeys(m.tracer for m in args.modes)
    probes = {t: probe(t) for t in tracers}
    pending = {t: detail for t, (ok, detail) in probes.items() if not ok}
    versions = {t: detail for t, (ok, detail) in probes.items() if ok}
    for tracer, reason in pending.items():
        print(f"{tracer}: not available, its rows stay pending ({reason})", file=sys.stderr)
    runnable = [m for m in args.modes if m.tracer not in pending]
    plan = schedule(args.workloads, runnable, args.reps)
    load_before = os.getloadavg()
    started = time.perf_counter()
    runs: list[Run] = []
    for index, (rep, workload, mode) in enumerate(plan, 1):
        run = run_child(mode, workload, args.scale, args.timeout)
        run.update(rep=rep, workload=workload, mode=mode.label)
        runs.append(run)
        shown = run["error"] if "error" in run else f"{run['wall_s']:.3f} s"
        print(
            f"[{index}/{len(plan)}] rep {rep + 1} {workload} {mode.label}: {shown}", file=sys.stderr
        )
    elapsed = time.perf_counter() - started

    summaries = summarise(runs, args.workloads, args.modes)
    mismatches = checksum_mismatches(runs)
    machine = {**machine_facts(), "loadavg_before": load_before, "tracers": versions}
    print(
        f"\n{describe(machine)} (before: {load_before[0]:.2f})  scale {args.scale}  "
        f"{args.reps} reps  {elapsed:.0f} s in all"
    )
    print("\nMedian wall time of run() and ratio to untraced; traced memory at the end of run()\n")
    print(detail_table(summaries, pending))
    print("\nTraced / untraced median wall time\n")
    print(ratio_table(summaries, args.workloads, args.modes, pending))
    targets = target_report(summaries)
    if targets:
        print("\nleakguard targets\n")
        print("\n".join(targets))
    for tracer, reason in pending.items():
        print(f"\n{tracer}: pending, not importable here ({reason})")
    for workload, sums in mismatches.items():
        print(f"\nWARNING: {workload} computed different checksums across runs: {sums}")

    if args.json:
        document = {
            "benchmark": "tracing overhead",
            "machine": machine,
            "scale": args.scale,
            "reps": args.reps,
            "workloads": args.workloads,
            "modes": [m.label for m in args.modes],
            "pending": pending,
            "elapsed_s": elapsed,
            "summary": summaries,
            "checksum_mismatches": mismatches,
            "runs": runs,
        }
        write_json(args.json, document)
    failed = [r for r in runs if "error" in r]
    if failed:
        print(f"\n{len(failed)} runs failed; first: {failed[0]['error']}", file=sys.stderr)
    return 1 if failed or mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

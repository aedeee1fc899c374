"""What a leak hunt costs: the hunt against the same work traced plainly, and the
holder search on a heap of a million objects.

    python benches/hunt_bench.py                 # every workload, 5 reps, scale 0.2 per round
    python benches/hunt_bench.py --quick         # 1 rep at scale 0.02, and a 100,000-object heap
    python benches/hunt_bench.py --workloads request_handler --reps 3 --json hunt.json

**Hunt overhead.** For each workload, one fresh process per measurement, interleaved: *untraced*
runs ``run(scale)`` ``warmup + rounds`` times (2 + 5), with a full collection after each; *traced*
does the same with leakguard tracing at the hunt's frame depth (16); *exact* also keeps objects
out of CPython's free lists all along (what a hunt's confirming rounds do, so that each object is
charged to the line that created it); *hunt* runs ``leakguard.hunt(run, scale)`` with the same
rounds. The hunt's cost over tracing is hunt / traced - 1 (target: at most +10%). The leaks each
hunt flagged are listed too: these workloads do not leak (request_handler has a bounded cache), so
any is a false positive. *leaky* hunts the workload followed by one 4 KiB buffer kept for good:
a hunt that finds growth runs its rounds again with exact attribution (and the runs that tell a
leak from a full cache), so it costs more; the table gives that cost over tracing the 7 runs, and
in how many runs the hunt flagged the kept buffer's line and nothing else.

**Holder search.** A fresh process builds ``--objects`` live objects (lists and dicts held by
module globals, a realistic heap), adds a leaking site (a global list of dicts), and times
``find_holders`` for it: the native object walk and the referrer search, as the hunt runs them
(target: at most 2 s for 1,000,000 objects).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from _report import format_table, machine_facts, write_json
from _tracers import run_measurement
from workloads import WORKLOADS

BENCHES = Path(__file__).resolve().parent
ROUNDS, WARMUP, NFRAME = 5, 2, 16
MODES = ("untraced", "traced", "exact", "hunt", "leaky")

HEAP: List[Any] = []
LEAK: List[Any] = []
KEPT: List[Any] = []


def leaky_run(module: Any, scale: float) -> None:
    """The workload, then one more buffer kept for good: a leak to find."""
    module.run(scale)
    KEPT.append(bytearray(4096))  # the kept buffer


def child_workload(mode: str, workload: str, scale: float) -> Dict[str, Any]:
    import leakguard

    module = importlib.import_module(f"workloads.{workload}")
    gc.collect()
    flagged: List[str] = []
    started = time.perf_counter()
    if mode in ("hunt", "leaky"):
        if mode == "hunt":
            report = leakguard.hunt(module.run, scale, rounds=ROUNDS, warmup=WARMUP, nframe=NFRAME)
        else:
            report = leakguard.hunt(
                leaky_run, module, scale, rounds=ROUNDS, warmup=WARMUP, nframe=NFRAME
            )
        flagged = [f"{s.where} ({s.size_per_round:+.0f} B/round)" for s in report.leaks]
    else:
        if mode in ("traced", "exact"):
            leakguard.start(NFRAME)
        if mode == "exact":
            leakguard._leakguard._exact_objects(True)
            gc.callbacks.append(lambda phase, info: leakguard._leakguard._exact_objects(True))
        for _ in range(WARMUP + ROUNDS):
            module.run(scale)
            gc.collect()  # as often as the hunt collects: only its own work differs
        if mode in ("traced", "exact"):
            leakguard.stop()
    wall = time.perf_counter() - started
    return {"mode": mode, "workload": workload, "wall_s": wall, "flagged": flagged}


def _line_of(marker: str) -> int:
    source = Path(__file__).read_text().splitlines()
    return next(i for i, text in enumerate(source, 1) if text.endswith(marker))


def child_holders(objects: int) -> Dict[str, Any]:
    import leakguard
    from leakguard._hunter.holders import find_holders

    leakguard.start(NFRAME)
    # A heap of about `objects` objects the collector tracks: small dicts and lists in
    # module-level tables, as a long-running service has.
    for i in range(objects):
        HEAP.append([i] if i % 2 else {"id": [i]})
    for i in range(2000):
        LEAK.append({"request": i, "payload": "x" * 50})  # the leaking site
    gc.collect()
    tracked = len(gc.get_objects())
    stats = leakguard._leakguard.take_snapshot().statistics("traceback", False)
    line = _line_of("# the leaking site")
    tracebacks = [tb for _, _, tb in stats if tb[0][1] == line and tb[0][0] == __file__][:4]
    started = time.perf_counter()
    (chains,) = find_holders([tracebacks], budget=30.0)
    elapsed = time.perf_counter() - started
    leakguard.stop()
    return {"objects": tracked, "holder_s": elapsed, "chain": [str(c) for c in chains]}


def run_child(args: List[str]) -> Dict[str, Any]:
    result = run_measurement(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args], 1800, str(BENCHES)
    )
    if "error" in result:
        raise SystemExit(f"child {args} failed: {result['error']}")
    return result


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--scale", type=float, default=0.2, help="workload scale per round")
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.child[0] == "holders":
            result = child_holders(int(args.child[1]))
        else:
            result = child_workload(args.child[0], args.child[1], float(args.child[2]))
        print(json.dumps(result))
        return 0

    if args.quick:
        args.reps, args.scale, args.objects = 1, 0.02, 100_000
    workloads = args.workloads.split(",")
    runs: List[Dict[str, Any]] = []
    for rep in range(args.reps):
        for workload in workloads:
            shift = rep % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                runs.append(run_child([mode, workload, str(args.scale)]))
                print(
                    f"  rep {rep + 1} {workload:16} {mode:9} {runs[-1]['wall_s']:.2f} s", flush=True
                )
    holders = run_child(["holders", str(args.objects)])

    rows = []
    for workload in workloads:
        med = {
            mode: statistics.median(
                r["wall_s"] for r in runs if r["workload"] == workload and r["mode"] == mode
            )
            for mode in MODES
        }
        flagged = sorted(
            {
                f
                for r in runs
                if r["workload"] == workload and r["mode"] == "hunt"
                for f in r["flagged"]
            }
        )
        # Each leaky hunt must flag the kept buffer's line, and only that.
        found = [r["flagged"] for r in runs if r["workload"] == workload and r["mode"] == "leaky"]
        kept_line = f"hunt_bench.py:{_line_of('# the kept buffer')} "
        leaky_ok = sum(len(f) == 1 and f[0].startswith(kept_line) for f in found)
        rows.append(
            [
                workload,
                f"{med['untraced']:.2f}",
                f"{med['traced']:.2f}",
                f"{med['exact']:.2f}",
                f"{med['hunt']:.2f}",
                f"{med['traced'] / med['untraced']:.2f}x",
                f"{(med['hunt'] / med['traced'] - 1) * 100:+.1f}%",
                f"{(med['hunt'] / med['exact'] - 1) * 100:+.1f}%",
                str(len(flagged)) if not flagged else "; ".join(flagged),
                f"{med['leaky']:.2f}",
                f"{med['leaky'] / med['traced']:.2f}x",
                f"{leaky_ok}/{len(found)}",
            ]
        )
    facts = machine_facts()
    print()
    print(
        f"leak hunt cost: {ROUNDS} rounds after {WARMUP} warm-up, nframe={NFRAME}, "
        f"scale {args.scale} per round, medians of {args.reps} (target: hunt/traced <= +10%)"
    )
    print(
        format_table(
            [
                "workload",
                "untraced s",
                "traced s",
                "exact s",
                "hunt s",
                "traced/untraced",
                "hunt/traced",
                "hunt/exact",
                "flagged",
                "leaky hunt s",
                "leaky/traced",
                "leak found",
            ],
            rows,
        )
    )
    print()
    print(
        f"holder search: {holders['objects']:,} objects tracked by the collector, "
        f"{holders['holder_s']:.2f} s (target: <= 2 s at 1,000,000)"
    )
    for chain in holders["chain"]:
        print(f"  held by: {chain}")
    print(f"\n{facts}")
    if args.json:
        write_json(args.json, {"facts": facts, "runs": runs, "holders": holders})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

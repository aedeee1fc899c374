"""Exports of a snapshot of a million live traced blocks, in every format, against a 2 s target.

    python benches/export_bench.py                    # 1,000,000 blocks, every case, 3 reps
    python benches/export_bench.py --quick            # 100,000 blocks, 1 rep
    python benches/export_bench.py --cases lines:1,stacks:10 --reps 5 --json exports.json

Each measurement runs in a fresh process (this script re-invoked with ``--child``) tracing with
leakguard. A case is ``HEAP:NFRAME``:

- ``lines:N``: snapshot_bench.py's heap, ``--blocks`` distinct small objects from 50 lines, all
  kept alive, traced with ``nframe=N``: the realistic case, a few dozen distinct tracebacks;
- ``stacks:N``: as many small objects, each allocated at the end of a call chain 9 calls deep
  through four functions, chosen so that there are ``--stacks`` distinct tracebacks (100,000 by
  default): the worst case for the exports, whose work follows the number of distinct
  tracebacks, not of blocks.

At the quiescent point (after ``gc.collect()``, tracing still on, as in a program that exports
the snapshot it just took) the child times ``take_snapshot()``, ``profile_of(snapshot)``,
``_export.render(profile, fmt)`` for every format in ``leakguard._export.FORMATS``, and the whole
export, ``_export.render(snapshot, fmt)``: ``profile_of`` and the rendering as
``leakguard.export`` runs them, with the thread's own allocations unrecorded (only the file
write is left out). A format whose module does not import yet is reported as pending. The child
then frees part of the heap (five sites and five new ones for ``lines``, half the blocks of
every traceback for ``stacks``), takes a second snapshot and times the same for the diff,
``profile_of(second, first)``. Target: each whole export under 2 s; medians over the reps.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from _report import describe, fmt_bytes, format_table, machine_facts, median_of, timed, write_json
from _tracers import probe, run_measurement
from snapshot_bench import SITES, Slotted, build_heap, grow_heap

TARGET_S = 2.0
DEFAULT_CASES = "lines:1,lines:10,stacks:10"
CHAIN_DEPTH = 9
PROFILES = ("snapshot", "diff")

Result = dict[str, Any]


# -- the "stacks" heap: many distinct tracebacks ------------------------------------------------


def _chain0(depth: int, key: int, out: list[Any]) -> None:
    if depth:
        return _CHAIN[key & 3](depth - 1, key >> 2, out)
    out.append(Slotted())


def _chain1(depth: int, key: int, out: list[Any]) -> None:
    if depth:
        return _CHAIN[key & 3](depth - 1, key >> 2, out)
    out.append(Slotted())


def _chain2(depth: int, key: int, out: list[Any]) -> None:
    if depth:
        return _CHAIN[key & 3](depth - 1, key >> 2, out)
    out.append(Slotted())


def _chain3(depth: int, key: int, out: list[Any]) -> None:
    if depth:
        return _CHAIN[key & 3](depth - 1, key >> 2, out)
    out.append(Slotted())


_CHAIN = (_chain0, _chain1, _chain2, _chain3)


def build_stacks(blocks: int, stacks: int) -> list[Any]:
    """``blocks`` objects, block ``i`` allocated through the chain that the base-4 digits of
    ``i % stacks`` choose: ``stacks`` distinct call chains of ``CHAIN_DEPTH + 1`` frames."""
    out: list[Any] = []
    chain = _CHAIN
    for i in range(blocks):
        key = i % stacks
        chain[key & 3](CHAIN_DEPTH, key >> 2, out)
    return out


# -- one measurement ----------------------------------------------------------------------------


def _exports(result: Result, prefix: str, obj: Any, base: Any) -> None:
    from leakguard import _export, profile_of

    profile, result[f"{prefix}profile_s"] = timed(lambda: profile_of(obj, base))
    result[f"{prefix}samples"] = len(profile.samples)
    result[f"{prefix}locations"] = len(profile.locations)
    for fmt in _export.FORMATS:
        try:
            _export.format_module(fmt)
        except ImportError as e:
            result.setdefault("pending", {})[fmt] = str(e)
            continue
        data, result[f"{prefix}{fmt}_s"] = timed(lambda fmt=fmt: _export.render(profile, fmt))
        result[f"{prefix}{fmt}_bytes"] = len(data)
        # What leakguard.export(obj, path) does before writing: the profile and the
        # rendering, with this thread's allocations unrecorded.
        data, result[f"{prefix}{fmt}_export_s"] = timed(
            lambda fmt=fmt: _export.render(obj, fmt, base)
        )


def child(case: str, blocks: int, stacks: int) -> Result:
    import leakguard

    heap_kind, nframe = parse_case(case)
    per_site = blocks // SITES
    gc.collect()
    leakguard.start(nframe)
    if heap_kind == "lines":
        heap: list[Any] = build_heap(per_site)
    else:
        heap = build_stacks(blocks, stacks)
    gc.collect()
    result: Result = {
        "case": case,
        "nframe": nframe,
        "traced_bytes": leakguard.get_traced_memory()[0],
    }
    first, result["snapshot_s"] = timed(leakguard.take_snapshot)
    result["blocks"] = len(first.traces)
    _exports(result, "", first, None)
    if heap_kind == "lines":
        del heap[:5]
        heap.extend(grow_heap(per_site))
    else:
        del heap[: len(heap) // 2]
    gc.collect()
    second = leakguard.take_snapshot()
    _exports(result, "diff_", second, first)
    leakguard.stop()
    return result


def run_child(case: str, blocks: int, stacks: int, timeout: float) -> Result:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", case]
    command += ["--blocks", str(blocks), "--stacks", str(stacks)]
    result = run_measurement(command, timeout, str(Path(__file__).resolve().parent))
    return {"case": case, **result} if "error" in result else result


# -- the report ---------------------------------------------------------------------------------


def summarise(results: list[Result], cases: Sequence[str], formats: Sequence[str]) -> Result:
    summary: Result = {}
    for case in cases:
        done = [r for r in results if r["case"] == case and "error" not in r]
        if not done:
            continue
        keys = {key for r in done for key in r if isinstance(r[key], (int, float))}
        summary[case] = {key: median_of(r.get(key) for r in done) for key in sorted(keys)}
        summary[case]["runs"] = len(done)
    return summary


def report(summary: Result, cases: Sequence[str], formats: Sequence[str], key: str) -> str:
    """One row per case and profile kind; per format, the ``{fmt}{key}`` timings."""

    def seconds(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.3f}"

    steps = key == "_s"  # the steps timed apart, or the whole export
    headers = ["case", "profile", "blocks", "samples", "locations"]
    headers += ["take_snapshot s", "profile_of s"] if steps else []
    headers += [f"{fmt} s" for fmt in formats]
    rows = []
    for case in cases:
        row = summary.get(case)
        if row is None:
            rows.append([case, "failed", *["-"] * (len(headers) - 2)])
            continue
        for kind in PROFILES:
            prefix = "" if kind == "snapshot" else "diff_"
            rows.append(
                [
                    case,
                    kind,
                    f"{row['blocks']:,.0f}",
                    f"{row[prefix + 'samples']:,.0f}",
                    f"{row[prefix + 'locations']:,.0f}",
                    *(
                        [
                            seconds(row["snapshot_s"]) if kind == "snapshot" else "",
                            seconds(row[prefix + "profile_s"]),
                        ]
                        if steps
                        else []
                    ),
                    *(seconds(row.get(f"{prefix}{fmt}{key}")) for fmt in formats),
                ]
            )
    return format_table(headers, rows)


def size_report(summary: Result, cases: Sequence[str], formats: Sequence[str]) -> str:
    headers = ["case", "profile", *formats]
    rows = []
    for case in cases:
        row = summary.get(case)
        if row is None:
            continue
        for kind in PROFILES:
            prefix = "" if kind == "snapshot" else "diff_"
            rows.append(
                [case, kind, *(fmt_bytes(row.get(f"{prefix}{fmt}_bytes")) for fmt in formats)]
            )
    return format_table(headers, rows)


def target_lines(summary: Result, cases: Sequence[str], formats: Sequence[str]) -> list[str]:
    lines = []
    for case in cases:
        row = summary.get(case)
        if row is None:
            continue
        for kind in PROFILES:
            prefix = "" if kind == "snapshot" else "diff_"
            for fmt in formats:
                total = row.get(f"{prefix}{fmt}_export_s")
                if total is None:
                    lines.append(f"{case} {kind} {fmt}: pending")
                    continue
                verdict = "meets" if total < TARGET_S else "MISSES"
                target = f"target < {TARGET_S:.0f} s"
                lines.append(f"{case} {kind} {fmt}: export {total:.3f} s ({target}) {verdict}")
    return lines


def parse_case(case: str) -> tuple[str, int]:
    heap, _, depth = case.partition(":")
    if heap not in ("lines", "stacks") or not depth.isdigit() or int(depth) < 1:
        raise ValueError(f"a case is lines:NFRAME or stacks:NFRAME, not {case!r}")
    if heap == "stacks" and int(depth) < CHAIN_DEPTH + 1:
        raise ValueError(f"stacks needs nframe >= {CHAIN_DEPTH + 1} to tell its chains apart")
    return heap, int(depth)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100,000 blocks, 1 rep")
    parser.add_argument("--blocks", type=int, help="live blocks to build (default 1,000,000)")
    parser.add_argument("--stacks", type=int, default=100_000, help="distinct tracebacks (stacks)")
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"default {DEFAULT_CASES}")
    parser.add_argument("--reps", type=int, help="processes per case (default 3)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per process")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.blocks is None:
        args.blocks = 100_000 if args.quick else 1_000_000
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.blocks < SITES or args.reps < 1 or not 1 <= args.stacks <= 4 ** (CHAIN_DEPTH + 1):
        parser.error("--blocks must be at least 50, --reps at least 1, --stacks 1 to 4**10")
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    try:
        for case in [args.child] if args.child else args.cases:
            parse_case(case)
    except ValueError as e:
        parser.error(str(e))
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.blocks, args.stacks)))
        return 0
    ok, detail = probe("leakguard")
    if not ok:
        print(f"leakguard is not importable here: {detail}", file=sys.stderr)
        return 1
    import leakguard._export as export

    formats = list(export.FORMATS)
    results: list[Result] = []
    for rep in range(args.reps):
        for case in args.cases:
            result = run_child(case, args.blocks, args.stacks, args.timeout)
            results.append({**result, "rep": rep})
            shown = result.get("error") or f"{result['blocks']:,} blocks"
            print(f"rep {rep + 1} {case}: {shown}", file=sys.stderr)
    summary = summarise(results, args.cases, formats)
    pending: dict[str, str] = {}
    for result in results:
        pending.update(result.get("pending", {}))
    machine = {**machine_facts(), "leakguard": detail}
    print(
        f"\n{describe(machine)}  {args.blocks:,} blocks  stacks case: {args.stacks:,} "
        f"distinct tracebacks  {args.reps} reps (medians)\n"
    )
    print("render(profile, fmt): the profile already built\n")
    print(report(summary, args.cases, formats, "_s"))
    print("\nexport: render(snapshot, fmt), profile_of included, as leakguard.export runs it\n")
    print(report(summary, args.cases, formats, "_export_s"))
    print("\nOutput sizes\n")
    print(size_report(summary, args.cases, formats))
    print()
    print("\n".join(target_lines(summary, args.cases, formats)))
    for fmt, reason in pending.items():
        print(f"\n{fmt}: pending, its module does not import here ({reason})")
    if args.json:
        document = {
            "benchmark": "export",
            "machine": machine,
            "blocks": args.blocks,
            "stacks": args.stacks,
            "cases": args.cases,
            "reps": args.reps,
            "pending": pending,
            "summary": summary,
            "runs": results,
        }
        write_json(args.json, document)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

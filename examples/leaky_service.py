"""A small request-handling service with leaks in it, traced by leakguard.

The service keeps an audit trail in a module-level list that nobody trims, and
caches rendered pages per request id in an unbounded dict; next to those it
has a bounded ``functools.lru_cache`` and a table that fills once at start.
Run it, and leakguard shows which lines keep growing between two snapshots
taken around a batch of requests:

    python examples/leaky_service.py [--requests N] [--nframe N] [--top N]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

import leakguard

AUDIT_TRAIL: list[dict[str, object]] = []  # leak: appended to, never trimmed
PAGE_CACHE: dict[int, str] = {}  # leak: keyed per request, never evicted
COUNTRIES: dict[str, str] = {}  # fills once on first use: not a leak


def load_countries() -> None:
    if not COUNTRIES:
        for i in range(500):
            COUNTRIES[f"C{i:03d}"] = f"Country number {i}"


@functools.lru_cache(maxsize=128)
def price_table(currency: str) -> tuple[float, ...]:
    # Bounded: at most 128 currencies stay cached.
    return tuple(round(i * 1.07, 2) for i in range(200))


def render(request_id: int, user: str) -> str:
    body = {"id": request_id, "user": user, "items": list(range(request_id % 20))}
    return json.dumps(body)


def handle(request_id: int) -> str:
    load_countries()
    user = f"user-{request_id % 50}"
    prices = price_table(f"X{request_id % 300}")
    page = render(request_id, user)
    PAGE_CACHE[request_id] = page
    AUDIT_TRAIL.append({"request": request_id, "user": user, "total": sum(prices[:5])})
    return page


def serve(first: int, count: int) -> None:
    for request_id in range(first, first + count):
        handle(request_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per batch")
    parser.add_argument("--nframe", type=int, default=5, help="frames kept per traceback")
    parser.add_argument("--top", type=int, default=8, help="lines to show")
    args = parser.parse_args(argv)

    leakguard.start(args.nframe)
    serve(0, args.requests)  # warm-up: caches and tables fill here
    before = leakguard.take_snapshot()
    serve(args.requests, args.requests)
    after = leakguard.take_snapshot()
    current, peak = leakguard.get_traced_memory()
    leakguard.stop()

    filters = [leakguard.Filter(True, __file__)]
    diff = after.filter_traces(filters).compare_to(before.filter_traces(filters), "lineno")
    print(
        f"leakguard: {args.requests:,} more requests; traced now {current / 1e6:.1f} MB, "
        f"peak {peak / 1e6:.1f} MB"
    )
    print(f"Top {args.top} lines of this service by growth since the warm-up batch:")
    for stat in diff[: args.top]:
        print(f"  {stat}")
        line = stat.traceback[-1]
        import linecache

        print(f"      {linecache.getline(line.filename, line.lineno).strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A small request-handling service with leaks in it, and leakguard hunting them.

Each batch of requests goes through ``handle``. The service has five leaks:

* an audit trail in a module-level list that nobody trims;
* a per-request cache of rendered pages that is never evicted;
* sessions in a reference cycle whose ``__del__`` parks them in a registry,
  so the cycle collector finds them every round and they still never go;
* a log file opened per batch and never closed (and a config file read
  without closing it);
* a worker thread that remembers every job id it has seen: a slow leak.

Next to them, things that must not be flagged: a bounded ``lru_cache``, a
country table that fills on first use, and plenty of temporary objects.

    python examples/leaky_service.py [--requests N] [--rounds N] [--warmup N]

prints leakguard's report: for each leak the line that allocated it, how much
it grows per round, and what holds it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
from typing import TextIO

import leakguard

AUDIT_TRAIL: list[dict[str, object]] = []  # leak: appended to, never trimmed
PAGE_CACHE: dict[int, str] = {}  # leak: keyed per request, never evicted
DEAD_SESSIONS: list[Session] = []  # leak: where finalised sessions end up
OPEN_LOGS: list[TextIO] = []  # leak: a log file per batch, never closed
COUNTRIES: dict[str, str] = {}  # fills once on first use: not a leak
WORKDIR = tempfile.mkdtemp(prefix="leaky-service-")


def load_countries() -> None:
    if not COUNTRIES:
        for i in range(500):
            COUNTRIES[f"C{i:03d}"] = f"Country number {i}"


@functools.lru_cache(maxsize=128)
def price_table(currency: str) -> tuple[float, ...]:
    # Bounded: at most 128 currencies stay cached.
    return tuple(round(i * 1.07, 2) for i in range(50))


class Session:
    """A user session; it and its handler point at each other (a cycle)."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.handler = SessionHandler(self)
        self.history = [f"{user} logged in"]

    def __del__(self) -> None:
        # "Keep it for the post-mortem": the registry resurrects every session.
        DEAD_SESSIONS.append(self)


class SessionHandler:
    def __init__(self, session: Session) -> None:
        self.session = session


class Worker(threading.Thread):
    """Processes jobs in the background; remembers every id it has seen."""

    def __init__(self) -> None:
        super().__init__(name="job-worker", daemon=True)
        self.jobs: queue.Queue[int | None] = queue.Queue()
        self.seen: dict[int, str] = {}

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                self.seen[job] = f"job {job} done"  # leak: slow, one entry per job
            finally:
                self.jobs.task_done()


WORKER = Worker()


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
    scratch = [str(i) * 3 for i in range(20)]  # temporary: freed at once
    del scratch
    return page


class Service:
    def __init__(self) -> None:
        self.next_id = 0
        self.config_path = os.path.join(WORKDIR, "service.json")
        with open(self.config_path, "w") as f:
            json.dump({"name": "leaky"}, f)

    def batch(self, requests: int) -> None:
        """One round of work: a batch of requests."""
        config = json.loads(open(self.config_path).read())  # never closed: ResourceWarning
        log = open(os.path.join(WORKDIR, f"batch-{self.next_id}.log"), "w")
        OPEN_LOGS.append(log)  # leak: a descriptor per batch
        log.write(f"{config['name']}: batch at {self.next_id}\n")
        log.flush()
        Session(f"user-{self.next_id}")  # dropped at once: the cycle is left to the collector
        for request_id in range(self.next_id, self.next_id + requests):
            handle(request_id)
            if request_id % 10 == 0:
                WORKER.jobs.put(request_id)
        WORKER.jobs.join()
        self.next_id += requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds judged")
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first, not judged")
    args = parser.parse_args(argv)

    WORKER.start()
    service = Service()
    report = leakguard.hunt(service.batch, args.requests, rounds=args.rounds, warmup=args.warmup)
    WORKER.jobs.put(None)
    print(report)
    # The demonstration over, put away what the service leaked on purpose
    # (the interpreter would warn about each file left open at exit).
    for log in OPEN_LOGS:
        log.close()
    shutil.rmtree(WORKDIR, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

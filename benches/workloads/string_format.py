"""String formatting and regular expressions: generate, parse and report on access logs.

Log lines are produced with f-strings, ``str.format`` and ``%``; a parser pulls fields out with
``re.match``/``re.findall``, scrubs secrets with ``re.sub``, and a nested template renderer (each
section recursing into its subsections, some 28 levels deep) builds a text report. The report's
page footer is formatted by a long function, near its end. ``str.format`` and ``%`` are used on
purpose (hence the ``noqa`` marks): real code mixes all three, and they allocate differently.
"""

from __future__ import annotations

import random
import re
from typing import Any

BATCHES_AT_SCALE_1 = 150
LINES_PER_BATCH = 250
SECTION_DEPTH = 28

_PATHS = ("/api/users", "/api/orders", "/static/app.js", "/login", "/api/search", "/health")
_AGENTS = ("curl/8.4", "Mozilla/5.0 (X11; Linux)", "python-requests/2.31", "Go-http-client/2.0")
_LINE = re.compile(
    r'(?P<ip>\d+\.\d+\.\d+\.\d+) - (?P<user>\S+) \[(?P<ts>[^\]]+)\] "(?P<method>[A-Z]+) '
    r'(?P<path>\S+) HTTP/1\.1" (?P<status>\d{3}) (?P<size>\d+) (?P<ms>\d+\.\d+)ms '
    r'"(?P<agent>[^"]*)"'
)
_TOKEN = re.compile(r"(token|session|key)=([0-9a-f]{8,})")
_NUMBER = re.compile(r"\b\d+\b")
_WORD = re.compile(r"[a-z]{3,}")


def make_line(rng: random.Random, n: int) -> str:
    ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    user = "-" if rng.random() < 0.3 else "user{}".format(rng.randrange(900))  # noqa: UP032
    ts = "%02d/Mar/2024:%02d:%02d:%02d +0000" % (  # noqa: UP031
        rng.randrange(1, 29),
        rng.randrange(24),
        rng.randrange(60),
        rng.randrange(60),
    )
    path = rng.choice(_PATHS)
    if rng.random() < 0.5:
        path = f"{path}/{rng.randrange(100000)}?token={rng.getrandbits(48):012x}&page={n % 7}"
    status = rng.choice((200, 200, 200, 201, 304, 404, 500))
    size = rng.randrange(200, 90000)
    ms = rng.random() * 250.0
    agent = rng.choice(_AGENTS)
    method = "POST" if n % 5 == 0 else "GET"
    return f'{ip} - {user} [{ts}] "{method} {path} HTTP/1.1" {status} {size} {ms:.3f}ms "{agent}"'


def parse_line(line: str) -> dict[str, Any] | None:
    match = _LINE.match(line)
    if match is None:
        return None
    fields: dict[str, Any] = match.groupdict()
    fields["path"] = _TOKEN.sub(r"\1=<redacted>", fields["path"])
    fields["route"] = _NUMBER.sub("{id}", fields["path"].split("?", 1)[0])
    fields["status"] = int(fields["status"])
    fields["size"] = int(fields["size"])
    fields["ms"] = float(fields["ms"])
    fields["words"] = _WORD.findall(fields["agent"].lower())
    return fields


def render_section(title: str, records: list[dict[str, Any]], level: int, out: list[str]) -> None:
    """Render one section and recurse into a narrower subsection, as nested templates do."""
    indent = "  " * level
    out.append("{}{} {}".format(indent, "#" * min(level + 1, 6), title))
    routes: dict[str, list[float]] = {}
    for record in records:
        routes.setdefault(record["route"], []).append(record["ms"])
    for route, times in sorted(routes.items()):
        mean = sum(times) / len(times)
        out.append(f"{indent}- {route:<28} n={len(times):>4} mean={mean:8.2f}ms")
    if level < SECTION_DEPTH and len(records) > 1:
        narrower = records[: len(records) - max(1, len(records) // 8)]
        render_section(f"{title} / level {level + 1}", narrower, level + 1, out)


def render_footer(batch: int, records: list[dict[str, Any]], body: list[str]) -> str:
    """The report's footer: totals, percentiles and status breakdown, formatted field by field."""
    count = len(records)
    if count == 0:
        return f"batch {batch}: no records"
    times = sorted(r["ms"] for r in records)
    sizes = sorted(r["size"] for r in records)
    p50 = times[count // 2]
    p90 = times[(count * 9) // 10]
    p99 = times[min(count - 1, (count * 99) // 100)]
    fastest = times[0]
    slowest = times[-1]
    total_bytes = sum(sizes)
    median_size = sizes[count // 2]
    largest = sizes[-1]
    statuses: dict[int, int] = {}
    methods: dict[str, int] = {}
    users: dict[str, int] = {}
    agents: dict[str, int] = {}
    for record in records:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
        methods[record["method"]] = methods.get(record["method"], 0) + 1
        users[record["user"]] = users.get(record["user"], 0) + 1
        agents[record["agent"]] = agents.get(record["agent"], 0) + 1
    errors = sum(n for status, n in statuses.items() if status >= 500)
    client_errors = sum(n for status, n in statuses.items() if 400 <= status < 500)
    not_modified = statuses.get(304, 0)
    error_rate = errors / count
    client_error_rate = client_errors / count
    anonymous = users.get("-", 0)
    known_users = len(users) - (1 if anonymous else 0)
    top_user = max(users, key=users.__getitem__)
    top_agent = max(agents, key=agents.__getitem__)
    posts = methods.get("POST", 0)
    gets = methods.get("GET", 0)
    redacted = sum(1 for r in records if "<redacted>" in r["path"])
    lines_rendered = len(body)
    longest_line = max(len(line) for line in body) if body else 0
    verdict = "healthy"
    if error_rate > 0.2:
        verdict = "failing"
    elif p99 > 240.0:
        verdict = "slow"
    elif client_error_rate > 0.3:
        verdict = "noisy"
    notes = []
    if anonymous > count // 2:
        notes.append("mostly anonymous traffic")
    if redacted:
        notes.append("%d secrets redacted" % redacted)  # noqa: UP031
    if not_modified:
        notes.append("{} cache hits".format(not_modified))  # noqa: UP032
    # Formatting happens here, far into the function, as report code usually does.
    status_part = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
    method_part = ", ".join("{}={}".format(m, n) for m, n in sorted(methods.items()))  # noqa: UP032
    lines = [
        f"batch {batch:>4}: {count} requests, verdict {verdict}",
        f"  latency p50={p50:.2f}ms p90={p90:.2f}ms p99={p99:.2f}ms",
        "  fastest %.3fms, slowest %.3fms" % (fastest, slowest),  # noqa: UP031
        f"  bytes total={total_bytes:,} median={median_size:,} largest={largest:,}",
        f"  statuses {status_part}",
        f"  methods {method_part} (GET {gets}, POST {posts})",
        f"  errors {error_rate:.1%} server, {client_error_rate:.1%} client",
        f"  users {known_users} known, {anonymous} anonymous, top {top_user}",
        f"  agent {top_agent!r}",
        f"  report {lines_rendered} lines, widest {longest_line}",
        "  notes: " + ("; ".join(notes) if notes else "none"),
    ]
    return "\n".join(lines)


def run(scale: float) -> int:
    rng = random.Random(2718)
    checksum = 0
    for batch in range(max(1, int(BATCHES_AT_SCALE_1 * scale))):
        raw = [make_line(rng, batch * LINES_PER_BATCH + n) for n in range(LINES_PER_BATCH)]
        records = [r for r in map(parse_line, raw) if r is not None]
        body: list[str] = []
        render_section(f"Batch {batch}", records[:60], 0, body)
        footer = render_footer(batch, records, body)
        text = "\n".join(body) + "\n" + footer
        checksum = (checksum * 31 + len(text) + len(records)) % (1 << 61)
    return checksum

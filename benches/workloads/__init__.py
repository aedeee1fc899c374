"""Allocation-heavy workloads for the tracing benchmarks.

Each module defines ``run(scale: float) -> int``: deterministic work whose size grows linearly with
``scale`` (1.0 takes roughly 0.5-1.5 s untraced on a 2-core machine with CPython 3.11) and whose
return value is a checksum, so a run under a tracer can be checked to have done the same work.

Every workload allocates at the bottom of a call stack deeper than 25 frames at least part of the
time (so the traceback limit matters), and some allocation sites sit far down inside long functions
(stdlib tracemalloc resolves line numbers by walking the code object's line table from its start).
"""

from __future__ import annotations

WORKLOADS: tuple[str, ...] = (
    "object_churn",
    "json_roundtrip",
    "string_format",
    "request_handler",
    "deep_recursion",
)

"""Object churn: a particle simulation on a scene graph.

Every step moves particles with immutable vector arithmetic (a new ``__slots__`` object per
operation), records events as small dicts, bins particles into a grid of lists keyed by tuples,
pairs up neighbours, and retires and spawns particles (plain classes, each with a ``__dict__``).
Almost everything a step allocates is dropped by the next one. The scene graph is a tree whose
deepest spine is more than 25 groups long, so many allocations happen under a deep stack, and
the per-step summary is a long function that allocates near its end.
"""

from __future__ import annotations

import random
from typing import Any

TREE_DEPTH = 3
FANOUT = 4
PARTICLES_PER_LEAF = 20
SPINE_DEPTH = 30
PARTICLES_PER_SPINE_GROUP = 8
STEPS_AT_SCALE_1 = 95


class Vec:
    """A 2-D vector; arithmetic returns new objects, as in typical numeric Python code."""

    __slots__ = ("x", "y")

    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y

    def __add__(self, other: Vec) -> Vec:
        return Vec(self.x + other.x, self.y + other.y)

    def __sub__(self, other: Vec) -> Vec:
        return Vec(self.x - other.x, self.y - other.y)

    def scaled(self, k: float) -> Vec:
        return Vec(self.x * k, self.y * k)

    def norm2(self) -> float:
        return self.x * self.x + self.y * self.y


class Particle:
    """A simulated body; deliberately without ``__slots__``."""

    def __init__(self, pid: int, pos: Vec, vel: Vec, kind: str) -> None:
        self.pid = pid
        self.pos = pos
        self.vel = vel
        self.kind = kind
        self.age = 0
        self.tags = [kind, f"p{pid}"]
        self.meta = {"spawned": pid, "kind": kind}


class Group:
    __slots__ = ("name", "children", "particles", "offset")

    def __init__(self, name: str, offset: Vec) -> None:
        self.name = name
        self.children: list[Group] = []
        self.particles: list[Particle] = []
        self.offset = offset


class World:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_pid = 0
        self.root = self._build(TREE_DEPTH, "root")

    def spawn(self) -> Particle:
        rng = self.rng
        self.next_pid += 1
        kind = ("dust", "spark", "drop", "leaf")[self.next_pid % 4]
        pos = Vec(rng.uniform(-50.0, 50.0), rng.uniform(-50.0, 50.0))
        vel = Vec(rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0))
        return Particle(self.next_pid, pos, vel, kind)

    def _build(self, depth: int, name: str) -> Group:
        """A bushy tree (most particles a few groups down) plus one long spine."""
        group = Group(name, Vec(depth * 0.5, -depth * 0.25))
        if depth == 0:
            group.particles = [self.spawn() for _ in range(PARTICLES_PER_LEAF)]
            return group
        for branch in range(FANOUT):
            group.children.append(self._build(depth - 1, f"{name}.{branch}"))
        if name == "root":
            group.children.append(self._spine(SPINE_DEPTH, "root.spine"))
        return group

    def _spine(self, depth: int, name: str) -> Group:
        group = Group(name, Vec(0.1, 0.1 * depth))
        group.particles = [self.spawn() for _ in range(PARTICLES_PER_SPINE_GROUP)]
        if depth > 0:
            group.children.append(self._spine(depth - 1, name))
        return group


def step_group(world: World, group: Group, parent_offset: Vec, dt: float, out: list) -> None:
    """Advance every particle under ``group``; recursion follows the scene graph."""
    offset = parent_offset + group.offset
    gravity = Vec(0.0, -9.81 * dt)
    survivors = []
    for p in group.particles:
        p.vel = (p.vel + gravity).scaled(0.995)
        p.pos = p.pos + p.vel.scaled(dt)
        p.age += 1
        world_pos = p.pos + offset
        cell = (int(world_pos.x // 8), int(world_pos.y // 8))
        out.append({"pid": p.pid, "cell": cell, "kind": p.kind, "speed": p.vel.norm2()})
        if p.age > 40 or p.pos.norm2() > 40_000.0:
            replacement = world.spawn()
            replacement.tags.append(group.name)
            survivors.append(replacement)
        else:
            survivors.append(p)
    group.particles = survivors
    for child in group.children:
        step_group(world, child, offset, dt, out)


def bin_events(events: list[dict[str, Any]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    grid: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for event in events:
        grid.setdefault(event["cell"], []).append(event)
    return grid


def neighbour_pairs(grid: dict[tuple[int, int], list[dict[str, Any]]]) -> list[tuple[int, int]]:
    pairs = []
    for (cx, cy), bucket in grid.items():
        near = grid.get((cx + 1, cy), [])
        for a in bucket:
            for b in near[:4]:
                pairs.append((a["pid"], b["pid"]))
    return pairs


def summarize_step(
    step: int,
    events: list[dict[str, Any]],
    grid: dict[tuple[int, int], list[dict[str, Any]]],
    pairs: list[tuple[int, int]],
) -> dict[str, Any]:
    """Per-step telemetry, the kind of long bookkeeping function real simulations grow."""
    total = len(events)
    if total == 0:
        return {"step": step, "empty": True}
    by_kind: dict[str, int] = {}
    speed_by_kind: dict[str, float] = {}
    fastest_pid = -1
    fastest_speed = -1.0
    slowest_pid = -1
    slowest_speed = float("inf")
    for event in events:
        kind = event["kind"]
        by_kind[kind] = by_kind.get(kind, 0) + 1
        speed_by_kind[kind] = speed_by_kind.get(kind, 0.0) + event["speed"]
        if event["speed"] > fastest_speed:
            fastest_speed = event["speed"]
            fastest_pid = event["pid"]
        if event["speed"] < slowest_speed:
            slowest_speed = event["speed"]
            slowest_pid = event["pid"]
    mean_speed_by_kind = {}
    for kind, count in by_kind.items():
        mean_speed_by_kind[kind] = speed_by_kind[kind] / count
    occupied = len(grid)
    densest_cell = None
    densest_count = 0
    lonely_cells = 0
    crowded_cells = 0
    for cell, bucket in grid.items():
        if len(bucket) > densest_count:
            densest_count = len(bucket)
            densest_cell = cell
        if len(bucket) == 1:
            lonely_cells += 1
        elif len(bucket) > 8:
            crowded_cells += 1
    min_x = min(cell[0] for cell in grid)
    max_x = max(cell[0] for cell in grid)
    min_y = min(cell[1] for cell in grid)
    max_y = max(cell[1] for cell in grid)
    width = max_x - min_x + 1
    height = max_y - min_y + 1
    area = width * height
    fill_ratio = occupied / area if area else 0.0
    pair_count = len(pairs)
    self_pairs = 0
    for a, b in pairs:
        if a == b:
            self_pairs += 1
    mean_pairs = pair_count / total
    rows: dict[int, int] = {}
    for _cx, cy in grid:
        rows[cy] = rows.get(cy, 0) + 1
    busiest_row = max(rows, key=rows.__getitem__)
    quiet_rows = sum(1 for count in rows.values() if count < 3)
    columns: dict[int, int] = {}
    for cx, _cy in grid:
        columns[cx] = columns.get(cx, 0) + 1
    busiest_column = max(columns, key=columns.__getitem__)
    quiet_columns = sum(1 for count in columns.values() if count < 3)
    kinds_sorted = sorted(by_kind, key=by_kind.__getitem__, reverse=True)
    dominant_kind = kinds_sorted[0]
    rare_kind = kinds_sorted[-1]
    dominance = by_kind[dominant_kind] / total
    rarity = by_kind[rare_kind] / total
    health = "ok"
    if crowded_cells > occupied // 4:
        health = "crowded"
    if fill_ratio < 0.01:
        health = "sparse"
    if mean_pairs > 3.0:
        health = "colliding"
    warnings = []
    if dominance > 0.5:
        warnings.append(f"kind {dominant_kind} dominates at {dominance:.0%}")
    if rarity < 0.05:
        warnings.append(f"kind {rare_kind} nearly extinct at {rarity:.1%}")
    if self_pairs:
        warnings.append(f"{self_pairs} self-pairs")
    # The allocations below sit about a hundred lines into the function on purpose: they are
    # the step's output, built once all the figures above are known.
    histogram = [0] * 16
    for event in events:
        bucket_index = min(int(event["speed"] * 4), 15)
        histogram[bucket_index] += 1
    cell_labels = [f"{cx}:{cy}" for cx, cy in grid]
    pair_labels = [f"{a}-{b}" for a, b in pairs[:256]]
    per_kind = [
        {"kind": kind, "count": by_kind[kind], "mean_speed": mean_speed_by_kind[kind]}
        for kind in kinds_sorted
    ]
    return {
        "step": step,
        "events": total,
        "kinds": per_kind,
        "fastest": (fastest_pid, fastest_speed),
        "slowest": (slowest_pid, slowest_speed),
        "occupied": occupied,
        "densest": (densest_cell, densest_count),
        "lonely": lonely_cells,
        "crowded": crowded_cells,
        "bounds": (min_x, min_y, max_x, max_y),
        "fill": fill_ratio,
        "pairs": pair_count,
        "busiest_row": busiest_row,
        "quiet_rows": quiet_rows,
        "busiest_column": busiest_column,
        "quiet_columns": quiet_columns,
        "health": health,
        "warnings": warnings,
        "histogram": histogram,
        "cells": cell_labels,
        "pair_labels": pair_labels,
    }


def run(scale: float) -> int:
    world = World(seed=1234)
    checksum = 0
    for step in range(max(1, int(STEPS_AT_SCALE_1 * scale))):
        events: list[dict[str, Any]] = []
        step_group(world, world.root, Vec(0.0, 0.0), 0.05, events)
        grid = bin_events(events)
        pairs = neighbour_pairs(grid)
        summary = summarize_step(step, events, grid, pairs)
        checksum = (checksum * 31 + summary["events"] + summary["pairs"] + summary["occupied"]) % (
            1 << 61
        )
    return checksum

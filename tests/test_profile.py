"""Profile: the one model every picture and export reads, built from real
snapshots, diffs, trackers and leak reports."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, List

import pytest

import leakguard
from leakguard._profile import FunctionNames, Profile, profile_of

_kept: List[Any] = []


class Store:
    def fill(self) -> List[bytearray]:
        def make() -> List[bytearray]:
            return [bytearray(256) for _ in range(40)]

        return make()


def _traced_pair() -> Any:
    leakguard.start(8)
    try:
        before = leakguard.take_snapshot()
        _kept.append(Store().fill())
        after = leakguard.take_snapshot()
    finally:
        leakguard.stop()
    return before, after


def test_snapshot_profile_has_stacks_outermost_first_with_function_names() -> None:
    _, after = _traced_pair()
    profile = profile_of(after)
    assert profile.kind == "snapshot" and profile.traceback_limit == 8
    assert profile.total_size == sum(t.size for t in after.traces)
    assert profile.total_count == len(after.traces)
    stacks = [[profile.locations[i] for i in s.stack] for s in profile.samples]
    ours = [st for st in stacks if any(loc.function == "Store.fill.<locals>.make" for loc in st)]
    assert ours, "the allocating function is named"
    stack = ours[0]
    names = [loc.function for loc in stack]
    # outermost call first: this test, then fill, then make
    assert names.index("test_snapshot_profile_has_stacks_outermost_first_with_function_names") < (
        names.index("Store.fill")
    )
    assert names.index("Store.fill") < names.index("Store.fill.<locals>.make")
    assert stack[-1].filename == __file__


def test_diff_profile_carries_the_change() -> None:
    before, after = _traced_pair()
    profile = profile_of(after, before)
    assert profile.kind == "diff"
    grown = [s for s in profile.samples if s.size_diff > 0]
    assert sum(s.size_diff for s in grown) >= 40 * 256
    diffs = after.compare_to(before, "traceback")
    assert profile.total_size_diff == sum(d.size_diff for d in diffs)
    # the same from the compare_to list itself
    again = profile_of(after.compare_to(before, "traceback"))
    assert again.total_size_diff == profile.total_size_diff


def test_tracker_and_leak_report_profiles() -> None:
    with leakguard.track(nframe=5) as tracker:
        _kept.append([bytearray(100) for _ in range(30)])
    profile = profile_of(tracker)
    assert profile.kind == "diff" and profile.total_size_diff > 30 * 100

    sink: List[bytes] = []

    def leak() -> None:
        sink.append(bytes(4000))

    report = leakguard.hunt(leak, rounds=3)
    leaks = profile_of(report)
    assert leaks.kind == "leaks" and len(leaks.samples) == len(report.leaks) >= 1
    top = max(leaks.samples, key=lambda s: s.size_diff)
    assert leaks.locations[top.stack[-1]].function.endswith("leak")
    assert top.size_diff >= 3 * 4000


def test_profile_of_rejects_what_it_cannot_show() -> None:
    with pytest.raises(leakguard.UsageTypeError, match="expected a Snapshot"):
        profile_of(42)
    _, after = _traced_pair()
    with pytest.raises(leakguard.UsageTypeError, match="base must be a leakguard Snapshot"):
        profile_of(after, base="old")
    with pytest.raises(leakguard.UsageTypeError, match="base is only for diffing"):
        profile_of([], base=after)
    with pytest.raises(leakguard.UsageTypeError, match="no snapshots"):
        profile_of(leakguard.Tracker())
    with pytest.raises(ValueError, match="unknown profile kind"):
        Profile("heap")


def test_function_names_from_source(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        textwrap.dedent(
            """\
            x = 1                      # 1
            class A:                   # 2
                y = 2                  # 3
                def f(self):           # 4
                    def g():           # 5
                        return 1       # 6
                    return g           # 7
            async def h():             # 8
                pass                   # 9
            z = 3                      # 10
            """
        )
    )
    names = FunctionNames()
    path = str(source)
    assert [names.lookup(path, n) for n in range(1, 11)] == [
        "<module>",
        "A",
        "A",
        "A.f",
        "A.f.<locals>.g",
        "A.f.<locals>.g",
        "A.f",
        "h",
        "h",
        "<module>",
    ]
    assert names.lookup(str(tmp_path / "missing.py"), 3) == ""
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    assert names.lookup(str(broken), 1) == ""


def _gen_alloc() -> List[bytearray]:
    return list(bytearray(64) for _ in range(50))  # a generator expression's frame


def _recurse(n: int) -> List[bytearray]:
    if n:
        return _recurse(n - 1)  # the recursive call
    return list(bytearray(64) for _ in range(50))


def _recurse_on_one_line(n: int) -> List[bytearray]:
    return _recurse_on_one_line(n - 1) if n else list(bytearray(64) for _ in range(50))


def test_comprehension_frames_are_named_and_recursion_is_not() -> None:
    leakguard.start(12)
    try:
        before = leakguard.take_snapshot()
        kept = (_gen_alloc(), _recurse(3), _recurse_on_one_line(3))
        after = leakguard.take_snapshot()
    finally:
        leakguard.stop()
    profile = profile_of(after, before)
    grown = [s for s in profile.samples if s.size_diff > 0]

    def stack_of(leaf: str) -> List[str]:
        found = [s for s in grown if profile.locations[s.stack[-1]].function == leaf]
        sample = max(found, key=lambda s: s.size_diff)
        return [profile.locations[i].function for i in sample.stack]

    assert stack_of("_gen_alloc.<locals>.<genexpr>")[-2:] == [
        "_gen_alloc",
        "_gen_alloc.<locals>.<genexpr>",
    ]
    # a recursion: four frames of _recurse (three at the call, one at the end)
    assert stack_of("_recurse.<locals>.<genexpr>")[-5:] == ["_recurse"] * 4 + [
        "_recurse.<locals>.<genexpr>"
    ]
    # the same on one line: only the innermost repeat is the generator's frame
    name = "_recurse_on_one_line"
    assert stack_of(f"{name}.<locals>.<genexpr>")[-5:] == [name] * 4 + [
        f"{name}.<locals>.<genexpr>"
    ]
    assert kept

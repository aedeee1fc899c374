"""The pytest plugin (``leakguard._pytest``) in real pytest sessions.

Each test writes a small test file with ``pytester``, runs pytest on it (in a
subprocess unless said otherwise: the plugin turns tracing on and off) and
checks the outcome of every test and the text the plugin wrote: the
allocating ``file:line``, its source line and what holds the memory.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import leakguard
from leakguard._pytest.sizes import parse_size

# Every inner run: no cache directory, and every outcome in the short summary.
BASE_ARGS = ("-p", "no:cacheprovider", "-rA")
TIMEOUT = 120

_STATUS = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (\S+)")
_HEADER = re.compile(r"^_{3,} (.+?) _{3,}$")


# ---------------------------------------------------------------------------
# Helpers


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a subprocess (the plugin's tracing stays out of this process)."""
    return pytester.runpytest_subprocess(*BASE_ARGS, *args, timeout=TIMEOUT)


def run_inprocess(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in this process; the plugin must leave tracing off after it."""
    assert not leakguard.is_tracing()
    result = pytester.runpytest_inprocess(*BASE_ARGS, *args)
    assert not leakguard.is_tracing(), "the plugin left tracing on after an in-process run"
    return result


def statuses(result: pytest.RunResult) -> Dict[str, str]:
    """nodeid -> PASSED / FAILED / ERROR / XFAIL / XPASS, from the ``-rA`` summary."""
    out = {}
    for line in result.outlines:
        m = _STATUS.match(line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def section(result: pytest.RunResult, title: str) -> str:
    """The failure (or pass) section of one test: the lines under ``___ title ___``."""
    lines: Optional[List[str]] = None
    for line in result.outlines:
        m = _HEADER.match(line)
        if m:
            if lines is not None:
                break
            if m.group(1) == title:
                lines = []
            continue
        if lines is not None:
            if line.startswith("====="):
                break
            lines.append(line)
    assert lines is not None, f"no section {title!r} in:\n{result.stdout.str()}"
    return "\n".join(lines)


def leakguard_section(result: pytest.RunResult) -> Optional[str]:
    """The text of the ``= leakguard =`` summary section, or None."""
    m = re.search(r"^=+ leakguard =+$\n(.*?)^=+ ", result.stdout.str(), re.M | re.S)
    return m.group(1) if m else None


def line_of(path: Path, needle: str) -> int:
    """1-based number of the one line of ``path`` containing ``needle``."""
    hits = [i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def assert_site(text: str, path: Path, needle: str) -> None:
    """``text`` names the line of ``path`` holding ``needle`` (file:line) and shows it."""
    where = f"{path.name}:{line_of(path, needle)}"
    assert where in text, f"{where} not in:\n{text}"
    assert needle in text, f"source line {needle!r} not in:\n{text}"


# ---------------------------------------------------------------------------
# 1. The no_leaks marker

LEAKY = """
import pytest

CACHE = []


@pytest.mark.no_leaks
def test_leaky():
    CACHE.append(bytearray(10000))


@pytest.mark.no_leaks(rounds=4, warmup=1)
def test_leaky_4_rounds():
    CACHE.append(bytearray(20000))
"""


def test_a_leaked_file_shows_in_the_failure(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(
        test_files="""
        import pytest

        KEPT = []


        @pytest.mark.no_leaks
        def test_keeps_files_open(tmp_path):
            KEPT.append(open(tmp_path / f"f{len(KEPT)}", "w"))
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    text = section(result, "test_keeps_files_open")
    assert "Resources: open file descriptors" in text and "LEAKING" in text
    assert "still open" in text and path.name in text


def test_no_leaks_fails_with_line_source_and_holder(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_x=LEAKY)
    result = run(pytester)
    result.assert_outcomes(failed=2)

    text = section(result, "test_leaky")
    assert "E   leakguard: memory grows round after round" in text
    assert "in 5 rounds after 2 warm-up" in text
    assert_site(text, path, "CACHE.append(bytearray(10000))")
    assert "held by: test_x.CACHE (list" in text
    # descriptors and cycles have nothing to say here: not shown
    assert "Resources:" not in text and "Cycles:" not in text

    text = section(result, "test_leaky_4_rounds")
    assert "leakguard: memory grows round after round" in text
    assert "in 4 rounds after 1 warm-up" in text
    assert_site(text, path, "CACHE.append(bytearray(20000))")
    assert "held by: test_x.CACHE (list" in text
    # the short summary names the verdict too
    result.stdout.fnmatch_lines(
        ["FAILED test_x.py::test_leaky - leakguard: memory grows round after round*"]
    )


def test_no_leaks_holder_named_after_the_module(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_other_name=LEAKY)
    result = run(pytester, "-k", "test_leaky and not 4")
    result.assert_outcomes(failed=1, deselected=1)
    text = section(result, "test_leaky")
    assert_site(text, path, "CACHE.append(bytearray(10000))")
    assert "held by: test_other_name.CACHE (list" in text


CONTROLS = """
import functools
import logging

import pytest

log = logging.getLogger("controls")
CACHE = []
FILLED = {}
BUCKET_SIZE = [0]


@functools.lru_cache(maxsize=8)
def cached(n):
    return bytearray(1000 + n)


@pytest.mark.no_leaks
def test_bounded_lru_cache():
    for i in range(64):
        cached(i)
    assert cached.cache_info().currsize == 8


@pytest.mark.no_leaks
def test_cache_filled_once():
    for key in range(32):
        if key not in FILLED:
            FILLED[key] = bytearray(500)


@pytest.mark.no_leaks
def test_churn():
    for _ in range(200):
        chunk = [bytearray(256) for _ in range(8)]
        del chunk


@pytest.mark.no_leaks
def test_prints_and_logs(caplog):
    caplog.set_level(logging.INFO, logger="controls")
    print("a line of output " * 10)
    log.info("a record %s", "x" * 100)
    assert len(caplog.records) == 1


@pytest.fixture
def bucket():
    return []


@pytest.mark.no_leaks
def test_appends_to_fixture_list(bucket):
    bucket.append(bytearray(1000))
    BUCKET_SIZE[0] = len(bucket)


def test_fixture_was_set_up_once():
    # warmup 2 + rounds 5, one list; the list grows, but only the fixture
    # (pytest's) holds it: the rounds are not run again with exact objects.
    assert BUCKET_SIZE[0] == 7


@pytest.mark.no_leaks
def test_leaky_control():
    CACHE.append(bytearray(10000))
"""


def test_no_leaks_controls_pass(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_controls=CONTROLS)
    result = run(pytester)
    result.assert_outcomes(passed=6, failed=1)
    got = statuses(result)
    for name in (
        "test_bounded_lru_cache",  # bounded: its size stops growing
        "test_cache_filled_once",  # grows in the first run only
        "test_churn",  # allocates and frees
        "test_prints_and_logs",  # caplog is reset between runs: one record per run
        # The fixture's list grows by one bytearray per run (it is set up once:
        # test_fixture_was_set_up_once sees its 7 items), but only pytest's
        # fixture cache holds it: growth held only by the runner is not the test's.
        "test_appends_to_fixture_list",
        "test_fixture_was_set_up_once",
    ):
        assert got.get(f"test_controls.py::{name}") == "PASSED", (name, got)
    # the same run does catch a real leak
    assert got["test_controls.py::test_leaky_control"] == "FAILED"
    text = section(result, "test_leaky_control")
    assert_site(text, path, "CACHE.append(bytearray(10000))")
    assert "held by: test_controls.CACHE (list" in text
    # and only that one gets a verdict
    assert result.stdout.str().count("E   leakguard:") == 1


# ---------------------------------------------------------------------------
# 2. limit_memory and limit_leaks

LIMITS = """
import inspect
import threading

import pytest

KEEP = []
SEEN = []


def make_temp():
    chunks = [bytearray(1024) for _ in range(3 * 1024)]
    return len(chunks)


@pytest.mark.limit_memory("1 MB")
def test_peak_over():
    assert make_temp() == 3072


@pytest.mark.limit_memory("24 MB")
def test_peak_under():
    assert make_temp() == 3072


@pytest.mark.limit_leaks("100 KB")
def test_leaks_over():
    KEEP.append(bytearray(500 * 1024))


@pytest.mark.limit_leaks("100 KB")
def test_leaks_freed():
    data = bytearray(500 * 1024)
    del data


def not_this_file(stack):
    SEEN.append(stack)
    return not stack.frames[0][1].endswith("test_lim.py")


@pytest.mark.limit_leaks("100 KB", filter_fn=not_this_file)
def test_leaks_filtered_out():
    KEEP.append(bytearray(400 * 1024))


def temp_in_a_thread():
    def work():
        blocks = [bytearray(1024) for _ in range(3 * 1024)]
        del blocks

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


@pytest.mark.limit_memory("1 MB")
def test_thread_peak_counted():
    temp_in_a_thread()


@pytest.mark.limit_memory("1 MB", current_thread_only=True)
def test_thread_peak_not_counted():
    temp_in_a_thread()


def test_filter_was_given_stacks():
    assert SEEN
    for stack in SEEN:
        assert isinstance(stack.frames, tuple) and stack.frames
        for function, filename, lineno in stack.frames:
            assert isinstance(function, str)
            assert isinstance(filename, str)
            assert isinstance(lineno, int)
        assert stack.traceback is not None
    lines, first = inspect.getsourcelines(test_leaks_filtered_out)
    line = first + next(i for i, text in enumerate(lines) if "KEEP.append" in text)
    ours = [s for s in SEEN if s.frames[0] == ("test_leaks_filtered_out", __file__, line)]
    assert ours, [s.frames[0] for s in SEEN]
    assert any(f.filename == __file__ and f.lineno == line for f in ours[0].traceback)
"""


def test_limit_memory_and_limit_leaks(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_lim=LIMITS)
    result = run(pytester)
    result.assert_outcomes(passed=5, failed=3)
    got = statuses(result)
    assert got["test_lim.py::test_thread_peak_counted"] == "FAILED"
    assert got["test_lim.py::test_thread_peak_not_counted"] == "PASSED"
    assert got["test_lim.py::test_peak_over"] == "FAILED"
    assert got["test_lim.py::test_peak_under"] == "PASSED"
    assert got["test_lim.py::test_leaks_over"] == "FAILED"
    assert got["test_lim.py::test_leaks_freed"] == "PASSED"
    assert got["test_lim.py::test_leaks_filtered_out"] == "PASSED"
    assert got["test_lim.py::test_filter_was_given_stacks"] == "PASSED"

    text = section(result, "test_peak_over")
    assert re.search(r"leakguard: peak memory 3\.\d MiB is above the limit of 1 MB", text), text
    assert "Lines holding the most memory at the peak" in text
    assert_site(text, path, "chunks = [bytearray(1024) for _ in range(3 * 1024)]")

    text = section(result, "test_leaks_over")
    assert re.search(r"leakguard: left 500\.\d KiB alive, above the limit of 100 KB", text), text
    assert_site(text, path, "KEEP.append(bytearray(500 * 1024))")

    # another thread's peak counts, unless current_thread_only
    text = section(result, "test_thread_peak_counted")
    assert "leakguard: peak memory" in text
    assert_site(text, path, "blocks = [bytearray(1024) for _ in range(3 * 1024)]")


# ---------------------------------------------------------------------------
# 3. Sizes, bad markers, bad options


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("24 MB", 24 * 1024**2),
        ("1.5 GB", 1536 * 1024**2),
        ("512 KiB", 512 * 1024),
        ("100B", 100),
        ("+1 KB", 1024),
        ("1 KB", 1024),
        ("1 kib", 1024),
        ("2MiB", 2 * 1024**2),
        (" 3 GiB ", 3 * 1024**3),
        (".5 KB", 512),
        (4096, 4096),
    ],
)
def test_parse_size(text: object, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["12 XB", "-1 MB", "12", "MB", "", "1.2.3 MB", "1 MB 2", -1])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("value", [1.5, True, None, [1]])
def test_parse_size_rejects_types(value: object) -> None:
    with pytest.raises(TypeError):
        parse_size(value)


@pytest.mark.parametrize(
    ("marker", "name", "says"),
    [
        ('limit_memory("12 XB")', "limit_memory", "invalid memory size '12 XB'"),
        ('limit_memory("-1 MB")', "limit_memory", "must not be negative"),
        ("no_leaks(rounds=0)", "no_leaks", "rounds must be at least 1"),
        ("no_leaks(warmup=-1)", "no_leaks", "warmup must be at least 0"),
        ('limit_leaks("1 MB", filter_fn=42)', "limit_leaks", "filter_fn must be a callable"),
        ("no_leaks(round=3)", "no_leaks", "unexpected keyword argument 'round'"),
        ('limit_memory("1 MB", bogus=True)', "limit_memory", "unexpected keyword argument"),
        ('limit_memory("1 MB", limit="2 MB")', "limit_memory", "the limit is given twice"),
        ("limit_memory()", "limit_memory", "missing the limit"),
        ('limit_memory(limit="2 XB")', "limit_memory", "limit: invalid memory size '2 XB'"),
    ],
)
def test_bad_marker_is_a_usage_error(
    pytester: pytest.Pytester, marker: str, name: str, says: str
) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import pytest

        def test_fine():
            pass

        @pytest.mark.{marker}
        def test_marked():
            pass
        """
    )
    # in-process (fast): with --leakguard the run's tracing has started when
    # the markers are read; the usage error must still leave it off
    result = run_inprocess(pytester, "--leakguard")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "test_bad.py::test_marked" in err, err
    assert f"@pytest.mark.{name}" in err, err
    assert says in err, err
    # the error comes before any test runs
    assert "passed" not in result.stdout.str()
    # the marker is named, not the plugin's code reading it
    assert "_no_leaks" not in err and "_limit_" not in err, err


def test_every_bad_marker_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.no_leaks(round=3)
        @pytest.mark.limit_leaks("1 ZB")
        def test_one():
            pass

        @pytest.mark.limit_memory("-1 MB")
        def test_two():
            pass
        """
    )
    result = run_inprocess(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "test_bad.py::test_one: @pytest.mark.no_leaks: got an unexpected keyword" in err, err
    assert "test_bad.py::test_one: @pytest.mark.limit_leaks: location_limit:" in err, err
    assert "test_bad.py::test_two: @pytest.mark.limit_memory: memory_limit:" in err, err


def test_limit_memory_takes_pytest_memrays_older_keyword(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_kw="""
        import pytest

        @pytest.mark.limit_memory(limit="1 MB")
        def test_over():
            b = bytearray(3 * 1024 * 1024)

        @pytest.mark.limit_memory(limit="10 MB", current_thread_only=True)
        def test_under():
            b = bytearray(3 * 1024 * 1024)
        """
    )
    result = run_inprocess(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert "above the limit of 1 MB" in result.stdout.str()


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("--leakguard-hunt=0", "--leakguard-hunt must be at least 1, got 0"),
        ("--leakguard-hunt=abc", "--leakguard-hunt must be an integer, got 'abc'"),
        ("--leakguard-limit-memory=12 XB", "--leakguard-limit-memory: invalid memory size"),
        ("--leakguard-limit-leaks=-1 MB", "--leakguard-limit-leaks: invalid memory size"),
        ("--leakguard-nframe=0", "--leakguard-nframe must be at least 1, got 0"),
        ("--leakguard-top=-1", "--leakguard-top must be at least 0"),
    ],
)
def test_bad_option_is_a_usage_error(pytester: pytest.Pytester, option: str, says: str) -> None:
    pytester.makepyfile(test_fine="def test_fine():\n    pass\n")
    result = run_inprocess(pytester, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in result.stderr.str(), result.stderr.str()
    assert "passed" not in result.stdout.str()


def test_bad_ini_setting_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nleakguard_hunt = many\n")
    pytester.makepyfile(test_fine="def test_fine():\n    pass\n")
    result = run_inprocess(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini leakguard_hunt must be an integer, got 'many'" in result.stderr.str()


# ---------------------------------------------------------------------------
# 4. A test's own failures and skips; unittest

OWN = """
import unittest

import pytest

CACHE = []
RUNS = [0]


@pytest.mark.no_leaks
def test_own_failure():
    assert 1 + 1 == 3


@pytest.mark.no_leaks
def test_fails_in_its_third_run():
    RUNS[0] += 1
    assert RUNS[0] < 3, "third run"


@pytest.mark.no_leaks
def test_skips():
    pytest.skip("skipped inside the test")


@pytest.mark.xfail(reason="known leak")
@pytest.mark.no_leaks
def test_xfail_leaking():
    CACHE.append(bytearray(10000))


@pytest.mark.xfail(reason="might fail")
@pytest.mark.no_leaks
def test_xfail_passing():
    data = bytearray(1000)
    del data


class TestCaseStyle(unittest.TestCase):
    HELD = []

    def test_leaks(self):
        type(self).HELD.append(bytearray(12000))

    def test_clean(self):
        self.assertEqual([1] * 3, [1, 1, 1])
"""


INSTANCE_STATE = """
import unittest


class CountsCalls(unittest.TestCase):
    def setUp(self):
        self.fresh = True

    def func(self):
        # state the test leaves on its instance, as cachetools' tests do
        if hasattr(self, "count"):
            self.count += 1
        else:
            self.count = 0
        return self.count

    def test_first_call_returns_zero(self):
        self.assertTrue(self.fresh)
        self.assertEqual(self.func(), 0)
        self.fresh = False


class TestPytestStyle:
    def setup_method(self):
        self.base = [1, 2]

    def test_setup_state_kept_own_state_reset(self):
        assert self.base == [1, 2]
        assert not hasattr(self, "seen")
        self.seen = True
"""


def test_each_run_finds_the_instance_as_its_fixtures_left_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_instance=INSTANCE_STATE)
    result = run(pytester, "--leakguard-hunt=3")
    result.assert_outcomes(passed=2)
    assert "Hunted 2 tests for leaks: none leaking" in result.stdout.str()


def test_own_failures_skips_xfail_and_unittest(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_own=OWN)
    result = run(pytester, "--leakguard-hunt=3")
    result.assert_outcomes(failed=3, passed=1, skipped=1, xfailed=1, xpassed=1)
    got = statuses(result)
    assert got["test_own.py::test_own_failure"] == "FAILED"
    assert got["test_own.py::test_fails_in_its_third_run"] == "FAILED"
    assert got["test_own.py::test_xfail_leaking"] == "XFAIL"
    assert got["test_own.py::test_xfail_passing"] == "XPASS"
    assert got["test_own.py::TestCaseStyle::test_leaks"] == "FAILED"
    assert got["test_own.py::TestCaseStyle::test_clean"] == "PASSED"
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_own.py:*: skipped inside the test"])

    # its own failure, reported as without the plugin
    text = section(result, "test_own_failure")
    assert "AssertionError" in text and "assert (1 + 1) == 3" in text, text
    assert "leakguard:" not in text
    # a failure in a later run stops the hunt and is the test's own
    text = section(result, "test_fails_in_its_third_run")
    assert "AssertionError: third run" in text, text
    assert "leakguard:" not in text
    if sys.version_info >= (3, 11):  # exception notes
        assert "(in run 3 of the test: leakguard runs it again and again" in text, text
    text = section(result, "test_own_failure")
    assert "(in run" not in text, text  # its first run: nothing to say

    text = section(result, "TestCaseStyle.test_leaks")
    assert "leakguard: memory grows round after round" in text
    assert "in 3 rounds" in text
    assert_site(text, path, "type(self).HELD.append(bytearray(12000))")
    assert "held by: test_own.TestCaseStyle.HELD (list" in text

    summary = leakguard_section(result)
    assert summary is not None, result.stdout.str()
    assert "LEAKING  test_own.py::TestCaseStyle::test_leaks" in summary
    assert "LEAKING  test_own.py::test_xfail_leaking" in summary


SUBTESTS = """
import pytest

HELD = []
RUNS = [0]


@pytest.mark.no_leaks
def test_first_run_fails(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert i < 2


@pytest.mark.no_leaks
def test_third_run_fails(subtests):
    RUNS[0] += 1
    for i in range(2):
        with subtests.test(i=i):
            assert RUNS[0] < 3 or i == 0, "third run"


@pytest.mark.no_leaks
def test_clean(subtests):
    for i in range(2):
        with subtests.test(i=i):
            data = bytearray(1000)
            del data


@pytest.mark.no_leaks
def test_leaks(subtests):
    for i in range(2):
        with subtests.test(i=i):
            HELD.append(bytearray(5000))
"""


def test_subtests_reported_once(pytester: pytest.Pytester) -> None:
    """A test with subtests, run 7 times, reports its subtests as one run
    does; a failing subtest (in any run) is the test's own failure."""
    pytester.makeconftest("")
    try:
        import _pytest.subtests  # noqa: F401 (pytest >= 9)
    except ImportError:
        pytest.importorskip("pytest_subtests")
    path = pytester.makepyfile(test_sub=SUBTESTS)
    result = run(pytester, "-v")
    out = result.stdout.str()
    # the first run's subtests, each test's 2, not 7 times as many
    assert re.search(r"\b8 subtests passed\b", out), out
    assert len(re.findall(r"^SUBFAILED\(i=2\) test_sub.py::test_first_run_fails", out, re.M)) == 1
    assert len(re.findall(r"^SUBFAILED\(i=1\) test_sub.py::test_third_run_fails", out, re.M)) == 1
    assert "third run" in out
    text = section(result, "test_leaks")
    assert "leakguard: memory grows round after round" in text, text
    assert_site(text, path, "HELD.append(bytearray(5000))")
    assert statuses(result)["test_sub.py::test_clean"] == "PASSED"
    # no leak verdict for the tests whose subtests failed
    for name in ("test_first_run_fails", "test_third_run_fails"):
        text = section(result, name)
        assert "contains 1 failed subtest" in text and "leakguard" not in text, text


# ---------------------------------------------------------------------------
# 5. Options and ini settings

OPTIONS = """
import pytest

KEEP = []


def test_big():
    chunks = [bytearray(1024) for _ in range(3 * 1024)]
    assert len(chunks) == 3072


@pytest.mark.limit_memory("24 MB")
def test_big_allowed():
    blocks = [bytearray(1024) for _ in range(3 * 1024)]
    assert len(blocks) == 3072


def test_small():
    small = [0] * 1000
    assert len(small) == 1000


def test_leaky():
    KEEP.append(bytearray(500 * 1024))
"""


def test_option_leakguard_summary(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_o=OPTIONS)
    result = run(pytester, "--leakguard")
    result.assert_outcomes(passed=4)
    summary = leakguard_section(result)
    assert summary is not None, result.stdout.str()
    assert "Tests that allocated most (peak traced memory; 4 of 4):" in summary
    lines = summary.splitlines()
    big = next(i for i, s in enumerate(lines) if s.endswith("  test_o.py::test_big"))
    small = next(i for i, s in enumerate(lines) if s.endswith("  test_o.py::test_small"))
    assert big < small, summary  # biggest first
    assert re.match(r"^\s+3\.\d MiB  test_o\.py::test_big$", lines[big]), lines[big]
    source = "chunks = [bytearray(1024) for _ in range(3 * 1024)]"
    assert f"test_o.py:{line_of(path, source)}  {source}" in lines[big + 1], summary
    assert "Hunted" not in summary


def test_option_leakguard_traces_the_tests_not_collection(pytester: pytest.Pytester) -> None:
    # Tracing begins once collection is over: what the test modules built at
    # import has no traceback, what a test builds has one.
    pytester.makepyfile(
        test_t="""
        import leakguard

        AT_IMPORT = bytearray(100_000)

        def test_traced_from_the_first_test():
            assert leakguard.is_tracing()
            assert leakguard.get_object_traceback(AT_IMPORT) is None
            made = bytearray(100_000)
            assert leakguard.get_object_traceback(made) is not None
        """
    )
    run(pytester, "--leakguard").assert_outcomes(passed=1)
    # --collect-only runs no test: nothing is traced, no summary
    result = run(pytester, "--leakguard", "--collect-only")
    assert result.ret == 0
    assert leakguard_section(result) is None


def test_option_leakguard_top_zero_hides_the_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_o=OPTIONS)
    result = run(pytester, "--leakguard", "--leakguard-top=0")
    result.assert_outcomes(passed=4)
    assert "Tests that allocated most" not in result.stdout.str()
    assert "test_o.py::test_big" not in (leakguard_section(result) or "")


TOP_ONE = """
def test_a_small():
    small = [bytearray(1000) for _ in range(10)]
    assert len(small) == 10


def test_b_medium():
    medium = [bytearray(1024) for _ in range(512)]
    assert len(medium) == 512


def test_c_small():
    small = [bytearray(1000) for _ in range(10)]
    assert len(small) == 10


def test_d_big():
    big = [bytearray(1024) for _ in range(2048)]
    assert len(big) == 2048
"""


@pytest.mark.parametrize("limit", [[], ["--leakguard-limit-memory=24MB"]])
def test_option_leakguard_top_one_lists_the_biggest_with_its_lines(
    pytester: pytest.Pytester, limit: List[str]
) -> None:
    # test_c runs after a bigger test: with one test listed (and, with a
    # limit, under it), its lines are not read; test_d, bigger than all
    # before it, has its lines read.
    path = pytester.makepyfile(test_t=TOP_ONE)
    result = run(pytester, "--leakguard", "--leakguard-top=1", *limit)
    result.assert_outcomes(passed=4)
    summary = leakguard_section(result)
    assert summary is not None, result.stdout.str()
    lines = summary.splitlines()
    assert lines[0] == "Tests that allocated most (peak traced memory; 1 of 4):", summary
    assert re.match(r"^\s+2\.\d MiB  test_t\.py::test_d_big$", lines[1]), summary
    source = "big = [bytearray(1024) for _ in range(2048)]"
    assert f"test_t.py:{line_of(path, source)}  {source}" in lines[2], summary


def test_option_leakguard_top_one_with_xdist_each(pytester: pytest.Pytester) -> None:
    # Every worker runs every test: each reads every test's lines at its peak
    # (a worker's own --dist is "no": the controller tells it).
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    pytester.makeconftest(
        """
        from leakguard._pytest.plugin import _STATE

        def pytest_sessionstart(session):
            if hasattr(session.config, "workerinput"):
                assert session.config.stash[_STATE].board is None
        """
    )
    path = pytester.makepyfile(test_t=TOP_ONE)
    result = run(pytester, "-n", "2", "--dist", "each", "--leakguard", "--leakguard-top=1")
    result.assert_outcomes(passed=8)
    summary = leakguard_section(result)
    assert summary is not None, result.stdout.str()
    lines = summary.splitlines()
    assert re.match(r"^\s+2\.\d MiB  test_t\.py::test_d_big$", lines[1]), summary
    source = "big = [bytearray(1024) for _ in range(2048)]"
    assert f"test_t.py:{line_of(path, source)}  {source}" in lines[2], summary


def check_hunted(result: pytest.RunResult, path: Path, warmup: int) -> None:
    result.assert_outcomes(passed=3, failed=1)
    assert statuses(result)["test_o.py::test_leaky"] == "FAILED"
    text = section(result, "test_leaky")
    assert "leakguard: memory grows round after round" in text
    assert f"in 3 rounds after {warmup} warm-up" in text
    assert_site(text, path, "KEEP.append(bytearray(500 * 1024))")
    assert "held by: test_o.KEEP (list" in text
    summary = leakguard_section(result)
    assert summary is not None, result.stdout.str()
    assert "Hunted 4 tests for leaks: 1 leaking" in summary
    assert "LEAKING  test_o.py::test_leaky" in summary


def test_option_leakguard_hunt(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_o=OPTIONS)
    check_hunted(run(pytester, "--leakguard-hunt=3", "--leakguard-warmup=1"), path, warmup=1)


def test_ini_leakguard_hunt(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_o=OPTIONS)
    pytester.makeini("[pytest]\nleakguard_hunt = 3\n")
    check_hunted(run(pytester), path, warmup=2)


def test_option_limit_memory_default_and_marker_override(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_o=OPTIONS)
    result = run(pytester, "--leakguard-limit-memory=1MB")
    result.assert_outcomes(passed=3, failed=1)
    got = statuses(result)
    assert got["test_o.py::test_big"] == "FAILED"
    assert got["test_o.py::test_big_allowed"] == "PASSED"  # its marker says 24 MB
    text = section(result, "test_big")
    assert "leakguard: peak memory" in text
    assert "above the limit of 1MB (--leakguard-limit-memory)" in text
    assert_site(text, path, "chunks = [bytearray(1024) for _ in range(3 * 1024)]")


def test_option_limit_leaks_default(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_o=OPTIONS)
    result = run(pytester, "--leakguard-limit-leaks=100 KB")
    result.assert_outcomes(passed=3, failed=1)
    assert statuses(result)["test_o.py::test_leaky"] == "FAILED"
    text = section(result, "test_leaky")
    assert re.search(r"leakguard: left 500\.\d KiB alive, above the limit of 100 KB", text)
    assert "(--leakguard-limit-leaks)" in text
    assert_site(text, path, "KEEP.append(bytearray(500 * 1024))")


def test_ini_limit_memory_and_trace_all(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_o=OPTIONS)
    pytester.makeini("[pytest]\nleakguard = true\nleakguard_limit_memory = 1 MB\n")
    result = run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    text = section(result, "test_big")
    assert "above the limit of 1 MB (ini leakguard_limit_memory)" in text
    assert_site(text, path, "chunks = [bytearray(1024) for _ in range(3 * 1024)]")
    summary = leakguard_section(result)
    assert summary is not None and "Tests that allocated most" in summary


# ---------------------------------------------------------------------------
# 6. The leakguard fixture

FIXTURE = """
import sys

import pytest

import leakguard as lg

KEEP = []


def test_leaked(leakguard):
    KEEP.append(bytearray(200_000))
    assert leakguard.leaked >= 200_000


def test_not_leaked(leakguard):
    data = bytearray(200_000)
    del data
    assert leakguard.leaked < 50_000


def test_diff(leakguard):
    line = sys._getframe().f_lineno + 1
    KEEP.append(bytearray(300_000))
    top = leakguard.diff()[0]
    assert top.size_diff >= 300_000
    assert top.traceback[0].filename == __file__
    assert top.traceback[0].lineno == line
    assert str(top.traceback) == f"{__file__}:{line}"


def test_snapshot(leakguard):
    before = leakguard.snapshot()
    line = sys._getframe().f_lineno + 1
    KEEP.append(bytearray(300_000))
    after = leakguard.snapshot()
    top = after.compare_to(before, "lineno")[0]
    assert top.size_diff >= 300_000
    assert (top.traceback[0].filename, top.traceback[0].lineno) == (__file__, line)


def test_assert_no_leaks(leakguard):
    held = []
    with pytest.raises(lg.LeakError) as info:
        leakguard.assert_no_leaks(lambda: held.append(bytearray(5000)))
    assert isinstance(info.value, AssertionError)
    assert "held by:" in str(info.value)
    report = leakguard.assert_no_leaks(lambda: bytearray(5000))
    # (not isinstance: pytester's in-process runs drop the modules a run
    # imported, so leakguard's lazily imported hunter may be a second copy)
    assert type(report).__name__ == "LeakReport"
    assert not report.leaking


GROWN = []


def grow():
    GROWN.append(bytearray(7000))


def test_assert_no_leaks_fails_the_test(leakguard):
    leakguard.assert_no_leaks(grow)
"""


def test_leakguard_fixture(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(test_fx=FIXTURE)
    # in-process: the fixture turns tracing on; it must be off again after
    result = run_inprocess(pytester)
    result.assert_outcomes(passed=5, failed=1)
    text = section(result, "test_assert_no_leaks_fails_the_test")
    assert "LeakError" in text, text
    assert_site(text, path, "GROWN.append(bytearray(7000))")
    assert "held by: test_fx.GROWN (list" in text


FIXTURE_SELF = """
import linecache

import pytest


def test_a_builds_a_big_heap():
    # many distinct tracebacks alive: a snapshot of them is big
    import asyncio, decimal, email.mime.multipart, http.server, unittest.mock, xml.dom.minidom
    global MANY
    MANY = [eval(f"lambda: {i}") for i in range(3000)]


@pytest.mark.limit_memory("1 MB")
def test_b_allocates_nothing(leakguard):
    assert leakguard.leaked < 2000, [str(d) for d in leakguard.diff()[:5]]
    names = {d.traceback[0].filename for d in leakguard.diff() if d.size_diff}
    assert not [n for n in names if "/_pytest/" in n or "/leakguard/" in n], names


def test_c_sees_its_own(leakguard):
    kept = [bytearray(30_000)]
    assert 30_000 <= leakguard.leaked < 34_000
    line = leakguard.diff()[0].traceback[0].lineno
    assert "bytearray(30_000)" in linecache.getline(__file__, line)
"""


def test_leakguard_fixture_charges_the_test_only(pytester: pytest.Pytester) -> None:
    """Neither the fixture's own snapshots and diffs nor pytest's work count
    as the test's memory: not in ``leaked``, not in a limit's peak."""
    pytester.makepyfile(test_self=FIXTURE_SELF)
    for args in ((), ("--leakguard",)):
        result = run(pytester, *args)
        result.assert_outcomes(passed=3)


# ---------------------------------------------------------------------------
# 7. No effect when unused; disabled


PLAIN = """
import pytest

KEEP = []


def test_passes():
    assert sum(range(10)) == 45


def test_fails():
    assert [1, 2] == [1, 3]


def test_leaks_unmarked():
    KEEP.append(bytearray(100_000))
"""


@pytest.mark.parametrize("disabled", [False, True], ids=["installed", "disabled"])
def test_no_effect_when_unused(pytester: pytest.Pytester, disabled: bool) -> None:
    pytester.makepyfile(test_plain=PLAIN)
    result = run(pytester, *(("-p", "no:leakguard") if disabled else ()))
    result.assert_outcomes(passed=2, failed=1)
    assert statuses(result)["test_plain.py::test_fails"] == "FAILED"
    assert "assert [1, 2] == [1, 3]" in section(result, "test_fails")
    assert leakguard_section(result) is None
    assert "leakguard:" not in result.stdout.str()


def test_disabled_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=LEAKY)
    # the markers mean nothing without the plugin: the leaking tests pass
    result = run(pytester, "-p", "no:leakguard", "-W", "ignore::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=2)
    # and, unregistered, they are errors under --strict-markers
    result = run(pytester, "-p", "no:leakguard", "--strict-markers")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'no_leaks' not found in `markers` configuration option*"])
    # with the plugin they are registered
    result = run(pytester, "--strict-markers")
    result.assert_outcomes(failed=2)


# ---------------------------------------------------------------------------
# 8. pytest-xdist

XDIST = """
import pytest

CACHE = []


@pytest.mark.no_leaks
def test_leaky():
    CACHE.append(bytearray(10000))


def test_big():
    chunks = [bytearray(1024) for _ in range(1024)]
    assert len(chunks) == 1024


@pytest.mark.parametrize("i", range(4))
def test_clean(i):
    assert [i] * 3 == [i, i, i]
"""


def test_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    path = pytester.makepyfile(test_xd=XDIST)
    result = run(pytester, "-n", "2", "--leakguard")
    result.assert_outcomes(passed=5, failed=1)
    assert statuses(result)["test_xd.py::test_leaky"] == "FAILED"
    text = section(result, "test_leaky")
    assert "leakguard: memory grows round after round" in text
    assert_site(text, path, "CACHE.append(bytearray(10000))")
    assert "held by: test_xd.CACHE (list" in text
    # the controller writes the summary from its workers' reports
    summary = leakguard_section(result)
    assert summary is not None, result.stdout.str()
    assert "Tests that allocated most" in summary
    assert re.search(r"^\s+1\.\d MiB  test_xd\.py::test_big$", summary, re.M), summary
    assert f"test_xd.py:{line_of(path, 'chunks = [bytearray(1024)')}" in summary
    assert "Hunted 1 test for leaks: 1 leaking" in summary
    assert "LEAKING  test_xd.py::test_leaky" in summary


# ---------------------------------------------------------------------------
# 9. Output capture

CAPTURE = """
import logging

import pytest

CACHE = []
log = logging.getLogger("cap")


@pytest.mark.no_leaks
def test_prints_and_leaks():
    print("OUT-OF-LEAKY")
    log.warning("LOG-OF-LEAKY")
    CACHE.append(bytearray(10000))


@pytest.mark.no_leaks
def test_prints_clean():
    print("OUT-OF-CLEAN")
"""


@pytest.mark.parametrize("capture", ["fd", "sys"])
def test_output_of_hunted_test_is_shown(pytester: pytest.Pytester, capture: str) -> None:
    path = pytester.makepyfile(test_cap=CAPTURE)
    result = run(pytester, f"--capture={capture}")
    result.assert_outcomes(passed=1, failed=1)
    got = statuses(result)
    assert got["test_cap.py::test_prints_clean"] == "PASSED"
    assert got["test_cap.py::test_prints_and_leaks"] == "FAILED"
    text = section(result, "test_prints_and_leaks")
    assert_site(text, path, "CACHE.append(bytearray(10000))")
    assert "Captured stdout call" in text and "OUT-OF-LEAKY" in text, text
    assert "Captured log call" in text and "LOG-OF-LEAKY" in text, text
    assert "OUT-OF-CLEAN" in section(result, "test_prints_clean")  # -rA shows passes' output


@pytest.mark.parametrize("capture", ["fd", "sys"])
def test_output_of_hunted_test_is_shown_once(pytester: pytest.Pytester, capture: str) -> None:
    pytester.makepyfile(test_cap=CAPTURE)
    result = run(pytester, f"--capture={capture}")
    result.assert_outcomes(passed=1, failed=1)
    text = section(result, "test_prints_and_leaks")
    assert text.count("OUT-OF-LEAKY") == 1, text
    assert text.count("LOG-OF-LEAKY") == 1, text
    assert section(result, "test_prints_clean").count("OUT-OF-CLEAN") == 1


# ---------------------------------------------------------------------------
# In-process runs leave tracing off


def test_in_process_run_leaves_tracing_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=LEAKY, test_o=OPTIONS)
    # run_inprocess checks that tracing is off after the run
    result = run_inprocess(pytester, "--leakguard", "--leakguard-hunt=2")
    result.assert_outcomes(passed=3, failed=3)
    got = statuses(result)
    for name in (
        "test_x.py::test_leaky",
        "test_x.py::test_leaky_4_rounds",
        "test_o.py::test_leaky",
    ):
        assert got[name] == "FAILED", got
    summary = leakguard_section(result)
    assert summary is not None, result.stdout.str()
    assert "Hunted 6 tests for leaks: 3 leaking" in summary


def test_summary_survives_an_in_process_pytest_run(pytester: pytest.Pytester) -> None:
    # The run's summary is per config: a test that runs pytest in-process
    # (pytester, pytest.main) must not take it away from the outer run.
    pytester.makeconftest('pytest_plugins = ["pytester"]')
    pytester.makepyfile(
        test_nested="""
        def test_a_runs_pytest(pytester):
            pytester.makepyfile("def test_ok():\\n    pass\\n")
            pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


        def test_b_allocates():
            chunks = [bytearray(1024) for _ in range(2048)]
            assert len(chunks) == 2048
        """
    )
    result = run(pytester, "--leakguard")
    result.assert_outcomes(passed=2)
    summary = leakguard_section(result)
    assert summary is not None, result.stdout.str()
    assert "test_nested.py::test_b_allocates" in summary


# ---------------------------------------------------------------------------
# Per-test state a fresh run would find again: capsys, monkeypatch, doctest
# globals, captured output shown once, --tb=line


def test_capsys_output_is_not_a_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_capsys="""
        import pytest

        @pytest.mark.no_leaks
        def test_prints(capsys):
            print("y" * 2000)
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_warnings_reach_the_test_in_every_run(pytester: pytest.Pytester) -> None:
    # Each run sees its own warnings in recwarn, as a fresh run would: they
    # are not held back by the hunt, nor kept from a repeat by the
    # once-per-place registry (emptied between runs, as recwarn's fresh
    # filters would); a new message per run is then not a leak either. Without
    # recwarn a new message per call does grow the registry.
    pytester.makepyfile(
        test_warns="""
        import itertools
        import warnings

        import pytest

        RUNS = itertools.count()
        SEEN = [0]

        @pytest.mark.no_leaks
        def test_same_warning(recwarn):
            warnings.warn("careful", UserWarning)
            assert len(recwarn) == 1
            SEEN[0] += 1

        @pytest.mark.no_leaks
        def test_new_message_each_run(recwarn):
            warnings.warn(f"careful {next(RUNS)}", UserWarning)
            assert len(recwarn) == 1

        @pytest.mark.no_leaks
        def test_pytest_warns():
            with pytest.warns(UserWarning):
                warnings.warn("careful", UserWarning)

        def test_z_every_run_was_seen():
            assert SEEN == [7]

        @pytest.mark.no_leaks
        def test_deprecation_each_run():
            # pytest records every DeprecationWarning: its list grows by one
            # a run, and only pytest holds it (through the hunt's capture)
            warnings.warn("old thing", DeprecationWarning)

        @pytest.mark.no_leaks
        def test_leaks_a_registry_entry_per_run():
            # without recwarn nothing resets the registry: it grows
            warnings.warn(f"new {next(RUNS)}", UserWarning)  # registry grows
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=5, failed=1)
    assert statuses(result)["test_warns.py::test_leaks_a_registry_entry_per_run"] == "FAILED"
    assert "__warningregistry__" in section(result, "test_leaks_a_registry_entry_per_run")


def test_growth_in_a_shared_fixture_is_a_leak(pytester: pytest.Pytester) -> None:
    # A session or module fixture lives on from test to test in a run of
    # the suite: what grows in it is the program's leak, named through the
    # fixture. A function fixture is set up once for the runs only: pytest's.
    path = pytester.makepyfile(
        test_shared="""
        import pytest

        class Client:
            def __init__(self):
                self.history = []

            def get(self, url):
                self.history.append({"url": url, "body": "x" * 200})

        @pytest.fixture(scope="session")
        def client():
            return Client()

        @pytest.fixture(scope="module")
        def journal():
            return []

        @pytest.fixture
        def scratch():
            return []

        @pytest.mark.no_leaks
        def test_session_client(client):
            client.get("/item")

        @pytest.mark.no_leaks
        def test_module_journal(journal):
            journal.append(bytearray(500))

        @pytest.mark.no_leaks
        def test_function_scratch(scratch):
            scratch.append(bytearray(500))
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=2)
    got = statuses(result)
    assert got["test_shared.py::test_function_scratch"] == "PASSED", got
    text = section(result, "test_session_client")
    assert_site(text, path, 'self.history.append({"url": url, "body": "x" * 200})')
    assert "held by: fixture 'client' (session scope) (test_shared.Client) → .history" in text
    text = section(result, "test_module_journal")
    assert_site(text, path, "journal.append(bytearray(500))")
    assert "held by: fixture 'journal' (module scope) (list" in text


@pytest.mark.skipif(sys.version_info < (3, 10), reason="3.9's free lists cannot be emptied")
def test_a_float_kept_per_run_is_found(pytester: pytest.Pytester) -> None:
    # One float a run: pytest frees floats of its own between runs, some
    # from before tracing began; the test must not be handed their untraced
    # blocks (from the float free list), or its float is never seen.
    path = pytester.makepyfile(
        test_floats="""
        import itertools
        import time

        import pytest

        COUNT = itertools.count(170_000)
        KEPT = []
        LATENCIES = []

        @pytest.mark.no_leaks
        def test_one_float():
            KEPT.append(next(COUNT) * 1.5)

        @pytest.mark.no_leaks
        def test_latency_kept():
            t0 = time.perf_counter()
            sum(range(100))
            LATENCIES.append(time.perf_counter() - t0)
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=2)
    assert_site(section(result, "test_one_float"), path, "KEPT.append(next(COUNT) * 1.5)")
    assert_site(
        section(result, "test_latency_kept"), path, "LATENCIES.append(time.perf_counter() - t0)"
    )


def test_monkeypatch_is_not_a_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mp="""
        import collections

        import pytest

        @pytest.mark.no_leaks
        def test_patches(monkeypatch):
            monkeypatch.setattr(collections, "XYZ", bytearray(1000), raising=False)
            monkeypatch.setenv("LEAKGUARD_TEST_VAR", "1" * 500)
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_doctest_under_hunt(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        mod_doc='''
        def add(a, b):
            """
            >>> add(1, 2)
            3
            """
            return a + b
        '''
    )
    result = run(pytester, "--doctest-modules", "--leakguard-hunt=2")
    result.assert_outcomes(passed=1)


def test_tb_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=LEAKY)
    result = run(pytester, "--tb=line", "-k", "test_leaky and not 4")
    result.assert_outcomes(failed=1, deselected=1)
    out = result.stdout.str()
    assert re.search(r"^\S*test_x\.py:\d+: leakguard: memory grows round after round", out, re.M)
    assert "_Crash(" not in out

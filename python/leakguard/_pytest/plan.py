"""What to check for each test: the options and ini settings of the run, and
the markers on the test, validated once, at collection.

A marker or option with a bad argument is a usage error naming the test and
the marker, raised before any test runs.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple, Optional

import pytest

from .._errors import check_count
from .sizes import parse_size

# Plain named tuples, not dataclasses: this module is imported by every pytest
# run where leakguard is installed, so it is kept cheap to import.

DEFAULT_NFRAME = 16
DEFAULT_ROUNDS = 5
DEFAULT_WARMUP = 2
DEFAULT_TOP = 5

MARKERS = {
    "no_leaks": (
        "no_leaks(rounds=5, warmup=2): run the test warmup + rounds times (fixtures set up "
        "once) and fail it, with leakguard's report, when its memory grows round after round"
    ),
    "limit_memory": (
        "limit_memory(memory_limit, *, current_thread_only=False): fail the test when the "
        "peak traced memory it allocates is above memory_limit ('24 MB', '512 KiB', ...)"
    ),
    "limit_leaks": (
        "limit_leaks(location_limit, *, filter_fn=None, current_thread_only=False): fail the "
        "test when the memory it allocated and left alive (after a full collection) is above "
        "location_limit; filter_fn(traceback) -> bool chooses the allocations counted"
    ),
}


class Hunt(NamedTuple):
    rounds: int
    warmup: int


class Limit(NamedTuple):
    """A size limit: ``text`` as written (for messages), ``nbytes`` parsed."""

    text: str
    nbytes: int
    current_thread_only: bool = False
    filter_fn: Optional[Callable[[Any], object]] = None
    source: str = "marker"


class Settings(NamedTuple):
    """The run's options (command line over ini)."""

    trace_all: bool
    hunt: Optional[Hunt]
    warmup: int
    nframe: int
    limit_memory: Optional[Limit]
    limit_leaks: Optional[Limit]
    top: int


class Plan(NamedTuple):
    """What the plugin does with one test."""

    nframe: int
    hunt: Optional[Hunt] = None
    limit_memory: Optional[Limit] = None
    limit_leaks: Optional[Limit] = None
    #: traced for the run's summary (``--leakguard``)
    summary: bool = False


class _Invalid(Exception):
    pass


def _size(name: str, value: object) -> tuple[str, int]:
    try:
        nbytes = parse_size(value)
        # a number of bytes is shown with its unit
        return (f"{value} B" if isinstance(value, int) else str(value)), nbytes
    except (TypeError, ValueError) as e:
        raise _Invalid(f"{name}: {e}") from None


# ---------------------------------------------------------------------------
# Options


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("leakguard", "memory leaks and limits (leakguard)")
    group.addoption(
        "--leakguard",
        action="store_true",
        default=None,
        help="trace every test and end with a summary of the tests and lines that allocated "
        "most (ini: leakguard = true)",
    )
    group.addoption(
        "--leakguard-hunt",
        metavar="N",
        default=None,
        help="run every test N rounds after a warm-up and fail the tests whose memory grows "
        "round after round, like CPython's -R (ini: leakguard_hunt)",
    )
    group.addoption(
        "--leakguard-warmup",
        metavar="N",
        default=None,
        help=f"warm-up runs before the rounds of --leakguard-hunt (default {DEFAULT_WARMUP})",
    )
    group.addoption(
        "--leakguard-nframe",
        metavar="N",
        default=None,
        help=f"frames kept per allocation traceback (default {DEFAULT_NFRAME})",
    )
    group.addoption(
        "--leakguard-limit-memory",
        metavar="SIZE",
        default=None,
        help="default peak memory limit for every test, e.g. '100 MB' (the limit_memory "
        "marker overrides it; ini: leakguard_limit_memory)",
    )
    group.addoption(
        "--leakguard-limit-leaks",
        metavar="SIZE",
        default=None,
        help="default limit on the memory a test leaves alive, e.g. '1 MB' (the limit_leaks "
        "marker overrides it; ini: leakguard_limit_leaks)",
    )
    group.addoption(
        "--leakguard-top",
        metavar="N",
        default=None,
        help=f"tests shown in the --leakguard summary (default {DEFAULT_TOP}; 0 hides it)",
    )
    parser.addini("leakguard", "trace every test (as --leakguard)", type="bool", default=False)
    for name, what in (
        ("leakguard_hunt", "as --leakguard-hunt"),
        ("leakguard_warmup", "as --leakguard-warmup"),
        ("leakguard_nframe", "as --leakguard-nframe"),
        ("leakguard_limit_memory", "as --leakguard-limit-memory"),
        ("leakguard_limit_leaks", "as --leakguard-limit-leaks"),
        ("leakguard_top", "as --leakguard-top"),
    ):
        parser.addini(name, what, default="")


def _setting(config: pytest.Config, name: str) -> tuple[str, object]:
    """(how to name it in an error, its value): the option, else the ini value, else None."""
    option = "--" + name.replace("_", "-")
    value = config.getoption(name)
    if value is not None:
        return option, value
    ini = config.getini(name)
    if ini not in ("", None):
        return f"ini {name}", ini
    return option, None


def _int_setting(
    config: pytest.Config, name: str, low: int, default: Optional[int]
) -> Optional[int]:
    label, value = _setting(config, name)
    if value is None:
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise pytest.UsageError(f"leakguard: {label} must be an integer, got {value!r}") from None
    if number < low:
        raise pytest.UsageError(f"leakguard: {label} must be at least {low}, got {number}")
    return number


def _limit_setting(config: pytest.Config, name: str) -> Optional[Limit]:
    label, value = _setting(config, name)
    if value is None:
        return None
    try:
        text, nbytes = _size(label, str(value))
    except _Invalid as e:
        raise pytest.UsageError(f"leakguard: {e}") from None
    return Limit(text, nbytes, source=label)


def read_settings(config: pytest.Config) -> Settings:
    trace_all = config.getoption("leakguard")
    if trace_all is None:
        trace_all = bool(config.getini("leakguard"))
    rounds = _int_setting(config, "leakguard_hunt", 1, None)
    warmup = _int_setting(config, "leakguard_warmup", 0, DEFAULT_WARMUP)
    nframe = _int_setting(config, "leakguard_nframe", 1, DEFAULT_NFRAME)
    assert warmup is not None and nframe is not None
    if nframe > 65535:
        raise pytest.UsageError(
            f"leakguard: --leakguard-nframe must be at most 65535, got {nframe}"
        )
    top = _int_setting(config, "leakguard_top", 0, DEFAULT_TOP)
    assert top is not None
    return Settings(
        trace_all=bool(trace_all),
        hunt=Hunt(rounds, warmup) if rounds else None,
        warmup=warmup,
        nframe=nframe,
        limit_memory=_limit_setting(config, "leakguard_limit_memory"),
        limit_leaks=_limit_setting(config, "leakguard_limit_leaks"),
        top=top,
    )


# ---------------------------------------------------------------------------
# Markers (the signatures are the markers' own: a wrong argument is a TypeError)


def _no_leaks(rounds: object = DEFAULT_ROUNDS, warmup: object = DEFAULT_WARMUP) -> Hunt:
    return Hunt(check_count("rounds", rounds, 1), check_count("warmup", warmup, 0))


_UNSET: Any = object()


def _limit_memory(
    memory_limit: object = _UNSET, *, current_thread_only: object = False, limit: object = _UNSET
) -> Limit:
    # ``limit`` is the name older pytest-memray releases gave the argument.
    if memory_limit is _UNSET and limit is _UNSET:
        raise _Invalid('missing the limit, e.g. limit_memory("24 MB")')
    if memory_limit is not _UNSET and limit is not _UNSET:
        raise _Invalid("the limit is given twice (memory_limit and limit)")
    name = "memory_limit" if limit is _UNSET else "limit"
    text, nbytes = _size(name, memory_limit if limit is _UNSET else limit)
    return Limit(text, nbytes, current_thread_only=bool(current_thread_only))


def _limit_leaks(
    location_limit: object,
    *,
    filter_fn: object = None,
    current_thread_only: object = False,
) -> Limit:
    text, nbytes = _size("location_limit", location_limit)
    if filter_fn is not None and not callable(filter_fn):
        raise _Invalid(
            f"filter_fn must be a callable taking a traceback, not {type(filter_fn).__name__}"
        )
    return Limit(
        text,
        nbytes,
        current_thread_only=bool(current_thread_only),
        filter_fn=filter_fn,
    )


_MARKER_READERS: dict[str, Callable[..., Any]] = {
    "no_leaks": _no_leaks,
    "limit_memory": _limit_memory,
    "limit_leaks": _limit_leaks,
}


class MarkerError(Exception):
    """A marker with bad arguments; the message names the test and the marker."""


def _marker(item: pytest.Item, name: str) -> Any:
    mark = item.get_closest_marker(name)
    if mark is None:
        return None
    try:
        return _MARKER_READERS[name](*mark.args, **mark.kwargs)
    except (_Invalid, TypeError, ValueError) as e:
        # A TypeError of the call names the reader ("_no_leaks() got an
        # unexpected keyword argument"): the user wrote the marker.
        message = re.sub(r"^_?\w+\(\) ", "", str(e))
        raise MarkerError(f"{item.nodeid}: @pytest.mark.{name}: {message}") from None


def plan_for(item: pytest.Item, settings: Settings) -> Optional[Plan]:
    """The plan for ``item``, or None when the plugin leaves it alone.

    Raises :class:`MarkerError` for a marker with bad arguments."""
    errors = []
    found = {}
    for name in _MARKER_READERS:
        try:
            found[name] = _marker(item, name)
        except MarkerError as e:
            errors.append(str(e))
    if errors:
        raise MarkerError("\n".join(errors))
    hunt, limit_memory, limit_leaks = (found[n] for n in _MARKER_READERS)
    hunt = hunt or settings.hunt
    limit_memory = limit_memory or settings.limit_memory
    limit_leaks = limit_leaks or settings.limit_leaks
    if not (hunt or limit_memory or limit_leaks or settings.trace_all):
        return None
    return Plan(
        nframe=settings.nframe,
        hunt=hunt,
        limit_memory=limit_memory,
        limit_leaks=limit_leaks,
        summary=settings.trace_all,
    )

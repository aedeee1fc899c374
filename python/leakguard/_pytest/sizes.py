"""Memory sizes as the markers take them: ``"24 MB"``, ``"1.5 GB"``, ``"512 KiB"``.

The forms are pytest-memray's, so a suite moves between the two plugins
unchanged: a number (``+`` allowed, decimals allowed), optional spaces, a unit,
case-insensitive. ``KB``, ``MB``, … are powers of 1024, as there; ``KiB``,
``MiB``, … say the same explicitly. A plain number of bytes (int) is accepted
too. Anything else — an unknown unit, a negative size, a missing number — is a
``ValueError`` (a ``TypeError`` for a value that is not a str or int) whose
message names the value and the accepted forms.
"""

from __future__ import annotations

import math
import re

_UNITS = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}

_SIZE = re.compile(r"\s*\+?(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[KMGTP]I?B|B)\s*", re.I)

FORMS = (
    "a number and a unit, such as '24 MB', '1.5 GB' or '512 KiB' "
    "(B, KB, MB, GB, TB, PB; 1 KB = 1024 B)"
)


def parse_size(value: object) -> int:
    """``value`` (``"24 MB"``, ``"512 KiB"``, ``1024``) in bytes."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(
            f"a memory size must be a str such as '24 MB' (or an int of bytes), "
            f"not {type(value).__name__}"
        )
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid memory size {value}: must not be negative")
        return value
    m = _SIZE.fullmatch(value)
    if m is None:
        if value.strip().startswith("-"):
            raise ValueError(f"invalid memory size {value!r}: must not be negative")
        raise ValueError(f"invalid memory size {value!r}: expected {FORMS}")
    number = float(m.group("number"))
    size = number * 1024 ** _UNITS[m.group("unit")[0].upper()]
    if not math.isfinite(size):  # pragma: no cover - the pattern admits no inf
        raise ValueError(f"invalid memory size {value!r}: too large")
    return int(size)


def format_size(nbytes: float) -> str:
    """``nbytes`` for people: ``"1.5 MiB"``, ``"512 B"``, ``"-3.0 KiB"``."""
    sign = "-" if nbytes < 0 else ""
    n = abs(float(nbytes))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover

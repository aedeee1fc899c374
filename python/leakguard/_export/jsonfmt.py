"""leakguard's own JSON profile format, and its reader.

Everything a :class:`~leakguard._profile.Profile` holds, in plain JSON, for
scripts, notebooks and other tools (``jq``, pandas) to read, and for
:func:`load_json` to read back. ``docs/exports.md`` documents every field; in
short::

    {"format": "leakguard-profile", "version": 1,
     "kind": "snapshot" | "diff" | "leaks", "title": str, "traceback_limit": int,
     "totals": {"size", "count", "size_diff", "count_diff"},
     "locations": [{"filename", "lineno", "function"}, ...],
     "samples": [{"stack": [location index, ... outermost call first],
                  "size", "count", "size_diff", "count_diff"}, ...]}

One location and one sample per line, so the file diffs and greps well.
``version`` is raised only for a change an older reader would misread; new
keys can appear in version 1 files, and readers ignore keys they do not know.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, NoReturn, Optional, Tuple, Union

from .._errors import SnapshotError, UsageTypeError
from .._profile import KINDS, Location, Profile, Sample

__all__ = ["SUFFIX", "DESCRIPTION", "FORMAT", "VERSION", "render", "load_json"]

SUFFIX = ".json"
DESCRIPTION = "leakguard's JSON profile (documented; leakguard.load_json reads it back)"

FORMAT = "leakguard-profile"
VERSION = 1

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_VALUES = ("size", "count", "size_diff", "count_diff")


def render(profile: Profile) -> bytes:
    """``profile`` as a leakguard JSON document (UTF-8, non-ASCII escaped)."""
    dumps = json.dumps
    head = {
        "format": FORMAT,
        "version": VERSION,
        "kind": profile.kind,
        "title": profile.title,
        "traceback_limit": profile.traceback_limit,
        "totals": {
            "size": profile.total_size,
            "count": profile.total_count,
            "size_diff": profile.total_size_diff,
            "count_diff": profile.total_count_diff,
        },
    }
    parts = ["{\n"]
    parts.extend(f"{dumps(key)}: {dumps(value)},\n" for key, value in head.items())
    parts.append('"locations": [')
    parts.append(
        ",".join(
            f'\n{{"filename": {dumps(loc.filename)}, "lineno": {loc.lineno}, '
            f'"function": {dumps(loc.function)}}}'
            for loc in profile.locations
        )
    )
    parts.append('\n],\n"samples": [')
    parts.append(
        ",".join(
            f'\n{{"stack": [{", ".join(map(str, s.stack))}], "size": {s.size}, '
            f'"count": {s.count}, "size_diff": {s.size_diff}, "count_diff": {s.count_diff}}}'
            for s in profile.samples
        )
    )
    parts.append("\n]\n}\n")
    return "".join(parts).encode("ascii")


# -- reading ----------------------------------------------------------------------


def load_json(source: Union[str, os.PathLike[str], bytes, bytearray]) -> Profile:
    """Read a leakguard JSON profile back into a :class:`~leakguard.Profile`.

    ``source`` is a file path (``str`` or path-like) or the document itself
    (``bytes``). Anything that is not a valid version-1 document (not JSON, not
    this format, a newer version, a field of the wrong type, a location index
    out of range, totals that do not add up) raises
    :class:`leakguard.SnapshotError` naming the file and what is wrong; a file
    that cannot be opened raises the ``OSError`` of ``open()``.
    """
    filename: Optional[str]
    if isinstance(source, (bytes, bytearray)):
        filename, data = None, bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        filename = os.fspath(source)
        if not isinstance(filename, str):
            raise UsageTypeError("load_json() takes a str or path-like file name, or bytes")
        with open(filename, "rb") as file:
            data = file.read()
    else:
        raise UsageTypeError(
            f"load_json() takes a file name or the document as bytes, not {type(source).__name__}"
        )
    return _Reader(filename).read(data)


class _Reader:
    def __init__(self, filename: Optional[str]) -> None:
        self.filename = filename

    def fail(self, problem: str) -> NoReturn:
        where = self.filename if self.filename is not None else "JSON profile"
        raise SnapshotError(f"{where}: {problem}", self.filename)

    def read(self, data: bytes) -> Profile:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail(f"not UTF-8 text (byte {e.start}): not a leakguard JSON profile")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            self.fail(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})")
        except ValueError as e:  # e.g. an integer too long to convert
            self.fail(f"not valid JSON ({e})")
        except RecursionError:
            self.fail("not a leakguard JSON profile: nested too deeply")
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            self.fail(f'not a leakguard JSON profile (no "format": "{FORMAT}")')
        version = doc.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            self.fail(f'"version" must be an integer, not {_shown(version)}')
        if version != VERSION:
            newer = " (written by a newer leakguard)" if version > VERSION else ""
            self.fail(f"version {version}{newer}: this leakguard reads version {VERSION}")

        kind = self.field(doc, "kind", str, "")
        if kind not in KINDS:
            self.fail(f'"kind" must be one of {", ".join(KINDS)}, not {kind!r}')
        title = self.field(doc, "title", str, "")
        limit = self.integer(doc, "traceback_limit", "", low=1)
        profile = Profile(kind, title, limit)
        self.read_locations(profile, self.field(doc, "locations", list, ""))
        self.read_samples(profile, self.field(doc, "samples", list, ""))
        self.check_totals(profile, self.field(doc, "totals", dict, ""))
        return profile

    # -- one field ----------------------------------------------------------------

    def field(self, obj: Dict[str, Any], key: str, kind: type, where: str) -> Any:
        if key not in obj:
            self.fail(f'{where}"{key}" is missing')
        value = obj[key]
        if not isinstance(value, kind):
            names: Dict[type, str] = {str: "a string", list: "an array", dict: "an object"}
            self.fail(f'{where}"{key}" must be {names[kind]}, not {_shown(value)}')
        return value

    def integer(self, obj: Dict[str, Any], key: str, where: str, low: int = _INT64_MIN) -> int:
        if key not in obj:
            self.fail(f'{where}"{key}" is missing')
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f'{where}"{key}" must be an integer, not {_shown(value)}')
        if not low <= value <= _INT64_MAX:
            bound = "at least 0" if low == 0 else f"between {low} and {_INT64_MAX}"
            self.fail(f'{where}"{key}" must be {bound}, got {value}')
        return value

    # -- tables -------------------------------------------------------------------

    def read_locations(self, profile: Profile, rows: List[Any]) -> None:
        index: Dict[Tuple[str, int], int] = {}
        for i, row in enumerate(rows):
            where = f"locations[{i}]."
            if not isinstance(row, dict):
                self.fail(f"locations[{i}] must be an object, not {_shown(row)}")
            filename = self.field(row, "filename", str, where)
            lineno = self.integer(row, "lineno", where)
            function = self.field(row, "function", str, where)
            first = index.setdefault((filename, lineno), i)
            if first != i:
                self.fail(f"locations[{i}] repeats locations[{first}] ({filename}:{lineno})")
            profile.locations.append(Location(filename, lineno, function))
        profile._index = index

    def read_samples(self, profile: Profile, rows: List[Any]) -> None:
        nlocations = len(profile.locations)
        for i, row in enumerate(rows):
            where = f"samples[{i}]."
            if not isinstance(row, dict):
                self.fail(f"samples[{i}] must be an object, not {_shown(row)}")
            stack = self.field(row, "stack", list, where)
            for j, at in enumerate(stack):
                if isinstance(at, bool) or not isinstance(at, int):
                    self.fail(f"samples[{i}].stack[{j}] must be a location index, not {_shown(at)}")
                if not 0 <= at < nlocations:
                    self.fail(
                        f"samples[{i}].stack[{j}]: location index {at} out of range "
                        f"({nlocations} locations)"
                    )
            size = self.integer(row, "size", where, low=0)
            count = self.integer(row, "count", where, low=0)
            size_diff = self.integer(row, "size_diff", where)
            count_diff = self.integer(row, "count_diff", where)
            profile.samples.append(Sample(tuple(stack), size, count, size_diff, count_diff))

    def check_totals(self, profile: Profile, totals: Dict[str, Any]) -> None:
        for key in _VALUES:
            stated = self.integer(totals, key, "totals.")
            summed = sum(getattr(s, key) for s in profile.samples)
            if stated != summed:
                self.fail(
                    f'totals."{key}" is {stated} but the samples add up to {summed} '
                    "(truncated or edited?)"
                )


def _shown(value: Any) -> str:
    """A JSON value named in an error: its type, and the value when short."""
    names: Dict[type, str] = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    name = names.get(type(value), type(value).__name__)
    text = json.dumps(value) if not isinstance(value, (list, dict)) else ""
    return f"{name} ({text})" if text and len(text) <= 40 else name

"""speedscope: a profile in speedscope's JSON file format.

Open the file at https://www.speedscope.app (it stays in the browser) or with
the ``speedscope`` command line tool. The format is speedscope's
``FileFormat.File`` (``src/lib/file-format-spec.ts`` in its repository; JSON
schema at https://www.speedscope.app/file-format-schema.json).

Each code location is one frame of ``shared.frames`` (``name``: the function,
``file``, ``line``). Each view is a ``"sampled"`` profile: every sample is a
call stack (frame indices, outermost call first) with its weight. speedscope
expects weights of 0 or more, so a diff cannot be one profile of signed
changes; it is split by sign instead:

- ``snapshot``: "live bytes" (unit ``bytes``) and "live blocks" (unit
  ``none``);
- ``diff`` and ``leaks``: "grown bytes", "grown blocks" (tracebacks whose
  bytes, or blocks, increased, weighted by the increase), "shrunk bytes",
  "shrunk blocks" (those that decreased, weighted by the decrease), then "live
  bytes at the end", "live blocks at the end" (in the newer snapshot; after
  the hunt's last round). A leak report's growth is positive, so its "shrunk"
  profiles are empty; they are written all the same, so each profile has the
  same position in every diff file.

The first profile is the one speedscope opens. Samples of weight 0 are left
out (speedscope ignores them); a profile's ``endValue`` is its total weight.
"""

from __future__ import annotations

import json
from typing import Dict, List, Tuple

from .._profile import Profile
from ._names import function_label

__all__ = ["SUFFIX", "DESCRIPTION", "SCHEMA", "render", "views"]

SUFFIX = ".speedscope.json"
DESCRIPTION = "speedscope JSON (https://www.speedscope.app)"

SCHEMA = "https://www.speedscope.app/file-format-schema.json"
# The file format version written: the one that added the file's ``name`` and
# ``activeProfileIndex``, both used here.
FORMAT_VERSION = "0.6.0"

# (profile name, unit, the Sample field weighing a sample, its sign) for each
# view of a kind: a sample is in the view when the signed field is positive.
View = Tuple[str, str, str, int]

_SNAPSHOT_VIEWS: Tuple[View, ...] = (
    ("live bytes", "bytes", "size", 1),
    ("live blocks", "none", "count", 1),
)
_CHANGE_VIEWS: Tuple[View, ...] = (
    ("grown bytes", "bytes", "size_diff", 1),
    ("grown blocks", "none", "count_diff", 1),
    ("shrunk bytes", "bytes", "size_diff", -1),
    ("shrunk blocks", "none", "count_diff", -1),
    ("live bytes at the end", "bytes", "size", 1),
    ("live blocks at the end", "none", "count", 1),
)


def views(kind: str) -> Tuple[View, ...]:
    """The profiles written for a profile of ``kind``, in file order."""
    return _SNAPSHOT_VIEWS if kind == "snapshot" else _CHANGE_VIEWS


def render(profile: Profile) -> bytes:
    """``profile`` as a speedscope JSON file (UTF-8, non-ASCII escaped)."""
    # Written piece by piece rather than through one json.dumps of the whole
    # document: each stack is turned into text once, not once per view.
    dumps = json.dumps
    frames = ",".join(
        [
            f'{{"name":{dumps(function_label(loc))},"file":{dumps(loc.filename)},'
            f'"line":{loc.lineno}}}'
            for loc in profile.locations
        ]
    )
    samples = profile.samples
    numbers = [str(i) for i in range(len(profile.locations))]
    stacks = ["[" + ",".join([numbers[i] for i in sample.stack]) + "]" for sample in samples]
    columns: Dict[str, List[int]] = {}
    profiles = []
    for name, unit, field, sign in views(profile.kind):
        values = columns.get(field)
        if values is None:
            values = columns[field] = [getattr(sample, field) for sample in samples]
        picked = [i for i, value in enumerate(values) if value * sign > 0]
        weights = [values[i] * sign for i in picked]
        title = f"{profile.title}: {name}" if profile.title else name
        profiles.append(
            f'{{"type":"sampled","name":{dumps(title)},"unit":"{unit}",'
            f'"startValue":0,"endValue":{sum(weights)},'
            f'"samples":[{",".join([stacks[i] for i in picked])}],'
            f'"weights":[{",".join(map(str, weights))}]}}'
        )
    head = {
        "$schema": SCHEMA,
        "version": FORMAT_VERSION,
        "name": profile.title or f"leakguard {profile.kind}",
        "exporter": "leakguard",
        "activeProfileIndex": 0,
    }
    text = (
        dumps(head, separators=(",", ":"))[:-1]
        + f',"shared":{{"frames":[{frames}]}},"profiles":[{",".join(profiles)}]}}'
    )
    return text.encode("ascii")

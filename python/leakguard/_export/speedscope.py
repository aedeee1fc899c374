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
from typing import Any, Callable, Dict, List, Tuple

from .._profile import Profile, Sample
from ._names import function_label

__all__ = ["SUFFIX", "DESCRIPTION", "SCHEMA", "render", "document", "views"]

SUFFIX = ".speedscope.json"
DESCRIPTION = "speedscope JSON (https://www.speedscope.app)"

SCHEMA = "https://www.speedscope.app/file-format-schema.json"
# The file format version written: the one that added the file's ``name`` and
# ``activeProfileIndex``, both used here.
FORMAT_VERSION = "0.6.0"

# (profile name, unit, weight of a sample) for each view of a kind.
View = Tuple[str, str, Callable[[Sample], int]]

_SNAPSHOT_VIEWS: Tuple[View, ...] = (
    ("live bytes", "bytes", lambda s: s.size),
    ("live blocks", "none", lambda s: s.count),
)
_CHANGE_VIEWS: Tuple[View, ...] = (
    ("grown bytes", "bytes", lambda s: s.size_diff),
    ("grown blocks", "none", lambda s: s.count_diff),
    ("shrunk bytes", "bytes", lambda s: -s.size_diff),
    ("shrunk blocks", "none", lambda s: -s.count_diff),
    ("live bytes at the end", "bytes", lambda s: s.size),
    ("live blocks at the end", "none", lambda s: s.count),
)


def views(kind: str) -> Tuple[View, ...]:
    """The profiles written for a profile of ``kind``, in file order."""
    return _SNAPSHOT_VIEWS if kind == "snapshot" else _CHANGE_VIEWS


def document(profile: Profile) -> Dict[str, Any]:
    """``profile`` as a speedscope file, before serialisation."""
    frames: List[Dict[str, Any]] = [
        {"name": function_label(loc), "file": loc.filename, "line": loc.lineno}
        for loc in profile.locations
    ]
    stacks = [list(sample.stack) for sample in profile.samples]
    profiles = []
    for name, unit, weight_of in views(profile.kind):
        samples: List[List[int]] = []
        weights: List[int] = []
        for stack, sample in zip(stacks, profile.samples):
            weight = weight_of(sample)
            if weight > 0:
                samples.append(stack)
                weights.append(weight)
        total = sum(weights)
        profiles.append(
            {
                "type": "sampled",
                "name": f"{profile.title}: {name}" if profile.title else name,
                "unit": unit,
                "startValue": 0,
                "endValue": total,
                "samples": samples,
                "weights": weights,
            }
        )
    return {
        "$schema": SCHEMA,
        "version": FORMAT_VERSION,
        "name": profile.title or f"leakguard {profile.kind}",
        "exporter": "leakguard",
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": profiles,
    }


def render(profile: Profile) -> bytes:
    """``profile`` as a speedscope JSON file (UTF-8, non-ASCII escaped)."""
    return json.dumps(document(profile), separators=(",", ":")).encode("ascii")

"""Exports: a profile written in a format another tool reads.

Each format is a module of this package with ``SUFFIX`` (the file name
ending), ``DESCRIPTION`` (one line for ``--help``) and ``render(profile) ->
bytes``; :data:`FORMATS` maps format names to those modules, which are
imported only when used. Everything starts from :class:`leakguard._profile.Profile`.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Dict, Optional, Union

from .. import _leakguard
from .._errors import UsageError
from .._profile import Profile, profile_of

__all__ = ["FORMATS", "format_module", "format_for_path", "render", "export"]

#: Format name -> module (in this package) that renders it.
FORMATS: Dict[str, str] = {
    "html": "flamegraph",
    "pprof": "pprof",
    "speedscope": "speedscope",
    "json": "jsonfmt",
}


def format_module(name: str) -> ModuleType:
    """The module rendering format ``name``; :class:`leakguard.UsageError` if unknown."""
    module = FORMATS.get(name)
    if module is None:
        raise UsageError(
            f"unknown export format {name!r}: expected one of {', '.join(sorted(FORMATS))}"
        )
    return importlib.import_module(f"{__name__}.{module}")


def format_for_path(path: str) -> str:
    """The format a file name asks for by its ending (``.html``, ``.pb.gz``…)."""
    lowered = path.lower()
    best = ""
    found: Optional[str] = None
    for name in FORMATS:
        suffix = format_module(name).SUFFIX
        if lowered.endswith(suffix) and len(suffix) > len(best):
            best, found = suffix, name
    if found is None:
        endings = ", ".join(f"{format_module(n).SUFFIX} ({n})" for n in sorted(FORMATS))
        raise UsageError(
            f"cannot tell the export format from the file name {path!r}: "
            f"pass format=... or use one of the endings {endings}"
        )
    return found


def render(obj: Any, format: str, base: Any = None) -> bytes:
    """``obj`` (anything :func:`leakguard._profile.profile_of` takes; with
    ``base``, the diff from ``base`` to ``obj``) rendered in ``format``.

    What this thread allocates meanwhile is not recorded, if tracing is on:
    the export's working data (the profile, parsed sources, the output) would
    otherwise show up in the program's next snapshots, and recording it would
    slow the export down as much as tracing slows any code.
    """
    module = format_module(format)
    was_paused = _leakguard._pause_thread(True)
    try:
        profile: Profile = profile_of(obj, base)
        data: bytes = module.render(profile)
    finally:
        _leakguard._pause_thread(was_paused)
    return data


def export(
    obj: Any,
    path: Union[str, os.PathLike[str]],
    format: Optional[str] = None,
    base: Any = None,
) -> None:
    """Write ``obj`` to ``path`` as ``format`` (by default, told by the file's
    ending): ``"html"`` (an interactive flame graph, one self-contained file),
    ``"pprof"`` (gzipped ``profile.proto``), ``"speedscope"`` or ``"json"``.

    ``obj`` is a snapshot (with ``base``, another snapshot: what changed from
    ``base`` to ``obj``), a ``compare_to`` or ``statistics`` list, a leak
    report or a tracker.
    """
    target = os.fspath(path)
    data = render(obj, format or format_for_path(target), base)
    with open(target, "wb") as out:
        out.write(data)

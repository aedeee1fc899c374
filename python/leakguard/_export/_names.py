"""What the exports call a code location, so that pprof and speedscope agree."""

from __future__ import annotations

from .._profile import Location

__all__ = ["function_label", "utf8"]


def function_label(location: Location) -> str:
    """The function a location is in (``"<module>"`` at module level), or
    ``"file:line"`` when the source could not be read to tell."""
    return location.function or f"{location.filename}:{location.lineno}"


def utf8(text: str) -> bytes:
    """``text`` as UTF-8. File names decoded with ``surrogateescape`` hold lone
    surrogates, which UTF-8 cannot carry: they are written as ``\\udcXX``
    escapes, so the output stays valid UTF-8 and still tells the bytes."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")

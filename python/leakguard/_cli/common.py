"""What the commands share: their error, reading snapshot files, argument
types, and which frames are the runner's."""

from __future__ import annotations

import argparse
import os
from typing import Callable, List, Sequence

from .._errors import SnapshotError
from .._model import Frame, Snapshot

__all__ = [
    "EXIT_OK",
    "EXIT_LEAKS",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "CliError",
    "load_snapshot",
    "count",
    "is_runner_frame",
    "program_frames",
]

#: Exit statuses (``docs/cli.md`` lists them with the rules of precedence).
EXIT_OK = 0
EXIT_LEAKS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

_INT_MAX = 2**31 - 1


class CliError(Exception):
    """A failure the user can act on: printed as one line, no traceback,
    and the command exits with ``status``."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def _reason(error: BaseException, path: str) -> str:
    """What went wrong, without the file name the message may start with."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    if text.startswith(f"{path}: "):
        text = text[len(path) + 2 :]
    return text


def load_snapshot(path: str) -> Snapshot:
    """The snapshot in ``path``; a :class:`CliError` naming the file when it is
    missing, unreadable, or not a valid snapshot."""
    try:
        return Snapshot.load(path)
    except (OSError, SnapshotError) as error:
        raise CliError(f"cannot read snapshot {path!r}: {_reason(error, path)}") from None


def count(low: int, high: int = _INT_MAX) -> Callable[[str], int]:
    """An argparse ``type`` for an int in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be between {low} and {high}, got {value}"
                if high < _INT_MAX
                else f"must be at least {low}, got {value}"
            )
        return value

    parse.__name__ = "count"
    return parse


_CLI_DIR = f"{os.sep}leakguard{os.sep}_cli{os.sep}"
_MAIN = f"{os.sep}leakguard{os.sep}__main__.py"


def is_runner_frame(filename: str) -> bool:
    """A frame of what ``leakguard run`` wraps around a program (this package,
    ``python -m leakguard``, the console script, runpy): the outermost frames
    of every traceback it records, which say nothing about the program."""
    return (
        filename == "<frozen runpy>"
        or os.path.basename(filename) in ("runpy.py", "leakguard")
        or _CLI_DIR in filename
        or filename.endswith(_MAIN)
    )


def program_frames(frames: Sequence[Frame]) -> List[Frame]:
    """``frames`` (a traceback, oldest first) without the runner's frames at
    its outer end; the whole traceback if nothing else is left."""
    kept = list(frames)
    while kept and is_runner_frame(kept[0].filename):
        del kept[0]
    return kept or list(frames)

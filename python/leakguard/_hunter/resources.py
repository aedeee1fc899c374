"""Resources: open file descriptors per round, who opened the ones left open,
and the ``ResourceWarning``s raised on the way.

Descriptors are listed from ``/proc/self/fd`` (Linux) or ``/dev/fd`` (macOS
and BSDs). A descriptor opened during the rounds and still open at the end is
charged to the line that allocated the Python object owning it (a file object
from ``open()``, a ``socket.socket``…), found by asking each such live object
for its ``fileno()``; a descriptor no object owns (``os.open``, a C
library's) is reported with what it points at.

``ResourceWarning``s (an object that owns a resource freed without being
closed) are captured while the rounds run and charged to the line that
allocated the unclosed object. Other warnings raised meanwhile are shown
again after the hunt, to the filters in force then.
"""

from __future__ import annotations

import gc
import io
import os
import sys
import warnings
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from .. import _leakguard as native
from .._model import Traceback
from .report import OpenDescriptor, ResourceWarningRecord
from .sites import SiteResolver

_FD_DIRS = ("/proc/self/fd", "/dev/fd")


def _fd_dir() -> Optional[str]:
    for d in _FD_DIRS:
        try:
            os.listdir(d)
        except OSError:
            continue
        return d
    return None


class DescriptorCounter:
    """Lists the process's open file descriptors."""

    def __init__(self) -> None:
        self.directory = _fd_dir()

    def open_fds(self) -> FrozenSet[int]:
        if self.directory is None:
            return frozenset()
        fds = set()
        for name in os.listdir(self.directory):
            try:
                fds.add(int(name))
            except ValueError:
                continue
        # listdir's own descriptor for the directory is closed again by now.
        return frozenset(fd for fd in fds if _is_open(fd))

    def target(self, fd: int) -> str:
        if self.directory is None:
            return ""
        try:
            return os.readlink(os.path.join(self.directory, str(fd)))
        except OSError:
            return ""


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _owner_types() -> Tuple[type, ...]:
    owners: List[type] = [io.FileIO]
    socket = sys.modules.get("socket")
    if socket is not None:
        owners.append(socket.socket)
    select = sys.modules.get("select")
    if select is not None:
        for name in ("epoll", "kqueue", "devpoll"):
            cls = getattr(select, name, None)
            if isinstance(cls, type):
                owners.append(cls)
    return tuple(owners)


def _fileno(obj: Any) -> int:
    try:
        if getattr(obj, "closed", False):
            return -1
        fd = obj.fileno()
    except (OSError, ValueError, AttributeError):
        return -1
    return fd if isinstance(fd, int) else -1


def leaked_descriptors(
    counter: DescriptorCounter,
    baseline: FrozenSet[int],
    final: FrozenSet[int],
    resolver: SiteResolver,
) -> Tuple[OpenDescriptor, ...]:
    """The descriptors open at the end that were not open after the warm-up,
    each with the object owning it and where that object was allocated."""
    new = final - baseline
    if not new:
        return ()
    owners: Dict[int, Tuple[str, Optional[Tuple[Tuple[str, int], ...]]]] = {}
    kinds = _owner_types()
    for obj in gc.get_objects():
        if isinstance(obj, kinds):
            fd = _fileno(obj)
            if fd in new and fd not in owners:
                owners[fd] = (type(obj).__qualname__, native.get_object_traceback(obj))
    leaked = []
    for fd in sorted(new):
        if not _is_open(fd):
            continue
        owner, raw = owners.get(fd, ("", None))
        leaked.append(
            OpenDescriptor(
                fd,
                counter.target(fd),
                owner,
                Traceback(raw) if raw else None,
                resolver.site(raw) if raw else None,
            )
        )
    return tuple(leaked)


class WarningCapture:
    """Captures warnings while open; ``ResourceWarning``s are charged to the
    allocation of their unclosed object. The others, with ``passthrough``,
    go at once to the handler that was in force (a test runner's: a test
    asserting on its own warnings sees them); without, they are shown again
    on close, once each."""

    def __init__(self, resolver: SiteResolver, passthrough: bool = False) -> None:
        self._catcher = warnings.catch_warnings()
        self._passthrough = passthrough
        self._log: List[warnings.WarningMessage] = []
        # how warnings were shown before: (showwarning, _showwarnmsg_impl)
        self._before: Tuple[Any, Any] = (None, None)
        # (category, text, file, line) -> the first such warning: the same
        # warning from every round is shown again once, and keeping only the
        # first keeps later rounds' messages from looking leaked.
        self._others: Dict[Tuple[Any, str, str, int], warnings.WarningMessage] = {}
        self._resolver = resolver
        # allocation site of the unclosed object -> [first message, traceback,
        # count, {where the warnings were raised}]
        self._resource: Dict[Optional[Tuple[str, int]], List[Any]] = {}
        # Objects allocated while nothing traced (the warm-up): where the
        # warning was raised -> [first message, count]; charged at the end to
        # the traced site whose warnings were raised there too.
        self._untraced: Dict[Tuple[str, int], List[Any]] = {}

    def __enter__(self) -> WarningCapture:
        # catch_warnings() saves and restores the filters and both hooks;
        # warnings then reach _show as they reach a recording catch_warnings.
        self._catcher.__enter__()
        module: Any = warnings
        self._before = (module.showwarning, module._showwarnmsg_impl)
        module.showwarning = module._showwarning_orig
        module._showwarnmsg_impl = self._show
        warnings.simplefilter("always", ResourceWarning)
        return self

    def _show(self, msg: warnings.WarningMessage) -> None:
        if self._passthrough and not issubclass(msg.category, ResourceWarning):
            # As warnings._showwarnmsg would have shown it without us.
            show, impl = self._before
            if show is not getattr(warnings, "_showwarning_orig", None):
                show(msg.message, msg.category, msg.filename, msg.lineno, msg.file, msg.line)
            else:
                impl(msg)
            return
        self._log.append(msg)

    def drain(self) -> None:
        """Takes the warnings logged so far; drops the references they hold to
        unclosed objects (which would otherwise stay alive and look leaked)."""
        log, self._log[:] = list(self._log), []
        for msg in log:
            if issubclass(msg.category, ResourceWarning):
                source = msg.source
                raw = native.get_object_traceback(source) if source is not None else None
                raised = (msg.filename, msg.lineno)
                if source is not None and raw is None:
                    bucket = self._untraced.setdefault(raised, [str(msg.message), 0])
                    bucket[1] += 1
                    continue
                site = self._resolver.site(raw) if raw else None
                entry = self._resource.get(site)
                if entry is None:
                    self._resource[site] = [str(msg.message), raw, 1, {raised}]
                else:
                    entry[2] += 1
                    entry[3].add(raised)
            else:
                key = (msg.category, str(msg.message), msg.filename, msg.lineno)
                self._others.setdefault(key, msg)
        del log

    def __exit__(self, *exc: Any) -> None:
        self.drain()
        self._catcher.__exit__(*exc)
        others, self._others = self._others, {}
        for msg in others.values():
            warnings.warn_explicit(
                msg.message, msg.category, msg.filename, msg.lineno, source=msg.source
            )

    def records(self) -> Tuple[ResourceWarningRecord, ...]:
        counts = {site: entry[2] for site, entry in self._resource.items()}
        out = []
        for raised, (message, count) in self._untraced.items():
            for site, entry in self._resource.items():
                if raised in entry[3]:
                    counts[site] += count
                    break
            else:
                out.append(ResourceWarningRecord(message, count, None, None))
        out += [
            ResourceWarningRecord(message, counts[site], Traceback(raw) if raw else None, site)
            for site, (message, raw, _, _) in self._resource.items()
        ]
        out.sort(key=lambda r: -r.count)
        return tuple(out)

"""Allocation sites: which line a traced block is charged to, and which blocks
the hunt leaves out.

A block's *site* is the most recent frame of its traceback that is in the
user's code: not in the standard library, not in an installed package, not
frozen, not leakguard. A dict filled by ``json.loads`` called from
``app.py:40`` is charged to ``app.py:40``, with the library frames kept in the
traceback. When every captured frame is library code (``hunt(json.loads,
text)``), the most recent frame is the site.

Blocks whose most recent frame is in one of the interpreter's own caches
(:data:`IGNORED_CACHES`) are left out: those caches fill on first use and are
bounded or intended, and would otherwise show up as slow growth.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from typing import Any, Dict, Optional, Tuple

from .._model import BaseFilter

Site = Tuple[str, int]
RawTraceback = Tuple[Tuple[str, int], ...]

#: Standard-library modules whose caches fill as a program runs, by the path
#: relative to the standard library directory (a package name covers the
#: package). A block allocated *directly* by their code is not judged.
IGNORED_CACHES: Tuple[Tuple[str, str], ...] = (
    ("re", "compiled pattern cache"),
    ("re.py", "compiled pattern cache"),
    ("sre_compile.py", "compiled pattern cache"),
    ("sre_parse.py", "compiled pattern cache"),
    ("linecache.py", "source line cache"),
    ("typing.py", "generic alias caches"),
    ("importlib", "import system"),
    ("zipimport.py", "import system"),
    ("abc.py", "ABC subclass caches"),
    ("_weakrefset.py", "ABC subclass caches"),
    ("functools.py", "singledispatch and cached_property caches"),
    ("inspect.py", "module-by-file caches"),
    ("encodings", "codec lookup cache"),
    ("codecs.py", "codec lookup cache"),
    ("warnings.py", "once-only warning registries"),
    ("fnmatch.py", "pattern cache"),
    ("_strptime.py", "format regex cache"),
    ("tracemalloc.py", "stdlib tracemalloc"),
)

_IGNORED_TOP = frozenset(name for name, _ in IGNORED_CACHES)

#: Top-level packages of the test runner that may run a hunt's rounds
#: (``SiteResolver(runner=…)``, ``run_hunt(runner=…)``): like leakguard's own
#: code, what they allocate is their bookkeeping, not the program's.
RUNNER_PACKAGES: Tuple[str, ...] = ("_pytest", "pytest", "pluggy", "xdist", "execnet")

#: What runs a notebook's cells (IPython, the Jupyter kernel and what it is
#: built on): what it allocates is the kernel's, not the cell's, and its
#: frames only repeat themselves at the outer end of every traceback.
NOTEBOOK_PACKAGES: Tuple[str, ...] = (
    "IPython",
    "ipykernel",
    "jupyter_client",
    "traitlets",
    "zmq",
    "tornado",
    "comm",
)


def package_dirs(names: Tuple[str, ...]) -> Tuple[str, ...]:
    """The directories (normalised, ending in a separator) of those of the
    packages ``names`` that are imported."""
    dirs = []
    for name in names:
        path = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(path, str):
            dirs.append(_norm(os.path.dirname(path)) + os.sep)
    return tuple(dirs)


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path)) if path else ""


def _library_dirs() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(standard library dirs, installed-package dirs), normalised, each ending in a separator."""
    paths = sysconfig.get_paths()
    stdlib = {paths.get("stdlib", ""), paths.get("platstdlib", ""), os.path.dirname(os.__file__)}
    packages = {paths.get("purelib", ""), paths.get("platlib", "")}
    try:
        import site

        packages.update(site.getsitepackages())
        packages.add(site.getusersitepackages())
    except (AttributeError, ImportError):  # pragma: no cover - embedded interpreters
        pass
    for p in list(sys.path):
        if p.endswith(("site-packages", "dist-packages")):
            packages.add(p)

    def clean(dirs: set[str]) -> Tuple[str, ...]:
        out = set()
        for d in dirs:
            if d:
                for form in (_norm(d), _norm(os.path.realpath(d))):
                    out.add(form.rstrip(os.sep) + os.sep)
        return tuple(sorted(out, key=len, reverse=True))

    return clean(stdlib), clean(packages)


class SiteResolver:
    """Charges tracebacks to sites, with the verdicts cached per file name.

    The files of the ``runner`` packages (see :data:`RUNNER_PACKAGES`) count
    as leakguard's own: a block they allocate directly is left out, and their
    frames end the search for the program's line. With a runner, a block
    whose traceback reaches the runner's (or leakguard's) frames through
    library code alone is left out too: the runner calls the program (a
    test, a cell), so library code it calls directly works for the runner —
    pytest's assertion rewriting, a dataclass made by an import of the
    runner. Without one (``leakguard.hunt(json.loads, text)``) such a block
    is charged to its most recent frame."""

    def __init__(self, runner: Tuple[str, ...] = ()) -> None:
        self._runner = bool(runner)
        self._stdlib, self._packages = _library_dirs()
        self._own = package_dirs(("leakguard", *runner))
        # filename -> (is library code, is an ignored cache, is leakguard)
        self._kinds: Dict[str, Tuple[bool, bool, bool]] = {}
        self._sites: Dict[RawTraceback, Optional[Site]] = {}

    def _kind(self, filename: str) -> Tuple[bool, bool, bool]:
        kind = self._kinds.get(filename)
        if kind is None:
            kind = self._classify(filename)
            self._kinds[filename] = kind
        return kind

    def _classify(self, filename: str) -> Tuple[bool, bool, bool]:
        if filename.startswith("<frozen "):
            module = filename[len("<frozen ") : -1].split(".")[0]
            return True, module in _IGNORED_TOP or f"{module}.py" in _IGNORED_TOP, False
        if filename.startswith("<"):
            return False, False, False  # <string>, <stdin>, notebook cells: user code
        path = _norm(filename)
        if path.startswith(self._own):
            return True, False, True
        for d in self._packages:
            if path.startswith(d):
                return True, False, False
        for d in self._stdlib:
            if path.startswith(d):
                top = path[len(d) :].split(os.sep, 1)[0]
                return True, top in _IGNORED_TOP, False
        return False, False, False

    def site(self, traceback: RawTraceback) -> Optional[Site]:
        """The site of a traceback (most recent frame first), or None when the
        block is left out: allocated by an interpreter cache or by leakguard."""
        try:
            return self._sites[traceback]
        except KeyError:
            pass
        site = self._resolve(traceback)
        self._sites[traceback] = site
        return site

    def _resolve(self, traceback: RawTraceback) -> Optional[Site]:
        if not traceback:
            return ("<unknown>", 0)
        library, ignored, own = self._kind(traceback[0][0])
        if ignored or own:
            return None
        generated: Optional[Site] = None
        for filename, lineno in traceback:
            library, _, own = self._kind(filename)
            if own:
                # the frames above leakguard's (or the runner's) were all
                # library code, or code the runner generated (a dataclass's
                # __init__ made by one of its imports)
                return None if self._runner else generated or traceback[0]
            if not library:
                if generated is None:
                    generated = (filename, lineno)
                if not (self._runner and filename == "<string>"):
                    return generated
        return generated or traceback[0]


class LeaveOut(BaseFilter):
    """A filter for ``Snapshot.filter_traces`` leaving out the blocks a
    :class:`SiteResolver` charges to no site: leakguard's own, the runner's
    (pytest's for the ``leakguard`` fixture) and the interpreter caches'."""

    # Decided by the traceback alone: filter_traces judges each distinct
    # traceback once.
    _key_only = True

    def __init__(self, runner: Tuple[str, ...] = ()) -> None:
        super().__init__(False)
        self._resolver = SiteResolver(runner)

    def _match(self, trace: Any) -> bool:
        return self._resolver.site(trace[2]) is not None

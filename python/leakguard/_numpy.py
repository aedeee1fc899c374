"""numpy's array data buffers, seen through numpy's allocator handler (NEP 49).

numpy up to 2.4 allocates array data with ``malloc``, out of sight of the
``PyMem`` hooks. From 1.22 it calls a *handler* for that memory; the first
time tracing starts with numpy loaded (or numpy is loaded while tracing),
leakguard puts its own functions into numpy's default handler, for good:
while tracing they record each buffer at the line that created the array,
and otherwise only forward. A handler a program installs itself
(``PyDataMem_SetHandler``) is left alone.
"""

from __future__ import annotations

import contextvars
import sys
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Optional, Sequence

from . import _leakguard as native

#: The module holding numpy's C API table (numpy 2, numpy 1).
_CORE = ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath")


def _wrap(module: Optional[ModuleType]) -> bool:
    """Wraps the default handler of numpy's core ``module`` (if it has the C
    API table); whether numpy's handler is wrapped."""
    if native._numpy_wrapped():
        return True
    api = getattr(module, "_ARRAY_API", None)
    if api is None:
        return False
    # In an empty context numpy's current handler is its default one.
    return bool(contextvars.Context().run(native._wrap_numpy, api))


def wrap() -> bool:
    """Wraps numpy's default handler if numpy is loaded; whether it is wrapped."""
    return any(_wrap(sys.modules.get(name)) for name in _CORE)


class _Watch(MetaPathFinder):
    """Wraps numpy's handler as soon as its core module is loaded."""

    def find_spec(
        self, name: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
    ) -> Optional[ModuleSpec]:
        if name not in _CORE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _WrappingLoader(spec.loader)
                return spec
        return None


class _WrappingLoader(Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> Optional[ModuleType]:
        module: Optional[ModuleType] = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _wrap(module)
        _unwatch()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_WATCH = _Watch()


def _unwatch() -> None:
    try:
        sys.meta_path.remove(_WATCH)
    except ValueError:
        pass


def watch() -> None:
    """Called when tracing starts: wraps numpy's handler now, or when numpy
    is loaded."""
    if wrap() or any(name in sys.modules for name in _CORE):
        return
    if _WATCH not in sys.meta_path:
        sys.meta_path.insert(0, _WATCH)

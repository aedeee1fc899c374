"""Holders: what keeps the objects of a leaking site alive.

1. The site's live blocks come from the trace table (``_live_blocks``); the
   native object walk (``_locate_objects``) finds live Python objects whose
   own block, or a buffer they own (a list's item array, a dict's table), is
   one of them: the *samples*.
2. From the samples, a breadth-first search climbs the garbage collector's
   referrers (``gc.get_referrers``, one call per level for every site at
   once) until it meets a **root**: a module global, a class attribute, a
   function (closure cell, default argument), an ``lru_cache``, a local
   variable of a running thread's frame, an argument of the hunt, or
   ``gc.garbage``. Breadth-first, so the chain reported is a shortest one.

The search is bounded: at most :data:`MAX_DEPTH` levels, :data:`MAX_FRONTIER`
objects per site and level, and a time budget; a site whose samples have no
referrer the collector can see (held by native code only) gets no chain.
"""

from __future__ import annotations

import array
import collections
import functools
import gc
import io
import os
import sys
import threading
import time
import types
import weakref
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple, cast

from .. import _leakguard as native
from .report import Holder

RawTraceback = Tuple[Tuple[str, int], ...]
#: A chain found, and the containers on it that can grow (see :func:`growable`),
#: root end first: what the hunt's replacing-cache check measures.
Chain = Tuple[Holder, List[object]]

MAX_DEPTH = 14
MAX_FRONTIER = 200
SAMPLES_PER_SITE = 6
#: Objects of a site looked at to choose its samples from (see :func:`_varied`).
LOCATED_PER_SITE = 24
BLOCKS_PER_TRACEBACK = 256
#: Items of a container met through its buffer that are looked at for objects
#: of the site (the latest ones: what grows is appended).
ITEMS_LOOKED_AT = 4096
CHAINS_PER_SITE = 2
#: Levels a site's other samples climb on after one of them met a root.
EXTRA_LEVELS = 2

_OWN_DIR = os.path.normcase(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LRU_TYPE = type(functools.lru_cache(maxsize=1)(lambda: None))
#: A weak reference is bookkeeping about an object, never what keeps it
#: alive: a chain that reaches only weak references of a site (a registry of
#: them, such as logging's list of handlers) comes after one that reaches
#: its objects (the logger's ``handlers``).
_WEAK = (weakref.ref, weakref.ProxyType, weakref.CallableProxyType)
#: Roots in the standard library that are caches with a size limit of their
#: own (plain dicts, so not recognised by their type): what they hold is
#: bounded. ``re`` keeps at most ``re._MAXCACHE`` compiled patterns (3.12+
#: also a smaller ``_cache2``), keyed by the caller's pattern strings;
#: ``struct`` keeps the ``Struct`` of each format string it was given in its
#: module state (3.10+), emptied when it reaches 100.
BOUNDED_GLOBALS = frozenset({"re._cache", "re._cache2", "_struct module"})
_SIMPLE_KEYS = (str, int, float, bytes, bool, type(None))
# Module globals that are code, not data: never what holds a leak's objects
# directly (functions and classes are still roots when the climb reaches them).
_NOT_DATA = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    int,
    float,
    str,
    bytes,
    bool,
    type(None),
)


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?")
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def _type_name(obj: object) -> str:
    return _qualname(type(obj))


def describe(obj: object) -> str:
    """``list, 1,200 items``: the type and, for builtin containers, the size.
    Sizes come from the builtin types' own methods: no user code runs."""
    name = _type_name(obj)
    if isinstance(obj, type):
        return f"class {_qualname(obj)}"
    if isinstance(obj, _LRU_TYPE):
        try:
            info = obj.cache_info()
        except Exception:  # pragma: no cover - a foreign lru_cache
            return "lru_cache"
        return f"lru_cache, maxsize={info.maxsize}, {_count(info.currsize, 'entries')}"
    for base, unit in (
        (dict, "items"),
        (list, "items"),
        (tuple, "items"),
        (set, "items"),
        (frozenset, "items"),
        (collections.deque, "items"),
        (str, "chars"),
        (bytes, "bytes"),
        (bytearray, "bytes"),
    ):
        if isinstance(obj, base):
            n = cast(Any, base).__len__(obj)
            if isinstance(obj, collections.deque) and obj.maxlen is not None:
                return f"{name}, {_count(n, 'items')}, maxlen={obj.maxlen:,}"
            return f"{name}, {_count(n, unit)}"
    if isinstance(obj, types.FunctionType):
        return f"function {_qualname(obj)}"
    return name


_ONE = {"items": "item", "entries": "entry", "chars": "char", "bytes": "byte"}


def _count(n: int, unit: str) -> str:
    """``1,200 items``, ``1 item``."""
    return f"1 {_ONE[unit]}" if n == 1 else f"{n:,} {unit}"


def _short(key: object) -> str:
    if isinstance(key, _SIMPLE_KEYS):
        text = repr(key)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(key, tuple) and all(isinstance(k, _SIMPLE_KEYS) for k in key):
        text = repr(key)
        return text if len(text) <= 40 else text[:37] + "...)"
    return f"<{_type_name(key)}>"


def _frame_locals(frame: types.FrameType) -> Dict[str, Any]:
    try:
        return dict(frame.f_locals)
    except Exception:  # pragma: no cover - a proxy that cannot be read
        return {}


def step(parent: object, child: object) -> str:
    """How ``parent`` refers to ``child``: ``[3]``, ``['key']``, ``.attr``…,
    or ``""`` when it has no name (a native object's own field)."""
    if isinstance(parent, dict):
        for k, v in dict.items(parent):
            if v is child:
                return f"[{_short(k)}]"
            if k is child:
                return "(a key)"
    if isinstance(parent, (list, tuple)):
        seq: Sequence[Any] = parent
        for i in range(len(seq) - 1, -1, -1):
            if seq[i] is child:
                return f"[{i}]"
    if isinstance(parent, collections.deque):
        for i, v in enumerate(parent):
            if v is child:
                return f"[{i}]"
    if isinstance(parent, (set, frozenset)):
        return "{…}"
    if isinstance(parent, types.CellType):
        return ".cell_contents"
    if isinstance(parent, types.FrameType):
        for name, v in _frame_locals(parent).items():
            if v is child:
                return f"local {name!r}"
    if isinstance(parent, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)):
        frame = getattr(parent, "gi_frame", None) or getattr(parent, "cr_frame", None)
        frame = frame or getattr(parent, "ag_frame", None)
        if frame is not None:
            for name, v in _frame_locals(frame).items():
                if v is child:
                    return f"local {name!r}"
    if isinstance(parent, types.FunctionType):
        if parent.__closure__ is child:
            return ".__closure__"
        if parent.__defaults__ is child:
            return ".__defaults__"
        if parent.__kwdefaults__ is child:
            return ".__kwdefaults__"
        if parent.__dict__ is child:
            return ".__dict__"
        if parent.__code__ is child:
            return ".__code__"
        if parent.__globals__ is child:
            return ".__globals__"
    if isinstance(parent, types.MethodType):
        return ".__self__" if parent.__self__ is child else ".__func__"
    if isinstance(parent, _LRU_TYPE):
        return "[cached]"
    hidden_step = _HIDDEN_STEPS.get(type(parent))
    if hidden_step is not None and any(c is child for c in native._hidden_referents(parent)):
        return hidden_step
    if isinstance(parent, type):
        if child is parent.__dict__ or isinstance(child, dict):
            return ".__dict__"
    try:
        attrs = object.__getattribute__(parent, "__dict__")
    except AttributeError:
        attrs = None
    if isinstance(attrs, dict):
        if attrs is child:
            return ".__dict__"
        for k, v in dict.items(attrs):
            if v is child:
                return f".{k}"
    # Fields read straight from the object's memory: a class's __slots__,
    # a native type's members (functools.partial's .keywords); then a native
    # type's accessors (an asyncio Task's ._result), which read a field of
    # its C structure. Neither runs code of the program's (a Python property
    # is neither); dunder accessors (__dict__) are left alone, as some build
    # what they return.
    fields = (types.MemberDescriptorType, types.GetSetDescriptorType)
    for cls in type(parent).__mro__:
        for name, member in list(vars(cls).items()):
            if isinstance(member, fields) and not name.startswith("__"):
                try:
                    if member.__get__(parent, cls) is child:
                        return f".{name}"
                except Exception:  # noqa: BLE001 - an accessor that refuses: no name
                    continue
    return ""  # a reference native code holds, with no name to show


class _Roots:
    """Objects that are roots by identity: module namespaces, the locals of
    running frames, the hunt's arguments (and whatever else its caller names,
    as ``(kind, label, value)``), ``gc.garbage``."""

    def __init__(
        self, arguments: Sequence[Tuple[str, str, object]], runner: Tuple[str, ...] = ()
    ) -> None:
        self.runner = runner
        self.module_dicts: Dict[int, str] = {}
        for name, module in list(sys.modules.items()):
            ns = getattr(module, "__dict__", None)
            if isinstance(module, types.ModuleType) and isinstance(ns, dict):
                self.module_dicts.setdefault(id(ns), name)
        self.values: Dict[int, Tuple[str, str]] = {}
        #: closures made by a function and bound to a module global: that name
        self.functions: Dict[int, str] = {}
        self._keep: List[object] = []  # what `values` names stays alive while we look
        for name, module in list(sys.modules.items()):
            ns = getattr(module, "__dict__", None)
            if not isinstance(module, types.ModuleType) or not isinstance(ns, dict):
                continue
            for var, value in list(ns.items()):
                if isinstance(value, types.FunctionType) and "<locals>" in value.__qualname__:
                    self.functions.setdefault(id(value), f"{name}.{var}")
                if isinstance(value, _NOT_DATA) or var.startswith("__"):
                    continue
                self._add(value, "module global", f"{name}.{var}")
        for kind, label, value in arguments:
            self._add(value, kind, label)
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            thread = names.get(ident, f"thread {ident}")
            f: Optional[types.FrameType] = frame
            while f is not None:
                # a module's top-level frame: its locals are its globals, named
                # above. Own frames first: reading a frame's f_locals (up to
                # 3.12) stores a snapshot of them on the frame, which would
                # keep alive what the search drops (the list of all objects).
                if not _is_own_file(f.f_code.co_filename) and f.f_locals is not f.f_globals:
                    kind = "test runner" if self.is_runner(f.f_globals) else "thread stack"
                    for var, value in _frame_locals(f).items():
                        self._add(value, kind, f"{thread}: {f.f_code.co_name}() local {var!r}")
                f = f.f_back
            del frame
        self._add(gc.garbage, "gc.garbage", "gc.garbage")

    def is_runner(self, namespace: Any) -> bool:
        """Whether a frame's globals (or a type's module) belong to the runner."""
        if not self.runner:
            return False
        module = namespace.get("__name__", "") if isinstance(namespace, dict) else namespace
        return isinstance(module, str) and module.split(".", 1)[0] in self.runner

    def _add(self, value: object, kind: str, label: str) -> None:
        if isinstance(value, (int, float, str, bytes, bool, type(None))):
            return
        if id(value) not in self.values:
            self.values[id(value)] = (kind, label)
            self._keep.append(value)


def _is_own_file(filename: str) -> bool:
    return os.path.normcase(filename).startswith(_OWN_DIR + os.sep)


#: Modules of the machinery that runs a hunt (its warning capture holds the
#: handler that was in force, a runner's list of warnings say): their
#: objects are no way to what the program keeps.
_MACHINERY = ("leakguard._hunter.", "leakguard._pytest.", "leakguard._notebook.")


def _is_machinery(obj: object) -> bool:
    module = getattr(type(obj), "__module__", None)
    return isinstance(module, str) and module.startswith(_MACHINERY)


class _Search:
    """The breadth-first climb, for every site at once."""

    def __init__(self, roots: _Roots) -> None:
        self.roots = roots
        self.nodes: List[object] = []
        self.parent: List[int] = []
        self.site: List[int] = []
        #: which of its site's samples each node was reached from
        self.sample: List[int] = []
        self.seen: Dict[Tuple[int, int, int], int] = {}
        #: samples that are an empty container's own buffer: spare capacity
        #: (a dict's table after its items left), bounded by its past size
        self.spare: Set[int] = set()
        #: (site, sample) of the samples located by a container's buffer that
        #: grew (the container is the sample): their chains count the sample
        #: among its containers, and rank after one reaching the site's objects
        self.buffers: Set[Tuple[int, int]] = set()
        #: per (site, sample), the node of a function that nothing names:
        #: its chain is used when the climb finds no root above it
        self.fallback: Dict[Tuple[int, int], int] = {}
        self.ignored = {id(self.nodes), id(roots._keep)}

    def add(self, obj: object, parent: int, site: int, sample: int) -> int:
        key = (id(obj), site, sample)
        if key in self.seen:
            return -1
        index = len(self.nodes)
        self.nodes.append(obj)
        self.parent.append(parent)
        self.site.append(site)
        self.sample.append(sample)
        self.seen[key] = index
        return index

    def root_of(self, index: int) -> Optional[Chain]:
        """The chain ending at node ``index`` if that node is a root."""
        obj = self.nodes[index]
        child = self.parent[index]
        if isinstance(obj, _LRU_TYPE) and _is_named(obj):
            # A cached function of a module or class. One that is not (made
            # per instance, say: each leaked object's own cache) is no root:
            # the climb goes on to what holds it.
            return self._chain("lru_cache", _qualname(obj), index)
        if isinstance(obj, types.FunctionType) and child >= 0:
            if _is_named(obj) or id(obj) in self.roots.functions:
                return self._function_chain(obj, index)
            # A function made at run time (a lambda, a closure) that nothing
            # names is held by something: the climb goes on to it, and this
            # chain is kept in case nothing is found (a callback only native
            # code keeps, such as atexit's).
            self.fallback.setdefault((self.site[index], self.sample[index]), index)
            return None
        known = self.roots.values.get(id(obj))
        if known is not None:
            return self._chain(known[0], known[1], index)
        if child >= 0 and self.roots.is_runner(type(obj).__module__):
            return self._chain("test runner", _qualname(type(obj)), index)
        if id(obj) in self.roots.module_dicts and child >= 0:
            module = self.roots.module_dicts[id(obj)]
            key = step(obj, self.nodes[child])
            name = key[2:-2] if key.startswith("['") else key
            return self._chain("module global", f"{module}.{name}", child)
        if isinstance(obj, types.ModuleType) and child >= 0:
            # A module's own state, held natively (on 3.9, atexit's list of
            # callbacks): the module is the root, not sys.modules above it.
            called = getattr(obj, "__name__", None)
            label = f"{called} module" if isinstance(called, str) else "module"
            return self._chain("module state", label, index)
        if isinstance(obj, type) and child >= 0 and _is_named(obj):
            # A class made at run time (type(name, bases, ns)), which no
            # module names, is no root: the climb goes on to what keeps it.
            ns = self.nodes[child]
            grandchild = self.parent[child]
            if isinstance(ns, dict) and grandchild >= 0:
                key = step(ns, self.nodes[grandchild])
                name = key[2:-2] if key.startswith("['") else key
                return self._chain("class attribute", f"{_qualname(obj)}.{name}", grandchild)
            return self._chain("class", _qualname(obj), index)
        return None

    def _path(self, index: int) -> List[int]:
        path = []
        while index >= 0:
            path.append(index)
            index = self.parent[index]
        return path  # root end first, the sample last

    def _chain(self, kind: str, label: str, index: int) -> Chain:
        path = self._path(index)
        steps: List[str] = []
        root = self.nodes[path[0]]
        nodes = [describe(root)]
        # Each object shown, with the step that reached it.
        met: List[Tuple[object, str]] = [(root, "")]
        i = 0
        while i + 1 < len(path):
            parent, child = self.nodes[path[i]], self.nodes[path[i + 1]]
            s = step(parent, child)
            # an instance's __dict__ then a key reads better as one attribute
            if s == ".__dict__" and i + 2 < len(path):
                key = step(child, self.nodes[path[i + 2]])
                if key.startswith("['") and key.endswith("']"):
                    steps.append("." + key[2:-2])
                    nodes.append(describe(self.nodes[path[i + 2]]))
                    met.append((self.nodes[path[i + 2]], key))
                    i += 2
                    continue
            # a threading.local, its table of per-thread dicts (keyed by
            # weak references) and one thread's dict, then a key: one attribute
            if isinstance(parent, threading.local) and i + 3 < len(path):
                table, own = child, self.nodes[path[i + 2]]
                key = step(own, self.nodes[path[i + 3]])
                attribute = key.startswith("['") and key.endswith("']")
                if isinstance(table, dict) and isinstance(own, dict) and attribute:
                    steps.append("." + key[2:-2])
                    nodes.append(describe(self.nodes[path[i + 3]]))
                    met.append((self.nodes[path[i + 3]], key))
                    i += 3
                    continue
            steps.append(s)
            nodes.append(describe(child))
            met.append((child, s))
            i += 1
        # A __dict__'s length is the number of attributes, not what it holds;
        # the sample (last) holds itself only when its own buffer grew.
        last = path[-1]
        above = met if (self.site[last], self.sample[last]) in self.buffers else met[:-1]
        containers = [obj for obj, via in above if via != ".__dict__" and growable(obj)]
        bounded = label in BOUNDED_GLOBALS or path[-1] in self.spare or _limited(met)
        holder = Holder(
            kind, label, tuple(steps), tuple(nodes), bounded, runner=kind == "test runner"
        )
        return holder, containers

    def _function_chain(self, func: types.FunctionType, index: int) -> Chain:
        path = self._path(index)
        # A closure bound to a module global is known by that name, not by
        # the qualified name of the function that made it.
        label = self.roots.functions.get(id(func)) or _qualname(func)
        child = self.nodes[path[1]]
        if child is func.__closure__ and len(path) > 2:
            cell = self.nodes[path[2]]
            names = func.__code__.co_freevars
            closure = func.__closure__ or ()
            var = next((n for n, c in zip(names, closure) if c is cell), "?")
            # from the variable's value down (the cell itself when it is the sample)
            rest, containers = self._chain("closure", label, path[3] if len(path) > 3 else path[2])
            return Holder(
                "closure",
                f"{label} closure variable {var!r}",
                rest.steps,
                rest.nodes,
                rest.bounded,
            ), containers
        if child is func.__defaults__ and len(path) > 2:
            rest, containers = self._chain("function", label, path[2])
            pos = step(child, self.nodes[path[2]])
            return Holder(
                "default argument",
                f"{label}.__defaults__{pos}",
                rest.steps,
                rest.nodes,
                rest.bounded,
            ), containers
        return self._chain("function", label, index)


def _is_empty(obj: object) -> bool:
    try:
        return isinstance(obj, (dict, list, set, frozenset, bytearray)) and len(obj) == 0
    except Exception:  # pragma: no cover - a subclass with a broken __len__
        return False


def _bounded(obj: object) -> bool:
    """A container with a size limit: a deque with ``maxlen``, an
    ``lru_cache`` with ``maxsize``."""
    if isinstance(obj, collections.deque):
        return obj.maxlen is not None
    if isinstance(obj, _LRU_TYPE):
        try:
            return obj.cache_info().maxsize is not None
        except Exception:  # pragma: no cover - a foreign lru_cache
            return False
    return False


def _limited(met: List[Tuple[object, str]]) -> bool:
    """Whether a chain (its objects root first, each with the step that
    reached it) runs through a size-limited container with no growable one
    above it: a size-limited cache per leaked object (each leaked
    connection's statement cache) is as many as there are leaked objects."""
    for obj, via in met:
        if _bounded(obj):
            return True
        if via != ".__dict__" and growable(obj):
            return False
    return False


def _is_named(obj: object) -> bool:
    """Whether ``obj`` is what its ``__module__`` and ``__qualname__`` name
    (a module's function, a class's method), read without running code."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    qualname = getattr(obj, "__qualname__", None)
    if module is None or not isinstance(qualname, str):
        return False
    here: object = module
    for part in qualname.split("."):
        try:
            namespace = object.__getattribute__(here, "__dict__")
        except AttributeError:
            return False
        if not isinstance(namespace, (dict, types.MappingProxyType)) or part not in namespace:
            return False
        here = namespace[part]
    return here is obj


def _is_call_tuple(obj: object, args: List[object]) -> bool:
    """The argument tuple ``gc.get_referrers(*args)`` itself was called with."""
    if type(obj) is not tuple:
        return False
    items: Tuple[object, ...] = obj
    return len(items) == len(args) and all(a is b for a, b in zip(items, args))


def find_holders(
    sites: Sequence[Sequence[RawTraceback]],
    arguments: Sequence[Tuple[str, str, object]] = (),
    budget: float = 1.5,
    runner: Tuple[str, ...] = (),
    chain_containers: Optional[List[List[List[object]]]] = None,
) -> List[List[Holder]]:
    """For each site (given by the tracebacks of its growing blocks), up to
    :data:`CHAINS_PER_SITE` shortest chains from a root to its objects.

    ``chain_containers``, if given, receives for each site and chain the
    containers on the chain that can grow (see :func:`growable`), root end
    first. ``arguments`` are roots named by their caller, as ``(kind, label,
    value)``: the hunt's arguments (``"hunt argument"``, ``"args[0]"``...).

    ``runner`` names the top-level packages of what runs the rounds (a test
    runner): their objects and frames end a chain as roots of kind
    ``"test runner"``."""
    deadline = time.perf_counter() + budget
    result: List[List[Holder]] = [[] for _ in sites]  # when nothing is found
    requests: List[RawTraceback] = []
    owner: List[int] = []
    for i, tracebacks in enumerate(sites):
        for tb in tracebacks:
            requests.append(tb)
            owner.append(i)
    if chain_containers is not None:
        chain_containers[:] = [[] for _ in sites]
    if not requests:
        return result
    blocks: Dict[int, int] = {}
    for i, addresses in enumerate(native._live_blocks(requests, BLOCKS_PER_TRACEBACK)):
        for address in addresses:
            blocks.setdefault(address, owner[i])
    del requests
    if not blocks:
        return result

    # The objects first: the search's own (its table of module names, the
    # very str objects sys.modules is keyed by) are no way to a sample.
    objects = gc.get_objects()
    search = _Search(_Roots(arguments, runner))
    located = _samples(objects, blocks, sites)
    del objects
    frontier: List[int] = []
    found = _Found(search, len(sites))
    # Objects allocated at the site say more than the container whose buffer
    # grew there (the chain then runs down to the item): prefer them. A site
    # met only through such a buffer may still own some of that container's
    # items (objects the collector does not track, say small dicts, are not
    # in gc.get_objects()): look for them among its latest items.
    has_own = {site for site, _, via_buffer, _ in located if not via_buffer}
    containers = [obj for site, obj, via_buffer, _ in located if via_buffer and site not in has_own]
    if containers:
        items = [item for obj in containers for item in gc.get_referents(obj)[-ITEMS_LOOKED_AT:]]
        for more in _samples(items, blocks, sites):
            if not more[2]:
                located.append(more)
                has_own.add(more[0])
        del items
    del containers
    samples: Dict[Tuple[int, int], int] = {}
    for site, obj, via_buffer, untracked_path in located:
        if via_buffer and site in has_own:
            continue
        # One object may be located twice (its own block and a buffer's).
        sample = samples.setdefault((site, id(obj)), len(samples))
        if isinstance(obj, _WEAK):
            found.weak.add((site, sample))
        index = search.add(obj, -1, site, sample)
        if index < 0:
            continue
        if via_buffer:
            search.buffers.add((site, sample))
            if _is_empty(obj):
                search.spare.add(index)
        found.check(index, 0)
        # Containers the collector does not track hide from gc.get_referrers:
        # the walk says which ones led to the object; climb them here.
        for container in untracked_path:
            other = samples.get((site, id(container)), sample)
            if other != sample:
                found.absorb(site, sample, other)
                index = -1  # inside another sample of the site: that one climbs
                break
            parent = search.add(container, index, site, sample)
            if parent < 0:
                break
            index = parent
            found.check(index, 0)
        if index >= 0:
            frontier.append(index)
    del located
    frontier = [i for i in frontier if found.climbing(i, 0)]
    hidden: Optional[Dict[int, object]] = None

    for depth in range(1, MAX_DEPTH + 1):
        if not frontier or time.perf_counter() > deadline:
            break
        level = _Level(search, found, samples, frontier)
        targets = level.targets
        referrers = gc.get_referrers(*targets)
        ignored = search.ignored | {id(targets), id(referrers), id(frontier)}
        for ref in referrers:
            if id(ref) in ignored or _is_call_tuple(ref, targets):
                continue
            if isinstance(ref, types.FrameType) and _is_own_file(ref.f_code.co_filename):
                continue
            if _is_machinery(ref):
                continue
            level.climb(ref, gc.get_referents(ref))
        # Objects held only through fields the collector does not visit (a
        # StringIO's text): their holders, found once, when first needed.
        orphans = [obj for obj in targets if id(obj) not in level.held]
        if orphans:
            if hidden is None:
                hidden = _hidden_holders()
            keys = {id(obj) for obj in orphans if type(obj) is str}
            if keys:
                hidden.update(_key_holders(keys))
            for obj in orphans:
                holder = hidden.get(id(obj))
                if holder is not None and id(holder) not in ignored:
                    level.climb(holder, [obj])
        next_frontier = level.next_frontier
        del referrers, targets, level, orphans
        for index in next_frontier:
            found.check(index, depth)
        frontier = [i for i in next_frontier if found.climbing(i, depth)]
    for (site, sample), index in search.fallback.items():
        if not found.chains[site]:
            func = search.nodes[index]
            assert isinstance(func, types.FunctionType)
            found.note(site, sample, search._function_chain(func, index))
    chosen = found.result(CHAINS_PER_SITE)
    if chain_containers is not None:
        chain_containers[:] = [[c for _, c in site] for site in chosen]
    return [[h for h, _ in site] for site in chosen]


class _Level:
    """One level of the climb: the frontier's objects (``targets``) and what
    holds them, added to the search as the next frontier."""

    def __init__(
        self,
        search: _Search,
        found: _Found,
        samples: Dict[Tuple[int, int], int],
        frontier: List[int],
    ) -> None:
        self.search, self.found, self.samples = search, found, samples
        self.targets = [search.nodes[i] for i in frontier]
        # One object may be on the frontier of several sites (their chains
        # meet, say in the dict that holds the objects of both), or of
        # several samples of one site.
        self.by_id: Dict[int, List[int]] = {}
        for i in frontier:
            self.by_id.setdefault(id(search.nodes[i]), []).append(i)
        self.per_site: Dict[int, int] = {}
        self.next_frontier: List[int] = []
        self.held: Set[int] = set()  # ids of the targets a holder was found for

    def climb(self, ref: object, children: Sequence[object]) -> None:
        """``ref`` refers to ``children``: it holds those on the frontier."""
        search, per_site = self.search, self.per_site
        for child in children:
            for child_index in self.by_id.get(id(child), ()):
                self.held.add(id(child))
                site, sample = search.site[child_index], search.sample[child_index]
                if per_site.get(site, 0) >= MAX_FRONTIER:
                    continue
                other = self.samples.get((site, id(ref)), sample)
                if other != sample:
                    self.found.absorb(site, sample, other)
                    continue  # another sample of the site: that one climbs
                index = search.add(ref, child_index, site, sample)
                if index < 0:
                    continue
                per_site[site] = per_site.get(site, 0) + 1
                self.next_frontier.append(index)


#: Types whose instances hold objects through fields their traverse does
#: not visit (see ``_hidden_referents``), with the name of that step.
_HIDDEN_STEPS: Dict[type, str] = {io.StringIO: "(its text)", io.BytesIO: "(its buffer)"}


def _hidden_holders() -> Dict[int, object]:
    """The holder of each object held only through a field the collector
    does not visit, by the object's id."""
    holders: Dict[int, object] = {}
    kinds = tuple(_HIDDEN_STEPS)
    for obj in gc.get_objects():
        if type(obj) in kinds:
            for child in native._hidden_referents(obj):
                holders.setdefault(id(child), obj)
    return holders


def _key_holders(wanted: Set[int]) -> Dict[int, object]:
    """The dict holding each str of ``wanted`` (ids) as a key. A dict whose
    keys are all str does not show them to the collector (a str refers to
    nothing, so it cannot be in a cycle): a str kept only as a key has no
    referrer. Looked for in the dicts the collector tracks and in the dicts
    they and tracked lists hold (a dict holding only str, numbers and None
    is not tracked)."""
    holders: Dict[int, object] = {}

    def look(d: Dict[Any, Any]) -> None:
        try:
            for key in d:  # a plain dict's keys: no code of the program's runs
                if type(key) is str and id(key) in wanted:
                    holders.setdefault(id(key), d)
        except RuntimeError:
            pass  # changed by another thread meanwhile

    for obj in gc.get_objects():
        if type(obj) is dict:
            look(obj)
            inner: Iterable[object] = obj.values()
        elif type(obj) is list:
            inner = obj
        else:
            continue
        for value in inner:
            if type(value) is dict and not gc.is_tracked(value):
                look(value)
        if len(holders) == len(wanted):
            break
    return holders


def _samples(
    objects: List[object], blocks: Dict[int, int], sites: Sequence[Sequence[RawTraceback]]
) -> List[Tuple[int, object, bool, List[object]]]:
    """The sample objects among ``objects`` (and what they reference) of the
    sites whose blocks ``blocks`` names: located, each counted as the site's
    own or as a container by :func:`_own_first`, then chosen by :func:`_varied`."""
    return _varied(_own_first(native._locate_objects(objects, blocks, LOCATED_PER_SITE), sites))


def _own_first(
    located: List[Tuple[int, object, bool, List[object]]],
    sites: Sequence[Sequence[RawTraceback]],
) -> List[Tuple[int, object, bool, List[object]]]:
    """``located`` with an object met through a buffer of the site counted as
    the site's own when its own block was allocated there too (a dict whose
    keys table was among the blocks looked at, its own block not): whether an
    object is an item of the leak or the container holding the items must not
    depend on which of the site's blocks happened to be looked at."""
    out = []
    for site, obj, via_buffer, path in located:
        if via_buffer:
            raw = native.get_object_traceback(obj)
            if raw is not None and tuple(raw) in sites[site]:
                via_buffer = False
        out.append((site, obj, via_buffer, path))
    return out


def _varied(
    located: List[Tuple[int, object, bool, List[object]]],
) -> List[Tuple[int, object, bool, List[object]]]:
    """At most :data:`SAMPLES_PER_SITE` of ``located`` per site, of as many
    types as there are: the first object of each type, then the second, and
    so on, in the order found. A line that makes a handler also makes the
    weak reference a registry keeps to it; the first objects met are often
    all of one kind, and what holds the handlers must not lose to what
    holds that bookkeeping for want of a handler among the samples."""
    own = {site for site, _, via_buffer, _ in located if not via_buffer}
    by_site: Dict[int, Dict[type, List[int]]] = {}
    for i, (site, obj, via_buffer, _) in enumerate(located):
        if via_buffer and site in own:
            continue  # an object of the site says more (see find_holders)
        by_site.setdefault(site, {}).setdefault(type(obj), []).append(i)
    chosen: List[int] = []
    for kinds in by_site.values():
        queues = list(kinds.values())
        picked = 0
        for rank in range(max(len(q) for q in queues)):
            for q in queues:
                if rank < len(q) and picked < SAMPLES_PER_SITE:
                    chosen.append(q[rank])
                    picked += 1
    return [located[i] for i in sorted(chosen)]


def _first_step(holder: Holder) -> str:
    """The chain's first step, an item of a container (``[3]``, ``['k']``,
    ``{…}``) as ``[]``."""
    if not holder.steps:
        return ""
    first = holder.steps[0]
    return "[]" if first.startswith(("[", "{")) else first


#: Containers whose length says how much they hold (subclasses too).
_GROWABLE = (list, dict, set, collections.deque, bytearray, array.array, io.StringIO, io.BytesIO)


def growable(obj: object) -> bool:
    """A container whose length (:func:`content_length`) says how much it
    holds: a list, dict, set, deque, bytearray, ``array.array``, StringIO
    or BytesIO."""
    return isinstance(obj, _GROWABLE)


def content_length(obj: Any) -> int:
    """How much a :func:`growable` container holds: its length, or the
    length of a StringIO's text or a BytesIO's bytes (-1 once closed)."""
    try:
        if isinstance(obj, io.StringIO):
            return len(obj.getvalue())
        if isinstance(obj, io.BytesIO):
            with obj.getbuffer() as view:
                return view.nbytes
        return len(obj)
    except (ValueError, TypeError):
        return -1


class _Kept(NamedTuple):
    """The chain kept for one path to a site's objects (see :class:`_Found`)."""

    samples: Set[int]
    holder: Holder
    containers: List[object]
    #: (reaches the site only through a container's buffer, steps): lower is better
    rank: Tuple[bool, int]


class _Found:
    """The chains found so far, per site and sample.

    A sample's climb stops at its first root (breadth-first: a shortest
    chain). Its site's other samples climb on for :data:`EXTRA_LEVELS` more
    levels, so that the container holding a site's older objects is found
    even when a variable holds the newest one a step closer (``current =
    item; HISTORY.append(item)``). A sample met on the way up from another
    sample of its site (a str inside a dict of the same line) is that one's.
    The holders reported first are those that reach more than weak
    references to the site's objects (see :data:`_WEAK`); then those that
    hold the most samples, counting the samples whose climb met one they
    hold; among equals, one reaching the samples through something (a
    container) before one that is itself the sample's only reference, since
    a leak that grows is held by something that holds many; then the
    shortest."""

    def __init__(self, search: _Search, sites: int) -> None:
        self.search = search
        #: per site and path (root, first step): the samples the chain kept
        #: for that path holds, the chain, its containers and its rank (see
        #: :meth:`note`)
        self.chains: List[Dict[Tuple[str, str], _Kept]] = [{} for _ in range(sites)]
        self.done: Set[Tuple[int, int]] = set()
        self.first_level: Dict[int, int] = {}
        #: per (site, sample): the sample of the site met climbing from it
        self.inside: Dict[Tuple[int, int], int] = {}
        #: samples that are weak references
        self.weak: Set[Tuple[int, int]] = set()

    def absorb(self, site: int, sample: int, other: int) -> None:
        """Notes that ``sample``'s climb met ``other``, another sample of its
        site: whatever holds ``other`` holds ``sample`` too."""
        self.inside.setdefault((site, sample), other)

    def check(self, index: int, depth: int) -> None:
        """Notes the chain ending at node ``index`` if that node is a root."""
        search = self.search
        site, sample = search.site[index], search.sample[index]
        if (site, sample) in self.done:
            return
        chain = search.root_of(index)
        if chain is None:
            return
        self.done.add((site, sample))
        if (site, sample) not in self.weak:
            # A weak reference's holder (a registry of them) found first
            # must not cut short the climb to what keeps the objects.
            self.first_level.setdefault(site, depth)
        self.note(site, sample, chain)

    def note(self, site: int, sample: int, chain: Chain) -> None:
        holder, containers = chain
        # Chains are told apart by their root and first step, an item of a
        # container counting as one step whatever its index or key: a
        # generator's local 'acc' (the list that grows) and its local
        # 'item' (the newest object) are two ways to the site's objects.
        path = (holder.root, _first_step(holder))
        held = self.chains[site].get(path)
        # Of the chains along one path, one that runs down to an object
        # allocated at the site says more than one ending at the container
        # whose buffer grew there; of those, the shortest (the outermost of
        # the site's objects: a handler rather than the list inside it).
        rank = ((site, sample) in self.search.buffers, len(holder.steps))
        if held is None or rank < held.rank:
            samples = held.samples if held is not None else set()
            held = self.chains[site][path] = _Kept(samples, holder, containers, rank)
        held.samples.add(sample)

    def climbing(self, index: int, depth: int) -> bool:
        """Whether node ``index`` (reached at ``depth``) climbs on."""
        site = self.search.site[index]
        if (site, self.search.sample[index]) in self.done:
            return False
        first = self.first_level.get(site)
        return first is None or depth < first + EXTRA_LEVELS

    def _held(self, site: int, samples: Set[int]) -> int:
        """How many samples of ``site`` the holder of ``samples`` keeps:
        those, and the samples whose climb met one of them."""
        held = set(samples)
        for (s, sample), other in self.inside.items():
            if s != site:
                continue
            seen = {sample}
            while other not in held and other not in seen:
                seen.add(other)
                other = self.inside.get((site, other), other)
            if other in held:
                held.add(sample)
        return len(held)

    def result(self, per_site: int) -> List[List[Tuple[Holder, List[object]]]]:
        out: List[List[Tuple[Holder, List[object]]]] = []
        for site, chains in enumerate(self.chains):
            ranked = sorted(
                chains.values(),
                key=lambda c: (
                    all((site, s) in self.weak for s in c.samples),
                    -self._held(site, c.samples),
                    not c.holder.steps,
                    len(c.holder.steps),
                ),
            )
            out.append([(c.holder, c.containers) for c in ranked[:per_site]])
        return out

"""The interactive flame graph: one self-contained HTML page.

The page draws a profile's call tree as an icicle: the whole memory on top,
the outermost frames below it, each frame's callees under it, every box as
wide as the bytes allocated through it. A node is a code location reached by
one call path, so the same line called from two places is two boxes. Click a
box to zoom on it, Escape to zoom out; the search box highlights matching
frames (by function, file or line number) and tells their share; hovering a
box tells its bytes, blocks and shares. A diff or a leak report colours each
frame by how much it grew (red) or shrank (blue), and its boxes are as wide
as what grew through them (a button switches to the live bytes).

The page needs no network: its script, styles and data are inlined, and its
content security policy lets nothing else load or run.

The limit: a profile may have any number of distinct tracebacks, but the page
draws at most ``max_nodes`` boxes (default :data:`DEFAULT_MAX_NODES`) so that
it stays responsive. Frames are kept largest first (by their share of the
total, or of the total growth for a diff); a frame under ``min_share`` of it
(default :data:`DEFAULT_MIN_SHARE`, 0.01%), or one that would exceed the
budget, is folded with its smaller siblings into one "(n smaller)" box per
parent, which keeps their bytes and blocks. Building the tree costs time
proportional to the number of distinct tracebacks times their depth (the
number of blocks does not matter: identical tracebacks are grouped first).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import importlib.resources
import json
import os
from heapq import heappop, heappush
from typing import Any, Dict, List, Optional, Tuple, Union

from .._errors import UsageError, UsageTypeError, check_count
from .._profile import Profile, profile_of
from .._source import source_line

__all__ = [
    "SUFFIX",
    "DESCRIPTION",
    "DEFAULT_MAX_NODES",
    "DEFAULT_MIN_SHARE",
    "FlameGraph",
    "flame_graph",
    "render",
    "call_tree",
]

SUFFIX = ".html"
DESCRIPTION = "interactive flame graph (icicle): one self-contained HTML page"

#: Most boxes a page draws (the root and "(n smaller)" boxes included).
DEFAULT_MAX_NODES = 5000
#: Frames under this share of the total are folded into "(n smaller)" boxes.
DEFAULT_MIN_SHARE = 0.0001

# Longest source line embedded for a tooltip.
_SOURCE_CHARS = 240

# Height of the frame in which a notebook shows the page.
_IFRAME_HEIGHT = "480px"


class FlameGraph:
    """A rendered flame graph page.

    ``html`` is the page (one self-contained document); :meth:`save` writes
    it to a file; in Jupyter, displaying the object shows the graph inline
    (in a sandboxed frame, so its styles and script stay out of the
    notebook). ``kind`` and ``title`` say what it shows; ``nodes`` is the
    number of boxes in the page and ``frames`` the number of nodes in the
    whole call tree (more than ``nodes`` when small frames were folded).
    """

    __slots__ = ("html", "kind", "title", "nodes", "frames")

    def __init__(self, html: str, kind: str, title: str, nodes: int, frames: int) -> None:
        self.html = html
        self.kind = kind
        self.title = title
        self.nodes = nodes
        self.frames = frames

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Write the page to ``path`` (UTF-8)."""
        with open(os.fspath(path), "wb") as out:
            out.write(self.html.encode("utf-8"))

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'sandbox="allow-scripts" title="leakguard flame graph" '
            f'style="width: 100%; height: {_IFRAME_HEIGHT}; border: 0;"></iframe>'
        )

    def __repr__(self) -> str:
        return (
            f"<FlameGraph kind={self.kind!r} title={self.title!r} "
            f"nodes={self.nodes} frames={self.frames}>"
        )


def flame_graph(
    obj: Any,
    base: Any = None,
    *,
    title: Optional[str] = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    min_share: float = DEFAULT_MIN_SHARE,
) -> FlameGraph:
    """The interactive flame graph of ``obj``.

    ``obj`` is a snapshot (with ``base``, another snapshot: what changed from
    ``base`` to ``obj``), a list of ``Statistic`` or ``StatisticDiff``, a
    leak report, a tracker or a profile. ``title`` replaces the profile's
    heading. At most ``max_nodes`` boxes are drawn; frames under
    ``min_share`` of the total are folded into "(n smaller)" boxes.
    """
    profile = profile_of(obj, base)
    tree = call_tree(profile, max_nodes, min_share)
    if title is not None:
        if not isinstance(title, str):
            raise UsageTypeError(f"title must be a str, not {type(title).__name__}")
        tree["title"] = title
    return FlameGraph(
        _page(tree),
        profile.kind,
        tree["title"],
        len(tree["nodes"]["parent"]),
        tree["totals"]["frames"],
    )


def render(profile: Profile) -> bytes:
    """The flame graph page of ``profile`` as UTF-8 (the ``html`` export)."""
    return _page(call_tree(profile, DEFAULT_MAX_NODES, DEFAULT_MIN_SHARE)).encode("utf-8")


# -- the call tree ------------------------------------------------------------


def call_tree(
    profile: Profile, max_nodes: int = DEFAULT_MAX_NODES, min_share: float = DEFAULT_MIN_SHARE
) -> Dict[str, Any]:
    """The call tree of ``profile`` as the page embeds it (JSON-able).

    ``nodes`` holds parallel lists, the root (all memory) first and each
    node after its parent (a folded node right after its parent): ``parent`` (index),
    ``location`` (index into ``locations``, -1 for the root and folded
    nodes), ``size`` and ``count`` (bytes and blocks through the node) and,
    for a diff or leak report, ``size_diff``, ``count_diff`` and ``grown``
    (the sum of the growth of the call stacks through the node that grew).
    ``folded`` pairs the index of each "(n smaller)" node with its n.
    ``locations`` are ``[file index, line, function, source line]``.
    """
    max_nodes = check_count("max_nodes", max_nodes, 2)
    if isinstance(min_share, bool) or not isinstance(min_share, (int, float)):
        raise UsageTypeError(f"min_share must be a number, not {type(min_share).__name__}")
    if not 0 <= min_share < 1:
        raise UsageError(f"min_share must be at least 0 and below 1, got {min_share}")
    diff = profile.kind != "snapshot"

    # The whole tree, one node per (parent, location); each sample's values
    # go to the node its stack ends at, then are summed upwards.
    parent = [-1]
    loc = [-1]
    size = [0]
    count = [0]
    size_diff = [0]
    count_diff = [0]
    grown = [0]
    children: List[Dict[int, int]] = [{}]
    for sample in profile.samples:
        node = 0
        for at in sample.stack:
            below = children[node]
            nxt = below.get(at)
            if nxt is None:
                nxt = below[at] = len(parent)
                parent.append(node)
                loc.append(at)
                children.append({})
                size.append(0)
                count.append(0)
                size_diff.append(0)
                count_diff.append(0)
                grown.append(0)
            node = nxt
        size[node] += sample.size
        count[node] += sample.count
        if diff:
            size_diff[node] += sample.size_diff
            count_diff[node] += sample.count_diff
            if sample.size_diff > 0:
                grown[node] += sample.size_diff
    for i in range(len(parent) - 1, 0, -1):  # children come after their parents
        up = parent[i]
        size[up] += size[i]
        count[up] += count[i]
        if diff:
            size_diff[up] += size_diff[i]
            count_diff[up] += count_diff[i]
            grown[up] += grown[i]

    # The share that decides what is drawn: of the live total, or for a diff
    # of the growth too, whichever is larger.
    total_size = size[0]
    total_grown = grown[0]

    def share(i: int) -> float:
        s = size[i] / total_size if total_size > 0 else 0.0
        if diff and total_grown > 0:
            s = max(s, grown[i] / total_grown)
        return s

    # Largest first from the root, so what is kept is always a connected
    # tree. The budget counts the boxes drawn: kept nodes plus one
    # "(n smaller)" box for each kept node with children left out.
    kept = [False] * len(parent)
    kept[0] = True
    left_out = [0] * len(parent)
    left_out[0] = len(children[0])
    folds = 1 if left_out[0] else 0
    boxes = 1
    heap: List[Tuple[float, int]] = []
    for child in children[0].values():
        heappush(heap, (-share(child), child))
    while heap:
        negative, i = heappop(heap)
        if -negative <= 0 or -negative < min_share:
            break
        up = parent[i]
        cost = boxes + 1 + folds + (1 if children[i] else 0) - (1 if left_out[up] == 1 else 0)
        if cost > max_nodes:
            break
        kept[i] = True
        boxes += 1
        left_out[up] -= 1
        if left_out[up] == 0:
            folds -= 1
        if children[i]:
            left_out[i] = len(children[i])
            folds += 1
            for child in children[i].values():
                heappush(heap, (-share(child), child))

    # Emit the kept tree depth first, largest child first, each parent's
    # folded box after its kept children.
    out_parent: List[int] = []
    out_loc: List[int] = []
    columns: Tuple[List[int], ...] = ([], [], [], [], [])
    folded: List[List[int]] = []
    used: Dict[int, int] = {}

    def emit(up: int, location: int, values: Tuple[int, int, int, int, int]) -> int:
        out_parent.append(up)
        out_loc.append(location)
        for column, value in zip(columns, values):
            column.append(value)
        return len(out_parent) - 1

    stack: List[Tuple[int, int]] = [(0, -1)]
    while stack:
        i, up = stack.pop()
        location = -1
        if i:
            location = used.setdefault(loc[i], len(used))
        index = emit(up, location, (size[i], count[i], size_diff[i], count_diff[i], grown[i]))
        keep = []
        rest = [0, 0, 0, 0, 0]
        n = 0
        for child in children[i].values():
            if kept[child]:
                keep.append(child)
            else:
                n += 1
                rest[0] += size[child]
                rest[1] += count[child]
                rest[2] += size_diff[child]
                rest[3] += count_diff[child]
                rest[4] += grown[child]
        if n:
            fold = emit(index, -1, (rest[0], rest[1], rest[2], rest[3], rest[4]))
            folded.append([fold, n])
        keep.sort(key=lambda c: (-share(c), c))
        for child in reversed(keep):
            stack.append((child, index))

    files: Dict[str, int] = {}
    locations: List[List[Any]] = []
    for at in sorted(used, key=used.__getitem__):
        filename, lineno, function = profile.locations[at]
        source = source_line(filename, lineno)
        if len(source) > _SOURCE_CHARS:
            source = source[: _SOURCE_CHARS - 1] + "\u2026"
        locations.append([files.setdefault(filename, len(files)), lineno, function, source])

    nodes: Dict[str, Any] = {
        "parent": out_parent,
        "location": out_loc,
        "size": columns[0],
        "count": columns[1],
    }
    if diff:
        nodes["size_diff"] = columns[2]
        nodes["count_diff"] = columns[3]
        nodes["grown"] = columns[4]
    nodes["folded"] = folded
    frames = len(parent) - 1
    return {
        "version": 1,
        "kind": profile.kind,
        "title": profile.title,
        "totals": {
            "size": size[0],
            "count": count[0],
            "size_diff": size_diff[0],
            "count_diff": count_diff[0],
            "grown": grown[0],
            "samples": len(profile.samples),
            "frames": frames,
            "folded": frames - (len(out_parent) - 1 - len(folded)),
        },
        "limits": {
            "max_nodes": max_nodes,
            "min_share": min_share,
            "traceback_limit": profile.traceback_limit,
        },
        "files": sorted(files, key=files.__getitem__),
        "locations": locations,
        "nodes": nodes,
    }


# -- the page -----------------------------------------------------------------


@functools.cache
def _asset(name: str) -> str:
    text = importlib.resources.files(__package__).joinpath(name).read_text("utf-8")
    closing = "</script" if name.endswith(".js") else "</style"
    if closing in text.lower():  # pragma: no cover - a packaging mistake
        raise RuntimeError(f"{name} must not contain {closing!r}")
    return text


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _script_json(value: Any) -> str:
    """``value`` as JSON that cannot end the ``<script>`` element holding it:
    ``<``, ``>`` and ``&`` only occur inside JSON strings, where their
    ``\\u`` escapes mean the same; non-ASCII is escaped too."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _clean(text: str) -> str:
    # Lone surrogates (undecodable file names) cannot be written as UTF-8.
    return text.encode("utf-8", "replace").decode("utf-8")


_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="generator" content="leakguard">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{css}</style>
</head>
<body>
<div class="lg-fg">
<header class="lg-head">
<h1 id="lg-title"></h1>
<span class="lg-kind" id="lg-kind"></span>
<span class="lg-totals" id="lg-totals"></span>
</header>
<div class="lg-bar" id="lg-bar">
<input id="lg-search" type="search" autocomplete="off" spellcheck="false" \
placeholder="Search function, file or line" aria-label="Search frames">
<span class="lg-match" id="lg-match" aria-live="polite"></span>
<span class="lg-modes" id="lg-modes" hidden>Width:
<button type="button" data-mode="grown" id="lg-mode-grown">growth</button>
<button type="button" data-mode="size" id="lg-mode-size">live bytes</button>
</span>
<button type="button" id="lg-reset" disabled>Reset zoom</button>
</div>
<nav class="lg-crumbs" id="lg-crumbs" aria-label="Zoomed frame and its callers"></nav>
<div class="lg-legend" id="lg-legend"></div>
<div class="lg-graph" id="lg-graph"><canvas id="lg-canvas"></canvas></div>
<p class="lg-empty" id="lg-empty" hidden></p>
<p class="lg-note" id="lg-note"></p>
<div class="lg-tip" id="lg-tip" role="tooltip" hidden></div>
<noscript><p class="lg-empty">This flame graph needs JavaScript.</p></noscript>
</div>
<script type="application/json" id="lg-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""


def _page(tree: Dict[str, Any]) -> str:
    tree = dict(tree, title=_clean(tree["title"]))
    js = _asset("flamegraph.js")
    css = _asset("flamegraph.css")
    csp = (
        f"default-src 'none'; script-src {_csp_hash(js)}; style-src {_csp_hash(css)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    heading = "leakguard flame graph"
    if tree["title"]:
        heading = f"{tree['title']} \u2014 {heading}"
    return _PAGE.format(
        csp=csp,
        title=html.escape(heading),
        css=css,
        data=_script_json(tree),
        js=js,
    )

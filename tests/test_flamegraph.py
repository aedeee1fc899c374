"""The interactive flame graph: the call tree it embeds, and the page as a
person sees it in a real browser (headless Chromium, see tests/browser.py).

Browser tests skip when no Chromium is installed. They read the page the way
a person would: screenshots (the colours in a box, whether a box spans the
width), the tooltip's text, the header, with ``window.flamegraph`` only to
find where a frame's box is and what the page thinks is zoomed.
"""

from __future__ import annotations

import html
import inspect
import json
import pathlib
import re
import sys

import pytest
from browser import Image, changed_pixels, decode_png

import leakguard
from leakguard import _export
from leakguard._export import flamegraph
from leakguard._model import _format_size
from leakguard._profile import profile_of

HERE = __file__[:-1] if __file__.endswith(".pyc") else __file__

# -- workloads: allocations from known functions ------------------------------


def fg_alloc_large():
    out = []
    for _ in range(2000):
        out.append(bytearray(1000))
    return out


def fg_alloc_small():
    out = []
    for _ in range(200):
        out.append(bytearray(1000))
    return out


def fg_workload():
    return fg_alloc_large(), fg_alloc_small()


def fg_grow():
    out = []
    for _ in range(1500):
        out.append(bytearray(1000))
    return out


def fg_shrink():
    out = []
    for _ in range(1000):
        out.append(bytearray(1000))
    return out


_LEAKED = []


def fg_leaky():
    for _ in range(50):
        _LEAKED.append(bytearray(200))


def line_of(func, text):
    """The line number of the first line of ``func`` containing ``text``."""
    lines, start = inspect.getsourcelines(func)
    for offset, line in enumerate(lines):
        if text in line:
            return start + offset
    raise AssertionError(f"{text!r} not in {func.__name__}")


def traced(work, nframe=8):
    """``(snapshot, result)``: what ``work()`` left alive, traced."""
    leakguard.start(nframe)
    try:
        result = work()
        snapshot = leakguard.take_snapshot()
    finally:
        leakguard.stop()
    return snapshot, result


@pytest.fixture(scope="module")
def workload_snapshot():
    snapshot, kept = traced(fg_workload)
    yield snapshot
    del kept


# -- the page as a browser shows it -------------------------------------------


def show(page, tmp_path, graph, name="graph.html"):
    """Save ``graph``, load it in ``page``; fails on console errors."""
    path = tmp_path / name
    graph.save(path)
    page.goto(path.as_uri())
    page.next_frame()
    assert page.errors == []
    assert page.dialogs == []
    return path


def box(page, name):
    """The outermost drawn box of the frame ``name`` (function, file or label)."""
    found = page.evaluate(f"flamegraph.find({json.dumps(name)})")
    assert found, f"no box drawn for {name!r}"
    return min(found, key=lambda b: b["y"])


def canvas_rect(page):
    return page.evaluate(
        "(r => ({x: r.left, y: r.top, width: r.width, height: r.height}))"
        "(document.getElementById('lg-canvas').getBoundingClientRect())"
    )


def screenshot(page) -> Image:
    return decode_png(page.screenshot())


def fill_point(b):
    """A point of a box's fill that its label does not cover: its second row."""
    return int(b["x"] + b["width"] / 2), int(b["y"] + 1)


def centre(b):
    return b["x"] + b["width"] / 2, b["y"] + b["height"] / 2


def text_of(page, element_id):
    return page.evaluate(f"document.getElementById({json.dumps(element_id)}).innerText")


def is_red(rgba):
    r, g, b, _ = rgba
    return r > 170 and r - g > 45 and r - b > 45


def is_blue(rgba):
    r, g, b, _ = rgba
    return b > 170 and b - r > 45


# -- the call tree (no browser) -------------------------------------------------

RAW = [
    # (domain, size, traceback most recent first, total_nframe)
    (0, 600, (("lib.py", 20), ("app.py", 5), ("main.py", 1)), 3),
    (0, 300, (("lib.py", 30), ("app.py", 5), ("main.py", 1)), 3),
    (0, 100, (("app.py", 5), ("main.py", 1)), 2),
    (0, 50, (("util.py", 7), ("main.py", 2)), 2),
]


def tree_of(raw, limit=5, **kw):
    return flamegraph.call_tree(profile_of(leakguard.Snapshot(raw, limit)), **kw)


def frames_of(tree):
    """node index -> (file, line) or None, and each node's children."""
    nodes = tree["nodes"]
    where = []
    for at in nodes["location"]:
        if at < 0:
            where.append(None)
        else:
            file_index, line = tree["locations"][at][:2]
            where.append((tree["files"][file_index], line))
    kids = {i: [] for i in range(len(nodes["parent"]))}
    for i, up in enumerate(nodes["parent"][1:], 1):
        kids[up].append(i)
    return where, kids


def test_tree_sums_bytes_and_blocks_along_call_paths():
    tree = tree_of(RAW)
    nodes = tree["nodes"]
    where, kids = frames_of(tree)
    by_path = {}
    for i in range(len(where)):
        path, at = [], i
        while at > 0:
            path.append(where[at])
            at = nodes["parent"][at]
        by_path[tuple(reversed(path))] = (nodes["size"][i], nodes["count"][i])
    assert by_path == {
        (): (1050, 4),
        (("main.py", 1),): (1000, 3),
        (("main.py", 1), ("app.py", 5)): (1000, 3),
        (("main.py", 1), ("app.py", 5), ("lib.py", 20)): (600, 1),
        (("main.py", 1), ("app.py", 5), ("lib.py", 30)): (300, 1),
        (("main.py", 2),): (50, 1),
        (("main.py", 2), ("util.py", 7)): (50, 1),
    }
    assert tree["totals"]["frames"] == 6 and tree["totals"]["folded"] == 0
    assert nodes["folded"] == []
    assert "size_diff" not in nodes  # a snapshot has no change columns
    for i, up in enumerate(nodes["parent"][1:], 1):
        assert up < i


def test_diff_tree_carries_change_and_growth():
    old = leakguard.Snapshot(RAW, 5)
    new_raw = [
        (0, 900, RAW[0][2], 3),  # grew by 300
        (0, 100, RAW[1][2], 3),  # shrank by 200
        RAW[2],
        RAW[3],
    ]
    new = leakguard.Snapshot(new_raw, 5)
    tree = flamegraph.call_tree(profile_of(new, old))
    nodes = tree["nodes"]
    where, _ = frames_of(tree)
    lib20 = where.index(("lib.py", 20))
    lib30 = where.index(("lib.py", 30))
    app = where.index(("app.py", 5))
    assert (nodes["size_diff"][lib20], nodes["grown"][lib20]) == (300, 300)
    assert (nodes["size_diff"][lib30], nodes["grown"][lib30]) == (-200, 0)
    # The parent's change is net; its growth counts only what grew.
    assert (nodes["size_diff"][app], nodes["grown"][app]) == (100, 300)
    assert tree["totals"]["grown"] == 300 and tree["totals"]["size_diff"] == 100


def many_tracebacks(n=50_000):
    """``n`` distinct three-frame tracebacks: 40 big sites, the rest small."""
    raw = []
    for k in range(n):
        size = 400_000 if k < 40 else 100 + (k * 7919) % 900
        stack = ((f"pkg/leaf{k}.py", k % 97 + 1), (f"pkg/mid{k % 300}.py", 3), ("main.py", 1))
        raw.append((0, size, stack, 3))
    return raw


def test_many_tracebacks_are_folded_within_the_budget():
    raw = many_tracebacks()
    for max_nodes in (2, 3, 10, 500, 5000):
        tree = tree_of(raw, max_nodes=max_nodes)
        nodes = tree["nodes"]
        count = len(nodes["parent"])
        assert count <= max_nodes
        # Nothing is lost: every node's bytes and blocks are its children's
        # (these stacks all end at the same depth), folded ones included.
        sums = {}
        for i, up in enumerate(nodes["parent"][1:], 1):
            size, blocks = sums.get(up, (0, 0))
            sums[up] = (size + nodes["size"][i], blocks + nodes["count"][i])
        for up, (size, blocks) in sums.items():
            assert (nodes["size"][up], nodes["count"][up]) == (size, blocks)
        assert nodes["size"][0] == sum(t[1] for t in raw)
        assert nodes["count"][0] == len(raw)
        folded = dict(nodes["folded"])
        for i, n in folded.items():
            assert nodes["location"][i] == -1 and n >= 1
        assert tree["totals"]["frames"] == 50_000 + 300 + 1
        shown = count - 1 - len(folded)
        assert tree["totals"]["folded"] == tree["totals"]["frames"] - shown
    # At the default budget the big sites are drawn, the small ones folded.
    tree = tree_of(raw)
    where, _ = frames_of(tree)
    assert {(f"pkg/leaf{k}.py", k % 97 + 1) for k in range(40)} <= set(where)
    assert len(tree["nodes"]["parent"]) <= flamegraph.DEFAULT_MAX_NODES
    assert tree["nodes"]["folded"]


def test_frames_under_min_share_are_folded():
    raw = [(0, 10_000, (("big.py", 1),), 1)] + [(0, 1, ((f"tiny{k}.py", 1),), 1) for k in range(30)]
    tree = tree_of(raw, min_share=0.001)
    nodes = tree["nodes"]
    where, kids = frames_of(tree)
    assert sorted(map(str, (where[i] for i in kids[0]))) == ["('big.py', 1)", "None"]
    ((fold, n),) = nodes["folded"]
    assert n == 30 and nodes["size"][fold] == 30 and nodes["count"][fold] == 30
    # With no threshold, all of them are drawn.
    assert len(tree_of(raw, min_share=0)["nodes"]["parent"]) == 32


def test_bad_limits_are_refused():
    snap = leakguard.Snapshot(RAW, 5)
    with pytest.raises(leakguard.UsageError):
        leakguard.flame_graph(snap, max_nodes=1)
    with pytest.raises(leakguard.UsageTypeError):
        leakguard.flame_graph(snap, max_nodes=10.0)
    with pytest.raises(leakguard.UsageError):
        leakguard.flame_graph(snap, min_share=1)
    with pytest.raises(leakguard.UsageTypeError):
        leakguard.flame_graph(snap, min_share="0.1")
    with pytest.raises(leakguard.UsageTypeError):
        leakguard.flame_graph(snap, title=3)


def test_page_is_self_contained(workload_snapshot):
    graph = leakguard.flame_graph(workload_snapshot)
    page = graph.html
    assert page.startswith("<!DOCTYPE html>")
    assert "http:" not in page and "https:" not in page
    assert "<script src" not in page.lower() and "stylesheet" not in page
    assert re.findall(r"(?:src|href)=\"([^\"]*)\"", page) == ["data:,"]
    # The script and styles are the package's files, inlined.
    folder = pathlib.Path(flamegraph.__file__).parent
    assert f"<script>{(folder / 'flamegraph.js').read_text('utf-8')}</script>" in page
    assert f"<style>{(folder / 'flamegraph.css').read_text('utf-8')}</style>" in page
    assert "default-src 'none'" in page
    # The data parses back to the tree.
    data = re.search(r'<script type="application/json" id="lg-data">(.*?)</script>', page, re.S)
    tree = json.loads(data.group(1))
    assert tree["kind"] == "snapshot"
    assert tree["totals"]["size"] == sum(s.size for s in workload_snapshot.statistics("traceback"))


def test_export_and_public_names(workload_snapshot, tmp_path):
    assert leakguard.flame_graph is flamegraph.flame_graph
    assert leakguard.FlameGraph is flamegraph.FlameGraph
    target = tmp_path / "snap.html"
    leakguard.export(workload_snapshot, target, format="html")
    written = target.read_bytes()
    assert written == _export.render(workload_snapshot, "html")
    assert written == leakguard.flame_graph(workload_snapshot).html.encode("utf-8")
    saved = tmp_path / "saved.html"
    leakguard.flame_graph(workload_snapshot).save(saved)
    assert saved.read_bytes() == written
    graph = leakguard.flame_graph(workload_snapshot, title="nightly")
    assert graph.title == "nightly" and graph.kind == "snapshot"
    assert "<title>nightly \u2014 leakguard flame graph</title>" in graph.html
    assert repr(graph).startswith("<FlameGraph kind='snapshot' title='nightly'")


def test_repr_html_is_an_escaped_sandboxed_iframe(workload_snapshot):
    graph = leakguard.flame_graph(workload_snapshot)
    markup = graph._repr_html_()
    found = re.fullmatch(
        r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts" [^<>]*></iframe>', markup
    )
    assert found, markup[:200]
    assert html.unescape(found.group(1)) == graph.html
    assert "<" not in found.group(1)


def test_ipython_displays_the_frame(workload_snapshot):
    formatters = pytest.importorskip("IPython.core.formatters")
    graph = leakguard.flame_graph(workload_snapshot)
    data, _ = formatters.DisplayFormatter().format(graph)
    assert data["text/html"] == graph._repr_html_()
    assert data["text/plain"] == repr(graph)


HOSTILE = "</script><script>alert(1)</script>"
HOSTILE_TITLE = "<img src=x onerror=alert(2)>&amp;"


@pytest.fixture
def hostile_graph(tmp_path):
    if sys.platform == "win32":
        pytest.skip("file names cannot hold '<' or '>' on Windows")
    # A real file whose name and source line try to break out of the page.
    folder = tmp_path / "<" / "script><script>alert(3)<"
    folder.mkdir(parents=True)
    source = folder / "script><!--.py"
    source.write_text('x = "</script><!--<script>alert(4)</script>"\n', encoding="utf-8")
    raw = [
        (0, 50_000, ((HOSTILE, 3), ("<!--x.py", 1)), 2),
        (0, 30_000, ((str(source), 1),), 1),
        (0, 20_000, (("ok\u2028\u2029&amp;.py", 9),), 1),
    ]
    snap = leakguard.Snapshot(raw, 5)
    return leakguard.flame_graph(snap, title=HOSTILE_TITLE), str(source)


def test_hostile_names_stay_data(hostile_graph):
    graph, source = hostile_graph
    page = graph.html.lower()
    assert page.count("</script") == 2  # the page's own two script elements
    assert page.count("<script") == 2
    assert "<!--" not in page and "<img" not in page


# -- in the browser ------------------------------------------------------------


def test_page_loads_and_draws(page, tmp_path, workload_snapshot):
    path = show(page, tmp_path, leakguard.flame_graph(workload_snapshot))
    assert page.requests == [path.as_uri()]  # nothing but the page itself
    assert page.exceptions == [] and page.errors == []
    canvas = canvas_rect(page)
    assert canvas["width"] > 900 and canvas["height"] > 18
    image = screenshot(page)
    # The canvas is painted: most of its area is boxes, not background.
    x, y, w, h = (int(canvas[k]) for k in ("x", "y", "width", "height"))
    colours = image.colours((x, y, w, h))
    background = colours.get((255, 255, 255, 255), 0)
    assert background < 0.5 * w * h
    large = box(page, "fg_alloc_large")
    assert large["width"] > 0.6 * canvas["width"]
    fill = image.pixel(*fill_point(large))
    assert fill != (255, 255, 255, 255)
    # Its label is drawn: dark text pixels inside the box.
    label = image.colours((int(large["x"]), int(large["y"]), 200, int(large["height"])))
    assert sum(n for c, n in label.items() if sum(c[:3]) < 200) > 20
    header = text_of(page, "lg-totals")
    total = sum(s.size for s in workload_snapshot.statistics("traceback"))
    assert header.startswith(_format_size(total, False) + " in ")
    assert page.evaluate("document.title") == "live memory \u2014 leakguard flame graph"


def test_hover_shows_a_tooltip(page, tmp_path, workload_snapshot):
    show(page, tmp_path, leakguard.flame_graph(workload_snapshot))
    large = box(page, "fg_alloc_large")
    info = page.evaluate(f"flamegraph.info({large['node']})")
    assert info["size"] >= 2000 * 1000 and info["count"] >= 2000
    before = screenshot(page)
    x, y = centre(large)
    page.move(x, y)
    after = screenshot(page)
    assert page.evaluate("document.getElementById('lg-tip').hidden") is False
    tip = text_of(page, "lg-tip")
    line = line_of(fg_alloc_large, "bytearray(1000)")
    assert tip.splitlines()[:3] == [
        "fg_alloc_large",
        f"{HERE}:{line}",
        "out.append(bytearray(1000))",
    ]
    assert f"{_format_size(info['size'], False)} ({info['size']:,} B)" in tip
    assert f"in {info['count']:,} blocks" in tip
    total = page.evaluate("flamegraph.info(0).size")
    assert f"{100 * info['size'] / total:.1f}% of total" in tip
    assert "% of parent" in tip
    # A person sees it: the area below and right of the pointer changed.
    assert changed_pixels(before, after, (int(x) + 10, int(y) + 10, 250, 80)) > 1000
    page.move(5, 5)
    assert page.evaluate("document.getElementById('lg-tip').hidden") is True


def test_click_zooms_and_escape_resets(page, tmp_path, workload_snapshot):
    show(page, tmp_path, leakguard.flame_graph(workload_snapshot))
    canvas = canvas_rect(page)
    left, right = int(canvas["x"]) + 2, int(canvas["x"] + canvas["width"]) - 3
    small = box(page, "fg_alloc_small")
    assert small["width"] < 0.25 * canvas["width"]  # narrow before the zoom
    before = screenshot(page)
    colour = before.pixel(*fill_point(small))
    row = int(small["y"]) + 1
    middle = int(canvas["x"] + canvas["width"] / 2)
    assert before.pixel(left, row) != colour and before.pixel(middle, row) != colour

    page.click(*centre(small))
    assert page.evaluate("flamegraph.zoomed().function") == "fg_alloc_small"
    assert page.evaluate("flamegraph.lastClickMs") < 1000
    zoomed = box(page, "fg_alloc_small")
    assert abs(zoomed["x"] - canvas["x"]) < 1
    assert abs(zoomed["width"] - canvas["width"]) < 2
    after = screenshot(page)
    # What a person sees: the frame's colour now spans the whole row.
    row = int(zoomed["y"]) + 1
    assert after.pixel(left, row) == colour and after.pixel(middle, row) == colour
    assert after.pixel(right, row) == colour
    x, y, w, h = (int(canvas[k]) for k in ("x", "y", "width", "height"))
    assert changed_pixels(before, after, (x, y, w, h)) > 0.2 * w * (h - zoomed["y"] + y)
    assert "fg_alloc_small" in text_of(page, "lg-crumbs")
    assert page.evaluate("document.getElementById('lg-reset').disabled") is False

    page.press("Escape")
    assert page.evaluate("flamegraph.zoomed().node") == 0
    # Back to exactly the picture before the zoom.
    assert changed_pixels(before, screenshot(page)) == 0

    # "Reset zoom" does the same.
    page.click(*centre(box(page, "fg_alloc_small")))
    assert page.evaluate("flamegraph.zoomed().node") != 0
    reset = page.evaluate(
        "(r => [r.left + r.width / 2, r.top + r.height / 2])"
        "(document.getElementById('lg-reset').getBoundingClientRect())"
    )
    page.click(*reset)
    assert page.evaluate("flamegraph.zoomed().node") == 0
    assert changed_pixels(before, screenshot(page)) == 0


def test_search_highlights_and_reports_the_share(page, tmp_path, workload_snapshot):
    show(page, tmp_path, leakguard.flame_graph(workload_snapshot))
    small, large = box(page, "fg_alloc_small"), box(page, "fg_alloc_large")
    before = screenshot(page)
    search = page.evaluate(
        "(r => [r.left + 20, r.top + r.height / 2])"
        "(document.getElementById('lg-search').getBoundingClientRect())"
    )
    page.click(*search)
    page.type("fg_alloc_sm")
    after = screenshot(page)
    info = page.evaluate(f"flamegraph.info({small['node']})")
    total = page.evaluate("flamegraph.info(0).size")
    assert text_of(page, "lg-match") == (
        f"1 frame matches: {_format_size(info['size'], False)}, "
        f"{100 * info['size'] / total:.1f}% of the total"
    )
    r, g, b, _ = after.pixel(*fill_point(small))
    assert r > 150 and b > 180 and g < 100  # the highlight colour
    # Frames that do not match fade towards the background.
    faded, original = after.pixel(*fill_point(large)), before.pixel(*fill_point(large))
    assert faded != original and all(f >= o for f, o in zip(faded[:3], original[:3]))

    # By file and line.
    line = line_of(fg_alloc_large, "bytearray(1000)")
    page.evaluate("document.getElementById('lg-search').select()")
    page.type(f"test_flamegraph.py:{line}")
    assert text_of(page, "lg-match").startswith("1 frame matches: ")
    assert page.evaluate("flamegraph.match().frames") == 1
    page.evaluate("document.getElementById('lg-search').select()")
    page.type("no such frame anywhere")
    assert text_of(page, "lg-match") == "no frame matches"
    page.evaluate("document.getElementById('lg-search').select()")
    page.press("Backspace")
    assert text_of(page, "lg-match") == ""
    canvas = canvas_rect(page)
    graph = tuple(int(canvas[k]) for k in ("x", "y", "width", "height"))
    assert changed_pixels(before, screenshot(page), graph) == 0


def test_diff_colours_growth(page, tmp_path):
    shrinking = fg_shrink()  # allocated before tracing: not traced
    leakguard.start(8)
    try:
        shrinking = fg_shrink()
        base = leakguard.take_snapshot()
        grown = fg_grow()
        del shrinking[:500]
        new = leakguard.take_snapshot()
    finally:
        leakguard.stop()
    show(page, tmp_path, leakguard.flame_graph(new, base))
    assert text_of(page, "lg-kind").lower() == "diff"
    assert page.evaluate("flamegraph.mode()") == "grown"
    grow = box(page, "fg_grow")
    image = screenshot(page)
    assert is_red(image.pixel(*fill_point(grow)))
    info = page.evaluate(f"flamegraph.info({grow['node']})")
    assert info["size_diff"] >= 1500 * 1000 and info["count_diff"] >= 1500
    page.move(*centre(grow))
    tip = text_of(page, "lg-tip")
    assert (
        f"change: {_format_size(info['size_diff'], True)} (+{info['size_diff']:,} B), "
        f"+{info['count_diff']:,} blocks"
    ) in tip
    # What shrank has no growth to draw; by live bytes it is drawn, in blue.
    assert page.evaluate("flamegraph.find('fg_shrink')") == []
    button = page.evaluate(
        "(r => [r.left + r.width / 2, r.top + r.height / 2])"
        "(document.getElementById('lg-mode-size').getBoundingClientRect())"
    )
    page.click(*button)
    assert page.evaluate("flamegraph.mode()") == "size"
    image = screenshot(page)
    assert is_blue(image.pixel(*fill_point(box(page, "fg_shrink"))))
    assert is_red(image.pixel(*fill_point(box(page, "fg_grow"))))
    del grown


def test_leak_report_renders(page, tmp_path):
    report = leakguard.hunt(fg_leaky, rounds=5)
    assert report.leaks
    show(page, tmp_path, leakguard.flame_graph(report))
    assert text_of(page, "lg-kind").lower() == "leak report"
    leaky = box(page, "fg_leaky")
    assert leaky["width"] > 0.5 * canvas_rect(page)["width"]
    assert is_red(screenshot(page).pixel(*fill_point(leaky)))
    page.move(*centre(leaky))
    assert "change: +" in text_of(page, "lg-tip")


def test_hostile_names_are_shown_literally(page, tmp_path, hostile_graph):
    graph, source = hostile_graph
    show(page, tmp_path, graph)
    assert page.dialogs == [] and page.errors == []
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert text_of(page, "lg-title") == HOSTILE_TITLE
    assert page.evaluate("document.title") == HOSTILE_TITLE + " \u2014 leakguard flame graph"
    page.move(*centre(box(page, HOSTILE)))
    tip = text_of(page, "lg-tip").splitlines()
    assert tip[:2] == ["script>:3", HOSTILE + ":3"]
    page.move(*centre(box(page, source)))
    tip = text_of(page, "lg-tip").splitlines()
    assert tip[:3] == [
        "<module>",
        source + ":1",
        'x = "</script><!--<script>alert(4)</script>"',
    ]
    assert page.dialogs == [] and page.errors == []


def test_empty_snapshot_says_there_is_nothing(page, tmp_path):
    show(page, tmp_path, leakguard.flame_graph(leakguard.Snapshot([], 1)))
    assert text_of(page, "lg-empty") == "Nothing to show: this snapshot holds no traced memory."
    assert page.evaluate("document.getElementById('lg-graph').hidden") is True
    assert text_of(page, "lg-totals") == "0 B in 0 blocks, 0 call stacks"
    # Nothing but the header and the message: no boxes anywhere.
    image = screenshot(page)
    warm = [c for c in image.colours() if c[0] > 200 and c[0] - c[2] > 60]
    assert warm == []


def test_many_tracebacks_stay_responsive(page, tmp_path):
    snap = leakguard.Snapshot(many_tracebacks(), 5)
    # No share threshold: the budget alone bounds the page.
    graph = leakguard.flame_graph(snap, min_share=0)
    assert graph.frames == 50_301 and graph.nodes == flamegraph.DEFAULT_MAX_NODES
    assert len(graph.html) < 1_000_000
    show(page, tmp_path, graph)
    assert page.evaluate("flamegraph.nodeCount") == graph.nodes
    tree = flamegraph.call_tree(profile_of(snap), min_share=0)
    shown = graph.nodes - 1 - len(tree["nodes"]["folded"])
    assert text_of(page, "lg-note") == (
        f"Showing {shown:,} of 50,301 frames; the others (beyond 5,000 boxes) "
        "are folded into \u201c(n smaller)\u201d boxes."
    )
    assert page.evaluate("flamegraph.lastRenderMs") < 1000
    target = box(page, "main.py:1")
    page.click(*centre(target))
    assert page.evaluate("flamegraph.zoomed().node") == target["node"]
    assert page.evaluate("flamegraph.lastClickMs") < 1000
    # The zoomed frame's folded callees are drawn as one box.
    (fold, n) = next(f for f in tree["nodes"]["folded"] if tree["nodes"]["parent"][f[0]] == 2)
    assert box(page, f"({n:,} smaller)")["node"] == fold


def test_repr_html_draws_in_a_frame(page, tmp_path, workload_snapshot):
    graph = leakguard.flame_graph(workload_snapshot)
    standalone = tmp_path / "alone.html"
    graph.save(standalone)
    page.goto(standalone.as_uri())
    large = box(page, "fg_alloc_large")
    colour = screenshot(page).pixel(*fill_point(large))

    notebook = tmp_path / "notebook.html"
    notebook.write_text(
        "<!DOCTYPE html><html><body><h1>Out [1]:</h1>" + graph._repr_html_() + "</body></html>",
        encoding="utf-8",
    )
    page.goto(notebook.as_uri())
    (frame,) = page.wait_for_frames(1)
    assert frame.wait_for("window.flamegraph && flamegraph.drawnCount()") >= 5
    page.next_frame()
    assert page.errors == [] and page.dialogs == []
    rect = page.evaluate(
        "(r => [r.left, r.top, r.width, r.height])"
        "(document.querySelector('iframe').getBoundingClientRect())"
    )
    assert rect[3] == 480 and rect[2] > 900
    # The frame shows the graph: the large function's colour fills a wide row.
    inside = screenshot(page).colours(tuple(int(v) for v in rect))
    assert inside.get(colour, 0) > 0.5 * rect[2] * 14


def test_dark_page(page, tmp_path, workload_snapshot):
    page.emulate_media(prefers_color_scheme="dark")
    show(page, tmp_path, leakguard.flame_graph(workload_snapshot))
    image = screenshot(page)
    r, g, b, _ = image.pixel(3, 3)
    assert r + g + b < 150  # a dark background
    large = box(page, "fg_alloc_large")
    assert image.pixel(*fill_point(large))[0] > 200  # boxes still bright
    page.emulate_media(prefers_color_scheme="light")


def test_high_density_display(page, tmp_path, workload_snapshot):
    path = tmp_path / "graph.html"
    leakguard.flame_graph(workload_snapshot).save(path)
    page.goto(path.as_uri())
    large = box(page, "fg_alloc_large")
    colour = screenshot(page).pixel(*fill_point(large))
    page.set_viewport(1000, 700, 2)
    page.goto(path.as_uri())
    assert page.evaluate(
        "(c => c.width === 2 * c.clientWidth && c.height === 2 * c.clientHeight)"
        "(document.getElementById('lg-canvas'))"
    )
    image = screenshot(page)
    assert image.width == 2000
    x, y = fill_point(box(page, "fg_alloc_large"))
    assert image.pixel(2 * x, 2 * y + 1) == colour


def test_sizes_read_as_in_python(page, tmp_path):
    show(page, tmp_path, leakguard.flame_graph(leakguard.Snapshot([], 1)))
    values = [0, 1, 999, 10239, 10240, 10291, 12800, 102399, 102400, 153_600, 1536 * 1024]
    # Ties round to even, as Python's "%.1f" and "%.0f" do: 12.25 KiB, 150.5 KiB.
    values += [12544, 12_595, 154_112, 155_136]
    values += [5 * 1024**3 + 123, 7 * 1024**4, 250 * 1024**5]
    values += [-v for v in values]
    for sign in (False, True):
        got = page.evaluate(
            f"{json.dumps(values)}.map(v => flamegraph.formatSize(v, {str(sign).lower()}))"
        )
        assert got == [_format_size(v, sign) for v in values]

"""Notebooks: a real notebook executed in a real Jupyter kernel (ipykernel,
run by nbclient), with assertions on the rich outputs its cells produce; and
the HTML tables and DataFrames of leakguard's objects in this interpreter.

Where ipykernel/nbclient or pandas are not installed (the optional
integrations: requirements-extras.txt), those tests skip and the
"not installed" path is tested instead.
"""

from __future__ import annotations

import html.parser
import importlib.util
import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

import pytest

import leakguard

HAVE_KERNEL = all(
    importlib.util.find_spec(m) is not None for m in ("ipykernel", "nbclient", "nbformat")
)
HAVE_PANDAS = importlib.util.find_spec("pandas") is not None


class _Text(html.parser.HTMLParser):
    """The text a person reads in an HTML fragment (no tags, no styles)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: List[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("style", "script"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def text_of(fragment: str) -> str:
    parser = _Text()
    parser.feed(fragment)
    return " ".join(" ".join(parser.parts).split())


# -- the real kernel -----------------------------------------------------------

CELLS = [
    "%load_ext leakguard",
    "keep = []",
    # 1: a tracked cell; its last expression is its value
    "%%leakguard -l 5\nkeep.extend(bytearray(1000) for _ in range(200))\nlen(keep)",
    # 2: a hunt over a leaking cell
    "%%leakguard --hunt 3\nkeep.append(bytearray(5000))",
    # 3: a hunt over pure churn
    "%%leakguard --hunt 3\nchurn = [bytes(100) for _ in range(100)]",
    # 4-6: quick before/after snapshots
    "%leakguard_snapshot",
    "grown = [str(i) * 20 for i in range(2000)]",
    "%leakguard_snapshot -l 3",
    # 7: objects shown as tables
    "import leakguard\nsnap = leakguard.take_snapshot()\nsnap",
    "snap.statistics('lineno')[:4]",
    "later = [bytearray(300) for _ in range(50)]\n"
    "leakguard.take_snapshot().compare_to(snap, 'lineno')[:8]",
    "with leakguard.track() as t:\n    kept = [bytearray(2000) for _ in range(30)]\nt",
    "def work():\n    keep.append(bytearray(700))\nleakguard.hunt(work, rounds=3)",
    "snap.statistics('lineno').to_dataframe().columns.tolist()",
    "%leakguard_snapshot --stop",
    # 15: the flame graph inline
    "leakguard.flame_graph(snap)",
    # 16: a tracked cell with its flame graph
    "%%leakguard --flame\nflamed = [bytearray(3000) for _ in range(20)]",
]


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> List[Dict[str, Any]]:
    """The outputs of each cell of CELLS, run top to bottom in a fresh kernel."""
    if not HAVE_KERNEL:
        pytest.skip("ipykernel, nbclient and nbformat are not installed")
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    workdir = tmp_path_factory.mktemp("nb")
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    # The kernel must import this leakguard: the kernel spec runs this interpreter.
    client.execute()
    nbformat.write(nb, str(workdir / "executed.ipynb"))
    return [cell.outputs for cell in nb.cells]


def _rich(outputs: List[Dict[str, Any]], mime: str) -> List[str]:
    return [
        o["data"][mime]
        for o in outputs
        if o["output_type"] in ("display_data", "execute_result") and mime in o.get("data", {})
    ]


def _no_errors(outputs: List[Dict[str, Any]]) -> None:
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, "\n".join("\n".join(e["traceback"]) for e in errors)


def test_every_cell_runs(notebook: List[Dict[str, Any]]) -> None:
    for outputs in notebook:
        _no_errors(outputs)


def test_tracked_cell_shows_peak_and_what_it_left(notebook: List[Dict[str, Any]]) -> None:
    outputs = notebook[2]
    (page,) = _rich(outputs, "text/html")
    text = text_of(page)
    assert "peak" in text and "left alive" in text
    # 200 bytearrays of 1000 bytes (two blocks each: the object and its
    # buffer) and the list's growth: about 200 KiB left alive.
    assert "left alive 20" in text and "KiB in 40" in text
    assert "ipykernel" not in page  # the kernel's frames are not shown
    # the cell's line, with its source, is the top row
    rows = text.split("Left alive", 1)[1]
    assert "<leakguard cell" in rows
    assert "keep.extend(bytearray(1000) for _ in range(200))" in rows
    assert 'class="lg-num lg-grow"' in page  # growth coloured
    # the value of the last expression is the cell's result
    (result,) = [o for o in outputs if o["output_type"] == "execute_result"]
    assert result["data"]["text/plain"] == "200"


def test_hunt_cell_names_the_leaking_line_and_holder(notebook: List[Dict[str, Any]]) -> None:
    (page,) = _rich(notebook[3], "text/html")
    text = text_of(page)
    assert "LEAKING" in text
    assert "keep.append(bytearray(5000))" in text
    assert "__main__.keep (list" in text  # the holder: the notebook's namespace
    (plain,) = _rich(notebook[3], "text/plain")
    assert "1 leaking site" in plain


def test_hunt_cell_passes_churn(notebook: List[Dict[str, Any]]) -> None:
    (page,) = _rich(notebook[4], "text/html")
    assert "no leaks" in text_of(page)
    assert "LEAKING" not in text_of(page)


def test_snapshot_magic_diffs_before_and_after(notebook: List[Dict[str, Any]]) -> None:
    (baseline,) = _rich(notebook[5], "text/plain")
    assert "baseline snapshot taken" in baseline
    (page,) = _rich(notebook[7], "text/html")
    text = text_of(page)
    assert "Since snapshot 1" in text
    top = text.split("allocated at", 1)[1]
    # the cell's line leads, and the kernel's own bookkeeping is left out
    assert "grown = [str(i) * 20 for i in range(2000)]" in top.split(" 2 ", 1)[0]
    assert "IPython" not in page and "ipykernel" not in page.replace("ipykernel_", "")


def test_objects_render_as_tables(notebook: List[Dict[str, Any]]) -> None:
    (snap,) = _rich(notebook[8], "text/html")
    assert "leakguard Snapshot" in text_of(snap)
    assert "traceback limit" in text_of(snap)
    (stats,) = _rich(notebook[9], "text/html")
    assert text_of(stats).startswith("Statistics 4 rows")
    (diff,) = _rich(notebook[10], "text/html")
    assert "later = [bytearray(300) for _ in range(50)]" in text_of(diff)
    (tracked,) = _rich(notebook[11], "text/html")
    assert "kept = [bytearray(2000) for _ in range(30)]" in text_of(tracked)
    (report,) = _rich(notebook[12], "text/html")
    assert "keep.append(bytearray(700))" in text_of(report)
    assert "LEAKING" in text_of(report)


@pytest.mark.skipif(not HAVE_PANDAS, reason="pandas is not installed")
def test_dataframe_in_the_kernel(notebook: List[Dict[str, Any]]) -> None:
    (plain,) = _rich(notebook[13], "text/plain")
    assert plain == "['filename', 'lineno', 'size', 'count', 'average', 'traceback']"


# -- HTML and DataFrames in this interpreter -----------------------------------


def _alloc_sites() -> Any:
    leakguard.start(10)
    try:
        before = leakguard.take_snapshot()
        kept = [bytearray(512) for _ in range(64)]  # the growing line
        after = leakguard.take_snapshot()
    finally:
        leakguard.stop()
    return before, after, kept


def test_statistics_and_diff_lists_keep_their_type_when_sliced() -> None:
    before, after, _ = _alloc_sites()
    stats = after.statistics("lineno")
    assert isinstance(stats, list) and type(stats[:3]) is type(stats)
    assert stats[:3] == list(stats)[:3]
    diffs = after.compare_to(before, "lineno")
    assert isinstance(diffs, list) and type(diffs[1:]) is type(diffs)
    assert "kept = [bytearray(512) for _ in range(64)]" in text_of(diffs[:1]._repr_html_())


def test_html_escapes_what_it_shows() -> None:
    hostile = "<script>alert(1)</script>.py"
    snap = leakguard.Snapshot([(0, 100, ((hostile, 3),), 1)], 1)
    page = snap._repr_html_()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.py:3" in page
    assert "&lt;script&gt;" in snap.statistics("lineno")._repr_html_()


def test_growth_is_coloured_and_tracebacks_fold() -> None:
    before, after, _ = _alloc_sites()
    page = after.compare_to(before, "traceback")[:3]._repr_html_()
    assert 'class="lg-num lg-grow"' in page
    assert "<details><summary>" in page and 'class="lg-tb"' in page
    folded = page.split('class="lg-tb">', 1)[1].split("</pre>", 1)[0]
    assert "test_notebook.py" in folded and "line" in folded


@pytest.mark.skipif(not HAVE_PANDAS, reason="pandas is not installed")
def test_to_dataframe_columns_and_values() -> None:
    before, after, _ = _alloc_sites()
    frame = after.to_dataframe()
    assert list(frame.columns) == [
        "domain",
        "size",
        "filename",
        "lineno",
        "traceback",
        "total_nframe",
    ]
    assert len(frame) == len(after.traces)
    assert frame["size"].sum() == sum(t.size for t in after.traces)
    diffs = after.compare_to(before, "lineno").to_dataframe()
    top = diffs.iloc[0]
    assert top["filename"] == __file__ and top["size_diff"] >= 64 * 512
    stats = after.to_dataframe("lineno")
    assert stats["size"].sum() == frame["size"].sum()


def test_to_dataframe_without_pandas_names_the_package() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pandas"] = None  # as if it were not installed
        import leakguard
        snap = leakguard.Snapshot([(0, 10, (("a.py", 1),), 1)], 1)
        try:
            snap.to_dataframe()
        except leakguard.UsageError as e:
            print("UsageError:", e)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=True,
    ).stdout
    needs = "needs pandas, which is not installed: pip install pandas"
    assert f"UsageError: to_dataframe() {needs}" in out


def test_flame_graph_inline(notebook: List[Dict[str, Any]]) -> None:
    (page,) = _rich(notebook[15], "text/html")
    assert page.startswith("<iframe") and 'sandbox="allow-scripts"' in page
    assert "srcdoc=" in page and "flamegraph" in page
    assert "http://" not in page and "https://" not in page


def test_tracked_cell_with_its_flame_graph(notebook: List[Dict[str, Any]]) -> None:
    table, graph = _rich(notebook[16], "text/html")
    assert "flamed = [bytearray(3000) for _ in range(20)]" in text_of(table)
    assert graph.startswith("<iframe") and "srcdoc=" in graph
    # the page's data names the cell's line as grown
    assert "leakguard cell" in graph

"""The notebook tables as a person sees them: each ``_repr_html_`` loaded in a
real headless Chromium (tests/browser.py), read back as rendered text, with
growth drawn in red and a traceback that a click unfolds."""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest
from browser import Browser, BrowserUnavailable, Page, changed_pixels, decode_png, find_chromium

import leakguard

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium installed (Debian: apt-get install chromium)"
)

_kept: List[Any] = []
_sink: List[bytes] = []


def grow_cache() -> None:
    _sink.append(bytes(3000))  # the leaking line


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    try:
        browser = Browser.launch()
    except BrowserUnavailable as e:  # pragma: no cover - skipped above
        pytest.skip(str(e))
    with browser:
        shown = browser.new_page(width=1200, height=900)
        yield shown
        shown.close()


def show(page: Page, fragment: str) -> str:
    """Loads ``fragment`` as a notebook would embed it; returns the page's text."""
    page.set_content(f"<!DOCTYPE html><html><body>{fragment}</body></html>")
    assert not page.errors, page.errors
    text: str = page.evaluate("document.body.innerText")
    return text


def _diff() -> Any:
    leakguard.start(10)
    try:
        before = leakguard.take_snapshot()
        _kept.append([bytearray(700) for _ in range(40)])  # the growing line
        after = leakguard.take_snapshot()
    finally:
        leakguard.stop()
    return before, after


def test_diff_table_reads_as_a_table_with_growth_in_red(page: Page) -> None:
    before, after = _diff()
    text = show(page, after.compare_to(before, "traceback")[:5]._repr_html_())
    assert "_kept.append([bytearray(700) for _ in range(40)])  # the growing line" in text
    assert "test_notebook_html.py:" in text
    # Column heads, then a row per diff: the change comes first, signed.
    assert text.index("change") < text.index("allocated at")
    grow = page.evaluate("getComputedStyle(document.querySelector('td.lg-grow')).color")
    assert grow == "rgb(214, 39, 40)"
    first_change = page.evaluate("document.querySelector('td.lg-grow').innerText")
    assert first_change.startswith("+") and "KiB" in first_change


def test_a_click_unfolds_the_traceback(page: Page) -> None:
    before, after = _diff()
    show(page, after.compare_to(before, "traceback")[:3]._repr_html_())
    visible = "document.querySelector('pre.lg-tb').checkVisibility()"
    assert page.evaluate(visible) is False  # folded: not shown
    box = page.evaluate(
        "(() => { const r = document.querySelector('summary').getBoundingClientRect();"
        " return [r.left + 8, r.top + r.height / 2]; })()"
    )
    shot = decode_png(page.screenshot(clip=(0, 0, 1200, 600)))
    page.click(box[0], box[1])
    page.wait_for("document.querySelector('details').open")
    opened = page.evaluate("document.querySelector('pre.lg-tb').innerText")
    assert 'File "' in opened and "test_notebook_html.py" in opened
    assert page.evaluate(visible) is True
    after_click = decode_png(page.screenshot(clip=(0, 0, 1200, 600)))
    assert changed_pixels(shot, after_click) > 500  # the traceback is drawn


def test_leak_report_shows_verdict_site_and_holder(page: Page) -> None:
    report = leakguard.hunt(grow_cache, rounds=3)
    text = show(page, report._repr_html_())
    assert "LEAKING" in text
    assert "_sink.append(bytes(3000))  # the leaking line" in text
    assert "_sink (list" in text  # the holder chain
    badge = page.evaluate("getComputedStyle(document.querySelector('.lg-badge')).backgroundColor")
    assert badge == "rgb(214, 39, 40)"
    # the per-round series is drawn as a line
    assert page.evaluate("document.querySelector('svg.lg-spark polyline').getTotalLength()") > 10


def test_snapshot_and_tracker_tables(page: Page) -> None:
    _, after = _diff()
    text = show(page, after._repr_html_())
    assert "leakguard Snapshot" in text and "traceback limit 10" in text
    assert "the growing line" in text
    with leakguard.track() as tracker:
        _kept.append([bytearray(900) for _ in range(20)])  # kept by the block
    text = show(page, tracker._repr_html_())
    assert "left alive" in text and "At the peak" in text
    assert "kept by the block" in text

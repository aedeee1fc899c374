import os

import pytest

pytest_plugins = ["pytester"]


# -- a real browser (tests/browser.py), for tests of the HTML leakguard writes --


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the whole session; tests using it skip when
    none is installed."""
    from browser import Browser, find_chromium

    if os.name != "posix":
        pytest.skip("the browser driver talks to Chromium over inherited pipes: POSIX only")
    if find_chromium() is None:
        pytest.skip(
            "no Chromium found (chromium, chromium-browser or google-chrome on PATH, "
            "or LEAKGUARD_TEST_BROWSER): install one to run the browser tests"
        )
    with Browser.launch() as launched:
        yield launched


@pytest.fixture
def page(browser):
    """A fresh tab of :func:`browser`, 1000x700 CSS pixels at scale 1, closed
    after the test."""
    tab = browser.new_page(width=1000, height=700)
    yield tab
    tab.close()

"""The test browser driver itself (tests/browser.py): it sees what the page
tests rely on it to see (console errors, exceptions, dialogs, requests), its
input reaches the page, and its PNG decoder reads every filter type."""

from __future__ import annotations

import struct
import zlib

import pytest
from browser import Image, JavaScriptError, changed_pixels, decode_png

# -- PNG decoding (no browser) ------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def encode_png(width, height, pixels, channels):
    """A PNG of ``pixels`` (rows of ``channels``-byte pixels), each row with
    the next of the five filter types in turn."""
    stride = width * channels
    raw = bytearray()
    prior = bytes(stride)
    for y in range(height):
        line = pixels[y * stride : (y + 1) * stride]
        kind = y % 5
        out = bytearray()
        for i, value in enumerate(line):
            a = line[i - channels] if i >= channels else 0
            b = prior[i]
            c = prior[i - channels] if i >= channels else 0
            predictor = (0, a, b, (a + b) >> 1, _paeth(a, b, c))[kind]
            out.append((value - predictor) & 0xFF)
        raw += bytes([kind]) + out
        prior = line
    colour_type = 6 if channels == 4 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(raw)))
        + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [3, 4])
def test_png_decoder_reads_every_filter(channels):
    width, height = 7, 10
    pixels = bytes(
        (x * 37 + y * 91 + c * 53) % 256
        for y in range(height)
        for x in range(width)
        for c in range(channels)
    )
    image = decode_png(encode_png(width, height, pixels, channels))
    assert (image.width, image.height) == (width, height)
    for y in range(height):
        for x in range(width):
            at = (y * width + x) * channels
            expected = tuple(pixels[at : at + channels]) + ((255,) if channels == 3 else ())
            assert image.pixel(x, y) == expected
    with pytest.raises(IndexError):
        image.pixel(width, 0)


def test_png_decoder_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png(b"GIF89a")
    sixteen_bit = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", 1, 1, 16, 2, 0, 0, 0)
    )
    with pytest.raises(ValueError, match="unsupported PNG"):
        decode_png(sixteen_bit)


def test_changed_pixels_and_colours():
    a = Image(2, 2, bytes([0, 0, 0, 255] * 4))
    b = Image(2, 2, bytes([0, 0, 0, 255] * 3 + [9, 9, 9, 255]))
    assert changed_pixels(a, b) == 1
    assert changed_pixels(a, b, (0, 0, 1, 2)) == 0
    assert b.colours() == {(0, 0, 0, 255): 3, (9, 9, 9, 255): 1}


# -- the browser ----------------------------------------------------------------


def test_page_reports_errors_dialogs_and_requests(page, tmp_path):
    html = tmp_path / "noisy.html"
    html.write_text(
        "<!DOCTYPE html><title>noisy</title><body>"
        "<img src='http://127.0.0.1:9/nothing.png'>"
        "<script>console.log('hello', 42); console.error('broken');"
        "alert('a dialog'); setTimeout(() => { throw new Error('late'); }, 0);</script>",
        encoding="utf-8",
    )
    page.goto(html.as_uri())
    page.wait_for("true")
    page.next_frame()
    assert page.dialogs == ["a dialog"]
    assert ("log", "hello 42", "console") in page.console
    assert "broken" in page.errors
    assert any("Error: late" in e for e in page.exceptions)
    assert page.requests[0] == html.as_uri()
    assert "http://127.0.0.1:9/nothing.png" in page.requests
    assert page.evaluate("document.title") == "noisy"
    with pytest.raises(JavaScriptError, match="nope"):
        page.evaluate("(() => { throw new Error('nope'); })()")


def test_input_and_screenshots(page, tmp_path):
    html = tmp_path / "input.html"
    html.write_text(
        "<!DOCTYPE html><body style='margin:0;background:#fff'>"
        "<div id=box style='width:100px;height:50px;background:rgb(10,200,30)'></div>"
        "<input id=field style='position:absolute;left:0;top:100px'>"
        "<script>window.seen = [];"
        "document.getElementById('box').onclick = e => seen.push(['click', e.clientX, e.clientY]);"
        "document.addEventListener('keydown', e => seen.push(['key', e.key]));</script>",
        encoding="utf-8",
    )
    page.goto(html.as_uri())
    image = decode_png(page.screenshot())
    assert (image.width, image.height) == (1000, 700)
    assert image.pixel(50, 25) == (10, 200, 30, 255)
    assert image.pixel(150, 25) == (255, 255, 255, 255)
    clip = decode_png(page.screenshot(clip=(90, 0, 20, 10)))
    assert (clip.width, clip.height) == (20, 10)
    assert clip.pixel(5, 5) == (10, 200, 30, 255) and clip.pixel(15, 5) == (255, 255, 255, 255)
    page.click(20, 30)
    page.press("Escape")
    assert page.evaluate("seen") == [["click", 20, 30], ["key", "Escape"]]
    page.click(10, 110)
    page.type("héllo")
    page.press("!")
    assert page.evaluate("document.getElementById('field').value") == "héllo!"

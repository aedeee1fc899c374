"""A small real-browser driver for tests: headless Chromium over the DevTools
protocol, with no dependency beyond the standard library.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol
commands from its file descriptor 3 and writes responses and events to its
descriptor 4, each message a JSON object followed by a NUL byte. A reader
thread splits what arrives into responses (matched to commands by ``id``) and
events (kept per session, in order). Every wait has a timeout, so a test never
hangs on a browser that stopped answering: it gets a :class:`BrowserError`.

Usage::

    with Browser.launch() as browser:          # BrowserUnavailable if none installed
        page = browser.new_page(width=1000, height=700)
        page.goto(path.as_uri())                # waits for the load event
        page.evaluate("document.title")         # JSON-able values come back as Python
        page.click(120, 40); page.press("Escape"); page.type("text")
        image = decode_png(page.screenshot(clip=(0, 0, 400, 300)))
        image.pixel(10, 10)                     # (r, g, b, a)
        page.console, page.exceptions, page.requests, page.dialogs
        page.wait_for_frames(1)[0].evaluate(...)  # an out-of-process iframe
        page.close()

:func:`find_chromium` tells where a browser is (``$LEAKGUARD_TEST_BROWSER``,
then ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``), or
``None``: tests needing one skip with that reason.

Screenshots are PNG; :func:`decode_png` reads the 8-bit RGB/RGBA
non-interlaced images Chromium produces into an :class:`Image` of RGBA
pixels, and :func:`changed_pixels` counts the pixels two images differ in.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

__all__ = [
    "Browser",
    "BrowserError",
    "BrowserUnavailable",
    "ConsoleMessage",
    "Image",
    "JavaScriptError",
    "Page",
    "changed_pixels",
    "decode_png",
    "find_chromium",
]

#: Seconds any single wait for the browser may take before BrowserError.
DEFAULT_TIMEOUT = 30.0

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Moves the pipe ends the driver passes to descriptors 3 and 4, then becomes
# the browser. Done in a separate interpreter rather than in a preexec_fn,
# which is not safe when the test process runs threads.
_LAUNCHER = """\
import fcntl, os, sys
read_end, write_end = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])
os.dup2(read_end, 3)
os.dup2(write_end, 4)
os.close(read_end)
os.close(write_end)
os.execv(sys.argv[3], sys.argv[3:])
"""


class BrowserError(RuntimeError):
    """The browser failed, returned a protocol error or did not answer in time."""


class BrowserUnavailable(BrowserError):
    """No Chromium binary was found."""


class JavaScriptError(BrowserError):
    """An expression evaluated in the page threw."""


class ConsoleMessage(NamedTuple):
    """A console message or log entry of a page: ``level`` is ``"error"``,
    ``"warning"``, ``"log"``, ``"info"``, ``"debug"``…; ``source`` is
    ``"console"`` (the page's ``console.*`` calls) or the browser's log
    source (``"network"``, ``"security"``, ``"javascript"``…)."""

    level: str
    text: str
    source: str


def find_chromium() -> Optional[str]:
    """The path of a Chromium-family browser, or ``None``."""
    chosen = os.environ.get("LEAKGUARD_TEST_BROWSER")
    if chosen:
        return shutil.which(chosen)
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _Connection:
    """The protocol over the two pipes: commands out, responses and events in."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        # Writes wait in select() with a timeout: a browser that stops
        # reading cannot block the test.
        os.set_blocking(write_fd, False)
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._next_id = 0
        self._responses: Dict[int, Dict[str, Any]] = {}
        self._events: List[Dict[str, Any]] = []
        self._listeners: List[Callable[[Dict[str, Any]], None]] = []
        self.closed: Optional[str] = None
        self._thread = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._thread.start()

    # -- reading --------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        reason = "the browser closed the connection"
        try:
            while True:
                chunk = os.read(self._read_fd, 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    self._dispatch(json.loads(raw))
        except (OSError, ValueError) as error:
            reason = f"reading from the browser failed: {error!r}"
        with self._cond:
            self.closed = reason
            self._cond.notify_all()

    def _dispatch(self, message: Dict[str, Any]) -> None:
        if "id" in message:
            with self._cond:
                self._responses[message["id"]] = message
                self._cond.notify_all()
            return
        for listener in list(self._listeners):
            listener(message)
        with self._cond:
            self._events.append(message)
            self._cond.notify_all()

    def add_listener(self, listener: Callable[[Dict[str, Any]], None]) -> None:
        """Call ``listener(event)`` on the reader thread for every event."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Dict[str, Any]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- writing --------------------------------------------------------------

    def post(
        self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None
    ) -> int:
        """Send a command without waiting; returns its id."""
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message: Dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        with self._write_lock:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._write_fd, view)
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BrowserError(f"{method}: the browser stopped reading") from None
                    select.select([], [self._write_fd], [], left)
                    continue
                except OSError as error:
                    raise BrowserError(f"cannot send {method} to the browser: {error}") from None
                view = view[written:]
        return ident

    def call(
        self,
        method: str,
        params: Optional[Dict[str, Any]] = None,
        session: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Dict[str, Any]:
        """Send a command and return its result; BrowserError on a protocol
        error, a closed browser or no answer within ``timeout`` seconds."""
        ident = self.post(method, params, session)
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._responses:
                left = deadline - time.monotonic()
                if self.closed is not None:
                    raise BrowserError(f"{method}: {self.closed}")
                if left <= 0:
                    raise BrowserError(f"{method}: no answer from the browser in {timeout} s")
                self._cond.wait(left)
            response = self._responses.pop(ident)
        if "error" in response:
            error = response["error"]
            raise BrowserError(f"{method}: {error.get('message')} ({error.get('data', '')})")
        result: Dict[str, Any] = response.get("result", {})
        return result

    def mark(self) -> int:
        """A position in the event log: :meth:`wait_event` with ``after=`` it
        only looks at events that arrive later."""
        with self._cond:
            return len(self._events)

    def events(self, session: Optional[str] = None, method: Optional[str] = None) -> Iterator[Any]:
        with self._cond:
            events = list(self._events)
        for event in events:
            if event.get("sessionId") == session and (method is None or event["method"] == method):
                yield event

    def wait_event(
        self,
        method: str,
        session: Optional[str] = None,
        after: int = 0,
        predicate: Optional[Callable[[Dict[str, Any]], bool]] = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Dict[str, Any]:
        """The first event ``method`` of ``session`` logged at or after
        position ``after`` (see :meth:`mark`) for which ``predicate(params)``
        holds; waits for it up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = after
        with self._cond:
            while True:
                for event in self._events[seen:]:
                    if (
                        event["method"] == method
                        and event.get("sessionId") == session
                        and (predicate is None or predicate(event.get("params", {})))
                    ):
                        params: Dict[str, Any] = event.get("params", {})
                        return params
                seen = len(self._events)
                left = deadline - time.monotonic()
                if self.closed is not None:
                    raise BrowserError(f"waiting for {method}: {self.closed}")
                if left <= 0:
                    raise BrowserError(f"no {method} event from the browser in {timeout} s")
                self._cond.wait(left)

    def close(self) -> None:
        """Close the pipes (once the browser has exited, the reader sees the
        end of its output and stops)."""
        with self._write_lock:
            if self._write_fd >= 0:
                os.close(self._write_fd)
                self._write_fd = -1
        self._thread.join(5)
        if not self._thread.is_alive() and self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1


class Browser:
    """A headless Chromium process. Start one with :meth:`launch` (a context
    manager: leaving it closes the browser); open pages with :meth:`new_page`."""

    def __init__(
        self, process: subprocess.Popen[bytes], connection: _Connection, profile_dir: str
    ) -> None:
        self._process = process
        self._connection = connection
        self._profile_dir = profile_dir
        self._pages: List[Page] = []
        self.version = connection.call("Browser.getVersion").get("product", "")

    @classmethod
    def launch(
        cls,
        executable: Optional[str] = None,
        args: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Browser:
        """Start a headless browser (``executable``, by default
        :func:`find_chromium`'s) with extra command-line ``args``."""
        executable = executable or find_chromium()
        if executable is None:
            raise BrowserUnavailable(
                "no Chromium found: install chromium (or chromium-browser, google-chrome), "
                "or set LEAKGUARD_TEST_BROWSER to a browser's path"
            )
        profile_dir = tempfile.mkdtemp(prefix="lg-browser-")
        command = [
            executable,
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile_dir}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-sync",
            "--mute-audio",
            "--hide-scrollbars",
            # Colours in screenshots are the colours the page asked for.
            "--force-color-profile=srgb",
            *args,
            "about:blank",
        ]
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _LAUNCHER,
                    str(to_browser_r),
                    str(from_browser_w),
                    *command,
                ],
                pass_fds=(to_browser_r, from_browser_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (to_browser_r, to_browser_w, from_browser_r, from_browser_w):
                os.close(fd)
            shutil.rmtree(profile_dir, ignore_errors=True)
            raise
        # The browser holds its own copies; ours would keep the pipes open
        # after it exits.
        os.close(to_browser_r)
        os.close(from_browser_w)
        connection = _Connection(from_browser_r, to_browser_w)
        try:
            return cls(process, connection, profile_dir)
        except BaseException:
            connection.close()
            _stop(process, timeout)
            shutil.rmtree(profile_dir, ignore_errors=True)
            raise

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, **kw: Any) -> Any:
        """A browser-level protocol command (``Target.*``, ``Browser.*``…)."""
        return self._connection.call(method, params, **kw)

    def new_page(self, width: int = 1000, height: int = 700, scale: float = 1.0) -> Page:
        """A new tab showing ``about:blank``, with a viewport of ``width`` x
        ``height`` CSS pixels at ``scale`` device pixels per CSS pixel."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, self._connection, target, session)
        self._pages.append(page)
        page.set_viewport(width, height, scale)
        return page

    def close(self, timeout: float = 10.0) -> None:
        """Close the browser (``Browser.close``; killed if it does not exit
        within ``timeout`` seconds) and remove its profile directory."""
        if self._process.poll() is None:
            try:
                self._connection.call("Browser.close", timeout=timeout)
            except BrowserError:
                pass
        _stop(self._process, timeout)
        self._connection.close()
        shutil.rmtree(self._profile_dir, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


# Frames in other processes attach to the tab's session, paused until set up.
_AUTO_ATTACH = {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}

# Key name -> (code, windowsVirtualKeyCode, text typed).
_KEYS: Dict[str, Tuple[str, int, str]] = {
    "Escape": ("Escape", 27, ""),
    "Enter": ("Enter", 13, "\r"),
    "Tab": ("Tab", 9, ""),
    "Backspace": ("Backspace", 8, ""),
    "Delete": ("Delete", 46, ""),
    "ArrowLeft": ("ArrowLeft", 37, ""),
    "ArrowUp": ("ArrowUp", 38, ""),
    "ArrowRight": ("ArrowRight", 39, ""),
    "ArrowDown": ("ArrowDown", 40, ""),
    "Home": ("Home", 36, ""),
    "End": ("End", 35, ""),
}


class Page:
    """One tab. What the page reported is kept as it arrives:
    :attr:`console` (console calls and browser log entries, as
    :class:`ConsoleMessage`), :attr:`exceptions` (uncaught exceptions, as the
    text the console would show), :attr:`requests` (URL of every network
    request) and :attr:`dialogs` (messages of ``alert``/``confirm``/``prompt``
    dialogs, which are dismissed at once).

    Frames the browser runs in another process (sandboxed or cross-origin
    iframes) are attached as they start and listed in :attr:`frames`, each a
    ``Page`` of its own for :meth:`evaluate`; what they report goes to the
    same lists as the tab's.
    """

    def __init__(
        self,
        browser: Browser,
        connection: _Connection,
        target: str,
        session: str,
        parent: Optional[Page] = None,
    ) -> None:
        self.browser = browser
        self._connection = connection
        self.target = target
        self.session = session
        self.url = ""
        self.console: List[ConsoleMessage] = parent.console if parent else []
        self.exceptions: List[str] = parent.exceptions if parent else []
        self.requests: List[str] = parent.requests if parent else []
        self.dialogs: List[str] = parent.dialogs if parent else []
        self.frames: List[Page] = []
        connection.add_listener(self._on_event)
        if parent is None:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable")
            self.call("Target.setAutoAttach", _AUTO_ATTACH)

    # -- what the page reports -----------------------------------------------

    def _on_event(self, event: Dict[str, Any]) -> None:
        if event.get("sessionId") != self.session:
            return
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_text(arg) for arg in params.get("args", []))
            level = {"warning": "warning", "error": "error", "assert": "error"}.get(
                params.get("type", ""), params.get("type", "log")
            )
            self.console.append(ConsoleMessage(level, text, "console"))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            self.exceptions.append(
                exception.get("description") or details.get("text", "uncaught exception")
            )
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append(
                ConsoleMessage(entry.get("level", "info"), entry.get("text", ""), entry["source"])
            )
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            # Posted, not awaited: this runs on the reader thread.
            self._connection.post("Page.handleJavaScriptDialog", {"accept": False}, self.session)
        elif method == "Target.attachedToTarget":
            self._attach_frame(params)
        elif method == "Target.detachedFromTarget":
            self.frames[:] = [f for f in self.frames if f.session != params.get("sessionId")]

    def _attach_frame(self, params: Dict[str, Any]) -> None:
        # On the reader thread: commands are posted, not awaited. The frame
        # waits (waitForDebuggerOnStart) until its domains are enabled, so
        # nothing it reports is missed.
        info = params.get("targetInfo", {})
        session = params["sessionId"]
        frame = Page(self.browser, self._connection, info.get("targetId", ""), session, self)
        frame.url = info.get("url", "")
        if info.get("type") in ("iframe", "page"):
            for domain in ("Page", "Runtime", "Log", "Network"):
                self._connection.post(f"{domain}.enable", None, session)
            self._connection.post("Target.setAutoAttach", _AUTO_ATTACH, session)
            self.frames.append(frame)
        self._connection.post("Runtime.runIfWaitingForDebugger", None, session)

    def wait_for_frames(self, count: int = 1, timeout: float = 5.0) -> List[Page]:
        """The out-of-process frames, once at least ``count`` are attached."""
        deadline = time.monotonic() + timeout
        while len(self.frames) < count:
            if time.monotonic() > deadline:
                raise BrowserError(f"{len(self.frames)} frame(s) attached, {count} expected")
            time.sleep(0.02)
        return list(self.frames)

    @property
    def errors(self) -> List[str]:
        """Console errors and uncaught exceptions: what a clean page has none of."""
        return [m.text for m in self.console if m.level == "error"] + list(self.exceptions)

    # -- driving --------------------------------------------------------------

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, **kw: Any) -> Any:
        """A protocol command for this page's session."""
        return self._connection.call(method, params, self.session, **kw)

    def set_viewport(self, width: int, height: int, scale: float = 1.0) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False},
        )

    def emulate_media(self, **features: str) -> None:
        """CSS media features, e.g. ``emulate_media(prefers_color_scheme="dark")``."""
        self.call(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": k.replace("_", "-"), "value": v} for k, v in features.items()]},
        )

    def goto(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Load ``url`` and wait for its load event."""
        mark = self._connection.mark()
        result = self.call("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise BrowserError(f"cannot load {url}: {result['errorText']}")
        self._connection.wait_event("Page.loadEventFired", self.session, mark, timeout=timeout)

    def set_content(self, html: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Show ``html`` as the document (its URL stays the current one)."""
        frame = self.call("Page.getFrameTree")["frameTree"]["frame"]["id"]
        mark = self._connection.mark()
        self.call("Page.setDocumentContent", {"frameId": frame, "html": html})
        self._connection.wait_event("Page.loadEventFired", self.session, mark, timeout=timeout)

    def evaluate(
        self,
        expression: str,
        await_promise: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values
        come back as Python values; a thrown exception raises
        :class:`JavaScriptError`). ``await_promise``: wait for a promise's
        value."""
        params: Dict[str, Any] = {
            "expression": expression,
            "returnByValue": True,
            "awaitPromise": await_promise,
        }
        result = self.call("Runtime.evaluate", params, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise JavaScriptError(f"{expression!r} threw: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 5.0) -> Any:
        """Evaluate ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression!r} still false after {timeout} s")
            time.sleep(0.02)

    def next_frame(self) -> None:
        """Wait until the page has painted what it has drawn so far."""
        self.evaluate(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))",
            await_promise=True,
        )

    def _mouse(self, kind: str, x: float, y: float, **extra: Any) -> None:
        self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, **extra})

    def move(self, x: float, y: float) -> None:
        """Move the mouse to ``(x, y)`` (CSS pixels from the viewport's top left)."""
        self._mouse("mouseMoved", x, y)

    def click(self, x: float, y: float, button: str = "left") -> None:
        """Press and release a mouse button at ``(x, y)``."""
        self.move(x, y)
        self._mouse("mousePressed", x, y, button=button, clickCount=1)
        self._mouse("mouseReleased", x, y, button=button, clickCount=1)

    def press(self, key: str) -> None:
        """Press and release a key: a name of :data:`_KEYS` (``"Escape"``,
        ``"Enter"``, ``"ArrowDown"``…) or one printable character."""
        if key in _KEYS:
            code, vk, text = _KEYS[key]
        elif len(key) == 1:
            code, vk, text = "", ord(key.upper()), key
        else:
            raise ValueError(f"unknown key {key!r}")
        down: Dict[str, Any] = {"type": "keyDown", "key": key, "windowsVirtualKeyCode": vk}
        if code:
            down["code"] = code
        if text:
            down["text"] = text
        self.call("Input.dispatchKeyEvent", down)
        self.call("Input.dispatchKeyEvent", {**down, "type": "keyUp", "text": ""})

    def type(self, text: str) -> None:
        """Type ``text`` into the focused element (as an input method would)."""
        self.call("Input.insertText", {"text": text})

    def screenshot(self, clip: Optional[Tuple[float, float, float, float]] = None) -> bytes:
        """A PNG of the viewport, or of ``clip`` = ``(x, y, width, height)`` in
        CSS pixels (at the page's device scale)."""
        params: Dict[str, Any] = {"format": "png"}
        if clip is not None:
            x, y, w, h = clip
            params["clip"] = {"x": x, "y": y, "width": w, "height": h, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", params)["data"])

    def close(self) -> None:
        """Close the tab."""
        for page in [self, *self.frames]:
            self._connection.remove_listener(page._on_event)
        try:
            self.browser.call("Target.closeTarget", {"targetId": self.target}, timeout=10)
        except BrowserError:
            pass


def _remote_text(arg: Dict[str, Any]) -> str:
    if "value" in arg:
        return str(arg["value"])
    return str(arg.get("description", arg.get("type", "")))


# -- PNG ----------------------------------------------------------------------


class Image(NamedTuple):
    """Decoded pixels: ``rgba`` holds ``width * height`` pixels of 4 bytes,
    row after row from the top."""

    width: int
    height: int
    rgba: bytes

    def pixel(self, x: int, y: int) -> Tuple[int, int, int, int]:
        """The ``(r, g, b, a)`` of the pixel at column ``x``, row ``y``."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise IndexError(f"pixel ({x}, {y}) outside a {self.width}x{self.height} image")
        at = (y * self.width + x) * 4
        r, g, b, a = self.rgba[at : at + 4]
        return r, g, b, a

    def colours(
        self, box: Optional[Tuple[int, int, int, int]] = None
    ) -> Dict[Tuple[int, ...], int]:
        """How many pixels of each ``(r, g, b, a)`` colour ``box`` = ``(x, y,
        width, height)`` (default: the whole image) holds."""
        x0, y0, w, h = box or (0, 0, self.width, self.height)
        counts: Dict[Tuple[int, ...], int] = {}
        for y in range(max(y0, 0), min(y0 + h, self.height)):
            row = self.rgba[(y * self.width) * 4 : (y * self.width + self.width) * 4]
            for x in range(max(x0, 0), min(x0 + w, self.width)):
                colour = tuple(row[x * 4 : x * 4 + 4])
                counts[colour] = counts.get(colour, 0) + 1
        return counts


def decode_png(data: bytes) -> Image:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium's
    screenshots are) into RGBA pixels; ValueError for anything else."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    at = 8
    header = None
    idat = []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without a header")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in (2, 6) or interlace:
        raise ValueError(
            f"unsupported PNG: depth {depth}, colour type {colour_type}, interlace {interlace}"
        )
    channels = 4 if colour_type == 6 else 3
    stride = width * channels
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != (stride + 1) * height:
        raise ValueError("PNG data does not match its size")
    rows: List[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        rows.append(bytes(line))
        previous = line
    pixels = b"".join(rows)
    if channels == 3:
        out = bytearray(width * height * 4)
        out[0::4] = pixels[0::3]
        out[1::4] = pixels[1::3]
        out[2::4] = pixels[2::3]
        out[3::4] = b"\xff" * (width * height)
        pixels = bytes(out)
    return Image(width, height, pixels)


def _unfilter(kind: int, line: bytearray, prior: bytearray, bpp: int) -> None:
    n = len(line)
    if kind == 0:
        return
    if kind == 1:  # Sub
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:  # Up
        for i in range(n):
            line[i] = (line[i] + prior[i]) & 0xFF
    elif kind == 3:  # Average
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:  # Paeth
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            if pa <= pb and pa <= pc:
                predictor = a
            elif pb <= pc:
                predictor = b
            else:
                predictor = c
            line[i] = (line[i] + predictor) & 0xFF
    else:
        raise ValueError(f"unknown PNG filter type {kind}")


def changed_pixels(
    before: Image, after: Image, box: Optional[Tuple[int, int, int, int]] = None
) -> int:
    """How many pixels of ``box`` = ``(x, y, width, height)`` (default: all)
    differ between two images of the same size."""
    if (before.width, before.height) != (after.width, after.height):
        raise ValueError("images of different sizes")
    x0, y0, w, h = box or (0, 0, before.width, before.height)
    width = before.width
    changed = 0
    for y in range(max(y0, 0), min(y0 + h, before.height)):
        lo = (y * width + max(x0, 0)) * 4
        hi = (y * width + min(x0 + w, width)) * 4
        a, b = before.rgba[lo:hi], after.rgba[lo:hi]
        if a == b:
            continue
        for i in range(0, hi - lo, 4):
            if a[i : i + 4] != b[i : i + 4]:
                changed += 1
    return changed

"""Debian's Chromium, headless, driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes on file descriptors 3 and
4), with the standard library only.

    with HeadlessChromium() as browser:
        page = browser.open("file:///tmp/report.html")
        page.console_errors, page.requests, page.evaluate("document.title")

Used by the report's browser tests and by benchmarks/report_scale.py.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine's closed network needs (no background connections) and a root
# user needs (no sandbox); a fresh profile each time.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-pipe"]


class BrowserError(RuntimeError):
    pass


class HeadlessChromium:
    def __init__(self, executable: str = CHROMIUM, timeout: float = 60.0):
        self.executable = executable
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self.events: List[Dict[str, Any]] = []

    # -- process -------------------------------------------------------------------
    def __enter__(self) -> "HeadlessChromium":
        self.profile = tempfile.mkdtemp(prefix="hpc-tune-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Above 10 so that placing them on 3 and 4 in the child cannot overwrite one another.
        hi_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def place_pipes() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # close_fds=False: the pipes placed on 3 and 4 must survive; every other descriptor of
            # this process is close-on-exec already (Python opens them so)
            close_fds=False, preexec_fn=place_pipes)
        os.close(hi_r)
        os.close(hi_w)
        self._w = to_browser_w
        self._r = from_browser_r
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- protocol ------------------------------------------------------------------
    def send(self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None) -> int:
        self._next_id += 1
        msg: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]
        return self._next_id

    def _read_message(self, deadline: float) -> Dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("no answer from Chromium in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
                    raise BrowserError(f"Chromium closed the pipe (exit {self.proc.poll()}): {err}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None,
             timeout: Optional[float] = None) -> Dict[str, Any]:
        msg_id = self.send(method, params, session)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self._read_message(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, session: Optional[str], timeout: Optional[float] = None) -> Dict[str, Any]:
        for i, e in enumerate(self.events):
            if e["method"] == method and e.get("sessionId") == session:
                return self.events.pop(i)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self._read_message(deadline)
            if msg.get("method") == method and msg.get("sessionId") == session:
                return msg
            if "method" in msg:
                self.events.append(msg)

    # -- pages ---------------------------------------------------------------------
    def open(self, url: str, width: int = 1280, height: int = 900) -> "Page":
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        started = time.monotonic()
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        # drawn: two animation frames after the load event, every figure and the table laid out
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(1))))")
        page.load_seconds = time.monotonic() - started
        return page


class Page:
    def __init__(self, browser: HeadlessChromium, session: str):
        self.browser = browser
        self.session = session
        self.load_seconds = 0.0

    def evaluate(self, expression: str) -> Any:
        res = self.browser.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                     "returnByValue": True}, session=self.session)
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression[:80]}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def _events(self, method: str) -> List[Dict[str, Any]]:
        # pull in whatever arrived meanwhile
        self.evaluate("1")
        return [e["params"] for e in self.browser.events
                if e["method"] == method and e.get("sessionId") == self.session]

    @property
    def console_errors(self) -> List[str]:
        """Uncaught exceptions, console.error/warn calls and the browser's own error log entries."""
        out = [f"exception: {e['exceptionDetails'].get('exception', {}).get('description') or e['exceptionDetails']}"
               for e in self._events("Runtime.exceptionThrown")]
        out += [f"console.{e['type']}: {' '.join(str(a.get('value', a.get('description'))) for a in e['args'])}"
                for e in self._events("Runtime.consoleAPICalled") if e["type"] in ("error", "warning", "assert")]
        out += [f"log {e['entry']['level']}: {e['entry'].get('text')} {e['entry'].get('url', '')}"
                for e in self._events("Log.entryAdded") if e["entry"]["level"] in ("error", "warning")]
        return out

    @property
    def requests(self) -> List[str]:
        """Every URL the page asked for (the page itself included)."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def screenshot(self, clip: Optional[Dict[str, float]] = None, full_page: bool = False) -> bytes:
        params: Dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
            params["captureBeyondViewport"] = True
        elif full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
            params["captureBeyondViewport"] = True
        return base64.b64decode(self.browser.call("Page.captureScreenshot", params, session=self.session)["data"])

"""A headless Chromium driven over the DevTools protocol (one websocket, no WebDriver): enough to drive the
gateway's page in tests and to take its screenshots. Every request the page makes is recorded (the
Network domain), so a test can assert that nothing left the page's origin.

    with Browser() as b:
        b.open("http://127.0.0.1:8000/")
        b.wait("document.querySelector('#login') && !document.querySelector('#login').hidden")

Chromium comes from Debian's ``chromium`` package; ``ensure_chromium`` installs it when missing (as root).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    if path := os.environ.get("BRAID_CHROMIUM"):
        return path
    return next((p for name in CANDIDATES if (p := shutil.which(name))), None)


def ensure_chromium() -> str:
    """The Chromium binary, installed from Debian's packages when missing (apt-get, as root)."""
    if path := find_chromium():
        return path
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(
            "Chromium is missing: install Debian's 'chromium' package (apt-get install chromium)"
        )
    install = [apt, "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run([apt, "update", "-q"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    if path := find_chromium():
        return path
    raise RuntimeError("apt-get installed chromium but no chromium binary is on PATH")


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page. ``requests`` lists every URL the page asked for."""

    def __init__(self, width: int = 1200, height: int = 800, timeout_s: float = 30.0):
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self.requests: list[str] = []
        self.console: list[str] = []
        self._ids = itertools.count(1)

    def __enter__(self) -> Browser:
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="braid-chromium-")
        port = _free_port()
        self._proc = subprocess.Popen(
            [ensure_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", "--disable-default-apps", f"--remote-debugging-port={port}",
             f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        target = self._page_target(port)
        self._ws = connect(target, max_size=64 * 2**20, open_timeout=self.timeout_s)
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.resize(self.width, self.height)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._ws.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            shutil.rmtree(self._profile, ignore_errors=True)

    def _page_target(self, port: int) -> str:
        import urllib.request

        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self._proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            time.sleep(0.1)
        raise BrowserError("chromium did not open its DevTools port")

    # -- the protocol --------------------------------------------------------------------------------------
    def send(self, method: str, **params: Any) -> dict:
        """One DevTools command; events that arrive meanwhile are recorded."""
        call = next(self._ids)
        self._ws.send(json.dumps({"id": call, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == call:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            self._event(message)
        raise BrowserError(f"{method}: no answer in {self.timeout_s:g}s")

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            self.console.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            self.console.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded":
            self.console.append(f"{params['entry']['level']}: {params['entry']['text']}")

    # -- what tests do -------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'")

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        out = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise BrowserError(
                f"{expression!r}: {out['exceptionDetails'].get('exception', {}).get('description')}"
            )
        return out["result"].get("value")

    def wait(self, condition: str, timeout_s: float | None = None) -> Any:
        """Until ``condition`` (JavaScript) is truthy; its value."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        check = f"(() => {{ const v = ({condition}); return v instanceof Node ? true : v; }})()"  # a node: {}
        while time.monotonic() < deadline:
            if value := self.eval(check):
                return value
            time.sleep(0.05)
        raise BrowserError(f"timed out waiting for {condition!r}; console: {self.console[-5:]}")

    def click(self, selector: str) -> None:
        self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    def type(self, selector: str, text: str) -> None:
        """Focus a field and type ``text`` as key presses (the page sees real input events)."""
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def press(self, key: str) -> None:
        codes = {"Enter": 13, "Tab": 9}
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                      windowsVirtualKeyCode=codes.get(key, 0), text="\r" if key == "Enter" and kind == "keyDown" else "")  # fmt: skip

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def screenshot(self, path: str | Path, full_page: bool = True) -> Path:
        height = self.eval("document.documentElement.scrollHeight") if full_page else self.height
        clip = {"x": 0, "y": 0, "width": self.width, "height": max(int(height), self.height), "scale": 1}
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)[
            "data"
        ]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def reload(self) -> None:
        self.send("Page.reload")
        time.sleep(0.2)
        self.wait("document.readyState === 'complete'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

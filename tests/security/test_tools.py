"""Deadlines that hold: a server that trickles its headers, and tools that never return."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from pydantic import BaseModel

from tools import FetchSettings, ToolExecutor, ToolsConfig, ToolTimeoutError
from tools.errors import FetchError
from tools.fetch import SafeFetcher

PAGE = b"<html><head><title>ok</title></head><body><p>fine</p></body></html>"


class TrickleServer:
    """127.0.0.1: ``/slow`` sends its status line, then one header byte every 0.5 s for a minute (httpx's
    per-read timeout never trips); any other path answers a small page at once."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            request = conn.recv(4096)
            try:
                if b"GET /slow" not in request:
                    head = (
                        f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(PAGE)}\r\n\r\n"
                    )
                    conn.sendall(head.encode() + PAGE)
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(120):
                    if self.closed.wait(0.5):
                        return
                    conn.sendall(b"a")
            except OSError:
                return

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


@pytest.fixture(scope="module")
def trickle():
    server = TrickleServer()
    yield server
    server.close()


def settings(timeout_s: float = 2.0) -> FetchSettings:
    return FetchSettings(allow=("127.0.0.1/32",), timeout_s=timeout_s)


def test_one_deadline_covers_slow_headers(trickle):
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 2s"):
        SafeFetcher(settings()).fetch(trickle.url + "/slow")
    assert time.monotonic() - start < 3.5  # was 40 s with a 10 s deadline


def test_slow_fetches_do_not_take_the_tool_pool(trickle):
    config = ToolsConfig(fetch=settings(1.0), tool_timeout_s=5.0)
    with ToolExecutor(config) as tools:
        calls = [
            threading.Thread(target=_expect_error, args=(tools, trickle.url + "/slow")) for _ in range(10)
        ]  # more than the old pool's 8 workers
        for c in calls:
            c.start()
        for c in calls:
            c.join(10)
        start = time.monotonic()
        page = tools.execute("extract_content", {"url": trickle.url + "/page"})
        assert page["title"] == "ok" and time.monotonic() - start < 1.0


def _expect_error(tools: ToolExecutor, url: str) -> None:
    with pytest.raises(FetchError):
        tools.execute("extract_content", {"url": url})


class Hang(BaseModel):
    seconds: float


def test_a_stuck_tool_is_abandoned_and_the_running_calls_are_capped():
    release = threading.Event()
    config = ToolsConfig(tool_timeout_s=0.1, max_running_calls=12)
    with ToolExecutor(config, builtin=False) as tools:
        tools.register_function(lambda a: release.wait(a.seconds) and "late", Hang, "hang", "never returns")
        tools.register_function(lambda a: "quick", Hang, "quick", "returns")
        for _ in range(10):  # each abandoned past its timeout, still running
            with pytest.raises(ToolTimeoutError, match="did not finish within 0.1s"):
                tools.execute("hang", {"seconds": 60})
        assert tools.running == 10
        assert tools.execute("quick", {"seconds": 0}) == "quick"  # nothing queued behind the stuck ones
        tools.execute("quick", {"seconds": 0})
        for _ in range(2):
            with pytest.raises(ToolTimeoutError):
                tools.execute("hang", {"seconds": 60})
        with pytest.raises(
            ToolTimeoutError, match="12 tool calls are still running"
        ):  # the cap: refused at once
            tools.execute("quick", {"seconds": 0})
        release.set()
        deadline = time.monotonic() + 5
        while tools.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tools.execute("quick", {"seconds": 0}) == "quick"

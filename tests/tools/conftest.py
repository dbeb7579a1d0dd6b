"""A real HTTP server on 127.0.0.1 that replays the pages the tools tests fetch and search."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

PAGES = Path(__file__).parent / "pages"
RUSSIAN = "Привет, мир! Это страница в кодировке Windows-1251 о морских течениях и климате Европы."
FRENCH = "Les courants océaniques transportent la chaleur de l'équateur vers les pôles; c'est très étonnant."
BIG = 50 * 1024 * 1024


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a text stream, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


class ReplayServer:
    def __init__(self):
        self.hits: dict[str, int] = defaultdict(int)
        self.requests: list[tuple[str, str, dict]] = []
        handler = type("Handler", (_Handler,), {"replay": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    replay: ReplayServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(
        self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8", headers: dict | None = None
    ):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        self._route(form)

    def do_GET(self):
        self._route(parse_qs(urlsplit(self.path).query))

    def _route(self, params: dict):
        path = urlsplit(self.path).path
        self.replay.hits[path] += 1
        self.replay.requests.append((self.command, path, params))
        with contextlib.suppress(
            BrokenPipeError, ConnectionResetError
        ):  # the client hung up on purpose (caps)
            self._dispatch(path, params)

    def _dispatch(self, path: str, params: dict):
        static = {"/article": "article.html", "/boilerplate": "boilerplate.html"}
        if path in static:
            return self._send(200, (PAGES / static[path]).read_bytes())
        if path == "/cp1251":
            html = f"<html><head><title>Течения</title></head><body><article><p>{RUSSIAN}</p><p>{RUSSIAN}</p></article></body></html>"
            return self._send(200, html.encode("cp1251"), "text/html; charset=windows-1251")
        if path == "/latin1-meta":
            html = f'<html><head><meta charset="iso-8859-1"><title>Courants</title></head><body><article><p>{FRENCH}</p><p>{FRENCH}</p></article></body></html>'
            return self._send(200, html.encode("latin-1"), "text/html")
        if path == "/notes.txt":
            return self._send(200, "Plain notes\nline two: ünïcödé".encode(), "text/plain; charset=utf-8")
        if path == "/doc.pdf":
            return self._send(200, minimal_pdf("Hello from a braided PDF"), "application/pdf")
        if path == "/image.png":
            return self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")
        if path in ("/big", "/big-declared"):
            return self._big(declared=path == "/big-declared")
        if path == "/slow":
            return self._slow()
        if path == "/stall":
            time.sleep(20)
            return self._send(200, b"late")
        if path.startswith("/r/"):
            n = int(path.rsplit("/", 1)[1])
            return self._redirect(f"/r/{n - 1}" if n > 1 else "/article")
        if path == "/to-loopback":
            return self._redirect(f"http://127.0.0.1:{self.replay.port}/article")
        if path == "/html/":
            return self._send(200, (PAGES / "ddg_results.html").read_bytes())
        if path == "/flaky/html/":
            if self.replay.hits[path] <= 2:
                return self._send(429, b"slow down", "text/plain", {"Retry-After": "0"})
            return self._send(200, (PAGES / "ddg_results.html").read_bytes())
        if path == "/search":
            return self._send(200, (PAGES / "searxng.json").read_bytes(), "application/json")
        if path == "/forbidden/search":
            return self._send(403, b"Forbidden", "text/plain")
        self._send(404, b"not found", "text/plain")

    def _big(self, declared: bool):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if declared:
            self.send_header("Content-Length", str(BIG))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"<p>" + b"x" * 65530 + b"</p>"
        for _ in range(BIG // len(chunk)):
            self.wfile.write(chunk)
        self.close_connection = True

    def _slow(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Connection", "close")
        self.end_headers()
        for _ in range(200):
            self.wfile.write(b"<p>.</p>")
            self.wfile.flush()
            time.sleep(0.25)
        self.close_connection = True


@pytest.fixture(scope="session")
def web():
    server = ReplayServer()
    yield server
    server.close()


@pytest.fixture
def local_config(web):
    """Tools settings that may reach the replay server (and only it) and use it as both search engines."""
    from tools import FetchSettings, SearchSettings, ToolsConfig

    return ToolsConfig(
        fetch=FetchSettings(allow=("127.0.0.1/32",), timeout_s=3.0),
        search=SearchSettings(
            duckduckgo_url=f"{web.base}/html/", searxng_url=web.base, min_interval_s=0.0, backoff_s=0.01
        ),
    )

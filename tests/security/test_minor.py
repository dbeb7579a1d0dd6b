"""The minor items: chunked bodies over the cap, trickled headers, /healthz, lone surrogates, host spelling."""

from __future__ import annotations

import socket
import time

import pytest

from tests.security.conftest import KEY, call


def test_a_chunked_body_over_the_cap_is_413(server):
    chunk = b'{"messages": [{"role": "user", "content": "' + b"x" * 100_000

    def body():  # no content-length: chunked transfer encoding
        for _ in range(5):
            yield chunk

    r = call(
        server, "POST", "/v1/chat/completions", content=body(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


def test_incomplete_headers_are_answered_and_closed(meta_checkpoint, tmp_path):
    from serve.api import create_app
    from serve.build import build_coordinator
    from serve.config import ServeConfig
    from serve.local import LocalServer

    config = ServeConfig(
        meta_braider=str(meta_checkpoint), data_dir=str(tmp_path), api_key=KEY, use_tools=False
    )
    coord = build_coordinator(config)
    with LocalServer(create_app(coord, config), header_timeout_s=1.0) as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            start = time.monotonic()
            answer = conn.recv(1024)  # 408, then the server closes
            assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 5
            assert conn.recv(1024) == b""
        with socket.create_connection(
            (host, int(port)), timeout=10
        ) as conn:  # a normal request is unaffected
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(1024).startswith(b"HTTP/1.1 200")


def test_healthz_says_nothing_without_a_key(server):
    r = call(server, "GET", "/healthz", key=None)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@pytest.mark.parametrize("path, field", [("/v1/chat/completions", "messages"), ("/v1/braid/decide", "query")])
def test_a_lone_surrogate_is_a_400_naming_the_field(server, path, field):
    text = '"hi \\ud800 there"'
    raw = (
        '{"messages": [{"role": "user", "content": TEXT}]}' if "chat" in path else '{"query": TEXT}'
    ).replace("TEXT", text)
    r = call(server, "POST", path, content=raw.encode(), headers={"content-type": "application/json"})
    message = r.json()["error"]["message"]
    assert r.status_code == 400 and "not valid Unicode text" in message and field in message, message


def test_a_percent_encoded_host_is_refused_for_what_it_is():
    from tools.errors import UnsafeURLError
    from tools.safety import UrlPolicy

    with pytest.raises(UnsafeURLError, match="percent-encoded characters are not allowed in a host name"):
        UrlPolicy().check("http://%31%32%37.0.0.1/")

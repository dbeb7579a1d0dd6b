"""An API server on 127.0.0.1 with a key, the tiny zoo's meta-braider behind it, tools reaching only the
local page server: what a hostile client on this machine would talk to."""

from __future__ import annotations

import httpx2 as httpx
import pytest

KEY = "sk-security"


@pytest.fixture(scope="module")
def server(meta_checkpoint, pages, tmp_path_factory):
    from serve.api import create_app
    from serve.build import build_coordinator
    from serve.config import ServeConfig
    from serve.local import LocalServer
    from tools import FetchSettings, ToolsConfig

    config = ServeConfig(
        meta_braider=str(meta_checkpoint), data_dir=str(tmp_path_factory.mktemp("security")), api_key=KEY,
        tools=ToolsConfig(fetch=FetchSettings(allow=("127.0.0.1/32",), timeout_s=3.0)), max_tokens_limit=8,
    )  # fmt: skip
    coord = build_coordinator(config)
    with LocalServer(create_app(coord, config)) as srv:
        srv.coordinator = coord
        yield srv


def call(server, method: str, path: str, json=None, key: str | None = KEY, **kw) -> httpx.Response:
    headers = ({"Authorization": f"Bearer {key}"} if key else {}) | kw.pop("headers", {})
    return httpx.request(method, server.url + path, json=json, headers=headers, timeout=60, **kw)


@pytest.fixture
def serve_coordinator(meta_checkpoint, tmp_path):
    """make(**config overrides) -> a Coordinator over the tiny zoo's meta-braider (no HTTP)."""
    from serve.build import build_coordinator
    from serve.config import ServeConfig

    def make(**overrides):
        config = ServeConfig(meta_braider=str(meta_checkpoint), data_dir=str(tmp_path / "state"), api_key=None,
                             use_tools=False, **overrides)  # fmt: skip
        return build_coordinator(config)

    return make

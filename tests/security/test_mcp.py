"""MCP over HTTP: the API's key rule (a bearer key; none only on loopback)."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from tests.conftest import mcp_http_server
from tools import McpServerSpec, ToolExecutor, ToolsConfig
from tools.errors import ToolError
from tools.mcp_server import http_app

KEY = "mcp-key"


def test_no_key_beyond_loopback_is_refused(monkeypatch):
    monkeypatch.delenv("BRAID_API_KEY", raising=False)
    with ToolExecutor(builtin=False) as tools:
        for key in (None, "", "  "):  # empty is the same as missing, as for the API
            with pytest.raises(ValueError, match="refusing to serve MCP on '0.0.0.0' without an API key"):
                http_app(tools, host="0.0.0.0", api_key=key)
        http_app(tools, host="127.0.0.1")  # loopback: the SDK's DNS-rebinding protection applies
        http_app(tools, host="0.0.0.0", api_key=KEY)


@pytest.fixture(scope="module")
def keyed_server():
    with mcp_http_server("--api-key", KEY) as url:
        yield url


@pytest.mark.integration
def test_the_http_server_wants_the_key(keyed_server):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        assert httpx.post(keyed_server, json=hello, headers=headers, timeout=10).status_code == 401
    spec = McpServerSpec(name="keyed", url=keyed_server, api_key=KEY, timeout_s=20)
    with ToolExecutor(ToolsConfig(mcp_servers=(spec,)), builtin=False) as tools:
        assert {t["name"] for t in tools.list_tools()} == {"keyed.web_search", "keyed.extract_content"}
    with pytest.raises(ToolError, match="cannot connect to MCP server 'nokey'"):
        ToolExecutor(ToolsConfig(mcp_servers=(McpServerSpec(name="nokey", url=keyed_server, timeout_s=10),)))

"""MCP both ways: our tools behind an MCP server (in-process, stdio, streamable HTTP), and ToolExecutor calling
tools on external MCP servers through its MCP client."""

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import mcp_http_server
from tools import McpServerSpec, ToolError, ToolExecutor, ToolsConfig, ToolValidationError
from tools.mcp_server import build_mcp_server

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": os.environ.get("PATH", "")}


def test_in_process_client_lists_and_calls_our_tools(local_config, web):
    from mcp import Client

    async def session(executor):
        async with Client(build_mcp_server(executor)) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            found = await client.call_tool(
                "web_search", {"query": "transformer architecture", "maxResults": 1}
            )
            bad = await client.call_tool("web_search", {"query": "x", "maxResults": 99})
            return names, found, bad

    with ToolExecutor(local_config) as executor:
        names, found, bad = asyncio.run(session(executor))
    assert names == ["web_search", "extract_content"]
    assert found.structured_content["results"][0]["url"].startswith("https://en.wikipedia.org/")
    assert bad.is_error and "'maxResults'" in bad.content[0].text


@pytest.fixture(scope="module")
def tools_yaml(tmp_path_factory, web):
    path = tmp_path_factory.mktemp("mcp") / "tools.yaml"
    tools = {
        "fetch": {"allow": ["127.0.0.1/32"]},
        "search": {"duckduckgo_url": f"{web.base}/html/", "min_interval_s": 0},
    }
    path.write_text(yaml.safe_dump({"tools": tools}))
    return path


@pytest.mark.integration
def test_executor_calls_a_stdio_server():
    spec = McpServerSpec(
        name="calc", command=(sys.executable, str(ROOT / "tests/tools/mcp_calc_server.py")), env=ENV
    )
    with ToolExecutor(ToolsConfig(mcp_servers=(spec,))) as tools:
        remote = {t["name"]: t for t in tools.list_tools() if t["source"] == "mcp:calc"}
        assert set(remote) == {"calc.add", "calc.shout"}
        assert tools.execute("calc.add", {"a": 2, "b": 40}) == {"result": 42}
        assert tools.execute("calc.shout", {"text": "braid"}) == {"result": "BRAID"}
        with pytest.raises(ToolValidationError) as err:
            tools.execute("calc.add", {"a": 2})
        assert err.value.fields == ["b"]
        with pytest.raises(ToolValidationError, match="'a'"):
            tools.execute("calc.add", {"a": "two", "b": 1})


@pytest.mark.integration
def test_executor_calls_our_server_over_stdio(tools_yaml, web):
    cmd = (sys.executable, "-m", "tools.mcp_server", "--transport", "stdio", "--config", str(tools_yaml))
    spec = McpServerSpec(name="braid", command=cmd, env=ENV)
    with ToolExecutor(ToolsConfig(mcp_servers=(spec,)), builtin=False) as tools:
        out = tools.execute("braid.extract_content", {"url": f"{web.base}/article"})
        assert "gates at zero" in out["text"] and out["untrusted"] is True
        with pytest.raises(ToolError, match="private address"):  # the remote server's own URL policy holds
            tools.execute("braid.extract_content", {"url": "http://10.0.0.1/"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(tools_yaml):
    with mcp_http_server("--config", str(tools_yaml)) as url:
        yield url


@pytest.mark.integration
def test_executor_calls_a_streamable_http_server(http_server):
    with ToolExecutor(
        ToolsConfig(mcp_servers=(McpServerSpec(name="web", url=http_server),)), builtin=False
    ) as tools:
        assert {t["name"] for t in tools.list_tools()} == {"web.web_search", "web.extract_content"}
        out = tools.execute("web.web_search", {"query": "transformer architecture", "maxResults": 2})
        assert len(out["results"]) == 2
        with pytest.raises(ToolValidationError) as err:  # validated here, against the server's schema
            tools.execute("web.web_search", {"query": "x", "maxResults": 1000})
        assert err.value.fields == ["maxResults"]


def test_unreachable_mcp_server_is_a_clear_error():
    spec = McpServerSpec(name="gone", url=f"http://127.0.0.1:{free_port()}/mcp", timeout_s=5)
    with pytest.raises(ToolError, match="cannot connect to MCP server 'gone'"):
        ToolExecutor(ToolsConfig(mcp_servers=(spec,)))


def test_server_spec_needs_one_transport():
    with pytest.raises(ValueError, match="exactly one of"):
        McpServerSpec(name="x")
    with pytest.raises(ValueError, match="duplicate MCP server names"):
        ToolsConfig(mcp_servers=[{"name": "a", "url": "http://h/mcp"}, {"name": "a", "url": "http://h/mcp"}])

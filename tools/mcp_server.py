"""Our tools as an MCP server, over stdio or streamable HTTP (bound to 127.0.0.1 unless told otherwise).

Built on the SDK's low-level ``Server`` because our registry already holds each tool's JSON schema: the server
publishes those schemas as they are instead of re-deriving them from Python signatures.

Over HTTP the same key rule as the API holds: with a key (``--api-key`` or $BRAID_API_KEY; empty is none)
every request needs ``Authorization: Bearer <key>``; without one the server binds to loopback only, where
the SDK's DNS-rebinding protection is on. Beyond loopback that protection is off (the SDK cannot know the
host names clients use), which is why a key is required there.

    python -m tools.mcp_server --transport http --port 8765     # or: braid mcp serve
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
from typing import Any

from tools.errors import ToolError, UnknownToolError
from tools.executor import ToolExecutor
from tools.safety import is_loopback

DEFAULT_PORT = 8765


def build_mcp_server(executor: ToolExecutor, name: str = "llm-braid-tools") -> Any:
    import anyio
    import mcp.types as types
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(name=t["name"], description=t["description"], input_schema=t["input_schema"])
                for t in executor.list_tools()
            ]
        )

    async def call_tool(ctx, params) -> types.CallToolResult:
        try:
            result = await anyio.to_thread.run_sync(executor.execute, params.name, params.arguments or {})
        except UnknownToolError as e:
            raise MCPError(types.INVALID_PARAMS, str(e)) from None
        except ToolError as e:  # tool failures go back in the result, so a model can read and correct them
            return types.CallToolResult(content=[types.TextContent(text=str(e))], is_error=True)
        structured = result if isinstance(result, dict) else {"result": result}
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(result))], structured_content=structured
        )

    def input_schema(tool_name: str) -> dict | None:
        try:
            return executor.get(tool_name).input_schema
        except UnknownToolError:
            return None

    return Server(
        name,
        version="0.1.0",
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve_stdio(executor: ToolExecutor) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_mcp_server(executor)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


def http_app(executor: ToolExecutor, host: str = "127.0.0.1", path: str = "/mcp", api_key: str | None = None):
    """The streamable-HTTP ASGI app, behind a bearer key when one is given. ``api_key`` None reads
    $BRAID_API_KEY; an empty or blank key is no key, and no key beyond loopback is a ValueError."""
    raw = os.environ.get("BRAID_API_KEY") if api_key is None else api_key
    key = (raw or "").strip() or None
    if key is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve MCP on {host!r} without an API key: set --api-key or $BRAID_API_KEY, "
            "or bind to 127.0.0.1"
        )
    app = build_mcp_server(executor).streamable_http_app(streamable_http_path=path, host=host)
    return BearerKey(app, key) if key else app


class BearerKey:
    """ASGI middleware: 401 for HTTP requests without ``Authorization: Bearer <key>`` (lifespan passes)."""

    def __init__(self, app: Any, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                body = b'{"error": "missing or wrong API key (send Authorization: Bearer <key>)"}'
                headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def serve_http(
    executor: ToolExecutor,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    path: str = "/mcp",
    api_key: str | None = None,
) -> None:
    import uvicorn

    uvicorn.run(http_app(executor, host, path, api_key), host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    from tools.config import ToolsConfig

    parser = argparse.ArgumentParser(description="Serve llm-braid's tools over MCP.")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--config", help="YAML with a 'tools:' section (ToolsConfig)")
    parser.add_argument("--api-key", default=None, help="bearer key for HTTP (default: $BRAID_API_KEY)")
    args = parser.parse_args(argv)
    config = ToolsConfig.from_yaml(args.config) if args.config else ToolsConfig()
    with ToolExecutor(config) as executor:
        if args.transport == "stdio":
            serve_stdio(executor)
        else:
            serve_http(executor, args.host, args.port, api_key=args.api_key)


if __name__ == "__main__":
    main()

"""Calling tools on external MCP servers (stdio subprocess or streamable HTTP) through ToolExecutor.execute().

The MCP client is async and must be entered and left on one event loop, so each connection owns a private loop
on a daemon thread; synchronous callers hand it coroutines and wait with a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
from typing import Any

from tools.config import McpServerSpec
from tools.errors import ToolError, ToolTimeoutError, ToolValidationError
from tools.tool import Tool


class McpConnection:
    def __init__(self, spec: McpServerSpec):
        self.spec = spec
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"mcp-{spec.name}", daemon=True)
        self._thread.start()
        self._ready: concurrent.futures.Future = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._main = asyncio.run_coroutine_threadsafe(self._hold(), self._loop)
        try:
            self.client = self._ready.result(timeout=spec.timeout_s)
        except Exception as e:
            self.close()
            where = spec.url or " ".join(spec.command or ())
            raise ToolError(f"cannot connect to MCP server {spec.name!r} ({where}): {e!r}") from e

    def _target(self) -> Any:
        from mcp import StdioServerParameters

        if self.spec.url and self.spec.api_key:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            client = httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {self.spec.api_key}"}, follow_redirects=True,
                timeout=httpx2.Timeout(self.spec.timeout_s, read=300.0),
            )  # fmt: skip
            return streamable_http_client(self.spec.url, http_client=client)
        if self.spec.url:
            return self.spec.url
        cmd, *args = self.spec.command
        return StdioServerParameters(command=cmd, args=args, env=self.spec.env)

    async def _hold(self) -> None:
        from mcp import Client

        self._stop = asyncio.Event()
        try:
            async with Client(self._target(), read_timeout_seconds=self.spec.timeout_s) as client:
                self._ready.set_result(client)
                await self._stop.wait()
        except BaseException as e:
            if not self._ready.done():
                self._ready.set_exception(e)
            else:
                raise

    def run(self, coro, timeout: float | None = None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=timeout or self.spec.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ToolTimeoutError(
                f"MCP server {self.spec.name!r} did not answer within {timeout}s"
            ) from None

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        with contextlib.suppress(Exception):  # the connection may already be gone; closing must not raise
            self._main.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def remote_tools(conn: McpConnection) -> list[Tool]:
    """One Tool per tool the server lists (all pages), validating with the server's own JSON schema."""

    async def list_all() -> list:
        tools, cursor = [], None
        while True:
            page = await conn.client.list_tools(cursor=cursor) if cursor else await conn.client.list_tools()
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                return tools

    return [_remote_tool(conn, t) for t in conn.run(list_all())]


def _remote_tool(conn: McpConnection, spec_tool) -> Tool:
    import jsonschema

    name = f"{conn.spec.name}.{spec_tool.name}"
    validator = jsonschema.Draft202012Validator(spec_tool.input_schema)

    def validate(args: dict) -> dict:
        errors = sorted(validator.iter_errors(args), key=lambda e: list(e.path))
        if errors:
            fields = [".".join(map(str, e.path)) or _missing_field(e) for e in errors]
            raise ToolValidationError(
                name, fields, "; ".join(f"{f!r}: {e.message}" for f, e in zip(fields, errors, strict=True))
            )
        return args

    def call(args: dict) -> Any:
        result = conn.run(conn.client.call_tool(spec_tool.name, args))
        texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
        if result.is_error:
            raise ToolError(f"{name}: {' '.join(texts) or 'the server reported an error'}")
        if result.structured_content is not None:
            return result.structured_content
        return _parse_text(texts)

    return Tool(
        name,
        spec_tool.description or "",
        spec_tool.input_schema,
        validate,
        call,
        source=f"mcp:{conn.spec.name}",
    )


def _missing_field(error) -> str:
    if error.validator == "required":  # the message is "'x' is a required property"
        return error.message.split("'")[1] if "'" in error.message else "(arguments)"
    return "(arguments)"


def _parse_text(texts: list[str]) -> Any:
    if len(texts) == 1:
        try:
            return json.loads(texts[0])
        except ValueError:
            return {"text": texts[0]}
    return {"text": "\n".join(texts)}

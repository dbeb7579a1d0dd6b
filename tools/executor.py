"""ToolExecutor: a registry of JSON-schema'd tools and one ``execute(name, args)`` for all of them.

Local tools validate their arguments with a pydantic model; tools from external MCP servers validate with the
JSON schema the server published. Either way a bad argument raises ToolValidationError naming the field, an
unknown name raises UnknownToolError listing the tools there are, and every call has a timeout.

A Python thread cannot be killed, so a call runs on a thread of its own: one that outlives its timeout is
abandoned (the caller gets ToolTimeoutError at once) and holds no worker that later calls need. Calls still
running, abandoned ones included, are capped (``max_running_calls``); past the cap a call is refused at once
rather than queued behind stuck ones. Built-in tools end by themselves (the fetcher has one total deadline).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from tools.builtin import builtin_tools
from tools.config import ToolsConfig
from tools.errors import ToolTimeoutError, ToolValidationError, UnknownToolError
from tools.mcp_client import McpConnection, remote_tools
from tools.safety import Resolver, system_resolver
from tools.tool import Tool, to_jsonable


class ToolExecutor:
    """``ToolExecutor()`` (settings: ``ToolsConfig.default()``) registers web_search and extract_content;
    ``memory_manager=`` adds search_memory; ``config.mcp_servers`` adds the tools of each external MCP server as ``<server>.<tool>``."""

    def __init__(
        self,
        config: ToolsConfig | None = None,
        *,
        memory_manager: Any = None,
        resolver: Resolver = system_resolver,
        builtin: bool = True,
    ):
        self.config = config or ToolsConfig.default()
        self.resolver = resolver
        self._tools: dict[str, Tool] = {}
        self._running, self._lock = 0, threading.Lock()
        self._connections: list[Any] = []
        if builtin:
            for tool in builtin_tools(self.config, resolver, memory_manager):
                self.register(tool)
        for spec in self.config.mcp_servers:
            self.add_mcp_server(spec)

    # -- registry ---------------------------------------------------------------------------------------------
    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(
                f"a tool named {tool.name!r} is already registered ({self._tools[tool.name].source})"
            )
        self._tools[tool.name] = tool

    def register_function(
        self, fn: Callable[[Any], Any], params: type[BaseModel], name: str, description: str
    ):
        self.register(Tool.local(name, description, params, fn))

    def add_mcp_server(self, spec) -> list[str]:
        """Connect to an external MCP server and register its tools; returns their names here."""
        conn = McpConnection(spec)
        self._connections.append(conn)
        tools = remote_tools(conn)
        for tool in tools:
            self.register(tool)
        return [t.name for t in tools]

    def list_tools(self) -> list[dict]:
        return [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema, "source": t.source}
            for t in self._tools.values()
        ]

    def get(self, name: str) -> Tool:
        if name not in self._tools:
            raise UnknownToolError(name, list(self._tools))
        return self._tools[name]

    # -- execution --------------------------------------------------------------------------------------------
    def execute(self, name: str, args: dict | None = None, timeout_s: float | None = None) -> Any:
        """Validate, run with a timeout, and return a JSON-able result."""
        tool = self.get(name)
        if args is not None and not isinstance(args, dict):
            raise ToolValidationError(
                name, ["(arguments)"], f"arguments must be an object, got {type(args).__name__}"
            )
        validated = tool.validate(args or {})
        timeout = timeout_s or self.config.tool_timeout_s
        done, out = self._start(name, tool, validated)
        if not done.wait(timeout):
            raise ToolTimeoutError(f"{name} did not finish within {timeout:g}s")
        if "error" in out:
            raise out["error"]
        return to_jsonable(out["value"])

    @property
    def running(self) -> int:
        """Tool calls still running, including any abandoned past their timeout."""
        return self._running

    def _start(self, name: str, tool: Tool, validated: Any) -> tuple[threading.Event, dict]:
        with self._lock:
            if self._running >= self.config.max_running_calls:
                raise ToolTimeoutError(
                    f"{name} was not started: {self._running} tool calls are still running "
                    f"(max_running_calls {self.config.max_running_calls})"
                )
            self._running += 1
        done, out = threading.Event(), {}

        def run() -> None:
            try:
                out["value"] = tool.call(validated)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                out["error"] = e
            finally:
                with self._lock:
                    self._running -= 1
                done.set()

        threading.Thread(target=run, name=f"tool-{name}", daemon=True).start()
        return done, out

    async def aexecute(self, name: str, args: dict | None = None, timeout_s: float | None = None) -> Any:
        import anyio

        return await anyio.to_thread.run_sync(lambda: self.execute(name, args, timeout_s))

    def close(self) -> None:
        for conn in self._connections:
            conn.close()
        self._connections.clear()

    def __enter__(self) -> ToolExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

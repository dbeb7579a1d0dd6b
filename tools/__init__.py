"""Tools for the coordinator: ``ToolExecutor`` with web_search, extract_content (SSRF-safe), search_memory, and
MCP in both directions (serve our tools; call tools of external MCP servers through the same ``execute``)."""

from tools.config import FetchSettings, McpServerSpec, SearchSettings, ToolsConfig
from tools.errors import (
    FetchError,
    ProviderError,
    ToolError,
    ToolTimeoutError,
    ToolValidationError,
    UnknownToolError,
    UnsafeURLError,
)
from tools.executor import Tool, ToolExecutor
from tools.safety import UrlPolicy

__all__ = [
    "FetchError",
    "FetchSettings",
    "McpServerSpec",
    "ProviderError",
    "SearchSettings",
    "Tool",
    "ToolError",
    "ToolExecutor",
    "ToolTimeoutError",
    "ToolValidationError",
    "ToolsConfig",
    "UnknownToolError",
    "UnsafeURLError",
    "UrlPolicy",
]

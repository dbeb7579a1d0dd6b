"""Tool settings as frozen pydantic models, loadable from YAML. Defaults are safe: no private addresses, caps on."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown", "application/pdf")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FetchSettings(_Frozen):
    max_bytes: int = Field(5_000_000, gt=0, description="stop reading a body past this size")
    timeout_s: float = Field(10.0, gt=0, description="wall-clock cap for one fetch, redirects included")
    max_redirects: int = Field(5, ge=0)
    content_types: tuple[str, ...] = TEXT_TYPES
    user_agent: str = "llm-braid/0.1 (+https://github.com/llm-braid)"
    allow: tuple[str, ...] = Field(
        (), description="CIDR networks / host names exempt from the public-IP rule"
    )


class SearchSettings(_Frozen):
    default_engine: str = "duckduckgo"
    duckduckgo_url: str = "https://html.duckduckgo.com/html/"
    searxng_url: str | None = Field(
        None, description="base URL of a SearxNG instance with the JSON format on"
    )
    timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles per attempt")
    min_interval_s: float = Field(
        1.0, ge=0, description="rate limit: least time between requests to a provider"
    )


class McpServerSpec(_Frozen):
    """An external MCP server whose tools ToolExecutor registers as ``<name>.<tool>``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    command: tuple[str, ...] | None = Field(None, description="launch over stdio: argv")
    url: str | None = Field(None, description="streamable-HTTP endpoint, e.g. http://127.0.0.1:8765/mcp")
    env: dict[str, str] | None = None
    api_key: str | None = Field(None, description="HTTP: sent as 'Authorization: Bearer <key>'")
    timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                f"MCP server {self.name!r}: give exactly one of 'command' (stdio) or 'url' (HTTP)"
            )
        if self.command is not None and not self.command:
            raise ValueError(f"MCP server {self.name!r}: 'command' is empty")
        return self


class ToolsConfig(_Frozen):
    fetch: FetchSettings = FetchSettings()
    search: SearchSettings = SearchSettings()
    mcp_servers: tuple[McpServerSpec, ...] = ()
    tool_timeout_s: float = Field(30.0, gt=0, description="cap on any one execute() call")
    max_running_calls: int = Field(
        32,
        ge=1,
        description="tool calls running at once, those past their timeout included; more are refused",
    )

    @model_validator(mode="after")
    def _unique_servers(self) -> ToolsConfig:
        names = [s.name for s in self.mcp_servers]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"duplicate MCP server names: {dupes}")
        return self

    @classmethod
    def default(cls) -> ToolsConfig:
        """The settings ``ToolExecutor()`` uses: the YAML file named by BRAID_TOOLS_CONFIG (the environment,
        then ``.env``), else the safe defaults."""
        import os

        from dotenv import dotenv_values, find_dotenv

        env = find_dotenv(usecwd=True)
        path = os.environ.get("BRAID_TOOLS_CONFIG") or (
            dotenv_values(env).get("BRAID_TOOLS_CONFIG") if env else None
        )
        return cls.from_yaml(path) if path else cls()

    @classmethod
    def from_yaml(cls, path: str | Path) -> ToolsConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data.get("tools", data))

"""``braid tools list|run`` and ``braid mcp serve``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

tools_app = typer.Typer(
    help="Tools: web_search, extract_content, and tools of configured MCP servers.", no_args_is_help=True
)
mcp_app = typer.Typer(help="Serve our tools over MCP.", no_args_is_help=True)
console = Console()
ConfigOpt = typer.Option(None, exists=True, dir_okay=False, help="YAML with a 'tools:' section")


def _executor(config: Path | None):
    from tools import ToolExecutor, ToolsConfig

    return ToolExecutor(ToolsConfig.from_yaml(config) if config else ToolsConfig())


@tools_app.command("list")
def list_tools(config: Path | None = ConfigOpt) -> None:
    """Show every registered tool and its arguments."""
    table = Table(title="tools")
    for col in ("name", "source", "arguments", "description"):
        table.add_column(col)
    with _executor(config) as ex:
        for t in ex.list_tools():
            props = t["input_schema"].get("properties", {})
            required = set(t["input_schema"].get("required", []))
            args = ", ".join(f"{k}{'*' if k in required else ''}" for k in props)
            table.add_row(t["name"], t["source"], args, t["description"])
    console.print(table)


@tools_app.command("run")
def run_tool(
    name: str,
    args: str = typer.Argument("{}", help='JSON object, e.g. \'{"query": "transformers"}\''),
    config: Path | None = ConfigOpt,
) -> None:
    """Execute one tool and print its JSON result."""
    from tools import ToolError

    try:
        parsed = json.loads(args)
    except ValueError as e:
        raise typer.BadParameter(f"ARGS is not JSON: {e}") from None
    with _executor(config) as ex:
        try:
            console.print_json(json.dumps(ex.execute(name, parsed)))
        except ToolError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(1) from None


@mcp_app.command("serve")
def serve(
    transport: str = typer.Option("stdio", help="stdio or http (streamable HTTP)"),
    host: str = typer.Option("127.0.0.1", help="HTTP bind address; loopback by default"),
    port: int = typer.Option(8765),
    config: Path | None = ConfigOpt,
    api_key: str | None = typer.Option(
        None,
        help="HTTP: require 'Authorization: Bearer <key>' (default: $BRAID_API_KEY); needed beyond loopback",
    ),
) -> None:
    """Expose our tools to MCP clients."""
    from tools.mcp_server import http_app, serve_stdio

    if transport not in ("stdio", "http"):
        raise typer.BadParameter(f"transport must be 'stdio' or 'http', got {transport!r}")
    with _executor(config) as ex:
        if transport == "stdio":
            serve_stdio(ex)
            return
        try:
            app = http_app(ex, host, api_key=api_key)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--host") from None
        Console(stderr=True).print(f"MCP (streamable HTTP) on http://{host}:{port}/mcp")
        import uvicorn

        uvicorn.run(app, host=host, port=port, log_level="warning")

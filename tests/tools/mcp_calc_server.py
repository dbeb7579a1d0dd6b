"""An external MCP server written with the SDK's high-level MCPServer, launched over stdio by the tests."""

from mcp.server import MCPServer

server = MCPServer("calc")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case a string."""
    return text.upper()


if __name__ == "__main__":
    server.run("stdio")

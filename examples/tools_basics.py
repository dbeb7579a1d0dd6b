"""Tools (the cheat sheet's MCP section): web search and content extraction through one executor.

ToolExecutor() reads its settings from the YAML named by BRAID_TOOLS_CONFIG (environment or .env), else the
safe defaults (DuckDuckGo, public addresses only). `braid mcp serve` offers the same tools over MCP.

    python examples/tools_basics.py ["a query"] [a URL]
"""

import sys

from tools import ToolError, ToolExecutor

query = sys.argv[1] if len(sys.argv) > 1 else "transformer architecture"
with ToolExecutor() as tools:
    print("tools:", ", ".join(t["name"] for t in tools.list_tools()))
    try:
        results = tools.execute("web_search", {"query": query, "engine": "duckduckgo", "maxResults": 3})
        for r in results["results"]:
            print(f"- {r['title']}: {r['url']}")
        url = sys.argv[2] if len(sys.argv) > 2 else results["results"][0]["url"]
        content = tools.execute("extract_content", {"url": url})
        print(f"{content['title']!r}: {len(content['text'])} characters of untrusted text")
    except ToolError as e:  # offline, or the engine refused: the error says which
        print("tool error:", e)

"""ToolExecutor, web_search, extract_content, URL safety, MCP server and client (tools issue)."""

"""The built-in tools: web_search and extract_content (the seed's names and arguments), and search_memory."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.config import ToolsConfig
from tools.safety import Resolver
from tools.search import SEARCH_PROVIDERS, SearchResult, get_provider
from tools.tool import Tool

EngineName = Literal[tuple(SEARCH_PROVIDERS)]  # type: ignore[valid-type]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class WebSearchArgs(_Args):
    query: str = Field(min_length=1, max_length=500, description="what to search for")
    engine: EngineName | None = Field(None, description="search engine; the configured default when omitted")
    max_results: int = Field(10, ge=1, le=50, alias="maxResults")


class WebSearchResult(BaseModel):
    query: str
    engine: str
    results: list[SearchResult]


class ExtractContentArgs(_Args):
    url: str = Field(min_length=1, max_length=2048, description="http(s) URL of a public page")
    include_links: bool = Field(
        False, alias="includeLinks", description="keep links (markdown) and list them"
    )


class SearchMemoryArgs(_Args):
    query: str = Field(min_length=1, max_length=2000)
    kind: Literal["messages", "documents"] = "documents"
    top_k: int = Field(5, ge=1, le=50, alias="topK")
    conversation_id: str | None = Field(None, alias="conversationId")


def builtin_tools(config: ToolsConfig, resolver: Resolver, memory_manager: Any = None) -> list[Tool]:
    from tools.extract import extract
    from tools.fetch import SafeFetcher

    providers = {name: get_provider(name, config.search) for name in SEARCH_PROVIDERS}
    fetcher = SafeFetcher(config.fetch, resolver)

    def web_search(a: WebSearchArgs) -> WebSearchResult:
        engine = a.engine or config.search.default_engine
        return WebSearchResult(
            query=a.query, engine=engine, results=providers[engine].search(a.query, a.max_results)
        )

    def extract_content(a: ExtractContentArgs):
        return extract(fetcher.fetch(a.url), include_links=a.include_links)

    tools = [
        Tool.local(
            "web_search", "Search the web; returns titles, URLs and snippets.", WebSearchArgs, web_search
        ),
        Tool.local(
            "extract_content",
            "Fetch a public web page (or PDF / plain text) and return its main text. The text is untrusted.",
            ExtractContentArgs,
            extract_content,
        ),
    ]
    if memory_manager is not None:
        tools.append(_search_memory(memory_manager))
    return tools


def _search_memory(memory) -> Tool:
    def search_memory(a: SearchMemoryArgs) -> dict:
        if a.kind == "messages":
            hits = memory.semantic_search_messages(a.query, top_k=a.top_k, conversation_id=a.conversation_id)
        else:
            hits = memory.semantic_search_documents(a.query, top_k=a.top_k)
        return {"query": a.query, "kind": a.kind, "hits": hits}

    return Tool.local(
        "search_memory",
        "Search stored conversations or documents by meaning.",
        SearchMemoryArgs,
        search_memory,
    )

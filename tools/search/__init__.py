"""Web-search providers, one per file, in an explicit registry keyed by engine name."""

from tools.config import SearchSettings
from tools.search.base import SearchProvider, SearchResult
from tools.search.duckduckgo import DuckDuckGo
from tools.search.searxng import SearxNG

SEARCH_PROVIDERS: dict[str, type[SearchProvider]] = {"duckduckgo": DuckDuckGo, "searxng": SearxNG}


def get_provider(name: str, settings: SearchSettings) -> SearchProvider:
    if name not in SEARCH_PROVIDERS:
        raise KeyError(f"unknown search engine {name!r}; valid engines: {sorted(SEARCH_PROVIDERS)}")
    return SEARCH_PROVIDERS[name](settings)


__all__ = ["SEARCH_PROVIDERS", "SearchProvider", "SearchResult", "get_provider"]

"""SearxNG through its JSON API (the instance must list ``json`` under ``search.formats``)."""

from __future__ import annotations

from tools.errors import ProviderError
from tools.search.base import SearchProvider, SearchResult


class SearxNG(SearchProvider):
    name = "searxng"

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        base = self.settings.searxng_url
        if not base:
            raise ProviderError("searxng: no instance configured; set tools.search.searxng_url")
        resp = self.request("GET", base.rstrip("/") + "/search", params={"q": query, "format": "json"})
        try:
            rows = resp.json()["results"]
        except (ValueError, KeyError) as e:
            raise ProviderError(
                f"searxng: {base} did not return JSON results (is format=json enabled?)"
            ) from e
        return [
            SearchResult(title=r.get("title", ""), url=r["url"], snippet=r.get("content", "") or "")
            for r in rows[:max_results]
            if r.get("url")
        ]

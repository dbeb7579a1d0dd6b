"""DuckDuckGo through its HTML endpoint (no API key): POST the query, parse the result blocks."""

from __future__ import annotations

from urllib.parse import parse_qs, urljoin, urlsplit

from tools.search.base import SearchProvider, SearchResult


def _unwrap(href: str) -> str:
    """DuckDuckGo links go through //duckduckgo.com/l/?uddg=<target>; return the target."""
    parts = urlsplit(urljoin("https://duckduckgo.com/", href))
    if parts.path.startswith("/l/") and (target := parse_qs(parts.query).get("uddg")):
        return target[0]
    return parts.geturl()


class DuckDuckGo(SearchProvider):
    name = "duckduckgo"

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        import lxml.html

        resp = self.request("POST", self.settings.duckduckgo_url, data={"q": query, "kl": "wt-wt"})
        tree = lxml.html.fromstring(resp.text or "<html/>")
        results: list[SearchResult] = []
        for block in tree.xpath('//div[contains(concat(" ", @class, " "), " result ")]'):
            if "result--ad" in block.get("class", ""):
                continue  # sponsored
            link = block.xpath('.//a[contains(@class, "result__a")]')
            if not link:
                continue
            snippet = block.xpath('.//*[contains(@class, "result__snippet")]')
            results.append(
                SearchResult(
                    title=link[0].text_content().strip(),
                    url=_unwrap(link[0].get("href", "")),
                    snippet=snippet[0].text_content().strip() if snippet else "",
                )
            )
            if len(results) >= max_results:
                break
        return results

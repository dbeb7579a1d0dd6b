"""A fetcher that cannot be pointed inward: every hop is resolved once, checked, and connected to by address.

Caps: a wall-clock deadline for the whole fetch (redirects included), a streaming byte cap on the decoded body
(so a compressed bomb stops too), a redirect cap, and a content-type check before the body is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin

from tools.config import FetchSettings
from tools.errors import FetchError
from tools.safety import PinnedURL, Resolver, UrlPolicy, system_resolver


@dataclass
class FetchedPage:
    url: str  # the final URL, after redirects
    status: int
    media_type: str  # "text/html", "" when the server sent none
    charset: str | None  # from the Content-Type header
    body: bytes
    redirects: list[str] = field(default_factory=list)


def media_type(content_type: str) -> tuple[str, str | None]:
    """('text/html', 'utf-8') from 'text/html; charset="UTF-8"'."""
    kind, *params = [p.strip() for p in content_type.split(";")]
    charset = None
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower() or None
    return kind.lower(), charset


class SafeFetcher:
    """``fetch(url)`` under one deadline for everything: name checks, connects, headers and body of every hop.

    httpx's timeouts are per operation, so a server that sends one header byte every few seconds never trips
    them; the whole fetch therefore runs as one asyncio task under ``asyncio.wait_for``, which cancels it
    wherever it is waiting when the deadline passes.
    """

    def __init__(self, settings: FetchSettings | None = None, resolver: Resolver = system_resolver):
        self.settings = settings or FetchSettings()
        self.policy = UrlPolicy(allow=self.settings.allow, resolver=resolver)

    def fetch(self, url: str) -> FetchedPage:
        import asyncio

        try:
            return asyncio.run(asyncio.wait_for(self._fetch(url), self.settings.timeout_s))
        except TimeoutError:
            raise FetchError(f"timed out after {self.settings.timeout_s:g}s fetching {url}") from None

    async def _fetch(self, url: str) -> FetchedPage:
        import asyncio

        import httpx2

        redirects: list[str] = []
        # trust_env=False: an environment proxy would resolve the name itself and undo the pinning
        async with httpx2.AsyncClient(follow_redirects=False, trust_env=False) as client:
            current = url
            for _ in range(self.settings.max_redirects + 1):
                # name resolution blocks: in a thread, so the deadline can still cancel the wait
                target = await asyncio.to_thread(self.policy.check, current)
                try:
                    page, location = await self._get(client, target)
                except httpx2.HTTPError as e:
                    raise FetchError(f"could not fetch {current}: {type(e).__name__}: {e}") from e
                if page is not None:
                    page.redirects = redirects
                    return page
                current = urljoin(current, location)
                redirects.append(current)
        raise FetchError(f"too many redirects (more than {self.settings.max_redirects}) starting at {url}")

    async def _get(self, client, target: PinnedURL) -> tuple[FetchedPage | None, str]:
        headers = {"Host": target.host_header, "User-Agent": self.settings.user_agent, "Accept": "*/*"}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = client.build_request("GET", target.connect_url, headers=headers, extensions=extensions,
                                       timeout=self.settings.timeout_s)  # fmt: skip
        resp = await client.send(request, stream=True)
        try:
            if resp.is_redirect:
                if "location" not in resp.headers:
                    raise FetchError(f"redirect without a Location header from {target.url}")
                return None, resp.headers["location"]
            if resp.status_code >= 400:
                raise FetchError(f"HTTP {resp.status_code} from {target.url}")
            kind, charset = media_type(resp.headers.get("content-type", ""))
            if kind and kind not in self.settings.content_types:
                raise FetchError(
                    f"unsupported content type {kind!r} at {target.url} (supported: {', '.join(self.settings.content_types)})"
                )
            body = await self._read_capped(resp, target.url)
        finally:
            await resp.aclose()
        return FetchedPage(target.url, resp.status_code, kind, charset, body), ""

    async def _read_capped(self, resp, url: str) -> bytes:
        cap = self.settings.max_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(f"page too large: {url} declares {int(declared)} bytes, over the {cap}-byte cap")
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > cap:
                raise FetchError(f"page too large: {url} passed the {cap}-byte cap while streaming")
        return bytes(body)

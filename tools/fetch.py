"""A fetcher that cannot be pointed inward: every hop is resolved once, checked, and connected to by address.

Caps: a wall-clock deadline for the whole fetch (redirects included), a streaming byte cap on the decoded body
(so a compressed bomb stops too), a redirect cap, and a content-type check before the body is read.
"""

from __future__ import annotations

import time
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
    def __init__(self, settings: FetchSettings | None = None, resolver: Resolver = system_resolver):
        self.settings = settings or FetchSettings()
        self.policy = UrlPolicy(allow=self.settings.allow, resolver=resolver)

    def fetch(self, url: str) -> FetchedPage:
        import httpx2

        deadline = time.monotonic() + self.settings.timeout_s
        redirects: list[str] = []
        # trust_env=False: an environment proxy would resolve the name itself and undo the pinning
        with httpx2.Client(follow_redirects=False, trust_env=False) as client:
            current = url
            for _ in range(self.settings.max_redirects + 1):
                target = self.policy.check(current)
                try:
                    page, location = self._get(client, target, deadline)
                except httpx2.TimeoutException as e:
                    raise FetchError(
                        f"timed out after {self.settings.timeout_s:g}s fetching {current}"
                    ) from e
                except httpx2.HTTPError as e:
                    raise FetchError(f"could not fetch {current}: {type(e).__name__}: {e}") from e
                if page is not None:
                    page.redirects = redirects
                    return page
                current = urljoin(current, location)
                redirects.append(current)
        raise FetchError(f"too many redirects (more than {self.settings.max_redirects}) starting at {url}")

    def _get(self, client, target: PinnedURL, deadline: float) -> tuple[FetchedPage | None, str]:
        import httpx2

        headers = {"Host": target.host_header, "User-Agent": self.settings.user_agent, "Accept": "*/*"}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        remaining = self._remaining(deadline, target.url)
        with client.stream(
            "GET",
            target.connect_url,
            headers=headers,
            extensions=extensions,
            timeout=httpx2.Timeout(remaining),
        ) as resp:
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
            body = self._read_capped(resp, target.url, deadline)
        return FetchedPage(target.url, resp.status_code, kind, charset, body), ""

    def _read_capped(self, resp, url: str, deadline: float) -> bytes:
        cap = self.settings.max_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(f"page too large: {url} declares {int(declared)} bytes, over the {cap}-byte cap")
        body = bytearray()
        for chunk in resp.iter_bytes():
            body += chunk
            if len(body) > cap:
                raise FetchError(f"page too large: {url} passed the {cap}-byte cap while streaming")
            self._remaining(deadline, url)
        return bytes(body)

    def _remaining(self, deadline: float, url: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"timed out after {self.settings.timeout_s:g}s fetching {url}")
        return left

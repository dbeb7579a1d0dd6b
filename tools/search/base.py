"""The search-provider interface: rate limiting and retries with backoff live here, parsing in each provider."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

from pydantic import BaseModel

from tools.config import SearchSettings
from tools.errors import ProviderError

RETRY_STATUS = {429, 500, 502, 503, 504}


class SearchResult(BaseModel):
    title: str
    url: str
    snippet: str = ""


class RateLimiter:
    """At most one request per ``min_interval_s``, across threads."""

    def __init__(self, min_interval_s: float):
        self.min_interval_s = min_interval_s
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.min_interval_s
        if start > now:
            time.sleep(start - now)


class SearchProvider(ABC):
    name: str

    def __init__(self, settings: SearchSettings):
        self.settings = settings
        self.limiter = RateLimiter(settings.min_interval_s)

    @abstractmethod
    def search(self, query: str, max_results: int) -> list[SearchResult]: ...

    def request(self, method: str, url: str, **kwargs):
        """One HTTP request with rate limiting and retries (connection errors, 429, 5xx; Retry-After honoured)."""
        import httpx2

        attempts = self.settings.max_retries + 1
        last = ""
        for attempt in range(attempts):
            self.limiter.wait()
            delay = self.settings.backoff_s * 2**attempt
            try:
                resp = httpx2.request(method, url, timeout=self.settings.timeout_s, trust_env=False, **kwargs)
            except httpx2.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code not in RETRY_STATUS:
                    if resp.status_code >= 400:
                        raise ProviderError(
                            f"{self.name}: HTTP {resp.status_code} from {url}: {resp.text[:200]}"
                        )
                    return resp
                last = f"HTTP {resp.status_code}"
                delay = max(delay, _retry_after(resp))
            if attempt + 1 < attempts:
                time.sleep(delay)
        raise ProviderError(f"{self.name} unreachable at {url}: {last} after {attempts} attempt(s)")


def _retry_after(resp) -> float:
    value = resp.headers.get("retry-after", "")
    return min(float(value), 30.0) if value.replace(".", "", 1).isdigit() else 0.0

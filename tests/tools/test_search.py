"""web_search against replayed DuckDuckGo and SearxNG responses on 127.0.0.1."""

import time

import pytest

from tools import ProviderError, SearchSettings, ToolExecutor, ToolsConfig
from tools.search import SEARCH_PROVIDERS, get_provider
from tools.search.base import RateLimiter

WIKI = "https://en.wikipedia.org/wiki/Transformer_(deep_learning_architecture)"


@pytest.fixture
def tools(local_config):
    with ToolExecutor(local_config) as ex:
        yield ex


def test_duckduckgo_seed_call(tools, web):
    out = tools.execute(
        "web_search", {"query": "transformer architecture", "engine": "duckduckgo", "maxResults": 10}
    )
    urls = [r["url"] for r in out["results"]]
    assert urls == [
        WIKI,
        "https://arxiv.org/abs/1706.03762",
        "https://jalammar.github.io/illustrated-transformer/",
    ]
    assert out["results"][0]["title"] == "Transformer (deep learning architecture) - Wikipedia"
    assert "multi-head attention" in out["results"][0]["snippet"]
    assert not any("Sponsored" in r["snippet"] for r in out["results"])  # the ad is skipped
    method, _, form = next(r for r in reversed(web.requests) if r[1] == "/html/")
    assert method == "POST" and form["q"] == ["transformer architecture"]


def test_max_results_and_default_engine(tools):
    out = tools.execute("web_search", {"query": "transformer architecture", "maxResults": 2})
    assert out["engine"] == "duckduckgo" and len(out["results"]) == 2


def test_searxng_json(tools, web):
    out = tools.execute(
        "web_search", {"query": "transformer architecture", "engine": "searxng", "maxResults": 2}
    )
    assert [r["url"] for r in out["results"]] == [WIKI, "https://arxiv.org/abs/1706.03762"]
    _, _, params = next(r for r in reversed(web.requests) if r[1] == "/search")
    assert params == {"q": ["transformer architecture"], "format": ["json"]}


def test_retries_with_backoff_on_429(web):
    settings = SearchSettings(
        duckduckgo_url=f"{web.base}/flaky/html/", min_interval_s=0, backoff_s=0.01, max_retries=3
    )
    results = get_provider("duckduckgo", settings).search("q", 5)
    assert len(results) == 3 and web.hits["/flaky/html/"] == 3


def test_unreachable_provider_is_a_clear_error():
    settings = SearchSettings(
        duckduckgo_url="http://127.0.0.1:9/html/", min_interval_s=0, backoff_s=0.01, max_retries=2
    )
    start = time.monotonic()
    with pytest.raises(ProviderError, match=r"duckduckgo unreachable at http://127.0.0.1:9/html/.*3 attempt"):
        get_provider("duckduckgo", settings).search("q", 5)
    assert time.monotonic() - start < 5


def test_searxng_without_json_format(web):
    settings = SearchSettings(searxng_url=f"{web.base}/forbidden", min_interval_s=0)
    with pytest.raises(ProviderError, match="HTTP 403"):
        get_provider("searxng", settings).search("q", 5)


def test_searxng_not_configured():
    with ToolExecutor(ToolsConfig()) as tools, pytest.raises(ProviderError, match="searxng_url"):
        tools.execute("web_search", {"query": "x", "engine": "searxng"})


def test_rate_limiter_spaces_requests():
    limiter = RateLimiter(0.1)
    start = time.monotonic()
    for _ in range(4):
        limiter.wait()
    assert time.monotonic() - start >= 0.29


def test_unknown_engine_lists_valid_ones():
    with pytest.raises(KeyError, match="duckduckgo"):
        get_provider("bing", SearchSettings())
    assert set(SEARCH_PROVIDERS) == {"duckduckgo", "searxng"}

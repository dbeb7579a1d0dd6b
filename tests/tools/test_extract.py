"""extract_content against real pages on 127.0.0.1: right text, or a clear refusal within the caps."""

import time

import pytest

from tests.tools.conftest import FRENCH, RUSSIAN
from tools import FetchError, FetchSettings, ToolExecutor, ToolsConfig


@pytest.fixture
def tools(local_config):
    with ToolExecutor(local_config) as ex:
        yield ex


def extract(tools, web, path, **kw):
    return tools.execute("extract_content", {"url": f"{web.base}{path}", **kw})


def test_article(tools, web):
    out = extract(tools, web, "/article")
    assert out["title"] == "How braided language models share hidden states"
    assert "gates at zero" in out["text"] and "WordPiece tokenizer" in out["text"]
    assert out["language"] == "en" and out["published"] == "2025-03-14"
    assert out["untrusted"] is True and out["content_type"] == "text/html"


def test_boilerplate_is_dropped(tools, web):
    text = extract(tools, web, "/boilerplate")["text"]
    assert "Gulf Stream" in text and "thousand years" in text and "gyres" in text
    for junk in ("cookies", "newsletter", "ADVERTISEMENT", "Trending", "Copyright", "Share on"):
        assert junk not in text


def test_non_utf8_from_header(tools, web):
    out = extract(tools, web, "/cp1251")
    assert RUSSIAN in out["text"] and out["title"] == "Течения"


def test_non_utf8_from_meta(tools, web):
    assert FRENCH in extract(tools, web, "/latin1-meta")["text"]


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
def test_50mb_page_is_refused_at_the_cap(tools, web, path):
    start = time.monotonic()
    with pytest.raises(FetchError, match="too large"):
        extract(tools, web, path)
    assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("path", ["/slow", "/stall"])
def test_slow_page_hits_the_time_cap(tools, web, path):
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 3s"):
        extract(tools, web, path)
    assert time.monotonic() - start < 4.5


def test_redirect_chain_is_followed_and_rechecked(tools, web):
    before = web.hits["/r/2"]
    out = extract(tools, web, "/r/3")
    assert out["url"].endswith("/article") and "frozen language models" in out["text"]
    assert web.hits["/r/2"] == before + 1


def test_redirect_cap(web, local_config):
    config = local_config.model_copy(
        update={"fetch": local_config.fetch.model_copy(update={"max_redirects": 2})}
    )
    with ToolExecutor(config) as ex, pytest.raises(FetchError, match="too many redirects"):
        ex.execute("extract_content", {"url": f"{web.base}/r/3"})


def test_pdf_and_plain_text(tools, web):
    assert "Hello from a braided PDF" in extract(tools, web, "/doc.pdf")["text"]
    txt = extract(tools, web, "/notes.txt")
    assert txt["title"] == "Plain notes" and "ünïcödé" in txt["text"]


def test_other_content_types_are_refused(tools, web):
    with pytest.raises(FetchError, match="unsupported content type 'image/png'"):
        extract(tools, web, "/image.png")


def test_http_errors_are_named(tools, web):
    with pytest.raises(FetchError, match="HTTP 404"):
        extract(tools, web, "/missing")


def test_links_on_request(tools, web):
    out = extract(tools, web, "/article", includeLinks=True)
    assert "https://example.org/braids" in out["links"]


def test_settings_validate():
    with pytest.raises(ValueError, match="max_bytes"):
        FetchSettings(max_bytes=0)
    with pytest.raises(ValueError, match="unknown_field"):
        ToolsConfig.model_validate({"fetch": {"unknown_field": 1}})

"""Turn a fetched page into text: charset handling, main-text extraction (trafilatura), PDF (pypdf), plain text.

The result is marked untrusted: it is third-party text that a prompt must quote, never obey.
"""

from __future__ import annotations

import codecs
import io
import re

from pydantic import BaseModel

from tools.errors import FetchError
from tools.fetch import FetchedPage

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_MD_LINK = re.compile(r"\[([^\]]*)\]\((https?://[^)\s]+)\)")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class ExtractedContent(BaseModel):
    url: str
    title: str | None
    text: str
    language: str | None = None
    published: str | None = None
    content_type: str
    links: list[str] | None = None
    untrusted: bool = True  # fetched from the web: content, not instructions


def _known(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None


def decode(body: bytes, header_charset: str | None, html: bool) -> str:
    """Header charset, then BOM, then <meta charset>, then strict UTF-8, then the best statistical guess."""
    charset = _known(header_charset)
    if charset is None:
        charset = next((name for bom, name in _BOMS if body.startswith(bom)), None)
    if charset is None and html and (m := _META_CHARSET.search(body[:4096])):
        charset = _known(m.group(1).decode("ascii", "replace"))
    if charset is not None:
        return body.decode(charset, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(body).best()
        return str(best) if best is not None else body.decode("latin-1")


def sniff_type(page: FetchedPage) -> str:
    if page.media_type:
        return page.media_type
    head = page.body[:512].lstrip().lower()
    if head.startswith(b"%pdf"):
        return "application/pdf"
    return "text/html" if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head else "text/plain"


def extract(page: FetchedPage, include_links: bool = False) -> ExtractedContent:
    kind = sniff_type(page)
    if kind == "application/pdf":
        return _from_pdf(page)
    if kind in ("text/html", "application/xhtml+xml"):
        return _from_html(page, decode(page.body, page.charset, html=True), include_links)
    text = decode(page.body, page.charset, html=False).strip()
    title = text.splitlines()[0][:200] if text else None
    return ExtractedContent(url=page.url, title=title, text=text, content_type=kind)


def _from_html(page: FetchedPage, html: str, include_links: bool) -> ExtractedContent:
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=page.url, with_metadata=True, include_links=include_links)
    if doc is None:
        raise FetchError(f"no main text found at {page.url}")
    text = doc.text or ""
    links = [url for _, url in _MD_LINK.findall(text)] if include_links else None
    return ExtractedContent(
        url=page.url,
        title=doc.title,
        text=text,
        language=doc.language or _html_lang(html),
        published=doc.date,
        content_type="text/html",
        links=links,
    )


def _html_lang(html: str) -> str | None:
    m = re.search(r"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z-]+)", html[:4096], re.I)
    return m.group(1) if m else None


def _from_pdf(page: FetchedPage) -> ExtractedContent:
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(page.body))
        text = "\n".join((p.extract_text() or "").strip() for p in reader.pages).strip()
        title = reader.metadata.title if reader.metadata else None
    except Exception as e:  # pypdf raises many types for broken files
        raise FetchError(f"could not read the PDF at {page.url}: {e}") from e
    if not text:
        raise FetchError(f"the PDF at {page.url} has no extractable text (scanned pages are not supported)")
    return ExtractedContent(url=page.url, title=title, text=text, content_type="application/pdf")

"""Sitemap parsing: XML url sets and sitemap indexes, plain-text sitemaps, gzip, from bytes.

Sitemaps come from sites we do not control, so the parser is hostile-input safe and lenient:

* gzip is recognised by its magic bytes (servers mislabel it both ways) and inflated under a cap,
  so a gzip bomb is cut short and reported;
* XML goes through lxml's pull parser with entity substitution, DTD loading and network access off;
  a document that declares a DTD is rejected outright ("invalid"), so neither XXE nor entity
  expansion (billion laughs) can happen;
* junk is recovered from where possible (unescaped "&", a truncated tail, text before the root,
  a BOM); what was wrong is reported in `SitemapDocument.error`, never raised.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from lxml import etree

from linkjuice.urls import normalize_url

__all__ = [
    "MAX_SITEMAP_BYTES",
    "MAX_SITEMAP_URLS",
    "SitemapKind",
    "SitemapUrl",
    "SitemapDocument",
    "parse_sitemap",
]

# The sitemap protocol's limits for one file: 50 MiB uncompressed and 50,000 URLs.
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
MAX_SITEMAP_URLS = 50_000

_GZIP_MAGIC = b"\x1f\x8b"
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_FEED_CHUNK = 64 * 1024
# Any DTD is refused; sitemaps never need one. Scanned over the whole body because libxml2, in
# recover mode, may yield no root at all for a hostile DTD, leaving nothing to inspect afterwards.
_DTD = re.compile(rb"<!(?i:doctype|entity)")
_DTD_REFUSED = "DTD or entity declaration refused"
# An "&" that starts no entity or character reference: the most common sitemap error (raw query
# strings). libxml2's recovery would silently drop the text after it, so it is escaped first;
# CDATA sections are matched too, only to be left alone.
_BARE_AMPERSAND = re.compile(
    rb"(<!\[CDATA\[.*?(?:\]\]>|\Z))|&(?!(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z_:][\w.:-]*);)", re.DOTALL
)
# A URL with a scheme is taken as absolute: urljoin would resolve "https://" or "https:x"
# against the sitemap's own URL.
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# Where the XML starts when something (a PHP warning, say) was printed before it.
_XML_START = re.compile(rb"<\?xml|<(?:[\w.-]+:)?(?:urlset|sitemapindex)\b")
_HTML = re.compile(rb"<!doctype\s+html|<html\b", re.IGNORECASE)
_TEXT_URL = re.compile(r"https?://", re.IGNORECASE)


class SitemapKind(StrEnum):
    """What a sitemap document turned out to be."""

    URLSET = "urlset"
    SITEMAPINDEX = "sitemapindex"
    TEXT = "text"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True, kw_only=True)
class SitemapUrl:
    """One page listed in a sitemap."""

    loc: str  # absolute and normalised
    lastmod: str | None = None  # as written (W3C datetime expected, not checked)


@dataclass(frozen=True, slots=True, kw_only=True)
class SitemapDocument:
    """What one sitemap file lists; `error` says what was wrong or cut, even when URLs were read."""

    kind: SitemapKind
    urls: list[SitemapUrl] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)  # child sitemaps of an index, normalised
    error: str | None = None


def parse_sitemap(
    body: bytes,
    *,
    url: str,
    max_bytes: int = MAX_SITEMAP_BYTES,
    max_urls: int = MAX_SITEMAP_URLS,
) -> SitemapDocument:
    """Parse a sitemap file fetched from `url`; never raises on content.

    `max_bytes` caps the (decompressed) size read and `max_urls` the entries kept; a document
    beyond either is truncated, and the truncation is reported in `error`.
    """
    errors: list[str] = []
    data = bytes(body)
    if data.startswith(_GZIP_MAGIC):
        data, gzip_error = _gunzip(data, max_bytes)
        if gzip_error:
            errors.append(gzip_error)
    elif len(data) > max_bytes:
        data = data[:max_bytes]
        errors.append(f"sitemap larger than {max_bytes} bytes; truncated")

    data = _strip_prolog(data)
    if not data:
        return _document(SitemapKind.INVALID, errors=[*errors, "empty document"])
    if _HTML.match(data):
        # Soft 404s and login pages served at the sitemap's URL.
        return _document(SitemapKind.INVALID, errors=[*errors, "not a sitemap: HTML document"])
    if _DTD.search(data):
        # Checked before parsing so that no entity declaration ever reaches the parser.
        return _document(SitemapKind.INVALID, errors=[*errors, _DTD_REFUSED])
    if data.startswith(b"<") or _is_wide(data):
        return _parse_xml(data, url=url, max_urls=max_urls, errors=errors)
    start = _XML_START.search(data, 0, _FEED_CHUNK)
    if start:
        errors.append("junk before the XML; skipped")
        return _parse_xml(data[start.start():], url=url, max_urls=max_urls, errors=errors)
    return _parse_text(data, url=url, max_urls=max_urls, errors=errors)


def _document(
    kind: SitemapKind,
    *,
    urls: list[SitemapUrl] | None = None,
    sitemaps: list[str] | None = None,
    errors: list[str],
) -> SitemapDocument:
    return SitemapDocument(
        kind=kind, urls=urls or [], sitemaps=sitemaps or [], error="; ".join(errors) or None
    )


def _gunzip(data: bytes, max_bytes: int) -> tuple[bytes, str | None]:
    """Inflate gzip `data` (members concatenated too) up to `max_bytes`; the error says why it stopped."""
    out = bytearray()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = data
    try:
        while True:
            # max_length bounds the output of each call, which is what defuses a bomb;
            # it is always >= 1 here (0 would mean "unlimited").
            chunk = inflater.decompress(pending, max_bytes + 1 - len(out))
            out += chunk
            if len(out) > max_bytes:
                return bytes(out[:max_bytes]), f"gzip inflates past {max_bytes} bytes; truncated"
            pending = inflater.unconsumed_tail
            if inflater.eof:
                rest = inflater.unused_data
                if not rest.startswith(_GZIP_MAGIC):
                    return bytes(out), None
                inflater, pending = zlib.decompressobj(16 + zlib.MAX_WBITS), rest
            elif not pending and not chunk:
                return bytes(out), "gzip stream ends early; truncated"
    except zlib.error as exc:
        return bytes(out), f"corrupt gzip: {exc}"


def _strip_prolog(data: bytes) -> bytes:
    """Drop leading whitespace and a UTF-8 BOM, in any order (both occur in the wild)."""
    data = data.lstrip()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:].lstrip()
    return data


def _is_wide(data: bytes) -> bool:
    """UTF-16/32 XML: let libxml2 decode it; byte-level fixes and text parsing do not apply."""
    return data.startswith(_BOMS[1:]) or b"\x00" in data[:4]


def _local_name(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _normalize(loc: str, base: str) -> str | None:
    return normalize_url(loc) if _HAS_SCHEME.match(loc) else normalize_url(loc, base)


def _child_text(element: etree._Element, name: str) -> str | None:
    for child in element:
        if _local_name(child.tag) == name:
            text = (child.text or "").strip()
            return text or None
    return None


def _parse_xml(data: bytes, *, url: str, max_urls: int, errors: list[str]) -> SitemapDocument:
    if not _is_wide(data):
        data = _BARE_AMPERSAND.sub(lambda m: m.group(1) or b"&amp;", data)
    # A strict pass first, because libxml2's recover mode keeps no error log to report from;
    # only a malformed document pays for the second, lenient pass, and the URLs it had already
    # normalised (the costly part) are remembered.
    memo: dict[str, str | None] = {}
    try:
        return _read_xml(data, url=url, max_urls=max_urls, errors=errors, memo=memo, recover=False)
    except etree.XMLSyntaxError as exc:
        errors = [*errors, f"malformed XML, recovered what could be read: {exc.msg}"]
    return _read_xml(data, url=url, max_urls=max_urls, errors=errors, memo=memo, recover=True)


def _read_xml(
    data: bytes,
    *,
    url: str,
    max_urls: int,
    errors: list[str],
    memo: dict[str, str | None],
    recover: bool,
) -> SitemapDocument:
    parser = etree.XMLPullParser(
        events=("start", "end"),
        recover=recover,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    errors = list(errors)
    kind: SitemapKind | None = None
    entry = ""
    urls: list[SitemapUrl] = []
    children: list[str] = []
    try:
        for event, element in _events(parser, data):
            if kind is None:
                # The first event is the root's start.
                docinfo = element.getroottree().docinfo
                if docinfo.doctype or docinfo.internalDTD is not None:
                    return _document(SitemapKind.INVALID, errors=[*errors, _DTD_REFUSED])
                root = _local_name(element.tag)
                if root not in ("urlset", "sitemapindex"):
                    errors.append(f"not a sitemap: root element <{root}>")
                    return _document(SitemapKind.INVALID, errors=errors)
                kind = SitemapKind(root)
                entry = "url" if kind is SitemapKind.URLSET else "sitemap"
                continue
            if event != "end" or _local_name(element.tag) != entry:
                continue
            loc = _child_text(element, "loc")
            if not loc:
                normalized = None
            elif loc in memo:
                normalized = memo[loc]
            else:
                normalized = memo[loc] = _normalize(loc, url)
            if normalized is not None:
                if len(urls) + len(children) >= max_urls:
                    errors.append(f"more than {max_urls} entries; truncated")
                    break
                if kind is SitemapKind.URLSET:
                    urls.append(SitemapUrl(loc=normalized, lastmod=_child_text(element, "lastmod")))
                else:
                    children.append(normalized)
            _forget(element)
    except etree.LxmlError as exc:
        if not recover:
            raise
        errors.append(f"XML error: {exc}")
    if kind is None:
        return _document(SitemapKind.INVALID, errors=[*errors, "no XML root element"])
    return _document(kind, urls=urls, sitemaps=children, errors=errors)


def _events(parser: etree.XMLPullParser, data: bytes) -> Iterator[tuple[str, etree._Element]]:
    """Feed `data` in chunks so that a caller that stops early leaves the rest unparsed."""
    view = memoryview(data)
    for offset in range(0, len(view), _FEED_CHUNK):
        parser.feed(bytes(view[offset : offset + _FEED_CHUNK]))
        yield from parser.read_events()
    try:
        parser.close()
    finally:
        yield from parser.read_events()


def _forget(element: etree._Element) -> None:
    """Free an entry once read, and the entries before it, so memory stays flat on big files."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _parse_text(data: bytes, *, url: str, max_urls: int, errors: list[str]) -> SitemapDocument:
    """A text sitemap: one absolute URL per line; lines that are not http(s) URLs are skipped."""
    urls: list[SitemapUrl] = []
    seen_url_line = False
    for line in data.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not _TEXT_URL.match(line):
            continue
        seen_url_line = True
        normalized = _normalize(line, url)
        if normalized is None:
            continue
        if len(urls) >= max_urls:
            errors.append(f"more than {max_urls} entries; truncated")
            break
        urls.append(SitemapUrl(loc=normalized))
    if not seen_url_line:
        return _document(SitemapKind.INVALID, errors=[*errors, "not a sitemap: no XML and no URL lines"])
    return _document(SitemapKind.TEXT, urls=urls, errors=errors)

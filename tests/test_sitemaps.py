"""parse_sitemap: from bytes, including hostile ones."""

from __future__ import annotations

import gzip
import inspect
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkjuice.crawl import sitemaps
from linkjuice.crawl.sitemaps import (
    MAX_SITEMAP_BYTES,
    MAX_SITEMAP_URLS,
    SitemapDocument,
    SitemapKind,
    SitemapUrl,
    parse_sitemap,
)

SITEMAP = "https://example.com/sitemaps/sitemap.xml"
NS = b'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def parse(body: bytes, **kwargs: int) -> SitemapDocument:
    return parse_sitemap(body, url=SITEMAP, **kwargs)


def locs(doc: SitemapDocument) -> list[str]:
    return [u.loc for u in doc.urls]


def everything(doc: SitemapDocument) -> str:
    """All the text a document carries, to check that nothing leaked into it."""
    return repr(doc)


def test_public_api() -> None:
    assert sorted(sitemaps.__all__) == sorted(
        [
            "MAX_SITEMAP_BYTES",
            "MAX_SITEMAP_URLS",
            "SitemapKind",
            "SitemapUrl",
            "SitemapDocument",
            "parse_sitemap",
        ]
    )
    assert MAX_SITEMAP_URLS == 50_000
    assert MAX_SITEMAP_BYTES == 50 * 1024 * 1024
    defaults = inspect.signature(parse_sitemap).parameters
    assert defaults["max_urls"].default == MAX_SITEMAP_URLS
    assert defaults["max_bytes"].default == MAX_SITEMAP_BYTES


def test_records_are_frozen_and_kind_is_a_string() -> None:
    doc = parse(b"<urlset><url><loc>/a</loc></url></urlset>")
    assert doc.kind == "urlset"
    with pytest.raises(AttributeError):
        doc.kind = SitemapKind.TEXT  # type: ignore[misc]
    with pytest.raises(AttributeError):
        doc.urls[0].loc = "x"  # type: ignore[misc]


def test_urlset_with_namespace_and_lastmod() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<urlset " + NS + b">\n"
        b"  <url><loc>https://example.com/</loc><lastmod>2024-05-01T10:00:00+00:00</lastmod>"
        b"<changefreq>daily</changefreq><priority>0.8</priority></url>\n"
        b"  <url><loc> HTTPS://Example.COM:443/a/./b?x=1#frag </loc><lastmod> </lastmod></url>\n"
        b"</urlset>\n"
    )
    doc = parse(body)
    assert doc.kind is SitemapKind.URLSET
    assert doc.error is None
    assert doc.sitemaps == []
    assert doc.urls == [
        SitemapUrl(loc="https://example.com/", lastmod="2024-05-01T10:00:00+00:00"),
        SitemapUrl(loc="https://example.com/a/b?x=1", lastmod=None),
    ]


def test_urlset_without_namespace() -> None:
    doc = parse(b"<urlset><url><loc>https://example.com/p</loc><lastmod>2024-01-02</lastmod></url></urlset>")
    assert doc.kind == "urlset"
    assert doc.urls == [SitemapUrl(loc="https://example.com/p", lastmod="2024-01-02")]


def test_prefixed_namespace_and_extensions_are_not_pages() -> None:
    body = (
        b'<sm:urlset xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9" '
        b'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1" '
        b'xmlns:xhtml="http://www.w3.org/1999/xhtml">'
        b"<sm:url><sm:loc>https://example.com/page</sm:loc>"
        b"<image:image><image:loc>https://example.com/photo.jpg</image:loc></image:image>"
        b'<xhtml:link rel="alternate" hreflang="de" href="https://example.com/de/page"/>'
        b"</sm:url></sm:urlset>"
    )
    doc = parse(body)
    assert doc.kind == "urlset"
    assert locs(doc) == ["https://example.com/page"]


def test_sitemap_index() -> None:
    body = (
        b'<?xml version="1.0"?><sitemapindex ' + NS + b">"
        b"<sitemap><loc>https://example.com/s1.xml.gz</loc><lastmod>2024-01-01</lastmod></sitemap>"
        b"<sitemap><loc>s2.xml</loc></sitemap>"
        b"<sitemap><loc>mailto:x@example.com</loc></sitemap>"
        b"</sitemapindex>"
    )
    doc = parse(body)
    assert doc.kind is SitemapKind.SITEMAPINDEX
    assert doc.urls == []
    assert doc.sitemaps == ["https://example.com/s1.xml.gz", "https://example.com/sitemaps/s2.xml"]
    assert doc.error is None


def test_relative_locs_resolve_and_invalid_locs_are_skipped() -> None:
    body = (
        b"<urlset>"
        b"<url><loc>/root</loc></url>"
        b"<url><loc>page.html</loc></url>"
        b"<url><loc>javascript:alert(1)</loc></url>"
        b"<url><loc>ftp://example.com/file</loc></url>"
        b"<url><loc>http://</loc></url>"
        b"<url><loc></loc></url>"
        b"<url><lastmod>2024-01-01</lastmod></url>"
        b"<url><loc>https://example.com/last</loc></url>"
        b"</urlset>"
    )
    doc = parse(body)
    assert locs(doc) == [
        "https://example.com/root",
        "https://example.com/sitemaps/page.html",
        "https://example.com/last",
    ]
    assert doc.error is None


def test_gzip_detected_by_magic_bytes() -> None:
    plain = b"<urlset " + NS + b"><url><loc>https://example.com/gz</loc></url></urlset>"
    doc = parse_sitemap(gzip.compress(plain), url="https://example.com/sitemap.xml")  # no .gz
    assert doc.kind == "urlset"
    assert locs(doc) == ["https://example.com/gz"]
    assert doc.error is None


def test_gzip_members_concatenated() -> None:
    body = gzip.compress(b"<urlset><url><loc>/a</loc></url>") + gzip.compress(b"<url><loc>/b</loc></url></urlset>")
    assert locs(parse(body)) == ["https://example.com/a", "https://example.com/b"]


def test_corrupt_or_truncated_gzip_is_reported() -> None:
    entries = b"".join(b"<url><loc>/page-%d</loc></url>" % (i * 7919 % 1000) for i in range(500))
    packed = gzip.compress(b"<urlset>" + entries + b"</urlset>")
    truncated = parse(packed[: len(packed) // 2])
    assert truncated.kind == "urlset"
    assert 0 < len(truncated.urls) < 500
    assert truncated.error is not None and "gzip" in truncated.error
    corrupt = parse(b"\x1f\x8b" + b"\x00" * 40)
    assert corrupt.kind == "invalid"
    assert corrupt.error is not None and "gzip" in corrupt.error


def test_gzip_bomb_is_capped() -> None:
    # 200 MiB of whitespace after one entry inflates from about 200 KB.
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(b"<urlset><url><loc>https://example.com/first</loc></url>")]
    block = b" " * (1 << 20)
    parts += [packer.compress(block) for _ in range(200)]
    parts += [packer.compress(b"<url><loc>https://example.com/never</loc></url></urlset>"), packer.flush()]
    bomb = b"".join(parts)
    assert len(bomb) < 1_000_000

    started = time.perf_counter()
    doc = parse(bomb, max_bytes=1 << 20)
    assert time.perf_counter() - started < 5
    assert locs(doc) == ["https://example.com/first"]
    assert doc.error is not None and "1048576" in doc.error and "truncated" in doc.error


def test_plain_body_over_max_bytes_is_truncated() -> None:
    body = b"\n".join(b"https://example.com/p%d" % i for i in range(100))
    doc = parse(body, max_bytes=250)
    assert doc.kind == "text"
    assert 0 < len(doc.urls) < 100
    assert doc.error is not None and "truncated" in doc.error


def test_text_sitemap() -> None:
    body = (
        b"https://example.com/one\r\n"
        b"\n"
        b"   HTTP://EXAMPLE.com/two   \n"
        b"not a url\n"
        b"/relative/is/not/allowed\n"
        b"https://example.com/caf\xc3\xa9\n"
        b"https://\n"  # would resolve to the sitemap's own URL if taken as relative
        b"https:relative\n"
    )
    doc = parse(body)
    assert doc.kind is SitemapKind.TEXT
    assert locs(doc) == [
        "https://example.com/one",
        "http://example.com/two",
        "https://example.com/caf%C3%A9",
    ]
    assert all(u.lastmod is None for u in doc.urls)


def test_leading_whitespace_and_bom() -> None:
    body = b"\n\n  \xef\xbb\xbf \n" + b'<?xml version="1.0"?><urlset><url><loc>/bom</loc></url></urlset>'
    doc = parse(body)
    assert doc.kind == "urlset"
    assert locs(doc) == ["https://example.com/bom"]
    text = parse(b"\xef\xbb\xbfhttps://example.com/t\n")
    assert text.kind == "text" and locs(text) == ["https://example.com/t"]


def test_utf16_document() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><urlset><url><loc>https://example.com/ü</loc></url></urlset>'
    doc = parse(body.encode("utf-16"))
    assert locs(doc) == ["https://example.com/%C3%BC"]


def test_lenient_on_junk() -> None:
    body = (
        b"Warning: Undefined variable $x in /var/www/sitemap.php on line 3\n"
        b'<?xml version="1.0"?><urlset ' + NS + b">"
        b"<url><loc>https://example.com/search?a=1&b=2&amp;c=3</loc></url>"  # bare "&"
        b"<url><loc>https://example.com/ok</loc></url>"
        b"<url><loc>https://example.com/broken</loc><bad attr=></url>"
        b"<url><loc>https://example.com/cut-off"  # truncated document
    )
    doc = parse(body)
    assert doc.kind == "urlset"
    assert locs(doc)[:2] == ["https://example.com/search?a=1&b=2&c=3", "https://example.com/ok"]
    assert locs(doc)[-1] == "https://example.com/cut-off"
    assert doc.error is not None


def test_cdata_and_comments() -> None:
    body = b"<urlset><!-- c --><url><loc><![CDATA[https://example.com/x?a=1&b=2]]></loc></url></urlset>"
    assert locs(parse(body)) == ["https://example.com/x?a=1&b=2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"   \n\t ", "empty"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML"),
        (b"<html><body><a href='https://example.com/'>x</a></body></html>", "HTML"),
        (b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>', "rss"),
        (b"just some words\nand more", "not a sitemap"),
        (b"<", "root"),
        (b"\x00\x01\x02junk", "root"),
    ],
)
def test_invalid_documents(body: bytes, message: str) -> None:
    doc = parse(body)
    assert doc.kind is SitemapKind.INVALID
    assert doc.urls == [] and doc.sitemaps == []
    assert doc.error is not None and message in doc.error


def test_url_cap_truncates_and_reports() -> None:
    body = b"<urlset>" + b"".join(b"<url><loc>/p%d</loc></url>" % i for i in range(30)) + b"</urlset>"
    doc = parse(body, max_urls=10)
    assert len(doc.urls) == 10
    assert doc.urls[-1].loc == "https://example.com/p9"
    assert doc.error is not None and "10" in doc.error and "truncated" in doc.error
    exactly = parse(body, max_urls=30)
    assert len(exactly.urls) == 30 and exactly.error is None
    text = parse(b"\n".join(b"https://example.com/t%d" % i for i in range(30)), max_urls=5)
    assert len(text.urls) == 5 and text.error is not None


def test_index_cap() -> None:
    body = b"<sitemapindex>" + b"".join(b"<sitemap><loc>/s%d.xml</loc></sitemap>" % i for i in range(8)) + b"</sitemapindex>"
    doc = parse(body, max_urls=3)
    assert len(doc.sitemaps) == 3 and doc.error is not None


# --- hostile XML ---------------------------------------------------------------------------

_SECRET = "linkjuice-xxe-canary-7f3a"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(_SECRET)
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("target", ["file:///etc/passwd", "secret"])
def test_xxe_is_refused(encoding: str, target: str, secret_file: Path) -> None:
    system = secret_file.as_uri() if target == "secret" else target
    body = (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        f'<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "{system}">]>'
        '<urlset><url><loc>https://example.com/&xxe;</loc></url>'
        '<url><loc>&xxe;</loc><lastmod>&xxe;</lastmod></url></urlset>'
    ).encode(encoding)
    doc = parse(body)
    assert doc.kind is SitemapKind.INVALID
    assert doc.error is not None
    assert doc.urls == [] and doc.sitemaps == []
    for leak in ("root:", _SECRET, "/bin/"):
        assert leak not in everything(doc)


def test_external_dtd_and_parameter_entities_are_refused() -> None:
    bodies = [
        b'<?xml version="1.0"?><!DOCTYPE urlset SYSTEM "http://attacker.invalid/evil.dtd"><urlset/>',
        b'<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><urlset/>',
        b'<urlset><!ENTITY a "b"><url><loc>/a</loc></url></urlset>',
    ]
    for body in bodies:
        doc = parse(body)
        assert doc.kind == "invalid", body
        assert "root:" not in everything(doc)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_billion_laughs_is_refused_quickly(encoding: str) -> None:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    body = (
        f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE urlset [{entities}]>'
        '<urlset a="&lol9;"><url><loc>https://example.com/&lol9;</loc></url></urlset>'
    ).encode(encoding)
    started = time.perf_counter()
    doc = parse(body)
    assert time.perf_counter() - started < 1
    assert doc.kind is SitemapKind.INVALID
    assert "lollol" not in everything(doc)


def test_undeclared_entity_is_not_expanded() -> None:
    doc = parse(b"<urlset><url><loc>https://example.com/&nope;x</loc></url></urlset>")
    assert doc.kind == "urlset"
    assert all("nope" not in loc or "&" not in loc for loc in locs(doc))


# --- fuzz ----------------------------------------------------------------------------------

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=2048))
def test_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    doc = parse(body)
    assert isinstance(doc, SitemapDocument)
    assert doc.kind in set(SitemapKind)


@_FUZZ
@given(st.binary(max_size=512))
def test_never_raises_on_arbitrary_gzip(body: bytes) -> None:
    packed = gzip.compress(body)
    assert isinstance(parse(packed), SitemapDocument)
    assert isinstance(parse(packed[: len(packed) // 2]), SitemapDocument)


_fragments = st.sampled_from(
    [
        "<urlset>", "</urlset>", "<sitemapindex>", "</sitemapindex>", "<url>", "</url>",
        "<sitemap>", "</sitemap>", "<loc>", "</loc>", "<lastmod>", "</lastmod>",
        "https://example.com/", "/p?a=1&b=2", "&amp;", "&#x41;", "&bad;", "<![CDATA[", "]]>",
        "<!--", "-->", "<?xml version='1.0'?>", "<!DOCTYPE x>", "\ufeff", " ", "\n", "\x00", "é",
        'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"', "<", ">", "'", '"',
    ]
)


@_FUZZ
@given(st.lists(_fragments, max_size=40))
def test_never_raises_on_sitemap_like_junk(fragments: list[str]) -> None:
    body = "".join(fragments).encode("utf-8", errors="replace")
    doc = parse(body)
    assert isinstance(doc, SitemapDocument)
    assert all(u.loc.startswith(("http://", "https://")) for u in doc.urls)
    assert all(s.startswith(("http://", "https://")) for s in doc.sitemaps)

"""Hypothesis fuzz targets at a small budget (they run in every test run): the HTML link extractor, the
URL normaliser, the crawler-trap guard, the sitemap parser and the CSV importers never fail with anything
but their documented outcome. The older fuzz targets live beside their modules' tests
(tests/test_extract.py, test_urls.py, test_sitemaps.py, test_robots.py); these add structure-aware
inputs and properties."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkjuice.crawl.extract import _nesting_cut, extract_page
from linkjuice.crawl.sitemaps import parse_sitemap
from linkjuice.crawl.traps import TrapGuard, url_shape
from linkjuice.errors import LinkJuiceError
from linkjuice.store import Store
from linkjuice.urls import normalize_url

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = "https://example.com/dir/page.html"

_url_parts = st.sampled_from([
    "http://", "https://", "//", "/", "./", "../", "?", "#", "&", "=", ";", "%", "%zz", "%41", "%e9", "@", ":",
    "[", "]", "::1", "example.com", "EXAMPLE.com", ":80", ":443", ":99999", "a", "é", "\u202e", "\x00", " ", "\t",
    "\n", "javascript:", "file:", "data:", "ftp:", "sid=", "a1b2c3d4e5f6a7b8c9", "2024", "-", "..", ".", "\\",
    "xn--", "ü.de", "\udcff", "\ufffd",
])
URLISH = st.lists(_url_parts, max_size=25).map("".join) | st.text(max_size=80)

_html_parts = st.sampled_from([
    "<div>", "</div>", "<section>", "<p>", "<li>", "<nav>", "</nav>", "<footer>", "<main>", "</main>",
    "<a href='", "<a href=\"", "'>", "\">", "</a>", "<area href=/x>", "<base href='", "<link rel=canonical href='",
    "<title>", "</title>", "<h1>", "<img alt='", "<script>", "</script>", "<!--", "-->", "<![CDATA[",
    "<meta charset='", "utf-16", "shift_jis", "<meta name=robots content='nofollow'>", "\x00", "\x1b[31m",
    "text", " ", "&amp;", "&#0;", "&#x202e;", "<svg><title>", "</svg>", "<noscript>", "<template>",
])
HTMLISH = st.tuples(st.lists(_html_parts | URLISH, max_size=60).map("".join), st.integers(0, 300))


@FUZZ
@given(URLISH, st.sampled_from([BASE, "http://[::1]:8080/a/", "http://127.0.0.1/", None]))
def test_normalised_urls_are_http_fixed_points(href: str, base: str | None) -> None:
    out = normalize_url(href, base)
    if out is not None:
        assert out.startswith(("http://", "https://")) and "#" not in out and out.isascii()
        assert normalize_url(out) == out  # normalising twice changes nothing


@FUZZ
@given(HTMLISH)
def test_extracted_links_are_normalised_and_bounded(case: tuple[str, int]) -> None:
    text, depth = case
    body = ("<div>" * depth + text).encode("utf-8", "surrogatepass")
    page = extract_page(body, BASE, max_links=50)
    assert len(page.links) <= 50
    for link in page.links:
        assert normalize_url(link.url) == link.url and len(link.anchor) <= 500
        assert not any(ch < " " or "\u202a" <= ch <= "\u202e" for ch in link.anchor)
    for field in (page.title, page.h1, page.canonical, page.lang):
        assert field is None or "\x00" not in field


@FUZZ
@given(st.binary(max_size=3000), st.integers(1, 5000))
def test_nesting_cut_is_at_a_tag_within_the_input(body: bytes, budget: int) -> None:
    cut = _nesting_cut(body, budget)
    assert cut is None or (0 <= cut < len(body) and body[cut:cut + 1] == b"<")


@FUZZ
@given(st.lists(URLISH, max_size=30))
def test_trap_guard_never_raises_and_replays_exactly(hrefs: list[str]) -> None:
    urls = [u for h in hrefs if (u := normalize_url(h, BASE)) is not None]
    live = TrapGuard(max_per_pattern=3, max_query_length=40)
    admitted = [u for u in urls if live.admit(u) is None]
    for url in urls:
        assert url_shape(url) == url_shape(url)
    replayed = TrapGuard(max_per_pattern=3, max_query_length=40)
    for url in admitted:
        replayed.replay(url)
    assert replayed._shapes == live._shapes  # noqa: SLF001 - the resume invariant


_xml_parts = st.sampled_from([
    "<?xml version='1.0'?>", "<!DOCTYPE u [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>",
    "<!DOCTYPE u [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]>", "&x;", "&b;",
    "<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>", "</urlset>", "<url><loc>", "</loc></url>",
    "<sitemapindex>", "<sitemap><loc>", "</loc></sitemap>", "</sitemapindex>", "https://example.com/a",
    "/relative", "<lastmod>2024-02-30</lastmod>", "<!--", "-->", "\x00", "é",
])


@FUZZ
@given(st.lists(_xml_parts | URLISH, max_size=40).map("".join))
def test_sitemaps_with_entities_never_expand_or_raise(text: str) -> None:
    doc = parse_sitemap(text.encode("utf-8", "surrogatepass"), url="https://example.com/sitemap.xml")
    for loc in [u.loc for u in doc.urls] + list(doc.sitemaps):
        assert loc.startswith(("http://", "https://")) and "root:" not in loc and "aaaaaaaaaaaaaaaaaaaa" not in loc


# -- CSV importers (linkjuice.imports) -----------------------------------------------------------

_csv_cells = st.sampled_from([
    "url", "URL", "Address", "Source", "Destination", "Anchor", "Top pages", "Clicks", "Impressions", "CTR",
    "Position", "weight", "priority", "Referring page URL", "Target URL", "Domain rating", "Type", "Hyperlink",
    "https://example.com/", "https://example.com/a?b=1", "/relative", "not a url", "12", "1,5", "3.7%", "-1",
    "", " ", '"', '""', "\t", ";", "\u00e9", "\ufeff", "\x00", "=HYPERLINK()", "nan", "1e309",
])
CSVISH = st.lists(st.lists(_csv_cells, max_size=8).map(lambda r: ",".join(r)), max_size=12).map("\n".join)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])


def _importers():  # noqa: ANN202
    from linkjuice import imports

    return [
        lambda db, p: imports.import_urls(db, p, base_url="https://example.com/"),
        lambda db, p: imports.import_gsc(db, p, base_url="https://example.com/"),
        lambda db, p: imports.import_priorities(db, p, base_url="https://example.com/"),
        lambda db, p: imports.import_backlinks(db, p, base_url="https://example.com/"),
        lambda db, p: imports.import_links(db, p, score=False),
    ]


@SMALL
@given(st.integers(0, 4), CSVISH, ENCODINGS, st.binary(max_size=64))
def test_importers_accept_or_refuse_cleanly(which: int, text: str, encoding: str, junk: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db, path = Path(tmp) / "store.duckdb", Path(tmp) / "input.csv"
        with Store(db) as store:
            store.set_meta({"start_url": "https://example.com/"})
        path.write_bytes(text.encode(encoding, "replace") + junk)
        try:
            _importers()[which](db, path)
        except LinkJuiceError as exc:
            message = str(exc)
            assert message and "\n" not in message.strip() and "Traceback" not in message
        with Store(db, read_only=True) as store:  # whatever happened, the store still opens
            store.meta()

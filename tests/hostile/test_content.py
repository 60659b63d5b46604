"""Malformed HTML, wrong or missing charsets, binary served as text/html, invalid UTF-8 in URLs, very long
URLs and anchors, thousands of links per page, pathological nesting: every page becomes a row (with an
error where it could not be read), the crawl completes quickly and the store stays consistent."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest

from linkjuice.config import CrawlConfig
from linkjuice.crawl.extract import extract_page
from linkjuice.pipeline import crawl_site
from linkjuice.store import Store

from .servers import bounded, html, serve_raw

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + zlib.compress(bytes(range(256)) * 40)
LONG_HREF = "/long/" + "x" * 9000  # longer than any URL linkjuice keeps (8192)
KEPT_HREF = "/kept/" + "y" * 3000

PAGES: dict[str, tuple[bytes, str]] = {
    "/broken": (b"<html><head><title>Broken</title><body><p><a href='/ok1'>one<div></b></i><table><a href=/ok2>two"
                b"</td></tr><<<>>><a href=\"/ok3\" <a href='/ok4'>four</a><!-- unclosed comment", "text/html"),
    "/nul": (b"<html><title>Nul\x00Title</title><a href='/ok1'>a\x00b</a></html>", "text/html; charset=utf-8"),
    "/latin1-as-utf8": ("<title>Caf\u00e9 cr\u00e8me</title><a href='/ok1'>\u00e9t\u00e9</a>".encode("latin-1"),
                        "text/html; charset=utf-8"),
    "/unknown-charset": ("<title>Unknown \u00e9</title><a href='/ok1'>x</a>".encode(), "text/html; charset=x-no-such"),
    "/utf16-claim": ("<meta charset='utf-16'><title>Claims UTF-16 \u00e9</title>".encode(), "text/html"),
    "/bom-utf16": ("\ufeff<title>BOM UTF-16</title><a href='/ok1'>x</a>".encode("utf-16-le"), "text/html"),
    "/shift-jis-garbage": (b"<title>\x82\xa0\xff\xfe\x81</title><a href='/ok1'>x</a>", "text/html; charset=shift_jis"),
    "/utf7": (b"<title>+ADw-script+AD4-</title>", "text/html; charset=utf-7"),
    "/png-as-html": (PNG, "text/html"),
    "/bad-hrefs": (b"<a href='/caf\xe9/\xff'>bytes</a><a href='http://[::1'>bad</a><a href='javascript:x()'>js</a>"
                   b"<a href='mailto:a@b.c'>mail</a><a href='file:///etc/passwd'>file</a><a href='http://'>empty</a>"
                   b"<a href='\t/tabbed\n/path'>ws</a><a href='/ok1'>ok</a>", "text/html; charset=utf-8"),
    "/long": (f"<a href='{LONG_HREF}'>too long</a><a href='{KEPT_HREF}'>{'anchor ' * 20000}</a>".encode(), "text/html"),
    "/many-links": (("<main>" + "".join(f"<a href='/m/{i}'>link {i}</a>" for i in range(12000)) + "</main>").encode(),
                    "text/html"),
    "/deep": (b"<html><body><a href='/ok1'>before</a>" + b"<div>" * 200_000 + b"<a href='/ok5'>inside</a>", "text/html"),
}


def _handlers() -> dict:
    handlers = {path: html(body, content_type=ctype) for path, (body, ctype) in PAGES.items()}
    handlers["/"] = html("<main>" + "".join(f"<a href='{p}'>{p}</a>" for p in PAGES) + "</main>")
    for i in range(1, 6):
        handlers[f"/ok{i}"] = html(f"<title>OK {i}</title>")
    handlers["/m/0"] = html("<title>M0</title>")
    return handlers


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("content") / "c.duckdb"
    with serve_raw(_handlers()) as server:
        config = CrawlConfig(start_url=server.url("/"), use_sitemaps=False, concurrency=4, max_pages=40)
        started = time.monotonic()
        summary = bounded(lambda: crawl_site(config, db), 120)
        elapsed = time.monotonic() - started
        yield server.origin, db, summary, elapsed, list(server.requests)


def _page(db: Path, url: str) -> dict:
    with Store(db, read_only=True) as store:
        frame = store.con.execute("SELECT * FROM pages WHERE url = ?", [url]).df()
    assert len(frame) == 1, url
    return frame.iloc[0].to_dict()


def _links(db: Path, source: str) -> list[tuple[str, str]]:
    with Store(db, read_only=True) as store:
        return store.con.execute("SELECT target_url, anchor FROM links WHERE source_url = ? ORDER BY link_order",
                                 [source]).fetchall()


def test_every_page_is_a_row_and_the_store_is_consistent(crawled) -> None:
    origin, db, summary, elapsed, _ = crawled
    with Store(db, read_only=True) as store:
        urls = {u for (u,) in store.con.execute("SELECT url FROM pages").fetchall()}
        dups = store.con.execute("SELECT count(*) - count(DISTINCT url) FROM pages").fetchone()[0]
        orphan_links = store.con.execute(
            "SELECT count(*) FROM links WHERE source_url NOT IN (SELECT url FROM pages)").fetchone()[0]
    assert {origin + p for p in PAGES} <= urls and dups == 0 and orphan_links == 0
    assert elapsed < 60  # 200,000 nested <div>s would take hours to parse unguarded


def test_malformed_html_still_yields_links(crawled) -> None:
    origin, db, *_ = crawled
    targets = {t for t, _ in _links(db, origin + "/broken")}
    # '<a href="/ok3" <a href=...' is one element whose second href is ignored, as in a browser.
    assert targets == {origin + "/ok1", origin + "/ok2", origin + "/ok3"}
    title = _page(db, origin + "/nul")["title"]  # a stray NUL: still a page, the NUL dropped or replaced
    anchors = [a for _, a in _links(db, origin + "/nul")]
    assert title.startswith("Nul") and title.endswith("Title") and "\x00" not in title + "".join(anchors)


@pytest.mark.parametrize(("path", "title"), [
    ("/latin1-as-utf8", "Caf\ufffd cr\ufffdme"),  # the header is believed: bad bytes become U+FFFD
    ("/unknown-charset", "Unknown \u00e9"),  # unknown label: UTF-8
    ("/utf16-claim", "Claims UTF-16 \u00e9"),  # an ASCII-readable declaration cannot be UTF-16
    ("/bom-utf16", "BOM UTF-16"),
    ("/utf7", "+ADw-script+AD4-"),  # UTF-7 is refused: it would smuggle markup
])
def test_charsets(crawled, path: str, title: str) -> None:
    origin, db, *_ = crawled
    assert _page(db, origin + path)["title"] == title


def test_garbage_in_a_declared_charset_is_replaced(crawled) -> None:
    origin, db, *_ = crawled
    page = _page(db, origin + "/shift-jis-garbage")
    assert page["status"] == 200 and "\ufffd" in page["title"]


def test_binary_served_as_html_is_not_parsed(crawled) -> None:
    origin, db, *_ = crawled
    page = _page(db, origin + "/png-as-html")
    assert page["status"] == 200 and page["error"] == "binary content served as HTML: not parsed"
    assert page["is_html"] is False and page["indexability"] == "not html"


def test_bad_hrefs_are_dropped_or_encoded(crawled) -> None:
    origin, db, *_ = crawled
    targets = [t for t, _ in _links(db, origin + "/bad-hrefs")]
    assert targets == [origin + "/caf%EF%BF%BD/%EF%BF%BD", origin + "/tabbed/path", origin + "/ok1"]


def test_long_urls_and_anchors_are_bounded(crawled) -> None:
    origin, db, *_ = crawled
    links = _links(db, origin + "/long")
    assert [t for t, _ in links] == [origin + KEPT_HREF]
    assert len(links[0][1]) <= 500


def test_thousands_of_links_are_kept_up_to_the_cap(crawled) -> None:
    origin, db, *_ = crawled
    links = _links(db, origin + "/many-links")
    assert len(links) == 10_000 and links[-1][0] == origin + "/m/9999"


def test_pathological_nesting_is_cut_and_recorded(crawled) -> None:
    origin, db, *_ = crawled
    page = _page(db, origin + "/deep")
    assert page["status"] == 200 and page["error"].startswith("markup nested too deeply")
    assert [t for t, _ in _links(db, origin + "/deep")] == [origin + "/ok1"]  # read up to the cut


@pytest.mark.parametrize("tag", ["div", "section", "blockquote", "ul", "pre"])
def test_nesting_guard_bounds_parse_time(tag: str) -> None:
    body = f"<a href='/first'>x</a>{'<' + tag + '>' * 1}".encode() + f"<{tag}>".encode() * 100_000
    started = time.perf_counter()
    page = extract_page(body, "http://example.com/")
    assert time.perf_counter() - started < 5  # unguarded: about a minute
    assert page.problem is not None and [link.url for link in page.links] == ["http://example.com/first"]


def test_ordinary_big_pages_are_not_cut() -> None:
    body = b"<html><body>" + b"<div class='c'><p>Hello <a href='/z'>z</a> there</p></div>\n" * 20_000
    page = extract_page(body, "http://example.com/")
    assert page.problem is None and len(page.links) == 10_000

"""Redirect loops, self-canonical cycles, and Location headers that are malformed, relative, huge, not
UTF-8, or point to other schemes (ftp:, javascript:, data:, file:) or other hosts: each is recorded on
its page; nothing outside the site is fetched; the crawl and the scores complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from linkjuice.config import CrawlConfig
from linkjuice.pipeline import crawl_site
from linkjuice.store import Store

from .servers import bounded, html, raw, serve_raw

LOCATIONS: dict[str, bytes] = {
    "/malformed": b"http://[::1",
    "/relative": b"target/",
    "/dot-relative": b"../relative/target/?from=dot",
    "/ftp": b"ftp://127.0.0.1/file.txt",
    "/javascript": b"javascript:alert(document.cookie)",
    "/data": b"data:text/html,<script>alert(1)</script>",
    "/file": b"file:///etc/passwd",
    "/offsite": b"http://evil.example/steal",
    "/offsite-port": b"http://127.0.0.1:9/other-port",
    "/protocol-relative": b"//evil.example/x",
    "/not-utf8": b"/caf\xe9-\xff\xfe/",
    "/control": b"/a\x01b",
    "/empty": b"",
    "/self": b"/self",
    "/loop-a": b"/loop-b",
    "/loop-b": b"/loop-a",
}
HUGE_LOCATION = b"/" + b"x" * 100_000


def _redirect(location: bytes, status: int = 301) -> bytes:
    head = f"HTTP/1.1 {status} Moved\r\nContent-Length: 0\r\nConnection: close\r\n".encode()
    return head + (b"Location: " + location + b"\r\n" if location or status != 301 else b"Location: \r\n") + b"\r\n"


def _handlers() -> dict:
    handlers = {path: raw(_redirect(loc)) for path, loc in LOCATIONS.items()}
    handlers["/no-location"] = raw(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    handlers["/huge-location"] = raw(_redirect(HUGE_LOCATION))
    handlers["/target/"] = html("<html><title>Target</title></html>")
    handlers["/relative/target/"] = html("<html><title>Target</title></html>")
    handlers["/chain0"] = raw(_redirect(b"/chain1"))
    for i in range(1, 15):
        handlers[f"/chain{i}"] = raw(_redirect(f"/chain{i + 1}".encode(), 302))
    links = "".join(f"<a href='{p}'>{p}</a>" for p in [*LOCATIONS, "/no-location", "/huge-location", "/chain0",
                                                          "/canon-a", "/canon-c"])
    handlers["/"] = html(f"<html><title>Home</title><main>{links}</main></html>")
    # Canonicals in a cycle (a -> b -> a), and a page canonical to itself.
    handlers["/canon-a"] = html("<html><head><link rel=canonical href='/canon-b'><title>A</title></head>"
                                "<main><a href='/canon-b'>b</a></main></html>")
    handlers["/canon-b"] = html("<html><head><link rel=canonical href='/canon-a'><title>B</title></head>"
                                "<main><a href='/'>home</a></main></html>")
    handlers["/canon-c"] = html("<html><head><link rel=canonical href='/canon-c'><title>C</title></head></html>")
    return handlers


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("redirects") / "r.duckdb"
    with serve_raw(_handlers()) as server:
        config = CrawlConfig(start_url=server.url("/"), use_sitemaps=False, concurrency=4, max_redirects=10)
        summary = bounded(lambda: crawl_site(config, db), 60)
        requests = list(server.requests)
        yield server.origin, db, summary, requests


def _pages(db: Path) -> dict[str, tuple]:
    with Store(db, read_only=True) as store:
        rows = store.con.execute("SELECT url, status, redirect_to, error, indexability FROM pages").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_crawl_completes_and_scores(crawled) -> None:
    origin, db, summary, _ = crawled
    assert summary.stop_reason == "complete"
    with Store(db, read_only=True) as store:
        assert store.con.execute("SELECT count(*) - count(DISTINCT url) FROM pages").fetchone()[0] == 0
        ranked = store.con.execute("SELECT sum(pagerank) FROM scores s JOIN pages p USING (url) WHERE p.indexable").fetchone()[0]
    assert ranked == pytest.approx(1.0)


@pytest.mark.parametrize("path", ["/ftp", "/javascript", "/data", "/file", "/malformed"])
def test_unusable_locations_are_recorded_not_followed(crawled, path: str) -> None:
    origin, db, _, requests = crawled
    status, redirect_to, error, _ = _pages(db)[origin + path]
    assert status == 301 and error.startswith("redirect to unsupported URL")
    assert redirect_to == LOCATIONS[path].decode("latin-1")


def test_relative_locations_resolve(crawled) -> None:
    origin, db, _, _ = crawled
    pages = _pages(db)
    assert pages[origin + "/relative"][1] == origin + "/target/"  # resolved against /relative
    assert pages[origin + "/dot-relative"][1] == origin + "/relative/target/?from=dot"
    assert pages[origin + "/target/"][0] == 200


def test_offsite_redirects_are_recorded_never_fetched(crawled) -> None:
    origin, db, _, requests = crawled
    pages = _pages(db)
    assert pages[origin + "/offsite"][1] == "http://evil.example/steal"
    assert pages[origin + "/protocol-relative"][1] == "http://evil.example/x"
    assert pages[origin + "/offsite-port"][1] == "http://127.0.0.1:9/other-port"
    assert not any("evil.example" in u or ":9/" in u for u in pages)  # no page row: never fetched
    assert "/steal" not in requests and "/x" not in requests and "/other-port" not in requests


def test_not_utf8_empty_missing_and_huge_locations(crawled) -> None:
    origin, db, _, _ = crawled
    pages = _pages(db)
    assert pages[origin + "/not-utf8"][1] == origin + "/caf%E9-%FF%FE/"  # raw bytes percent-encoded
    assert pages[origin + "/control"][1] == origin + "/a%01b"
    assert pages[origin + "/no-location"][2] == "redirect without Location header"
    assert pages[origin + "/empty"][2] == "redirect without Location header"
    status, _, error, _ = pages[origin + "/huge-location"]
    assert status is None and error.startswith("bad response")  # header over aiohttp's limit


def test_loops_and_long_chains_end(crawled) -> None:
    origin, db, _, requests = crawled
    pages = _pages(db)
    assert pages[origin + "/self"][1] == origin + "/self" and requests.count("/self") == 1
    assert requests.count("/loop-a") == 1 and requests.count("/loop-b") == 1
    assert pages[origin + "/chain10"][2] == "redirect chain longer than 10 hops"
    assert origin + "/chain11" not in pages


def test_canonical_cycles_resolve_one_step(crawled) -> None:
    origin, db, _, _ = crawled
    pages = _pages(db)
    assert pages[origin + "/canon-a"][3] == "canonicalised" and pages[origin + "/canon-b"][3] == "canonicalised"
    assert pages[origin + "/canon-c"][3] == "indexable"  # canonical to itself

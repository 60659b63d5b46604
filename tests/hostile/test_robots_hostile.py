"""robots.txt that is huge, binary, a redirect (on the site or off it), a 5xx or 429 (disallow all, as
Google does), a 4xx (allow all), or that never answers (disallow all): each read as documented, and the
crawl either proceeds or stops with one clear error."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from linkjuice.config import CrawlConfig
from linkjuice.crawl.robots import MAX_ROBOTS_BYTES
from linkjuice.errors import CrawlError
from linkjuice.pipeline import crawl_site
from linkjuice.store import Store

from .servers import FOREVER, Handler, bounded, html, raw, serve_raw

SITE: dict[str, Handler] = {
    "/": html("<main><a href='/public/'>p</a> <a href='/private/'>x</a> <a href='/late/'>l</a></main>"),
    "/public/": html("<title>Public</title>"),
    "/private/": html("<title>Private</title>"),
    "/late/": html("<title>Late</title>"),
}


def _crawl(tmp_path: Path, robots: Handler, **extra: Handler) -> tuple[dict[str, str | None], list[str]]:
    db = tmp_path / "robots.duckdb"
    with serve_raw({**SITE, "/robots.txt": robots, **extra}) as server:
        config = CrawlConfig(start_url=server.url("/"), use_sitemaps=False, timeout=1.0, retries=0)
        bounded(lambda: crawl_site(config, db), 60)
        origin, requests = server.origin, list(server.requests)
    with Store(db, read_only=True) as store:
        rows = store.con.execute("SELECT url, error FROM pages").fetchall()
    return {url[len(origin):]: error for url, error in rows}, requests


def _text(body: bytes | str) -> Handler:
    return html(body, content_type="text/plain")


def test_huge_robots_is_read_to_500_kib(tmp_path: Path) -> None:
    filler = b"# " + b"x" * 200 + b"\n"
    body = b"User-agent: *\nDisallow: /private/\n" + filler * (MAX_ROBOTS_BYTES // len(filler) + 10)
    body += b"Disallow: /late/\n"  # past the limit: ignored, as Google does
    pages, _ = _crawl(tmp_path, _text(body))
    assert pages["/private/"] == "blocked by robots.txt"
    assert pages["/late/"] is None and pages["/public/"] is None


def test_binary_robots_allows_all(tmp_path: Path) -> None:
    pages, requests = _crawl(tmp_path, _text(os.urandom(4096).replace(b"\n", b" ")))
    assert all(error is None for error in pages.values()) and "/private/" in requests


def test_robots_redirect_on_the_site_is_followed(tmp_path: Path) -> None:
    moved = raw(b"HTTP/1.1 301 Moved\r\nLocation: /real-robots.txt\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    pages, _ = _crawl(tmp_path, moved, **{"/real-robots.txt": _text("User-agent: *\nDisallow: /private/\n")})
    assert pages["/private/"] == "blocked by robots.txt" and pages["/public/"] is None


def test_robots_redirect_off_the_site_is_not_followed(tmp_path: Path) -> None:
    # Another port is another server: not followed; an unfollowed 3xx reads as "no rules".
    moved = raw(b"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:9/robots.txt\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n")
    pages, _ = _crawl(tmp_path, moved)
    assert pages["/private/"] is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_robots_4xx_allows_all(tmp_path: Path, status: int) -> None:
    pages, _ = _crawl(tmp_path, html("no", status=status))
    assert pages["/private/"] is None


@pytest.mark.parametrize("status", [500, 503, 429])
def test_robots_5xx_and_429_disallow_all(tmp_path: Path, status: int) -> None:
    with pytest.raises(CrawlError, match=rf"robots.txt failed \(HTTP {status}\), read as disallow all"):
        _crawl(tmp_path, html("busy", status=status))
    assert not (tmp_path / "robots.duckdb").exists()  # nothing crawled, nothing kept


def test_robots_that_never_answers_disallows_all(tmp_path: Path) -> None:
    async def silent(writer: asyncio.StreamWriter, path: str) -> None:
        await asyncio.sleep(FOREVER)

    with pytest.raises(CrawlError, match=r"robots.txt failed \(timeout\)"):
        _crawl(tmp_path, silent)

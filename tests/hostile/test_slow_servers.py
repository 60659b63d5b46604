"""Servers that trickle, never answer, or stall after the headers: each request is cut by the timeout,
recorded as `timeout` on its page, and the crawl goes on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from linkjuice.config import CrawlConfig
from linkjuice.crawl.fetch import HttpFetcher
from linkjuice.pipeline import crawl_site
from linkjuice.store import Store

from .servers import FOREVER, Handler, bounded, html, response_head, serve_raw

TIMEOUT = 1.0


async def _trickle(writer: asyncio.StreamWriter, path: str) -> None:
    """Headers, then one byte every 50 ms forever: sock_read never fires, only `total` can."""
    writer.write(response_head(length=10_000_000) + b"<html>")
    while True:
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.05)


async def _silent(writer: asyncio.StreamWriter, path: str) -> None:
    """Accepts the connection, reads the request, never answers."""
    await asyncio.sleep(FOREVER)


async def _stall_after_headers(writer: asyncio.StreamWriter, path: str) -> None:
    writer.write(response_head(length=5000) + b"<html><title>half")
    await writer.drain()
    await asyncio.sleep(FOREVER)


async def _stall_inside_headers(writer: asyncio.StreamWriter, path: str) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/ht")
    await writer.drain()
    await asyncio.sleep(FOREVER)


SLOW: dict[str, Handler] = {
    "/trickle": _trickle, "/silent": _silent, "/stall-body": _stall_after_headers,
    "/stall-headers": _stall_inside_headers,
}


def _fetcher() -> HttpFetcher:
    return HttpFetcher(user_agent="linkjuice-test", timeout=TIMEOUT, max_body_bytes=1 << 20, retries=0,
                       backoff=0.01, concurrency=4)


@pytest.mark.parametrize("path", sorted(SLOW))
def test_each_slow_server_is_cut_by_the_timeout(path: str) -> None:
    async def fetch(url: str):  # noqa: ANN202
        fetcher = _fetcher()
        try:
            started = time.monotonic()
            result = await fetcher.fetch(url)
            return result, time.monotonic() - started
        finally:
            await fetcher.close()

    with serve_raw(SLOW) as server:
        result, elapsed = bounded(lambda: asyncio.run(fetch(server.url(path))), 15)
    assert result.status is None and result.error == "timeout"
    assert TIMEOUT * 0.8 <= elapsed < TIMEOUT + 2.0


def test_crawl_records_timeouts_and_goes_on(tmp_path: Path) -> None:
    links = "".join(f"<a href='{p}'>{p}</a>" for p in SLOW)
    handlers = {**SLOW,
                "/": html(f"<html><title>Home</title><main>{links}<a href='/ok'>ok</a></main></html>"),
                "/ok": html("<html><title>OK</title><main><a href='/after'>after</a></main></html>"),
                "/after": html("<html><title>After</title></html>")}
    db = tmp_path / "slow.duckdb"
    started = time.monotonic()
    with serve_raw(handlers) as server:
        config = CrawlConfig(start_url=server.url("/"), timeout=TIMEOUT, retries=1, backoff=0.01,
                             concurrency=2, use_sitemaps=False)
        summary = bounded(lambda: crawl_site(config, db), 30)
        origin = server.origin
    # Four hanging URLs, each tried twice at 1 s, two at a time: well under 10 s.
    assert time.monotonic() - started < 10
    assert summary.stop_reason == "complete"
    with Store(db, read_only=True) as store:
        rows = dict(store.con.execute("SELECT url, coalesce(error, CAST(status AS VARCHAR)) FROM pages").fetchall())
    assert {rows[origin + p] for p in SLOW} == {"timeout"}
    assert rows[origin + "/ok"] == "200" and rows[origin + "/after"] == "200"  # the crawl went on

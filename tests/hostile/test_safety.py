"""Crawled content is data: terminal escapes, bidi controls and Rich markup in titles, anchors and URLs
never reach the terminal as control (commands `pages`, `explain`, `audit`); the crawler stays in scope
through redirects and sitemaps, reads file: URLs only in local mode and only inside the folder, and
says who it is in every request. (Sitemap XXE and billion laughs: tests/test_sitemaps.py.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linkjuice import __version__
from linkjuice.config import DEFAULT_USER_AGENT, CrawlConfig
from linkjuice.crawl.fetch import HttpFetcher, LocalFetcher
from linkjuice.pipeline import crawl_site
from linkjuice.store import Store

from ..sitekit import Route
from .servers import bounded, serve_fn

EVIL = "\x1b[2J\x1b[31m[/]red[link=file:///etc/passwd]click[/link]\x1b]8;;http://evil.example/\x07x\u202eevil"


def _site(path: str) -> Route | None:
    if path == "/":
        return Route(body=f"<html><title>{EVIL}</title><main><a href='/target/'>{EVIL}</a>"
                          "<a href='/target/#[bold]'>[bold]markup[/bold]</a></main></html>")
    if path == "/target/":
        return Route(body="<html><title>Target</title><main><a href='/'>home</a></main></html>")
    return None


@pytest.fixture(scope="module")
def store_with_hostile_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("safety") / "s.duckdb"
    with serve_fn(_site) as site:
        bounded(lambda: crawl_site(CrawlConfig(start_url=site.url("/"), use_sitemaps=False), db), 60)
        origin = site.origin
    return db, origin


def test_extraction_strips_controls_but_keeps_the_text(store_with_hostile_text: tuple[Path, str]) -> None:
    db, origin = store_with_hostile_text
    with Store(db, read_only=True) as store:
        title = store.con.execute("SELECT title FROM pages WHERE url = ?", [origin + "/"]).fetchone()[0]
        anchors = [a for (a,) in store.con.execute("SELECT anchor FROM links ORDER BY link_order").fetchall()]
    for text in [title, *anchors]:
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "[link=file:///etc/passwd]click[/link]" in title  # shown as text, not dropped


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # FORCE_COLOR makes rich write as to a terminal: markup, if it were read, would become escapes.
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "linkjuice", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_terminal_output_shows_hostile_text_inert(tmp_path: Path, store_with_hostile_text: tuple[Path, str]) -> None:
    source, origin = store_with_hostile_text
    db = tmp_path / "imported-like.duckdb"
    db.write_bytes(source.read_bytes())
    # Text that did not pass through the extractor (an imported link graph): raw escapes in the store.
    with Store(db) as store:
        store.con.execute("UPDATE links SET anchor = ? WHERE target_url = ?", [EVIL, origin + "/target/"])
    assert _cli("score", "--db", str(db)).returncode == 0
    outputs = [_cli("explain", origin + "/target/", "--db", str(db)), _cli("pages", "--db", str(db))]
    if any(c == "audit" for c in _commands()):
        outputs.append(_cli("audit", "--db", str(db)))
    for proc in outputs:
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        out = proc.stdout
        for sequence in ("\x1b[2J", "\x1b[31m[", "\x1b]8;", "\x07", "\u202e"):
            assert sequence not in out, (proc.args, repr(sequence))
    explained = outputs[0].stdout
    assert "[/]red[link=file:///etc/passwd]click[/link]" in explained.replace("\n", "")  # literal, not markup


def _commands() -> list[str]:
    import typer.main

    from linkjuice.cli import app

    return list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_redirects_and_sitemaps_never_leave_the_site(tmp_path: Path) -> None:
    def route(path: str) -> Route | None:
        if path == "/robots.txt":
            return Route(body="Sitemap: http://127.0.0.1:9/sitemap.xml\nSitemap: /sitemap.xml\n", content_type="text/plain")
        if path == "/sitemap.xml":
            return Route(body="<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
                              "<url><loc>http://other.example/x</loc></url></urlset>", content_type="application/xml")
        if path == "/":
            return Route(body="<a href='/sub'>sub</a><a href='/port'>port</a><a href='http://127.0.0.2/x'>ip</a>")
        if path == "/sub":
            return Route(status=302, headers={"Location": "http://www.127.0.0.1.nip.example/"})
        if path == "/port":
            return Route(status=307, headers={"Location": "http://127.0.0.1:1/"})
        return None

    db = tmp_path / "scope.duckdb"
    with serve_fn(route) as site:
        bounded(lambda: crawl_site(CrawlConfig(start_url=site.url("/")), db), 60)
        requests = list(site.requests)
    with Store(db, read_only=True) as store:
        urls = {u for (u,) in store.con.execute("SELECT url FROM pages").fetchall()}
        meta = store.meta()
    assert urls == {site.url("/"), site.url("/sub"), site.url("/port")}
    assert meta["sitemaps_read"] == [site.url("/sitemap.xml")]  # the off-site sitemap was not fetched
    assert sorted(set(requests)) == ["/", "/port", "/robots.txt", "/sitemap.xml", "/sub"]


def test_http_fetcher_refuses_file_urls() -> None:
    async def fetch():  # noqa: ANN202
        fetcher = HttpFetcher(user_agent="t", timeout=2, max_body_bytes=100, retries=0, backoff=0, concurrency=1)
        try:
            return await fetcher.fetch("file:///etc/passwd")
        finally:
            await fetcher.close()

    result = asyncio.run(fetch())
    assert result.status is None and result.body == b"" and result.error == "not an http(s) URL: not fetched"


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/a/../../secret.txt", "/link/secret.txt",
                                  "/..%2fsecret.txt", "//etc/passwd"])
def test_local_mode_never_reads_outside_its_folder(tmp_path: Path, path: str) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<title>in</title>")
    (tmp_path / "secret.txt").write_text("SECRET")
    (root / "link").symlink_to(tmp_path)  # a symlink out of the folder
    result = LocalFetcher(root, "https://example.com/").fetch_sync("https://example.com" + path)
    assert b"SECRET" not in result.body and result.status == 404


def test_user_agent_is_honest_on_every_request(tmp_path: Path) -> None:
    assert DEFAULT_USER_AGENT.startswith(f"linkjuice/{__version__} (+http")
    with serve_fn(_site) as site:
        bounded(lambda: crawl_site(CrawlConfig(start_url=site.url("/")), tmp_path / "ua.duckdb"), 60)
        agents = list(zip(site.requests, site.user_agents))
    assert {p for p, _ in agents} >= {"/robots.txt", "/sitemap.xml", "/", "/target/"}
    assert {ua for _, ua in agents} == {DEFAULT_USER_AGENT}

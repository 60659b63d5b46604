"""End-to-end crawls of hand-made sites served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest

from linkjuice.config import CrawlConfig
from linkjuice.errors import CrawlError, UsageError
from linkjuice.pipeline import crawl_site, pages
from linkjuice.store import Store

from .sitekit import Route, page, redirect, serve

NAV = "<a href='/'>Home</a> <a href='/a/'>A</a> <a href='/b/'>B</a>"


def _site(origin_holder: list[str]) -> dict[str, Route]:
    def sitemap_index(_: str) -> Route:
        o = origin_holder[0]
        return Route(body=f"<sitemapindex xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
                          f"<sitemap><loc>{o}/sitemap-pages.xml.gz</loc></sitemap></sitemapindex>",
                     content_type="application/xml")

    def sitemap_pages(_: str) -> Route:
        o = origin_holder[0]
        xml = (f"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'><url><loc>{o}/a/</loc></url>"
               f"<url><loc>{o}/orphan/</loc></url><url><loc>https://elsewhere.example/x</loc></url></urlset>")
        return Route(body=gzip.compress(xml.encode()), content_type="application/gzip")

    return {
        "/robots.txt": Route(body="User-agent: *\nDisallow: /private/\nSitemap: /sitemap_index.xml\n",
                             content_type="text/plain"),
        "/sitemap_index.xml": sitemap_index,
        "/sitemap-pages.xml.gz": sitemap_pages,
        "/": page("Home", "<p>Welcome to <a href='/a/'>section A</a>. See <a href='/old/'>old</a>, "
                          "<a href='/chain1/'>chain</a>, <a href='/loop1/'>loop</a>, <a href='/missing/'>gone</a>, "
                          "<a href='/error/'>err</a>, <a href='/private/secret/'>secret</a>, "
                          "<a href='/doc.pdf'>pdf</a>, <a href='/b/' rel='nofollow'>b</a>, "
                          "<a href='https://external.example/page'>ext</a>, <a href='/a/#frag'>frag</a></p>",
                  nav=NAV),
        "/a/": page("A", "<p>Page A links to <a href='/b/'>page B</a>.</p>", nav=NAV),
        "/b/": page("B", "<p>Page B.</p>", nav=NAV,
                    head="<link rel='canonical' href='/a/'>"),
        "/old/": redirect("/a/"),
        "/chain1/": redirect("/chain2/", 302),
        "/chain2/": redirect("/b/", 301),
        "/loop1/": redirect("/loop2/"),
        "/loop2/": redirect("/loop1/"),
        "/missing/": Route(status=404, body="not found"),
        "/error/": Route(status=500, body="boom"),
        "/private/secret/": page("Secret", "never fetched"),
        "/doc.pdf": Route(body=b"%PDF-1.4 tiny", content_type="application/pdf"),
        "/orphan/": page("Orphan", "<p>Only in the sitemap. Back <a href='/'>home</a>.</p>"),
        "/noindex/": page("Noindex", "x", head="<meta name='robots' content='noindex'>"),
    }


@pytest.fixture()
def crawled(tmp_path: Path):
    holder: list[str] = []
    routes = _site(holder)
    with serve(routes) as site:
        holder.append(site.origin)
        db = tmp_path / "crawl.duckdb"
        summary = crawl_site(CrawlConfig(start_url=site.url("/"), concurrency=4, backoff=0.01), db)
        yield site, db, summary


def _rows(db: Path, sql: str, params=()):
    with Store(db, read_only=True) as store:
        return store.con.execute(sql, list(params)).fetchall()


def test_pages_statuses_and_robots(crawled) -> None:
    site, db, summary = crawled
    assert summary.stop_reason == "complete"
    status = dict(_rows(db, "SELECT url, status FROM pages"))
    u = site.url
    assert status[u("/")] == 200 and status[u("/a/")] == 200
    assert status[u("/missing/")] == 404 and status[u("/error/")] == 500
    assert status[u("/old/")] == 301 and status[u("/chain1/")] == 302
    assert status[u("/doc.pdf")] == 200
    blocked = _rows(db, "SELECT blocked_by_robots, status, error FROM pages WHERE url = ?", [u("/private/secret/")])
    assert blocked == [(True, None, "blocked by robots.txt")]
    assert "/private/secret/" not in site.requests  # recorded, never fetched
    assert all(not p.startswith("/a/#") for p in site.requests)
    # the external link is stored, never fetched
    assert _rows(db, "SELECT is_internal FROM links WHERE target_url = 'https://external.example/page'") == [(False,)]
    assert not any(u("/") == x for x in [])  # placeholder for readability


def test_retries_on_500_only_when_retryable(crawled) -> None:
    site, _, _ = crawled
    assert site.requests.count("/error/") == 1  # 500 is not retried; 503/429 are


def test_redirect_hops_chains_and_loops(crawled) -> None:
    site, db, _ = crawled
    u = site.url
    hops = set(_rows(db, "SELECT source_url, status, target_url FROM redirects"))
    assert (u("/chain1/"), 302, u("/chain2/")) in hops and (u("/chain2/"), 301, u("/b/")) in hops
    assert (u("/loop1/"), 301, u("/loop2/")) in hops and (u("/loop2/"), 301, u("/loop1/")) in hops
    final = dict(_rows(db, "SELECT url, final_url FROM pages"))
    assert final[u("/chain1/")] == u("/b/")
    assert final[u("/old/")] == u("/a/")
    assert final[u("/loop1/")] is None  # a loop has no final page


def test_sitemap_index_gzip_and_orphans(crawled) -> None:
    site, db, _ = crawled
    u = site.url
    rows = dict(_rows(db, "SELECT url, in_scope FROM sitemap_entries"))
    assert rows[u("/orphan/")] is True and rows["https://elsewhere.example/x"] is False
    via = dict(_rows(db, "SELECT url, found_via FROM pages"))
    assert via[u("/orphan/")] == "sitemap"  # reached only through the sitemap
    assert via[u("/a/")] == "link"
    assert dict(_rows(db, "SELECT url, in_sitemap FROM pages"))[u("/a/")] is True


def test_positions_nofollow_canonical_indexability(crawled) -> None:
    site, db, _ = crawled
    u = site.url
    nofollow = _rows(db, "SELECT nofollow, rel FROM links WHERE source_url = ? AND target_url = ? AND dom_position = 'content'",
                     [u("/"), u("/b/")])
    assert nofollow == [(True, "nofollow")]
    nav = _rows(db, "SELECT DISTINCT position FROM links WHERE source_url = ? AND anchor = 'A'", [u("/")])
    assert nav == [("nav",)]
    idx = dict(_rows(db, "SELECT url, indexability FROM pages"))
    assert idx[u("/b/")] == "canonicalised" and idx[u("/a/")] == "indexable"
    assert idx[u("/missing/")] == "client error" and idx[u("/error/")] == "server error"
    assert idx[u("/doc.pdf")] == "not html" and idx[u("/old/")] == "redirect"


def test_click_depth_and_scores(crawled) -> None:
    site, db, _ = crawled
    u = site.url
    frame = pages(db, limit=None).set_index("url")
    assert frame.loc[u("/"), "depth"] == 0
    assert frame.loc[u("/a/"), "depth"] == 1
    assert frame.loc[u("/chain2/"), "depth"] == 1  # a redirect hop is not a click: /chain1/ is 1 too
    assert frame.loc[u("/chain1/"), "depth"] == 1
    assert frame["depth"].isna()[u("/orphan/")]  # no link reaches it
    ranked = frame[frame["indexable"] == True]  # noqa: E712
    assert ranked["pagerank"].sum() == pytest.approx(1.0)
    assert ranked["juice_score"].max() == pytest.approx(100.0)
    assert frame.loc[u("/a/"), "juice"] > frame.loc[u("/orphan/"), "juice"]
    assert frame["juice"].isna()[u("/b/")]  # canonicalised: its juice goes to /a/


def test_user_agent_is_honest(crawled) -> None:
    site, _, _ = crawled
    assert site.user_agents and all(ua.startswith("linkjuice/") for ua in site.user_agents)


def test_retry_after_503_then_success(tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky(_: str) -> Route:
        calls["n"] += 1
        if calls["n"] == 1:
            return Route(status=503, headers={"Retry-After": "0"}, body="busy")
        return page("OK", "<p>fine</p>")

    with serve({"/": flaky}) as site:
        crawl_site(CrawlConfig(start_url=site.url("/"), backoff=0.01), tmp_path / "r.duckdb")
    assert calls["n"] == 2
    assert _rows(tmp_path / "r.duckdb", "SELECT status FROM pages") == [(200,)]


def test_limits_mark_the_crawl_partial(tmp_path: Path) -> None:
    routes = {"/": page("Home", "".join(f"<a href='/p{i}/'>p{i}</a>" for i in range(20)))}
    routes.update({f"/p{i}/": page(f"P{i}", "<a href='/deeper/'>d</a>") for i in range(20)})
    with serve(routes) as site:
        db = tmp_path / "limited.duckdb"
        summary = crawl_site(CrawlConfig(start_url=site.url("/"), max_pages=5, use_sitemaps=False), db)
    assert summary.pages == 5 and summary.limits_hit and summary.stop_reason == "max-pages"
    with Store(db, read_only=True) as store:
        assert store.meta()["limits_hit"] is True


def test_max_depth(tmp_path: Path) -> None:
    routes = {"/": page("H", "<a href='/1/'>1</a>"), "/1/": page("1", "<a href='/2/'>2</a>"),
              "/2/": page("2", "<a href='/3/'>3</a>"), "/3/": page("3", "x")}
    with serve(routes) as site:
        db = tmp_path / "d.duckdb"
        summary = crawl_site(CrawlConfig(start_url=site.url("/"), max_depth=1, use_sitemaps=False), db)
    assert summary.pages == 2 and summary.limits_hit


def test_local_mode_reads_a_static_build(tmp_path: Path) -> None:
    root = tmp_path / "public"
    (root / "blog" / "post").mkdir(parents=True)
    (root / "index.html").write_text("<title>Home</title><main><a href='/blog/post/'>Post</a> <a href='/old'>Old</a></main>")
    (root / "blog" / "post" / "index.html").write_text("<title>Post</title><main><a href='/'>Home</a></main>")
    (root / "_redirects").write_text("/old /blog/post/ 301\n")
    db = tmp_path / "local.duckdb"
    crawl_site(CrawlConfig(start_url="https://example.com/", local_root=str(root)), db)
    status = dict(_rows(db, "SELECT url, status FROM pages"))
    assert status == {"https://example.com/": 200, "https://example.com/blog/post/": 200,
                      "https://example.com/old": 301}


def test_unreachable_start_is_a_clean_error(tmp_path: Path) -> None:
    db = tmp_path / "none.duckdb"
    with pytest.raises(CrawlError, match="cannot reach"):
        crawl_site(CrawlConfig(start_url="http://127.0.0.1:9/", timeout=2, retries=0), db)
    assert not db.exists()


def test_bad_start_url_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        crawl_site(CrawlConfig(start_url="ftp://example.com/"), tmp_path / "x.duckdb")


def test_second_crawl_into_same_store_is_refused(crawled) -> None:
    site, db, _ = crawled
    with pytest.raises(UsageError, match="--resume"):
        crawl_site(CrawlConfig(start_url=site.url("/")), db)


def _varied_site(n: int) -> dict[str, Route]:
    """Pages whose links exercise every extracted field: positions, rel, nofollow pages, noscript,
    image anchors, non-ASCII text, canonicals, external links, and a binary body served as HTML."""
    routes: dict[str, Route] = {}
    for i in range(n):
        body = (f"<p>Article {i}: <a href='/p{(i + 1) % n}/'>next \u00e9t\u00e9</a>, "
                f"<a href='/p{(i * 3) % n}/?utm_source=x' rel='sponsored ugc'>sponsor</a>, "
                f"<a href='https://ext.example/{i}'>ext</a> <a href='#top'>top</a></p>"
                f"<noscript><a href='/hidden/'>hidden</a></noscript>"
                f"<div class='sidebar'><a href='/p{(i * 5) % n}/'><img alt='thumb {i}'></a></div>"
                f"<footer class='site-footer'><a href='/p{(i * 7) % n}/'>foot</a></footer>")
        head = "<meta name='robots' content='nofollow'>" if i % 9 == 4 else ""
        if i % 6 == 2:
            head += f"<link rel='canonical' href='/p{(i + 2) % n}/'>"
        routes[f"/p{i}/"] = page(f"P{i} \u00fc", body, head=head, nav="<a href='/'>Home</a> <a href='/p0/'>First</a>")
    routes["/"] = page("Home", "<a href='/p0/'>start</a> <a href='/blob/'>blob</a>")
    routes["/blob/"] = Route(body=b"\x89PNG\r\n\x1a\n" + bytes(200))
    return routes


@pytest.mark.parametrize("workers", [1, 2])
def test_extraction_workers_store_the_same_crawl(tmp_path: Path, workers: int) -> None:
    """Pages parsed in worker processes are stored exactly as pages parsed in-process."""
    from linkjuice.crawl.crawler import Crawler

    def crawl(db: Path, extract_workers: int) -> tuple[list, list, list, int]:
        config = CrawlConfig(start_url=site.url("/"), concurrency=1, use_sitemaps=False,
                             strip_tracking=True, extract_workers=extract_workers)
        with Store(db) as store:
            crawler = Crawler(config, store)
            asyncio.run(crawler.run())
            parsed_by_workers = crawler._pool.parsed_by_workers if crawler._pool else 0
        return (_rows(db, "SELECT * EXCLUDE (crawled_at, response_time_ms) FROM pages ORDER BY seq"),
                _rows(db, "SELECT * FROM links ORDER BY source_url, link_order"),
                _rows(db, "SELECT * FROM frontier ORDER BY seq"), parsed_by_workers)

    with serve(_varied_site(40)) as site:
        pages_here, links_here, frontier_here, _ = crawl(tmp_path / "here.duckdb", 0)
        pages_there, links_there, frontier_there, parsed = crawl(tmp_path / "there.duckdb", workers)
    assert parsed > 0  # the workers did parse
    assert len(links_here) > 200
    assert pages_there == pages_here
    assert links_there == links_here
    assert frontier_there == frontier_here


def test_frontier_held_in_memory_or_read_back_stores_the_same_crawl(tmp_path: Path, monkeypatch) -> None:
    """New frontier rows are read from memory while few; past the cap they are read back from the
    store. Either way (concurrency 1: one discovery order) the crawl stores the same rows."""
    from linkjuice.crawl import crawler as crawler_module

    def crawl(db: Path) -> tuple[list, list, list]:
        config = CrawlConfig(start_url=site.url("/"), concurrency=1, use_sitemaps=False, extract_workers=0)
        with Store(db) as store:
            asyncio.run(crawler_module.Crawler(config, store).run())
        return (_rows(db, "SELECT * EXCLUDE (crawled_at, response_time_ms) FROM pages ORDER BY seq"),
                _rows(db, "SELECT * FROM links ORDER BY source_url, link_order"),
                _rows(db, "SELECT * FROM frontier ORDER BY seq"))

    with serve(_varied_site(60)) as site:
        in_memory = crawl(tmp_path / "memory.duckdb")
        monkeypatch.setattr(crawler_module, "_MAX_TAIL", 2)
        read_back = crawl(tmp_path / "store.duckdb")
    assert len(in_memory[0]) > 60
    assert read_back == in_memory


def test_crawl_event_loop_is_uvloop_unless_rendering_or_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The crawl runs on uvloop where installed; --render and LINKJUICE_UVLOOP=0 keep asyncio's loop."""
    uvloop = pytest.importorskip("uvloop")
    from linkjuice.config import CrawlConfig
    from linkjuice.crawl.crawler import _loop_factory

    config = CrawlConfig(start_url="http://127.0.0.1:1/")
    factory = _loop_factory(config)
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert _loop_factory(CrawlConfig(start_url="http://127.0.0.1:1/", render=True)) is None
    monkeypatch.setenv("LINKJUICE_UVLOOP", "0")
    assert _loop_factory(config) is None

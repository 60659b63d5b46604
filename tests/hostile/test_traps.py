"""Infinite URL spaces: calendars, session ids, ever-growing queries, repeated parameters and path
repetition are detected, bounded per pattern, recorded (crawl_trap_urls, crawl_traps) and never crawled
past the limits; a resumed crawl replays the counters and ends where an uninterrupted one does."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from linkjuice.config import CrawlConfig
from linkjuice.crawl.traps import TrapGuard, url_shape
from linkjuice.pipeline import crawl_site
from linkjuice.store import Store

from ..sitekit import Route
from .servers import bounded, serve_fn

LIMIT = 12  # URLs per pattern in these tests
_session = itertools.count(10**15)


def _sid() -> str:
    return f"a{next(_session)}f"  # random-looking: letters and digits, 18 characters


def _page(title: str, links: list[str]) -> Route:
    anchors = "".join(f"<a href='{href}'>{i}</a> " for i, href in enumerate(links))
    return Route(body=f"<html><title>{title}</title><main>{anchors}</main></html>")


def trap_site(path: str) -> Route | None:
    """A site where every kind of trap never ends."""
    if path == "/":
        return _page("Home", ["/cal/2024/01/", f"/shop/?sid={_sid()}", "/grow?p0=x", "/loop/",
                              "/filter?c=1", "/events?month=2024-01", "/about/"])
    if m := re.fullmatch(r"/cal/(\d+)/(\d+)/", path):  # month pages, each linking the next and previous
        year, month = int(m[1]), int(m[2])
        nxt = (year + month // 12, month % 12 + 1)
        prev = (year - (month == 1), (month - 2) % 12 + 1)
        return _page(f"{year}-{month}", [f"/cal/{nxt[0]}/{nxt[1]:02d}/", f"/cal/{prev[0]}/{prev[1]:02d}/"])
    if m := re.fullmatch(r"/events\?month=(\d+)-(\d+)", path):
        year, month = int(m[1]), int(m[2])
        return _page("events", [f"/events?month={year + month // 12}-{month % 12 + 1:02d}"])
    if re.fullmatch(r"/(shop|cart|help)/\?sid=\w+", path):  # a new session id in every link, every time
        return _page("session", [f"/shop/?sid={_sid()}", f"/cart/?sid={_sid()}", f"/help/?sid={_sid()}"])
    if path.startswith("/grow?"):  # one more parameter (a new name) on every click
        n = path.count("&") + 1
        return _page("grow", [f"{path}&p{n}=xxxxxxxxxx"])
    if path.startswith("/loop/"):  # a relative link that resolves one level deeper every time
        return _page("loop", ["loop/"])
    if path.startswith("/filter?"):
        return _page("filter", [f"{path}&c=1"])
    if path == "/about/":
        return _page("About", ["/"])
    return None


def _config(origin: str, **extra: object) -> CrawlConfig:
    settings: dict[str, object] = {"use_sitemaps": False, "concurrency": 4, "max_urls_per_pattern": LIMIT,
                                   "max_query_length": 200, **extra}
    return CrawlConfig(start_url=origin + "/", **settings)  # type: ignore[arg-type]


def _crawl(db: Path, **extra: object) -> tuple[str, list[tuple], list[tuple]]:
    with serve_fn(trap_site) as site:
        bounded(lambda: crawl_site(_config(site.origin, **extra), db), 120)
        origin = site.origin
    return origin, *_tables(db)


def _tables(db: Path) -> tuple[list[tuple], list[tuple]]:
    with Store(db, read_only=True) as store:
        pages = store.con.execute("SELECT url FROM pages ORDER BY url").fetchall()
        traps = store.con.execute("SELECT kind, pattern, example_url, skipped FROM crawl_traps ORDER BY ALL").fetchall()
    return pages, traps


def test_every_trap_is_bounded_and_reported(tmp_path: Path) -> None:
    origin, pages, traps = _crawl(tmp_path / "traps.duckdb")
    urls = [u for (u,) in pages]
    kinds = {kind for kind, *_ in traps}
    assert kinds == {"calendar", "session-id", "query-length", "path-repetition", "repeated-parameter"}
    # Calendars: LIMIT months of each shape, then recorded, not fetched.
    assert sum("/cal/" in u for u in urls) == LIMIT
    assert sum("/events?" in u for u in urls) == LIMIT
    calendar = {p for k, p, *_ in traps if k == "calendar"}
    assert calendar == {f"{origin}/cal/{{n}}/{{n}}/", f"{origin}/events?month=*"}
    # Session ids: each page crawled once, whatever its session.
    assert sorted(re.sub(r"sid=\w+", "sid=*", u) for u in urls if "sid=" in u) == [
        f"{origin}/cart/?sid=*", f"{origin}/help/?sid=*", f"{origin}/shop/?sid=*"]
    # Growing queries stop at 200 characters; path repetition at 3 repeats; parameters at 3 repeats.
    assert all(len(u.partition("?")[2]) <= 200 for u in urls)
    assert max(u.count("/loop") for u in urls) == 3
    assert max(u.count("c=1") for u in urls) == 3
    for kind, pattern, example, skipped in traps:
        assert skipped >= 1 and example.startswith(origin) and example not in urls, (kind, pattern)
    with Store(tmp_path / "traps.duckdb", read_only=True) as store:
        meta = store.meta()
        n_links_to_skipped = store.con.execute(
            "SELECT count(DISTINCT target_url) FROM links WHERE target_url IN (SELECT url FROM crawl_trap_urls)"
        ).fetchone()[0]
        assert n_links_to_skipped == store.con.execute("SELECT count(*) FROM crawl_trap_urls").fetchone()[0]
    assert meta["limits_hit"] is True and meta["stop_reason"] == "complete"
    assert f"{origin}/about/" in urls  # the real pages are all there
    # The audit reports each trap pattern as an infinite-space finding, with its example URL.
    from linkjuice.pipeline import run_audit

    findings = run_audit(tmp_path / "traps.duckdb").findings
    spaces = findings[findings["code"] == "infinite-space"]
    assert sorted(spaces["url"]) == sorted(example for *_, example, _ in traps)
    assert all("skipped" in text for text in spaces["explanation"])


def test_resumed_crawl_replays_the_trap_counters(tmp_path: Path) -> None:
    _, ref_pages, ref_traps = _crawl(tmp_path / "ref.duckdb", concurrency=1)
    db = tmp_path / "resumed.duckdb"
    with serve_fn(trap_site) as site:
        bounded(lambda: crawl_site(_config(site.origin, concurrency=1, max_pages=20), db), 60)
        # The stored settings say max_pages=20: resume with the limit lifted.
        bounded(lambda: crawl_site(_config(site.origin, concurrency=1), db, resume=True), 120)
        origin = site.origin
    pages, traps = _tables(db)
    canon = lambda rows: sorted(re.sub(r"sid=\w+", "sid=*", str(r)) for r in rows)  # noqa: E731
    assert canon(pages) == canon(_strip(ref_pages, origin))
    assert [t[:2] + t[3:] for t in traps] == [t[:2] + t[3:] for t in _strip(ref_traps, origin)]


def _strip(rows: list[tuple], origin: str) -> list[tuple]:
    """Rows of another server's crawl, with its origin replaced by `origin` (ports differ)."""
    pattern = re.compile(r"http://127\.0\.0\.1:\d+")
    return [tuple(pattern.sub(origin, v) if isinstance(v, str) else v for v in row) for row in rows]


# -- the guard on its own ------------------------------------------------------------------------

def test_shape_normalises_numbers_ids_and_query_values() -> None:
    assert url_shape("https://ex.com/events/2031/07/?view=month&page=3") == "https://ex.com/events/{n}/{n}/?page=*&view=*"
    assert url_shape("https://ex.com/p/8f7a6b3c9d0e1f2a3b4c/") == "https://ex.com/p/{id}/"
    assert url_shape("https://ex.com/blue-shirt-12/") == "https://ex.com/blue-shirt-{n}/"
    assert url_shape("https://ex.com/blue-shirt/") == "https://ex.com/blue-shirt/"


def test_guard_keeps_real_sites_whole() -> None:
    guard = TrapGuard(max_per_pattern=1000)
    urls = [f"https://ex.com/blog/post-title-{w}/" for w in ("alpha", "beta", "gamma")]
    urls += [f"https://ex.com/product/{i}" for i in range(1000)]
    urls += [f"https://ex.com/story?sid={i}" for i in range(50)]  # a numeric story id is not a session
    urls += ["https://ex.com/a/b/a/b/", "https://ex.com/2024/01/01/new-year/"]
    assert [u for u in urls if guard.admit(u) is not None] == []
    # Numbered paths are never capped (large stores); query shapes and calendars are.
    assert guard.admit("https://ex.com/product/1000") is None
    assert all(guard.admit(f"https://ex.com/list?page={i}") is None for i in range(1000))
    assert guard.admit("https://ex.com/list?page=1000") is not None  # the 1001st of one query shape


@pytest.mark.parametrize(("url", "kind"), [
    ("https://ex.com/a/a/a/a/", "path-repetition"),
    ("https://ex.com/x/b/c/b/c/b/c/b/", "path-repetition"),
    ("https://ex.com/f?c=1&c=1&c=1&c=1", "repeated-parameter"),
    ("https://ex.com/q?" + "a" * 1100, "query-length"),
])
def test_guard_refuses_structural_traps(url: str, kind: str) -> None:
    trap = TrapGuard().admit(url)
    assert trap is not None and trap.kind == kind


@pytest.mark.parametrize("template", [
    "https://ex.com/page?PHPSESSID={}", "https://ex.com/page;jsessionid={}", "https://ex.com/(S({}))/page",
    "https://ex.com/page?x=1&sessionid={}",
])
def test_guard_refuses_session_copies(template: str) -> None:
    guard = TrapGuard()
    assert guard.admit(template.format("k3j4h5g6f7d8s9a0")) is None
    trap = guard.admit(template.format("z9x8c7v6b5n4m3l2"))
    assert trap is not None and trap.kind == "session-id"


def test_session_copy_of_a_known_page_is_refused() -> None:
    known = {"https://ex.com/page"}
    guard = TrapGuard(known=known.__contains__)
    trap = guard.admit("https://ex.com/page?PHPSESSID=k3j4h5g6f7d8s9a0")
    assert trap is not None and trap.kind == "session-id"


def test_replay_rebuilds_the_counters() -> None:
    urls = [f"https://ex.com/cal/{y}/{m:02d}/" for y in range(2000, 2010) for m in range(1, 13)]
    live = TrapGuard(max_per_pattern=50)
    admitted = [u for u in urls if live.admit(u) is None]
    replayed = TrapGuard(max_per_pattern=50)
    for u in admitted[:30]:
        replayed.replay(u)
    assert [u for u in admitted[30:] if replayed.admit(u) is not None] == []
    assert replayed.admit(urls[-1]) is not None and len(admitted) == 50

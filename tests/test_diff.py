"""`linkjuice diff`: one site on 127.0.0.1 crawled twice, with known edits in between (a link
breaks, a broken link is fixed, another removed, a page orphaned, links added), and the exact
changes checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from linkjuice.cli import app
from linkjuice.config import CrawlConfig
from linkjuice.diff import DIFF_PARTS, diff_stores
from linkjuice.errors import StoreError, UsageError
from linkjuice.pipeline import crawl_site
from linkjuice.report import render_report

from .sitekit import Route, page, serve


def _a(href: str, text: str) -> str:
    return f"<a href='{href}'>{text}</a>"


def _sitemap(origin: list[str]) -> Route:
    locs = ["/", "/a/", "/b/", "/c/", "/lonely/", "/later-orphan/"]
    body = "".join(f"<url><loc>{origin[0]}{p}</loc></url>" for p in locs)
    return Route(body=f"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{body}</urlset>",
                 content_type="application/xml")


def _v1(origin: list[str]) -> dict[str, Route]:
    return {
        "/robots.txt": Route(body="User-agent: *\nSitemap: /sitemap.xml\n", content_type="text/plain"),
        "/sitemap.xml": _sitemap(origin),
        "/": page("Home", _a("/a/", "Alpha") + _a("/b/", "Beta") + _a("/c/", "Gamma") + _a("/gone/", "Gone")),
        "/a/": page("Alpha", _a("/b/", "Beta") + _a("/soon-broken/", "Soon broken")),
        "/b/": page("Beta", _a("/a/", "Alpha") + _a("/later-orphan/", "Later orphan")),
        "/c/": page("Gamma", _a("/a/", "Alpha") + _a("/dead/", "Dead")),
        "/gone/": Route(status=404, body="no"),
        "/dead/": Route(status=404, body="no"),
        "/soon-broken/": page("Soon broken", "fine for now"),
        "/later-orphan/": page("Later orphan", "linked from Beta, for now"),
        "/lonely/": page("Lonely", "in the sitemap, never linked"),
    }


def _v2(origin: list[str]) -> dict[str, Route]:
    routes = _v1(origin)
    routes["/gone/"] = page("Gone no more", "back")  # broken link fixed at its target
    routes["/soon-broken/"] = Route(status=404, body="no")  # a link breaks
    routes["/b/"] = page("Beta", _a("/a/", "Alpha"))  # /later-orphan/ loses its only link
    routes["/c/"] = page("Gamma", _a("/a/", "Alpha") + _a("/b/", "Beta again") + _a("/new/", "New"))  # /dead/ link removed
    routes["/new/"] = page("New", "a new page")
    return routes


@pytest.fixture(scope="module")
def crawls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("diff")
    holder: list[str] = []
    with serve({}) as server:
        holder.append(server.origin)
        config = CrawlConfig(start_url=server.url("/"), concurrency=4)
        server.routes.update(_v1(holder))
        crawl_site(config, folder / "old.duckdb")
        server.routes.clear()
        server.routes.update(_v2(holder))
        crawl_site(config, folder / "new.duckdb")
    return folder / "old.duckdb", folder / "new.duckdb", holder[0]


def _pairs(frame, o: str) -> set[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    return {tuple(str(v).removeprefix(o) for v in row) for row in frame.itertuples(index=False)}


def test_exact_changes(crawls: tuple[Path, Path, str]) -> None:
    old, new, o = crawls
    d = diff_stores(old, new)
    assert _pairs(d.parts["new_broken"][["source_url", "target_url"]], o) == {("/a/", "/soon-broken/")}
    assert _pairs(d.parts["fixed_broken"], o) == {("/", "/gone/", "target now passed"), ("/c/", "/dead/", "link removed")}
    assert _pairs(d.parts["new_orphans"], o) == {("/later-orphan/",)}
    assert d.counts["fixed_orphans"] == 0  # /lonely/ is an orphan in both crawls: not new
    # The new page and the page that works again bring their header's Home link.
    assert _pairs(d.parts["links_added"][["source_url", "target_url"]], o) == {
        ("/c/", "/b/"), ("/c/", "/new/"), ("/new/", "/"), ("/gone/", "/")}
    assert _pairs(d.parts["links_removed"][["source_url", "target_url"]], o) == {
        ("/b/", "/later-orphan/"), ("/c/", "/dead/"), ("/soon-broken/", "/")}
    assert _pairs(d.parts["pages_added"][["url"]], o) == {("/new/",)}
    assert _pairs(d.parts["pages_removed"][["url"]], o) == {("/dead/",)}
    moved = d.parts["juice_moved"].assign(path=lambda f: f["url"].str.removeprefix(o)).set_index("path")
    assert moved.loc["/later-orphan/", "score_change"] < 0  # lost its only inlink
    assert (moved["score_change"] == moved["new_score"] - moved["old_score"]).all()
    changes = moved["score_change"].abs().to_numpy()
    assert list(changes) == sorted(changes, reverse=True)
    assert {k: d.counts[k] for k in DIFF_PARTS} == {k: len(d.parts[k]) for k in DIFF_PARTS}
    # An added link carries the juice its flow has in the new crawl, a removed one its old flow's.
    from linkjuice.store import Store

    for part, store in (("links_added", new), ("links_removed", old)):
        with Store(store, read_only=True) as opened:
            flows = opened.con.execute("SELECT source_url, target_url, max(juice) AS juice FROM link_flows "
                                       "GROUP BY ALL").df().set_index(["source_url", "target_url"])["juice"]
        rows = d.parts[part].set_index(["source_url", "target_url"])["juice"]
        assert rows.notna().any()
        assert rows.fillna(-1).to_dict() == flows.reindex(rows.index).fillna(-1).to_dict()
        assert list(rows.fillna(-np.inf)) == sorted(rows.fillna(-np.inf), reverse=True)


def test_same_crawl_has_no_changes(crawls: tuple[Path, Path, str]) -> None:
    d = diff_stores(crawls[1], crawls[1])
    assert all(n == 0 for n in d.counts.values())


def test_limit_keeps_counts(crawls: tuple[Path, Path, str]) -> None:
    d = diff_stores(crawls[0], crawls[1], limit=1)
    assert d.counts["links_added"] == 4 and len(d.parts["links_added"]) == 1


def test_cli_json_and_table(crawls: tuple[Path, Path, str]) -> None:
    old, new, o = crawls
    runner = CliRunner()
    result = runner.invoke(app, ["diff", str(old), str(new), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["counts"]["new_broken"] == 1 and data["new_orphans"] == [{"url": o + "/later-orphan/"}]
    table = runner.invoke(app, ["diff", str(old), str(new)])
    assert table.exit_code == 0 and "New broken links" in table.output and "/soon-broken/" in table.output
    assert isinstance(runner.invoke(app, ["diff", str(old), str(new), "--format", "xml"]).exception, UsageError)


def test_missing_store_is_one_clear_error(crawls: tuple[Path, Path, str], tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        diff_stores(tmp_path / "nope.duckdb", crawls[1])
    not_a_store = tmp_path / "x.duckdb"
    not_a_store.write_bytes(b"not a database")
    with pytest.raises(StoreError):
        diff_stores(not_a_store, crawls[1])


def test_report_compare_section(crawls: tuple[Path, Path, str]) -> None:
    old, new, _ = crawls
    html = render_report(new, compare=old)
    assert "Changes since the previous crawl" in html and 'data-diff="new_broken"' in html
    assert "/soon-broken/" in html
    assert "Changes since" not in render_report(new)


def _generated(db: Path, pages: list[int], links: dict[int, list[int]], rng: np.random.Generator,
               broken: range = range(0)) -> Path:
    """A store of pages /p{i} (written in a shuffled order: page ids differ from crawl to crawl;
    those in `broken` answer 404) and their links to /p{j}, stored or not, and to another site."""
    from linkjuice.pipeline import finalize_store
    from linkjuice.store import Store

    url = "https://d.example/p{}".format
    order = rng.permutation(pages)
    rows = [{"url": url(i), "seq": k, "status": 404 if i in broken else 200, "is_html": i not in broken,
             "content_type": "text/html", "title": f"Page {i}", "found_via": "link"} for k, i in enumerate(order)]
    out = [{"source_url": url(i), "target_url": url(j) if j >= 0 else f"https://other.example/{i}",
            "anchor": f"to {j}", "dom_position": "content", "link_order": k, "is_internal": j >= 0}
           for i in order for k, j in enumerate(links.get(int(i), []))]
    with Store(db) as store:
        store.write_batch(pages=rows, links=out, redirects=[])
        store.set_meta({"start_url": url(order[0])})
        finalize_store(store)
    return db


def test_links_compared_by_page_id_as_by_url(tmp_path: Path, monkeypatch) -> None:
    """Links added and removed found from both crawls' link pairs by page id give the lists of a
    comparison of every link's URLs: with pages only in one crawl, targets stored in one crawl and
    only linked in the other, self-links, external links and page ids that differ between crawls;
    and the broken links found by their pairs' reason codes, those read through the view."""
    import linkjuice.store as store_module
    from linkjuice.pipeline import open_store, score_store

    rng = np.random.default_rng(5)
    old_pages, new_pages = list(range(0, 280)), list(range(20, 300))  # 20 gone, 20 new; 300-319 never stored
    old_links = {i: [int(j) for j in rng.integers(-1, 320, 8)] + [i] for i in old_pages}  # (-1: another site)
    new_links = {i: (old_links.get(i, [])[:6] if rng.random() < 0.7 else [int(j) for j in rng.integers(-1, 320, 7)])
                 + [int(rng.integers(0, 320))] for i in new_pages}
    dbs = []
    for name, pages, links, broken in (("old", old_pages, old_links, range(30, 40)),
                                       ("new", new_pages, new_links, range(35, 45))):
        dbs.append(_generated(tmp_path / f"{name}.duckdb", pages, links, rng, broken))
        with open_store(dbs[-1], read_only=False) as opened:
            score_store(opened)
    with open_store(dbs[0]) as a, open_store(dbs[1]) as b:
        ids = [dict(s.sql("SELECT url, page_id FROM pages").itertuples(index=False)) for s in (a, b)]
    assert sum(ids[0][u] != ids[1][u] for u in ids[0].keys() & ids[1].keys()) > 200  # (ids differ)
    by_id = diff_stores(dbs[0], dbs[1], limit=10**6)
    monkeypatch.setattr(store_module, "_DIFF_KEYS_AT_ONCE", 700)  # (the keys compared a range of sources at a time)
    in_ranges = diff_stores(dbs[0], dbs[1], limit=10**6)
    assert in_ranges.counts == by_id.counts and all(in_ranges.parts[k].equals(by_id.parts[k]) for k in DIFF_PARTS)
    monkeypatch.setattr(store_module, "_link_changes_by_id", lambda con: False)
    monkeypatch.setattr(store_module, "_broken_links_sql", lambda con, catalog: None)
    by_url = diff_stores(dbs[0], dbs[1], limit=10**6)
    for part in ("new_broken", "fixed_broken"):  # (the broken links by their pairs' reason codes, and through the view)
        key = list(by_url.parts[part].columns)
        assert by_id.counts[part] == by_url.counts[part] > 5, part
        assert by_id.parts[part].sort_values(key, ignore_index=True).equals(
            by_url.parts[part].sort_values(key, ignore_index=True)), part
    for part in ("links_added", "links_removed"):
        assert by_id.counts[part] == by_url.counts[part] > 50, part
        key = ["source_url", "target_url"]
        got, want = (d.parts[part].sort_values(key, ignore_index=True) for d in (by_id, by_url))
        assert got.equals(want), part
        assert got["source_url"].str.contains("/p(?:[0-9]|1[0-9])$").any() == (part == "links_removed")
    unstored = by_id.parts["links_removed"]["target_url"].str.extract(r"/p(\d+)$")[0].dropna().astype(int)
    assert (unstored >= 300).any()  # links to URLs that neither crawl stored are compared too


def test_broken_links_by_reason_codes_only_while_the_view_is_current(crawls: tuple[Path, Path, str],
                                                                     tmp_path: Path) -> None:
    """A crawl's broken links are read from its pairs' reason codes (the same rows as its view's)
    only while its view is the one made with them: not once link_pairs has other rows, nor once
    the view was made again by something else."""
    import duckdb

    from linkjuice.store import _broken_links_sql, _flows_view_made

    con = duckdb.connect()
    for case in ("current", "pairs changed", "view replaced"):
        copy = tmp_path / f"{case.replace(' ', '-')}.duckdb"
        shutil.copy(crawls[0], copy)
        con.execute(f"ATTACH '{copy}' AS crawl")
        if case == "pairs changed":
            con.execute("DELETE FROM crawl.link_pairs WHERE rowid = (SELECT max(rowid) FROM crawl.link_pairs)")
        elif case == "view replaced":
            con.execute("CREATE OR REPLACE VIEW crawl.main.link_flows AS SELECT * FROM crawl.link_pairs")
        sql = _broken_links_sql(con, "crawl")
        if case == "current":
            assert _flows_view_made(con, "crawl") is not None and sql is not None
            view = con.execute("SELECT DISTINCT source_url, target_url, reason FROM crawl.link_flows "
                               "WHERE reason IN ('broken', 'redirect_broken') ORDER BY ALL").fetchall()
            assert len(view) > 0 and con.execute(f"SELECT * FROM ({sql}) ORDER BY ALL").fetchall() == view
        else:
            assert _flows_view_made(con, "crawl") is None and sql is None, case
        con.execute("DETACH crawl")

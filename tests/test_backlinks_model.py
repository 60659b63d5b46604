"""Backlinks enter the juice model through the teleport vector: checked against the stated
formula and against networkx's personalised PageRank, after a real import."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from linkjuice.config import CrawlConfig, ModelConfig
from linkjuice.imports import import_backlinks
from linkjuice.pipeline import crawl_site, hubs, score_store
from linkjuice.store import Store

ORIGIN = "https://b.example"
LINKS = {"/": ["/a/", "/b/", "/c/"], "/a/": ["/", "/b/"], "/b/": ["/c/"], "/c/": ["/", "/a/"], "/d/": ["/"]}


def _site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    for path, targets in LINKS.items():
        file = root / "index.html" if path == "/" else root / path.strip("/") / "index.html"
        file.parent.mkdir(parents=True, exist_ok=True)
        body = " ".join(f"<a href='{t}'>page {t}</a>" for t in targets)
        file.write_text(f"<html><title>{path}</title><main><p>{body}</p></main></html>", encoding="utf-8")
    (root / "sitemap.xml").write_text(
        "<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
        + "".join(f"<url><loc>{ORIGIN}{p}</loc></url>" for p in LINKS) + "</urlset>")
    db = tmp_path / "b.duckdb"
    crawl_site(CrawlConfig(start_url=ORIGIN + "/", local_root=str(root)), db)
    return db


def test_backlinks_drive_the_teleport_and_match_personalised_pagerank(tmp_path: Path) -> None:
    db = _site(tmp_path)
    csv = tmp_path / "backlinks.csv"
    csv.write_text(
        "Target URL,Source URL,Domain Rating,Nofollow\n"
        f"{ORIGIN}/b/,https://news.example/story,60,false\n"
        f"{ORIGIN}/b/,https://blog.example/post,20,false\n"
        f"{ORIGIN}/b/,https://blog.example/other,40,false\n"  # same domain: counts once, at its best metric
        f"{ORIGIN}/c/,https://forum.example/t/1,30,true\n"  # nofollow: brings nothing
        f"{ORIGIN}/d,https://wiki.example/x,10,false\n"  # trailing-slash variant of /d/
    )
    report = import_backlinks(db, csv)
    assert report.rows == 5
    model = ModelConfig(relevance_weight=0.0, use_anchor=False, backlink_mix=0.5)
    with Store(db) as store:
        score_store(store, model=model)
        scores = store.sql("SELECT url, juice, teleport FROM scores WHERE juice IS NOT NULL ORDER BY url")
    urls = [u.removeprefix(ORIGIN) for u in scores["url"]]
    strength = {"/b/": 2 ** 6.0 + 2 ** 4.0, "/d/": 2 ** 1.0}
    total = sum(strength.values())
    expected = np.array([0.5 / len(urls) + 0.5 * strength.get(u, 0.0) / total for u in urls])
    np.testing.assert_allclose(scores["teleport"], expected, atol=1e-12)
    # Nothing is lost on this site, so the juice is personalised PageRank.
    g = nx.DiGraph()
    g.add_nodes_from(urls)
    g.add_edges_from((s, t) for s, targets in LINKS.items() for t in targets)
    pers = dict(zip(urls, expected))
    ref = nx.pagerank(g, alpha=0.85, personalization=pers, dangling=pers, tol=1e-12 / len(urls))
    np.testing.assert_allclose(scores["juice"], [ref[u] for u in urls], atol=1e-9)
    frame, flows = hubs(db, top=2)
    assert frame["url"].iloc[0] == ORIGIN + "/b/"  # the page with the most outside authority
    assert set(flows.loc[flows["hub_url"] == ORIGIN + "/b/", "target_url"]) == {ORIGIN + "/c/"}
    assert frame["passed_on"].iloc[0] == pytest.approx(0.85 * scores.set_index("url").loc[ORIGIN + "/b/", "juice"])

"""The full juice model on small hand-checkable sites: each weight factor's effect, the linear
system it solves, explanations that add up, and section flows that add up."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from linkjuice.config import CrawlConfig, ModelConfig
from linkjuice.pipeline import crawl_site, explain, pages, score_store, section_flows
from linkjuice.store import Store

SOURDOUGH = ("Sourdough starter feeding schedule: flour, water, levain, fermentation, hydration, "
             "bubbly starter, rye flour, discard, sourdough bread crumb and crust. ") * 4
KNIVES = ("Sharpening kitchen knives on a whetstone: steel, edge angle, honing rod, grit, burr, "
          "bevel, chef knife, santoku blade maintenance. ") * 4


def _write_site(root: Path, pages_html: dict[str, str]) -> None:
    for path, html in pages_html.items():
        file = root / path.strip("/") / "index.html" if path != "/" else root / "index.html"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(html, encoding="utf-8")


def _page(title: str, text: str, links: str, footer: str = "") -> str:
    return (f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1><p>{text}</p>"
            f"<p>{links}</p></main><footer>{footer}</footer></body></html>")


def _crawl(tmp_path: Path, site: dict[str, str], model: ModelConfig | None = None) -> Path:
    root = tmp_path / "site"
    _write_site(root, site)
    db = tmp_path / "m.duckdb"
    crawl_site(CrawlConfig(start_url="https://t.example/", local_root=str(root)), db, model=model)
    return db


def _juice(db: Path) -> dict[str, float]:
    frame = pages(db, limit=None)
    return {u.removeprefix("https://t.example"): j for u, j in zip(frame["url"], frame["juice"])}


def test_position_relevance_and_anchor_each_change_the_split(tmp_path: Path) -> None:
    site = {
        "/": _page("Sourdough home", SOURDOUGH,
                   "<a href='/starter/'>sourdough starter feeding</a> <a href='/knives/'>knife sharpening</a> "
                   "<a href='/twin-a/'>rye levain guide</a> <a href='/twin-b/'>click here</a>",
                   footer="<a href='/footer-only/'>sourdough starter notes</a>"),
        "/starter/": _page("Sourdough starter feeding", SOURDOUGH, "<a href='/'>home</a>"),
        "/knives/": _page("Knife sharpening", KNIVES, "<a href='/'>home</a>"),
        "/twin-a/": _page("Rye levain guide", SOURDOUGH, "<a href='/'>home</a>"),
        "/twin-b/": _page("Rye levain guide", SOURDOUGH, "<a href='/'>home</a>"),
        "/footer-only/": _page("Sourdough starter notes", SOURDOUGH, "<a href='/'>home</a>"),
    }
    db = _crawl(tmp_path, site)
    j = _juice(db)
    assert j["/starter/"] > j["/knives/"]  # relevance: same position and anchor style, off-topic loses
    assert j["/twin-a/"] > j["/twin-b/"]  # anchor: identical pages, descriptive beats "click here"
    assert j["/starter/"] > j["/footer-only/"]  # position: content beats footer
    with Store(db) as store:
        score_store(store, model=ModelConfig(relevance_weight=0.0, use_anchor=False,
                                             position_weights={"content": 1.0, "footer": 1.0}))
    flat = _juice(db)
    # With every factor off, the four targets of the home page are interchangeable.
    targets = [flat[p] for p in ("/starter/", "/knives/", "/twin-a/", "/twin-b/", "/footer-only/")]
    assert max(targets) - min(targets) < 1e-12


def test_factors_multiply_and_juice_solves_the_stated_linear_system(tmp_path: Path) -> None:
    site = {
        "/": _page("Home", SOURDOUGH, "<a href='/a/'>starter</a> <a href='/b/' rel='nofollow'>b</a> "
                                      "<a href='/missing/'>gone</a> <a href='https://ext.example/'>ext</a>"),
        "/a/": _page("Starter", SOURDOUGH, "<a href='/'>home page</a> <a href='/b/'>read more</a>"),
        "/b/": _page("Knives", KNIVES, ""),  # dangling: links nowhere
    }
    db = _crawl(tmp_path, site)
    with Store(db, read_only=True) as store:
        flows = store.link_flows_frame()
        scores = store.sql("SELECT url, juice, teleport FROM scores WHERE juice IS NOT NULL ORDER BY url")
        meta = store.meta()["model"]
    np.testing.assert_allclose(flows["weight"], flows["position_factor"] * flows["relevance_factor"] * flows["anchor_factor"])
    d = meta["damping"]
    urls = list(scores["url"])
    idx = {u: i for i, u in enumerate(urls)}
    n = len(urls)
    # Build M independently from the stored flows: share = weight / all of the source's weights.
    total = flows.groupby("source_url")["weight"].transform("sum")
    np.testing.assert_allclose(flows["share"], flows["weight"] / total)
    m = np.zeros((n, n))
    for row in flows.itertuples():
        if row.reason == "passed":
            m[idx[row.source_url], idx[row.resolved_url]] += row.share
    v = scores["teleport"].to_numpy()
    dangling = np.array([0.0 if (flows["source_url"] == u).any() else 1.0 for u in urls])
    # x = (1-d) v + d M^T x + d (dangling . x) v   <=>   (I - d M^T - d v dangling^T) x = (1-d) v
    a = np.eye(n) - d * m.T - d * np.outer(v, dangling)
    expected = np.linalg.solve(a, (1 - d) * v)
    np.testing.assert_allclose(scores["juice"], expected, atol=1e-9)
    reasons = dict(zip(flows["target_url"], flows["reason"]))
    assert reasons["https://t.example/b/"] in {"nofollow", "passed"}
    assert reasons["https://t.example/missing/"] == "broken" and reasons["https://ext.example/"] == "external"
    generic = flows[flows["anchor"] == "read more"]
    assert (generic["anchor_class"] == "generic").all() and (generic["anchor_factor"] == 0.5).all()


def test_explanations_add_up_for_every_page(tmp_path: Path) -> None:
    site = {
        "/": _page("Home", SOURDOUGH, "<a href='/a/'>starter</a> <a href='/b/'>knives</a>"),
        "/a/": _page("Starter", SOURDOUGH, "<a href='/'>home</a> <a href='/b/'>knives</a> <a href='/x/'>x</a>"),
        "/b/": _page("Knives", KNIVES, "<a href='/a/'>starter</a>"),
        "/c/": _page("Dead end", KNIVES, ""),
    }
    db = _crawl(tmp_path, site)
    for url in ("https://t.example/", "https://t.example/a/", "https://t.example/b/"):
        e = explain(db, url)
        assert e.accounted == pytest.approx(e.juice, rel=1e-8)
        assert e.from_links > 0 and e.from_backlinks == 0
        assert (e.sources["juice"] > 0).all()


def test_section_flow_matrix_adds_up_to_all_juice_passed(tmp_path: Path) -> None:
    site = {
        "/": _page("Home", SOURDOUGH, "<a href='/blog/a/'>a</a> <a href='/shop/b/'>b</a> <a href='/gone/'>x</a>"),
        "/blog/a/": _page("A", SOURDOUGH, "<a href='/shop/b/'>b</a> <a href='/'>home</a>"),
        "/shop/b/": _page("B", KNIVES, "<a href='/blog/a/'>a</a>"),
    }
    db = _crawl(tmp_path, site)
    flows = section_flows(db)
    with Store(db, read_only=True) as store:
        carried = store.sql("SELECT sum(juice) AS s FROM link_flows")["s"].iloc[0]
        meta = store.meta()["model"]
        total_juice = store.sql("SELECT sum(juice) AS s FROM scores")["s"].iloc[0]
    assert flows["juice"].sum() == pytest.approx(carried)
    # Every page here links somewhere, so pages pass on exactly d times their juice.
    assert carried == pytest.approx(meta["damping"] * total_juice)
    pairs = set(zip(flows["from_section"], flows["to_section"]))
    assert ("/blog/", "/shop/") in pairs and ("/", "(lost: broken)") in pairs


def test_section_flow_matrix_sparse_cells_equal_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many sections: only the cells that occur are kept (hashed per chunk), in the same order
    and with the same sums as the dense count."""
    from linkjuice import pipeline
    from linkjuice.pipeline import REASONS, LinkFlows, section_flow_matrix

    rng = np.random.default_rng(4)
    n, m, k = 200, 3000, 80
    src = np.sort(rng.integers(0, n, m)).astype(np.int32)
    resolved = rng.integers(-1, n, m).astype(np.int32)
    reason = np.where(resolved >= 0, rng.choice([0, 0, 0, 1, 4], m), 3).astype(np.int8)
    flows = LinkFlows(src=src, dst=resolved, resolved=resolved, weight=np.ones(m), nofollow=reason == 1,
                      passes=reason == 0, reason=reason, is_internal=np.ones(m, bool), pass_factor=np.ones(m))
    sections = rng.integers(0, k, n).astype(np.int32)
    labels = np.array([f"/s{i}/" for i in range(k)], dtype=object)
    passed_on, share = rng.uniform(0, 1, n), rng.uniform(0, 1, m)
    monkeypatch.setenv("LINKJUICE_NUMBA", "0")
    dense = section_flow_matrix(flows, passed_on, share, sections, labels).to_pandas()
    if importlib.util.find_spec("numba"):  # the compiled one-pass count gives the same cells and sums
        monkeypatch.setenv("LINKJUICE_NUMBA", "1")
        assert section_flow_matrix(flows, passed_on, share, sections, labels).to_pandas().equals(dense)
    monkeypatch.setattr(pipeline, "_DENSE_CELLS", 0)
    monkeypatch.setattr(pipeline, "_SECTION_CHUNK", 700)
    sparse = section_flow_matrix(flows, passed_on, share, sections, labels).to_pandas()
    assert k * (k + len(REASONS)) > m  # the sparse path ran
    assert list(sparse["from_section"]) == list(dense["from_section"])
    assert list(sparse["to_section"]) == list(dense["to_section"])
    assert (sparse["links"] == dense["links"]).all() and sparse["links"].sum() == m
    np.testing.assert_allclose(sparse["juice"], dense["juice"], rtol=1e-12)
    assert sparse["juice"].sum() == pytest.approx((passed_on[src] * share).sum())
    # Without shares given, they are formed chunk by chunk from the weights, as link_shares does.
    from linkjuice.score import link_shares

    weighted = replace(flows, weight=rng.uniform(0.1, 1, m))
    given = section_flow_matrix(weighted, passed_on, link_shares(src, weighted.weight, np.bincount(
        src, weights=weighted.weight, minlength=n)), sections, labels).to_pandas()
    assert section_flow_matrix(weighted, passed_on, None, sections, labels).to_pandas().equals(given)
    monkeypatch.setattr(pipeline, "_DENSE_CELLS", 1 << 22)
    monkeypatch.setenv("LINKJUICE_NUMBA", "0")
    dense_formed = section_flow_matrix(weighted, passed_on, None, sections, labels).to_pandas()
    np.testing.assert_allclose(dense_formed["juice"], given["juice"], rtol=1e-12)
    if importlib.util.find_spec("numba"):
        monkeypatch.setenv("LINKJUICE_NUMBA", "1")
        assert section_flow_matrix(weighted, passed_on, None, sections, labels).to_pandas().equals(dense_formed)


def test_anchor_features_match_a_word_set_reference() -> None:
    """The bulk (sparse, chunked) anchor matching equals counting shared words pair by pair."""
    from linkjuice.relevance import token_analyzer
    from linkjuice.weights import ANCHOR_EMPTY, ANCHOR_GENERIC, TopicIndex, anchor_features

    topics = ["Sourdough starter guide", "Kitchen knives: sharpening on a whetstone", "Rye bread recipes",
              "", "Starter feeding schedule for sourdough", "Roggenbrot für Anfänger: Sauerteig"]
    anchors = ["sourdough starter", "click here", "", None, "sharpening knives at home", "rye", "bread starter",
               "whetstone grit", "sourdough starter", "Sauerteig für Roggenbrot", "  \x1c ", "roggenbrot_rezept"]
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(anchors), 400)
    targets = rng.integers(-1, len(topics), 400)
    cls, match = anchor_features([anchors[i] for i in picks], targets, TopicIndex.build(topics), chunk=7)
    analyze = token_analyzer()
    for k, (i, t) in enumerate(zip(picks, targets)):
        text = (anchors[i] or "").strip()
        if not text:  # str.strip() also strips U+001C
            assert cls[k] == ANCHOR_EMPTY
        elif text == "click here":
            assert cls[k] == ANCHOR_GENERIC
        words = set(analyze(text)) if text and text != "click here" else set()
        expected = len(words & set(analyze(topics[t]))) / len(words) if words and t >= 0 else 0.0
        assert match[k] == expected
    # A function giving topics (what-ifs) matches the same way as the prebuilt index.
    cls2, match2 = anchor_features([anchors[i] for i in picks], targets, lambda t: topics[t])
    np.testing.assert_array_equal(cls, cls2)
    np.testing.assert_array_equal(match, match2)


def test_bulk_word_splitting_and_generic_anchors_equal_the_per_text_functions() -> None:
    """tokenize_many (Arrow kernels for ASCII) gives each text the analyzer's tokens in order, and
    normalize_anchors and generic_mask agree with normalize_anchor and is_generic_anchor, on ASCII
    and other text, punctuation and underscores included."""
    import pyarrow as pa

    from linkjuice.anchors import GENERIC_ANCHORS, generic_mask, is_generic_anchor, normalize_anchor, normalize_anchors
    from linkjuice.relevance import token_analyzer, tokenize_many

    rng = np.random.default_rng(5)
    alphabet = list("abcXYZ019_- .,'!?\t\n") + ["é", "ß", "Σ", "İ", "→", "日本", "\u00a0"]
    texts = ["".join(rng.choice(alphabet, rng.integers(0, 25))) for _ in range(3000)]
    phrases = [p for group in GENERIC_ANCHORS.values() for p in group]
    texts += [p.upper() + " »" for p in phrases] + ["Read_more", "read - more!", "ab1 1ab a_b The and of", "", None]
    owner, tokens = tokenize_many(pa.array(texts, pa.string()))
    got: list[list[str]] = [[] for _ in texts]
    for i, token in zip(owner.tolist(), tokens.to_pylist()):
        got[i].append(token)
    analyze = token_analyzer()
    assert got == [analyze(t or "") for t in texts]
    assert sum(map(len, got)) > 1000
    assert normalize_anchors(pa.array(texts, pa.string())).to_pylist() == [normalize_anchor(t or "") for t in texts]
    mask = generic_mask(pa.array(texts, pa.string()))
    expected = [is_generic_anchor(t) for t in texts]
    assert mask.tolist() == expected
    assert sum(expected) >= len(phrases)


def test_link_pairs_built_in_chunks_equal_one_chunk(tmp_path: Path) -> None:
    from linkjuice.pipeline import build_link_pairs

    site = {f"/p{i}/": _page(f"Page {i}", SOURDOUGH if i % 2 else KNIVES,
                             " ".join(f"<a href='/p{(i * 7 + k) % 12}/'>page {(i * 7 + k) % 12}</a>" for k in range(4))
                             + " <a href='/gone/'>gone</a> <a href='https://ext.example/'>ext</a>")
            for i in range(12)}
    site["/"] = _page("Home", SOURDOUGH, " ".join(f"<a href='/p{i}/'>page {i}</a>" for i in range(12)))
    db = _crawl(tmp_path, site)
    with Store(db) as store:
        whole = store.sql("SELECT * EXCLUDE (relevance) FROM link_pairs")
        build_link_pairs(store, chunk_rows=5)
        chunked = store.sql("SELECT * EXCLUDE (relevance) FROM link_pairs")
    assert len(whole) > 20
    import pandas as pd

    pd.testing.assert_frame_equal(whole, chunked)


def test_a_store_opened_read_only_answers_arrow_reads_first(tmp_path: Path) -> None:
    """Opening reads the schema version; the next read must not find that result half-read
    (DuckDB 2 refuses an Arrow query on a connection with an unfinished result)."""
    db = _crawl(tmp_path, {"/": _page("Home", SOURDOUGH, "<a href='/a/'>starter</a>"),
                           "/a/": _page("Starter", SOURDOUGH, "<a href='/'>home</a>")})
    with Store(db, read_only=True) as store:
        assert len(store.page_arrays(urls=False)["page_id"]) == 2
    with Store(db, read_only=True) as store:
        assert len(store.link_edges()["src"]) == 2

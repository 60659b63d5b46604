"""The full juice model on small hand-checkable sites: each weight factor's effect, the linear
system it solves, explanations that add up, and section flows that add up."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
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
        assert (e.source_count, e.send_count) == (len(e.sources), len(e.sends)) and e.send_count > 0
        # Only the top source and target read, the totals summed by DuckDB: the same explanation.
        top = explain(db, url, top=1)
        assert len(top.sources) == len(top.sends) == 1
        assert top.sources.iloc[0].equals(e.sources.iloc[0]) and top.sends.iloc[0].equals(e.sends.iloc[0])
        for name in ("from_links", "from_base", "sent_total", "lost_total", "accounted"):
            assert getattr(top, name) == pytest.approx(getattr(e, name), rel=1e-12, abs=1e-15), name
        assert (top.source_count, top.send_count, top.rank) == (e.source_count, e.send_count, e.rank)



def test_flow_totals_read_by_scan_equal_the_views_sums_for_every_page(tmp_path: Path) -> None:
    """page_flow_totals reads every pair through the view's scan (no URLs) and filters by page id:
    the same sums and counts as the view's rows filtered by URL, for every page (a nofollow link,
    broken links and a dead end among them)."""
    site = {
        "/": _page("Home", SOURDOUGH, "<a href='/a/'>starter</a> <a href='/b/' rel='nofollow'>knives</a> "
                                      "<a href='/old/'>old</a> <a href='/gone/'>gone</a>"),
        "/a/": _page("Starter", SOURDOUGH, "<a href='/'>home</a> <a href='/b/'>knives</a> <a href='/x/'>x</a>"),
        "/b/": _page("Knives", KNIVES, "<a href='/a/'>starter</a> <a href='/a/'>again</a>"),
        "/c/": _page("Dead end", KNIVES, ""),
    }
    db = _crawl(tmp_path, site)
    with Store(db, read_only=True) as store:
        urls = store.sql("SELECT url FROM pages")["url"].tolist()
        assert len(urls) >= 5
        for url in urls:
            scanned = store._flow_totals_by_scan(url)
            assert scanned is not None, url
            into = store.sql("SELECT coalesce(sum(delivered), 0) AS j, count(*) AS n FROM link_flows "
                             "WHERE resolved_url = ? AND reason = 'passed'", [url]).iloc[0]
            out = store.sql("SELECT coalesce(sum(juice), 0) AS j, coalesce(sum(juice) FILTER (WHERE reason <> 'passed'), 0) "
                            "AS lost, count(*) AS n FROM link_flows WHERE source_url = ?", [url]).iloc[0]
            assert (scanned["sources"], scanned["sends"]) == (into["n"], out["n"]), url
            for key, expected in (("from_links", into["j"]), ("sent", out["j"]), ("lost", out["lost"])):
                assert scanned[key] == pytest.approx(expected, rel=1e-12, abs=1e-15), (url, key)
        assert any(store._flow_totals_by_scan(u)["lost"] > 0 for u in urls)


def test_a_pages_flows_found_by_its_id_equal_the_views_rows_for_its_url(tmp_path: Path) -> None:
    """link_flows_frame finds a page's flows by its page id (filtered by URL, DuckDB joined every
    pair to its pages first): the same rows, in the same order, as the view filtered by URL,
    for every page, as source and as where the juice arrives (a link to a missing page too)."""
    site = {
        "/": _page("Home", SOURDOUGH, "<a href='/a/'>starter</a> <a href='/b/'>knives</a> <a href='/old/'>old</a>"),
        "/a/": _page("Starter", SOURDOUGH, "<a href='/'>home</a> <a href='/b/'>knives</a> <a href='/x/'>x</a>"),
        "/b/": _page("Knives", KNIVES, "<a href='/a/'>starter</a> <a href='/a/'>again</a>"),
    }
    db = _crawl(tmp_path, site)
    order = " ORDER BY juice DESC NULLS LAST, source_url, target_url"
    with Store(db, read_only=True) as store:
        assert "source_id" in store._columns("link_flows")
        urls = store.sql("SELECT url FROM pages")["url"].tolist()
        compared = 0
        for url in urls:
            for side in ("source", "resolved"):
                by_id = store.link_flows_frame(**{side: url})
                by_url = store.sql(f"SELECT * FROM link_flows WHERE {side}_url = ?" + order, [url])
                assert by_id.equals(by_url), (side, url)
                compared += len(by_id)
        assert compared > 0
        assert store.link_flows_frame(source="https://t.example/not-stored/").empty

def test_the_flows_view_reads_each_pair_beside_its_own_relevance_in_slices(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The link_flows view reads the pairs and their cached relevance a slice of rows at a time
    (in parallel): with slices of a few rows each, every pair is there once, with the relevance
    and weight the model gives it (pipeline.link_flows, NumPy), and a page's flows found by its
    id equal the view filtered by its URL."""
    import linkjuice.store as store_module
    from linkjuice.pipeline import link_flows

    site = {f"/p{i}/": _page(f"Page {i}", SOURDOUGH if i % 3 else KNIVES,
                             " ".join(f"<a href='/p{(i * 7 + k) % 24}/'>page {(i * 7 + k) % 24}</a>" for k in range(4))
                             + " <a href='/missing/'>gone</a>")
            for i in range(24)}
    site["/"] = _page("Home", SOURDOUGH, " ".join(f"<a href='/p{i}/'>page {i}</a>" for i in range(24)))
    monkeypatch.setattr(store_module, "_PAIR_SLICE_ROWS", 7)
    db = _crawl(tmp_path, site)
    model = ModelConfig()
    with Store(db, read_only=True) as store:
        view_sql = store.con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'link_flows'").fetchall()[0][0]
        pairs = store.pair_count()
        assert view_sql.count("UNION ALL") + 1 == min(pairs // 7, 64) > 10
        view = store.sql("SELECT * FROM link_flows ORDER BY source_id, target_id, target_url")
        expected = link_flows(store, model, labels=False)
        relevance = store.sql("SELECT relevance FROM pair_relevance")["relevance"].to_numpy(np.float64)
        order = store.sql("SELECT src, dst, target_url FROM link_pairs")
        urls = store.sql("SELECT url FROM pages")["url"].tolist()
        for side in ("source", "resolved"):
            for url in urls:
                by_url = store.sql(f"SELECT * FROM link_flows WHERE {side}_url = ? "
                                   "ORDER BY juice DESC NULLS LAST, source_url, target_url", [url])
                assert store.link_flows_frame(**{side: url}).equals(by_url), (side, url)
    assert len(view) == pairs == len(expected.weight) == len(relevance)
    # The model's arrays are in link_pairs' order: put them in the view's order.
    order = order.assign(relevance=relevance, weight=expected.weight)
    order = order.sort_values(["src", "dst", "target_url"], ignore_index=True)
    assert (view["source_id"].to_numpy() == order["src"].to_numpy()).all()
    np.testing.assert_array_equal(view["relevance"].to_numpy(), order["relevance"].to_numpy())
    assert len(set(relevance.round(6))) > 2
    np.testing.assert_allclose(view["weight"].to_numpy(), order["weight"].to_numpy(), rtol=1e-12)


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
    # Without shares given, each link carries passed_on / out_weight of its source x its weight:
    # the shares of link_shares, up to rounding.
    from linkjuice.score import link_shares

    weighted = replace(flows, weight=rng.uniform(0.1, 1, m))
    given = section_flow_matrix(weighted, passed_on, link_shares(src, weighted.weight, np.bincount(
        src, weights=weighted.weight, minlength=n)), sections, labels).to_pandas()
    formed = section_flow_matrix(weighted, passed_on, None, sections, labels).to_pandas()
    assert formed[["from_section", "to_section", "links"]].equals(given[["from_section", "to_section", "links"]])
    np.testing.assert_allclose(formed["juice"], given["juice"], rtol=1e-12)
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


def test_stop_words_are_scikit_learns_read_without_importing_it() -> None:
    """The word splitting's stop words are scikit-learn's list, loaded without importing
    scikit-learn (a crawl's finalize would spend ~1 s of CPU on that import for nothing else)."""
    import subprocess
    import sys

    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from linkjuice.relevance import english_stop_words

    assert english_stop_words() == ENGLISH_STOP_WORDS
    probe = ("import sys; from linkjuice.relevance import english_stop_words; "
             "words = english_stop_words(); print(len(words), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(ENGLISH_STOP_WORDS)), "False"]


@pytest.mark.parametrize("numba", ["0", "1"])
def test_bulk_word_splitting_and_generic_anchors_equal_the_per_text_functions(monkeypatch: pytest.MonkeyPatch,
                                                                              numba: str) -> None:
    """tokenize_many and normalize_anchors (Arrow kernels for ASCII, or with numba one pass over
    the bytes): tokenize_many gives each text the analyzer's tokens in order, and
    normalize_anchors and generic_mask agree with normalize_anchor and is_generic_anchor, on ASCII
    and other text, punctuation and underscores included; a slice of an array (offsets that do
    not start at 0) is split and normalised as its own texts."""
    import pyarrow as pa

    monkeypatch.setenv("LINKJUICE_NUMBA", numba)

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
    ascii_texts = [t for t in texts if t is None or t.isascii()]
    for array in (pa.array(texts, pa.string()).slice(1000, 900), pa.array(ascii_texts, pa.string()).slice(7, 500)):
        owner, tokens = tokenize_many(array)
        assert owner.dtype == np.int64 and tokens.type == pa.string()
        got = [[] for _ in range(len(array))]
        for i, token in zip(owner.tolist(), tokens.to_pylist()):
            got[i].append(token)
        assert got == [analyze(t or "") for t in array.to_pylist()]
        assert normalize_anchors(array).to_pylist() == [normalize_anchor(t or "") for t in array.to_pylist()]
    assert normalize_anchors(pa.array(texts, pa.string())).to_pylist() == [normalize_anchor(t or "") for t in texts]
    mask = generic_mask(pa.array(texts, pa.string()))
    expected = [is_generic_anchor(t) for t in texts]
    assert mask.tolist() == expected
    assert sum(expected) >= len(phrases)


@pytest.mark.parametrize("numba", ["0", "1"])
@pytest.mark.parametrize("max_features", [None, 6, 17])  # 17: four of eight tied terms
def test_tfidf_vectors_equal_sklearn_vectorizer(monkeypatch: pytest.MonkeyPatch, max_features: int | None,
                                                numba: str) -> None:
    """tfidf_vectors (words split by Arrow or numba, counted by sorts) equals sklearn's
    TfidfVectorizer on ASCII, non-ASCII, empty and stop-word-only documents, with max_features
    cutting through terms of equal total count, in several text chunks; page_documents' parts
    equal the joined text."""
    import pyarrow as pa

    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    from sklearn.feature_extraction.text import TfidfVectorizer

    from linkjuice import relevance
    from linkjuice.relevance import TOKEN_PATTERN, page_documents, term_counts, tfidf_vectors

    rng = np.random.default_rng(11)
    words = ["bread", "rye", "sourdough", "knife", "whetstone", "grit", "été", "straße", "Σοφία", "日本語", "naïve",
             "the", "and", "a1", "x", "ab_cd", "9lives", "Über"]
    docs = [" ".join(rng.choice(words, rng.integers(0, 14))) + rng.choice(["", ".", ", é!", " -- "])
            for _ in range(400)]
    docs += ["", "the and of", "   ", "Rye rye RYE", None]
    docs += ["tie1 tie2 tie3 tie4 tie5 tie6 tie7 tie8"] * 3  # eight terms with the same total count
    monkeypatch.setattr(relevance, "_TEXT_CHUNK", 500)  # several chunks of documents
    reference = TfidfVectorizer(sublinear_tf=True, max_features=max_features, dtype=np.float32,
                                token_pattern=TOKEN_PATTERN, stop_words="english")
    expected = reference.fit_transform([d or "" for d in docs])
    got = tfidf_vectors(pa.array(docs, pa.string()), max_features=max_features or 10**9)
    _, vocabulary = term_counts(docs, max_features=max_features)
    assert vocabulary.to_pylist() == reference.get_feature_names_out().tolist()
    assert got.shape == expected.shape and got.dtype == np.float32 and got.has_sorted_indices
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=0, atol=1e-6)
    # A page's parts count as the text "title title h1 h1 headings main_text".
    title, h1, headings, main = (docs[k::4][:100] for k in range(4))
    joined = [f"{t or ''} {t or ''} {h or ''} {h or ''} {hs or ''} {m or ''}"
              for t, h, hs, m in zip(title, h1, headings, main)]
    np.testing.assert_allclose(tfidf_vectors(page_documents(title, h1, headings, main)).toarray(),
                               tfidf_vectors(joined).toarray(), rtol=0, atol=1e-6)
    assert tfidf_vectors(["", "the and", None]).shape == (3, 1)  # no word at all: one empty column
    # ASCII-only chunks of large strings, as pandas hands a store's texts over: each chunk is a
    # slice cast to string, whose offsets do not start at 0.
    plain = [" ".join(rng.choice([w for w in words if w.isascii()], rng.integers(0, 14))) for _ in range(300)]
    reference = TfidfVectorizer(sublinear_tf=True, dtype=np.float32, token_pattern=TOKEN_PATTERN, stop_words="english")
    np.testing.assert_allclose(tfidf_vectors(pa.chunked_array([pa.array(plain, pa.large_string())])).toarray(),
                               reference.fit_transform([d or "" for d in plain]).toarray(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("numba", ["0", "1"])
def test_sparse_pair_similarity_kernel_equals_row_products(monkeypatch: pytest.MonkeyPatch, numba: str) -> None:
    """pair_similarity of sparse rows, by the numba kernel (merging sorted rows) or by scipy's row
    products (without numba), equals the dense cosines; -1 pairs get 0; float32 rows give float32 values."""
    import scipy.sparse as sp

    from linkjuice.relevance import pair_similarity

    if numba == "1" and not importlib.util.find_spec("numba"):
        pytest.skip("numba is not installed")
    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    rng = np.random.default_rng(7)
    dense = sp.random(300, 50, density=0.1, dtype=np.float32, random_state=rng).toarray()
    dense[5] = 0  # a page without words
    dense /= np.maximum(np.linalg.norm(dense, axis=1), 1e-12)[:, None]
    ordered = sp.csr_matrix(dense)
    reverse = np.concatenate([np.arange(lo, hi)[::-1] for lo, hi in zip(ordered.indptr, ordered.indptr[1:])])
    rows = sp.csr_matrix((ordered.data[reverse], ordered.indices[reverse], ordered.indptr), shape=dense.shape)
    assert not rows.has_sorted_indices  # columns descending within rows
    src, dst = rng.integers(-1, 300, 5000).astype(np.int32), rng.integers(-1, 300, 5000).astype(np.int32)
    src[:3], dst[:3] = (5, 7, 9), (5, 7, -1)
    got = pair_similarity(rows, src, dst)
    expected = np.where((src >= 0) & (dst >= 0), np.einsum("ij,ij->i", dense[src], dense[dst]), 0.0)
    np.testing.assert_allclose(got, np.clip(expected, 0.0, 1.0), rtol=0, atol=1e-6)
    assert got.dtype == np.float64 and np.array_equal(got, got.astype(np.float32)) and got[2] == 0.0
    assert got[1] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("staging", ["link slices", "one query"])
def test_link_pairs_built_in_chunks_equal_one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    staging: str) -> None:
    """A big store's link_pairs are built in chunks, from link groups staged a slice of links at
    a time (a crawl's store: slices end where a page's links end) or in one query (any other
    store): the same rows as one chunk. Slices of 7 links cut through most pages' links here."""
    import linkjuice.store as store_module
    from linkjuice.pipeline import build_link_pairs

    site = {f"/p{i}/": _page(f"Page {i}", SOURDOUGH if i % 2 else KNIVES,
                             "<a href='/gone/'>gone</a> "
                             + " ".join(f"<a href='/p{(i * 7 + k) % 12}/'>page {(i * 7 + k) % 12}</a>" for k in range(4))
                             + " <a href='https://ext.example/'>ext</a> <a href='/gone/'>gone again</a>")
            for i in range(12)}
    site["/"] = _page("Home", SOURDOUGH, " ".join(f"<a href='/p{i}/'>page {i}</a>" for i in range(12)))
    db = _crawl(tmp_path, site)
    monkeypatch.setattr(store_module, "_GROUP_SLICE_LINKS", 3)
    staged = []
    original = store_module.Store._stage_by_link_rows
    monkeypatch.setattr(store_module.Store, "_stage_by_link_rows",
                        lambda self, weights: staged.append(original(self, weights)) or staged[-1])
    with Store(db) as store:
        whole = store.sql("SELECT * FROM link_pairs")
        if staging == "one query":
            store.con.execute("DELETE FROM meta WHERE key = 'links_by_source'")
        build_link_pairs(store, chunk_rows=5)
        chunked = store.sql("SELECT * FROM link_pairs")
    assert staged == [staging == "link slices"]
    assert len(whole) > 20 and (whole["n_links"] > 1).any()
    import pandas as pd

    pd.testing.assert_frame_equal(whole, chunked)


def test_a_link_pair_takes_position_and_anchor_from_its_first_best_placed_link(tmp_path: Path) -> None:
    """Duplicate links to one target count as the best-placed one; among equally weighted ones
    (header and nav weigh the same), the first on the page gives both position and anchor."""
    header = "<header><a href='/b/'>Baking tips</a></header><nav><a href='/b/'>Tips</a></nav>"
    site = {
        "/": f"<html><body>{header}<main><p><a href='/a/'>alpha one</a> <a href='/a/'>alpha two</a></p>"
             "<footer><a href='/a/'>alpha footer</a></footer></main></body></html>",
        "/a/": _page("Alpha", SOURDOUGH, "<a href='/'>home</a> <a href='/c/'>see c</a>"),
        "/b/": _page("Tips", KNIVES, "<a href='/'>home</a>"),
        "/c/": f"<html><body><nav><a href='/b/'>Tips</a></nav>{header}<main><p>x</p></main></body></html>",
    }
    db = _crawl(tmp_path, site)
    with Store(db, read_only=True) as store:
        pairs = store.sql("SELECT s.url AS source, t.url AS target, position, anchor, n_links FROM link_pairs "
                          "JOIN pages s ON s.page_id = src JOIN pages t ON t.page_id = dst")
    got = {(r.source.removeprefix("https://t.example"), r.target.removeprefix("https://t.example")):
           (r.position, r.anchor, r.n_links) for r in pairs.itertuples()}
    assert got[("/", "/a/")] == ("content", "alpha one", 3)
    assert got[("/", "/b/")] == ("header", "Baking tips", 2)
    assert got[("/c/", "/b/")] == ("nav", "Tips", 3)


def test_a_store_opened_read_only_answers_arrow_reads_first(tmp_path: Path) -> None:
    """Opening reads the schema version; the next read must not find that result half-read
    (DuckDB 2 refuses an Arrow query on a connection with an unfinished result)."""
    db = _crawl(tmp_path, {"/": _page("Home", SOURDOUGH, "<a href='/a/'>starter</a>"),
                           "/a/": _page("Starter", SOURDOUGH, "<a href='/'>home</a>")})
    with Store(db, read_only=True) as store:
        assert len(store.page_arrays(urls=False)["page_id"]) == 2
    with Store(db, read_only=True) as store:
        assert len(store.link_edges()["src"]) == 2


@pytest.mark.parametrize("numba", ["0", "1"])
def test_section_flow_matrix_keeps_each_sections_largest_flows(monkeypatch: pytest.MonkeyPatch, numba: str) -> None:
    """Past `keep` target sections, a section's smaller flows are summed into "(other sections)":
    checked against a pandas group-by of every link's juice; lost juice is never folded in."""
    import pandas as pd

    from linkjuice.pipeline import REASONS, LinkFlows, section_flow_matrix

    if numba == "1" and not importlib.util.find_spec("numba"):
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(7)
    n, m, k, keep = 600, 20_000, 40, 6
    src = np.sort(rng.integers(0, n, m)).astype(np.int32)
    resolved = rng.integers(-1, n, m).astype(np.int32)
    reason = np.where(resolved >= 0, rng.choice([0, 0, 0, 1, 4], m), 3).astype(np.int8)
    weight = rng.uniform(0.1, 1, m)
    flows = LinkFlows(src=src, dst=resolved, resolved=resolved, weight=weight, nofollow=reason == 1,
                      passes=reason == 0, reason=reason, is_internal=np.ones(m, bool), pass_factor=np.ones(m))
    sections = rng.integers(0, k, n).astype(np.int32)
    labels = np.array([f"/s{i}/" for i in range(k)], dtype=object)
    passed_on = rng.uniform(0, 1, n)
    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    got = section_flow_matrix(flows, passed_on, None, sections, labels, keep).to_pandas()
    out_weight = np.bincount(src, weights=weight, minlength=n)
    links = pd.DataFrame({
        "from_section": labels[sections[src]],
        "to_section": np.where(reason == 0, labels[sections[np.maximum(resolved, 0)]],
                               np.array([f"(lost: {r})" for r in REASONS])[reason]),
        "juice": passed_on[src] * weight / out_weight[src]})
    cells = links.groupby(["from_section", "to_section"], as_index=False).agg(
        juice=("juice", "sum"), links=("juice", "size"))
    lost = cells["to_section"].str.startswith("(lost")
    real = cells[~lost].sort_values(["from_section", "juice"], ascending=[True, False])
    top = real.groupby("from_section").head(keep)
    rest = real.drop(top.index).groupby("from_section", as_index=False).agg(juice=("juice", "sum"),
                                                                          links=("links", "sum"))
    expected = pd.concat([top, cells[lost], rest.assign(to_section="(other sections)")])
    assert len(rest) == k and (got["to_section"] == "(other sections)").sum() == k
    merged = expected.merge(got.astype({"from_section": str, "to_section": str}), how="outer",
                            on=["from_section", "to_section"], suffixes=("", "_got"), indicator=True)
    assert (merged["_merge"] == "both").all()
    np.testing.assert_allclose(merged["juice_got"], merged["juice"], rtol=1e-12)
    assert (merged["links_got"] == merged["links"]).all() and got["links"].sum() == m
    assert got["juice"].is_monotonic_decreasing


def test_scoring_again_starts_from_the_last_scores(tmp_path: Path) -> None:
    """A second `score` starts its iterations from the stored scores: a few steps, and the same
    scores as scoring from scratch, also under another model."""
    site = {f"/p{i}/": _page(f"Page {i}", SOURDOUGH if i % 2 else KNIVES,
                             " ".join(f"<a href='/p{(i * 7 + j) % 40}/'>page {j}</a>" for j in range(1, 5)))
            for i in range(40)}
    site["/"] = _page("Home", SOURDOUGH, " ".join(f"<a href='/p{i}/'>p{i}</a>" for i in range(40)))
    db = _crawl(tmp_path, site)
    other = ModelConfig(position_weights={"content": 1.0, "footer": 0.05}, relevance_weight=0.2)
    with Store(db) as store:
        first = store.sql("SELECT page_id, pagerank, juice FROM scores ORDER BY page_id")
        cold = score_store(store, model=other)  # warm from the default model's scores
        warm_other = store.sql("SELECT pagerank, juice FROM scores ORDER BY page_id")
        again = score_store(store, model=other)
        store.con.execute("DELETE FROM page_scores")
        scratch = score_store(store, model=other)
        fresh = store.sql("SELECT pagerank, juice FROM scores ORDER BY page_id")
    assert again.iterations_juice <= 2 and again.iterations_classic <= 2
    assert scratch.iterations_juice > 5 and cold.iterations_juice < scratch.iterations_juice
    np.testing.assert_allclose(warm_other["juice"], fresh["juice"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(warm_other["pagerank"], fresh["pagerank"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(first["pagerank"], fresh["pagerank"], rtol=0, atol=1e-10)  # classic ignores weights


def test_a_store_with_the_old_scores_table_keeps_its_scores(tmp_path: Path) -> None:
    """Stores scored before `scores` became a view over page_scores hold a table with URLs and
    no out_weight: read-only they are read as they are; opening one for writing moves its rows,
    and reading gives the same frame."""
    from linkjuice.pipeline import export_table

    db = _crawl(tmp_path, {"/": _page("Home", SOURDOUGH, "<a href='/a/'>a</a>"),
                           "/a/": _page("A", KNIVES, "<a href='/'>home</a>")})
    with Store(db) as store:
        before = store.sql("SELECT * FROM scores ORDER BY page_id")
        store.con.execute("DROP VIEW scores")
        store.con.execute("CREATE TABLE scores AS SELECT p.url, s.* EXCLUDE (out_weight) "
                          "FROM page_scores s JOIN pages p USING (page_id)")
        store.con.execute("DELETE FROM page_scores")
    with Store(db, read_only=True) as store:  # read as it is, page_scores a temporary view of it
        assert store.sql("SELECT count(*) AS n FROM scores")["n"].iloc[0] == len(before)
        assert store.sql("SELECT count(juice) AS n FROM page_scores")["n"].iloc[0] == before["juice"].notna().sum()
    exported = export_table(db, "pages", "csv", tmp_path / "pages.csv")
    assert exported == len(before) and "juice" in (tmp_path / "pages.csv").read_text().splitlines()[0]
    with Store(db) as store:
        kind = store.sql("SELECT table_type FROM information_schema.tables WHERE table_name = 'scores'")
        after = store.sql("SELECT * FROM scores ORDER BY page_id")
    assert kind["table_type"].tolist() == ["VIEW"]
    assert list(after.columns) == list(before.columns) and after["out_weight"].isna().all()
    assert after.drop(columns="out_weight").equals(before.drop(columns="out_weight"))


def test_finalize_marks_content_links_repeated_on_most_pages_as_template(tmp_path: Path) -> None:
    """A content link (same target and anchor) on more than template_share of the linking pages
    is 'template'; finalizing again with a higher share turns it back into content."""
    from linkjuice.pipeline import finalize_store

    site = {f"/p{i}/": _page(f"Page {i}", SOURDOUGH,
                             f"<a href='/p{(i + 1) % 12}/'>next page {i}</a> <a href='/promo/'>Spring sale</a>")
            for i in range(12)}
    site["/"] = _page("Home", SOURDOUGH, " ".join(f"<a href='/p{i}/'>p{i}</a>" for i in range(12)))
    site["/promo/"] = _page("Promo", KNIVES, "<a href='/'>home</a>")
    db = _crawl(tmp_path, site)
    query = ("SELECT anchor, position, dom_position, count(*) AS n FROM links WHERE dom_position = 'content' "
             "GROUP BY ALL ORDER BY anchor")
    with Store(db) as store:
        marked = store.sql(query)
        store.set_meta({"settings": {**(store.meta().get("settings") or {}), "template_share": 0.95}})
        finalize_store(store)
        again = store.sql(query)
    sale = marked[marked["anchor"] == "Spring sale"]
    assert sale["position"].tolist() == ["template"] and sale["n"].iloc[0] == 12
    assert (marked.loc[marked["anchor"] != "Spring sale", "position"] == "content").all()
    assert (again["position"] == "content").all() and again["n"].sum() == marked["n"].sum()


def test_relevance_is_cached_beside_link_pairs(tmp_path: Path) -> None:
    """score caches one cosine per link pair in pair_relevance (link_pairs' row order), the view and
    a rescore read it back with the same numbers as an in-memory computation; a store that kept it
    in link_pairs (earlier versions) gets it computed again and the old column dropped; rebuilding
    link_pairs empties the cache."""
    from linkjuice.pipeline import build_link_pairs, link_flows, page_text
    from linkjuice.relevance import pair_similarity

    site = {f"/p{i}/": _page(f"Page {i}", SOURDOUGH if i % 2 else KNIVES,
                             " ".join(f"<a href='/p{(i * 5 + k) % 10}/'>page {(i * 5 + k) % 10}</a>" for k in range(3)))
            for i in range(10)}
    site["/"] = _page("Home", SOURDOUGH, " ".join(f"<a href='/p{i}/'>page {i}</a>" for i in range(10)))
    db = _crawl(tmp_path, site)
    model = ModelConfig()
    with Store(db) as store:
        score_store(store, model=model)
        first = store.sql("SELECT juice FROM page_scores ORDER BY page_id")["juice"].to_numpy()
        assert store.link_pairs_state()["relevance"] == "tfidf:"
        pairs = store.sql("SELECT src, resolved FROM link_pairs")
        cached = store.sql("SELECT relevance FROM pair_relevance")["relevance"].to_numpy()
        expected = pair_similarity(page_text(store, model).vectors, pairs["src"].to_numpy(),
                                   pairs["resolved"].to_numpy())
        np.testing.assert_array_equal(cached.astype(np.float64), expected)  # FLOAT keeps the float32 cosines
        assert 0 < expected.max() <= 1 and len(set(expected.round(6))) > 2
        view = store.sql("SELECT relevance FROM link_flows")["relevance"].to_numpy()
        np.testing.assert_array_equal(np.sort(view), np.sort(expected))
        weights = link_flows(store, model, labels=False).weight  # from the cache, formed by DuckDB
        # An earlier version's store: relevance in link_pairs, nothing in pair_relevance.
        store.con.execute("ALTER TABLE link_pairs ADD COLUMN relevance DOUBLE")
        store.con.execute("DELETE FROM pair_relevance")
        assert store.link_pairs_state()["relevance"] is None
        np.testing.assert_allclose(link_flows(store, model, labels=False).weight, weights, rtol=1e-12)
        score_store(store, model=model)
        again = store.sql("SELECT juice FROM page_scores ORDER BY page_id")["juice"].to_numpy()
        assert "relevance" not in store.sql("SELECT * FROM link_pairs LIMIT 0").columns
        assert len(store.sql("SELECT * FROM pair_relevance")) == len(pairs)
        build_link_pairs(store)
        assert store.link_pairs_state()["relevance"] is None
        assert len(store.sql("SELECT * FROM pair_relevance")) == 0
    np.testing.assert_allclose(again, first, rtol=1e-9)


def test_a_first_score_makes_the_tfidf_vectors_on_a_thread_beside_classic_pagerank(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the pairs' relevance is not cached yet, score makes the pages' tfidf vectors on a thread
    of their own (a daemon: while the links are read and classic PageRank iterates): the cosines it caches
    equal sklearn's TfidfVectorizer's for every pair, the scores those of a score made before, an
    error on that thread is the score's error (nothing stored), and a rescore makes no vectors."""
    import threading

    from sklearn.feature_extraction.text import TfidfVectorizer

    import linkjuice.pipeline as pipeline_module
    from linkjuice.pipeline import build_link_pairs
    from linkjuice.relevance import TOKEN_PATTERN

    site = {f"/p{i}/": _page(f"Page {i} {'bread' if i % 2 else 'knives'}", SOURDOUGH if i % 2 else KNIVES,
                             " ".join(f"<a href='/p{(i * 5 + k) % 12}/'>page {(i * 5 + k) % 12}</a>" for k in range(3)))
            for i in range(12)}
    site["/"] = _page("Home", SOURDOUGH, " ".join(f"<a href='/p{i}/'>page {i}</a>" for i in range(12)))
    db = _crawl(tmp_path, site)
    made_on: list[str] = []
    tfidf = pipeline_module.tfidf_vectors

    def recorded(documents):  # type: ignore[no-untyped-def]
        made_on.append(threading.current_thread().name)
        assert threading.current_thread().daemon  # a Ctrl-C does not wait for it at exit
        return tfidf(documents)

    monkeypatch.setattr(pipeline_module, "tfidf_vectors", recorded)
    with Store(db) as store:
        before = store.sql("SELECT page_id, juice, pagerank FROM page_scores ORDER BY page_id")
        build_link_pairs(store)  # the relevance cache emptied, as after a new crawl
        score_store(store)
        assert made_on and all(name.startswith("linkjuice-tfidf") for name in made_on)
        after = store.sql("SELECT page_id, juice, pagerank FROM page_scores ORDER BY page_id")
        np.testing.assert_allclose(after[["juice", "pagerank"]].to_numpy(), before[["juice", "pagerank"]].to_numpy(),
                                   rtol=1e-9)
        texts = store.page_texts()
        documents = [f"{t} {t} {h} {h} {hs} {m}" for t, h, hs, m in
                     zip(texts["title"], texts["h1"], texts["headings"], texts["main_text"])]
        reference = TfidfVectorizer(sublinear_tf=True, token_pattern=TOKEN_PATTERN,
                                    stop_words="english").fit_transform(documents).toarray()
        pairs = store.sql("SELECT src, resolved FROM link_pairs")
        src, resolved = pairs["src"].to_numpy(), pairs["resolved"].fillna(-1).to_numpy().astype(int)
        linked = (src >= 0) & (resolved >= 0)
        expected = np.zeros(len(pairs))
        expected[linked] = (reference[src[linked]] * reference[resolved[linked]]).sum(axis=1)
        cached = store.sql("SELECT relevance FROM pair_relevance")["relevance"].to_numpy(np.float64)
        np.testing.assert_allclose(cached, np.clip(expected, 0, 1), rtol=0, atol=1e-6)
        assert len(set(cached.round(4))) > 2

        made_on.clear()
        score_store(store)  # cached now: no vectors made
        assert made_on == []

        def failing(documents):  # type: ignore[no-untyped-def]
            raise MemoryError("no room for the vectors")

        monkeypatch.setattr(pipeline_module, "tfidf_vectors", failing)
        build_link_pairs(store)
        with pytest.raises(MemoryError, match="no room"):
            score_store(store)
        kept = store.sql("SELECT page_id, juice, pagerank FROM page_scores ORDER BY page_id")
        pd.testing.assert_frame_equal(kept, after)


def test_page_reads_come_in_page_id_order_whatever_order_the_table_holds(tmp_path: Path) -> None:
    """ranked_pages, page_sections and page_texts read the pages as stored and put them in
    page_id order themselves; a table whose rows are stored in another order gives the same
    arrays, and scoring it the same scores."""
    site = {"/": _page("Home", SOURDOUGH, "<a href='/a/x/'>x</a> <a href='/b/y/'>y</a> <a href='/b/z/'>z</a>"),
            "/a/x/": _page("Rye bread", SOURDOUGH, "<a href='/b/y/'>knives</a> <a href='/'>home</a>"),
            "/b/y/": _page("Knives", KNIVES, "<a href='/b/z/'>whetstones</a>"),
            "/b/z/": _page("Whetstones", KNIVES, "<a href='/'>home</a> <a href='/a/x/'>rye</a>")}
    db = _crawl(tmp_path, site)

    def reads(store: Store) -> tuple:
        codes, labels = store.page_sections(1)
        return (store.ranked_pages(), labels[codes].tolist(), store.page_texts()[["page_id", "url", "title"]])

    with Store(db) as store:
        ids, sections, texts = reads(store)
        before = store.sql("SELECT page_id, juice FROM page_scores ORDER BY page_id")
        store.con.execute("CREATE OR REPLACE TABLE pages AS SELECT * FROM pages ORDER BY page_id DESC")
        stored = store.con.execute("SELECT page_id FROM pages").fetchnumpy()["page_id"]
        assert list(stored) == sorted(stored, reverse=True) and len(stored) == 4  # now stored backwards
        ids2, sections2, texts2 = reads(store)
        assert all(np.array_equal(ids[k], ids2[k]) for k in ("page_id", "indexable"))
        assert list(ids2["page_id"]) == [0, 1, 2, 3]
        assert sections2 == sections and len(set(sections)) == 3  # the home page's, /a/ and /b/
        pd.testing.assert_frame_equal(texts2, texts)
        score_store(store)
        after = store.sql("SELECT page_id, juice FROM page_scores ORDER BY page_id")
    # Scored again from the last scores: the same fixed point, to the iteration's tolerance.
    np.testing.assert_allclose(after["juice"], before["juice"], rtol=0, atol=1e-9)

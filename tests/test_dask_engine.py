"""The Dask engine against the local one on a real distributed LocalCluster: the same scores to
1e-9 (juice and classic PageRank) on a crawled site, on random graphs and from an export, and the
CLI around it. No timing assertions."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("distributed")  # the dask extra; the test extra installs it

from distributed import Client, LocalCluster  # noqa: E402

import linkjuice  # noqa: E402
from linkjuice.config import CrawlConfig, ModelConfig  # noqa: E402
from linkjuice.engines import open_engine  # noqa: E402
from linkjuice.engines.dask import DaskEngine, rank_parquet  # noqa: E402
from linkjuice.engines.parquet import export_parquet  # noqa: E402
from linkjuice.errors import InputFileError, MissingExtraError, ScoringError, UsageError  # noqa: E402
from linkjuice.pipeline import crawl_site, open_store, score_store  # noqa: E402
from linkjuice.score import classic_pagerank, juice_rank  # noqa: E402

from .test_export_parquet import generated_store  # noqa: E402

# dask's Parquet reader still calls a pandas API that pandas 3.1 deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

DEMO_SITE = Path(linkjuice.__file__).parent / "demo_site"
TOL = 1e-9


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo site crawled from its folder: redirects, a canonical, noindex, 404s,
    robots-blocked and external links, so every reason a link loses juice occurs."""
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    crawl_site(CrawlConfig(start_url="https://demo.example/", local_root=str(DEMO_SITE)), db, score=False)
    return db


def _tables(db: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    with open_store(db) as store:
        scores = store.sql("SELECT * FROM scores ORDER BY url")
        flows = store.sql("SELECT * FROM link_flows ORDER BY source_url, target_url")
        return scores, flows, store.meta()["model"]


def _assert_close(a: pd.Series, b: pd.Series) -> float:
    x, y = a.to_numpy(np.float64), b.to_numpy(np.float64)
    np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
    diff = float(np.nanmax(np.abs(x - y))) if np.isfinite(x).any() else 0.0
    assert diff <= TOL
    return diff


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_store(tmp_path_factory.mktemp("generated") / "g.duckdb")


@pytest.mark.parametrize(("store", "model"), [
    ("demo_db", ModelConfig()),
    ("demo_db", ModelConfig(redirect_factor=0.8, damping=0.7)),
    ("generated_db", ModelConfig(redirect_factor=0.9)),
], ids=["demo", "demo-redirect-loss", "generated"])
def test_dask_engine_writes_the_same_scores_as_the_local_engine(client: Client, store: str, model: ModelConfig,
                                                                request: pytest.FixtureRequest) -> None:
    db = request.getfixturevalue(store)
    # Both start from the uniform vector (scoring again here would start from the last scores),
    # so the engines' iterations can be compared step for step.
    with open_store(db, read_only=False) as s:
        s.con.execute("DELETE FROM page_scores")
        local_summary = score_store(s, model=model)
    local, local_flows, local_meta = _tables(db)
    with open_store(db, read_only=False) as s:
        s.con.execute("DELETE FROM page_scores")
        summary = score_store(s, model=model, engine=DaskEngine(client))
    dask, dask_flows, dask_meta = _tables(db)

    assert list(dask["url"]) == list(local["url"])
    for column in ("pagerank", "juice", "juice_score", "teleport"):
        _assert_close(dask[column], local[column])
    for column in ("share", "juice", "delivered"):
        _assert_close(dask_flows[column], local_flows[column])
    assert (summary.iterations_juice, summary.iterations_classic) == (
        local_summary.iterations_juice, local_summary.iterations_classic)
    assert dask_meta["total_juice"] == pytest.approx(local_meta["total_juice"], abs=TOL)
    assert local["juice"].notna().sum() == summary.ranked_pages > 40
    assert {"passed", "external", "broken", "non_indexable"} <= set(local_flows["reason"])


def _random_inputs(seed: int, n: int, m: int) -> dict[str, np.ndarray]:
    """A random graph with every feature of the model: unranked pages, dangling pages, lost links,
    links to URLs that are not pages, several links of one page resolving to the same target,
    redirect losses and a non-uniform teleport vector."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    target = rng.integers(-3, n, m)  # < 0: a URL that is not a stored page
    key = np.unique(src * (n + 3) + target + 3)  # one row per (source page, target URL)
    src, target = key // (n + 3), key % (n + 3) - 3
    keep = src != target
    src, target = src[keep], target[keep]
    resolved = np.where(rng.random(len(src)) < 0.1, rng.integers(0, n, len(src)), target)  # redirects
    ranked = rng.random(n) > 0.15
    silent = rng.choice(n, size=max(1, n // 15), replace=False)  # pages without any link
    keep = ~np.isin(src, silent)
    src, target, resolved = src[keep], target[keep], resolved[keep]
    links = len(src)
    passes = (rng.random(links) > 0.1) & (resolved >= 0) & ranked[np.where(resolved >= 0, resolved, 0)]
    teleport = np.where(ranked, rng.random(n) + 0.1, 0.0)
    return {"n": np.array(n), "src": src, "target": target, "resolved": resolved, "ranked": ranked,
            "weight": rng.choice([0.3, 0.5, 1.0, 2.0], links) * rng.random(links), "passes": passes,
            "pass_factor": np.where(resolved != target, 0.9, 1.0), "teleport": teleport / teleport.sum()}


def _write_inputs(root: Path, g: dict[str, np.ndarray], *, files: int) -> tuple[str, str]:
    n = int(g["n"])
    url = np.array([f"https://r.example/{i}" for i in range(n)], dtype=object)

    def to_url(ids: np.ndarray, missing: str) -> list[str | None]:
        return [url[i] if i >= 0 else (None if missing == "none" else f"https://elsewhere.example/{-i}")
                for i in ids]

    order = np.random.default_rng(0).permutation(n)  # ids in the files differ from the local ones
    pages = pa.table({"url": url[order], "indexable": g["ranked"][order],
                      "teleport": np.where(g["ranked"], g["teleport"], np.nan)[order]})
    flows = pa.table({"source_url": to_url(g["src"], "none"), "target_url": to_url(g["target"], "other"),
                      "resolved_url": to_url(g["resolved"], "none"), "weight": g["weight"],
                      "reason": np.where(g["passes"], "passed", "broken"), "pass_factor": g["pass_factor"]})
    for name, table in (("pages", pages), ("link_flows", flows)):
        (root / name).mkdir()
        size = -(-len(table) // files)
        for i in range(files):
            pq.write_table(table.slice(i * size, size), root / name / f"part-{i}.parquet")
    return str(root / "pages"), str(root / "link_flows")


@pytest.mark.parametrize("seed", range(3))
def test_random_graphs_match_the_local_engine(client: Client, tmp_path: Path, seed: int) -> None:
    n = 40 + 53 * seed
    g = _random_inputs(seed, n, 6 * n)
    pages, flows = _write_inputs(tmp_path, g, files=1 + seed)
    ranks = rank_parquet(client, pages, flows, blocks=1 + seed)
    juice, _ = juice_rank(n, g["src"], g["resolved"], g["weight"], g["passes"], ranked=g["ranked"],
                          teleport=g["teleport"], pass_factor=g["pass_factor"])
    known = g["target"] >= 0
    classic = classic_pagerank(n, g["src"][known], g["target"][known], nodes=g["ranked"])
    ids = np.array([int(u.rsplit("/", 1)[1]) for u in ranks.url])
    np.testing.assert_allclose(ranks.juice.scores, juice.scores[ids], rtol=0, atol=TOL)
    np.testing.assert_allclose(ranks.pagerank.scores, classic.scores[ids], rtol=0, atol=TOL)
    assert ranks.juice.iterations == juice.iterations
    assert ranks.pagerank.iterations == classic.iterations
    assert ranks.pagerank.scores.sum() == pytest.approx(1.0, abs=1e-9)
    assert set(ranks.seconds) == {"ids", "blocks", "iterate"}


def test_dask_engine_rescores_a_parquet_export(client: Client, generated_db: Path, tmp_path: Path) -> None:
    """`linkjuice export parquet` is enough input: the engine reproduces the stored scores,
    redirect losses included (their pass factor is delivered / juice)."""
    with open_store(generated_db, read_only=False) as store:
        score_store(store, model=ModelConfig(redirect_factor=0.8))
        stored = store.sql("SELECT url, pagerank, juice FROM scores")
    export_parquet(generated_db, tmp_path, rows_per_file=2048)
    # link_flows names its pages by page_id: matched by that id, not by a page's row (here the
    # pages dataset is written again in reverse order)
    pages = pq.read_table(tmp_path / "pages")
    assert "source_url" not in pq.read_schema(next((tmp_path / "link_flows").glob("*.parquet"))).names
    for path in (tmp_path / "pages").glob("*.parquet"):
        path.unlink()
    pq.write_table(pages.take(np.arange(pages.num_rows)[::-1]), tmp_path / "pages" / "part-0.parquet")
    ranks = rank_parquet(client, str(tmp_path / "pages"), str(tmp_path / "link_flows"))
    by_url = stored.set_index("url").loc[ranks.url]
    assert ranks.url[0] == pages.column("url")[-1].as_py()
    np.testing.assert_allclose(ranks.juice.scores, by_url["juice"].fillna(0.0), rtol=0, atol=TOL)
    np.testing.assert_allclose(ranks.pagerank.scores, by_url["pagerank"].fillna(0.0), rtol=0, atol=TOL)


@pytest.mark.slow
def test_cli_scores_on_a_process_cluster_and_exports(demo_db: Path, tmp_path: Path) -> None:
    """`score --engine dask` on a LocalCluster of two worker processes, then `export parquet`."""
    db = tmp_path / "cli.duckdb"
    db.write_bytes(demo_db.read_bytes())
    with open_store(db, read_only=False) as store:
        score_store(store)
    local, _, _ = _tables(db)
    run = [sys.executable, "-m", "linkjuice"]
    done = subprocess.run([*run, "score", "--db", str(db), "--engine", "dask", "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Scored 48 indexable of 60 pages" in done.stdout
    dask, _, _ = _tables(db)
    _assert_close(dask["juice"], local["juice"])
    _assert_close(dask["pagerank"], local["pagerank"])
    out = subprocess.run([*run, "export", "parquet", "--db", str(db), "-o", str(tmp_path / "pq"),
                          "--dataset", "scores"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Wrote 60 scores rows" in out.stdout
    assert pq.read_table(tmp_path / "pq" / "scores").num_rows == len(dask)


def test_engine_option_errors_are_one_line_usage_errors(demo_db: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "linkjuice", "score", "--db", str(demo_db), "--engine", "spark"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: unknown engine 'spark': choose local or dask"
    with pytest.raises(UsageError, match="need --engine dask"):
        with open_engine("local", workers=2):
            pass
    with pytest.raises(UsageError, match="needs --parquet-dir"):
        with open_engine("dask", scheduler="tcp://127.0.0.1:9"):
            pass


def test_unreadable_dataset_is_an_input_error(client: Client, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not a readable Parquet dataset"):
        rank_parquet(client, str(tmp_path / "missing"), str(tmp_path / "missing"))
    (tmp_path / "pages").mkdir()
    pq.write_table(pa.table({"address": ["https://x.example/"]}), tmp_path / "pages" / "part-0.parquet")
    with pytest.raises(InputFileError, match="lacks the column 'url'"):
        rank_parquet(client, str(tmp_path / "pages"), str(tmp_path / "pages"))


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(MissingExtraError, match=r"the dask engine needs the 'dask' extra: pip install 'linkjuice\[dask\]'"):
        with open_engine("dask"):
            pass


def test_flows_by_page_id_need_the_pages_ids(client: Client, tmp_path: Path) -> None:
    """A link_flows dataset that names its pages by id (as `export parquet` writes it) is matched
    to the pages' page_id, which the pages dataset must then have."""
    for name, table in (("pages", pa.table({"url": ["https://x.example/"], "indexable": [True]})),
                        ("link_flows", pa.table({"source_id": [0], "target_id": [0], "resolved_id": [0],
                                                 "weight": [1.0], "reason": ["passed"]}))):
        (tmp_path / name).mkdir()
        pq.write_table(table, tmp_path / name / "part-0.parquet")
    with pytest.raises(InputFileError, match="lacks the column 'page_id'"):
        rank_parquet(client, str(tmp_path / "pages"), str(tmp_path / "link_flows"))
    pq.write_table(pa.table({"url": ["https://x.example/", "https://x.example/b"], "indexable": [True, True],
                             "page_id": [0, 0]}), tmp_path / "pages" / "part-0.parquet")
    with pytest.raises(ScoringError, match="names a page_id twice"):
        rank_parquet(client, str(tmp_path / "pages"), str(tmp_path / "link_flows"))

"""`linkjuice export parquet`: partitioned datasets that DuckDB and pandas (pyarrow) read back
with the schema docs/scaling.md documents, and the same rows as the store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linkjuice.config import ModelConfig
from linkjuice.engines.parquet import DATASETS, export_parquet
from linkjuice.errors import UsageError
from linkjuice.pipeline import export_table, finalize_store, open_store, score_store
from linkjuice.store import Store

__all__ = ["generated_store"]


def generated_store(db: Path, *, n: int = 400, seed: int = 3) -> Path:
    """A crawl-shaped store written through the Store API: nav links on every page, content links
    with anchors, 404s, redirects, a noindex page, nofollow and external links."""
    rng = np.random.default_rng(seed)
    url = [f"https://g.example/p{i}" for i in range(n)]
    status = np.where(rng.random(n) < 0.05, 404, np.where(rng.random(n) < 0.05, 301, 200))
    status[:12] = 200
    redirect_to = {i: url[int(rng.integers(0, 12))] for i in np.flatnonzero(status == 301)}
    pages = [{"url": url[i], "seq": i, "status": int(status[i]), "is_html": status[i] == 200,
              "content_type": "text/html", "title": f"Topic {i % 17} page {i}", "h1": f"Topic {i % 17}",
              "main_text": f"topic{i % 17} words about topic{i % 17} and more", "found_via": "link",
              "redirect_to": redirect_to.get(i), "noindex": i == 7} for i in range(n)]
    links = []
    for i in np.flatnonzero(status == 200):
        targets = [(j, "nav") for j in range(10)] + [(int(j), "content") for j in rng.integers(0, n, 12)]
        for order, (j, position) in enumerate(targets):
            links.append({"source_url": url[i], "target_url": url[j], "anchor": f"topic {j % 17}",
                          "nofollow": bool(rng.random() < 0.03), "dom_position": position,
                          "link_order": order, "is_internal": True})
        links.append({"source_url": url[i], "target_url": f"https://elsewhere.example/{i}", "anchor": "out",
                      "nofollow": False, "dom_position": "content", "link_order": 99, "is_internal": False})
    with Store(db) as store:
        store.write_batch(pages=pages, links=links,
                          redirects=[{"source_url": url[i], "status": 301, "target_url": t} for i, t in redirect_to.items()])
        store.set_meta({"start_url": url[0]})
        finalize_store(store)
    return db


@pytest.fixture(scope="module")
def scored_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = generated_store(tmp_path_factory.mktemp("export") / "g.duckdb")
    with open_store(db, read_only=False) as store:
        score_store(store, model=ModelConfig(redirect_factor=0.8))
    return db


# The documented schema (docs/scaling.md), as DuckDB names the Parquet types.
SCHEMA = {
    "pages": {"page_id": "INTEGER", "url": "VARCHAR", "final_url": "VARCHAR", "status": "INTEGER",
              "bytes": "BIGINT", "response_time_ms": "DOUBLE", "depth": "INTEGER", "indexable": "BOOLEAN",
              "indexability": "VARCHAR", "word_count": "INTEGER", "crawled_at": "TIMESTAMP", "inlinks": "INTEGER",
              "outlinks": "INTEGER", "pagerank": "DOUBLE", "juice": "DOUBLE", "juice_score": "DOUBLE",
              "teleport": "DOUBLE", "backlink_share": "DOUBLE", "section": "VARCHAR"},
    "links": {"source_id": "INTEGER", "source_url": "VARCHAR", "target_id": "INTEGER", "target_url": "VARCHAR",
              "anchor": "VARCHAR", "rel": "VARCHAR", "nofollow": "BOOLEAN", "position": "VARCHAR",
              "dom_position": "VARCHAR", "link_order": "INTEGER", "is_internal": "BOOLEAN"},
    "link_flows": {"source_id": "INTEGER", "target_id": "INTEGER", "target_url": "VARCHAR", "resolved_id": "INTEGER",
                   "position": "VARCHAR", "anchor_class": "VARCHAR", "weight": "DOUBLE", "share": "DOUBLE",
                   "juice": "DOUBLE", "delivered": "DOUBLE", "reason": "VARCHAR", "n_links": "INTEGER"},
    "scores": {"url": "VARCHAR", "page_id": "INTEGER", "pagerank": "DOUBLE", "juice": "DOUBLE",
               "juice_score": "DOUBLE"},
}


def test_datasets_are_partitioned_typed_and_complete(scored_db: Path, tmp_path: Path) -> None:
    rows = export_parquet(scored_db, tmp_path, rows_per_file=2048)
    assert set(rows) == set(DATASETS)
    assert len(list((tmp_path / "links").glob("part-*.parquet"))) >= 3  # 8,000+ links in files of ~2,048
    con = duckdb.connect()
    with open_store(scored_db) as store:
        for name in DATASETS:
            glob = f"{tmp_path / name}/*.parquet"
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{glob}')").fetchall()}
            assert {c: types.get(c) for c in SCHEMA[name]} == SCHEMA[name], name
            if name == "link_flows":  # the pages by id alone: their URLs are in pages/
                assert not {"source_url", "resolved_url"} & set(types)
            stored = int(store.sql(f"SELECT count(*) AS n FROM {name}")["n"].iloc[0])
            assert rows[name] == stored == con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
        ids = con.execute(f"SELECT min(page_id), max(page_id), count(DISTINCT url) FROM '{tmp_path}/pages/*.parquet'").fetchone()
        assert ids == (0, rows["pages"] - 1, rows["pages"])


def _view_rows_of_dataset(flows: pd.DataFrame) -> pd.DataFrame:
    """The link_flows view's rows as the dataset holds them: no source or resolved URL, the
    target URL only where the target is no stored page (target_id -1)."""
    from linkjuice.store import DATASET_FLOW_COLUMNS

    out = flows.assign(target_url=flows["target_url"].where(flows["target_id"] < 0, None))
    return out[list(DATASET_FLOW_COLUMNS)]


def test_pandas_reads_back_the_stored_values(scored_db: Path, tmp_path: Path) -> None:
    """The datasets hold the store's rows; joined to the pages by id (as docs/scaling.md shows),
    the link_flows dataset gives back every column of the view, its URLs included."""
    export_parquet(scored_db, tmp_path, rows_per_file=2048, datasets=("scores", "link_flows"))
    assert not (tmp_path / "pages").exists()
    with open_store(scored_db) as store:
        scores = store.sql("SELECT * FROM scores ORDER BY page_id")
        flows = store.sql("SELECT * FROM link_flows ORDER BY source_url, target_url")
    frame = pd.read_parquet(tmp_path / "scores").sort_values("page_id", ignore_index=True)
    pd.testing.assert_frame_equal(frame, scores, check_dtype=False)
    back = duckdb.sql(f"""
        SELECT s.url AS source_url, coalesce(t.url, f.target_url) AS target_url, r.url AS resolved_url,
               f.* EXCLUDE (target_url)
        FROM '{tmp_path}/link_flows/*.parquet' f JOIN '{tmp_path}/scores/*.parquet' s ON s.page_id = f.source_id
        LEFT JOIN '{tmp_path}/scores/*.parquet' t ON t.page_id = f.target_id
        LEFT JOIN '{tmp_path}/scores/*.parquet' r ON r.page_id = f.resolved_id
        ORDER BY source_url, target_url""").df()
    assert flows["resolved_url"].notna().any() and flows["target_id"].lt(0).any()
    pd.testing.assert_frame_equal(back[list(flows.columns)].replace({np.nan: None}), flows.replace({np.nan: None}),
                                  check_dtype=False)
    assert np.isclose(back.loc[back["reason"] == "passed", "delivered"].sum(), flows["delivered"].sum())


@pytest.mark.parametrize("view_changed", [False, True, "no scan"])
def test_link_flows_dataset_read_in_slices_holds_the_views_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                view_changed: bool | str) -> None:
    """The link_flows dataset reads each slice of pairs beside its relevance positionally (the
    SELECT for a scan kept by score, with no page URL): with slices of a few rows, the view's
    rows less the pages' URLs. When the view is no longer the one score made (here: replaced by
    the same SELECT over another slicing), the dataset reads the view itself; a store scored
    before score kept a SELECT for a scan reads the view's own: the same rows."""
    import linkjuice.store as store_module

    monkeypatch.setattr(store_module, "_PAIR_SLICE_ROWS", 64)
    db = generated_store(tmp_path / "g.duckdb")
    with open_store(db, read_only=False) as store:
        score_store(store, model=ModelConfig(redirect_factor=0.8))
        select = store.meta()["link_flows_view"]["select"]
        pairs = store.pair_count()
        assert pairs // 64 > 10 and store._flows_dataset()[0].count("POSITIONAL JOIN") == min(pairs // 64, 64)
        assert store._flows_dataset()[1] is not None  # (the scan's rows finished by complete_flows)
        if view_changed == "no scan":
            store.set_meta({"link_flows_view": {**store.meta()["link_flows_view"], "scan": None}})
            assert store._flows_dataset()[1] is None
        elif view_changed:
            store.con.execute("CREATE OR REPLACE VIEW link_flows AS " + select.replace(
                store_module.PAIRS_WITH_RELEVANCE, store_module.pairs_with_relevance_sql(pairs // 2)))
            assert store._flows_dataset() is None
        order = ["source_id", "target_id", "target_url"]
        flows = store.sql("SELECT * FROM link_flows")
    rows = export_parquet(db, tmp_path / "out", rows_per_file=500, datasets=("link_flows",))
    back = pd.read_parquet(tmp_path / "out" / "link_flows")
    assert rows["link_flows"] == len(flows) == pairs
    assert flows["relevance"].nunique() > 2
    # Pairs that arrive at their target, elsewhere (a redirect) and at no stored page are compared.
    moved = flows["resolved_id"].ne(flows["target_id"]) & flows["resolved_id"].ge(0)
    assert moved.any() and (~moved & flows["target_id"].ge(0)).any() and flows["target_id"].lt(0).any()
    assert list(back.columns) == list(store_module.DATASET_FLOW_COLUMNS)
    expected = _view_rows_of_dataset(flows).sort_values(order, ignore_index=True)
    pd.testing.assert_frame_equal(back.sort_values(order, ignore_index=True), expected, check_dtype=False)


def test_scan_rows_get_the_views_texts_and_rows() -> None:
    """complete_flows against a hand-made table: the dataset's columns in their order, codes
    become their texts (null where the view's CASE gives none), and a row whose source is no
    page (no such id, -1, past the pages, null) is dropped (the view's inner join)."""
    from linkjuice.store import ANCHOR_CLASSES, DATASET_FLOW_COLUMNS, complete_flows

    n = 7
    is_page = np.array([True, True, True, False])  # page id 3: no page
    batch = pa.record_batch({
        **{c: pa.nulls(n, pa.float64()) for c in DATASET_FLOW_COLUMNS},
        "source_url": pa.nulls(n, pa.string()),
        "target_url": pa.array([None, "https://x.example/", None, None, None, None, None], pa.string()),
        "anchor_class": pa.array([0, 1, 2, 2, 0, 1, 0], pa.int8()),
        "reason": pa.array([0, 2, 1, None, 0, 0, 1], pa.int8()),
        "source_id": pa.array([0, 1, 2, 3, 9, 2, None], pa.int32()),
        "target_id": pa.array([1, -1, 0, 2, 1, 1, 0], pa.int32()),
        "resolved_id": pa.array([1, -1, 2, None, 1, 7, 0], pa.int32()),
    })
    out = complete_flows(batch, is_page, ["passed", "nofollow", "external"])
    assert out.schema.names == list(DATASET_FLOW_COLUMNS)
    out = out.to_pydict()
    # rows 3 (source id 3: no page), 4 (source id 9: past the pages) and 6 (no source) are dropped
    assert out["source_id"] == [0, 1, 2, 2]
    assert out["target_id"] == [1, -1, 0, 1] and out["resolved_id"] == [1, -1, 2, 7]
    assert out["target_url"] == [None, "https://x.example/", None, None]
    assert out["anchor_class"] == [ANCHOR_CLASSES[0], ANCHOR_CLASSES[1], ANCHOR_CLASSES[2], ANCHOR_CLASSES[1]]
    assert out["reason"] == ["passed", "external", "nofollow", "passed"]
    whole = complete_flows(batch.slice(0, 3), is_page, ["passed", "nofollow", "external"])
    assert whole.column("source_id").to_pylist() == [0, 1, 2]  # (nothing to drop: the batch as it came)


def test_parquet_columns_are_encoded_as_their_values_suggest(tmp_path: Path) -> None:
    """Dictionaries where values repeat, plain where they do not; min and max where a reader can
    skip row groups by them (numbers, texts in order); Arrow dictionaries read back as texts."""
    from linkjuice.store import _write_parquet_parts

    n = 20_000
    rng = np.random.default_rng(1)
    table = pa.table({
        "id": pa.array(np.arange(n, dtype=np.int32)),  # all distinct: plain
        "factor": pa.array(rng.choice([0.3, 1.0], n)),  # two values: dictionary
        "source_url": pa.array([f"https://a.example/{i // 20:06d}" for i in range(n)]),  # repeated, in order
        "target_url": pa.array([f"https://a.example/{i:06d}" for i in rng.integers(0, n // 10, n)]),  # no order
        "reason": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 3, n), pa.int8()),
                                                 pa.array(["passed", "nofollow", "broken"])),
    })
    written = _write_parquet_parts(pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=4096)),
                                   tmp_path, rows_per_file=n, row_group_rows=4096)
    assert written == n
    meta = pq.ParquetFile(tmp_path / "part-0.parquet").metadata
    column = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(5)}
    dictionary = {name for name, c in column.items() if c.has_dictionary_page}
    assert dictionary == {"factor", "source_url", "target_url", "reason"}
    with_statistics = {name for name, c in column.items() if c.is_stats_set and c.statistics.has_min_max}
    assert with_statistics == {"id", "factor", "source_url"}
    back = pq.read_table(tmp_path)
    assert back.schema.field("reason").type == pa.string()
    assert back.column("reason").to_pylist() == table.column("reason").cast(pa.string()).to_pylist()
    assert back.drop_columns(["reason"]).equals(table.drop_columns(["reason"]))


def _error_within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """Run `call` on a thread of its own; the error it raised (None: none). Fails the test when
    it has not returned within `seconds` (a writer left waiting would hang it)."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    return outcome[0] if outcome else None


def test_parts_hold_rows_per_file_and_a_failed_export_keeps_the_last_one(scored_db: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part holds --rows-per-file rows (the last the rest), in row groups of at most that many;
    an export that fails midway leaves the dataset written before whole, and no partial folder."""
    import linkjuice.store as store_module

    rows = export_parquet(scored_db, tmp_path, rows_per_file=700, datasets=("links",))["links"]
    parts = sorted((tmp_path / "links").glob("part-*.parquet"), key=lambda p: int(p.stem.split("-")[1]))
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    assert sum(sizes) == rows and len(parts) == -(-rows // 700) > 2
    assert set(sizes[:-1]) == {700} and 0 < sizes[-1] <= 700
    metas = [pq.ParquetFile(p).metadata for p in parts]
    groups = [m.row_group(i).num_rows for m in metas for i in range(m.num_row_groups)]
    assert max(groups) <= 700 and sum(groups) == rows
    before = {p.name: p.read_bytes() for p in parts}
    written = store_module._write_parquet_parts

    def fail_midway(reader, folder, **kw):  # type: ignore[no-untyped-def]
        written(reader, folder, **kw)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "_write_parquet_parts", fail_midway)
    with pytest.raises(store_module.StoreError, match="No space left"):
        export_parquet(scored_db, tmp_path, rows_per_file=300, datasets=("links",))
    assert {p.name: p.read_bytes() for p in (tmp_path / "links").glob("*")} == before
    assert not (tmp_path / "links.partial").exists()

    # A writer that fails on its second file (the disk filled up): the export stops with that
    # error instead of waiting on it, and the last dataset stays.
    monkeypatch.setattr(store_module, "_write_parquet_parts", written)
    real_writer = store_module.pq.ParquetWriter

    class FailingWriter(real_writer):  # type: ignore[misc, valid-type]
        def write_table(self, table, *args, **kwargs):  # type: ignore[no-untyped-def]
            if str(self.where).endswith("part-1.parquet"):
                raise OSError(28, "No space left on device")
            return super().write_table(table, *args, **kwargs)

    monkeypatch.setattr(store_module.pq, "ParquetWriter", FailingWriter)
    error = _error_within(120, lambda: export_parquet(scored_db, tmp_path, rows_per_file=100, datasets=("links",)))
    assert isinstance(error, store_module.StoreError) and "No space left" in str(error)
    assert {p.name: p.read_bytes() for p in (tmp_path / "links").glob("*")} == before
    assert not (tmp_path / "links.partial").exists()


def test_a_read_failing_midway_stops_the_parquet_writers(tmp_path: Path) -> None:
    """When the rows stop coming with an error (DuckDB failing mid-query), the file writers are
    told to stop and the error is raised: no writer is left waiting for rows."""
    from linkjuice.store import _write_parquet_parts

    schema = pa.schema([("n", pa.int64())])

    def batches():  # type: ignore[no-untyped-def]
        for k in range(7):
            yield pa.record_batch([pa.array(np.arange(k * 50, k * 50 + 50))], schema=schema)
        raise OSError(5, "read failed")

    error = _error_within(120, lambda: _write_parquet_parts(pa.RecordBatchReader.from_batches(schema, batches()),
                                                            tmp_path, rows_per_file=120, row_group_rows=40))
    assert isinstance(error, OSError) and "read failed" in str(error)
    # What came before the error was written, in whole files of 120 rows in groups of 40.
    done = pq.read_table(tmp_path / "part-0.parquet")
    assert done.column("n").to_pylist() == list(range(120))
    assert [pq.ParquetFile(tmp_path / "part-0.parquet").metadata.row_group(i).num_rows for i in range(3)] == [40] * 3


def _read_parts(folder: Path) -> pd.DataFrame:
    """A dataset's rows in the order written: part-0, part-1, ... (not the names' text order)."""
    parts = sorted(folder.glob("part-*.parquet"), key=lambda p: int(p.stem.split("-")[1]))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


@pytest.mark.parametrize("by_hash", [True, False])
def test_links_dataset_names_pages_by_id_in_stored_order(scored_db: Path, tmp_path: Path, monkeypatch,
                                                         by_hash: bool) -> None:
    if not by_hash:  # as when two page URLs share a hash: the URLs are joined as strings
        monkeypatch.setattr(Store, "_hashes_distinct", lambda self, relation, hashes: False)
    # A link from a URL that is no stored page (an import's source, say) keeps its URL.
    db = tmp_path / "store.duckdb"
    shutil.copy(scored_db, db)
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO links (source_url, target_url, anchor, link_order, is_internal) "
                    "VALUES ('https://g.example/unstored', 'https://g.example/p1', 'one', 0, true)")
    export_parquet(db, tmp_path / "out", rows_per_file=2048, datasets=("links",))
    export_parquet(db, tmp_path / "out", datasets=("pages",))
    back = _read_parts(tmp_path / "out" / "links")
    with open_store(db) as store:
        stored = store.sql("SELECT source_url, target_url, link_order FROM links")  # as stored: the crawl's order
        ids = dict(store.sql("SELECT url, page_id FROM pages").itertuples(index=False))
    assert len(back) == len(stored) > 8000
    expected_source, expected_target = stored["source_url"].map(ids), stored["target_url"].map(ids)
    assert expected_target.isna().sum() > 100 and expected_source.isna().sum() == 1
    for end, expected in (("source", expected_source), ("target", expected_target)):
        # An id where the URL is a stored page, else the URL itself.
        assert back[f"{end}_id"].isna().tolist() == expected.isna().tolist()
        assert (back[f"{end}_id"].dropna().astype(int) == expected.dropna().astype(int)).all()
        assert back[f"{end}_url"].notna().tolist() == expected.isna().tolist()
    # The URLs back by the join docs/scaling.md gives, in the stored order.
    joined = duckdb.sql(f"""
        SELECT coalesce(s.url, l.source_url) AS source_url, coalesce(t.url, l.target_url) AS target_url, l.link_order
        FROM '{tmp_path / "out" / "links"}/*.parquet' l
        LEFT JOIN '{tmp_path / "out" / "pages"}/*.parquet' s ON s.page_id = l.source_id
        LEFT JOIN '{tmp_path / "out" / "pages"}/*.parquet' t ON t.page_id = l.target_id
        ORDER BY l.source_id NULLS LAST, l.link_order, l.target_url""").df()
    ordered = stored.assign(_id=expected_source).sort_values(["_id", "link_order"], na_position="last", kind="stable")
    pd.testing.assert_frame_equal(joined[["source_url", "target_url", "link_order"]],
                                  ordered.drop(columns="_id").reset_index(drop=True), check_dtype=False)


def test_export_replaces_an_earlier_export(scored_db: Path, tmp_path: Path) -> None:
    export_parquet(scored_db, tmp_path, rows_per_file=2048, datasets=("links",))
    assert len(list((tmp_path / "links").glob("*.parquet"))) > 1
    export_parquet(scored_db, tmp_path, rows_per_file=1_000_000, datasets=("links",))
    assert [p.name for p in (tmp_path / "links").glob("*.parquet")] == ["part-0.parquet"]


def test_bad_arguments_are_usage_errors(scored_db: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        export_parquet(scored_db, tmp_path / "file")
    with pytest.raises(UsageError, match="unknown dataset 'edges'"):
        export_parquet(scored_db, tmp_path, datasets=("edges",))
    with pytest.raises(UsageError, match="at least 1"):
        export_parquet(scored_db, tmp_path, rows_per_file=0)


def test_cli_export_parquet_and_single_file_export(scored_db: Path, tmp_path: Path) -> None:
    run = [sys.executable, "-m", "linkjuice", "export"]
    done = subprocess.run([*run, "parquet", "--db", str(scored_db), "-o", str(tmp_path / "pq")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split(" rows")[0].split()[-1] for line in done.stdout.splitlines()] == list(DATASETS)
    assert f"rows to {tmp_path / 'pq' / 'links'}/" in done.stdout
    assert export_table(scored_db, "links", "parquet", tmp_path / "links.parquet") == pq.read_table(
        tmp_path / "links.parquet").num_rows == pq.read_table(tmp_path / "pq" / "links").num_rows


def test_single_file_parquet_keeps_the_order_a_table_is_exported_in(scored_db: Path, tmp_path: Path) -> None:
    """Parquet is written without DuckDB's insertion order (links: as they come, on every core),
    but a table exported in an order keeps it: pages by juice, highest first. The links are all
    there, the same rows as the CSV export's (which keeps the stored order)."""
    import numpy as np
    import pandas as pd

    export_table(scored_db, "pages", "parquet", tmp_path / "pages.parquet")
    juice = pq.read_table(tmp_path / "pages.parquet").column("juice").to_numpy(zero_copy_only=False)
    juice = np.nan_to_num(juice.astype(float), nan=-1.0)
    assert len(juice) > 100 and (np.diff(juice) <= 0).all()
    export_table(scored_db, "links", "parquet", tmp_path / "links.parquet")
    export_table(scored_db, "links", "csv", tmp_path / "links.csv")
    key = ["source_url", "target_url", "link_order"]
    from_parquet = pq.read_table(tmp_path / "links.parquet").to_pandas()[key].sort_values(key, ignore_index=True)
    from_csv = pd.read_csv(tmp_path / "links.csv")[key].sort_values(key, ignore_index=True)
    assert from_parquet.astype(str).equals(from_csv.astype(str))

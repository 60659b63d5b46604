"""The Dask engine: the local model's power iteration with the transition matrix spread over a
Dask distributed cluster (a LocalCluster when no scheduler address is given).

Data flow (docs/scaling.md has the memory and communication costs):

1. pages/ and link_flows/ Parquet datasets -> dask dataframes. Page ids are the running row
   number of the pages dataset (a cumulative sum across partitions); URLs become ids by merges
   on 64-bit URL hashes (shuffle joins on the workers), or, in a link_flows dataset that names
   its pages by the pages dataset's page_id (`linkjuice export parquet`'s), those ids do. Only
   O(pages) vectors reach the client: the URLs, which pages are ranked, the teleport vector,
   each source's total weight and out-degree.
2. The edges are shuffled into ranges of target ids (`set_index` with fixed divisions); each range
   becomes one CSR row block of M^T, built and kept on a worker (a future).
3. Each iteration the client broadcasts the rank vector x to every worker
   (`scatter(broadcast=True)`), each worker multiplies its blocks by x, and the client gathers the
   slices and does the O(n) rest of x <- d (M^T x + (x . dangling) v) + (1 - d) v, in the same
   order of operations as linkjuice.score.power_iterate, so results agree to rounding.

The weights are the local model's: `DaskEngine.rank` receives the flows `pipeline.link_flows`
computed and writes them as the Parquet input; `rank_parquet` also reads an export made by
`linkjuice export parquet`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from ..errors import InputFileError, MissingExtraError, ScoringError, UsageError
from ..score import PowerResult, iterate_matvec

if TYPE_CHECKING:
    from distributed import Client

    from ..config import ModelConfig
    from ..pipeline import LinkFlows

__all__ = ["DaskEngine", "DaskRanks", "dask_engine", "rank_parquet", "write_rank_inputs"]

PAGE_COLUMNS = ("url", "indexable")  # plus teleport, when present
FLOW_COLUMNS = ("source_url", "target_url", "resolved_url", "weight", "reason")  # plus pass_factor
# Or the pages by id (as `linkjuice export parquet` writes link_flows), matched to pages.page_id.
FLOW_ID_COLUMNS = ("source_id", "target_id", "resolved_id", "weight", "reason")


def _require_dask() -> None:
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise MissingExtraError("the dask engine", "dask") from None


@dataclass(frozen=True, slots=True)
class DaskRanks:
    """Both models' scores per page, in the order of the pages dataset as Dask read it."""

    url: np.ndarray
    pagerank: PowerResult
    juice: PowerResult
    seconds: dict[str, float]  # wall time of each phase: ids (read, map URLs), blocks, iterate


# -- on the workers -----------------------------------------------------------------------------
def _row_block(frame: pd.DataFrame, lo: int, hi: int, n: int, denominators: np.ndarray) -> sp.csr_array:
    """Rows lo..hi-1 of M^T: entry (target, source) = weight / denominator[source] * factor,
    the same arithmetic as linkjuice.score, so each entry is bit-identical to the local one."""
    rows = frame.index.to_numpy(np.int64) - lo
    cols = frame["col"].to_numpy(np.int64)
    denominator = denominators[cols]
    share = np.divide(frame["w"].to_numpy(np.float64), denominator, out=np.zeros(len(cols)), where=denominator > 0)
    value = share * frame["factor"].to_numpy(np.float64)
    block = sp.coo_array((value, (rows, cols)), shape=(hi - lo, n)).tocsr()
    block.sum_duplicates()
    return block


def _matvec(block: sp.csr_array, x: np.ndarray) -> np.ndarray:
    return block @ x


def _url_keys(urls: pd.Series) -> np.ndarray:
    """A 64-bit hash per URL (pandas' SipHash of the text); 0 for a missing URL, which then
    matches no page."""
    keys = pd.util.hash_pandas_object(urls, index=False).to_numpy(np.uint64)
    return np.where(urls.isna().to_numpy(), np.uint64(0), keys)


def _url_keys_series(urls: pd.Series) -> pd.Series:
    return pd.Series(_url_keys(urls), index=urls.index, name=urls.name, dtype="uint64")


# -- on the client ------------------------------------------------------------------------------
def _dense(series: pd.Series, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[series.index.to_numpy(np.int64)] = series.to_numpy(np.float64)
    return out


def _build_blocks(client: Client, edges: Any, n: int, denominators: np.ndarray, blocks: int) -> list[Any]:
    """Shuffle edges (row, col, w, factor) into `blocks` ranges of rows (target ids) and build one
    CSR block per range on the workers; returns the block futures, in row order."""
    from distributed import wait

    k = max(1, min(blocks, n))
    bounds = np.unique(np.linspace(0, n, k + 1).round().astype(np.int64))
    ranged = edges.set_index("row", divisions=tuple(int(b) for b in bounds))
    frames = client.compute(ranged.to_delayed())
    denominators_f = client.scatter(denominators, broadcast=True, hash=False)
    futures = [client.submit(_row_block, frame, int(bounds[i]), int(bounds[i + 1]), n, denominators_f, pure=False)
               for i, frame in enumerate(frames)]
    wait(futures)
    return futures


def _iterate(client: Client, blocks: list[Any], *, teleport: np.ndarray, dangling: np.ndarray,
             damping: float, tol: float, max_iter: int) -> PowerResult:
    """linkjuice.score.power_iterate with the mat-vec done block by block on the workers."""
    n = len(teleport)

    def matvec(x: np.ndarray) -> np.ndarray:
        x_f = client.scatter(x, broadcast=True, hash=False)
        parts = client.gather([client.submit(_matvec, block, x_f, pure=False) for block in blocks])
        return np.concatenate(parts) if parts else np.zeros(n)

    return iterate_matvec(matvec, teleport=teleport, dangling=dangling, damping=damping, tol=tol, max_iter=max_iter)


def _read(path: str, required: tuple[str, ...], optional: tuple[str, ...],
          instead: tuple[str, ...] = ()) -> Any:
    """The dataset's `required` columns (or, when it lacks them, its `instead` ones, where given)
    and whichever `optional` ones it has."""
    import dask.dataframe as dd

    try:
        frame = dd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"is not a readable Parquet dataset ({str(exc).splitlines()[0]})", path=path) from None
    missing = [c for c in required if c not in frame.columns]
    if missing and instead and all(c in frame.columns for c in instead):
        required, missing = instead, []
    if missing:
        raise InputFileError(f"lacks the column {missing[0]!r} (see docs/scaling.md)", path=path)
    return frame[[c for c in (*required, *optional) if c in frame.columns]]


def rank_parquet(client: Client, pages: str, link_flows: str, *, damping: float = 0.85, tol: float = 1e-10,
                 max_iter: int = 1000, blocks: int | None = None) -> DaskRanks:
    """Classic PageRank and the juice model from Parquet datasets, computed on `client`'s cluster.

    `pages` needs url and indexable (teleport, when present, is where juice enters; else uniform);
    `link_flows` needs source_url, target_url, resolved_url, weight and reason (pass_factor, or
    delivered and juice from which it follows, when redirects lose juice), one row per (source
    page, target URL); or, instead of the URLs, source_id, target_id and resolved_id (null or
    -1: no page) naming pages by the pages dataset's page_id, as `linkjuice export parquet`
    writes them."""
    _require_dask()
    clock = _Clock()
    page_frame = _read(pages, PAGE_COLUMNS, ("teleport", "page_id"))
    flow_frame = _read(link_flows, FLOW_COLUMNS, ("pass_factor", "delivered", "juice"), instead=FLOW_ID_COLUMNS)
    by_id = "source_url" not in flow_frame.columns
    if by_id and "page_id" not in page_frame.columns:
        raise InputFileError("lacks the column 'page_id', by which the link_flows dataset names its pages "
                             "(see docs/scaling.md)", path=pages)

    # 1. Page ids and the O(n) vectors the client needs.
    page_frame = page_frame.assign(indexable=page_frame["indexable"].fillna(False).astype(bool))
    page_frame = page_frame.assign(id=page_frame.assign(one=1)["one"].cumsum() - 1)
    # frame.persist(): client.persist(frame) mis-wires repartitioned merges (dask/dask#11160).
    page_frame = page_frame.persist(scheduler=client)
    local = page_frame.compute(scheduler=client)
    n = len(local)
    if n == 0:
        raise ScoringError(f"{pages} holds no pages: nothing to score")
    ranked = local["indexable"].to_numpy(bool)
    if "teleport" in local and local["teleport"].notna().any():
        teleport = np.where(ranked, local["teleport"].fillna(0.0).to_numpy(np.float64), 0.0)
        total = teleport.sum()
        if total <= 0:
            raise ScoringError("the teleport vector has no mass on ranked pages")
        teleport = teleport / total
    else:
        teleport = ranked / max(int(ranked.sum()), 1)

    # 2. URLs (or the dataset's page ids) -> row ids on the workers. The joins use 64-bit hashes
    #    of the URLs, so the shuffles move integers, not strings; page URLs are checked to hash
    #    apart (the client holds them anyway).
    if by_id:
        # (a page without an id, -2, meets no flow: a flow without a page has -1)
        given = local["page_id"].dropna().to_numpy(np.int64)
        if len(np.unique(given)) != len(given):
            raise ScoringError(f"{pages} names a page_id twice: the Dask engine cannot tell its pages apart")
        ids = page_frame.assign(key=page_frame["page_id"].fillna(-2).astype("int64"))
        flow_keys = {f"{name}_key": flow_frame[f"{name}_id"].fillna(-1).astype("int64")
                     for name in ("source", "resolved", "target")}
    else:
        keys = _url_keys(local["url"])
        if len(np.unique(keys)) != n or not keys.all():
            raise ScoringError("two page URLs share a 64-bit hash key: the Dask engine cannot tell them apart")
        ids = page_frame.assign(key=page_frame["url"].map_partitions(_url_keys_series, meta=("key", "uint64")))
        flow_keys = {f"{name}_key": flow_frame[f"{name}_url"].map_partitions(_url_keys_series,
                                                                               meta=(f"{name}_key", "uint64"))
                     for name in ("source", "resolved", "target")}
    ids = ids[["key", "id", "indexable"]]
    passes = flow_frame["reason"] == "passed"
    if "pass_factor" in flow_frame.columns:
        factor = flow_frame["pass_factor"].fillna(1.0)
    elif "delivered" in flow_frame.columns and "juice" in flow_frame.columns:
        # A scored store keeps delivered = juice * pass_factor for each passing link.
        factor = (flow_frame["delivered"] / flow_frame["juice"]).where(passes & (flow_frame["juice"] > 0), 1.0)
    else:
        factor = 1.0
    flows = flow_frame.assign(passes=passes, factor=factor, **flow_keys)[
        ["source_key", "resolved_key", "target_key", "weight", "passes", "factor"]]
    flows = flows.merge(ids.rename(columns={"key": "source_key", "id": "src", "indexable": "src_ranked"}),
                        on="source_key", how="inner")
    for name, key, flag in (("resolved", "res", "res_ranked"), ("target", "dst", "dst_ranked")):
        flows = flows.merge(ids.rename(columns={"key": f"{name}_key", "id": key, "indexable": flag}),
                            on=f"{name}_key", how="left")
        flows = flows.assign(**{key: flows[key].fillna(-1).astype("int64"),
                                flag: flows[flag].fillna(False).astype(bool)})
    flows = flows[["src", "src_ranked", "res", "res_ranked", "dst", "dst_ranked", "weight", "passes", "factor"]]
    flows = flows.persist(scheduler=client)
    k = blocks or max(1, len(client.scheduler_info()["workers"]))
    # Denominators: juice divides by the source's total weight (lost links count in it); classic
    # by the source's unique links to other ranked pages.
    out_weight = _dense(flows.groupby("src")["weight"].sum().compute(scheduler=client), n)
    links = flows[(flows["dst"] >= 0) & (flows["src"] != flows["dst"]) & flows["src_ranked"] & flows["dst_ranked"]]
    links = links.assign(w=1.0, factor=1.0).rename(columns={"dst": "row", "src": "col"})[["row", "col", "w", "factor"]]
    outdeg = _dense(links.groupby("col").size().compute(scheduler=client), n)
    clock.lap("ids")

    # 3. Juice: the passing links between ranked pages, weight / total weight x pass factor. One
    #    model's blocks (12 bytes per link) exist at a time, beside the mapped flows (~44).
    moves = flows[flows["passes"] & flows["src_ranked"] & flows["res_ranked"]]
    edges = moves.rename(columns={"res": "row", "src": "col", "weight": "w"})[["row", "col", "w", "factor"]]
    juice_blocks = _build_blocks(client, edges, n, out_weight, k)
    clock.lap("blocks")
    juice = _iterate(client, juice_blocks, teleport=teleport, dangling=(ranked & (out_weight == 0)).astype(np.float64),
                     damping=damping, tol=tol, max_iter=max_iter)
    del juice_blocks, moves, edges
    clock.lap("iterate")

    # 4. Classic: 1 / out-degree per link, uniform teleport; the mapped flows leave the workers
    #    once its blocks are built.
    m = int(ranked.sum())
    classic_blocks = _build_blocks(client, links, n, outdeg, k) if m else []
    del flows, links, ids, page_frame
    clock.lap("blocks")
    if m == 0:
        classic = PowerResult(np.zeros(n), 0, 0.0)
    else:
        classic = _iterate(client, classic_blocks, teleport=ranked / m,
                           dangling=(ranked & (outdeg == 0)).astype(np.float64),
                           damping=damping, tol=tol, max_iter=max_iter)
    clock.lap("iterate")
    return DaskRanks(url=local["url"].to_numpy(object), pagerank=classic, juice=juice, seconds=clock.seconds)


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now


def write_rank_inputs(directory: str, urls: np.ndarray, flows: LinkFlows, *, ranked: np.ndarray,
                      teleport: np.ndarray, rows_per_file: int = 1_000_000) -> tuple[str, str]:
    """Write the model's inputs as the pages and link_flows datasets `rank_parquet` reads
    (a folder or a URL pyarrow can write: s3://, gs://...). Returns their two paths."""
    import pyarrow.dataset as ds

    from ..pipeline import REASONS

    urls = np.asarray(urls, dtype=object)
    resolved = np.where(flows.resolved >= 0, urls[np.where(flows.resolved >= 0, flows.resolved, 0)], None)
    tables = {
        "pages": pa.table({"url": pa.array(urls, pa.string()), "indexable": np.asarray(ranked, bool),
                           "teleport": np.where(ranked, teleport, np.nan)}),
        "link_flows": pa.table({
            "source_url": pa.array(urls[flows.src], pa.string()),
            "target_url": pa.array(flows.target_url, pa.string()),
            "resolved_url": pa.array(resolved, pa.string()),
            "weight": np.asarray(flows.weight, np.float64),
            "reason": pa.array(np.array(REASONS, dtype=object)[flows.reason], pa.string()),
            "pass_factor": np.ascontiguousarray(flows.pass_factor, np.float64),
        }),
    }
    paths = []
    for name, table in tables.items():
        path = f"{directory.rstrip('/')}/{name}"
        try:
            ds.write_dataset(table, path, format="parquet", basename_template="part-{i}.parquet",
                             max_rows_per_file=rows_per_file, max_rows_per_group=min(rows_per_file, 1 << 20),
                             existing_data_behavior="delete_matching")
        except (OSError, pa.ArrowException) as exc:
            raise UsageError(f"cannot write the Dask engine's input to {path}: {str(exc).splitlines()[0]}") from None
        paths.append(path)
    return paths[0], paths[1]


class DaskEngine:
    """A RankEngine on a Dask cluster (see `dask_engine` to start one).

    `parquet_dir` is where the model's inputs go for the workers to read: a folder or URL every
    worker can reach (a shared filesystem, s3://...); None means a temporary folder, enough for a
    LocalCluster. `blocks` is the number of row blocks of the matrix (default: one per worker)."""

    def __init__(self, client: Client, *, parquet_dir: str | None = None, blocks: int | None = None) -> None:
        _require_dask()
        self.client = client
        self.parquet_dir = parquet_dir
        self.blocks = blocks

    def rank(self, urls: np.ndarray, flows: LinkFlows, *, ranked: np.ndarray, teleport: np.ndarray,
             model: ModelConfig) -> tuple[PowerResult, PowerResult, np.ndarray]:
        with _work_dir(self.parquet_dir) as directory:
            pages_path, flows_path = write_rank_inputs(directory, urls, flows, ranked=ranked, teleport=teleport)
            ranks = rank_parquet(self.client, pages_path, flows_path, damping=model.damping, tol=model.tol,
                                 max_iter=model.max_iter, blocks=self.blocks)
        order = pd.Index(ranks.url).get_indexer(pd.Index(np.asarray(urls, dtype=object)))
        if (order < 0).any():
            raise ScoringError("the Dask engine returned scores for other pages than it was given")

        def aligned(result: PowerResult) -> PowerResult:
            return PowerResult(result.scores[order], result.iterations, result.residual)

        # Each flow's share is part of the model's weights, not of the iteration: computed here
        # exactly as linkjuice.score.juice_rank does.
        out_weight = np.bincount(flows.src, weights=flows.weight, minlength=len(urls))
        share = np.divide(flows.weight, out_weight[flows.src], out=np.zeros(len(flows.weight)),
                          where=out_weight[flows.src] > 0)
        return aligned(ranks.pagerank), aligned(ranks.juice), share


@contextmanager
def _work_dir(directory: str | None) -> Iterator[str]:
    if directory is not None:
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="linkjuice-dask-") as tmp:
        yield tmp


@contextmanager
def dask_engine(*, scheduler: str | None = None, workers: int | None = None, parquet_dir: str | None = None,
                processes: bool = True, blocks: int | None = None) -> Iterator[DaskEngine]:
    """A DaskEngine on the cluster at `scheduler`, or on a LocalCluster of `workers` single-thread
    workers (default: one per CPU) started for the block and closed after it.

    With a scheduler, `workers` waits until that many workers have joined (an autoscaling
    cluster), and `parquet_dir` is required: the workers must be able to read the inputs."""
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if scheduler and parquet_dir is None:
        raise UsageError("--scheduler needs --parquet-dir: a folder or URL (s3://...) every worker can read")
    _require_dask()
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="30s")
            if workers:
                client.wait_for_workers(workers, timeout=600)
        else:
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=processes, host="127.0.0.1" if processes else None, dashboard_address=None,
                                   silence_logs=logging.ERROR)  # loopback only, no dashboard server
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        where = scheduler or "a LocalCluster"
        raise ScoringError(f"cannot start the Dask engine on {where}: {str(exc).splitlines()[0]}") from None
    try:
        yield DaskEngine(client, parquet_dir=parquet_dir, blocks=blocks)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

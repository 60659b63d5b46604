"""Scoring engines beyond this process, and the Parquet datasets they read.

The local engine (linkjuice.score) iterates in this process. Another engine implements
`RankEngine`: it receives the same per-link flows and teleport vector that the local model
computes (the weights are the local contract) and returns the same results, so
`pipeline.score_store` writes its scores back exactly as it writes local ones.

* `linkjuice.engines.parquet`: partitioned Parquet exports of a store (pages, links, link_flows,
  scores), readable by Dask, Spark, DuckDB and BigQuery.
* `linkjuice.engines.dask`: the power iteration on a Dask distributed cluster (extra `dask`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import UsageError
from .parquet import DATASETS, export_parquet

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..pipeline import LinkFlows
    from ..score import PowerResult

__all__ = ["ENGINES", "DATASETS", "RankEngine", "export_parquet", "open_engine"]

ENGINES = ("local", "dask")


class RankEngine(Protocol):
    """What `pipeline.score_store` needs from an engine other than the local one."""

    def rank(self, urls: np.ndarray, flows: LinkFlows, *, ranked: np.ndarray, teleport: np.ndarray,
             model: ModelConfig) -> tuple[PowerResult, PowerResult, np.ndarray]:
        """Classic PageRank, the juice model (both aligned with `urls`, the pages in page_id
        order) and each flow's share of its source's juice."""
        ...


@contextmanager
def open_engine(name: str, *, scheduler: str | None = None, workers: int | None = None,
                parquet_dir: str | None = None) -> Iterator[RankEngine | None]:
    """The engine called `name`, started for the duration of the block (None: the local one)."""
    if name == "local":
        if scheduler or workers or parquet_dir:
            raise UsageError("--scheduler, --workers and --parquet-dir need --engine dask")
        yield None
    elif name == "dask":
        from .dask import dask_engine

        with dask_engine(scheduler=scheduler, workers=workers, parquet_dir=parquet_dir) as engine:
            yield engine
    else:
        raise UsageError(f"unknown engine {name!r}: choose {' or '.join(ENGINES)}")

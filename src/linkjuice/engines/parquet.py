"""Partitioned Parquet exports of a store, for Dask, Spark, DuckDB, BigQuery or your own engine.

One folder per dataset, each a set of `part-N.parquet` files of bounded size (row groups of
~122,880 rows, at most `rows_per_file` rows per file), sorted so that a file covers a range of
pages. docs/scaling.md documents every column and its type.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..store import ROW_GROUP_ROWS, Store

__all__ = ["DATASETS", "export_parquet"]

# pages: one row per URL with its scores; links: one row per link; link_flows: one row per
# (source page, target URL) with the model's factors and juice; scores: the scores table as stored.
# links and link_flows name pages by page_id (pages/ holds the URLs): fewer bytes to write and read.
DATASETS: tuple[str, ...] = ("pages", "links", "link_flows", "scores")


def export_parquet(db: str | Path, directory: str | Path, *, rows_per_file: int = 1_000_000,
                   datasets: tuple[str, ...] = DATASETS) -> dict[str, int]:
    """Write each dataset to `directory`/NAME/part-N.parquet; returns the rows written per dataset.

    Replaces those folders when they exist, so a re-export never mixes two crawls."""
    if rows_per_file < 1:
        raise UsageError("--rows-per-file must be at least 1")
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise UsageError(f"unknown dataset {unknown[0]!r}: choose from {', '.join(DATASETS)}")
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file: give a folder for the Parquet datasets")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {root}: {exc.strerror}") from None
    row_group_rows = min(ROW_GROUP_ROWS, rows_per_file)  # (DuckDB's: good for Dask/Spark split planning)
    with Store(db, read_only=True) as store:
        return {name: store.export_dataset(name, root / name, rows_per_file=rows_per_file,
                                           row_group_rows=row_group_rows) for name in datasets}

"""CLI for other engines: `export parquet`, the partitioned datasets a cluster engine reads.

(`score --engine dask` is an option of the score command in linkjuice.cli.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli import DbOption, console, export_app

__all__ = ["export_parquet_datasets"]


@export_app.command("parquet")
def export_parquet_datasets(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the datasets in.")],
    db: DbOption = Path("linkjuice.duckdb"),
    rows_per_file: Annotated[int, typer.Option(help="At most this many rows per part file.")] = 1_000_000,
    dataset: Annotated[Optional[list[str]], typer.Option(help="Only this dataset (repeatable): pages, links, link_flows, scores.")] = None,
) -> None:
    """Export pages, links, link_flows and scores as partitioned Parquet (for Dask, Spark, DuckDB, BigQuery).

    links and link_flows name their pages by page_id (a URL only where a link's end is no stored
    page); join pages/ on page_id for the URLs. docs/scaling.md has every column and the join."""
    from ..engines.parquet import DATASETS, export_parquet

    rows = export_parquet(db, output, rows_per_file=rows_per_file, datasets=tuple(dataset or DATASETS))
    for name, count in rows.items():
        console.print(f"Wrote {count} {name} rows to {output / name}/", highlight=False, soft_wrap=True)

"""Helpers shared by the importers: opening the store, the site URL for paths, Arrow batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from ..errors import InputFileError, UsageError
from ..store import Store
from ..urls import normalize_url
from .report import SkipTally

__all__ = ["import_store", "site_base", "BatchWriter", "BATCH_ROWS", "fail_if_empty"]

BATCH_ROWS = 50_000  # rows per Arrow batch handed to the store: bounded memory for big files


@contextmanager
def import_store(db: str | Path, file: str | Path) -> Iterator[Store]:
    """Open (or create) the store for an import. A store this import created is removed again
    when the import fails, so a typo in a file name leaves no empty store behind."""
    path = Path(file)
    if not path.exists():
        raise InputFileError("no such file", path=str(path))
    if path.is_dir():
        raise InputFileError("is a folder, not a file", path=str(path))
    db_path = Path(db)
    created = not db_path.exists()
    try:
        with Store(db_path) as store:
            yield store
    except BaseException:
        if created:
            db_path.unlink(missing_ok=True)
            Path(str(db_path) + ".wal").unlink(missing_ok=True)
        raise


def site_base(store: Store, base_url: str | None) -> str | None:
    """The URL that paths ("/blog/x", as GA4 writes them) are resolved against: --base-url, else
    the crawl's start URL."""
    if base_url:
        base = normalize_url(base_url)
        if base is None:
            raise UsageError(f"--base-url {base_url!r} is not an http(s) URL")
        return base
    start = store.meta().get("start_url")
    return str(start) if start else None


class BatchWriter:
    """Collects parsed rows column-wise and yields Arrow tables of BATCH_ROWS rows."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns: list[list[object]] = [[] for _ in schema.names]
        self.rows = 0

    def add(self, *values: object) -> pa.Table | None:
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)
        self.rows += 1
        if len(self.columns[0]) >= BATCH_ROWS:
            return self.flush()
        return None

    def flush(self) -> pa.Table | None:
        if not self.columns[0]:
            return None
        table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(self.columns, self.schema, strict=True)],
                                     schema=self.schema)
        self.columns = [[] for _ in self.schema.names]
        return table


def fail_if_empty(rows: int, tally: SkipTally, display: str, what: str) -> None:
    """Raise when a file gave nothing usable: replacing stored data with nothing is never wanted."""
    if rows:
        return
    first = tally.first()
    if first is None:
        raise InputFileError(f"holds no {what} (a header but no data rows)", path=display)
    reason, line = first
    raise InputFileError(f"holds no usable {what}: {tally.total} rows skipped, e.g. {reason}", path=display, line=line)

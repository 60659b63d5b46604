"""The DuckDB store: one file per crawl, and the only module that speaks SQL.

Every write of a crawl batch (its pages, their links, redirect hops and newly found URLs) is one
transaction, so a crawl killed at any moment leaves a store where each stored page has all its links,
and `crawl --resume` only has to refetch what was in flight. docs/schema.md documents the tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import StoreError

__all__ = ["SCHEMA_VERSION", "Store", "PAGE_COLUMNS", "LINK_COLUMNS"]

SCHEMA_VERSION = 1

# Column order of the tables written by the crawler; records and exports use the same names.
PAGE_COLUMNS: tuple[str, ...] = (
    "url", "seq", "status", "content_type", "bytes", "response_time_ms", "found_depth", "found_via",
    "title", "h1", "meta_robots", "x_robots_tag", "canonical", "lang", "word_count", "main_text",
    "headings", "redirect_to", "error", "blocked_by_robots", "is_html", "noindex", "nofollow",
    "crawled_at",
)
LINK_COLUMNS: tuple[str, ...] = (
    "source_url", "target_url", "anchor", "rel", "nofollow", "dom_position", "link_order", "is_internal",
)
REDIRECT_COLUMNS: tuple[str, ...] = ("source_url", "status", "target_url")
FRONTIER_COLUMNS: tuple[str, ...] = ("seq", "url", "depth", "found_via", "found_from", "redirect_hops")
SITEMAP_COLUMNS: tuple[str, ...] = ("sitemap_url", "url", "lastmod", "in_scope")

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS frontier (
    seq BIGINT, url VARCHAR, depth INTEGER, found_via VARCHAR, found_from VARCHAR,
    redirect_hops INTEGER
);
CREATE TABLE IF NOT EXISTS pages (
    url VARCHAR, seq BIGINT, status INTEGER, content_type VARCHAR, bytes BIGINT,
    response_time_ms DOUBLE, found_depth INTEGER, found_via VARCHAR,
    title VARCHAR, h1 VARCHAR, meta_robots VARCHAR, x_robots_tag VARCHAR, canonical VARCHAR,
    lang VARCHAR, word_count INTEGER, main_text VARCHAR, headings VARCHAR, redirect_to VARCHAR,
    error VARCHAR, blocked_by_robots BOOLEAN, is_html BOOLEAN, noindex BOOLEAN, nofollow BOOLEAN,
    crawled_at TIMESTAMP,
    -- filled by finalize():
    page_id INTEGER, depth INTEGER, final_url VARCHAR, in_sitemap BOOLEAN, indexable BOOLEAN,
    indexability VARCHAR
);
CREATE TABLE IF NOT EXISTS links (
    source_url VARCHAR, target_url VARCHAR, anchor VARCHAR, rel VARCHAR, nofollow BOOLEAN,
    dom_position VARCHAR, link_order INTEGER, is_internal BOOLEAN,
    -- filled by finalize(): dom_position, or 'template' for content links repeated site-wide
    position VARCHAR
);
CREATE TABLE IF NOT EXISTS redirects (source_url VARCHAR, status INTEGER, target_url VARCHAR);
CREATE TABLE IF NOT EXISTS sitemap_entries (
    sitemap_url VARCHAR, url VARCHAR, lastmod VARCHAR, in_scope BOOLEAN
);
CREATE TABLE IF NOT EXISTS scores (
    url VARCHAR, page_id INTEGER, inlinks INTEGER, outlinks INTEGER, pagerank DOUBLE,
    juice DOUBLE, juice_score DOUBLE
);
"""


class Store:
    """An open DuckDB crawl store. Use as a context manager, or call close()."""

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = True) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if not self.path.exists():
            if read_only or not create:
                raise StoreError(f"no store at {self.path} (run 'linkjuice crawl' first)")
            if not self.path.parent.exists():
                raise StoreError(f"cannot create {self.path}: folder {self.path.parent} does not exist")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise StoreError(f"cannot open store {self.path}: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise StoreError(f"{self.path} is not a linkjuice store ({_first_line(exc)})") from None
        try:
            self._prepare_schema()
        except duckdb.Error as exc:
            self.con.close()
            raise StoreError(f"{self.path}: store cannot be used ({_first_line(exc)})") from None

    # -- lifecycle -----------------------------------------------------------------------------
    def _prepare_schema(self) -> None:
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "meta" in tables:
            row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else None
            if version is None:
                raise StoreError(f"{self.path} has no schema version: not a linkjuice store")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer linkjuice (schema {version}; this one reads {SCHEMA_VERSION})"
                )
            if not self.read_only:
                # Tables added by later stages (findings, imports...) appear on first writable open.
                self.con.execute(_DDL)
            return
        if tables:
            raise StoreError(f"{self.path} is a DuckDB file but not a linkjuice store")
        if self.read_only:
            raise StoreError(f"{self.path} is empty: not a linkjuice store")
        self.con.execute(_DDL)
        self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- metadata ------------------------------------------------------------------------------
    def set_meta(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value)
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, text])

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.con.execute("SELECT key, value FROM meta").fetchall():
            try:
                out[key] = json.loads(value)
            except (json.JSONDecodeError, TypeError):
                out[key] = value
        return out

    # -- crawl writes --------------------------------------------------------------------------
    def write_batch(
        self,
        *,
        pages: Sequence[Mapping[str, Any]] = (),
        links: Sequence[Mapping[str, Any]] = (),
        redirects: Sequence[Mapping[str, Any]] = (),
        frontier: Sequence[Mapping[str, Any]] = (),
        sitemap_entries: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Append one crawl batch atomically."""
        with self.transaction():
            self._append("frontier", FRONTIER_COLUMNS, frontier)
            self._append("pages", PAGE_COLUMNS, pages)
            self._append("links", LINK_COLUMNS, links)
            self._append("redirects", REDIRECT_COLUMNS, redirects)
            self._append("sitemap_entries", SITEMAP_COLUMNS, sitemap_entries)

    def _append(self, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        batch = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])  # noqa: F841
        cols = ", ".join(columns)
        self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM batch")

    def frontier_after(self, seq: int, limit: int) -> list[tuple[int, str, int, str, str | None, int]]:
        """Frontier rows with a sequence number above `seq`, in discovery order."""
        return self.con.execute(
            "SELECT seq, url, depth, found_via, found_from, redirect_hops FROM frontier "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            [seq, limit],
        ).fetchall()

    def unfinished_frontier(self) -> list[tuple[int, str, int, str, str | None, int]]:
        """Frontier rows at or below the last fetched sequence number that have no page yet
        (the pages in flight when a crawl was stopped)."""
        return self.con.execute(
            "SELECT f.seq, f.url, f.depth, f.found_via, f.found_from, f.redirect_hops FROM frontier f "
            "WHERE f.seq <= (SELECT coalesce(max(seq), -1) FROM pages) "
            "AND NOT EXISTS (SELECT 1 FROM pages p WHERE p.seq = f.seq) ORDER BY f.seq"
        ).fetchall()

    def iter_frontier_urls(self, chunk: int = 100_000) -> Iterator[list[str]]:
        """All frontier URLs in chunks (to rebuild the seen-set on resume without one big list)."""
        cur = self.con.execute("SELECT url FROM frontier")
        while rows := cur.fetchmany(chunk):
            yield [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        q = (
            "SELECT (SELECT count(*) FROM pages), (SELECT count(*) FROM links), "
            "(SELECT count(*) FROM frontier), (SELECT count(*) FROM pages WHERE error IS NOT NULL "
            "OR status >= 400), (SELECT coalesce(max(seq), -1) FROM pages)"
        )
        pages, links, frontier, errors, max_seq = self.con.execute(q).fetchone()  # type: ignore[misc]
        return {"pages": pages, "links": links, "frontier": frontier, "errors": errors, "max_seq": max_seq}

    def sitemap_urls(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT DISTINCT url FROM sitemap_entries").fetchall()}

    # -- finalisation (after a crawl or import) ------------------------------------------------
    def finalize(self, *, template_share: float, template_min_pages: int) -> None:
        """Derive page ids, final URLs, indexability and link positions from the raw crawl data."""
        with self.transaction():
            self.con.execute(
                """
                UPDATE pages SET page_id = ids.page_id FROM (
                    SELECT url, (row_number() OVER (ORDER BY seq, url) - 1)::INTEGER AS page_id FROM pages
                ) ids WHERE pages.url = ids.url
                """
            )
            self.con.execute(
                "UPDATE pages SET in_sitemap = url IN (SELECT url FROM sitemap_entries)"
            )
            # Indexability, with the reason when a page is not indexable.
            self.con.execute(
                """
                UPDATE pages SET indexability = CASE
                    WHEN blocked_by_robots THEN 'blocked by robots.txt'
                    WHEN error IS NOT NULL AND status IS NULL THEN 'error'
                    WHEN status BETWEEN 300 AND 399 THEN 'redirect'
                    WHEN status >= 500 THEN 'server error'
                    WHEN status >= 400 THEN 'client error'
                    WHEN status IS NULL THEN 'not crawled'
                    WHEN NOT coalesce(is_html, false) THEN 'not html'
                    WHEN coalesce(noindex, false) THEN 'noindex'
                    WHEN canonical IS NOT NULL AND canonical <> url THEN 'canonicalised'
                    ELSE 'indexable' END
                """
            )
            self.con.execute("UPDATE pages SET indexable = (indexability = 'indexable')")
            # Final URL: follow redirect hops (bounded; loops end as NULL).
            self.con.execute(
                """
                UPDATE pages SET final_url = r.final_url FROM (
                    WITH RECURSIVE chain(start, cur, hops) AS (
                        SELECT source_url, target_url, 1 FROM redirects
                        UNION ALL
                        SELECT c.start, r.target_url, c.hops + 1 FROM chain c
                        JOIN redirects r ON r.source_url = c.cur WHERE c.hops < 20
                    )
                    SELECT start, arg_max(cur, hops) AS final_url, max(hops) AS hops FROM chain GROUP BY start
                ) r WHERE pages.url = r.start
                """
            )
            self.con.execute(
                """
                UPDATE pages SET final_url = NULL WHERE final_url IN (SELECT source_url FROM redirects)
                """
            )
            self.con.execute("UPDATE pages SET final_url = url WHERE redirect_to IS NULL")
            # Template links: a content link (same target and anchor) found on most pages.
            n_sources = self.con.execute(
                "SELECT count(DISTINCT source_url) FROM links"
            ).fetchone()[0]  # type: ignore[index]
            self.con.execute("UPDATE links SET position = dom_position")
            if n_sources >= template_min_pages:
                self.con.execute(
                    """
                    UPDATE links SET position = 'template' FROM (
                        SELECT target_url, anchor FROM links WHERE dom_position = 'content'
                        GROUP BY target_url, anchor
                        HAVING count(DISTINCT source_url) > ? * ?
                    ) t
                    WHERE links.dom_position = 'content' AND links.target_url = t.target_url
                      AND links.anchor IS NOT DISTINCT FROM t.anchor
                    """,
                    [template_share, n_sources],
                )

    def set_depths(self, page_ids: np.ndarray, depths: np.ndarray) -> None:
        """Store click depths (-1 = unreachable) computed by the graph stage."""
        depth_table = pa.table({"page_id": pa.array(page_ids, pa.int32()), "d": pa.array(depths, pa.int32())})  # noqa: F841
        with self.transaction():
            self.con.execute(
                "UPDATE pages SET depth = CASE WHEN t.d < 0 THEN NULL ELSE t.d END FROM depth_table t "
                "WHERE pages.page_id = t.page_id"
            )

    # -- reads for the graph stage -------------------------------------------------------------
    def page_arrays(self) -> dict[str, np.ndarray]:
        """Per page, ordered by page_id: url, status, indexable, is_html, final page id."""
        tbl = self._arrow(
            """
            SELECT p.page_id, p.url, coalesce(p.status, -1) AS status, coalesce(p.indexable, false) AS indexable,
                   coalesce(p.is_html, false) AS is_html, coalesce(p.nofollow, false) AS page_nofollow,
                   p.indexability,
                   coalesce(f.page_id, -1) AS final_id, coalesce(c.page_id, -1) AS canonical_id
            FROM pages p
            LEFT JOIN pages f ON f.url = p.final_url
            LEFT JOIN pages c ON c.url = p.canonical
            ORDER BY p.page_id
            """
        )
        return {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in tbl.column_names}

    def redirect_arrays(self) -> dict[str, np.ndarray]:
        """Redirect hops between stored pages, as page ids."""
        tbl = self._arrow(
            "SELECT s.page_id AS src, t.page_id AS dst FROM redirects r "
            "JOIN pages s ON s.url = r.source_url JOIN pages t ON t.url = r.target_url"
        )
        return {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in tbl.column_names}

    def link_arrays(self) -> dict[str, np.ndarray]:
        """Every link from a stored page: source id, target id (-1 when the target was not
        stored: external or out of reach), position, nofollow, internal flag."""
        tbl = self._arrow(
            """
            SELECT s.page_id AS src, coalesce(t.page_id, -1) AS dst, l.position, l.nofollow, l.is_internal
            FROM links l
            JOIN pages s ON s.url = l.source_url
            LEFT JOIN pages t ON t.url = l.target_url
            """
        )
        return {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in tbl.column_names}

    def link_groups(self, position_weights: Mapping[str, float]) -> dict[str, np.ndarray]:
        """One row per (source page, target URL): the highest position weight among the
        duplicate links, followed if any of them is. Self-links are left out."""
        values = ", ".join(f"('{name}', {float(w)!r})" for name, w in position_weights.items())
        tbl = self._arrow(
            f"""
            WITH w(position, weight) AS (VALUES {values})
            SELECT s.page_id AS src, coalesce(any_value(t.page_id), -1) AS dst,
                   max(coalesce(w.weight, 0.0)) AS weight, bool_and(l.nofollow) AS nofollow,
                   bool_or(l.is_internal) AS is_internal
            FROM links l
            JOIN pages s ON s.url = l.source_url
            LEFT JOIN pages t ON t.url = l.target_url
            LEFT JOIN w ON w.position = l.position
            WHERE l.source_url <> l.target_url
            GROUP BY s.page_id, l.target_url
            ORDER BY src, dst
            """
        )
        return {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in tbl.column_names}

    def _arrow(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        relation = self.con.sql(query, params=list(params) if params else None)
        # DuckDB 2 renamed arrow() to to_arrow_table().
        return (getattr(relation, "to_arrow_table", None) or relation.arrow)()

    def write_scores(self, frame: pd.DataFrame) -> None:
        with self.transaction():
            self.con.execute("DELETE FROM scores")
            self.con.execute("INSERT INTO scores SELECT url, page_id, inlinks, outlinks, pagerank, juice, juice_score FROM frame")

    # -- reads for users -----------------------------------------------------------------------
    def pages_frame(
        self,
        *,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        order_by: str = "juice DESC NULLS LAST",
        limit: int | None = None,
        params: Sequence[Any] = (),
    ) -> pd.DataFrame:
        """Pages joined with their scores. `where`/`order_by` are trusted SQL from our own code."""
        sql = "SELECT * FROM pages_view"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        frame = self._query_view(sql, params)
        if columns is not None:
            frame = frame[list(columns)]
        return frame

    def _query_view(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        view = (
            "WITH pages_view AS (SELECT p.url, p.final_url, p.status, p.content_type, p.bytes, "
            "p.response_time_ms, p.depth, p.found_via, p.in_sitemap, p.indexable, p.indexability, "
            "p.title, p.h1, p.meta_robots, p.x_robots_tag, p.canonical, p.lang, p.word_count, "
            "p.redirect_to, p.error, p.blocked_by_robots, p.is_html, p.noindex, p.nofollow, "
            "s.inlinks, s.outlinks, s.pagerank, s.juice, s.juice_score, p.crawled_at "
            "FROM pages p LEFT JOIN scores s USING (url)) "
        )
        return self.con.execute(view + sql, list(params)).df()

    def table_frame(self, table: str, *, limit: int | None = None) -> pd.DataFrame:
        if table == "pages":
            return self.pages_frame(limit=limit, order_by="url")
        if table not in {"links", "redirects", "sitemap_entries", "scores", "frontier"}:
            raise StoreError(f"unknown table {table!r}")
        sql = f"SELECT * FROM {table}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.con.execute(sql).df()

    def export(self, table: str, path: str | Path, fmt: str) -> int:
        """Write a table to CSV, JSON (array of records, one per line) or Parquet; returns rows."""
        source = {
            "pages": "(SELECT p.url, p.final_url, p.status, p.content_type, p.bytes, p.response_time_ms, "
            "p.depth, p.found_via, p.in_sitemap, p.indexable, p.indexability, p.title, p.h1, "
            "p.meta_robots, p.x_robots_tag, p.canonical, p.lang, p.word_count, p.redirect_to, p.error, "
            "p.blocked_by_robots, s.inlinks, s.outlinks, s.pagerank, s.juice, s.juice_score "
            "FROM pages p LEFT JOIN scores s USING (url) ORDER BY s.juice DESC NULLS LAST, p.url)",
            "links": "(SELECT source_url, target_url, anchor, rel, nofollow, position, dom_position, "
            "link_order, is_internal FROM links ORDER BY source_url, link_order)",
            "redirects": "(SELECT * FROM redirects)",
            "sitemap_entries": "(SELECT * FROM sitemap_entries)",
        }.get(table)
        if source is None:
            raise StoreError(f"unknown table {table!r}")
        options = {"csv": "FORMAT CSV, HEADER", "json": "FORMAT JSON", "parquet": "FORMAT PARQUET"}[fmt]
        target = str(path).replace("'", "''")
        try:
            self.con.execute(f"COPY {source} TO '{target}' ({options})")
        except duckdb.Error as exc:
            raise StoreError(f"cannot write {path}: {_first_line(exc)}") from None
        return int(self.con.execute(f"SELECT count(*) FROM {source}").fetchone()[0])  # type: ignore[index]

    def sql(self, query: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run read-only SQL for users and notebooks."""
        return self.con.execute(query, list(params)).df()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

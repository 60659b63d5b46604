"""The DuckDB store: one file per crawl, and the only module that speaks SQL.

Every write of a crawl batch (its pages, their links, redirect hops and newly found URLs) is one
transaction, so a crawl killed at any moment leaves a store where each stored page has all its links,
and `crawl --resume` only has to refetch what was in flight. docs/schema.md documents the tables.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import queue
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import InputFileError, StoreError

__all__ = ["SCHEMA_VERSION", "Store", "PAGE_COLUMNS", "LINK_COLUMNS", "AuditLinks", "LINK_ORDER_MISSING", "link_pair_keys"]

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
    "found_in",
)
REDIRECT_COLUMNS: tuple[str, ...] = ("source_url", "status", "target_url")
PAGE_SCORE_COLUMNS: tuple[str, ...] = ("page_id", "inlinks", "outlinks", "pagerank", "juice", "juice_score",
                                       "teleport", "backlink_share", "section", "out_weight")
FRONTIER_COLUMNS: tuple[str, ...] = ("seq", "url", "depth", "found_via", "found_from", "redirect_hops")
SITEMAP_COLUMNS: tuple[str, ...] = ("sitemap_url", "url", "lastmod", "in_scope")
TRAP_COLUMNS: tuple[str, ...] = ("url", "kind", "pattern", "found_from")
# link_pairs is built from at most this many reads of the staged link groups (each scans them all).
_MAX_GROUP_SCANS = 16
# A crawl's links are grouped this many rows at a time (Store._stage_by_link_rows); a crawled page
# keeps at most _MAX_PAGE_LINKS links (crawl.extract).
_GROUP_SLICE_LINKS = 8_000_000
_MAX_PAGE_LINKS = 10_000
# DuckDB's memory for an export's sort (beyond it, DuckDB spills to a temporary file).
EXPORT_MEMORY = "1GB"
# link_pairs rows per batch while a column is read or the weights are formed.
_READ_BATCH = 1 << 20
# DuckDB's memory for the audit's reads (audit_memory): 600 bytes a page, within these bounds.
_AUDIT_MEMORY_MB = (512, 8192)
_AUDIT_MEMORY_PER_PAGE = 600
# DuckDB's memory while the audit's findings are written (Store.write_audit_tables).
_AUDIT_WRITE_MEMORY = "1GB"
# DuckDB's rows per row group (its default). A table inserted in pieces of other sizes leaves a
# partial row group at each piece's end, which the next checkpoint merges and compresses again: at
# 10M pages, 5.4 s of the audit at the store's close (_row_group_aligned).
ROW_GROUP_ROWS = 122_880
# DuckDB's limit for a moment while Store.release_memory evicts its cached blocks.
_RELEASE_MEMORY = "64MB"
# DuckDB's buffer of a streamed query's result (Store.__init__).
_STREAM_BUFFER = "128MB"


def audit_memory(pages: int) -> str:
    """DuckDB's memory limit for the audit's reads of a store of `pages` pages. The links' joins
    to their pages by URL hold a hash table of every page URL that DuckDB cannot spill: a fixed
    512 MB failed at 3M pages."""
    low, high = _AUDIT_MEMORY_MB
    return f"{min(max(low, pages * _AUDIT_MEMORY_PER_PAGE // 2**20), high)}MB"


def flows_memory(pages: int) -> str:
    """DuckDB's memory limit for reads of the link_flows view on a store of `pages` pages (its
    joins hold the pages' URLs): the audit's, and at least 1 GB."""
    return f"{max(1024, int(audit_memory(pages).removesuffix('MB')))}MB"


def scan_memory(pages: int) -> str:
    """DuckDB's memory limit for the link_flows dataset's query (flows_view_sql(scan=True)) on a
    store of `pages` pages: a hash table of the pages' scores, with room to spare, and at least
    EXPORT_MEMORY. Any more only holds the pairs' blocks once read (first touches of fresh memory
    were a fifth of the dataset's time at 10M pages with the audit's allowance)."""
    return _export_memory(pages * 160)


def _export_memory(needed: int) -> str:
    """A DuckDB memory limit of `needed` bytes, and at least EXPORT_MEMORY."""
    return f"{max(int(EXPORT_MEMORY.removesuffix('GB')) * 1024, needed >> 20)}MB"


def items_export_memory(urls: int) -> str:
    """DuckDB's memory limit for an export of the finding items, which names their URLs from the
    `urls` rows of audit_urls (two hash tables of them) before the sort: 300 bytes a URL, and at
    least EXPORT_MEMORY (10M pages' items within 1 GB spilled: 34.9 s against 20.8 s in 3 GB)."""
    return _export_memory(urls * 300)


# link_pairs.anchor_class 0, 1, anything else.
ANCHOR_CLASSES: tuple[str, ...] = ("empty", "generic", "descriptive")

FLOW_COLUMNS: tuple[str, ...] = (
    "source_url", "target_url", "resolved_url", "position", "anchor", "nofollow", "position_factor", "relevance",
    "relevance_factor", "anchor_class", "anchor_match", "anchor_factor", "weight", "share", "juice", "delivered",
    "reason", "source_id", "target_id", "resolved_id", "n_links", "is_internal",
)
# The link_flows dataset's columns: the view's with its pages as their ids alone (the pages
# dataset has each id's URL), target_url only where the target is no stored page. Three URLs a
# row were a third of the Parquet writer's time and of the files at 1M pages.
DATASET_FLOW_COLUMNS: tuple[str, ...] = (
    "source_id", "target_id", "target_url", "resolved_id",
    *(c for c in FLOW_COLUMNS if c not in ("source_url", "target_url", "resolved_url", "source_id", "target_id",
                                            "resolved_id")),
)


FINDINGS_VIEW_COLUMNS: tuple[str, ...] = (
    "finding_id", "code", "severity", "url", "anchor", "item_count", "juice_at_stake", "explanation", "fix",
)
# The view's columns that finding_rows holds as codes, until an audit names them (an empty table).
_UNNAMED_FINDINGS = {"code": "CAST(_code AS VARCHAR)", "severity": "CAST(_severity AS VARCHAR)"}


ITEMS_VIEW_COLUMNS: tuple[str, ...] = (
    "finding_id", "code", "url", "source_url", "target_url", "anchor", "position", "link_order", "juice", "detail",
)
# finding_item_rows' URL columns that may be codes into audit_urls, and the codes' columns (NULL:
# the URL is the text; the text is NULL where the code names it). An item's target_url, where its
# text is NULL, is its url: the items named by code are those of a finding per target URL.
ITEM_URL_CODES = {"url": "_url", "source_url": "_source_url"}


def _items_view(code: str) -> str:
    """The query of the view `finding_items` over finding_item_rows, with `code` the SQL of an
    item's code from its number (as in the view `findings`) and its URLs where they are codes
    joined from audit_urls. It has no order: its readers order the items (finding_id,
    source_url, link_order)."""
    joined = {name: f"coalesce(i.{name}, {name}_of.url)" for name in ITEM_URL_CODES}
    joined["target_url"] = "coalesce(i.target_url, url_of.url)"
    columns = ", ".join(f"{code} AS code" if c == "code" else f"{joined[c]} AS {c}" if c in joined else f"i.{c}"
                        for c in ITEMS_VIEW_COLUMNS)
    joins = " ".join(f"LEFT JOIN audit_urls {name}_of ON {name}_of.code = i.{coded}"
                     for name, coded in ITEM_URL_CODES.items())
    return f"SELECT {columns} FROM finding_item_rows i {joins}"


def _findings_view(computed: Mapping[str, str]) -> str:
    """The query of the view `findings` over finding_rows: `computed` maps the view's columns that
    are not stored as they are read to their SQL over finding_rows' columns (the code and
    severity from their numbers, the explanations from their templates:
    linkjuice.audit.AuditStream.view_sql)."""
    return "SELECT " + ", ".join(f"{computed[c]} AS {c}" if c in computed else c for c in FINDINGS_VIEW_COLUMNS) + \
        " FROM finding_rows"


# The audit's findings and items. URLs and explanations (a text each, tens of millions on a big
# site) are kept with zstd: at 3M pages DuckDB's default FSST wrote them in 4.8 s, zstd in 3.3 s,
# in three quarters of the space, and a CSV export of the findings took 7 s instead of 12.
# The items are stored in finding_item_rows and read through the view `finding_items`: the URLs
# of the items of the anchor findings (12M of 15.8M at 10M pages) as their codes into audit_urls,
# the URLs the audit knew (each page's and each linked URL's, written once an audit): gathered as
# texts for each item, they took 6.6 s of the audit's write at 10M pages and ~3 s of its inserts.
# The findings are stored in finding_rows and read through the view `findings`, which writes
# the explanations that come from a template (_template: its number, -1 for none; _n and _x: its
# numbers; linkjuice.audit._Template). At 10M pages those are 19M of the 26.8M findings: made and
# compressed as they were stored, they were about a third of the audit's write. The code and
# severity are stored as numbers (_code, _severity) that the view names: 26.8M findings inserted
# alone took 7.2 s so, 7.8-8.5 s with them as texts (Arrow dictionaries).
_AUDIT_TABLES = {
    "finding_rows": "finding_id INTEGER, _code TINYINT, _severity TINYINT, url VARCHAR USING COMPRESSION zstd, "
                    "anchor VARCHAR, item_count INTEGER, juice_at_stake DOUBLE, "
                    "explanation VARCHAR USING COMPRESSION zstd, fix VARCHAR, _template TINYINT, _n BIGINT, _x DOUBLE",
    "finding_item_rows": "finding_id INTEGER, _code TINYINT, url VARCHAR USING COMPRESSION zstd, "
                         "source_url VARCHAR USING COMPRESSION zstd, target_url VARCHAR USING COMPRESSION zstd, "
                         "_url INTEGER, _source_url INTEGER, "
                         "anchor VARCHAR, position VARCHAR, link_order INTEGER, juice DOUBLE, detail VARCHAR",
    "audit_urls": "code INTEGER, url VARCHAR USING COMPRESSION zstd",
}

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS frontier (
    seq BIGINT, url VARCHAR, depth INTEGER, found_via VARCHAR, found_from VARCHAR,
    redirect_hops INTEGER
);
-- main_text: zstd, not DuckDB's default dictionary + FSST, which each checkpoint ran again over
-- the newest row group's texts (a crawl checkpoints every 64 MB of log): half the store's CPU at a
-- checkpoint, and the texts take half the space.
CREATE TABLE IF NOT EXISTS pages (
    url VARCHAR, seq BIGINT, status INTEGER, content_type VARCHAR, bytes BIGINT,
    response_time_ms DOUBLE, found_depth INTEGER, found_via VARCHAR,
    title VARCHAR, h1 VARCHAR, meta_robots VARCHAR, x_robots_tag VARCHAR, canonical VARCHAR,
    lang VARCHAR, word_count INTEGER, main_text VARCHAR USING COMPRESSION zstd, headings VARCHAR,
    redirect_to VARCHAR,
    error VARCHAR, blocked_by_robots BOOLEAN, is_html BOOLEAN, noindex BOOLEAN, nofollow BOOLEAN,
    crawled_at TIMESTAMP,
    -- filled by finalize():
    page_id INTEGER, depth INTEGER, final_url VARCHAR, in_sitemap BOOLEAN, indexable BOOLEAN,
    indexability VARCHAR, redirect_hops INTEGER
);
CREATE TABLE IF NOT EXISTS links (
    source_url VARCHAR, target_url VARCHAR, anchor VARCHAR, rel VARCHAR, nofollow BOOLEAN,
    dom_position VARCHAR, link_order INTEGER, is_internal BOOLEAN,
    -- filled by finalize(): dom_position, or 'template' for content links repeated site-wide
    position VARCHAR,
    -- raw | rendered | both: where the crawler found the link (crawl --render); NULL when imported
    found_in VARCHAR
);
ALTER TABLE links ADD COLUMN IF NOT EXISTS found_in VARCHAR;
CREATE TABLE IF NOT EXISTS redirects (source_url VARCHAR, status INTEGER, target_url VARCHAR);
CREATE TABLE IF NOT EXISTS sitemap_entries (
    sitemap_url VARCHAR, url VARCHAR, lastmod VARCHAR, in_scope BOOLEAN
);
-- URLs the crawler refused as crawler traps (linkjuice.crawl.traps), one row each, and one row per
-- pattern for the audit's infinite-space finding.
CREATE TABLE IF NOT EXISTS crawl_trap_urls (url VARCHAR, kind VARCHAR, pattern VARCHAR, found_from VARCHAR);
CREATE VIEW IF NOT EXISTS crawl_traps AS
    SELECT kind, pattern, min(url) AS example_url, count(*) AS skipped FROM crawl_trap_urls GROUP BY kind, pattern;
-- The model's numbers per page id; out_weight: the sum of the weights of a page's links (each
-- link's share = its weight / this). `scores` adds each page's URL, joined when read: writing a
-- URL string per page cost more than the rest of the row (1.6 s at 1M pages).
CREATE TABLE IF NOT EXISTS page_scores (
    page_id INTEGER, inlinks INTEGER, outlinks INTEGER, pagerank DOUBLE, juice DOUBLE, juice_score DOUBLE,
    teleport DOUBLE, backlink_share DOUBLE, section VARCHAR, out_weight DOUBLE
);
CREATE VIEW IF NOT EXISTS scores AS SELECT p.url, s.* FROM page_scores s JOIN pages p USING (page_id);
-- One row per (source page, target URL), sorted by (src, dst): the model's inputs with page ids,
-- built from links and pages by finalize (pipeline.build_link_pairs) so scoring reads no strings.
-- dst: the linked page (-1: not stored, with target_url); resolved: the page that receives after
-- redirects and canonicals (-1: none); reason: index into pipeline.REASONS; hops: redirect hops
-- passed; position/anchor: of the pair's highest-weighted link (the first on the page among
-- equals); anchor_class 0 empty, 1 generic, 2 descriptive. Written once and never updated (stores
-- of earlier versions also hold a relevance column, dropped by their next score).
CREATE TABLE IF NOT EXISTS link_pairs (
    src INTEGER, dst INTEGER, target_url VARCHAR, resolved INTEGER, reason TINYINT, hops INTEGER,
    nofollow BOOLEAN, is_internal BOOLEAN, n_links INTEGER, position VARCHAR, anchor VARCHAR,
    anchor_class TINYINT, anchor_match DOUBLE
);
-- What the audit reads of each internal link (Store.write_link_codes, at finalize): ids and codes,
-- no strings. src: page id; target: page id, or a code >= the page count for link_extra_urls'
-- URL (an internal target that is not a stored page); anchor: link_anchor_texts' code (-1: no
-- text); position, found_in: indexes into the lists in meta 'link_codes'; pair: the row of the
-- link's pair in link_pairs (as built by the finalize that wrote it; -1: none).
CREATE TABLE IF NOT EXISTS link_codes (
    src INTEGER, target INTEGER, anchor INTEGER, position TINYINT, link_order INTEGER, nofollow BOOLEAN,
    found_in TINYINT, pair INTEGER
);
ALTER TABLE link_codes ADD COLUMN IF NOT EXISTS pair INTEGER;
CREATE TABLE IF NOT EXISTS link_anchor_texts (code INTEGER, text VARCHAR);
CREATE TABLE IF NOT EXISTS link_extra_urls (code INTEGER, url VARCHAR);
-- Each link pair's relevance (cosine), cached by score for the engine named in meta 'link_pairs'
-- (key relevance): row k belongs to link_pairs' row k (the same rowid). A table of its
-- own, so that caching it writes one column instead of rewriting link_pairs and its strings; FLOAT,
-- as the cosines come from float32 vectors.
CREATE TABLE IF NOT EXISTS pair_relevance (relevance FLOAT);
-- One row per (source page, target URL) pair: the model's factors and the juice the link carries.
-- A store scored by this version holds a view of the same name and columns instead (score
-- computes it from link_pairs and scores: nothing per link is written); this table is what an
-- unscored store, or one scored by an older version, holds.
CREATE TABLE IF NOT EXISTS link_flows (
    source_url VARCHAR, target_url VARCHAR, resolved_url VARCHAR, position VARCHAR, anchor VARCHAR,
    nofollow BOOLEAN, position_factor DOUBLE, relevance DOUBLE, relevance_factor DOUBLE,
    anchor_class VARCHAR, anchor_match DOUBLE, anchor_factor DOUBLE, weight DOUBLE, share DOUBLE,
    juice DOUBLE, delivered DOUBLE, reason VARCHAR
);
CREATE TABLE IF NOT EXISTS section_flows (from_section VARCHAR, to_section VARCHAR, juice DOUBLE, links BIGINT);
-- imports (linkjuice.imports): outside data joined to pages by URL; the audit declares the same
-- imported_urls, gsc and priorities columns.
CREATE TABLE IF NOT EXISTS imported_urls (url VARCHAR, source VARCHAR);
CREATE TABLE IF NOT EXISTS gsc (url VARCHAR, clicks DOUBLE, impressions DOUBLE, ctr DOUBLE, position DOUBLE);
CREATE TABLE IF NOT EXISTS priorities (url VARCHAR, weight DOUBLE);
CREATE TABLE IF NOT EXISTS backlinks (
    target_url VARCHAR, source_url VARCHAR, source_domain VARCHAR, authority DOUBLE, nofollow BOOLEAN,
    anchor VARCHAR, tool VARCHAR
);
-- The audit's output, replaced on each run (docs/audit.md): one row per finding, one row per
-- affected link or URL (both made again by each audit: _AUDIT_TABLES), and where the juice passed
-- through links goes.
CREATE TABLE IF NOT EXISTS finding_rows ({finding_rows});
CREATE VIEW IF NOT EXISTS findings AS {findings_view};
CREATE TABLE IF NOT EXISTS audit_urls ({audit_urls});
CREATE TABLE IF NOT EXISTS finding_item_rows ({finding_item_rows});
CREATE VIEW IF NOT EXISTS finding_items AS {items_view};
CREATE TABLE IF NOT EXISTS juice_flow (dimension VARCHAR, category VARCHAR, juice DOUBLE, share DOUBLE);
-- Link opportunities (`linkjuice suggest`), replaced on each run.
CREATE TABLE IF NOT EXISTS suggestions (
    rank INTEGER, source_url VARCHAR, target_url VARCHAR, anchor VARCHAR, context VARCHAR,
    relevance DOUBLE, predicted_gain DOUBLE, gain_pct DOUBLE, exact BOOLEAN, source_juice_score DOUBLE,
    target_juice_score DOUBLE
);
-- The semantic engine's page vectors (linkjuice.semantic), kept while a page's text is unchanged.
CREATE TABLE IF NOT EXISTS embeddings (url VARCHAR, model VARCHAR, text_hash VARCHAR, vector FLOAT[]);
"""
for _name, _columns in _AUDIT_TABLES.items():
    _DDL = _DDL.replace(f"{{{_name}}}", _columns)
_DDL = _DDL.replace("{findings_view}", _findings_view(_UNNAMED_FINDINGS)).replace(
    "{items_view}", _items_view(_UNNAMED_FINDINGS["code"]))
del _name, _columns


def _row_group_aligned(tables: Iterable[pa.Table], rows: int = ROW_GROUP_ROWS) -> Iterator[pa.Table]:
    """The tables' rows, in order, in tables whose every chunk but the last table's holds a
    multiple of `rows`: DuckDB fills row groups from each chunk apart, so these are inserted in
    full row groups. The rows left over from one table are joined to the first of the next (a
    copy of fewer than `rows` rows a table; a table in several chunks is joined into one)."""
    rest: pa.Table | None = None
    for table in tables:
        if not all(column.num_chunks <= 1 for column in table.columns):
            table = table.combine_chunks()
        head: list[pa.Table] = []
        if rest is not None:
            take = min(rows - rest.num_rows, table.num_rows)
            rest = pa.concat_tables([rest, table.slice(0, take)], promote_options="permissive").combine_chunks()
            table = table.slice(take)
            if rest.num_rows < rows:
                continue
            head, rest = [rest], None
        body = table.num_rows // rows * rows
        if body < table.num_rows:
            rest = table.slice(body)
        if head or body:
            yield pa.concat_tables([*head, table.slice(0, body)], promote_options="permissive")
    if rest is not None and rest.num_rows:
        yield rest


class Store:
    """An open DuckDB crawl store. Use as a context manager, or call close()."""

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = True) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.closed = False
        self._temp_tables = 0  # temporary tables made so far (their names are numbered: _pair_flows)
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
            # Streamed reads (scores' columns, the audit's links and flows): with DuckDB's default
            # 10 MB result buffer its threads wait for each batch to be taken; 128 MB lets them run
            # ahead of the conversion (a 20M-link read 3.2-3.6 -> 2.2-2.7 s).
            self.con.execute(f"SET streaming_buffer_size = '{_STREAM_BUFFER}'")
        except duckdb.Error:
            pass  # a DuckDB without the setting streams as before
        try:
            self._prepare_schema()
        except duckdb.Error as exc:
            self.con.close()
            raise StoreError(f"{self.path}: store cannot be used ({_first_line(exc)})") from None

    # -- lifecycle -----------------------------------------------------------------------------
    def _prepare_schema(self) -> None:
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "meta" in tables:
            row = _first(self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall())
            version = int(row[0]) if row and str(row[0]).strip().isdigit() else None
            if version is None:
                raise StoreError(f"{self.path} has no valid schema version: not a linkjuice store")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer linkjuice (schema {version}; this one reads {SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                # No migration exists yet from any older schema: refuse rather than guess.
                raise StoreError(
                    f"{self.path} was written by an older linkjuice (schema {version}; this one reads "
                    f"{SCHEMA_VERSION}) and cannot be migrated: crawl again into a new --db"
                )
            if not self.read_only:
                # Tables added by later stages (findings, imports...) appear on first writable open.
                self.con.execute(_DDL)
            self._scores_as_view()
            return
        if tables:
            raise StoreError(f"{self.path} is a DuckDB file but not a linkjuice store")
        if self.read_only:
            raise StoreError(f"{self.path} is empty: not a linkjuice store")
        self.con.execute(_DDL)
        self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    def _scores_as_view(self) -> None:
        """A store scored by an older version holds `scores` as a table with URLs: opened for
        writing, its rows move to page_scores and `scores` becomes the view; opened read-only, a
        temporary page_scores view reads it."""
        if _table_kind(self.con, "scores") != "BASE TABLE":
            return
        old = {r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'scores'").fetchall()}
        select = ", ".join(c if c in old else f"NULL AS {c}" for c in PAGE_SCORE_COLUMNS)
        if self.read_only:
            self.con.execute(f"CREATE TEMP VIEW page_scores AS SELECT {select} FROM scores")
            return
        with self.transaction():
            self.con.execute(f"INSERT INTO page_scores ({', '.join(PAGE_SCORE_COLUMNS)}) SELECT {select} FROM scores")
            self.con.execute("DROP TABLE scores")
            self.con.execute(_DDL)

    def close(self) -> None:
        self.con.close()
        self.closed = True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.close()
        except duckdb.Error as exc:
            if exc_type is None:  # an error already on its way says more than the failed close
                raise StoreError(f"cannot close {self.path}: {_first_line(exc)}") from None

    @contextmanager
    def transaction(self, con: duckdb.DuckDBPyConnection | None = None) -> Iterator[None]:
        """A transaction on the store's connection, or on `con` (a cursor of it, on another thread)."""
        con = self.con if con is None else con
        con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            raise
        try:
            con.execute("COMMIT")
        except duckdb.Error as exc:
            # Disk full, read-only file system: DuckDB rolls the transaction back and the data
            # committed before it is intact.
            raise StoreError(f"cannot write to {self.path}: {_first_line(exc)}") from None

    # -- metadata ------------------------------------------------------------------------------
    def set_meta(self, values: Mapping[str, Any], con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Set meta keys (values stored as JSON), through the store's connection or `con` (a
        cursor of it)."""
        try:
            for key, value in values.items():
                text = value if isinstance(value, str) else json.dumps(value)
                (self.con if con is None else con).execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, text])
        except duckdb.Error as exc:
            raise StoreError(f"cannot write to {self.path}: {_first_line(exc)}") from None

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
        links: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]] = (),
        redirects: Sequence[Mapping[str, Any]] = (),
        frontier: Sequence[Mapping[str, Any]] = (),
        sitemap_entries: Sequence[Mapping[str, Any]] = (),
        trap_urls: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Append one crawl batch atomically. Each table's rows are a sequence of mappings, or
        (the crawler's links) a mapping of column name to values."""
        with self.transaction():
            self._append("frontier", FRONTIER_COLUMNS, frontier)
            self._append("pages", PAGE_COLUMNS, pages)
            # position starts as dom_position; finalize marks the template links
            self._append("links", LINK_COLUMNS, links, copies={"position": "dom_position"})
            self._append("redirects", REDIRECT_COLUMNS, redirects)
            self._append("sitemap_entries", SITEMAP_COLUMNS, sitemap_entries)
            self._append("crawl_trap_urls", TRAP_COLUMNS, trap_urls)

    def _append(self, table: str, columns: Sequence[str],
                rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
                copies: Mapping[str, str] | None = None) -> None:
        """Insert rows; `copies` names more columns that start as a copy of one of `columns`."""
        if isinstance(rows, Mapping):
            # Columns: Arrow converts each list in one call (no dict per row). A missing column is NULL.
            size = max((len(v) for v in rows.values()), default=0)
            if size == 0:
                return
            batch = pa.table({c: rows[c] if c in rows else pa.nulls(size) for c in columns})  # noqa: F841
        else:
            if not rows:
                return
            batch = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])  # noqa: F841
        cols = ", ".join(columns)
        extra = "".join(f", {c}" for c in (copies or {}))
        sources = "".join(f", {src}" for src in (copies or {}).values())
        self.con.execute(f"INSERT INTO {table} ({cols}{extra}) SELECT {cols}{sources} FROM batch")

    def set_append_mode(self, on: bool) -> None:
        """Tune DuckDB for a crawl's stream of small batches (on), or back to its defaults (off).
        One thread: more only coordinate, on cores that fetch and parse. A checkpoint per 64 MB of
        log, not 16: each one compresses the tables' newest rows again, and replaying 10k pages'
        batches measured 300 -> 210 µs of CPU a page with the final checkpoint counted."""
        if on:
            self.con.execute("SET threads = 1")
            self.con.execute("SET checkpoint_threshold = '64MB'")
        else:
            self.con.execute("RESET threads")
            self.con.execute("RESET checkpoint_threshold")

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

    def iter_frontier(self, chunk: int = 100_000) -> Iterator[list[tuple[str, str]]]:
        """(url, found_via) of every frontier row in discovery order, in chunks (to replay the
        crawler-trap counters on resume)."""
        cur = self.con.execute("SELECT url, found_via FROM frontier ORDER BY seq")
        while rows := cur.fetchmany(chunk):
            yield [(r[0], r[1]) for r in rows]

    def iter_trap_urls(self, chunk: int = 100_000) -> Iterator[list[str]]:
        """Every URL refused as a crawler trap, in chunks."""
        cur = self.con.execute("SELECT url FROM crawl_trap_urls")
        while rows := cur.fetchmany(chunk):
            yield [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        q = (
            "SELECT (SELECT count(*) FROM pages), (SELECT count(*) FROM links), "
            "(SELECT count(*) FROM frontier), (SELECT count(*) FROM pages WHERE error IS NOT NULL "
            "OR status >= 400), (SELECT coalesce(max(seq), -1) FROM pages)"
        )
        pages, links, frontier, errors, max_seq = self.con.execute(q).fetchall()[0]
        return {"pages": pages, "links": links, "frontier": frontier, "errors": errors, "max_seq": max_seq}

    def sitemap_urls(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT DISTINCT url FROM sitemap_entries").fetchall()}

    # -- finalisation (after a crawl or import) ------------------------------------------------
    def finalize(self, *, template_share: float, template_min_pages: int) -> None:
        """Derive page ids, final URLs, indexability and link positions from the raw crawl data.

        Pages, then links, each in a transaction written out by a checkpoint: a 10M-page crawl's
        page updates held in memory beside the links' grouping ran out of DuckDB's memory. Every
        step recomputes from the raw columns, so a finalize cut short is redone by the next."""
        with self.transaction():
            # The stored link codes hold page ids and positions, made again at the end of finalize.
            self.con.execute("DELETE FROM meta WHERE key = 'link_codes'")
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
                UPDATE pages SET final_url = r.final_url, redirect_hops = r.hops FROM (
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
        self.con.execute("CHECKPOINT")
        # Template links: a content link (same target and anchor) found on most pages. Distinct
        # rows are grouped (DuckDB spills those to disk; a DISTINCT aggregate's state it cannot),
        # and grouped by 64-bit hashes: fixed-size rows, where three URL strings per content link
        # did not fit 768 MB at 10M pages (a false match needs two (target, anchor) hashes to
        # collide: ~1e-6 for 10M distinct pairs).
        n_sources = self.con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT source_url FROM links)"
        ).fetchall()[0][0]  # type: ignore[index]
        with self.transaction():
            # The crawl writes position = dom_position: only template links (and those that were,
            # in an earlier finalize) are updated.
            self.con.execute("UPDATE links SET position = dom_position WHERE position IS DISTINCT FROM dom_position")
            if n_sources >= template_min_pages:
                # A template repeats on more than share x sources pages, so it has more links
                # than that: only such (target, anchor) pairs have their linking pages counted.
                self.con.execute(
                    """
                    UPDATE links SET position = 'template' FROM (
                        SELECT th, ah FROM (
                            SELECT DISTINCT hash(l.target_url) AS th, hash(l.anchor) AS ah, hash(l.source_url)
                            FROM links l JOIN (
                                SELECT hash(target_url) AS th, hash(anchor) AS ah FROM links
                                WHERE dom_position = 'content' GROUP BY ALL HAVING count(*) > $share * $sources
                            ) c ON hash(l.target_url) = c.th AND hash(l.anchor) = c.ah
                            WHERE l.dom_position = 'content'
                        ) GROUP BY ALL HAVING count(*) > $share * $sources
                    ) t
                    WHERE links.dom_position = 'content' AND hash(links.target_url) = t.th
                      AND hash(links.anchor) = t.ah
                    """,
                    {"share": template_share, "sources": n_sources},
                )
        self.con.execute("CHECKPOINT")

    def page_id_of(self, url: str | None) -> int | None:
        """The page id of a stored URL (None: not stored)."""
        if url is None:
            return None
        rows = self.con.execute("SELECT page_id FROM pages WHERE url = ?", [url]).fetchall()
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def page_ids_of(self, urls: Sequence[str]) -> np.ndarray:
        """The page id of each URL, in their order (-1: not stored)."""
        found = dict(self.con.execute("SELECT url, page_id FROM pages WHERE url IN (SELECT unnest(?::VARCHAR[]))",
                                      [list(urls)]).fetchall())
        return np.array([-1 if found.get(u) is None else found[u] for u in urls], np.int64)

    def set_depths(self, page_ids: np.ndarray, depths: np.ndarray) -> None:
        """Store click depths (-1 = unreachable) computed by the graph stage."""
        depth_table = pa.table({"page_id": pa.array(page_ids, pa.int32()), "d": pa.array(depths, pa.int32())})  # noqa: F841
        with self.transaction():
            self.con.execute(
                "UPDATE pages SET depth = CASE WHEN t.d < 0 THEN NULL ELSE t.d END FROM depth_table t "
                "WHERE pages.page_id = t.page_id"
            )

    # -- reads for the graph stage -------------------------------------------------------------
    def last_scores(self, n: int) -> dict[str, np.ndarray] | None:
        """pagerank and juice of the last `score` run by page id (NaN where a page has none), or
        None when the store holds no scores: scoring again starts its iterations from them."""
        tbl = self._arrow("SELECT page_id, pagerank, juice FROM page_scores WHERE page_id >= 0 AND page_id < ?", [n])
        if tbl.num_rows == 0:
            return None
        ids = tbl.column("page_id").to_numpy()
        out = {}
        for name in ("pagerank", "juice"):
            values = np.full(n, np.nan)
            values[ids] = tbl.column(name).to_numpy(zero_copy_only=False)
            out[name] = values
        return out

    def ranked_pages(self) -> dict[str, np.ndarray]:
        """Per page, ordered by page_id: page_id and indexable, all that scoring reads of the pages
        (page_arrays' lookups of final and canonical pages took 3.6 s of a 10M-page score)."""
        tbl = self._page_ordered("SELECT page_id, coalesce(indexable, false) AS indexable FROM pages")
        return {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in tbl.column_names}

    def page_arrays(self, *, urls: bool = True) -> dict[str, np.ndarray]:
        """Per page, ordered by page_id: url (unless urls=False: a big site's URLs are costly as
        Python strings), status, indexable, is_html, indexability, final and canonical page ids."""
        # Only the pages whose final URL or canonical is another URL are looked up by URL (1.5%
        # of a shop's pages): joining every page's URL took 12 s at 3M pages.
        tbl = self._arrow(
            f"""
            WITH f AS (
                SELECT p.page_id, t.page_id AS final_id FROM pages p JOIN pages t ON t.url = p.final_url
                WHERE p.final_url <> p.url
            ), c AS (
                SELECT p.page_id, t.page_id AS canonical_id FROM pages p JOIN pages t ON t.url = p.canonical
                WHERE p.canonical <> p.url
            )
            SELECT p.page_id, {"p.url," if urls else ""} coalesce(p.status, -1) AS status,
                   coalesce(p.indexable, false) AS indexable,
                   coalesce(p.is_html, false) AS is_html, coalesce(p.nofollow, false) AS page_nofollow,
                   p.indexability,
                   coalesce(CASE WHEN p.final_url = p.url THEN p.page_id END, f.final_id, -1) AS final_id,
                   coalesce(CASE WHEN p.canonical = p.url THEN p.page_id END, c.canonical_id, -1) AS canonical_id,
                   coalesce(p.redirect_hops, 0) AS redirect_hops
            FROM pages p
            LEFT JOIN f ON f.page_id = p.page_id
            LEFT JOIN c ON c.page_id = p.page_id
            ORDER BY p.page_id
            """
        )
        out = {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in tbl.column_names
               if name != "indexability"}
        # A handful of distinct labels: one Python string each, not one per page.
        labels = tbl.column("indexability").combine_chunks().dictionary_encode()
        names = np.array(labels.dictionary.to_pylist() + [None], dtype=object)
        codes = pc.fill_null(labels.indices, len(names) - 1).to_numpy(zero_copy_only=False)
        out["indexability"] = names[codes]
        return out

    def redirect_arrays(self) -> dict[str, np.ndarray]:
        """Redirect hops between stored pages, as page ids."""
        tbl = self._arrow(
            "SELECT s.page_id AS src, t.page_id AS dst FROM redirects r "
            "JOIN pages s ON s.url = r.source_url JOIN pages t ON t.url = r.target_url"
        )
        return {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in tbl.column_names}

    def link_edges(self) -> dict[str, np.ndarray]:
        """Distinct page-to-page links as (src, dst) page ids: ids only, no strings, for graph walks."""
        tbl = self._arrow("SELECT src, dst FROM link_pairs WHERE dst >= 0 AND src <> dst")
        return {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in tbl.column_names}

    def link_groups(self, position_weights: Mapping[str, float], *, concurrent: bool = False) -> pa.Table:
        """One row per (source page, target URL), ordered by (src, dst): the position and anchor
        of the duplicate link with the highest position weight (the first on the page among
        equals, so both come from one link and every build gives the same), followed if any is.
        target_url only where the target is not a stored page (dst = -1). Self-links are left
        out. An Arrow table: anchors stay Arrow strings, not Python objects.
        concurrent: read through a connection of its own, for a call on another thread while
        this one uses the store (a DuckDB connection serves one thread at a time)."""
        query = self._link_groups_sql(position_weights) + " ORDER BY src, dst, target_url"
        if not concurrent:
            return self._arrow(query)
        with self.con.cursor() as con:
            return self._arrow(query, con=con)

    @staticmethod
    def _link_groups_sql(position_weights: Mapping[str, float], *, by_keys: bool = False) -> str:
        """link_groups' query. by_keys: the links of rows $lo <= rowid < $hi only, their pages
        found by URL hash in the temporary table _page_keys (see _stage_by_link_rows)."""
        # A link's rank: its weight's place among the weights (an unknown position weighs 0), then
        # its place on the page, in one BIGINT (2x faster to compare than a (weight, order) pair).
        levels = sorted({*position_weights.values(), 0.0})
        values = ", ".join(f"({_sql_literal(name)}, {levels.index(w)})" for name, w in position_weights.items())
        rank = f"coalesce(w.level, {levels.index(0.0)})::BIGINT * 4294967296 - coalesce(l.link_order, 0)"
        if by_keys:
            links = ("(SELECT *, hash(source_url) AS source_key, hash(target_url) AS target_key FROM links "
                     "WHERE rowid >= $lo AND rowid < $hi)")
            joins = "JOIN _page_keys s ON s.h = l.source_key LEFT JOIN _page_keys t ON t.h = l.target_key"
            target = "l.target_key"
        else:
            links, target = "links", "l.target_url"
            joins = "JOIN pages s ON s.url = l.source_url LEFT JOIN pages t ON t.url = l.target_url"
        return f"""
            WITH w(position, level) AS (VALUES {values})
            SELECT s.page_id AS src, coalesce(any_value(t.page_id), -1) AS dst,
                   any_value(l.target_url) FILTER (WHERE t.page_id IS NULL) AS target_url,
                   bool_and(l.nofollow) AS nofollow, bool_or(l.is_internal) AS is_internal,
                   count(*)::INTEGER AS n_links,
                   arg_max(l.position, {rank}) AS position,
                   arg_max(l.anchor, {rank}) AS anchor
            FROM {links} l
            {joins}
            LEFT JOIN w ON w.position = l.position
            WHERE l.source_url <> l.target_url
            GROUP BY s.page_id, {target}
            """

    def iter_page_topics(self, chunk: int = 200_000) -> Iterator[tuple[list[str], list[str], list[str]]]:
        """Per page in page_id order, in chunks: (urls, titles, h1s), what anchors are matched against."""
        relation = self.con.sql(
            "SELECT url, coalesce(title, '') AS title, coalesce(h1, '') AS h1 FROM pages ORDER BY page_id")
        reader = (getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch)(chunk)
        for batch in reader:
            yield (batch.column(0).to_pylist(), batch.column(1).to_pylist(), batch.column(2).to_pylist())

    def stage_link_groups(self, position_weights: Mapping[str, float], chunk_rows: int) -> list[tuple[int, int]]:
        """Write link_groups' rows to the work table _link_groups (DuckDB groups and spills them
        within its memory limit) and return source page-id ranges [lo, hi) of at least chunk_rows
        rows each, to read back one at a time with link_group_chunk.

        A crawl's store is grouped a slice of links at a time (_stage_by_link_rows), so the table
        comes nearly in source order and a chunk read skips most of it; otherwise in one query,
        whose table is in the grouping's order, so that each chunk read scans all of it: the ranges
        are made larger on a big store, at most _MAX_GROUP_SCANS of them (at 10M pages, 207
        scans of 207M rows took over an hour; sorting the table instead spilled over 36 GB)."""
        if not self._stage_by_link_rows(position_weights):
            query = self._link_groups_sql(position_weights)
            self.con.execute(f"CREATE OR REPLACE TABLE _link_groups AS {query}")
        counts = self._arrow("SELECT src, count(*) AS n FROM _link_groups GROUP BY src ORDER BY src")
        src = counts.column("src").to_numpy()
        total = np.cumsum(counts.column("n").to_numpy())
        if not len(src):
            return []
        chunk_rows = max(chunk_rows, -(-int(total[-1]) // _MAX_GROUP_SCANS))
        cuts = np.searchsorted(total, np.arange(chunk_rows, int(total[-1]), chunk_rows), side="left")
        bounds = [int(src[0])] + [int(src[c]) + 1 for c in np.unique(cuts) if c < len(src) - 1] + [int(src[-1]) + 1]
        return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]

    def _stage_by_link_rows(self, position_weights: Mapping[str, float]) -> bool:
        """Group a crawl's links into _link_groups a slice of _GROUP_SLICE_LINKS rows at a time,
        each slice sorted by source, its pages found by 64-bit URL hash: at 10M pages, one
        grouping of 207M links joined to their pages by URL string spilled 31 GB and ran for
        over 16 minutes. False (nothing staged) unless the crawl wrote each page's links together
        (meta links_by_source: a slice must not split a page's links; slices end where the
        source changes) and every page's URL hash is unique (then also for a link's target but
        with odds of ~1e-5 at 10M pages: a target URL not stored that shares a page's hash)."""
        if not self.meta().get("links_by_source"):
            return False
        self.con.execute("CREATE OR REPLACE TEMP TABLE _page_keys AS SELECT hash(url) AS h, page_id FROM pages")
        try:
            if not self._hashes_distinct("_page_keys", "h"):
                return False
            end = int(self.con.execute("SELECT coalesce(max(rowid) + 1, 0) FROM links").fetchall()[0][0])
            bounds = [0]
            for cut in range(_GROUP_SLICE_LINKS, end, _GROUP_SLICE_LINKS):
                # The first row at or after the cut whose source is not the previous row's.
                row = self.con.execute(
                    "SELECT min(rowid) FROM links WHERE rowid >= $cut AND rowid < $cut + $span "
                    "AND source_url IS DISTINCT FROM (SELECT source_url FROM links WHERE rowid = $cut - 1)",
                    {"cut": cut, "span": _MAX_PAGE_LINKS + 1}).fetchall()[0][0]
                if row is None:
                    if cut + _MAX_PAGE_LINKS + 1 >= end:
                        break  # the rows left are the last page's
                    return False  # a page with more links than a crawl stores: not a crawl's links
                if row > bounds[-1]:
                    bounds.append(int(row))
            bounds.append(end)
            query = self._link_groups_sql(position_weights, by_keys=True) + " ORDER BY src, dst, target_url"
            self.con.execute(f"CREATE OR REPLACE TABLE _link_groups AS {query}", {"lo": 0, "hi": 0})
            for lo, hi in zip(bounds, bounds[1:]):
                self.con.execute(f"INSERT INTO _link_groups {query}", {"lo": lo, "hi": hi})
        finally:
            self.con.execute("DROP TABLE IF EXISTS _page_keys")
        return True

    def link_group_chunk(self, lo: int, hi: int) -> pa.Table:
        """The staged link groups of source pages lo <= src < hi, in (src, dst, target URL) order."""
        return self._arrow("SELECT * FROM _link_groups WHERE src >= ? AND src < ? ORDER BY src, dst, target_url",
                           [lo, hi])

    def replace_link_pairs(self, chunks: Iterable[pa.Table], meta: Mapping[str, Any]) -> int:
        """Replace link_pairs with the chunks (columns as in the table) and record how it was
        built; drops the work table. Returns the rows written."""
        rows = 0
        # One transaction per chunk: DuckDB holds a transaction's rows in memory until it
        # commits. Until the last one, meta says link_pairs is not built (it is rebuilt on use).
        with self.transaction():
            self.con.execute("DELETE FROM meta WHERE key = 'link_pairs'")
            self.con.execute("DELETE FROM link_pairs")
            self.con.execute("DELETE FROM pair_relevance")
        # Each chunk is inserted on a thread, through a connection of its own (DuckDB releases the
        # GIL), while the caller computes the next one.
        with self.con.cursor() as writer, ThreadPoolExecutor(1, thread_name_prefix="linkjuice-pairs") as pool:
            inserting: Future[int] | None = None
            for chunk in chunks:
                if inserting is not None:
                    rows += inserting.result()
                inserting = pool.submit(self._insert_pairs, writer, chunk)
            if inserting is not None:
                rows += inserting.result()
        self.set_meta({"link_pairs": dict(meta)})
        self.con.execute("DROP TABLE IF EXISTS _link_groups")
        return rows

    def _insert_pairs(self, con: duckdb.DuckDBPyConnection, chunk: pa.Table) -> int:
        """Append link_pairs rows in a transaction of their own on `con`."""
        with self.transaction(con):
            self._insert_arrow(con, "link_pairs", chunk)
        return chunk.num_rows

    def memory_limit(self, limit: str) -> AbstractContextManager[None]:
        """Cap DuckDB's memory (buffer pool, sorts, joins spill to disk beyond it) for a while.

        DuckDB keeps the blocks it writes cached up to its limit, 80% of RAM by default, so a
        crawl's RSS grew with the store (~4 KB a page); written blocks are on disk and evicting
        them costs nothing."""
        return self.setting("memory_limit", limit)

    def release_memory(self) -> None:
        """Hand the blocks DuckDB keeps cached back to the system. It holds them up to its limit
        after a query (1.1 GB of 2.1 GB RSS after the audit's page read at 3M pages); lowering the
        limit for a moment evicts them (they are on disk)."""
        self.set_setting("memory_limit", self.set_setting("memory_limit", _RELEASE_MEMORY))

    def set_memory_limit(self, limit: str) -> str:
        """Set DuckDB's memory limit (see memory_limit); returns the one it replaces."""
        return self.set_setting("memory_limit", limit)

    @contextmanager
    def setting(self, name: str, value: str) -> Iterator[None]:
        """A DuckDB setting changed for a while, then put back as it was."""
        previous = self.set_setting(name, value)
        try:
            yield
        finally:
            self.set_setting(name, previous)

    def set_setting(self, name: str, value: str) -> str:
        """Set a DuckDB setting; returns the value it replaces (as text, which SET takes back)."""
        previous = str(self.con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0])
        self.con.execute(f"SET {name} = {_sql_literal(value)}")
        return previous

    def link_pairs_state(self) -> dict[str, Any] | None:
        """How link_pairs was built (None: never, or by a version without it, or cleared); its
        relevance key is None unless pair_relevance holds a value for every pair (a store whose
        relevance an earlier version kept in link_pairs computes it once more)."""
        state = self.meta().get("link_pairs")
        if not isinstance(state, dict):
            return None
        has_pairs = bool(self.con.execute("SELECT EXISTS (SELECT 1 FROM link_pairs)").fetchall()[0][0])
        has_links = bool(self.con.execute("SELECT EXISTS (SELECT 1 FROM links)").fetchall()[0][0])
        if not has_pairs and has_links:
            return None
        if state.get("relevance") is not None and not self._relevance_complete():
            state = {**state, "relevance": None}
        return state

    def _relevance_complete(self) -> bool:
        """pair_relevance holds one value per link pair (it is absent from a store of an earlier
        version opened read-only)."""
        if not self.con.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'main' "
                                "AND table_name = 'pair_relevance'").fetchall():
            return False
        pairs, cached = self.con.execute("SELECT (SELECT count(*) FROM link_pairs), "
                                         "(SELECT count(*) FROM pair_relevance)").fetchall()[0]
        return bool(pairs == cached)

    def pair_count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM link_pairs").fetchall()[0][0])

    def pair_column(self, name: str) -> np.ndarray:
        """One column of link_pairs, in table order (read one at a time: memory stays near one
        column of a big site's links)."""
        if name not in self._columns("link_pairs"):
            raise StoreError(f"link_pairs has no column {name!r}")
        return self._column(f"SELECT {_sql_ident(name)} FROM link_pairs", self.pair_count())

    def _column(self, query: str, rows: int) -> np.ndarray:
        """The one column of `query` (`rows` long) as a numpy array, filled a batch at a time.
        Read as one Arrow table it would be held twice (DuckDB's ~1,700 batches of a 200M-row
        column, and their concatenation) until DuckDB's allocator returns them, seconds later;
        a batch at a time, DuckDB reuses each batch's memory for the next."""
        out = None
        lo = 0
        for batch in self.con.sql(query).to_arrow_reader(_READ_BATCH):
            column = batch.column(0)
            if column.null_count or lo + batch.num_rows > rows:  # NULLs (or a changed table): whole
                return self._arrow(query).column(0).to_numpy(zero_copy_only=False)
            values = column.to_numpy(zero_copy_only=False)
            if out is None:
                out = np.empty(rows, values.dtype)
            out[lo:lo + len(values)] = values
            lo += len(values)
        if out is None or lo != rows:
            return self._arrow(query).column(0).to_numpy(zero_copy_only=False)
        return out

    def pair_position_factor(self, position_weights: Mapping[str, float],
                             default_weights: Mapping[str, float]) -> np.ndarray:
        """Each pair's position factor (its position's weight; a position without one weighs as
        in default_weights, else 1), computed here, in link_pairs order."""
        return self._column(f"SELECT {_position_weight_sql('position', {**default_weights, **position_weights})} "
                            "FROM link_pairs", self.pair_count())

    def pair_weights(self, *, position_weights: Mapping[str, float], relevance_weight: float, use_relevance: bool,
                     anchor_empty: float, anchor_generic: float, anchor_descriptive: float,
                     use_anchor: bool) -> np.ndarray:
        """Each pair's weight, position x relevance x anchor factor, in link_pairs order with the
        arithmetic of the link_flows view (and of pipeline.link_flows, in the same order). DuckDB
        forms the position and anchor factors a batch at a time (a scan on all threads; joined
        positionally to pair_relevance the query runs on one) and the product is formed here, in
        one link-sized array: no column of a big site's links is held twice."""
        factors, weigh, _ = self._pair_weighing(
            position_weights=position_weights, relevance_weight=relevance_weight, use_relevance=use_relevance,
            anchor_empty=anchor_empty, anchor_generic=anchor_generic, anchor_descriptive=anchor_descriptive,
            use_anchor=use_anchor)
        n = self.pair_count()
        weight = np.empty(n)
        reader = self.con.sql(f"SELECT {factors} FROM link_pairs p").to_arrow_reader(_READ_BATCH)
        lo = 0
        for batch in reader:
            weigh(batch, lo, out=weight[lo:lo + batch.num_rows])
            lo += batch.num_rows
        if lo != n:
            raise StoreError(f"link_pairs changed while it was read ({lo} of {n} rows)")
        return weight

    def _pair_weighing(self, *, position_weights: Mapping[str, float], relevance_weight: float,
                       use_relevance: bool, anchor_empty: float, anchor_generic: float, anchor_descriptive: float,
                       use_anchor: bool, kernels: ModuleType | None = None
                       ) -> tuple[str, Callable[..., np.ndarray], Callable[..., np.ndarray]]:
        """pair_weights in parts: the SQL of the position and anchor factors over link_pairs `p`
        (columns _pf and _af), weigh(batch, lo, out): the weights of a batch of those columns
        that starts at link_pairs' row lo, written to `out` (the cached cosines are read once), and
        juice(batch, lo, page_juice, out_weight): the juice of each of its pairs (a column src
        too), page_juice[src] x weight / out_weight[src], 0 where out_weight[src] is not above 0
        (with the numba `kernels` in one pass: _kernels.pair_juice)."""
        a = float(relevance_weight)
        anchor = _anchor_factor_sql(anchor_empty=anchor_empty, anchor_generic=anchor_generic,
                                    anchor_descriptive=anchor_descriptive, use_anchor=use_anchor)
        cosine = self.pair_relevance() if use_relevance else None

        def weigh(batch: pa.RecordBatch, lo: int, out: np.ndarray) -> np.ndarray:
            out[:] = batch.column("_pf").to_numpy(zero_copy_only=False)
            if cosine is None:  # the view's cosine is 0.0 when relevance is off
                out *= (1.0 - a) + a * 0.0
            else:
                out *= (1.0 - a) + a * cosine[lo:lo + batch.num_rows].astype(np.float64)
            out *= batch.column("_af").to_numpy(zero_copy_only=False)
            return out

        def juice(batch: pa.RecordBatch, lo: int, page_juice: np.ndarray, out_weight: np.ndarray) -> np.ndarray:
            src = batch.column("src").to_numpy()
            if cosine is not None and len(cosine) < lo + batch.num_rows:  # (the kernel reads it unchecked)
                raise StoreError(f"{self.path}: the cached relevance has fewer rows than link_pairs: "
                                 f"run 'linkjuice score --db {self.path}' first")
            if kernels is not None:
                return kernels.pair_juice(src, batch.column("_pf").to_numpy(zero_copy_only=False),
                                          batch.column("_af").to_numpy(zero_copy_only=False),
                                          cosine if cosine is not None else np.zeros(0, np.float32), lo, a,
                                          page_juice, out_weight)
            total = out_weight[src]
            share = np.divide(weigh(batch, lo, out=np.empty(batch.num_rows)), total, out=np.zeros(len(src)),
                              where=total > 0)
            return page_juice[src] * share

        return f"{_position_weight_sql('p.position', position_weights)} AS _pf, {anchor} AS _af", weigh, juice

    def pair_relevance(self) -> np.ndarray:
        """The cached cosine of every link pair (float32, in link_pairs order)."""
        return self._column("SELECT relevance FROM pair_relevance", self.pair_count())

    def pair_labels(self) -> dict[str, np.ndarray]:
        """link_pairs' target URL (the page's URL, or the stored one when not a page), position and
        anchor, in table order: strings, for what-ifs and engines on sites that fit in memory."""
        tbl = self._arrow(
            "SELECT coalesce(t.url, p.target_url) AS target_url, p.position, p.anchor "
            "FROM link_pairs p LEFT JOIN pages t ON t.page_id = p.dst ORDER BY p.src, p.dst, p.target_url"
        )
        return {name: tbl.column(name).to_numpy(zero_copy_only=False) for name in ("target_url", "position", "anchor")}

    def set_pair_relevance(self, relevance: np.ndarray, key: str) -> None:
        """Cache each pair's relevance (in link_pairs order) for the engine `key`, in pair_relevance
        (float32: the cosines come from float32 vectors). The table is created anew: a stored table
        spills to disk within DuckDB's memory limit, where an updated one would be held in memory."""
        if len(relevance) != self.con.execute("SELECT count(*) FROM link_pairs").fetchall()[0][0]:
            raise StoreError("set_pair_relevance: one value per link pair is needed")
        rel = pa.table({"relevance": pa.array(np.asarray(relevance, np.float32))})
        with self.memory_limit(EXPORT_MEMORY), self.transaction():
            self.con.register("relevance_in", rel)
            try:
                self.con.execute("CREATE OR REPLACE TABLE pair_relevance AS SELECT relevance FROM relevance_in")
            finally:
                self.con.unregister("relevance_in")
            state = self.meta().get("link_pairs") or {}
            self.set_meta({"link_pairs": {**state, "relevance": key}})

    def _columns(self, table: str) -> list[str]:
        return [r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall()]

    def _arrow(self, query: str, params: Sequence[Any] | None = None, *,
               con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
        relation = (self.con if con is None else con).sql(query, params=list(params) if params else None)
        # DuckDB 2 renamed arrow() to to_arrow_table().
        return (getattr(relation, "to_arrow_table", None) or relation.arrow)()

    def write_scores(self, scores: pa.Table, section_flows: pa.Table | pd.DataFrame, *, section_depth: int,
                     flows_view: str, flows_scan: str | None = None, reasons: Sequence[str] = ()) -> None:
        """Replace the model's outputs in one transaction: page scores (numbers per page_id, and
        the section, from the URL unless given; the `scores` view adds URLs), the section flow
        matrix, and the link_flows view (`flows_view`: its SELECT, from flows_view_sql; `flows_scan`:
        its rows for the link_flows dataset, flows_view_sql(scan=True) with `reasons`). Sections may come as
        Arrow dictionary columns (codes into a few labels): no string per row is built."""
        cols = [c for c in scores.column_names if c not in ("page_id", "section")]
        given = "section" in scores.column_names
        section = "t.section" if given else _section_sql("p.url", section_depth)
        with self.transaction():
            self.con.execute("DELETE FROM page_scores")
            self.con.register("scores_in", scores)
            try:
                self.con.execute(
                    f"INSERT INTO page_scores (page_id, {', '.join(cols)}, section) "
                    f"SELECT t.page_id, {', '.join('t.' + c for c in cols)}, {section} FROM scores_in t "
                    + ("" if given else "JOIN pages p ON p.page_id = t.page_id ") + "ORDER BY t.page_id")
            finally:
                self.con.unregister("scores_in")
            self.con.execute("DELETE FROM section_flows")
            self.con.register("sections_in", section_flows)
            try:
                cols_s = ", ".join(section_flows.column_names if isinstance(section_flows, pa.Table)
                                   else section_flows.columns)
                self.con.execute(f"INSERT INTO section_flows ({cols_s}) SELECT {cols_s} FROM sections_in")
            finally:
                self.con.unregister("sections_in")
            if _table_kind(self.con, "link_flows") == "BASE TABLE":
                self.con.execute("DROP TABLE link_flows")
            pairs = self.pair_count()
            # The SELECTs are kept for the link_flows dataset (_flows_dataset), and the view
            # carries a mark of them (its outer subquery's alias, which DuckDB keeps as written),
            # to know the view is still the one made with them.
            mark = "lj_flows_" + hashlib.sha256(f"{flows_view}\n{flows_scan}\n{list(reasons)}\n{pairs}".encode()
                                                ).hexdigest()[:16]
            self.con.execute("CREATE OR REPLACE VIEW link_flows AS "
                             + flows_view.replace(PAIRS_WITH_RELEVANCE, pairs_with_relevance_sql(pairs)) + f" AS {mark}")
            self.set_meta({"link_flows_view": {"select": flows_view, "scan": flows_scan, "reasons": list(reasons),
                                               "pairs": pairs, "mark": mark}})
            # Stores scored by older versions carry a per-link copy of the juice, and relevance in
            # link_pairs (now in pair_relevance; the view just replaced no longer reads it): no longer kept.
            self.con.execute("ALTER TABLE links DROP COLUMN IF EXISTS juice")
            self.con.execute("ALTER TABLE link_pairs DROP COLUMN IF EXISTS relevance")

    def page_sections(self, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Each page's section (first `depth` path segments), as codes in page_id order and labels."""
        tbl = self._page_ordered(f"SELECT page_id, {_section_sql('url', depth)} AS section FROM pages")
        encoded = tbl.column("section").combine_chunks().dictionary_encode()
        return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32),
                np.asarray(encoded.dictionary.to_pylist(), dtype=object))

    def page_texts(self) -> pd.DataFrame:
        """Per page (ordered by page_id): the text the relevance and anchor factors read. Through
        Arrow: the same frame (Arrow-backed strings) in a quarter of the CPU time of .df()."""
        return self._page_ordered(
            "SELECT page_id, url, coalesce(title, '') AS title, coalesce(h1, '') AS h1, "
            "coalesce(headings, '') AS headings, coalesce(main_text, '') AS main_text FROM pages"
        ).to_pandas()

    def _page_ordered(self, query: str) -> pa.Table:
        """`query`'s rows (with a page_id column) in page_id order. Put in order here, and only
        when they come out of it: DuckDB's ORDER BY sorts the texts or URLs with their ids, and
        within a score's memory limit it spills (10M pages' texts: 2.8 s, 0.6 s read as stored)."""
        tbl = self._arrow(query)
        ids = tbl.column("page_id").to_numpy()
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            tbl = tbl.take(pc.sort_indices(tbl.column("page_id")))
        return tbl

    def link_flows_frame(self, *, source: str | None = None, resolved: str | None = None,
                         limit: int | None = None, reason: str | None = None,
                         order_by: str = "juice") -> pd.DataFrame:
        """The link_flows rows from the page `source`, or arriving at the page `resolved` (only
        those of `reason` when given), the most juice (or `order_by`: "delivered") first. A
        page is matched by its id where the view has them: filtered by URL, DuckDB joined every
        pair to its pages first (2.6 s for one page of a 1M-page store, 0.6 s by id)."""
        if order_by not in ("juice", "delivered"):
            raise StoreError(f"cannot order flows by {order_by!r}")
        page_id = self.page_id_of(resolved) if resolved is not None and source is None and limit is not None \
            and self._flows_have_ids() else None
        if page_id is not None:
            # A page's strongest sources, from the strongest source pages first (_strongest_pairs):
            # the home page of a 10M-page site has 9.85M, whose 20 strongest took 14 s and 10 GB.
            near = self._strongest_pairs(pa.table({"id": pa.array([page_id], pa.int64())}), limit, by=order_by,
                                           reason=reason)
            with self._registered("lj_in_pairs", near), \
                    self._pair_flows("(src, dst) IN (SELECT src, dst FROM lj_in_pairs)") as flows:
                return self.con.execute(
                    f"SELECT * FROM ({flows}) WHERE resolved_id = ?" + (" AND reason = ?" if reason is not None else "")
                    + f" ORDER BY {order_by} DESC NULLS LAST, source_url, target_url LIMIT {int(limit)}",
                    [page_id, *([reason] if reason is not None else [])]).df()
        where, params = self._page_flows_where(source=source, resolved=resolved)
        if reason is not None:
            where.append("reason = ?")
            params.append(reason)
        sql = "SELECT * FROM link_flows" + (f" WHERE {' AND '.join(where)}" if where else "")
        # (equal juice: the same order each time)
        sql += f" ORDER BY {order_by} DESC NULLS LAST, source_url, target_url"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.con.execute(sql, params).df()

    def _page_flows_where(self, *, source: str | None = None, resolved: str | None = None
                          ) -> tuple[list[str], list[Any]]:
        by_id = self._flows_have_ids()
        where: list[str] = []
        params: list[Any] = []
        for column, url in (("source", source), ("resolved", resolved)):
            if url is None:
                continue
            page_id = self.page_id_of(url) if by_id else None
            where.append(f"{column}_id = ?" if page_id is not None else f"{column}_url = ?")
            params.append(page_id if page_id is not None else url)
        return where, params

    def page_flow_totals(self, url: str) -> dict[str, float | int]:
        """What a page's flows add up to, without reading them (a hub of a big site has millions):
        from_links (the juice its passing inflows deliver) and sources (their number), sent (the
        juice its links carry), lost (of which not passed on) and sends (their number)."""
        scanned = self._flow_totals_by_scan(url)
        if scanned is not None:
            return scanned
        into, into_params = self._page_flows_where(resolved=url)
        out, out_params = self._page_flows_where(source=url)
        from_links, sources = self.con.execute(
            f"SELECT coalesce(sum(delivered), 0.0), count(*) FROM link_flows WHERE {into[0]} AND reason = 'passed'",
            into_params).fetchall()[0]
        sent, lost, sends = self.con.execute(
            f"SELECT coalesce(sum(juice), 0.0), coalesce(sum(juice) FILTER (WHERE reason <> 'passed'), 0.0), count(*) "
            f"FROM link_flows WHERE {out[0]}", out_params).fetchall()[0]
        return {"from_links": float(from_links), "sources": int(sources), "sent": float(sent), "lost": float(lost),
                "sends": int(sends)}

    def _flow_totals_by_scan(self, url: str) -> dict[str, float | int] | None:
        """page_flow_totals from one read of every pair through the view's scan (its rows without
        the pages' URLs, the link_flows dataset's: _flows_dataset), for a store whose view this
        version made; else None. Through the view, each of a hub's pairs was joined to its pages'
        URLs (the home page of a 10M-page store, 9.85M sources: 11.3 s; so too copied aside by
        _pair_flows); scanned, 4 s."""
        made = self._current_flows_view()
        reasons = [str(r) for r in (made or {}).get("reasons") or ()]
        page_id = self.page_id_of(url) if made and made.get("scan") and "passed" in reasons else None
        if page_id is None:
            return None
        scan = str(made["scan"]).replace(PAIRS_WITH_RELEVANCE,  # type: ignore[index]
                                         pairs_with_relevance_sql(int(made["pairs"]), positional=True))  # type: ignore[index]
        passed = reasons.index("passed")  # (the scan's reason is its code in `reasons`)
        into, out = f"resolved_id = $id AND reason = {passed}", "source_id = $id"
        # (a pair whose source is no page is none of the view's rows: complete_flows)
        from_links, sources, sent, lost, sends = self.con.execute(
            f"SELECT coalesce(sum(delivered) FILTER (WHERE {into}), 0.0), count(*) FILTER (WHERE {into}), "
            f"coalesce(sum(juice) FILTER (WHERE {out}), 0.0), "
            f"coalesce(sum(juice) FILTER (WHERE {out} AND reason <> {passed}), 0.0), count(*) FILTER (WHERE {out}) "
            f"FROM ({scan}) WHERE (resolved_id = $id OR source_id = $id) AND source_id IN (SELECT page_id FROM pages)",
            {"id": page_id}).fetchone()  # type: ignore[misc]
        return {"from_links": float(from_links), "sources": int(sources), "sent": float(sent), "lost": float(lost),
                "sends": int(sends)}

    def section_flows_frame(self, *, section: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """The largest section flows first (ties by name, so that a limit cuts the same rows each time).
        attrs: `flows` and `juice`, the count and sum of every matching flow; `total_juice`, of all flows."""
        match, params = ("from_section = ? OR to_section = ?", [section, section]) if section is not None else ("true", [])
        flows, juice, total = self.con.execute(
            f"SELECT count(*) FILTER (WHERE {match}), coalesce(sum(juice) FILTER (WHERE {match}), 0), "
            "coalesce(sum(juice), 0) FROM section_flows", params * 2).fetchone()
        sql = f"SELECT * FROM section_flows WHERE {match} ORDER BY juice DESC, from_section, to_section"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        frame = self.con.execute(sql, params).df()
        frame.attrs.update(flows=int(flows), juice=float(juice), total_juice=float(total))
        return frame

    def section_names(self) -> list[str]:
        """Every section that sends or receives juice, the most juice first; not the "(lost: ...)" and
        "(other sections)" rows, which are not sections."""
        return [row[0] for row in self.con.execute(
            "SELECT name FROM (SELECT from_section AS name, juice FROM section_flows UNION ALL "
            "SELECT to_section, juice FROM section_flows) WHERE NOT starts_with(name, '(') "
            "GROUP BY name ORDER BY sum(juice) DESC, name").fetchall()]

    def score_row(self, url: str) -> dict[str, Any] | None:
        frame = self._query_view("SELECT * FROM pages_view WHERE url = ?", [url])
        return None if frame.empty else frame.iloc[0].to_dict()

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
            "s.inlinks, s.outlinks, s.pagerank, s.juice, s.juice_score, s.teleport, s.backlink_share, "
            "s.section, p.crawled_at "
            "FROM pages p LEFT JOIN page_scores s USING (page_id)) "
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
            "FROM pages p LEFT JOIN page_scores s USING (page_id) ORDER BY s.juice DESC NULLS LAST, p.url)",
            # In the order the crawl stored them (each page's links together, in page order): a
            # sort of every link costs 4-7x the export itself on a big store.
            "links": "(SELECT source_url, target_url, anchor, rel, nofollow, position, dom_position, "
            "link_order, is_internal, found_in FROM links)",
            "redirects": "(SELECT * FROM redirects)",
            "sitemap_entries": "(SELECT * FROM sitemap_entries)",
            "findings": "(SELECT * FROM findings ORDER BY finding_id)",
            "finding_items": "(SELECT * FROM finding_items ORDER BY finding_id, source_url, link_order)",
            "juice_flow": "(SELECT * FROM juice_flow ORDER BY dimension, juice DESC)",
        }.get(table)
        if source is None:
            raise StoreError(f"unknown table {table!r}")
        options = {"csv": "FORMAT CSV, HEADER", "json": "FORMAT JSON", "parquet": "FORMAT PARQUET"}[fmt]
        target = str(path).replace("'", "''")
        # Parquet is read by engines that do not rely on row order: a table without ORDER BY
        # (links) is written on every core as it comes, each page's links together within a row
        # group (10M pages: 64-67 -> 45-48 s); CSV and JSON keep the stored order.
        order = "false" if fmt == "parquet" else "true"
        if table == "findings" and self._stored_in_order("findings", "finding_id"):
            # Stored in priority order (write_audit_tables): written as stored, in every format,
            # where a sort of every finding with its texts took 50-65 s at 10M pages.
            source, order = "(SELECT * FROM findings)", "true"
        memory = EXPORT_MEMORY
        if table == "finding_items" and _table_kind(self.con, "finding_items") == "VIEW":
            memory = items_export_memory(int(self.con.execute("SELECT count(*) FROM audit_urls").fetchall()[0][0]))
        try:
            # The sort spills to disk beyond the memory limit.
            with self.memory_limit(memory), self.setting("preserve_insertion_order", order):
                written = self.con.execute(f"COPY {source} TO '{target}' ({options})").fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"cannot write {path}: {_first_line(exc)}") from None
        return int(written[0][0])  # COPY answers with the rows it wrote

    def _stored_in_order(self, table: str, column: str) -> bool:
        """Whether `table` is stored with `column` strictly increasing (the order a scan returns
        its rows in while DuckDB preserves insertion order): one integer column read."""
        with self.setting("preserve_insertion_order", "true"):
            values = self._arrow(f"SELECT {column} FROM {table}").column(0)
        ids = values.to_numpy() if values.null_count == 0 else None
        return ids is not None and bool((ids[1:] > ids[:-1]).all())

    # -- Parquet datasets (linkjuice.engines.parquet; the schema is in docs/scaling.md) ----------
    # The links dataset names its pages by id, as link_flows does: a URL only where the link's end
    # is no stored page (external targets, mostly). Two URLs a row were 40% of the write and of
    # the files (1M pages: 9.4-9.7 s and 196 MB; by ids 5.4-5.5 s and 120 MB).
    _LINK_DATASET_COLUMNS = (
        "s.page_id AS source_id, CASE WHEN s.page_id IS NULL THEN l.source_url END AS source_url, "
        "t.page_id AS target_id, CASE WHEN t.page_id IS NULL THEN l.target_url END AS target_url, "
        "l.anchor, l.rel, l.nofollow, l.position, l.dom_position, l.link_order, l.is_internal")
    _DATASETS = {
        "pages": "SELECT p.page_id, p.url, p.final_url, p.status, p.content_type, p.bytes, p.response_time_ms, "
        "p.depth, p.found_via, p.in_sitemap, p.indexable, p.indexability, p.title, p.h1, p.meta_robots, "
        "p.x_robots_tag, p.canonical, p.lang, p.word_count, p.redirect_to, p.error, p.blocked_by_robots, "
        "p.is_html, p.noindex, p.nofollow, p.crawled_at, s.inlinks, s.outlinks, s.pagerank, s.juice, "
        "s.juice_score, s.teleport, s.backlink_share, s.section "
        "FROM pages p LEFT JOIN page_scores s USING (page_id) ORDER BY p.page_id, p.url",
        "links": f"SELECT {_LINK_DATASET_COLUMNS} FROM links l "
        "LEFT JOIN pages s ON s.url = l.source_url LEFT JOIN pages t ON t.url = l.target_url",
        # (in no fixed order: written by all threads, export_dataset; a target URL only for a
        # target that is no stored page, as the scan of _flows_dataset gives it)
        "link_flows": "SELECT " + ", ".join(
            "CASE WHEN target_id IS NULL OR target_id < 0 THEN target_url END AS target_url" if c == "target_url"
            else c for c in DATASET_FLOW_COLUMNS) + " FROM link_flows",
        "scores": "SELECT * FROM scores ORDER BY page_id",
    }

    # The links dataset with each URL's page id found by the URL's 64-bit hash, as finalize finds
    # it (used when the pages' hashes are distinct): joined by the strings, and sorted, the
    # dataset of a 10M-page store spilled past 20 GB of temporary files and never finished; by
    # hash, in stored order (the crawl's: by source page id, each page's links in link order)
    # it takes 44 s within 1.7 GB (with the Parquet writer: _write_parquet_parts).
    _LINKS_BY_HASH = (
        f"WITH ids AS (SELECT hash(url) AS h, page_id FROM pages) SELECT {_LINK_DATASET_COLUMNS} FROM links l "
        "LEFT JOIN ids s ON s.h = hash(l.source_url) LEFT JOIN ids t ON t.h = hash(l.target_url)")

    def export_dataset(self, name: str, directory: str | Path, *, rows_per_file: int, row_group_rows: int) -> int:
        """Write one table as a Parquet dataset: `directory`/part-N.parquet, each of `rows_per_file`
        rows (the last one the rest) in row groups of `row_group_rows`. Replaces what was there."""
        query = self._DATASETS.get(name)
        if query is None:
            raise StoreError(f"unknown dataset {name!r}")
        if name == "links" and self._hashes_distinct("pages", "hash(url)"):
            query = self._LINKS_BY_HASH
        memory, settings = EXPORT_MEMORY, {"preserve_insertion_order": "true"}
        transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None
        if name == "link_flows":
            # Each slice's pairs beside their relevance positionally (no hash table of the
            # relevance: the view's, one per slice, ran out of 1.7 GB at 3M pages), without the
            # pages' URLs; else the view itself (a store scored by another version). DuckDB
            # estimates positional joins at 0 rows and would build its hash tables on the pairs
            # (an earlier version's view spilled past 20 GB at 10M pages): the query runs in its
            # written join order.
            query, transform = self._flows_dataset() or (query, None)
            # Without the URLs, DuckDB holds one hash table of the pages' scores; read through the
            # view, every pair is joined to its pages' URLs three times, and their hash tables get
            # the audit's room (10M pages: 5.7 GB). The rows are written by all threads as they
            # come (in order, the copy ran on one thread: 15.9 instead of 8.9 s at 1M pages).
            pages = int(self.con.execute("SELECT count(*) FROM pages").fetchall()[0][0])
            memory = scan_memory(pages) if transform is not None else flows_memory(pages)
            settings["preserve_insertion_order"] = "false"
            known = {r[0] for r in self.con.execute("SELECT name FROM duckdb_optimizers()").fetchall()}
            off = [o for o in ("join_order", "build_side_probe_side") if o in known]  # (as this DuckDB names them)
            if off:
                settings["disabled_optimizers"] = ",".join(off)
        # Written in a folder beside the dataset's, which then takes its place: a failed export
        # leaves the last one whole.
        folder = Path(directory)
        partial = folder.with_name(folder.name + ".partial")
        try:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            with self.memory_limit(memory), ExitStack() as stack:
                for setting, value in settings.items():
                    stack.enter_context(self.setting(setting, value))
                reader = self.con.sql(query).to_arrow_reader(row_group_rows)
                written = _write_parquet_parts(reader, partial, rows_per_file=rows_per_file,
                                               row_group_rows=row_group_rows, transform=transform)
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
        except (duckdb.Error, OSError, pa.ArrowException) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise StoreError(f"cannot write {directory}: {_first_line(exc)}") from None
        return written

    def _current_flows_view(self) -> dict[str, Any] | None:
        """What write_scores kept of the link_flows view (its SELECTs: meta's link_flows_view),
        while the view is still the one made with them and link_pairs has as many rows; else None
        (a store scored by another version, or link_pairs built again since)."""
        return _flows_view_made(self.con, str(self.con.execute("SELECT current_database()").fetchall()[0][0]))

    @contextmanager
    def _pair_flows(self, where: str) -> Iterator[str]:
        """SQL for the link_flows view's rows (FLOW_COLUMNS) of the pairs that satisfy `where`, a
        condition on link_pairs' columns (src, dst and resolved: page ids), for the block: the
        view's SELECT over those pairs alone, copied first (with their relevance, joined by row)
        into a temporary table. Through the view, every pair was joined to its pages' URLs before
        any was left out (the report's site graph and drill-downs read the flows of 20,000 and
        5,000 pages: 3.1 and 30 s at 1M pages; at 10M the report ran out of memory); left in the
        query, DuckDB estimated the pairs at millions and built hash tables of every page's URL
        (6 GB at 10M) where it now probes the pages with a few thousand pairs. A store whose view
        this version did not make is read through the view, its columns source_id, target_id and
        resolved_id standing for src, dst and resolved."""
        made = self._current_flows_view()
        select = str(made["select"]) if made else ""
        relevance = PAIRS_WITH_RELEVANCE in select
        if not relevance and not (made and select.count("FROM link_pairs p") == 1):
            yield (f"SELECT {', '.join(FLOW_COLUMNS)} FROM (SELECT *, source_id AS src, target_id AS dst, "
                   f"resolved_id AS resolved FROM link_flows) WHERE {where}")
            return
        self._temp_tables += 1
        table = f"lj_pairs_{self._temp_tables}"
        pairs = f"SELECT rowid AS lj_row, {_PAIR_COLUMNS} FROM link_pairs WHERE {where}"
        if relevance:
            pairs = (f"SELECT {_PAIR_COLUMNS}, r.relevance FROM ({pairs}) "
                     "LEFT JOIN (SELECT rowid AS lj_row, relevance FROM pair_relevance) r USING (lj_row)")
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {pairs}")
        try:
            yield (select.replace(PAIRS_WITH_RELEVANCE, table) if relevance
                   else select.replace("FROM link_pairs p", f"FROM {table} p"))
        finally:
            self.con.execute(f"DROP TABLE IF EXISTS {table}")

    def _flows_dataset(self) -> tuple[str, Callable[[pa.RecordBatch], pa.RecordBatch] | None] | None:
        """The link_flows dataset's rows (DATASET_FLOW_COLUMNS) as (SQL, what makes each batch of
        them whole), with each slice of pairs read beside its relevance positionally
        (pairs_with_relevance_sql(positional=True)): the SELECT for a scan that write_scores kept
        with the view, whose rows are finished here (complete_flows), or for a store scored before
        it kept one, the view's own SELECT, less the pages' URLs. None when the view is not the
        one made with them (a store scored by another version) or reads no relevance: the view
        itself is read then."""
        made = self._current_flows_view()
        if made is None:
            return None
        select = str(made.get("scan") or made["select"])
        if PAIRS_WITH_RELEVANCE not in select:
            return None
        sql = select.replace(PAIRS_WITH_RELEVANCE, pairs_with_relevance_sql(int(made["pairs"]), positional=True))
        if not made.get("scan"):
            return self._DATASETS["link_flows"].replace(" FROM link_flows", f" FROM ({sql})"), None
        ids = self.con.execute("SELECT page_id FROM pages WHERE page_id >= 0").fetchnumpy()["page_id"]
        is_page = np.zeros(int(ids.max()) + 1 if len(ids) else 0, bool)
        is_page[ids.astype(np.int64)] = True
        reasons = [str(r) for r in made.get("reasons") or ()]
        return sql, lambda batch: complete_flows(batch, is_page, reasons)

    def sql(self, query: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run read-only SQL for users and notebooks."""
        return self.con.execute(query, list(params)).df()

    # -- reads for the report, the dashboard and diff (linkjuice.report, linkjuice.diff) --------
    # The link_flows columns the report and dashboard browse, of the rows of {flows}: the view, or
    # (browse) the view's SELECT over some of its pairs.
    _BROWSED_FLOWS = ("SELECT source_url, target_url, resolved_url, anchor, position, nofollow, weight, share, juice, "
                      "reason FROM {flows}")
    # Tables the report and dashboard browse: name -> (query, default sort, descending, tie-break).
    # Filter and sort columns are checked against the query's own columns; values are parameters.
    BROWSE: dict[str, tuple[str, str, bool, str]] = {
        "pages": ("SELECT p.url, p.title, p.status, p.indexability, p.depth, p.in_sitemap, s.section, s.inlinks, "
                  "s.outlinks, s.juice, s.juice_score, s.pagerank FROM pages p LEFT JOIN page_scores s USING (page_id)",
                  "juice", True, "url"),
        "findings": ("SELECT finding_id, severity, code, url, item_count, juice_at_stake, explanation, fix "
                     "FROM findings", "finding_id", False, "finding_id"),
        "finding_items": ("SELECT finding_id, code, url, source_url, target_url, anchor, position, juice, detail "
                          "FROM finding_items", "finding_id", False, "source_url, target_url"),
        "suggestions": ("SELECT * FROM suggestions", "rank", False, "source_url, target_url"),
        "link_flows": (_BROWSED_FLOWS.format(flows="link_flows"), "juice", True, "source_url, target_url"),
        "section_flows": ("SELECT * FROM section_flows", "juice", True, "from_section, to_section"),
        "redirects": ("SELECT * FROM redirects", "source_url", False, "source_url, target_url"),
        "juice_flow": ("SELECT * FROM juice_flow", "dimension", False, "juice DESC, category"),
    }

    def table_rows(self, table: str) -> int | None:
        """Rows in a table, or None when this store does not have it (a store from before a stage)."""
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?", [table]
        ).fetchall()[0][0]  # type: ignore[index]
        if not exists:
            return None
        if table == "link_flows" and self._current_flows_view() is not None:
            return self._flow_count()
        return int(self.con.execute(f"SELECT count(*) FROM {_sql_ident(table)}").fetchall()[0][0])  # type: ignore[index]

    def _flow_count(self) -> int:
        """The rows of the link_flows view this version made: its pairs whose source has a page
        and scores (the view's joins), counted without the view (which joins every pair to its
        pages' URLs first: 31 s at 10M pages, a dashboard's start)."""
        return int(self.con.execute(
            "SELECT count(*) FROM link_pairs WHERE src IN (SELECT page_id FROM page_scores) "
            "AND src IN (SELECT page_id FROM pages)").fetchall()[0][0])  # type: ignore[index]

    def browse_columns(self, table: str) -> list[str]:
        if table not in self.BROWSE:
            raise StoreError(f"unknown table {table!r}: choose one of {', '.join(self.BROWSE)}")
        return [d[0] for d in self.con.execute(f"DESCRIBE {self.BROWSE[table][0]}").fetchall()]

    def _browse_sql(self, table: str, search: str | None, equals: Mapping[str, Any] | None, sort: str | None,
                    descending: bool | None, *, rows: str | None = None) -> tuple[str, str, list[Any]]:
        """(SQL of the matching rows, its ORDER BY, parameters); `rows`: a query of the table's
        columns to read them from instead of its browse query."""
        query, default_sort, default_desc, tie = self.BROWSE[table] if table in self.BROWSE else ("", "", True, "")
        columns = self.browse_columns(table)
        types = dict(self.con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {query})").fetchall())
        where, params = [], []
        if search:
            text = [c for c in columns if types[c] == "VARCHAR"]
            where.append("(" + " OR ".join(f"contains(lower({_sql_ident(c)}), ?)" for c in text) + ")")
            params += [search.lower()] * len(text)
        for name, value in (equals or {}).items():
            if name not in columns:
                raise StoreError(f"{table} has no column {name!r}")
            where.append(f"CAST({_sql_ident(name)} AS VARCHAR) = ?")
            params.append(str(value))
        sort = sort or default_sort
        if sort not in columns:
            raise StoreError(f"cannot sort {table} by {sort!r}")
        desc = default_desc if descending is None else descending
        filtered = f"SELECT * FROM ({rows or query}) AS t" + (f" WHERE {' AND '.join(where)}" if where else "")
        order = f" ORDER BY {_sql_ident(sort)} {'DESC' if desc else 'ASC'} NULLS LAST, {tie}"
        return filtered, order, params

    def browse(self, table: str, *, search: str | None = None, equals: Mapping[str, Any] | None = None,
               sort: str | None = None, descending: bool | None = None, limit: int | None = 50,
               offset: int = 0) -> tuple[pd.DataFrame, int]:
        """One page of a browsable table, filtered (text search over its text columns, exact
        matches) and sorted, with the number of rows that match."""
        with self._browse_query(table, search, equals, sort, descending) as (filtered, order, params, _):
            if table == "link_flows" and not search and not equals and (sort or "juice") == "juice" \
                    and descending in (None, True) and limit is not None and self._current_flows_view() is not None:
                # The strongest flows, from the strongest sources first (_strongest_pairs), and their
                # count without the view: through it, the first page of a 10M-page site took 115 s.
                near = self._strongest_pairs(None, max(int(offset), 0) + int(limit))
                with self._registered("lj_in_pairs", near), \
                        self._pair_flows("(src, dst) IN (SELECT src, dst FROM lj_in_pairs)") as flows:
                    frame = self.con.execute(
                        f"SELECT * FROM ({self._BROWSED_FLOWS.format(flows=f'({flows})')}) AS t" + order
                        + " LIMIT ? OFFSET ?", [int(limit), max(int(offset), 0)]).df()
                return frame, self._flow_count()
            # (the items' view has a row per stored item: unfiltered, they are counted without
            # its joins, which took 1.5 s of each page of them at 10M pages)
            counted = ("finding_item_rows" if table == "finding_items" and not search and not equals
                       and _table_kind(self.con, "finding_items") == "VIEW" else f"({filtered})")
            total = int(self.con.execute(f"SELECT count(*) FROM {counted}", params).fetchall()[0][0])  # type: ignore[index]
            page = " LIMIT ? OFFSET ?" if limit is not None else ""
            extra = [int(limit), max(int(offset), 0)] if limit is not None else []
            return self.con.execute(filtered + order + page, params + extra).df(), total

    @contextmanager
    def _browse_query(self, table: str, search: str | None, equals: Mapping[str, Any] | None, sort: str | None,
                      descending: bool | None) -> Iterator[tuple[str, str, list[Any], bool]]:
        """_browse_sql's (SQL, ORDER BY, parameters) for the block, and whether the SQL reads a
        temporary table that ends with it: link_flows filtered by a page's URL is read from that
        page's pairs alone (through the view, the links to one page of a 10M-page site took 44 s),
        the filters applied to their rows as to the view's."""
        pairs = self._pairs_of_urls(equals) if table == "link_flows" and not search else None
        if pairs is None:
            yield (*self._browse_sql(table, search, equals, sort, descending), False)
            return
        with self._pair_flows(pairs) as flows:
            yield (*self._browse_sql(table, search, equals, sort, descending,
                                     rows=self._BROWSED_FLOWS.format(flows=f"({flows})")), True)

    # The link_pairs column of the page id behind each URL column of the link_flows view.
    _PAIR_ID_OF = {"source_url": "src", "target_url": "dst", "resolved_url": "resolved"}

    def _pairs_of_urls(self, equals: Mapping[str, Any] | None) -> str | None:
        """A condition on link_pairs (for _pair_flows) that every link_flows row matching the
        URL filters among `equals` meets: its source, target or resolved page id (an unstored
        target by its URL); None when no URL is filtered or the view is not this version's."""
        wanted = {c: str(v) for c, v in (equals or {}).items() if c in self._PAIR_ID_OF}
        if not wanted or self._current_flows_view() is None:
            return None
        where = []
        for column, url in wanted.items():
            page_id = self.page_id_of(url)
            if column == "target_url" and page_id is None:  # (the view's target_url: the pair's own, for no page)
                where.append(f"(dst < 0 AND target_url = {_sql_literal(url)})")
            else:  # (source and resolved URLs are the pages')
                where.append("false" if page_id is None else f"{self._PAIR_ID_OF[column]} = {page_id}")
        return " AND ".join(where)

    def browse_values(self, table: str, column: str, *, limit: int = 100) -> list[Any]:
        """The most common values of one column of a browsable table (for filter menus)."""
        if column not in self.browse_columns(table):
            raise StoreError(f"{table} has no column {column!r}")
        col = _sql_ident(column)
        return [r[0] for r in self.con.execute(
            f"SELECT {col} FROM ({self.BROWSE[table][0]}) WHERE {col} IS NOT NULL GROUP BY {col} "
            f"ORDER BY count(*) DESC, {col} LIMIT ?", [int(limit)]).fetchall()]

    def browse_counts(self, table: str, column: str) -> dict[Any, int]:
        """The rows of a browsable table per value of one column (NULL left out), most first."""
        if column not in self.browse_columns(table):
            raise StoreError(f"{table} has no column {column!r}")
        col = _sql_ident(column)
        return dict(self.con.execute(  # type: ignore[arg-type]
            f"SELECT {col}, count(*) AS n FROM ({self.BROWSE[table][0]}) WHERE {col} IS NOT NULL GROUP BY {col} "
            f"ORDER BY n DESC, {col}").fetchall())

    def browse_batches(self, table: str, *, search: str | None = None, equals: Mapping[str, Any] | None = None,
                       sort: str | None = None, descending: bool | None = None,
                       batch_rows: int = 20_000) -> pa.RecordBatchReader:
        """All matching rows of a browsable table as a stream of Arrow batches (CSV downloads)."""
        with self._browse_query(table, search, equals, sort, descending) as (filtered, order, params, temporary):
            if temporary:  # (one page's flows: read before their table is dropped)
                return self._arrow(filtered + order, params).to_reader(batch_rows)
        relation = self.con.sql(filtered + order, params=params)
        # The reader method was renamed across DuckDB releases.
        for name in ("to_arrow_reader", "fetch_arrow_reader", "record_batch"):
            if hasattr(relation, name):
                return getattr(relation, name)(batch_rows)  # type: ignore[no-any-return]
        raise StoreError("this DuckDB cannot stream Arrow batches")

    def _sample_ids(self, urls: Sequence[str]) -> pa.Table:
        """The page ids (column id) of the stored pages among `urls`, each once."""
        ids = self.page_ids_of(urls)
        return pa.table({"id": np.unique(ids[ids >= 0])})

    def flows_among(self, urls: Sequence[str], limit: int) -> pd.DataFrame:
        """The strongest links whose source and target are both in `urls` (the graph sample)."""
        grouped = ("SELECT f.source_url, f.target_url, sum(f.juice) AS juice, bool_or(f.reason = 'passed') AS passes "
                   "FROM {flows} GROUP BY f.source_url, f.target_url "
                   "ORDER BY juice DESC NULLS LAST, f.source_url, f.target_url LIMIT ?")
        if not self._flows_have_ids():  # (scored by an old version: by URL)
            # Hash joins against the URL list: `x = ANY(list)` would compare every row with every URL.
            return self.con.execute(
                "WITH sample AS (SELECT DISTINCT unnest(?::VARCHAR[]) AS url) " + grouped.format(
                    flows="link_flows f JOIN sample a ON a.url = f.source_url JOIN sample b ON b.url = f.target_url "
                          "WHERE f.source_url <> f.target_url"),
                [list(urls), int(limit)]).df()
        # (a target that is no stored page is in no sample; src <> dst: a page's link to itself)
        with self._registered("lj_sample", self._sample_ids(urls)), self._pair_flows(
                "src IN (SELECT id FROM lj_sample) AND dst IN (SELECT id FROM lj_sample) AND src <> dst") as flows:
            return self.con.execute(grouped.format(flows=f"({flows}) f"), [int(limit)]).df()

    def flows_from(self, urls: Sequence[str]) -> pd.DataFrame:
        """Every link_flows row from the pages in `urls` (read by page id where the view has them)."""
        if not self._flows_have_ids():  # (scored by an old version: by URL)
            return self.con.execute("SELECT * FROM link_flows WHERE source_url IN (SELECT unnest(?::VARCHAR[]))",
                                    [list(urls)]).df()
        with self._registered("lj_sample", self._sample_ids(urls)), \
                self._pair_flows("src IN (SELECT id FROM lj_sample)") as flows:
            return self.con.execute(f"SELECT * FROM ({flows})").df()

    def flows_of(self, urls: Sequence[str], per_page: int) -> pd.DataFrame:
        """For each page in `urls`: its strongest sources ('in', by the page that receives the juice)
        and the strongest links it sends ('out'), `per_page` of each (equal juice: by source, then
        target URL)."""
        cols = ", ".join(f"f.{c}" for c in ("source_url", "target_url", "resolved_url", "anchor", "position",
                                               "nofollow", "share", "juice", "reason"))
        query = f"""
            SELECT 'in' AS direction, f.resolved_url AS page, {cols} FROM {{into}}
            QUALIFY row_number() OVER (PARTITION BY f.resolved_url
                                       ORDER BY f.juice DESC NULLS LAST, f.source_url, f.target_url) <= ?
            UNION ALL
            SELECT 'out', f.source_url, {cols} FROM {{out}}
            QUALIFY row_number() OVER (PARTITION BY f.source_url ORDER BY f.juice DESC NULLS LAST, f.target_url) <= ?
            ORDER BY page, direction, juice DESC NULLS LAST, source_url, target_url
            """
        if not self._flows_have_ids():  # (scored by an old version: by URL)
            return self.con.execute(
                "WITH sample AS (SELECT DISTINCT unnest(?::VARCHAR[]) AS url) " + query.format(
                    into="link_flows f JOIN sample s ON s.url = f.resolved_url",
                    out="link_flows f JOIN sample s ON s.url = f.source_url"),
                [list(urls), int(per_page), int(per_page)]).df()
        sample = self._sample_ids(urls)
        with self._registered("lj_in_pairs", self._strongest_pairs(sample, per_page)), \
                self._registered("lj_sample", sample), \
                self._pair_flows("(src, dst) IN (SELECT src, dst FROM lj_in_pairs)") as into, \
                self._pair_flows("src IN (SELECT id FROM lj_sample)") as out:
            return self.con.execute(query.format(into=f"({into}) f", out=f"({out}) f"),
                                    [int(per_page), int(per_page)]).df()

    # The sources of the first round of _strongest_pairs (16 times as many each round after).
    _INFLOW_SOURCES = 1 << 14

    def _strongest_pairs(self, pages: pa.Table | None, per_page: int, *, by: str = "juice",
                         reason: str | None = None) -> pa.Table:
        """The pairs (src, dst) that can be among the `per_page` strongest arriving at each of
        `pages` (ids, by resolved page; None: of the whole site), by `by` (juice, or delivered:
        at most the juice), only those of `reason` when given: those with at least the juice of
        its per_page-th strongest, ties included. The strongest pages of a site get most of its
        links (nav, footer: at 10M pages, 54M pairs arrive at the 5,000 strongest), so the pairs
        are read from the strongest sources first. A pair carries at most d x its source's juice x the heaviest
        pair weight / its source's total weight: the pairs from the sources of at least some bound
        c settle every page whose per_page-th strongest pair from them carries c or more, as no
        other source can reach it. The pages left are asked again with 16 times as many sources,
        the last time all of them (a round is a pass over the pairs, 3-4 s at 10M pages, where
        65,536 sources settled a fifth of the report's 5,000 pages and 1M most of the rest)."""
        k = max(int(per_page), 1)
        model = self.meta().get("model") or {}
        heaviest = model.get("max_pair_weight")  # (with a margin for the rounding of the view's arithmetic)
        bound = (f"{float(model.get('damping', 1.0))!r} * juice * {float(heaviest) * (1 + 1e-6)!r} / out_weight"
                 if heaviest is not None else None)  # (scored by an older version: every source at once)
        # (the whole site as one "page", -2, that every pair arrives at)
        remaining = pages.column("id").to_numpy() if pages is not None else np.array([-2])
        arriving, page = ("resolved IN (SELECT id FROM lj_remaining)", "resolved_id") if pages is not None \
            else ("true", "-2")
        found = [pd.DataFrame({"src": np.zeros(0, np.int64), "dst": np.zeros(0, np.int64)})]
        sources = self._INFLOW_SOURCES
        while len(remaining):
            cutoff = self.con.execute(f"SELECT {bound} AS most FROM page_scores WHERE out_weight > 0 AND juice > 0 "
                                      "ORDER BY most DESC LIMIT 1 OFFSET ?", [sources - 1]).fetchall() if bound else []
            last = not cutoff  # (fewer sources than that: all of them)
            strong = "" if last else \
                f"src IN (SELECT page_id FROM page_scores WHERE out_weight > 0 AND {bound} >= {cutoff[0][0]!r}) AND "
            with self._registered("lj_remaining", pa.table({"id": remaining})), \
                    self._pair_flows(strong + arriving) as flows:
                rows = self.con.execute(f"SELECT source_id AS src, target_id AS dst, {page} AS page, {by} AS juice "
                                        f"FROM ({flows})" + (" WHERE reason = ?" if reason is not None else ""),
                                        [reason] if reason is not None else []).df()
            rows = rows.sort_values(["page", "juice"], ascending=[True, False], ignore_index=True)
            floor = rows.loc[rows.groupby("page").cumcount().to_numpy() == k - 1].set_index("page")["juice"]
            settled = pd.Index(remaining) if last else floor.index[floor.to_numpy() >= cutoff[0][0]]
            floor = floor.reindex(settled, fill_value=-np.inf)  # (fewer than k from every source: all of them)
            kept = rows[rows["page"].isin(settled).to_numpy()]
            found.append(kept.loc[kept["juice"].to_numpy() >= floor.loc[kept["page"]].to_numpy(), ["src", "dst"]])
            remaining = remaining[~np.isin(remaining, settled.to_numpy())]
            sources *= 16
        pairs = pd.concat(found, ignore_index=True)
        return pa.table({"src": pairs["src"].to_numpy(np.int64), "dst": pairs["dst"].to_numpy(np.int64)})

    @contextmanager
    def _registered(self, name: str, table: pa.Table) -> Iterator[None]:
        """An Arrow table readable by its name in this connection's queries, for the block."""
        self.con.register(name, table)
        try:
            yield
        finally:
            self.con.unregister(name)

    def report_stats(self) -> dict[str, Any]:
        """Site-level counts for the report's summary."""
        row = self.con.execute(
            "SELECT (SELECT count(*) FROM pages), (SELECT count(*) FILTER (WHERE indexable) FROM pages), "
            "(SELECT count(*) FILTER (WHERE is_internal) FROM links), (SELECT count(*) FROM links), "
            "(SELECT count(*) FILTER (WHERE status >= 400 OR (error IS NOT NULL AND status IS NULL)) FROM pages), "
            "(SELECT count(*) FILTER (WHERE status BETWEEN 300 AND 399) FROM pages), "
            "(SELECT count(*) FROM scores WHERE juice IS NOT NULL)"
        ).fetchall()[0]
        keys = ("pages", "indexable", "internal_links", "links", "broken_pages", "redirects", "scored")
        return {k: int(v or 0) for k, v in zip(keys, row)}  # type: ignore[arg-type]

    def depth_stats(self) -> pd.DataFrame:
        """Per click depth (NULL: not reachable by links): pages, their juice and median score."""
        return self.con.execute(
            "SELECT p.depth, count(*) AS pages, count(s.juice) AS ranked, coalesce(sum(s.juice), 0) AS juice, "
            "median(s.juice_score) AS median_score FROM pages p LEFT JOIN page_scores s USING (page_id) "
            "GROUP BY p.depth ORDER BY p.depth NULLS LAST"
        ).df()

    def juice_values(self) -> np.ndarray:
        return self.con.execute("SELECT juice FROM scores WHERE juice > 0").df()["juice"].to_numpy(dtype=float)

    def compare(self, old: str | Path, *, limit: int = 50) -> dict[str, Any]:
        """What changed from the crawl in `old` (another store) to this one: counts and the top
        `limit` rows of new/fixed broken links, new orphans, juice movers and links added/removed."""
        Store(old, read_only=True).close()  # a clear error for a missing or foreign file
        con = self.con.cursor()  # ATTACH on its own cursor: this store's connection stays as it was
        try:
            con.execute(f"ATTACH {_sql_literal(str(Path(old).resolve()))} AS lj_old (READ_ONLY)")
        except duckdb.Error as exc:
            raise StoreError(f"cannot read {old}: {_first_line(exc)}") from None
        try:
            # Its joins spill beyond the audit's allowance (a diff of 10M-page crawls held 19 GB).
            pages = max(int(con.execute(f"SELECT count(*) FROM {c}.pages").fetchall()[0][0]) for c in ("main", "lj_old"))
            with self.memory_limit(flows_memory(pages)):
                return _compare(con, limit)
        finally:
            con.execute("DETACH lj_old")
            con.close()

    # -- opportunities (suggest / simulate / optimize) -----------------------------------------
    def source_anchors(self, page_ids: Sequence[int] | np.ndarray) -> dict[int, list[str]]:
        """The anchor texts each of these pages already uses (to keep suggestions out of existing
        links): only theirs are read, not the anchors of every link (20M rows at 1M pages)."""
        with self._registered("_anchor_pages", pa.table({"page_id": pa.array(np.asarray(page_ids, np.int64))})):
            rows = self.con.execute(
                "SELECT p.page_id, l.anchor FROM links l JOIN pages p ON p.url = l.source_url "
                "SEMI JOIN _anchor_pages a ON a.page_id = p.page_id "
                "WHERE l.anchor IS NOT NULL AND length(l.anchor) > 1 GROUP BY ALL ORDER BY ALL").fetchall()
        out: dict[int, list[str]] = {}
        for page_id, anchor in rows:
            out.setdefault(int(page_id), []).append(anchor)
        return out

    def finding_page_ids(self, codes: Sequence[str]) -> np.ndarray:
        """The ids of the pages named by audit findings of these codes, in the audit's priority
        order (empty when no audit has run): ids, not URLs, as a 10M-page audit names 9M pages."""
        tbl = self._arrow(
            "SELECT p.page_id FROM findings f JOIN pages p ON p.url = f.url WHERE f.code IN (SELECT unnest(?)) "
            "GROUP BY p.page_id ORDER BY min(f.finding_id)", [list(codes)])
        return tbl.column("page_id").to_numpy().astype(np.int64)

    def priority_urls(self) -> pd.DataFrame:
        return self.con.execute("SELECT url, coalesce(weight, 1.0) AS weight FROM priorities").df()

    def write_suggestions(self, frame: pd.DataFrame) -> None:
        with self.transaction():
            self.con.execute("DELETE FROM suggestions")
            cols = ", ".join(frame.columns)
            self.con.execute(f"INSERT INTO suggestions ({cols}) SELECT {cols} FROM frame")

    # -- embeddings (the cache of linkjuice.semantic) ------------------------------------------
    def cached_embeddings(self, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The vectors stored for `model`: urls, text hashes and a float32 matrix, one row per url."""
        exists = self.con.execute("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_schema = 'main' AND table_name = 'embeddings'").fetchall()[0][0]
        if not exists:  # a read-only open of a store from before the table existed
            return np.array([], dtype=object), np.array([], dtype=object), np.zeros((0, 0), np.float32)
        table = self._arrow("SELECT url, text_hash, vector FROM embeddings WHERE model = ?", [model])
        flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        matrix = flat.astype(np.float32).reshape(table.num_rows, -1) if table.num_rows else np.zeros((0, 0), np.float32)
        urls, hashes = (table.column(c).to_numpy(zero_copy_only=False) for c in ("url", "text_hash"))
        return urls, hashes, matrix

    def write_embeddings(self, model: str, urls: Sequence[str], hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store (replace) the vectors of these pages for `model`. A read-only store keeps nothing:
        the vectors are simply recomputed next time."""
        if self.read_only or not len(urls):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        offsets = pa.array(np.arange(len(urls) + 1, dtype=np.int32) * vectors.shape[1])
        batch = pa.table({"url": pa.array(list(urls), pa.string()), "text_hash": pa.array(list(hashes), pa.string()),
                          "vector": pa.ListArray.from_arrays(offsets, pa.array(vectors.ravel(), pa.float32()))})
        self.con.register("_embeddings_batch", batch)
        try:
            with self.transaction():
                self.con.execute("DELETE FROM embeddings WHERE model = ? AND url IN (SELECT url FROM _embeddings_batch)",
                                 [model])
                self.con.execute("INSERT INTO embeddings SELECT url, ?, text_hash, vector FROM _embeddings_batch", [model])
                # Pages gone from the crawl take their vectors with them.
                self.con.execute("DELETE FROM embeddings WHERE url NOT IN (SELECT url FROM pages)")
        finally:
            self.con.unregister("_embeddings_batch")

    # -- audit ---------------------------------------------------------------------------------
    # Reads for linkjuice.audit (which computes findings from them) and the write of its results.
    _AUDIT_INPUT_TABLES = frozenset({"link_flows", "imported_urls", "gsc", "priorities"})

    def has_rows(self, table: str) -> bool:
        """Whether an input table exists and holds rows (a read-only open of an older store may
        lack the tables that later stages add)."""
        if table not in self._AUDIT_INPUT_TABLES:
            raise StoreError(f"unknown table {table!r}")
        kind = _first(self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ?", [table]).fetchall())
        if kind is None:
            return False
        if kind[0] == "VIEW" and table == "link_flows":
            # The view has rows when what it is computed from has (asked directly, DuckDB builds
            # its joins first: 6 s at 3M pages).
            sources = ("link_pairs", "page_scores")
        else:
            sources = (table,)
        return all(self.con.execute(f"SELECT EXISTS (SELECT 1 FROM {name})").fetchall()[0][0]  # type: ignore[index]
                   for name in sources)

    def crawl_traps(self) -> pd.DataFrame:
        """URL patterns the crawler refused (kind, pattern, example_url, skipped); empty for stores
        written before trap detection."""
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'crawl_trap_urls'").fetchall()[0][0]  # type: ignore[index]
        if not exists:
            return pd.DataFrame(columns=["kind", "pattern", "example_url", "skipped"])
        return self.con.execute(
            "SELECT kind, pattern, min(url) AS example_url, count(*) AS skipped FROM crawl_trap_urls "
            "GROUP BY kind, pattern ORDER BY skipped DESC").df()

    def audit_pages(self) -> pd.DataFrame:
        """Per page, in page_id order: its state, depth, final URL, canonical target and juice
        (through Arrow: text columns stay Arrow strings, those of a few values categoricals;
        integers with NULLs are floats). A page's canonical target is the page itself when it
        names its own URL; only the pages that another page names are joined by URL (joined to
        every page, DuckDB hashed all of 10M pages' URLs: 1.7-2.2 instead of 1.0 s)."""
        # The pages as stored (in page_id order: a scan; joined to the scores and sorted, the read
        # took 3.2-4.9 s at 10M pages instead of 0.9), the scores and the canonical targets of
        # the pages that name another page read apart and put in place by page id.
        table = self._arrow(
            """
            SELECT page_id, url, status, error, indexability, coalesce(indexable, false) AS indexable,
                   coalesce(is_html, false) AS is_html, depth, found_via, final_url, canonical
            FROM pages
            """
        )
        ids = table.column("page_id").to_numpy()
        if len(ids) and not (ids == np.arange(len(ids))).all():
            table = table.take(pa.array(np.argsort(ids, kind="stable")))
            ids = table.column("page_id").to_numpy()
        n = len(ids)

        def placed(values: pa.Table, columns: Sequence[str]) -> list[pa.Array]:
            """values' columns (rows keyed by page_id) at each page's row; null where none."""
            keys = values.column("page_id").to_numpy()
            if np.array_equal(keys, ids):  # (the scores of every page, in order)
                return [values.column(c) for c in columns]
            row = np.minimum(np.searchsorted(ids, keys), max(n - 1, 0))
            stored = (ids[row] == keys) if n else np.zeros(len(keys), bool)
            at = np.full(n, -1, np.int64)
            at[row[stored]] = np.flatnonzero(stored)
            taken = pa.array(at, mask=at < 0)
            return [values.column(c).combine_chunks().take(taken) for c in columns]

        scores = self._arrow("SELECT page_id, juice, juice_score FROM page_scores")
        other = self._arrow(
            """
            SELECT p.page_id, c.status, c.indexability
            FROM (SELECT page_id, canonical FROM pages WHERE canonical <> url) p
            JOIN (SELECT url, status, indexability FROM pages
                  WHERE url IN (SELECT canonical FROM pages WHERE canonical <> url)) c ON c.url = p.canonical
            """
        )
        own = pc.fill_null(pc.equal(table.column("canonical"), table.column("url")), False)
        for column, named in zip(("status", "indexability"), placed(other, ["status", "indexability"])):
            table = table.append_column(f"canonical_{column}", pc.if_else(own, table.column(column), named))
        for column, values in zip(("juice", "juice_score"), placed(scores, ["juice", "juice_score"])):
            table = table.append_column(column, values)
        # Columns of a few distinct texts as categoricals (a text per page was 0.45 GB at 10M
        # pages), dictionary-encoded by Arrow (pandas' astype took 0.8 s a column at 10M pages),
        # with their categories sorted, as astype makes them.
        small = ("error", "indexability", "found_via", "canonical_indexability")
        for name in small:
            table = table.set_column(table.schema.get_field_index(name), name,
                                     table.column(name).combine_chunks().dictionary_encode())
        pages = table.to_pandas()
        del table
        for name in small:
            pages[name] = pages[name].cat.reorder_categories(sorted(pages[name].cat.categories))
        return pages

    def audit_link_flows(self, reasons: Sequence[str], weights: Mapping[str, Any] | None = None,
                         damping: float | None = None) -> tuple[list[str], Iterator[pa.RecordBatch]]:
        """The model's flows, one row per (source page, target URL) pair, streamed in batches
        (linkjuice.audit.collect_flows keeps what the audit needs of a big site's hundreds of
        millions): src, dst and resolved as page ids (-1 when not stored); target_url only where
        the target is an internal URL that is not a stored page (the audit matches links to their
        pair by it); position and reason as codes into the returned positions and `reasons` (-1:
        none); nofollow, is_internal, juice and n_links. No URL string per pair.

        With the model's `weights` (pair_weights' settings) and `damping`, each pair's juice is
        formed here from link_pairs and the page scores, with the link_flows view's arithmetic in
        its order (the same numbers in under half the time: the view joins the scores, the cached
        relevance and three times the pages' URLs row by row); without them (a store scored by an
        older version) it is read from the link_flows view."""
        self._require_flow_ids()
        positions = [r[0] for r in self.con.execute(
            "SELECT DISTINCT position FROM link_pairs WHERE position IS NOT NULL ORDER BY 1").fetchall()]
        position = _list_code_sql("position", positions)
        if weights is None or damping is None:
            query = f"""
                SELECT source_id::INTEGER AS src, target_id::INTEGER AS dst, resolved_id::INTEGER AS resolved,
                       CASE WHEN target_id < 0 AND is_internal THEN target_url END AS target_url,
                       {position} AS position, coalesce(nofollow, false) AS nofollow,
                       coalesce(is_internal, false) AS is_internal, {_list_code_sql('reason', reasons)} AS reason,
                       coalesce(juice, 0.0::DOUBLE) AS juice, coalesce(n_links, 1)::INTEGER AS n_links
                FROM link_flows
                """
            return positions, iter(self.con.sql(query).to_arrow_reader(_READ_BATCH))
        # Each batch's weights formed as it comes, from factors read in the same scan (not a
        # weight array of every pair from a scan of its own: 1.65 GB at 10M pages).
        from .score import _compiled_kernels  # numba is optional: the same rule as the rank kernels

        pairs = self.pair_count()  # (before the reader: it holds the connection)
        factors, _, juice = self._pair_weighing(**weights, kernels=_compiled_kernels(pairs))
        scores = self._arrow("SELECT page_id, juice, out_weight FROM page_scores")
        size = int(pc.max(scores.column("page_id")).as_py() or 0) + 1 if scores.num_rows else 0
        page_juice, out_weight = np.zeros(size), np.zeros(size)
        ids = scores.column("page_id").to_numpy()
        # (d x juice) x share, in the view's order; a page without juice passes none (coalesce 0).
        page_juice[ids] = float(damping) * scores.column("juice").fill_null(0.0).to_numpy()
        out_weight[ids] = scores.column("out_weight").fill_null(0.0).to_numpy()
        # The view's reason: link_pairs' code names reasons[code] (score writes both with one list).
        reason = f"CASE WHEN reason BETWEEN 0 AND {len(reasons) - 1} THEN reason ELSE -1 END::TINYINT"
        reader = self.con.sql(
            f"""
            SELECT src::INTEGER AS src, dst::INTEGER AS dst, resolved::INTEGER AS resolved,
                   CASE WHEN dst < 0 AND is_internal THEN target_url END AS target_url,
                   {position} AS position, coalesce(nofollow, false) AS nofollow,
                   coalesce(is_internal, false) AS is_internal, {reason} AS reason,
                   coalesce(n_links, 1)::INTEGER AS n_links, {factors}
            FROM link_pairs p
            """
        ).to_arrow_reader(_READ_BATCH)

        def batches() -> Iterator[pa.RecordBatch]:
            lo = 0
            for batch in reader:
                if lo + batch.num_rows > pairs:
                    break
                yield batch.drop_columns(["_pf", "_af"]).append_column(
                    "juice", pa.array(juice(batch, lo, page_juice, out_weight)))
                lo += batch.num_rows
            if lo != pairs:
                raise StoreError(f"link_pairs changed while it was read ({lo} of {pairs} rows)")

        return positions, batches()

    def audit_links(self, *, by_hash: bool = True, stored: bool = True, pairs: bool = False) -> AuditLinks:
        """Every internal link between two different URLs, one row per link, in the order DuckDB
        returns them (the audit sorts the few links a finding lists: a sort of every link cost a
        quarter of this read at 3M pages), as integers: src is the source's page id, target the
        target's code (AuditLinks), link_order LINK_ORDER_MISSING where the link has none.
        Text columns (anchor, position, found_in) are categoricals, so a site's repeated anchors
        are held once: DuckDB hands over their codes, not the text.

        A finalized store holds these codes (write_link_codes), read as they are (stored=False
        makes them again); otherwise links meet their pages, target URLs and anchors by 64-bit
        hash when the hashes of each are distinct (else by the strings): joined by string, the
        URLs and anchors took two thirds of this read at 3M pages (and carrying each unstored
        target's URL through the joins a third more). As in finalize, a target URL that is not
        stored but has a stored page's hash (odds ~1e-5 at 10M pages) would count as that page.
        by_hash=False joins the strings always. With `pairs` and stored codes made with the
        store's link_pairs (link_code_pairs), a column `pair` gives each link's row in link_pairs
        (for flows read with linkjuice.audit.collect_flows(keep_all=True))."""
        codes = self._stored_link_codes() if stored else None
        if codes is not None:
            # Each link's pair row too, while link_pairs is the build the codes were made with.
            pairs = pairs and codes.pairs
            columns = [*_LINK_CODE_COLUMNS, *(["pair"] if pairs else [])]
            reader = self.con.sql(f"SELECT {', '.join(columns)} FROM link_codes").to_arrow_reader(_READ_BATCH)
            return _audit_links(self._link_code_arrays(iter(reader), codes.rows, pairs=pairs), codes)
        try:
            codes = self._stage_link_codes(by_hash=by_hash)
            col = self._link_code_arrays(self._link_code_batches(codes), codes.rows)
        finally:
            self._drop_link_code_tables()
        return _audit_links(col, codes)

    def _link_code_batches(self, codes: _LinkCodes) -> Iterator[pa.RecordBatch]:
        """The links' codes (_LINK_CODE_COLUMNS), a batch at a time, in no fixed order, from the
        tables _stage_link_codes made."""
        from .score import _compiled_kernels  # numba is optional: the same rule as the rank kernels

        kernels = _compiled_kernels(codes.rows) if codes.by_hash else None
        if kernels is None:
            yield from self.con.sql(self._link_codes_sql(codes)).to_arrow_reader(_READ_BATCH)
            return
        # The hashes are looked up here instead of joined: DuckDB's join of each link's target (in
        # no order: a cache miss a link) took 10 of the 11 s of the joins at 3M pages; in a table
        # of the hashes, looked up with prefetches, this whole read went 26 -> 12 s.
        targets, anchors = (self._arrow(f"SELECT h, code FROM {t}") for t in ("_audit_targets", "_audit_anchors"))
        tables = [kernels.hash_table(t.column("h").to_numpy(), t.column("code").to_numpy())
                  for t in (targets, anchors)]
        del targets, anchors
        small = codes.small
        reader = self.con.sql(f"""
            SELECT hash(l.source_url) AS src_h, hash(l.target_url) AS target_h, hash(l.anchor) AS anchor_h,
                   l.anchor IS NULL AS no_anchor, {small['position']} AS position, l.link_order,
                   coalesce(l.nofollow, false) AS nofollow, {small['found_in']} AS found_in
            FROM links l WHERE {_AUDIT_LINKS}""").to_arrow_reader(_READ_BATCH)
        for batch in reader:
            src = kernels.hash_codes(tables[0], batch.column("src_h").to_numpy())
            if ((src < 0) | (src >= codes.n)).any():  # a source that is no stored page: the join drops it
                raise StoreError(f"{self.path}: the links changed while they were read")
            no_anchor = batch.column("no_anchor").to_numpy(zero_copy_only=False)
            yield pa.record_batch({
                "src": src, "target": kernels.hash_codes(tables[0], batch.column("target_h").to_numpy()),
                "anchor": kernels.hash_codes(tables[1], batch.column("anchor_h").fill_null(0).to_numpy(), no_anchor),
                **{name: batch.column(name) for name in ("position", "link_order", "nofollow", "found_in")}})

    def _drop_link_code_tables(self) -> None:
        for table in ("_audit_targets", "_audit_anchors"):
            self.con.execute(f"DROP TABLE IF EXISTS {table}")

    def _stage_link_codes(self, *, by_hash: bool) -> _LinkCodes:
        """The texts the links' codes index, and the temporary tables _audit_targets (hash, code,
        text of every page and unstored internal target) and _audit_anchors (hash, text, code)
        that _link_codes_sql joins the links to; the caller drops the tables."""
        # A link without found_in was found in the raw HTML (the default).
        exprs = {"position": "l.position", "found_in": "coalesce(l.found_in, 'raw')", "target": "l.target_url",
                 "anchor": "l.anchor"}
        # The internal target URLs that are not stored pages: link_pairs names them (dst -1), when
        # it is built from these links (else they are grouped here with the rest: at 3M pages that
        # grouping set took 3.4 of the pass's 5.3 s; link_pairs' 0.1 s).
        if self.link_pairs_state() is not None:
            del exprs["target"]
            unstored = "SELECT DISTINCT target_url AS text FROM link_pairs WHERE dst < 0 AND is_internal"
        n = int(self.con.execute("SELECT count(*) FROM pages").fetchall()[0][0])  # type: ignore[index]
        # Targets: code = page id, or n + rank of the URL among the sorted unstored internal targets.
        by_hash = by_hash and self._hashes_distinct("pages", "hash(url)")
        on = {True: "{t}.h = hash({col})", False: "{t}.text = {col}"}
        # The distinct values of each text column, and the number of links, in one pass over the
        # links (at 3M pages: a pass each 5.1 s, this one 5.3 s with the targets, 1.9 s without).
        # GROUPING's bits: 1 for each column not grouped by, the first column's the highest.
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _audit_distinct AS SELECT "
            f"{', '.join(f'{e} AS {c}' for c, e in exprs.items())}, GROUPING({', '.join(exprs.values())}) AS g, "
            f"count(*) AS n FROM links l WHERE {_AUDIT_LINKS} "
            f"GROUP BY GROUPING SETS ({', '.join(f'({e})' for e in exprs.values())})")
        try:
            grouped = {col: (1 << len(exprs)) - 1 - (1 << (len(exprs) - 1 - k)) for k, col in enumerate(exprs)}
            if "target" in exprs:
                unstored = f"SELECT target AS text FROM _audit_distinct WHERE g = {grouped['target']}"
            texts = {}
            for col in ("position", "found_in"):
                values = self._arrow(f"SELECT {col} FROM _audit_distinct WHERE g = {grouped[col]} AND {col} IS NOT NULL"
                                     ).column(0).combine_chunks()
                texts[col] = values.take(pc.sort_indices(values))
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE _audit_targets AS SELECT hash(url) AS h, page_id AS code, "
                             f"{'NULL::VARCHAR' if by_hash else 'url'} AS text FROM pages")
            self.con.execute(
                f"""INSERT INTO _audit_targets
                SELECT hash(text), ({n} + row_number() OVER (ORDER BY text) - 1)::INTEGER, text
                FROM (SELECT d.text FROM ({unstored}) d
                      ANTI JOIN _audit_targets t ON {on[by_hash].format(t='t', col='d.text')}
                      WHERE d.text IS NOT NULL)""")
            self.con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _audit_anchors AS
                SELECT hash(text) AS h, text, (row_number() OVER (ORDER BY text) - 1)::INTEGER AS code
                FROM (SELECT anchor AS text FROM _audit_distinct WHERE g = {grouped['anchor']} AND anchor IS NOT NULL)""")
            rows = int(self.con.execute(f"SELECT coalesce(sum(n), 0) FROM _audit_distinct WHERE g = {grouped['position']}"
                                        ).fetchall()[0][0])  # type: ignore[index]
        finally:
            self.con.execute("DROP TABLE IF EXISTS _audit_distinct")
        targets_by_hash = by_hash and self._hashes_distinct("_audit_targets", "h")
        anchors_by_hash = by_hash and self._hashes_distinct("_audit_anchors", "h")
        if by_hash and not targets_by_hash:  # two unstored targets share a hash: join the URLs
            self.con.execute("UPDATE _audit_targets SET text = p.url FROM pages p WHERE p.page_id = code")
        texts["anchor"] = self._arrow("SELECT text FROM _audit_anchors ORDER BY code").column(0)
        return _LinkCodes(
            n=n, rows=rows, texts=texts,
            extra_urls=self._arrow(f"SELECT text FROM _audit_targets WHERE code >= {n} ORDER BY code").column(0),
            targets_by_hash=targets_by_hash, anchors_by_hash=anchors_by_hash)

    @staticmethod
    def _link_codes_sql(codes: _LinkCodes) -> str:
        """The links (as audit_links keeps them) joined to the staged tables: their codes."""
        on = {True: "{t}.h = hash({col})", False: "{t}.text = {col}"}
        small = codes.small
        return f"""
            SELECT s.code AS src, coalesce(t.code, -1) AS target, coalesce(a.code, -1) AS anchor,
                   {small['position']} AS position, l.link_order, coalesce(l.nofollow, false) AS nofollow,
                   {small['found_in']} AS found_in
            FROM links l
            JOIN _audit_targets s ON {on[codes.targets_by_hash].format(t='s', col='l.source_url')} AND s.code < {codes.n}
            LEFT JOIN _audit_targets t ON {on[codes.targets_by_hash].format(t='t', col='l.target_url')}
            LEFT JOIN _audit_anchors a ON {on[codes.anchors_by_hash].format(t='a', col='l.anchor')}
            WHERE {_AUDIT_LINKS}"""

    def _link_code_arrays(self, batches: Iterator[pa.RecordBatch], rows: int, *, pairs: bool = False
                          ) -> dict[str, np.ndarray]:
        """audit_links' columns filled from batches of _LINK_CODE_COLUMNS (and pair) (held as one
        Arrow table, then as a DataFrame, the links would be in memory twice)."""
        col = {"src": np.empty(rows, np.int32), "target": np.empty(rows, np.int32),
               "anchor": np.empty(rows, np.int32), "position": np.empty(rows, np.int8),
               "link_order": np.empty(rows, np.int32), "nofollow": np.empty(rows, bool),
               "found_in": np.empty(rows, np.int8), **({"pair": np.empty(rows, np.int32)} if pairs else {})}
        lo = 0
        for batch in batches:
            hi = lo + batch.num_rows
            if hi > rows:
                raise StoreError(f"{self.path}: the links changed while the audit read them")
            for name, out in col.items():
                values = batch.column(name)
                if name == "link_order":
                    values = values.fill_null(LINK_ORDER_MISSING)
                out[lo:hi] = values.to_numpy(zero_copy_only=False)
            lo = hi
        if lo != rows or (col["target"] < 0).any():
            raise StoreError(f"{self.path}: the links changed while the audit read them")
        return col

    def write_link_codes(self) -> int:
        """Store what audit_links reads, once per crawl (finalize): each internal link's source
        page id, target code, anchor code, position and found_in codes, link order and nofollow
        in link_codes, and the texts the codes index (link_anchor_texts, link_extra_urls, meta
        'link_codes'). Reading these instead of hashing every link's URLs and anchor took the
        audit's link read at 10M pages from ~30 s to 8-12 s. Returns the links written; 0, and
        nothing stored, when DuckDB runs out of its memory limit (its joins, without numba): the
        codes only save the audit time, which then reads the links themselves, as before."""
        try:
            return self._write_link_codes()
        except duckdb.OutOfMemoryException:
            try:
                self.con.execute("DELETE FROM link_codes")  # (meta 'link_codes' is gone: unused anyway)
            except duckdb.Error:
                pass
            return 0

    def _write_link_codes(self) -> int:
        with self.transaction():
            self.con.execute("DELETE FROM meta WHERE key = 'link_codes'")
            for table in ("link_codes", "link_anchor_texts", "link_extra_urls"):
                self.con.execute(f"DELETE FROM {table}")
        try:
            codes = self._stage_link_codes(by_hash=True)
            with self.transaction():
                self.con.execute("INSERT INTO link_anchor_texts SELECT code, text FROM _audit_anchors")
                self.con.execute(f"INSERT INTO link_extra_urls SELECT code, text FROM _audit_targets WHERE code >= {codes.n}")
            # A batch at a time, each inserted on a thread through a cursor (DuckDB releases the
            # GIL) while the next is made: memory stays that of a batch (the one INSERT of
            # DuckDB's joins ran out of 768 MB at 3M pages).
            written = 0
            pair_keys = self._pair_keys(codes)
            with self.con.cursor() as writer, ThreadPoolExecutor(1, thread_name_prefix="linkjuice-codes") as pool:
                inserting: Future[None] | None = None
                for batch in self._link_code_batches(codes):
                    target = batch.column("target").to_numpy(zero_copy_only=False)
                    if (target < 0).any():
                        raise StoreError(f"{self.path}: the links changed while their codes were written")
                    pair = _pair_rows(pair_keys, batch.column("src").to_numpy(zero_copy_only=False), target, codes)
                    table = pa.Table.from_batches([batch]).append_column("pair", pa.array(pair))
                    if inserting is not None:
                        inserting.result()
                    inserting = pool.submit(self._insert_codes, writer, table)
                    written += batch.num_rows
                if inserting is not None:
                    inserting.result()
        finally:
            self._drop_link_code_tables()
        if written != codes.rows:
            raise StoreError(f"{self.path}: the links changed while their codes were written")
        # Written out now: DuckDB skips its automatic checkpoints while the links are read on
        # this connection, and the uncheckpointed rows (2 GB at 3M pages) cannot be evicted.
        self.con.execute("CHECKPOINT")
        self.set_meta({"link_codes": {**self._link_code_counts(), "rows": written,
                                      **{k: codes.texts[k].to_pylist() for k in ("position", "found_in")},
                                      "link_pairs_built": (self.link_pairs_state() or {}).get("built_at")}})
        return written

    def _pair_keys(self, codes: _LinkCodes) -> np.ndarray:
        """The key of each link_pairs row, in table order, under which a link finds its pair
        (_pair_rows): source x targets + the target's code, the unstored internal URLs first, as
        link_pairs is sorted (src, dst, target_url); a row no link can meet (an external target)
        repeats the key before it, so that the keys stay sorted and a search finds the first."""
        extra_index = pd.Index(codes.extra_urls.to_pandas().astype(object))
        keys = np.empty(self.pair_count(), np.int64)
        lo = 0
        reader = self.con.sql("SELECT src, dst, CASE WHEN dst < 0 AND is_internal THEN target_url END AS url "
                              "FROM link_pairs").to_arrow_reader(_READ_BATCH)
        for batch in reader:
            code = batch.column("dst").to_numpy(zero_copy_only=False).astype(np.int64)
            unstored = np.flatnonzero(code < 0)
            if len(unstored):
                urls = batch.column("url").take(pa.array(unstored)).to_pandas().astype(object)
                at = extra_index.get_indexer(urls)  # -1: external, or not a link's target
                code[unstored] = np.where(at >= 0, codes.n + at, -1)
            part = keys[lo:lo + batch.num_rows]
            part[:] = link_pair_keys(batch.column("src").to_numpy(zero_copy_only=False), np.maximum(code, 0),
                                     codes.n, codes.n + len(extra_index))
            part[code < 0] = -1
            lo += batch.num_rows
        np.maximum.accumulate(keys, out=keys)
        return keys

    def _insert_codes(self, con: duckdb.DuckDBPyConnection, chunk: pa.Table) -> None:
        with self.transaction(con):
            self._insert_arrow(con, "link_codes", chunk)

    def _link_code_counts(self) -> dict[str, int]:
        """What stored link codes were made from: the number of pages and links (a resumed crawl
        adds both; finalize makes the codes again)."""
        pages, links = self.con.execute("SELECT (SELECT count(*) FROM pages), (SELECT count(*) FROM links)").fetchall()[0]
        return {"pages": int(pages), "links": int(links)}

    def _stored_link_codes(self) -> _LinkCodes | None:
        """The stored link codes' texts, or None when none are stored for the store's links as
        they are (not finalized by this version, or pages or links added since)."""
        state = self.meta().get("link_codes")
        if not isinstance(state, dict) or any(state.get(k) != v for k, v in self._link_code_counts().items()):
            return None
        rows = int(self.con.execute("SELECT count(*) FROM link_codes").fetchall()[0][0])  # type: ignore[index]
        if rows != state.get("rows"):
            return None
        n = state["pages"]
        return _LinkCodes(
            n=n, rows=rows,
            texts={"position": pa.array(state["position"], pa.string()), "found_in": pa.array(state["found_in"], pa.string()),
                   "anchor": self._arrow("SELECT text FROM link_anchor_texts ORDER BY code").column(0)},
            extra_urls=self._arrow("SELECT url FROM link_extra_urls ORDER BY code").column(0),
            targets_by_hash=True, anchors_by_hash=True, pairs=self.link_code_pairs(state))

    def link_code_pairs(self, state: Mapping[str, Any] | None = None) -> bool:
        """Whether audit_links gives each link its pair's row in link_pairs (a store finalized by
        this version, whose link_pairs is the build its link codes were made with)."""
        state = self.meta().get("link_codes") if state is None else state
        built = (self.link_pairs_state() or {}).get("built_at")
        return isinstance(state, dict) and built is not None and state.get("link_pairs_built") == built

    def _hashes_distinct(self, relation: str, hashes: str) -> bool:
        """Whether the 64-bit hashes `hashes` of the rows of `relation` are all different, so that
        rows can be joined by them instead of by their strings."""
        return bool(self.con.execute(f"SELECT count(*) = count(DISTINCT {hashes}) FROM {relation}").fetchall()[0][0])

    def _flows_have_ids(self) -> bool:
        """Whether link_flows names its pages by id too (a store scored by an older version does not)."""
        return "source_id" in self._columns("link_flows")

    def _require_flow_ids(self) -> None:
        if not self._flows_have_ids():
            raise StoreError(f"{self.path} was scored by an older linkjuice: run 'linkjuice score --db {self.path}' "
                             "again before auditing")

    def rendered_only_pairs(self) -> pd.DataFrame:
        """The (source page id, target URL) pairs that exist only after rendering: every link of
        the pair was found in the rendered DOM alone (crawl --render). Self-links are left out."""
        if not self.con.execute("SELECT count(*) FROM (SELECT 1 FROM links WHERE found_in = 'rendered' LIMIT 1)"
                                ).fetchall()[0][0]:  # type: ignore[index]
            return pd.DataFrame({"src": pd.Series(dtype="int64"), "target_url": pd.Series(dtype=object)})
        return self.con.execute(
            """
            SELECT s.page_id AS src, l.target_url
            FROM links l JOIN pages s ON s.url = l.source_url
            WHERE l.source_url <> l.target_url
            GROUP BY s.page_id, l.target_url
            HAVING bool_and(coalesce(l.found_in, 'raw') = 'rendered')
            ORDER BY src, l.target_url
            """
        ).df()

    def redirect_paths(self) -> pd.DataFrame:
        """Every redirect walked hop by hop from each redirecting URL, stopping where a hop returns
        to a URL already on the path (`closes_loop`) or after 30 hops."""
        return self.con.execute(
            """
            WITH RECURSIVE walk(start_url, hop, source_url, status, target_url, path) AS (
                SELECT source_url, 1, source_url, status, target_url, [source_url] FROM redirects
                UNION ALL
                SELECT w.start_url, w.hop + 1, r.source_url, r.status, r.target_url, list_append(w.path, r.source_url)
                FROM walk w JOIN redirects r ON r.source_url = w.target_url
                WHERE NOT list_contains(w.path, w.target_url) AND w.hop < 30
            )
            SELECT start_url, hop, source_url, status, target_url, list_contains(path, target_url) AS closes_loop
            FROM walk ORDER BY start_url, hop
            """
        ).df()

    def known_urls(self) -> pd.DataFrame:
        """URLs known to exist from outside the link graph (in-scope sitemap entries, imported URL
        lists), one row per URL with where it is known from (the sitemap first)."""
        parts = ["SELECT url, 'sitemap' AS source, 0 AS rank FROM sitemap_entries WHERE coalesce(in_scope, true)"]
        if self.has_rows("imported_urls"):
            parts.append("SELECT url, coalesce(source, 'imported'), 1 FROM imported_urls")
        return self.con.execute(
            f"SELECT url, arg_min(source, rank) AS source FROM ({' UNION ALL '.join(parts)}) "
            "WHERE url IS NOT NULL GROUP BY url ORDER BY url"
        ).df()

    def importance_inputs(self) -> pd.DataFrame:
        """Per URL: Search Console clicks and impressions and the user's priority weight (a listed
        page without a weight counts 1); empty when nothing was imported."""
        empty = "SELECT NULL::VARCHAR AS url, 0.0::DOUBLE AS {0}, 0.0::DOUBLE AS {1} WHERE false"
        gsc = ("SELECT url, sum(coalesce(clicks, 0)) AS clicks, sum(coalesce(impressions, 0)) AS impressions "
               "FROM gsc GROUP BY url") if self.has_rows("gsc") else empty.format("clicks", "impressions")
        prio = ("SELECT url, max(coalesce(weight, 1.0)) AS weight FROM priorities GROUP BY url"
                if self.has_rows("priorities") else empty.format("weight", "unused"))
        return self.con.execute(
            f"""
            WITH g AS ({gsc}), p AS ({prio})
            SELECT coalesce(g.url, p.url) AS url, coalesce(g.clicks, 0.0) AS clicks,
                   coalesce(g.impressions, 0.0) AS impressions, coalesce(p.weight, 0.0) AS weight
            FROM g FULL OUTER JOIN p ON g.url = p.url
            WHERE coalesce(g.url, p.url) IS NOT NULL
            """
        ).df()

    def write_audit_tables(self, findings: Iterable[pa.Table], items: Iterable[pa.Table], juice_flow: pd.DataFrame,
                           summary: Mapping[str, Any], *, view_sql: Mapping[str, str],
                           urls: pa.Array | pa.ChunkedArray) -> None:
        """Replace the audit's tables and its summary in meta, in one transaction, with the
        findings and items as Arrow tables, each inserted as it comes (a big site's are made a
        slice at a time: linkjuice.audit.AuditStream). The findings' tables have finding_rows'
        columns; `view_sql`: the SQL over them of the columns of the view `findings` that are not
        stored as they are read (AuditStream.view_sql: the code and severity from their numbers,
        the explanations from their templates). The items have finding_item_rows' columns, their
        URL codes (_url, _source_url) rows of `urls` (AuditStream.urls), stored as
        audit_urls. The transaction is on a connection of its own:
        each table is inserted on a thread (DuckDB releases the GIL) while the caller makes the
        next. The findings come in finding_id order, a slice at a time, and are stored in that
        order: their export needs no sort of every finding (export)."""
        # DuckDB's cache of the blocks it writes is capped (they are on disk): at 10M pages, cached
        # beside the audit's own arrays, they took RSS past 21 GB.
        # (the findings are stored in the order they come: their export relies on it)
        with self.con.cursor() as writer, ThreadPoolExecutor(1, thread_name_prefix="linkjuice-audit") as pool, \
                self.memory_limit(_AUDIT_WRITE_MEMORY), self.setting("preserve_insertion_order", "true"):
            with self.transaction(writer):
                # A store written before finding_rows (finding_item_rows) holds its findings (items) as a table.
                for view in ("findings", "finding_items"):
                    if _table_kind(writer, view) == "BASE TABLE":
                        writer.execute(f"DROP TABLE {view}")
                known = [pa.table({"code": pa.array(np.arange(len(urls), dtype=np.int32)), "url": urls})]
                for table, tables in (("audit_urls", known), ("finding_rows", findings), ("finding_item_rows", items),
                                      ("juice_flow", [pa.Table.from_pandas(juice_flow, preserve_index=False)])):
                    if table in _AUDIT_TABLES:  # made again: a store written before keeps its old compression
                        writer.execute(f"CREATE OR REPLACE TABLE {table} ({_AUDIT_TABLES[table]})")
                    else:
                        writer.execute(f"DELETE FROM {table}")
                    inserting: Future[None] | None = None
                    try:
                        for arrow in _row_group_aligned(tables):
                            if inserting is not None:
                                inserting.result()
                            inserting = pool.submit(self._insert_arrow, writer, table, arrow) if arrow.num_rows else None
                    finally:  # the transaction ends (or is rolled back) once no insert runs
                        if inserting is not None:
                            inserting.result()
                writer.execute(f"CREATE OR REPLACE VIEW findings AS {_findings_view(view_sql)}")
                writer.execute(f"CREATE OR REPLACE VIEW finding_items AS {_items_view(view_sql['code'])}")
                self.set_meta({"audit": dict(summary)}, con=writer)

    @staticmethod
    def _insert_arrow(con: duckdb.DuckDBPyConnection, table: str, arrow: pa.Table) -> None:
        """Append an Arrow table's columns to `table`, in the table's row order (as Arrow: DuckDB
        reads it in bulk)."""
        con.register("_arrow_in", arrow)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT {', '.join(arrow.column_names)} FROM _arrow_in")
        finally:
            con.unregister("_arrow_in")

    def audit_frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The stored findings, finding items (as audit_findings reads them) and juice flow of the
        last audit."""
        return (*self.audit_findings(),
                self.con.execute("SELECT * FROM juice_flow ORDER BY dimension, juice DESC").df())

    def audit_findings(self, first: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The stored findings (in priority order) and their items (by finding, source URL, link
        order), or only the first `first` findings and theirs, in the audit result's dtypes:
        integers as int64 (link_order: Int64), texts as str, the anchor as objects (None when
        missing), the fix as a categorical."""
        where = "" if first is None else f"WHERE finding_id <= {int(first)}"
        findings = self._arrow(f"SELECT * FROM findings {where} ORDER BY finding_id").to_pandas()
        items = self._arrow(f"SELECT * FROM finding_items {where} ORDER BY finding_id, source_url, link_order"
                            ).to_pandas()
        for frame, ints in ((findings, ("finding_id", "item_count")), (items, ("finding_id",))):
            for col in ints:
                frame[col] = frame[col].astype(np.int64)
            frame["anchor"] = frame["anchor"].astype(object).where(frame["anchor"].notna(), None)
        findings["fix"] = findings["fix"].astype("category")
        items["link_order"] = items["link_order"].astype("Int64")
        return findings, items

    # -- imports -------------------------------------------------------------------------------
    # linkjuice.imports parses the files and hands over Arrow batches (or, for link graphs, the
    # file itself). Each import is one transaction: a file that fails half-way changes nothing.
    def _stage_import(self, columns: str, batches: Iterable[pa.Table]) -> None:
        """Collect parsed batches in a temporary table (parsing errors surface here, before any
        stored row is touched)."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _import_stage ({columns})")
        for batch in batches:
            self.con.register("_import_batch", batch)
            try:
                self.con.execute("INSERT INTO _import_stage SELECT * FROM _import_batch")
            finally:
                self.con.unregister("_import_batch")

    def _finish_import(self, table: str) -> int:
        self.con.execute("DROP TABLE IF EXISTS _import_stage")
        return int(self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])  # type: ignore[index]

    def replace_imported_urls(self, batches: Iterable[pa.Table], *, source: str, replace_all: bool = False) -> int:
        """Store URLs (distinct) under `source`, replacing that source's earlier rows (or all rows)."""
        with self.transaction():
            self._stage_import("url VARCHAR", batches)
            if replace_all:
                self.con.execute("DELETE FROM imported_urls")
            else:
                self.con.execute("DELETE FROM imported_urls WHERE source = ?", [source])
            self.con.execute(
                "INSERT INTO imported_urls SELECT url, ? FROM _import_stage GROUP BY url ORDER BY min(rowid)",
                [source],
            )
            self._finish_import("imported_urls")
            return int(self.con.execute("SELECT count(*) FROM imported_urls WHERE source = ?", [source]).fetchall()[0][0])  # type: ignore[index]

    def replace_gsc(self, batches: Iterable[pa.Table]) -> int:
        """Replace the Search Console table. URLs that normalise alike are merged: clicks and
        impressions add up, CTR is recomputed, position is impression-weighted."""
        with self.transaction():
            self._stage_import("url VARCHAR, clicks DOUBLE, impressions DOUBLE, ctr DOUBLE, position DOUBLE", batches)
            self.con.execute("DELETE FROM gsc")
            self.con.execute(
                """
                INSERT INTO gsc
                SELECT url, sum(clicks), sum(impressions),
                       CASE WHEN count(*) = 1 THEN any_value(ctr) ELSE sum(clicks) / nullif(sum(impressions), 0) END,
                       CASE WHEN count(*) = 1 THEN any_value(position)
                            ELSE sum(position * impressions) / nullif(sum(impressions), 0) END
                FROM _import_stage GROUP BY url ORDER BY min(rowid)
                """
            )
            return self._finish_import("gsc")

    def replace_priorities(self, batches: Iterable[pa.Table]) -> int:
        """Replace the priorities table (a URL listed twice keeps its highest weight)."""
        with self.transaction():
            self._stage_import("url VARCHAR, weight DOUBLE", batches)
            self.con.execute("DELETE FROM priorities")
            self.con.execute(
                "INSERT INTO priorities SELECT url, max(weight) FROM _import_stage GROUP BY url ORDER BY min(rowid)"
            )
            return self._finish_import("priorities")

    def replace_backlinks(self, batches: Iterable[pa.Table], *, append: bool = False) -> int:
        """Replace (or, with `append`, add to) the backlinks table; returns the rows added."""
        with self.transaction():
            self._stage_import(
                "target_url VARCHAR, source_url VARCHAR, source_domain VARCHAR, authority DOUBLE, "
                "nofollow BOOLEAN, anchor VARCHAR, tool VARCHAR",
                batches,
            )
            if not append:
                self.con.execute("DELETE FROM backlinks")
            self.con.execute("INSERT INTO backlinks SELECT * FROM _import_stage ORDER BY rowid")
            added = int(self.con.execute("SELECT count(*) FROM _import_stage").fetchall()[0][0])  # type: ignore[index]
            self._finish_import("backlinks")
            return added

    def imported_on_pages(self, table: str) -> tuple[int, int]:
        """(rows of an imported table, rows whose URL is a stored page)."""
        column = {"imported_urls": "url", "gsc": "url", "priorities": "url", "backlinks": "target_url"}[table]
        row = _first(self.con.execute(
            f"SELECT count(*), count(p.url) FROM {table} t LEFT JOIN (SELECT DISTINCT url FROM pages) p "
            f"ON p.url = t.{column}"
        ).fetchall())
        return int(row[0]), int(row[1])  # type: ignore[index]

    # The page a backlink target credits: the stored page with that URL (or, failing that, the one
    # page whose URL differs only by scheme, "www." or a trailing slash), then the end of its
    # redirect chain (pages.final_url), then its canonical when it is canonicalised (one step, as
    # the juice model treats internal links).
    _BACKLINK_TARGETS_SQL = r"""
        WITH targets AS (SELECT DISTINCT target_url FROM backlinks),
        keyed AS (
            SELECT url, regexp_replace(regexp_replace(url, '^https?://(www\.)?', ''), '/(\?|$)', '\1') AS key
            FROM (SELECT DISTINCT url FROM pages)
        ),
        variants AS (SELECT key, any_value(url) AS url FROM keyed GROUP BY key HAVING count(*) = 1),
        matched AS (
            SELECT t.target_url,
                   coalesce(e.url, v.url) AS matched_url,
                   CASE WHEN e.url IS NOT NULL THEN 'exact' WHEN v.url IS NOT NULL THEN 'variant' END AS matched_by
            FROM targets t
            LEFT JOIN (SELECT DISTINCT url FROM pages) e ON e.url = t.target_url
            LEFT JOIN variants v ON e.url IS NULL AND v.key = regexp_replace(
                regexp_replace(t.target_url, '^https?://(www\.)?', ''), '/(\?|$)', '\1')
        ),
        landed AS (
            SELECT m.*, coalesce(p.final_url, CASE WHEN p.redirect_to IS NULL THEN p.url END) AS final_url
            FROM matched m LEFT JOIN pages p ON p.url = m.matched_url
        )
        SELECT l.target_url, l.matched_by, l.matched_url,
               CASE WHEN f.indexability = 'canonicalised' AND c.url IS NOT NULL THEN c.url ELSE f.url END AS page_url,
               CASE WHEN f.indexability = 'canonicalised' AND c.url IS NOT NULL THEN c.page_id ELSE f.page_id END AS page_id,
               CASE WHEN f.indexability = 'canonicalised' AND c.url IS NOT NULL THEN c.indexable ELSE f.indexable END AS indexable
        FROM landed l
        LEFT JOIN pages f ON f.url = l.final_url
        LEFT JOIN pages c ON c.url = f.canonical
    """

    def backlink_targets(self) -> pd.DataFrame:
        """One row per distinct backlink target: target_url, matched_by ('exact', 'variant' or
        None), matched_url, page_url and page_id of the page credited (None when no stored page
        receives it), and whether that page is indexable."""
        return self.con.execute(self._BACKLINK_TARGETS_SQL + " ORDER BY l.target_url").df()

    def backlink_authority(self, *, include_nofollow: bool = False) -> pd.DataFrame:
        """Per credited page: referring_domains (distinct source domains), authority_sum (the sum
        over those domains of each domain's highest authority) and domains_with_authority."""
        return self.con.execute(
            f"""
            WITH resolved AS ({self._BACKLINK_TARGETS_SQL}),
            per_domain AS (
                SELECT r.page_id, b.source_domain, max(b.authority) AS authority
                FROM backlinks b JOIN resolved r USING (target_url)
                WHERE r.page_id IS NOT NULL AND (? OR NOT coalesce(b.nofollow, false))
                GROUP BY r.page_id, b.source_domain
            )
            SELECT page_id, count(*)::INTEGER AS referring_domains, coalesce(sum(authority), 0) AS authority_sum,
                   count(authority)::INTEGER AS domains_with_authority
            FROM per_domain GROUP BY page_id ORDER BY page_id
            """,
            [include_nofollow],
        ).df()

    def backlink_domains(self) -> pd.DataFrame:
        """One row per (credited page, referring domain) from followed backlinks, with the domain's
        highest authority metric (NaN when the file had none): the input of the teleport vector."""
        if not self.con.execute("SELECT EXISTS (SELECT 1 FROM backlinks)").fetchall()[0][0]:
            # Without backlinks, skip matching every page URL against them (1.4 s at 1M pages).
            return pd.DataFrame({"page_id": np.zeros(0, np.int32), "source_domain": np.zeros(0, object),
                                 "authority": np.zeros(0)})
        return self.con.execute(
            f"""
            WITH resolved AS ({self._BACKLINK_TARGETS_SQL})
            SELECT r.page_id, b.source_domain, max(b.authority) AS authority
            FROM backlinks b JOIN resolved r USING (target_url)
            WHERE r.page_id IS NOT NULL AND NOT coalesce(b.nofollow, false)
            GROUP BY r.page_id, b.source_domain ORDER BY r.page_id
            """
        ).df()

    def holds_crawl(self) -> bool:
        """True when the store holds pages from a crawl (not from `import links`)."""
        has_pages = self.con.execute("SELECT count(*) > 0 FROM pages").fetchall()[0][0]  # type: ignore[index]
        source = _first(self.con.execute("SELECT value FROM meta WHERE key = 'source'").fetchall())
        return bool(has_pages) and not (source and str(source[0]).startswith("import:"))

    def import_link_graph(
        self,
        *,
        path: str,
        file_format: str,
        columns: Mapping[str, str],
        csv_options: Mapping[str, Any] | None = None,
        link_types: Sequence[str] | None = None,
        redirect_types: Sequence[str] = (),
        canonical_types: Sequence[str] = (),
        position_map: Mapping[str, str],
        default_position: str,
        start_url: str | None,
        meta: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Replace the link graph (pages, links, redirects) with an edge file, in SQL, streaming.

        `columns` maps our fields (source, target, kind, anchor, alt, position, rel, follow,
        nofollow, status, status_text, link_order) to file columns ("c<i>" for CSV, read without
        its header). The file is scanned a few times (links, per-URL status, redirects and
        canonicals, skip reasons); nothing is loaded into Python. Returns counts and skip reasons.
        """
        edges = _EdgeSql(path, file_format, columns, csv_options, link_types, redirect_types, canonical_types,
                         position_map)
        _create_url_macros(self.con)
        # A fixed memory budget makes DuckDB spill sorts and aggregates to disk instead of growing
        # with the file: a 20M-row export imports in the same memory as a 2M-row one.
        previous = _first(self.con.execute(
            "SELECT current_setting('memory_limit'), current_setting('enable_progress_bar')").fetchall())
        self.con.execute(f"SET memory_limit = '{_IMPORT_MEMORY}'")
        self.con.execute("SET enable_progress_bar = false")  # DuckDB would print it into our output
        try:
            with self.transaction():
                return self._import_link_graph(edges, default_position=default_position, start_url=start_url,
                                               meta=meta)
        except duckdb.Error as exc:
            raise InputFileError(f"cannot be read as a link table ({_first_line(exc)})", path=path) from None
        finally:
            self.con.execute(f"SET memory_limit = {_sql_literal(str(previous[0]))}")  # type: ignore[index]
            self.con.execute(f"SET enable_progress_bar = {bool(previous[1])}")  # type: ignore[index]

    def _import_link_graph(self, edges: _EdgeSql, *, default_position: str, start_url: str | None,
                           meta: Mapping[str, Any]) -> dict[str, Any]:
        con, lit = self.con, _sql_literal
        if start_url is None:
            row = _first(con.execute(
                f"SELECT regexp_extract(src, '^(https?://[^/]+)', 1) AS origin, count(*) AS n "
                f"FROM {edges.rows(None, limit=100_000)} WHERE src IS NOT NULL AND {edges.is_link} "
                f"GROUP BY origin ORDER BY n DESC, origin LIMIT 1"
            ).fetchall())
            origin = row[0] if row else None
        else:
            origin = con.execute("SELECT regexp_extract(?, '^(https?://[^/]+)', 1)", [start_url]).fetchall()[0][0]  # type: ignore[index]
        if not origin:
            raise InputFileError("no absolute http(s) source URL in the first rows: give the site with --start-url",
                                 path=edges.path)
        host = origin.split("://", 1)[1].split(":", 1)[0]
        site = host[4:] if host.startswith("www.") else host
        internal = f"(regexp_extract({{}}, '^https?://([^/:?]+)', 1) IN ({lit(site)}, {lit('www.' + site)}))"
        for table in ("links", "pages", "redirects", "frontier", "sitemap_entries", "crawl_trap_urls",
                          *self._derived_tables()):
            con.execute(f"DELETE FROM {table}")
        con.execute("DROP TABLE IF EXISTS _lj_rejects")
        con.execute("DROP TABLE IF EXISTS _lj_reject_scans")
        # Links. Without a link order in the file, file order gives it (Screaming Frog's All
        # Inlinks is sorted by destination: there it is file order, not document order).
        con.execute(
            f"""
            INSERT INTO links (source_url, target_url, anchor, rel, nofollow, dom_position, link_order, is_internal)
            SELECT src, dst, coalesce(anchor, alt), rel, {edges.nofollow},
                   coalesce({edges.position}, {lit(default_position)}),
                   coalesce(link_order_given, (row_number() OVER (PARTITION BY src ORDER BY ordinal) - 1)::INTEGER),
                   {internal.format('dst')}
            FROM (SELECT *, row_number() OVER () AS ordinal FROM {edges.rows(origin, checked=True)})
            WHERE {edges.is_link} AND src IS NOT NULL AND dst IS NOT NULL
            """
        )
        n_links = int(con.execute("SELECT count(*) FROM links").fetchall()[0][0])  # type: ignore[index]
        rejected, rejected_lines = 0, []
        if edges.file_format == "csv":
            # DuckDB may log several errors for one bad row: count rows (lines), not errors.
            rejected = int(con.execute("SELECT count(DISTINCT line) FROM _lj_rejects").fetchall()[0][0])  # type: ignore[index]
            rejected_lines = [int(r[0]) for r in con.execute(
                "SELECT DISTINCT line FROM _lj_rejects ORDER BY line LIMIT 5").fetchall()]
        skipped = self._edge_skip_reasons(edges, origin)
        if n_links == 0:
            problems = [r for r in skipped if not r[0].startswith("note:")]
            detail = (f": {problems[0][1]} rows {problems[0][0]}, e.g. {problems[0][2]!r}" if problems
                      else f": {rejected} malformed rows, first on line {rejected_lines[0]}" if rejected else "")
            raise InputFileError(f"holds no usable links{detail}", path=edges.path)
        # Per-URL observations: the status the file gives a URL where it is a link's target.
        if edges.has_status:
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _lj_obs AS
                SELECT dst AS url, max(status) AS status, any_value(status_text) AS status_text
                FROM {edges.rows(origin)}
                WHERE dst IS NOT NULL AND (status IS NOT NULL OR status_text IS NOT NULL) GROUP BY dst
                """
            )
        else:
            con.execute("CREATE OR REPLACE TEMP TABLE _lj_obs (url VARCHAR, status INTEGER, status_text VARCHAR)")
        # Redirect and canonical rows (Screaming Frog types) describe their source page.
        if edges.special_types:
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _lj_special AS
                SELECT DISTINCT src, dst,
                       CASE WHEN lower(kind) IN {edges.kinds(edges.redirect_types)} THEN 'redirect' ELSE 'canonical' END AS what
                FROM {edges.rows(origin)}
                WHERE lower(kind) IN {edges.kinds(edges.special_types)} AND src IS NOT NULL AND dst IS NOT NULL
                """
            )
        else:
            con.execute("CREATE OR REPLACE TEMP TABLE _lj_special (src VARCHAR, dst VARCHAR, what VARCHAR)")
        # The start page: the given one, else the site root when it is in the graph, else the
        # most-linked internal page.
        if start_url is None:
            root = origin + "/"
            present = con.execute(
                "SELECT EXISTS (SELECT 1 FROM links WHERE source_url = ? OR target_url = ?)", [root, root]
            ).fetchall()[0][0]  # type: ignore[index]
            start_url = root if present else con.execute(
                "SELECT target_url FROM links WHERE is_internal GROUP BY target_url "
                "ORDER BY count(*) DESC, target_url LIMIT 1"
            ).fetchall()[0][0]  # type: ignore[index]
        # Pages: every source, internal target, redirect and canonical URL. A status of 0 (Screaming
        # Frog: no response) becomes an error with its reason phrase, like a failed fetch.
        html_test = f"status = 200 AND (is_source OR NOT regexp_matches(lower(url), {lit(_NOT_HTML)}))"
        con.execute(
            f"""
            INSERT INTO pages (url, seq, status, content_type, found_via, redirect_to, canonical, error,
                               blocked_by_robots, is_html)
            WITH sources AS (SELECT DISTINCT source_url AS url FROM links),
                 everything AS (
                    SELECT url FROM sources
                    UNION SELECT target_url FROM links WHERE is_internal
                    UNION SELECT src FROM _lj_special
                    UNION SELECT dst FROM _lj_special WHERE {internal.format('dst')}
                 ),
                 redirect AS (SELECT src AS url, min(dst) AS redirect_to FROM _lj_special WHERE what = 'redirect' GROUP BY src),
                 canonical AS (SELECT src AS url, min(dst) AS canonical FROM _lj_special WHERE what = 'canonical' GROUP BY src),
                 merged AS (
                    SELECT e.url, o.status_text, r.redirect_to, c.canonical, s.url IS NOT NULL AS is_source,
                           CASE WHEN o.status > 0 THEN o.status
                                WHEN o.status = 0 THEN NULL
                                WHEN r.url IS NOT NULL THEN 301
                                WHEN s.url IS NOT NULL THEN 200 END AS status,
                           coalesce(o.status = 0, false) AS failed
                    FROM everything e
                    LEFT JOIN _lj_obs o ON o.url = e.url
                    LEFT JOIN redirect r ON r.url = e.url
                    LEFT JOIN canonical c ON c.url = e.url
                    LEFT JOIN sources s ON s.url = e.url
                 )
            SELECT url, row_number() OVER (ORDER BY url = {lit(start_url)} DESC, url) - 1, status,
                   CASE WHEN {html_test} THEN 'text/html' END, 'import',
                   CASE WHEN status BETWEEN 300 AND 399 OR status IS NULL THEN redirect_to END,
                   canonical,
                   CASE WHEN failed THEN coalesce(status_text, 'no response') END,
                   failed AND coalesce(status_text ILIKE '%robots%', false),
                   coalesce({html_test}, false)
            FROM merged
            """
        )
        con.execute(
            "INSERT INTO redirects SELECT url, coalesce(status, 301), redirect_to FROM pages "
            "WHERE redirect_to IS NOT NULL ORDER BY seq"
        )
        self.set_meta({**meta, "start_url": start_url, "limits_hit": False})
        counts = _first(con.execute(
            "SELECT (SELECT count(*) FROM pages), (SELECT count(*) FROM redirects), "
            "(SELECT count(*) FROM pages WHERE canonical IS NOT NULL AND canonical <> url)"
        ).fetchall())
        for table in ("_lj_obs", "_lj_special", "_lj_rejects", "_lj_reject_scans"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        return {
            "links": n_links, "pages": int(counts[0]), "redirects": int(counts[1]),  # type: ignore[index]
            "canonicalised": int(counts[2]), "start_url": start_url,  # type: ignore[index]
            "skipped": skipped, "rejected": rejected, "rejected_lines": rejected_lines,
        }

    def _edge_skip_reasons(self, edges: _EdgeSql, origin: str) -> list[tuple[str, int, str | None]]:
        """(reason, rows, one example value) for rows that are not links. Reasons starting with
        'note:' are rows used otherwise (redirects, canonicals) or kept links with an unknown
        position."""
        rows = self.con.execute(
            f"""
            SELECT reason, count(*) AS n, any_value(example) AS example FROM (
                SELECT CASE
                    WHEN lower(kind) IN {edges.kinds(edges.redirect_types)} THEN 'note:redirect rows (' || kind || ')'
                    WHEN lower(kind) IN {edges.kinds(edges.canonical_types)} THEN 'note:canonical rows (' || kind || ')'
                    WHEN NOT {edges.is_link} THEN 'not a hyperlink (' || kind || ')'
                    WHEN src_raw IS NULL OR trim(src_raw) = '' THEN 'source URL missing'
                    WHEN src IS NULL THEN 'source is not an http(s) URL'
                    WHEN dst_raw IS NULL OR trim(dst_raw) = '' THEN 'target URL missing'
                    WHEN dst IS NULL THEN 'target is not an http(s) URL'
                    WHEN position_raw IS NOT NULL AND {edges.position} IS NULL THEN 'note:position:' || position_raw
                    END AS reason,
                    CASE WHEN src IS NULL THEN src_raw ELSE dst_raw END AS example
                FROM {edges.rows(origin)}
            ) WHERE reason IS NOT NULL GROUP BY reason ORDER BY n DESC, reason
            """
        ).fetchall()
        return [(str(r[0]), int(r[1]), None if r[2] is None else str(r[2])) for r in rows]

    # Tables that hold inputs: everything else is computed from the link graph (scores, flows,
    # findings, suggestions...) and is cleared when an import replaces the graph.
    _INPUT_TABLES = frozenset({"meta", "frontier", "pages", "links", "redirects", "sitemap_entries",
                               "imported_urls", "gsc", "priorities", "backlinks"})

    def _derived_tables(self) -> list[str]:
        """Tables of this store computed from the link graph (see _INPUT_TABLES)."""
        names = [r[0] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()]
        return [t for t in names if t not in self._INPUT_TABLES and not t.startswith("_")]


def _first(rows: list[Any]) -> Any:
    """The first row of a fetchall() (None when there is none). Results are always fetched whole:
    DuckDB 2 refuses other work on a connection while a result is only partly read."""
    return rows[0] if rows else None


def _table_kind(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """'BASE TABLE' or 'VIEW' for the store's object `name` (schema main), None when there is none:
    tables that later versions made views (scores, link_flows, findings) are told apart by it."""
    kind = _first(con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' "
                              "AND table_name = ?", [name]).fetchall())
    return None if kind is None else kind[0]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

# -- helpers for the link-graph import --------------------------------------------------------
_IMPORT_MEMORY = "256MB"  # DuckDB's budget while importing a link graph (it spills beyond it)
# URL paths that are files, not HTML pages (a link export does not give content types).
_NOT_HTML = (r"\.(pdf|jpe?g|png|gif|webp|avif|svg|ico|bmp|tiff?|zip|gz|tgz|rar|7z|docx?|xlsx?|pptx?|odt|csv|"
             r"mp3|wav|mp4|m4v|avi|mov|webm|woff2?|ttf|eot|otf|css|js|json|xml|txt|exe|dmg|apk)(\?.*)?$")

class _EdgeSql:
    """SQL fragments for reading one edge file (link-graph import): the scans, the typed row
    relation with normalised URLs, and the link / nofollow / position expressions."""

    def __init__(self, path: str, file_format: str, columns: Mapping[str, str],
                 csv_options: Mapping[str, Any] | None, link_types: Sequence[str] | None,
                 redirect_types: Sequence[str], canonical_types: Sequence[str],
                 position_map: Mapping[str, str]) -> None:
        lit = _sql_literal
        self.path, self.file_format, self.columns = path, file_format, columns
        self.redirect_types, self.canonical_types = tuple(redirect_types), tuple(canonical_types)
        self.special_types = self.redirect_types + self.canonical_types
        self.has_status = "status" in columns or "status_text" in columns
        if file_format == "parquet":
            self._scan_plain = self._scan_checked = f"read_parquet({lit(path)})"
        else:
            opts = dict(csv_options or {})
            cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(int(opts["ncols"])))
            base = (f"read_csv({lit(path)}, header=false, auto_detect=false, skip={int(opts['skip'])}, "
                    f"delim={lit(opts['delimiter'])}, quote='\"', escape='\"', encoding={lit(opts['encoding'])}, "
                    f"columns={{{cols}}}")
            self._scan_plain = base + ", ignore_errors=true)"
            # Malformed rows are kept aside with their line numbers for the report.
            self._scan_checked = base + ", store_rejects=true, rejects_table='_lj_rejects', rejects_scan='_lj_reject_scans')"
        self.is_link = "TRUE" if link_types is None else f"(kind IS NULL OR lower(kind) IN {self.kinds(link_types)})"
        cases = " ".join(f"WHEN {lit(k.lower())} THEN {lit(v)}" for k, v in position_map.items())
        self.position = f"(CASE lower(position_raw) {cases} ELSE NULL END)" if cases else "NULL"
        self.nofollow = ("(coalesce(follow IN ('false', 'no', '0', 'nofollow'), false) "
                         "OR coalesce(nofollow_raw IN ('true', 'yes', '1', 'nofollow'), false) "
                         "OR coalesce(regexp_matches(rel, '\\b(nofollow|ugc|sponsored)\\b'), false))")

    @staticmethod
    def kinds(values: Sequence[str]) -> str:
        return "(" + ", ".join(_sql_literal(v.lower()) for v in (values or ("",))) + ")"

    def _col(self, field: str) -> str:
        if field not in self.columns:
            return "CAST(NULL AS VARCHAR)"
        return f"CAST({_sql_ident(self.columns[field])} AS VARCHAR)"

    def rows(self, origin: str | None, *, checked: bool = False, limit: int | None = None) -> str:
        """The file as typed rows, with src/dst normalised (paths resolved against `origin`)."""
        c = self._col
        scan = self._scan_checked if checked else self._scan_plain
        origin_sql = _sql_literal(origin) if origin else "CAST(NULL AS VARCHAR)"
        return f"""(
            SELECT *, _lj_url(src_raw, {origin_sql}) AS src, _lj_url(dst_raw, {origin_sql}) AS dst FROM (
                SELECT nullif(trim({c('kind')}), '') AS kind, {c('source')} AS src_raw, {c('target')} AS dst_raw,
                       nullif(trim({c('anchor')}), '') AS anchor, nullif(trim({c('alt')}), '') AS alt,
                       nullif(trim({c('position')}), '') AS position_raw, nullif(lower(trim({c('rel')})), '') AS rel,
                       lower(trim({c('follow')})) AS follow, lower(trim({c('nofollow')})) AS nofollow_raw,
                       TRY_CAST(TRY_CAST(trim({c('status')}) AS DOUBLE) AS INTEGER) AS status,
                       nullif(trim({c('status_text')}), '') AS status_text,
                       TRY_CAST(trim({c('link_order')}) AS INTEGER) AS link_order_given
                FROM {scan} {f'LIMIT {int(limit)}' if limit else ''}
            ))"""


def _section_sql(url: str, depth: int) -> str:
    """SQL for a URL's site section: its first `depth` path segments ("/" for none), a query
    string left out."""
    rest = f"(CASE WHEN contains({url}, '://') THEN substr({url}, strpos({url}, '://') + 3) ELSE {url} END)"
    path = f"split_part(CASE WHEN strpos({rest}, '/') > 0 THEN substr({rest}, strpos({rest}, '/') + 1) ELSE '' END, '?', 1)"
    parts = f"list_filter(string_split({path}, '/'), lambda x: x <> '')[1:{int(depth)}]"
    return f"('/' || array_to_string({parts}, '/') || CASE WHEN len({parts}) > 0 THEN '/' ELSE '' END)"


# The links the audit reads: internal, between two different URLs.
_AUDIT_LINKS = "l.is_internal AND l.source_url <> l.target_url"
_LINK_CODE_COLUMNS = ("src", "target", "anchor", "position", "link_order", "nofollow", "found_in")


# audit_links' link_order of a link that has none: above every order, so such links sort last.
LINK_ORDER_MISSING = np.iinfo(np.int32).max


class AuditLinks(NamedTuple):
    """Store.audit_links' result. A link's target code is the target's page id when it is a
    stored page (below `pages`), else `pages` + k for the URL extra_urls[k] (sorted): the
    audit's target codes as they are, where a page id column (-1 for the others) and the extra
    URLs' codes were two more copies of every link."""

    frame: pd.DataFrame  # src, target, anchor, position, link_order, nofollow, found_in (and pair)
    pages: int
    extra_urls: pd.Index


@dataclass(frozen=True, slots=True)
class _LinkCodes:
    """What the codes of audit_links' columns index. n: the pages (a target code below n is a
    page id, from n on a row of extra_urls); rows: the links; texts: position, found_in and
    anchor values (Arrow strings, in code order)."""

    n: int
    rows: int
    texts: dict[str, pa.Array]
    extra_urls: pa.Array
    targets_by_hash: bool
    anchors_by_hash: bool
    pairs: bool = False  # the stored codes include each link's pair row

    @property
    def by_hash(self) -> bool:
        return self.targets_by_hash and self.anchors_by_hash

    @property
    def small(self) -> dict[str, str]:
        """SQL for the position and found_in codes of a link `l`."""
        exprs = {"position": "l.position", "found_in": "coalesce(l.found_in, 'raw')"}
        return {col: _list_code_sql(exprs[col], self.texts[col].to_pylist()) for col in exprs}


def _audit_links(col: dict[str, np.ndarray], codes: _LinkCodes) -> AuditLinks:
    """audit_links' result from its filled columns (kept as they are: each new array would be a
    copy of every link; the codes are ours, in range, so pandas need not check them)."""
    categorical = lambda values, texts: pd.Categorical.from_codes(  # noqa: E731
        values, categories=pd.Index(texts), validate=False)
    frame = pd.DataFrame(copy=False, data={
        "src": col["src"], "target": col["target"],
        **{name: categorical(col[name], codes.texts[name].to_pandas()) for name in ("anchor", "position")},
        "link_order": col["link_order"], "nofollow": col["nofollow"],
        "found_in": categorical(col["found_in"], codes.texts["found_in"].to_pandas()),
        **({"pair": col["pair"]} if "pair" in col else {}),
    })
    return AuditLinks(frame, codes.n, pd.Index(codes.extra_urls.to_pandas().astype(object)))


def link_pair_keys(src: np.ndarray, code: np.ndarray, n_pages: int, n_targets: int) -> np.ndarray:
    """The key under which a link (source page id, target code: a page id, or n_pages + the rank
    of an unstored internal URL among n_targets - n_pages of them) meets its pair. It orders
    targets as link_pairs is stored, (dst, target URL), with the sorted URLs that are not stored
    pages (dst -1) first, so that the pairs' keys come sorted."""
    key = code.astype(np.int64)  # in place from here: tens of millions of links
    key -= n_pages
    key[key < 0] += n_targets  # a page: n_extra + code
    # The source's part a slice at a time: a whole int64 copy of the sources is 1.6 GB at 200M.
    step = 1 << 22
    for lo in range(0, len(key), step):
        base = src[lo:lo + step].astype(np.int64)
        base *= max(n_targets, 1)
        key[lo:lo + step] += base
    return key


def _pair_rows(keys: np.ndarray, src: np.ndarray, target: np.ndarray, codes: _LinkCodes) -> np.ndarray:
    """The link_pairs row of each link (source page id, target code; -1: none), by its key
    among the pairs' sorted keys (Store._pair_keys)."""
    key = link_pair_keys(src, target, codes.n, codes.n + len(codes.extra_urls))
    if not len(keys):
        return np.full(len(key), -1, np.int32)
    at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
    return np.where(keys[at] == key, at, -1).astype(np.int32)


def _list_code_sql(expr: str, values: Sequence[str]) -> str:
    """SQL for the 0-based index of `expr` in `values` (-1 when NULL or not listed), a TINYINT:
    DuckDB hands a few distinct strings over as codes for pandas categoricals."""
    listed = ", ".join(_sql_literal(v) for v in values)
    return f"coalesce(list_position([{listed}]::VARCHAR[], {expr}) - 1, -1)::TINYINT"


def complete_flows(batch: pa.RecordBatch, is_page: np.ndarray, reasons: Sequence[str]) -> pa.RecordBatch:
    """Rows of flows_view_sql(scan=True) made the link_flows dataset's (DATASET_FLOW_COLUMNS):
    anchor_class and reason from their codes, as Arrow dictionaries (written as Parquet's
    dictionary-encoded texts), and a row whose source is no page (`is_page`, by page id) dropped,
    as the view's join to the source page does. The scan's target_url is link_pairs', set only
    where the target is no stored page."""
    columns = dict(zip(batch.schema.names, batch.columns))
    for name, labels in (("anchor_class", ANCHOR_CLASSES), ("reason", reasons)):
        columns[name] = pa.DictionaryArray.from_arrays(columns[name].cast(pa.int8()), pa.array(labels, pa.string()))
    out = pa.record_batch([columns[n] for n in DATASET_FLOW_COLUMNS], names=list(DATASET_FLOW_COLUMNS))
    if out.column("source_id").null_count:
        out = out.filter(pc.is_valid(out.column("source_id")))
    src = out.column("source_id").to_numpy()
    if not len(src):
        return out
    if src.min() < 0 or src.max() >= len(is_page) or not is_page[src].all():
        inside = (src >= 0) & (src < len(is_page))
        inside[inside] = is_page[src[inside]]
        out = out.filter(pa.array(inside))
    return out


def _parquet_options(batch: pa.RecordBatch) -> dict[str, Any]:
    """pyarrow's ParquetWriter options for columns like these (a batch of their rows):
    * dictionary encoding for numbers with at most one distinct value in 10 rows and texts with
      at most 9 in 10; the rest (a pair's juice, a target's id, a page's URL or title) are written
      plain: at 1M pages their files were smaller or within 15%, and written faster, where pyarrow
      first hashed every value into a dictionary that then overflowed its page;
    * statistics (each row group's min and max) for numbers and for texts in order (a source's
      URL): texts in no order span almost every value in each row group, so no reader skips a row
      group by them, and comparing them took a tenth of the link_flows dataset's writer;
    * Arrow dictionaries (texts of a few values handed over as codes) written as Parquet's
      dictionary-encoded texts, without Arrow's schema, so that readers get the texts back.
    Together, the link_flows dataset's writer a fifth faster at 1M pages, the files no bigger."""
    plain_schema = {"store_schema": not any(pa.types.is_dictionary(t) for t in batch.schema.types)}
    if batch.num_rows < 1000:  # (too few to judge by)
        return plain_schema
    dictionary, statistics = [], []
    for name, column in zip(batch.schema.names, batch.columns):
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if pa.types.is_dictionary(column.type):
            dictionary.append(name)
            continue
        if pc.count_distinct(column, mode="all").as_py() <= (0.9 if text else 0.1) * batch.num_rows:
            dictionary.append(name)
        if not text or pc.all(pc.fill_null(pc.less_equal(column[:-1], column[1:]), True)).as_py():
            statistics.append(name)
    return {"use_dictionary": dictionary, "write_statistics": statistics, **plain_schema}


def _write_parquet_parts(reader: pa.RecordBatchReader, folder: Path, *, rows_per_file: int,
                         row_group_rows: int, writers: int = 2,
                         transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None) -> int:
    """Write the reader's rows as folder/part-0.parquet, part-1.parquet, ... (rows_per_file rows
    each as read, in row groups of row_group_rows, in the reader's order), each file written by a thread
    of its own, `writers` at once (pyarrow releases the GIL), while DuckDB makes the next rows.
    DuckDB's own COPY spent a third of its CPU in the kernel on 10M pages' links (page faults of
    its fresh buffers); this one writes that dataset in 41-44 s instead of 64. Memory stays a
    few row groups per file being written, whatever rows_per_file. Columns are encoded as the
    first batch suggests (_parquet_options). `transform`, when given, makes each batch what is
    written, on the writers' threads. Returns the rows written."""
    open_files: list[tuple[queue.Queue[pa.RecordBatch | None], Future[int]]] = []
    rows = iter(reader)
    first = next(rows, None)
    made = transform or (lambda batch: batch)
    sample = made(first if first is not None else pa.RecordBatch.from_pylist([], schema=reader.schema))
    schema, options = sample.schema, _parquet_options(sample)
    del sample

    def write_file(path: Path, batches: queue.Queue[pa.RecordBatch | None]) -> int:
        with pq.ParquetWriter(path, schema, **options) as out:
            held: list[pa.RecordBatch] = []
            count, rows_out, done = 0, 0, False
            while not done:
                batch = batches.get()
                done = batch is None
                if batch is not None:
                    batch = made(batch)
                    held.append(batch)
                    count += batch.num_rows
                full = count // row_group_rows * row_group_rows if not done else count
                if full:  # whole row groups (and at the end, the rest)
                    table = pa.Table.from_batches(held, schema)
                    out.write_table(table.slice(0, full), row_group_size=row_group_rows)
                    held, count = table.slice(full).to_batches(), count - full
                    rows_out += full
        return rows_out

    def put(item: pa.RecordBatch | None) -> None:
        batches, future = open_files[-1]
        while True:  # (a writer that failed takes no more: its error is raised here)
            try:
                batches.put(item, timeout=0.2)
                return
            except queue.Full:
                if future.done():
                    future.result()
                    raise StoreError("a Parquet writer stopped early") from None

    count = 0
    with ThreadPoolExecutor(writers, thread_name_prefix="linkjuice-parquet") as pool:
        def start() -> None:
            batches: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=4)
            open_files.append((batches, pool.submit(write_file, folder / f"part-{len(open_files)}.parquet", batches)))

        try:
            start()
            for batch in itertools.chain([first] if first is not None else [], rows):
                while batch.num_rows:
                    if count == rows_per_file:
                        put(None)
                        start()
                        count = 0
                    take = min(batch.num_rows, rows_per_file - count)
                    put(batch.slice(0, take))
                    count += take
                    batch = batch.slice(take)
            put(None)
        except BaseException:
            # The file being filled is told to end (its writer is working or starts once an
            # earlier one, told already, is done: its queue has room soon); then the error.
            batches, future = open_files[-1]
            while not future.done():  # (a writer that stops meanwhile takes nothing more)
                try:
                    batches.put(None, timeout=0.2)
                    break
                except queue.Full:
                    continue
            raise
        return sum(future.result() for _, future in open_files)


def flows_view_sql(*, position_weights: Mapping[str, float], relevance_weight: float, use_relevance: bool,
                   anchor_empty: float, anchor_generic: float, anchor_descriptive: float, use_anchor: bool,
                   damping: float, redirect_factor: float, reasons: Sequence[str], scan: bool = False) -> str:
    """The SELECT of the link_flows view: each pair's factors, weight, share and juice, computed
    from link_pairs, pages and scores with the model's constants. The arithmetic is the juice
    model's (pipeline.link_flows, score.juice_rank) in the same order, so it gives the same
    numbers; the view stores nothing per link. With relevance, the pairs beside their cached
    relevance are PAIRS_WITH_RELEVANCE, which Store.write_scores replaces (pairs_with_relevance_sql).

    scan: the view's rows without their pages' URLs, and with anchor_class and reason as codes
    into ANCHOR_CLASSES and `reasons`, for a read of every pair (the link_flows dataset, which
    names pages by id: complete_flows). Joined to the pages three times, a random probe of a
    10M-page hash table per pair and URL, the view's query took nearly twice the CPU of this one
    and the URLs looked up by id (3M pages: 21.5 against 7.4 + 4.5 CPU-s); the view keeps its
    joins, through which DuckDB pushes a filter on any URL into the pairs' scan."""
    a = _sql_double(relevance_weight)
    cos, pairs_from = ("p.relevance::DOUBLE", f"{PAIRS_WITH_RELEVANCE} p") if use_relevance else ("0.0::DOUBLE", "link_pairs p")
    anchor = _anchor_factor_sql(anchor_empty=anchor_empty, anchor_generic=anchor_generic,
                                anchor_descriptive=anchor_descriptive, use_anchor=use_anchor)
    reason = "CASE p.reason " + " ".join(f"WHEN {i} THEN {_sql_literal(r)}" for i, r in enumerate(reasons)) + " END"
    anchor_class = ("CASE p.anchor_class " + " ".join(f"WHEN {i} THEN {_sql_literal(c)}" for i, c in
                                                      enumerate(ANCHOR_CLASSES[:-1])) + f" ELSE {_sql_literal(ANCHOR_CLASSES[-1])} END")
    if scan:  # the URLs are left to the reader (NULL; target_url: link_pairs', set where dst is no page)
        urls = "NULL::VARCHAR AS source_url, p.target_url AS target_url, NULL::VARCHAR AS resolved_url"
        joins = "JOIN page_scores sc ON sc.page_id = p.src"
        # and the texts of a few values as their codes into ANCHOR_CLASSES and `reasons`
        anchor_class = ("CASE p.anchor_class " + " ".join(f"WHEN {i} THEN {i}" for i in range(len(ANCHOR_CLASSES) - 1))
                        + f" ELSE {len(ANCHOR_CLASSES) - 1} END::TINYINT")
        reason = f"CASE WHEN p.reason BETWEEN 0 AND {len(reasons) - 1} THEN p.reason END::TINYINT"
    else:
        urls = "s.url AS source_url, coalesce(t.url, p.target_url) AS target_url, r.url AS resolved_url"
        joins = """JOIN page_scores sc ON sc.page_id = p.src
        JOIN pages s ON s.page_id = p.src
        LEFT JOIN pages t ON t.page_id = p.dst
        LEFT JOIN pages r ON r.page_id = p.resolved"""
    # Lateral aliases start with "lj_" so that none can be mistaken for a column of the tables.
    return f"""
        SELECT {", ".join(FLOW_COLUMNS)} FROM (
        SELECT {urls},
               p.position, p.anchor, p.nofollow,
               {_position_weight_sql("p.position", position_weights)} AS lj_pf, lj_pf AS position_factor,
               {cos} AS lj_cos, lj_cos AS relevance,
               (1.0::DOUBLE - {a}) + {a} * lj_cos AS lj_rf, lj_rf AS relevance_factor,
               {anchor_class} AS anchor_class,
               p.anchor_match, {anchor} AS lj_af, lj_af AS anchor_factor,
               lj_pf * lj_rf * lj_af AS lj_w, lj_w AS weight,
               CASE WHEN sc.out_weight > 0 THEN lj_w / sc.out_weight ELSE 0.0::DOUBLE END AS lj_share, lj_share AS share,
               {_sql_double(damping)} * coalesce(sc.juice, 0.0::DOUBLE) * lj_share AS lj_juice, lj_juice AS juice,
               CASE WHEN p.reason = 0 THEN lj_juice * pow({_sql_double(redirect_factor)}, p.hops::DOUBLE) ELSE 0.0::DOUBLE END AS delivered,
               {reason} AS reason,
               p.src AS source_id, p.dst AS target_id, p.resolved AS resolved_id, p.n_links, p.is_internal
        FROM {pairs_from}
        {joins}
        )"""


# Stands for the pairs beside their relevance in flows_view_sql's SELECT (pairs_with_relevance_sql).
PAIRS_WITH_RELEVANCE = "lj_pairs_with_relevance"
# The pairs are read beside their relevance in slices of at least this many rows, at most this many slices.
_PAIR_SLICE_ROWS = 1 << 21
_PAIR_SLICES = 64
# What is read of link_pairs beside the relevance (a store of an older version also holds a relevance column there).
_PAIR_COLUMNS = ("src, dst, target_url, resolved, reason, hops, nofollow, is_internal, n_links, position, anchor, "
                 "anchor_class, anchor_match")


def pairs_with_relevance_sql(pairs: int, *, positional: bool = False) -> str:
    """A subquery of link_pairs' `pairs` rows (_PAIR_COLUMNS) with their cached relevance
    (pair_relevance's row k belongs to link_pairs' row k), in no fixed order.

    Read in slices of rows (DuckDB pushes the rowid ranges into the scans), each slice's two
    tables joined by rowid, under a UNION ALL whose branches DuckDB runs in parallel. One
    POSITIONAL JOIN of the whole tables was scanned by one thread, and so was everything the view
    did above it (its joins, a Parquet writer); and DuckDB estimated it at 0 rows, so it built
    its hash tables on the pairs and scanned every pair for one page's flows. Joined by rowid,
    DuckDB estimates each slice, builds on the pages and filters the pairs in their scan (10M
    pages: one page's flows 0.1 s instead of ~10 s, a top 50 by juice 27 instead of 48 s).
    positional: each slice joined positionally instead (no hash table of the relevance, for a
    scan of every pair in its written join order: Store.export_dataset)."""
    slices = max(1, min(_PAIR_SLICES, pairs // _PAIR_SLICE_ROWS))
    bounds = [pairs * k // slices for k in range(slices)]
    branches = []
    for k, lo in enumerate(bounds):
        # (the last slice is open-ended: whatever follows its start)
        rows = f"rowid >= {lo}" + (f" AND rowid < {bounds[k + 1]}" if k + 1 < slices else "")
        if positional:
            branches.append(f"SELECT * FROM (SELECT {_PAIR_COLUMNS} FROM link_pairs WHERE {rows}) "
                            f"POSITIONAL JOIN (SELECT relevance FROM pair_relevance WHERE {rows})")
        else:
            branches.append(f"SELECT {_PAIR_COLUMNS}, relevance FROM "
                            f"(SELECT rowid AS lj_row, {_PAIR_COLUMNS} FROM link_pairs WHERE {rows}) "
                            f"LEFT JOIN (SELECT rowid AS lj_row, relevance FROM pair_relevance WHERE {rows}) "
                            f"USING (lj_row)")
    return "(" + " UNION ALL ".join(branches) + ")"


def _anchor_factor_sql(*, anchor_empty: float, anchor_generic: float, anchor_descriptive: float,
                       use_anchor: bool) -> str:
    """SQL for a pair's anchor factor (weights.anchor_factor) from p.anchor_class and p.anchor_match."""
    if not use_anchor:
        return "1.0::DOUBLE"
    base = _sql_double(anchor_descriptive)
    return (f"CASE p.anchor_class WHEN 0 THEN {_sql_double(anchor_empty)} WHEN 1 THEN {_sql_double(anchor_generic)} "
            f"ELSE {base} + (1.0::DOUBLE - {base}) * p.anchor_match END")


def _position_weight_sql(column: str, weights: Mapping[str, float]) -> str:
    """SQL for a link position's weight (NULL counts as content; a position without a weight, 1)."""
    cases = " ".join(f"WHEN {_sql_literal(k)} THEN {_sql_double(v)}" for k, v in weights.items())
    return f"CASE coalesce({column}, 'content') {cases} ELSE 1.0::DOUBLE END"


def _sql_double(value: float) -> str:
    """A DOUBLE literal (a bare 0.3 is a DECIMAL in DuckDB, with other arithmetic)."""
    return f"{float(value)!r}::DOUBLE"


def _sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_url_macros(con: duckdb.DuckDBPyConnection) -> None:
    """SQL twins of the parts of urls.normalize_url that exported URLs need (tools export absolute,
    already-encoded URLs): trim, drop the fragment, lower-case scheme and host, drop default
    ports, "/" for an empty path; resolve "/path" against the site origin; NULL for anything that
    is not http(s)."""
    con.execute(
        "CREATE OR REPLACE TEMP MACRO _lj_path(rest) AS CASE WHEN rest = '' THEN '/' "
        "WHEN starts_with(rest, '?') THEN '/' || rest ELSE rest END"
    )
    con.execute(
        r"CREATE OR REPLACE TEMP MACRO _lj_origin(o) AS regexp_replace(regexp_replace(lower(o), "
        r"'^(http://[^/]+):80$', '\1'), '^(https://[^/]+):443$', '\1')"
    )
    con.execute(
        r"""
        CREATE OR REPLACE TEMP MACRO _lj_abs(t, origin) AS CASE
            WHEN regexp_matches(t, '^(?i)https?://[^/?#\s@]+(?:[/?]|$)')
                THEN _lj_origin(regexp_extract(t, '^([^:]+://[^/?]+)', 1))
                     || replace(_lj_path(regexp_extract(t, '^[^:]+://[^/?]+(.*)$', 1)), ' ', '%20')
            WHEN regexp_matches(t, '^[A-Za-z][A-Za-z0-9+.-]*:') THEN NULL
            WHEN starts_with(t, '//') THEN NULL
            WHEN starts_with(t, '/') AND origin IS NOT NULL THEN origin || t
            ELSE NULL END
        """
    )
    # Fast path first: most exported URLs are already normal (one RE2 match instead of seven).
    con.execute(
        r"CREATE OR REPLACE TEMP MACRO _lj_url(u, origin) AS "
        r"CASE WHEN u IS NULL THEN NULL WHEN regexp_full_match(u, '^https?://[a-z0-9.-]+/[^#\s]*') THEN u "
        r"ELSE _lj_abs(regexp_replace(trim(u), '#.*$', ''), origin) END"
    )


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- crawl comparison (Store.compare): this store is `main`, the older one is attached as lj_old -----
# The links of each crawl by URL, for stores without link pairs (_link_changes_by_id).
_DIFF_VIEWS = """
CREATE OR REPLACE TEMP VIEW d_links_new AS SELECT DISTINCT source_url, target_url FROM main.links
    WHERE is_internal AND source_url <> target_url;
CREATE OR REPLACE TEMP VIEW d_links_old AS SELECT DISTINCT source_url, target_url FROM lj_old.links
    WHERE is_internal AND source_url <> target_url;
"""

_DIFF_QUERIES = {
    "new_broken": "SELECT n.* FROM d_broken_new n ANTI JOIN d_broken_old o USING (source_url, target_url)",
    "fixed_broken": """
        SELECT o.source_url, o.target_url, CASE WHEN f.reason IS NOT NULL THEN 'target now ' || f.reason
            WHEN p.url IS NOT NULL THEN 'link removed' ELSE 'source page gone' END AS how
        FROM d_broken_old o ANTI JOIN d_broken_new n USING (source_url, target_url)
        LEFT JOIN main.link_flows f ON f.source_url = o.source_url AND f.target_url = o.target_url
        LEFT JOIN main.pages p ON p.url = o.source_url""",
    "new_orphans": "SELECT url FROM d_orphans_new ANTI JOIN d_orphans_old USING (url)",
    "fixed_orphans": "SELECT url FROM d_orphans_old ANTI JOIN d_orphans_new USING (url)",
    "juice_moved": """
        SELECT n.url, o.juice AS old_juice, n.juice AS new_juice, o.juice_score AS old_score,
               n.juice_score AS new_score, n.juice_score - o.juice_score AS score_change
        FROM main.scores n JOIN lj_old.scores o USING (url)
        WHERE n.juice IS NOT NULL AND o.juice IS NOT NULL AND n.juice_score IS DISTINCT FROM o.juice_score""",
    "pages_added": "SELECT url, status FROM main.pages ANTI JOIN lj_old.pages USING (url)",
    "pages_removed": "SELECT url, status FROM lj_old.pages ANTI JOIN main.pages USING (url)",
    "links_added": "SELECT n.* FROM d_links_new n ANTI JOIN d_links_old USING (source_url, target_url)",
    "links_removed": "SELECT o.* FROM d_links_old o ANTI JOIN d_links_new USING (source_url, target_url)",
}
# The juice each added (removed) link carries in the new (old) crawl: joined to the changed links
# only, not to every link of both crawls (at 1M pages that join made the diff 96 s and 12.6 GB).
_DIFF_JUICE = {"links_added": "main", "links_removed": "lj_old"}
_DIFF_ORDER = {
    "juice_moved": "abs(score_change) DESC, url", "links_added": "juice DESC NULLS LAST, source_url, target_url",
    "links_removed": "juice DESC NULLS LAST, source_url, target_url",
}


# The links added and removed by page id, where both crawls hold link pairs (_link_changes_by_id).
# A link is its (source URL, target URL): here its source's page id in the newer crawl and its
# target's, or the target URL where that is no page of the newer crawl. The older crawl's pairs
# are put in those terms through a map of its page ids; a pair whose source is no page of the
# newer crawl is removed. Pairs of two page ids are compared as one 64-bit key. The lists name
# each link as its crawl's link_pairs do (src, dst, and target_url where dst is -1): added in the
# newer crawl's ids, removed in the older's; URLs are looked up for the rows shown (_changed_links).
_DIFF_LINKS_BY_ID = """
CREATE OR REPLACE TEMP TABLE d_map AS
    SELECT o.page_id AS old_id, n.page_id AS new_id FROM lj_old.pages o JOIN main.pages n USING (url);
CREATE OR REPLACE TEMP TABLE d_gone AS
    SELECT page_id FROM lj_old.pages ANTI JOIN d_map ON d_map.old_id = page_id;
CREATE OR REPLACE TEMP TABLE d_old_unstored AS
    SELECT o.src, o.target_url, n.page_id AS t FROM lj_old.link_pairs o LEFT JOIN main.pages n ON n.url = o.target_url
    WHERE o.is_internal AND o.dst < 0;
CREATE OR REPLACE TEMP TABLE d_old_keys AS
    SELECT (ms.new_id::BIGINT << 32) | mt.new_id::BIGINT AS k FROM lj_old.link_pairs o
        JOIN d_map ms ON ms.old_id = o.src JOIN d_map mt ON mt.old_id = o.dst
        WHERE o.is_internal AND o.dst >= 0 AND o.dst <> o.src
    UNION ALL
    SELECT (ms.new_id::BIGINT << 32) | o.t::BIGINT FROM d_old_unstored o JOIN d_map ms ON ms.old_id = o.src
        WHERE o.t IS NOT NULL;
CREATE OR REPLACE TEMP TABLE d_new_keys AS
    SELECT (src::BIGINT << 32) | dst::BIGINT AS k FROM main.link_pairs WHERE is_internal AND dst >= 0 AND dst <> src;
CREATE OR REPLACE TEMP TABLE d_old_urls AS
    SELECT ms.new_id AS s, t.url AS u, o.src AS old_src, o.dst AS old_dst FROM lj_old.link_pairs o
        JOIN d_map ms ON ms.old_id = o.src JOIN lj_old.pages t ON t.page_id = o.dst
        WHERE o.is_internal AND o.dst IN (SELECT page_id FROM d_gone)
    UNION ALL
    SELECT ms.new_id, o.target_url, o.src, -1 FROM d_old_unstored o JOIN d_map ms ON ms.old_id = o.src
        WHERE o.t IS NULL;
CREATE OR REPLACE TEMP TABLE d_new_urls AS
    SELECT src AS s, target_url AS u FROM main.link_pairs WHERE is_internal AND dst < 0;
{key_changes}
CREATE OR REPLACE TEMP TABLE d_links_added AS
    SELECT (added >> 32)::INTEGER AS src, (added & 4294967295)::INTEGER AS dst, NULL::VARCHAR AS target_url
        FROM d_key_changes WHERE added IS NOT NULL
    UNION ALL
    SELECT s, -1, u FROM (SELECT s, u FROM d_new_urls ANTI JOIN d_old_urls USING (s, u));
CREATE OR REPLACE TEMP TABLE d_links_removed AS
    SELECT ms.old_id AS src, coalesce(mt.old_id, -1) AS dst, CASE WHEN mt.old_id IS NULL THEN t.url END AS target_url
        FROM (SELECT removed >> 32 AS s, removed & 4294967295 AS t FROM d_key_changes WHERE removed IS NOT NULL) r
        JOIN d_map ms ON ms.new_id = r.s LEFT JOIN d_map mt ON mt.new_id = r.t
        LEFT JOIN main.pages t ON t.page_id = r.t AND mt.old_id IS NULL
    UNION ALL
    SELECT old_src, old_dst, CASE WHEN old_dst < 0 THEN u END
        FROM (SELECT * FROM d_old_urls ANTI JOIN d_new_urls USING (s, u))
    UNION ALL
    SELECT src, dst, CASE WHEN dst < 0 THEN target_url END FROM lj_old.link_pairs
        WHERE is_internal AND dst IS DISTINCT FROM src AND src IN (SELECT page_id FROM d_gone);
"""


# Link keys (of both crawls together) compared at a time by _link_changes_by_id.
_DIFF_KEYS_AT_ONCE = 100_000_000


def _link_changes_by_id(con: duckdb.DuckDBPyConnection) -> bool:
    """Make d_links_added and d_links_removed (src, dst, target_url: as the newer and the older
    crawl's link_pairs name them) from both crawls' link pairs (_DIFF_LINKS_BY_ID) when both hold
    them; False when one does not. By string, every
    link's two URLs of both crawls were hashed into DISTINCT sets, each twice: 20 of the 28 s of
    a 1M-page diff, ~8 minutes and 20 GB at 10M."""
    for catalog in ("main", "lj_old"):
        built = con.execute(f"SELECT value FROM {catalog}.meta WHERE key = 'link_pairs'").fetchall()
        pairs, links = con.execute(f"SELECT EXISTS (SELECT 1 FROM {catalog}.link_pairs), "
                                   f"EXISTS (SELECT 1 FROM {catalog}.links)").fetchall()[0]
        if not built or (links and not pairs):
            return False
    # DuckDB estimates the filtered pairs at a few percent and builds its hash tables on them
    # (10M pages: 12 GB); in the written order it builds on the page map.
    known = {r[0] for r in con.execute("SELECT name FROM duckdb_optimizers()").fetchall()}
    written_order = ",".join(o for o in ("join_order", "build_side_probe_side") if o in known)
    # The keys compared by a FULL OUTER JOIN a range of source pages at a time, each range's hash
    # table within DuckDB's memory (10M pages' 206M keys at once spilled: 33 s instead of 20 s).
    pages = int(con.execute("SELECT count(*) FROM main.pages").fetchall()[0][0])  # type: ignore[index]
    rows = int(con.execute("SELECT (SELECT count(*) FROM main.link_pairs) + (SELECT count(*) FROM lj_old.link_pairs)"
                           ).fetchall()[0][0])  # type: ignore[index]
    ranges = max(1, -(-rows // _DIFF_KEYS_AT_ONCE))
    bounds = [(pages * i // ranges) << 32 for i in range(ranges)] + [(pages + 1) << 32]
    key_changes = "CREATE OR REPLACE TEMP TABLE d_key_changes (added BIGINT, removed BIGINT);" + "".join(
        f"INSERT INTO d_key_changes SELECT n.k, o.k FROM (SELECT k FROM d_new_keys WHERE k >= {lo} AND k < {hi}) n "
        f"FULL OUTER JOIN (SELECT k FROM d_old_keys WHERE k >= {lo} AND k < {hi}) o ON o.k = n.k "
        "WHERE n.k IS NULL OR o.k IS NULL;" for lo, hi in zip(bounds, bounds[1:]))
    for statement in _DIFF_LINKS_BY_ID.format(key_changes=key_changes).split(";"):
        if not statement.strip():
            continue
        keys = "TABLE d_old_keys " in statement and written_order
        if keys:
            con.execute(f"SET disabled_optimizers = '{written_order}'")
        try:
            con.execute(statement)
        finally:
            if keys:
                con.execute("RESET disabled_optimizers")
    for table in ("d_map", "d_gone", "d_old_unstored", "d_old_keys", "d_new_keys", "d_key_changes", "d_old_urls",
                  "d_new_urls"):
        con.execute(f"DROP TABLE {table}")
    return True


def _changed_links(con: duckdb.DuckDBPyConnection, table: str, catalog: str, limit: int) -> tuple[int, pd.DataFrame]:
    """The number of links in `table` (src, dst, target_url of `catalog`'s link pairs) and the
    first `limit` (source_url, target_url, juice), the most juice first (then by URL): each
    link's flow joined by page ids, and URLs looked up for the links that can be shown only
    (a diff of two different 10M-page sites listed 186M added links: as URLs joined to every
    flow by URL, it ran out of memory)."""
    count = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])  # type: ignore[index]
    if not count:
        return 0, pd.DataFrame({"source_url": pd.Series(dtype=object), "target_url": pd.Series(dtype=object),
                                "juice": pd.Series(dtype=float)})
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE d_juiced AS SELECT c.*, f.juice FROM {table} c
        LEFT JOIN (SELECT source_id, target_id, CASE WHEN target_id < 0 THEN target_url ELSE '' END AS u, juice
                   FROM {catalog}.link_flows) f
            ON f.source_id = c.src AND f.target_id = c.dst AND f.u = coalesce(c.target_url, '')""")
    try:
        # Every link with at least the juice of the limit-th (all of them when fewer have any)
        # has its URLs looked up; those put in order, ties by URL.
        cut = con.execute("SELECT juice FROM d_juiced WHERE juice IS NOT NULL ORDER BY juice DESC LIMIT 1 OFFSET ?",
                          [max(int(limit), 1) - 1]).fetchall()
        shown = "juice >= ?" if cut else "true"
        return count, con.execute(
            f"SELECT s.url AS source_url, coalesce(t.url, c.target_url) AS target_url, c.juice "
            f"FROM (SELECT * FROM d_juiced WHERE {shown}) c JOIN {catalog}.pages s ON s.page_id = c.src "
            f"LEFT JOIN {catalog}.pages t ON t.page_id = c.dst "
            "ORDER BY c.juice DESC NULLS LAST, source_url, target_url LIMIT ?",
            [*([cut[0][0]] if cut else []), int(limit)]).df()
    finally:
        con.execute("DROP TABLE d_juiced")


def _flows_view_made(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, Any] | None:
    """What write_scores kept in `catalog`'s meta of its link_flows view (link_flows_view: its
    SELECTs, reasons, pairs and mark), while the view is still the one made with them and
    link_pairs has as many rows; else None (a store scored by another version, or link_pairs
    built again since)."""
    row = con.execute(f"SELECT value FROM {_sql_ident(catalog)}.meta WHERE key = 'link_flows_view'").fetchall()
    try:
        made = json.loads(row[0][0]) if row else None
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(made, dict) or not made.get("select") or not str(made.get("mark", "")).startswith("lj_flows_"):
        return None
    pairs = int(con.execute(f"SELECT count(*) FROM {_sql_ident(catalog)}.link_pairs").fetchall()[0][0])  # type: ignore[index]
    view = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'link_flows' AND NOT internal "
                       "AND schema_name = 'main' AND database_name = ?", [catalog]).fetchall()
    return made if made.get("pairs") == pairs and view and made["mark"] in view[0][0] else None


def _broken_links_sql(con: duckdb.DuckDBPyConnection, catalog: str) -> str | None:
    """The broken links of `catalog`'s crawl (DISTINCT source_url, target_url, reason), as its
    link_flows view has them, from its link pairs' reason codes: the pairs that are broken are
    found first and only theirs get URLs (through the view, every pair was joined to its pages'
    URLs first: 22 s at 10M pages). None when the view's reasons are not known (a store scored by
    an older version, or link_pairs built again since)."""
    made = _flows_view_made(con, catalog)
    if made is None or not made.get("reasons"):
        return None
    codes = {i: r for i, r in enumerate(made["reasons"]) if r in ("broken", "redirect_broken")}
    if not codes:
        return None
    reason = "CASE p.reason " + " ".join(f"WHEN {i} THEN {_sql_literal(r)}" for i, r in codes.items()) + " END"
    return (f"SELECT DISTINCT s.url AS source_url, coalesce(t.url, p.target_url) AS target_url, {reason} AS reason "
            f"FROM {catalog}.link_pairs p JOIN {catalog}.page_scores sc ON sc.page_id = p.src "
            f"JOIN {catalog}.pages s ON s.page_id = p.src LEFT JOIN {catalog}.pages t ON t.page_id = p.dst "
            f"WHERE p.reason IN ({', '.join(map(str, codes))})")


def _crawl_sets(con: duckdb.DuckDBPyConnection, catalog: str, side: str) -> None:
    """d_broken_{side} (source_url, target_url, reason) and d_orphans_{side} (url) of `catalog`'s
    crawl, made once (each list reads two of them; as views, each was made again for each: 22 s a
    time at 10M pages). The broken links by their pairs' reason codes where the view's reasons are
    known, else through the view; orphans only where a sitemap lists URLs."""
    broken = _broken_links_sql(con, catalog) or (
        f"SELECT DISTINCT source_url, target_url, reason FROM {catalog}.link_flows "
        "WHERE reason IN ('broken', 'redirect_broken')")
    listed = con.execute(f"SELECT EXISTS (SELECT 1 FROM {catalog}.sitemap_entries)").fetchall()[0][0]
    orphans = "SELECT NULL::VARCHAR AS url WHERE false"
    if listed:
        orphans = (f"SELECT DISTINCT e.url FROM {catalog}.sitemap_entries e WHERE coalesce(e.in_scope, true) "
                   f"AND NOT EXISTS (SELECT 1 FROM {catalog}.link_flows f WHERE NOT f.nofollow "
                   "AND f.source_url <> e.url AND (f.target_url = e.url OR f.resolved_url = e.url))")
    con.execute(f"CREATE OR REPLACE TEMP TABLE d_broken_{side} AS {broken}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE d_orphans_{side} AS {orphans}")


def _compare(con: duckdb.DuckDBPyConnection, limit: int) -> dict[str, Any]:
    _crawl_sets(con, "main", "new")
    _crawl_sets(con, "lj_old", "old")
    for statement in _DIFF_VIEWS.split(";"):
        if statement.strip():
            con.execute(statement)
    queries = dict(_DIFF_QUERIES)
    if not con.execute("SELECT EXISTS (SELECT 1 FROM d_broken_old ANTI JOIN d_broken_new USING (source_url, target_url))"
                       ).fetchall()[0][0]:  # (none fixed: no join to every flow of the newer crawl)
        queries["fixed_broken"] = ("SELECT NULL::VARCHAR AS source_url, NULL::VARCHAR AS target_url, "
                                   "NULL::VARCHAR AS how WHERE false")
    out: dict[str, Any] = {"counts": {}}
    if _link_changes_by_id(con):
        for name, catalog in _DIFF_JUICE.items():
            del queries[name]
            out["counts"][name], out[name] = _changed_links(con, f"d_{name}", catalog, limit)
    for name, query in queries.items():
        # Each part is computed once: its count and its top rows are read from the result.
        con.execute(f"CREATE OR REPLACE TEMP TABLE d_part AS {query}")
        out["counts"][name] = int(con.execute("SELECT count(*) FROM d_part").fetchall()[0][0])  # type: ignore[index]
        source = "d_part"
        if name in _DIFF_JUICE and not out["counts"][name]:  # (the join reads every flow: not for no rows)
            source = "(SELECT *, NULL::DOUBLE AS juice FROM d_part)"
        elif name in _DIFF_JUICE:
            source = (f"(SELECT d.source_url, d.target_url, max(f.juice) AS juice FROM d_part d "
                      f"LEFT JOIN {_DIFF_JUICE[name]}.link_flows f USING (source_url, target_url) GROUP BY ALL)")
        order = _DIFF_ORDER.get(name, "ALL")
        out[name] = con.execute(f"SELECT * FROM {source} ORDER BY {order} LIMIT ?", [int(limit)]).df()
    for table in ("d_part", "d_links_added", "d_links_removed", "d_broken_new", "d_broken_old", "d_orphans_new",
                  "d_orphans_old"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return out

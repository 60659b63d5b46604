"""A link graph from elsewhere: Screaming Frog "All Inlinks" or a generic edge list -> a store.

The file never passes through Python rows: Python reads the header (to recognise the layout and
map columns), then DuckDB reads the file itself (read_csv / read_parquet) with INSERT ... SELECT,
so a 20M-row export imports in bounded memory. Pages are derived in SQL from the edges; then the
usual pipeline (finalize: page ids, indexability, depths; score) runs on the result.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..errors import InputFileError, UsageError
from ..urls import normalize_url
from .common import import_store
from .formats import EDGE_REQUIRED, EdgeColumns, detect_edge_list, find_column
from .reader import ExportFile, normalize_header, find_header
from .report import ImportReport, SkippedRows

__all__ = ["import_links", "SF_LINK_POSITIONS"]

# Screaming Frog's Link Position values -> our positions (FORMATS.md 6); our own names are
# accepted too, for generic edge lists. Anything else (custom positions, "Head") counts as content.
SF_LINK_POSITIONS: dict[str, str] = {
    "content": "content", "navigation": "nav", "nav": "nav", "header": "header", "footer": "footer",
    "sidebar": "aside", "aside": "aside",
}
_SF_LINK_TYPES = ("Hyperlink",)  # only hyperlinks are edges of the link graph (as pagerankr does)
_SF_REDIRECT_TYPES = ("HTTP Redirect", "Meta Refresh", "JavaScript Redirect", "JS Redirect")
_SF_CANONICAL_TYPES = ("HTML Canonical", "HTTP Canonical")
_DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "utf-16": "utf-16", "cp1252": "latin-1"}


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputFileError(f"is not a readable Parquet file ({exc})", path=str(path)) from None


def _missing(names: list[str], fields: list[str], display: str, line: int | None) -> InputFileError:
    missing = [f"{field} ({', '.join(aliases[:4])}...)" for field, aliases in EDGE_REQUIRED.items()
               if find_column(names, aliases) is None]
    found = ", ".join(f for f in fields if f.strip()) or "none"
    return InputFileError(f"missing the {' and '.join(missing)} column of a link table (found: {found})",
                          path=display, line=line)


def import_links(db: str | Path, path: str | Path, *, start_url: str | None = None,
                 score: bool = True) -> ImportReport:
    """Build a store from a link export instead of a crawl (or replace an earlier import).

    Screaming Frog All Inlinks: only `Hyperlink` rows are links; `HTTP Redirect` rows give
    redirects and `HTML Canonical` rows canonicals; Status Code is the destination's status;
    Link Position maps to our positions. Generic edge lists: source, target and optional anchor,
    position, rel, nofollow/follow, status (of the target). Pages that appear as sources get
    status 200 unless the file says otherwise; targets the file gives no status for stay NULL
    ("not crawled").
    """
    file_path = Path(path)
    if not file_path.exists():
        raise InputFileError("no such file", path=str(file_path))
    if file_path.is_dir():
        raise InputFileError("is a folder, not a file", path=str(file_path))
    if start_url is not None:
        given = normalize_url(start_url)
        if given is None:
            raise UsageError(f"--start-url {start_url!r} is not an http(s) URL")
        start_url = given
    with file_path.open("rb") as stream:
        is_parquet = stream.read(4) == b"PAR1"
    if is_parquet:
        fields = _parquet_columns(file_path)
        names = [normalize_header(f) for f in fields]
        edge = detect_edge_list(names)
        if edge is None:
            raise _missing(names, fields, str(file_path), None)
        columns = {field: fields[i] for field, i in edge.columns.items()}
        csv_options = None
        layout = f"{edge.label}, Parquet"
    else:
        file = ExportFile(file_path)
        header = find_header(file, detect_edge_list)
        if header.match is None:
            raise _missing(list(header.names), list(header.fields), file.display, header.line)
        edge = header.match
        encoding = _DUCKDB_ENCODINGS.get(file.encoding)
        if encoding is None:
            raise InputFileError(f"is {file.encoding_label} without a byte-order mark; save it as UTF-8", path=file.display)
        columns = {field: f"c{i}" for field, i in edge.columns.items()}
        csv_options = {"delimiter": header.delimiter, "encoding": encoding, "skip": header.line,
                       "ncols": len(header.fields)}
        layout = f"{edge.label}, {file.encoding_label}, {header.delimiter_label}-separated"
    source = "import:screaming-frog" if edge.screaming_frog else "import:edge-list"
    with import_store(db, file_path) as store:
        if store.holds_crawl():
            raise UsageError(f"{db} holds a crawl: import links into a new store (another --db)")
        result = store.import_link_graph(
            path=str(file_path), file_format="parquet" if is_parquet else "csv", columns=columns,
            csv_options=csv_options,
            link_types=_SF_LINK_TYPES if edge.screaming_frog else None,
            redirect_types=_SF_REDIRECT_TYPES if edge.screaming_frog else (),
            canonical_types=_SF_CANONICAL_TYPES if edge.screaming_frog else (),
            position_map=SF_LINK_POSITIONS, default_position="content", start_url=start_url,
            meta={"source": source, "imported_from": str(file_path.resolve()), "linkjuice_version": __version__,
                  "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "status": "finished", "stop_reason": "imported"},
        )
        # Imported lazily: the pipeline may itself use this package (backlinks in the model).
        from ..pipeline import finalize_store, score_store

        finalize_store(store)
        if score:
            score_store(store)
    return _report(str(file_path), layout, edge, result, scored=score)


def _report(path: str, layout: str, edge: EdgeColumns, result: dict, *, scored: bool) -> ImportReport:
    skipped: list[SkippedRows] = []
    notes = [f"{result['pages']} pages, start URL {result['start_url']}"]
    unknown_positions: list[str] = []
    for reason, count, example in result["skipped"]:
        if reason.startswith("note:position:"):
            unknown_positions.append(f"{reason.removeprefix('note:position:')} ({count})")
        elif reason.startswith("note:"):
            notes.append(f"{count} {reason.removeprefix('note:')} used for the pages they describe")
        else:
            skipped.append(SkippedRows(reason=reason, count=count, example=example))
    if result["rejected"]:
        skipped.append(SkippedRows(reason="malformed CSV row (wrong number of fields or bad quoting)",
                                   count=result["rejected"], lines=tuple(result["rejected_lines"])))
    if result["redirects"]:
        notes.append(f"{result['redirects']} redirects")
    if result["canonicalised"]:
        notes.append(f"{result['canonicalised']} pages canonicalised elsewhere")
    if unknown_positions:
        notes.append("link positions not recognised, counted as content: " + ", ".join(unknown_positions[:8]))
    if "position" not in edge.columns:
        notes.append("the file has no link position column: every link counts as content")
    if "status" not in edge.columns:
        notes.append("the file gives no status codes: sources count as 200, other targets as not crawled")
    notes.append("scored" if scored else "not scored (run `linkjuice score`)")
    return ImportReport(kind="links", path=path, format=layout, rows=result["links"], table="links",
                        skipped=tuple(skipped), notes=tuple(notes))

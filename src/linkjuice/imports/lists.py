"""URL lists, GA4 landing pages, Search Console performance and priorities: small tables keyed by URL.

Each function parses its file row by row (bounded memory), reports the rows it skipped with their
line numbers, and replaces its table in one transaction.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from ..errors import InputFileError
from ..store import Store
from .common import BatchWriter, fail_if_empty, import_store, site_base
from .formats import (
    GA4_PAGE_COLUMNS,
    GSC_QUERY_COLUMNS,
    GSC_REQUIRED,
    URL_COLUMN_ALIASES,
    WEIGHT_COLUMN_ALIASES,
    GscColumns,
    detect_gsc_performance,
    find_column,
    parse_number,
    to_url,
)
from .reader import ExportFile, Header, find_header, records
from .report import ImportReport, SkipTally

__all__ = ["import_urls", "import_gsc", "import_priorities"]

_URL_SCHEMA = pa.schema([("url", pa.string())])
_GSC_SCHEMA = pa.schema([("url", pa.string()), ("clicks", pa.float64()), ("impressions", pa.float64()),
                         ("ctr", pa.float64()), ("position", pa.float64())])
_PRIORITY_SCHEMA = pa.schema([("url", pa.string()), ("weight", pa.float64())])
_NOT_PAGES = frozenset({"(not set)", "(other)", "(not provided)"})
_TOTAL_ROWS = frozenset({"total", "totals", "grand total", "gesamtsumme", "summe", "total général"})


def _first_content_line(file: ExportFile) -> tuple[int, str]:
    for number, line in file.lines():
        text = line.strip()
        if text and not text.startswith("#"):
            return number, text
    raise InputFileError("holds no data (only blank or '#' comment lines)", path=file.display)


def _looks_like_url(text: str) -> bool:
    value = text.strip().strip('"').lower()
    return value.startswith(("http://", "https://", "/", "www.")) or to_url(value.split("\t")[0], None) is not None


def _url_reason(value: str, base: str | None) -> str:
    text = value.strip()
    if text.startswith("/") and not text.startswith("//") and base is None:
        return "a path, and the site is unknown (give --base-url)"
    return "not an http(s) URL"


def _plain_lines(file: ExportFile) -> Iterator[tuple[int, str]]:
    """A headerless list: one URL per line ('#' lines are comments). Commas are part of URLs, so
    lines are not split at commas; a tab ends the URL (a pasted spreadsheet column)."""
    for number, line in file.lines():
        text = line.strip()
        if text and not text.startswith("#"):
            yield number, text.split("\t", 1)[0].strip().strip('"')


def _missing_url_column(file: ExportFile, header: Header[int]) -> InputFileError:
    found = ", ".join(f for f in header.fields if f.strip()) or "none"
    return InputFileError(
        f"no URL column: expected one of {', '.join(URL_COLUMN_ALIASES[:8])}, ... (found: {found})",
        path=file.display, line=header.line,
    )


# -- URL lists and GA4 ------------------------------------------------------------------------
def import_urls(db: str | Path, path: str | Path, *, base_url: str | None = None,
                replace_all: bool = False) -> ImportReport:
    """Import URLs that exist or matter (for orphan detection) into `imported_urls`.

    Reads a plain list (one URL per line), a CSV with a URL-like column (url, address, page...)
    or a GA4 landing-page/pages export (paths, resolved against the site). Rows are stored under
    the source "<kind>:<file name>": importing the same file again replaces its rows, other files'
    rows stay (unless `replace_all`).
    """
    file = ExportFile(path)
    with import_store(db, path) as store:
        base = site_base(store, base_url)
        _, first = _first_content_line(file)
        tally = SkipTally()
        if _looks_like_url(first):
            kind, label, values = "list", "plain URL list", _plain_lines(file)
        else:
            header = find_header(file, lambda names: find_column(names, URL_COLUMN_ALIASES))
            if header.match is None:
                raise _missing_url_column(file, header)
            column = header.match
            ga4 = header.names[column] in GA4_PAGE_COLUMNS
            kind = "ga4" if ga4 else "csv"
            label = (f"GA4 export ({header.fields[column]})" if ga4
                     else f"CSV, URL column {header.fields[column]!r} ({header.delimiter_label}-separated)")
            values = _column_values(file, header, column, tally, stop_at_blank=ga4)
        writer = BatchWriter(_URL_SCHEMA)

        def batches() -> Iterator[pa.Table]:
            for line, value in values:
                if value.strip().lower() in _NOT_PAGES:
                    tally.add(f"not a page ({value.strip()})", line)
                    continue
                if value.strip().lower() in _TOTAL_ROWS:
                    tally.add("total row", line)
                    continue
                url = to_url(value, base)
                if url is None:
                    tally.add(_url_reason(value, base), line)
                    continue
                if (batch := writer.add(url)) is not None:
                    yield batch
            if (batch := writer.flush()) is not None:
                yield batch
            fail_if_empty(writer.rows, tally, file.display, "URLs")

        source = f"{kind}:{Path(path).name}"
        stored = store.replace_imported_urls(batches(), source=source, replace_all=replace_all)
        notes = _coverage_note(store, "imported_urls")
        return ImportReport(kind="urls", path=str(path), format=f"{label}, {file.encoding_label}", rows=stored,
                            table="imported_urls", skipped=tally.result(),
                            notes=(f"stored under source {source!r}", *notes))


def _column_values(file: ExportFile, header: Header[int], column: int, tally: SkipTally, *,
                   stop_at_blank: bool = False) -> Iterator[tuple[int, str]]:
    for line, row in records(file, header, stop_at_blank=stop_at_blank):
        if column >= len(row):
            tally.add("row has fewer fields than the header", line)
            continue
        yield line, row[column]


def _coverage_note(store: Store, table: str) -> tuple[str, ...]:
    total, on_pages = store.imported_on_pages(table)
    if not store.counts()["pages"]:
        return ("the store holds no crawl yet: URLs will be matched to pages after a crawl or `import links`",)
    return (f"{on_pages} of {total} URLs are pages of the crawl",)


# -- Search Console performance ---------------------------------------------------------------
def _gsc_member(path: Path) -> str | None:
    """The pages table inside a Search Console export zip (Pages.csv, or whichever CSV member has
    a pages header, which also finds localised file names); None when `path` is not a zip."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.lower().endswith(".csv")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputFileError(f"is not a readable zip archive ({exc})", path=str(path)) from None
    for name in members:
        if Path(name).name.lower() == "pages.csv":
            return name
    for name in members:
        try:
            if find_header(ExportFile(path, member=name), detect_gsc_performance).match is not None:
                return name
        except InputFileError:
            continue
    listed = ", ".join(Path(n).name for n in members) or "no CSV files"
    raise InputFileError(f"is a zip without a Search Console pages table (Pages.csv); it holds {listed}", path=str(path))


def _percent(text: str, decimal_comma: bool) -> float | None:
    value = parse_number(text, decimal_comma=decimal_comma)
    if value is None:
        return None
    # "12.5%" is a percentage; without a sign, values above 1 are percentages too.
    return value / 100.0 if "%" in text or value > 1 else value


def import_gsc(db: str | Path, path: str | Path, *, base_url: str | None = None) -> ImportReport:
    """Import a Search Console performance export (Pages.csv, or the export zip) into `gsc`.

    CTR is stored as a fraction (12.5% -> 0.125). Files with ';' separators use decimal commas
    (German and other European exports).
    """
    member = _gsc_member(Path(path))
    file = ExportFile(path, member=member)
    header = find_header(file, detect_gsc_performance)
    if header.match is None:
        raise _gsc_missing(file, header)
    cols: GscColumns = header.match
    decimal_comma = header.delimiter == ";"
    with import_store(db, path) as store:
        base = site_base(store, base_url)
        tally = SkipTally()
        writer = BatchWriter(_GSC_SCHEMA)
        need = max(c for c in (cols.page, cols.clicks, cols.impressions, cols.ctr, cols.position) if c is not None)

        def batches() -> Iterator[pa.Table]:
            for line, row in records(file, header):
                if len(row) <= need:
                    tally.add("row has fewer fields than the header", line)
                    continue
                url = to_url(row[cols.page], base)
                if url is None:
                    tally.add("page " + _url_reason(row[cols.page], base), line)
                    continue
                try:
                    clicks = parse_number(row[cols.clicks], decimal_comma=decimal_comma)
                except ValueError:
                    tally.add("clicks is not a number", line)
                    continue
                try:
                    impressions = parse_number(row[cols.impressions], decimal_comma=decimal_comma)
                except ValueError:
                    tally.add("impressions is not a number", line)
                    continue
                try:
                    ctr = _percent(row[cols.ctr], decimal_comma) if cols.ctr is not None else None
                except ValueError:
                    tally.add("CTR is not a number", line)
                    continue
                try:
                    position = parse_number(row[cols.position], decimal_comma=decimal_comma) if cols.position is not None else None
                except ValueError:
                    tally.add("position is not a number", line)
                    continue
                if ctr is None and clicks is not None and impressions:
                    ctr = clicks / impressions
                if (batch := writer.add(url, clicks or 0.0, impressions or 0.0, ctr, position)) is not None:
                    yield batch
            if (batch := writer.flush()) is not None:
                yield batch
            fail_if_empty(writer.rows, tally, file.display, "pages")

        stored = store.replace_gsc(batches())
        notes = _coverage_note(store, "gsc")
        label = (f"Search Console pages ({header.fields[cols.page]}), {file.encoding_label}, "
                 f"{header.delimiter_label}-separated{', decimal commas' if decimal_comma else ''}")
        return ImportReport(kind="gsc", path=file.display, format=label, rows=stored, table="gsc",
                            skipped=tally.result(), notes=notes)


def _gsc_missing(file: ExportFile, header: Header[GscColumns]) -> InputFileError:
    if find_column(header.names, GSC_QUERY_COLUMNS) is not None:
        return InputFileError("is the Queries table of a Search Console export; import Pages.csv (or the whole zip)",
                              path=file.display, line=header.line)
    missing = [aliases[0].title() if name != "page" else "Top pages (or Page)"
               for name, aliases in GSC_REQUIRED.items() if find_column(header.names, aliases) is None]
    found = ", ".join(f for f in header.fields if f.strip()) or "none"
    return InputFileError(f"missing column {' and '.join(repr(m) for m in missing)} of a Search Console "
                          f"performance export (found: {found})", path=file.display, line=header.line)


# -- priorities -------------------------------------------------------------------------------
def _split_weight(text: str) -> tuple[str, str]:
    """A headerless "url[<sep>weight]" line: the weight is the last field when it is a number."""
    for delimiter in ("\t", ";", ","):
        if delimiter in text:
            head, _, tail = text.rpartition(delimiter)
            try:
                parse_number(tail, decimal_comma=delimiter == ";")
            except ValueError:
                continue
            return head.strip().strip('"'), tail
    return text.strip('"'), ""


def import_priorities(db: str | Path, path: str | Path, *, base_url: str | None = None) -> ImportReport:
    """Import the user's money pages, `url[,weight]` (weight defaults to 1), into `priorities`."""
    file = ExportFile(path)
    with import_store(db, path) as store:
        base = site_base(store, base_url)
        _, first = _first_content_line(file)
        tally = SkipTally()
        decimal_comma = False
        if _looks_like_url(first):
            label = "headerless url[,weight] list"
            rows: Iterator[tuple[int, str, str]] = ((n, *_split_weight(t)) for n, t in _content_lines(file))
        else:
            header = find_header(file, lambda names: find_column(names, URL_COLUMN_ALIASES))
            if header.match is None:
                raise _missing_url_column(file, header)
            weight_col = find_column(header.names, WEIGHT_COLUMN_ALIASES)
            decimal_comma = header.delimiter == ";"
            label = f"CSV, URL column {header.fields[header.match]!r}" + (
                f", weight column {header.fields[weight_col]!r}" if weight_col is not None else ", no weight column")
            rows = _url_weight_rows(file, header, header.match, weight_col, tally)
        writer = BatchWriter(_PRIORITY_SCHEMA)

        def batches() -> Iterator[pa.Table]:
            for line, value, weight_text in rows:
                url = to_url(value, base)
                if url is None:
                    tally.add(_url_reason(value, base), line)
                    continue
                try:
                    weight = parse_number(weight_text, decimal_comma=decimal_comma)
                except ValueError:
                    tally.add("weight is not a number", line)
                    continue
                if weight is not None and weight < 0:
                    tally.add("weight is negative", line)
                    continue
                if (batch := writer.add(url, 1.0 if weight is None else weight)) is not None:
                    yield batch
            if (batch := writer.flush()) is not None:
                yield batch
            fail_if_empty(writer.rows, tally, file.display, "URLs")

        stored = store.replace_priorities(batches())
        return ImportReport(kind="priorities", path=str(path), format=f"{label}, {file.encoding_label}", rows=stored,
                            table="priorities", skipped=tally.result(), notes=_coverage_note(store, "priorities"))


def _content_lines(file: ExportFile) -> Iterator[tuple[int, str]]:
    for number, line in file.lines():
        text = line.strip()
        if text and not text.startswith("#"):
            yield number, text


def _url_weight_rows(file: ExportFile, header: Header[int], url_col: int, weight_col: int | None,
                     tally: SkipTally) -> Iterator[tuple[int, str, str]]:
    for line, row in records(file, header):
        if url_col >= len(row):
            tally.add("row has fewer fields than the header", line)
            continue
        weight = row[weight_col] if weight_col is not None and weight_col < len(row) else ""
        yield line, row[url_col], weight

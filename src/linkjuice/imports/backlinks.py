"""Backlink exports (Ahrefs, Semrush, Majestic, Moz, Search Console links, generic CSV) -> `backlinks`.

The tool is recognised by its header row; each row becomes one backlink (target URL as given,
source URL, referring domain, the tool's authority metric, nofollow, anchor). Which crawled page a
backlink credits is decided later, when scoring: `resolve_backlink_targets` follows the target's
redirects and canonical to the page that receives the juice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..errors import InputFileError, UsageError
from ..store import Store
from ..urls import host_of
from .common import BatchWriter, fail_if_empty, import_store, site_base
from .formats import (
    BACKLINK_FORMATS,
    GENERIC_BACKLINKS,
    GSC_LINKS_TOP_PAGES,
    GSC_LINKS_TOP_SITES,
    BacklinkFormat,
    domain_of,
    find_column,
    is_lost,
    parse_flag,
    parse_number,
    to_url,
)
from .reader import ExportFile, Header, find_header, records
from .report import ImportReport, SkipTally

__all__ = ["import_backlinks", "resolve_backlink_targets", "backlink_authority", "detect_backlink_format"]

_SCHEMA = pa.schema([
    ("target_url", pa.string()), ("source_url", pa.string()), ("source_domain", pa.string()),
    ("authority", pa.float64()), ("nofollow", pa.bool_()), ("anchor", pa.string()), ("tool", pa.string()),
])
_NOFOLLOW_TOKENS = ("nofollow", "ugc", "sponsored")


def detect_backlink_format(names: Sequence[str]) -> BacklinkFormat | None:
    """The export layout a normalised header row belongs to (tools first, then generic)."""
    for fmt in BACKLINK_FORMATS:
        if fmt.matches(names):
            return fmt
    return GENERIC_BACKLINKS if GENERIC_BACKLINKS.matches(names) else None


def resolve_backlink_targets(store: Store) -> pd.DataFrame:
    """Map every distinct backlinks.target_url to the crawled page that receives its juice.

    Columns: target_url; matched_by ('exact', 'variant' when only the scheme, "www." or a trailing
    slash differ, None when no stored page matches); matched_url; page_url and page_id of the
    credited page (the matched page, then the end of its redirect chain, then its canonical when
    it is canonicalised), None when the juice reaches no stored page (external target, redirect
    loop or a redirect leaving the site); indexable. page_id is pages.page_id, set by finalize.
    """
    return store.backlink_targets()


def backlink_authority(store: Store, *, include_nofollow: bool = False) -> pd.DataFrame:
    """Per credited page (page_id): referring_domains, authority_sum (each referring domain's
    highest authority, summed) and domains_with_authority. Nofollow backlinks are left out unless
    `include_nofollow`. Input for the teleport vector of the juice model."""
    return store.backlink_authority(include_nofollow=include_nofollow)


class _Columns:
    """Column indices of one backlink layout in one file."""

    def __init__(self, fmt: BacklinkFormat, names: Sequence[str], fields: Sequence[str]) -> None:
        def one(aliases: Sequence[str]) -> int | None:
            return find_column(names, aliases)

        def every(aliases: Sequence[str]) -> list[int]:
            return [names.index(a) for a in aliases if a in names]

        self.target = one(fmt.target)
        self.source_url = one(fmt.source_url)
        self.source_domain = one(fmt.source_domain)
        self.authority = one(fmt.authority)
        self.anchor = one(fmt.anchor)
        self.nofollow = every(fmt.nofollow)
        self.follow = every(fmt.follow)
        self.rel = every(fmt.rel)
        self.lost = every(fmt.lost)
        self.origin = one(fmt.origin)
        self.count = one(("linking sites",)) if fmt is GSC_LINKS_TOP_PAGES else None
        self.authority_name = fields[self.authority].strip() if self.authority is not None else None


def _missing_columns(file: ExportFile, header: Header[BacklinkFormat]) -> InputFileError:
    names = header.names
    missing = []
    if find_column(names, GENERIC_BACKLINKS.target) is None:
        missing.append("a target URL column ('Target URL', 'target', 'destination'...)")
    if find_column(names, GENERIC_BACKLINKS.source_url + GENERIC_BACKLINKS.source_domain) is None:
        missing.append("a source URL or domain column ('Source URL', 'Referring page URL', 'domain'...)")
    found = ", ".join(f for f in header.fields if f.strip()) or "none"
    return InputFileError(
        f"not a known backlink export and missing {' and '.join(missing)} (found: {found})",
        path=file.display, line=header.line,
    )


def import_backlinks(db: str | Path, path: str | Path, *, base_url: str | None = None,
                     target: str | None = None, append: bool = False) -> ImportReport:
    """Import a backlink export into `backlinks` (replacing it, or adding with `append`).

    `target` names the linked page for exports that do not (Search Console "Latest links" exported
    from one target page). Rows whose source is on the crawled site are internal links, not
    backlinks, and are skipped.
    """
    file = ExportFile(path)
    header = find_header(file, detect_backlink_format)
    if header.match is None:
        raise _missing_columns(file, header)
    fmt = header.match
    if fmt is GSC_LINKS_TOP_SITES:
        raise InputFileError("is Search Console's 'Top linking sites' table, which names no linked pages: "
                             "export 'Top linked pages' or 'Latest links' instead", path=file.display, line=header.line)
    cols = _Columns(fmt, header.names, header.fields)
    with import_store(db, path) as store:
        base = site_base(store, base_url)
        fixed_target = None
        if target is not None:
            fixed_target = to_url(target, base)
            if fixed_target is None:
                raise UsageError(f"--target {target!r} is not an http(s) URL (or a path with a known site)")
        elif cols.target is None:
            raise UsageError(f"{file.display} is a {fmt.label} export, which does not say which page is linked: "
                             "give that page with --target URL")
        start = store.meta().get("start_url")
        site = domain_of(str(start)) if start else None
        tally = SkipTally()
        writer = BatchWriter(_SCHEMA)
        ncols = len(header.fields)

        def batches() -> Iterator[pa.Table]:
            for line, row in records(file, header):
                if len(row) != ncols:
                    if len(row) > ncols and not any(cell.strip() for cell in row[ncols:]):
                        row = row[:ncols]  # trailing empty fields
                    else:
                        tally.add("wrong number of fields", line)
                        continue
                for values in _backlinks_of(row, line, fmt, cols, tally, base, fixed_target, site):
                    if (batch := writer.add(*values)) is not None:
                        yield batch
            if (batch := writer.flush()) is not None:
                yield batch
            fail_if_empty(writer.rows, tally, file.display, "backlinks")

        added = store.replace_backlinks(batches(), append=append)
        notes = [f"authority metric: {header.fields[cols.authority]}" if cols.authority is not None
                 else "no authority metric in this export: backlinks count by referring domain only"]
        if fmt is GSC_LINKS_TOP_PAGES:
            notes.append("Search Console gives counts, not links: each linked page gets one row per linking site "
                         "(source_domain 'gsc:linking-site-N')")
        notes.extend(_resolution_notes(store))
        label = f"{fmt.label}, {file.encoding_label}, {header.delimiter_label}-separated"
        return ImportReport(kind="backlinks", path=str(path), format=label, rows=added, table="backlinks",
                            skipped=tally.result(), notes=tuple(notes))


def _backlinks_of(row: list[str], line: int, fmt: BacklinkFormat, cols: _Columns, tally: SkipTally,
                  base: str | None, fixed_target: str | None, site: str | None) -> Iterator[tuple[object, ...]]:
    """The backlink rows one export row stands for (none when skipped, several for GSC counts)."""
    if any(is_lost(row[i]) for i in cols.lost):
        tally.add("lost link (the export marks it as gone)", line)
        return
    if cols.origin is not None and row[cols.origin].strip().lower() == "internal":
        tally.add("internal link (Origin: Internal)", line)
        return
    if fixed_target is not None:
        target = fixed_target
    else:
        raw = row[cols.target].strip()  # type: ignore[index]
        if not raw:
            tally.add("target URL missing", line)
            return
        target = to_url(raw, base)
        if target is None:
            tally.add("target is a path, and the site is unknown (give --base-url)"
                      if raw.startswith("/") and base is None else "target is not an http(s) URL", line)
            return
    if cols.count is not None:  # Search Console "Top linked pages": one row per linking site
        try:
            sites = parse_number(row[cols.count]) or 0
        except ValueError:
            tally.add("linking sites is not a number", line)
            return
        for k in range(1, int(sites) + 1):
            yield target, None, f"gsc:linking-site-{k}", None, None, None, fmt.tool
        return
    source_url = None
    if cols.source_url is not None and row[cols.source_url].strip():
        source_url = to_url(row[cols.source_url], None)
        if source_url is None:
            tally.add("source is not an http(s) URL", line)
            return
    domain = None
    if cols.source_domain is not None and row[cols.source_domain].strip():
        domain = domain_of(row[cols.source_domain])
    if domain is None and source_url is not None:
        domain = domain_of(host_of(source_url))
    if domain is None:
        tally.add("no source URL or domain", line)
        return
    if site is not None and domain == site:
        tally.add("internal link (the source is on the crawled site)", line)
        return
    authority = None
    if cols.authority is not None:
        try:
            authority = parse_number(row[cols.authority])
        except ValueError:
            tally.add(f"{cols.authority_name} is not a number", line)
            return
    anchor = row[cols.anchor].strip() if cols.anchor is not None else None
    yield target, source_url, domain, authority, _nofollow(row, fmt, cols), anchor or None, fmt.tool


def _nofollow(row: list[str], fmt: BacklinkFormat, cols: _Columns) -> bool | None:
    """True when any nofollow/ugc/sponsored signal is set, False when the export says followed,
    None when it does not say (Search Console)."""
    signals: list[bool | None] = []
    for i in cols.nofollow:
        value = row[i].strip()
        flag = parse_flag(value)
        if fmt.nonempty_flags and flag is None:
            flag = bool(value)  # Majestic: empty means false, any mark means true
        signals.append(flag)
    for i in cols.follow:
        flag = parse_flag(row[i])
        signals.append(None if flag is None else not flag)
    for i in cols.rel:
        tokens = row[i].lower()
        if any(t in tokens for t in _NOFOLLOW_TOKENS):
            signals.append(True)
        elif tokens.strip():
            signals.append(False)
    if any(s is True for s in signals):
        return True
    if any(s is False for s in signals):
        return False
    return None


def _resolution_notes(store: Store) -> list[str]:
    if not store.counts()["pages"]:
        return ["the store holds no crawl yet: backlinks are credited to pages after a crawl or `import links`"]
    targets = store.backlink_targets()
    credited = targets["page_id"].notna()
    via = credited & (targets["page_url"] != targets["target_url"])
    return [f"{int(credited.sum())} of {len(targets)} distinct targets are credited to a crawled page "
            f"({int(via.sum())} through a redirect, canonical or URL variant)"]

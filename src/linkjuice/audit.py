"""The internal link audit: everything that stops link juice from flowing, with the fix for each.

Input: frames the store reads (pages, every internal link, the model's per-link flows, redirect
paths, sitemap and imported URLs, Search Console and priority data). Output: findings (one row
each, with a stable code, a severity and the juice at stake), their items (one row per affected
link or URL, never joined strings) and the site's juice accounting.

Juice at stake is in the units of pages.juice and comes from the model's own flows: a link carries
d x juice(source) x share (score.juice_rank); a finding about links sums what those links carry;
a finding about a weak page measures its shortfall against a reference page. docs/audit.md gives
every formula. This module never touches the store, the crawler or the network.
"""

from __future__ import annotations

import ctypes
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .anchors import generic_normalized_mask, normalize_anchor, normalize_anchors
from .errors import UsageError
from .store import (FINDINGS_VIEW_COLUMNS, ITEM_URL_CODES, ITEMS_VIEW_COLUMNS, LINK_ORDER_MISSING, AuditLinks,
                    _sql_literal, link_pair_keys)

__all__ = [
    "Severity",
    "CodeInfo",
    "CODES",
    "FAIL_ON_GROUPS",
    "FINDING_COLUMNS",
    "ITEM_COLUMNS",
    "AuditThresholds",
    "AuditInputs",
    "Finding",
    "AuditResult",
    "AuditStream",
    "StoredAudit",
    "FailOn",
    "audit_site",
    "stream_audit",
    "account_juice",
    "summarize",
    "parse_fail_on",
    "url_key",
]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"


_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTICE: 2}


@dataclass(frozen=True, slots=True)
class CodeInfo:
    severity: Severity  # the default; a finding may be downgraded (orphans after a partial crawl)
    title: str


# The stable finding codes, in the order the summary shows codes of equal severity.
CODES: Mapping[str, CodeInfo] = MappingProxyType({
    "broken-links": CodeInfo(Severity.ERROR, "Broken internal links"),
    "redirect-loop": CodeInfo(Severity.ERROR, "Redirect loops"),
    "redirect-to-broken": CodeInfo(Severity.ERROR, "Redirects to broken pages"),
    "canonical-to-broken": CodeInfo(Severity.ERROR, "Canonical tags pointing at broken pages"),
    "orphan": CodeInfo(Severity.ERROR, "Orphan pages"),
    "redirect-chain": CodeInfo(Severity.WARNING, "Redirect chains"),
    "redirect-to-non-indexable": CodeInfo(Severity.WARNING, "Redirects to non-indexable pages"),
    "links-to-redirects": CodeInfo(Severity.WARNING, "Links to redirects"),
    "orphan-nofollow-only": CodeInfo(Severity.WARNING, "Pages linked only with nofollow"),
    "orphan-noindex-only": CodeInfo(Severity.WARNING, "Pages linked only from non-indexable pages"),
    "important-but-weak": CodeInfo(Severity.WARNING, "Important pages with little juice"),
    "deep-page": CodeInfo(Severity.WARNING, "Deep pages"),
    "dead-end": CodeInfo(Severity.WARNING, "Dead ends"),
    "too-many-links": CodeInfo(Severity.WARNING, "Pages with too many links"),
    "nofollow-internal": CodeInfo(Severity.WARNING, "Internal nofollow links"),
    "links-to-noindex": CodeInfo(Severity.WARNING, "Links to noindex pages"),
    "links-to-blocked": CodeInfo(Severity.WARNING, "Links to pages blocked by robots.txt"),
    "canonical-to-redirect": CodeInfo(Severity.WARNING, "Canonical tags pointing at redirects"),
    "canonical-to-noindex": CodeInfo(Severity.WARNING, "Canonical tags pointing at noindex pages"),
    "js-only-links": CodeInfo(Severity.WARNING, "Links that exist only after JavaScript runs"),
    "infinite-space": CodeInfo(Severity.WARNING, "Crawler traps (infinite URL spaces)"),
    "empty-anchor": CodeInfo(Severity.WARNING, "Links without anchor text"),
    "weak-page": CodeInfo(Severity.NOTICE, "Weakly linked pages"),
    "links-to-canonicalised": CodeInfo(Severity.NOTICE, "Links to canonicalised pages"),
    "links-to-non-html": CodeInfo(Severity.NOTICE, "Links to non-HTML files"),
    "generic-anchor": CodeInfo(Severity.NOTICE, "Generic anchors"),
    "anchor-multiple-targets": CodeInfo(Severity.NOTICE, "One anchor text for several pages"),
    "mostly-generic-anchors": CodeInfo(Severity.NOTICE, "Pages reached mostly by generic anchors"),
})

# Names accepted by --fail-on besides the codes themselves (and the severities error/warning).
FAIL_ON_GROUPS: Mapping[str, frozenset[str]] = MappingProxyType({
    "broken-links": frozenset({"broken-links", "redirect-to-broken"}),
    "orphans": frozenset({"orphan", "orphan-nofollow-only", "orphan-noindex-only"}),
    "redirect-loops": frozenset({"redirect-loop"}),
    "redirects": frozenset({"redirect-loop", "redirect-chain", "redirect-to-broken", "redirect-to-non-indexable",
                            "links-to-redirects"}),
    "canonicals": frozenset({"canonical-to-broken", "canonical-to-redirect", "canonical-to-noindex",
                             "links-to-canonicalised"}),
    "anchors": frozenset({"empty-anchor", "generic-anchor", "anchor-multiple-targets", "mostly-generic-anchors"}),
    "weak-pages": frozenset({"weak-page", "important-but-weak", "deep-page"}),
})

FINDING_COLUMNS: tuple[str, ...] = FINDINGS_VIEW_COLUMNS  # (the columns of the store's view `findings`)
ITEM_COLUMNS: tuple[str, ...] = ITEMS_VIEW_COLUMNS  # (the columns of the store's view `finding_items`)

_BROKEN_STATES = ("client error", "server error", "error")
_EDITORIAL_POSITIONS = ("content", "aside")  # where a writer chose the anchor (not menus or templates)
# Accounting categories: a link's reason (pipeline.REASONS), with "passed" split by how it arrives.
_FLOW_CATEGORIES = ("indexable", "redirected", "canonicalised", "broken", "redirect_lost", "nofollow",
                    "non_indexable", "blocked", "external", "not_crawled")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditThresholds:
    """When a page counts as deep, weak, overlinked... Set in `[audit]` of linkjuice.toml or by options."""

    max_depth: int = 3  # deep-page: click depth above this
    max_links: int = 150  # too-many-links: unique internal link targets above this
    min_inlinks: int = 2  # weak-page: fewer followed links from other pages than this
    weak_score: float = 20.0  # weak-page: juice_score (0-100) below this
    important_top_share: float = 0.2  # important: in the top share of pages by clicks or impressions
    important_percentile: float = 50.0  # important-but-weak: juice below this percentile of indexable pages
    generic_share: float = 0.5  # mostly-generic-anchors: share of inbound anchors that are generic or empty
    min_generic_links: int = 2  # mostly-generic-anchors: only for pages with at least this many inbound links

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_links", "min_inlinks", "min_generic_links"):
            if getattr(self, name) < 0:
                raise UsageError(f"audit threshold {name.replace('_', '-')} must not be negative")
        for name, low, high in (("weak_score", 0, 100), ("important_percentile", 0, 100),
                                ("important_top_share", 0, 1), ("generic_share", 0, 1)):
            if not low <= getattr(self, name) <= high:
                raise UsageError(f"audit threshold {name.replace('_', '-')} must be between {low} and {high}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: AuditThresholds | None = None) -> AuditThresholds:
        """`base` (default: the defaults) with the keys of a TOML table or of CLI options replaced;
        keys may use dashes or underscores, unknown keys raise UsageError."""
        known = {f.name: f for f in fields(cls)}
        out = asdict(base) if base is not None else {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                raise UsageError(f"unknown audit threshold {key!r}: choose from "
                                 f"{', '.join(sorted(n.replace('_', '-') for n in known))}")
            expected = int if known[name].type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"audit threshold {key!r} must be a number")
            if expected is int and float(value) != int(value):
                raise UsageError(f"audit threshold {key!r} must be a whole number")
            out[name] = expected(value)
        return cls(**out)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowTotals:
    """Sums over every flow of the model (collect_flows takes them a batch of flows at a time): a big site
    has hundreds of millions of pairs, which the audit does not hold one by one for these."""

    # One row per reason, position and `arrives` (the state of the page the pair points at; None:
    # not a stored page): juice (the sum) and flows (the pairs).
    account: pd.DataFrame
    followed_inlinks: np.ndarray  # per page id: distinct other pages passing it juice (after redirects, canonicals)
    followed_out: np.ndarray  # per page id: its followed internal pairs
    internal_targets: np.ndarray  # per page id: its internal pairs
    inflow: np.ndarray  # per page id: the juice sent to it by pairs that are not nofollow
    # Per page id, the page a pair to it resolves to (after redirects, canonicals; -1: none, or
    # no pair to it): a pair's resolved page depends on its target only (pipeline._pairs_of).
    page_resolved: np.ndarray


def _state_category(pages: pd.DataFrame) -> pd.Series:
    """page_states as a categorical (row i: page_id i), from the pages' indexability when it is
    one (Store.audit_pages): no text per page hashed (10M pages' states: ~1 s)."""
    indexability = pages["indexability"].reset_index(drop=True)
    if not isinstance(indexability.dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical(page_states(pages)))
    if "not crawled" not in indexability.cat.categories:
        indexability = indexability.cat.add_categories(["not crawled"])
    return indexability.fillna("not crawled")


def page_states(pages: pd.DataFrame) -> np.ndarray:
    """Each page's state (row i: page_id i): its indexability, "not crawled" when it has none."""
    return pages["indexability"].astype(object).where(pages["indexability"].notna(), "not crawled").to_numpy()


# Flows are summed this many at a time: the sums by page id cost a pass over every page per chunk.
_FLOW_CHUNK = 1 << 22


def _chunks(batches: Iterable[pa.RecordBatch], rows: int) -> Iterable[pa.Table]:
    """The batches gathered into tables of at least `rows` rows (the last one may be shorter)."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(held)
            held, count = [], 0
    if held:
        yield pa.Table.from_batches(held)


def _flow_kernels(batches: Iterator[pa.RecordBatch]) -> tuple[Iterator[pa.RecordBatch], Any]:
    """The batches (the same ones) and the numba kernels when installed and the flows hold
    enough pairs for them (score._compiled_kernels' rule), else None: the first batches are
    read until that many pairs have come or the flows end."""
    from .score import _COMPILED_MIN_LINKS, _compiled_kernels  # numba is optional

    head = next(_chunks(batches, _COMPILED_MIN_LINKS), None)  # (the rest of `batches` is not read)
    ahead = head.to_batches() if head is not None else []
    return itertools.chain(ahead, batches), _compiled_kernels(head.num_rows if head is not None else 0)


def _add_counts(total: np.ndarray, ids: np.ndarray, weights: np.ndarray | None = None) -> None:
    """total[i] += the number (or the sum of `weights`) of the `ids` equal to i, over their range only."""
    if len(ids):
        lo = int(ids.min())
        total[lo:int(ids.max()) + 1] += np.bincount(ids - lo, weights=weights)


class _Columns:
    """Numeric columns filled a batch at a time. With a capacity (an upper bound of the rows), into
    arrays of that size, of which only the filled part is ever touched and kept (a view): joined
    at the end from their batches, the kept pairs were copied twice, 1.7 s of the flows' 4 s at
    3M pages. Past the capacity, or without one, the batches are kept and joined."""

    def __init__(self, dtypes: Mapping[str, Any], capacity: int | None) -> None:
        self.dtypes = dict(dtypes)
        self.filled = 0
        self.arrays = {k: np.empty(capacity, t) for k, t in self.dtypes.items()} if capacity else None
        self.pieces: dict[str, list[np.ndarray]] = {k: [] for k in self.dtypes}

    def append(self, **values: np.ndarray) -> None:
        rows = len(next(iter(values.values())))
        if self.arrays is not None and self.filled + rows > len(next(iter(self.arrays.values()))):
            for k, array in self.arrays.items():  # over capacity: what is filled becomes a batch
                self.pieces[k].append(array[:self.filled])
            self.arrays = None
        for k, value in values.items():
            if self.arrays is not None:
                self.arrays[k][self.filled:self.filled + rows] = value
            else:
                self.pieces[k].append(np.asarray(value, self.dtypes[k]))
        self.filled += rows

    def pop(self, name: str) -> np.ndarray:
        """The column, whole (a view of its array, or its batches joined); dropped from here."""
        if self.arrays is not None:
            return self.arrays.pop(name)[:self.filled]
        pieces = self.pieces.pop(name)
        return np.concatenate(pieces) if pieces else np.zeros(0, self.dtypes[name])


class UnsortedPairs(ValueError):
    """collect_flows(by_source=True) met the pairs out of source order."""


def collect_flows(pages: pd.DataFrame, positions: Sequence[str], batches: Iterable[pa.RecordBatch],
                  reasons: Sequence[str], *, pairs: int | None = None,
                  keep_all: bool = False, by_source: bool = True) -> tuple[pd.DataFrame, FlowTotals]:
    """Read the model's flows a batch at a time (Store.audit_link_flows): sum what the audit
    counts over every pair into FlowTotals, and keep of each pair only what links are matched
    to and read (src, dst, resolved, target_url, reason, juice_per_link), for the pairs a link
    can meet: those to a stored page or to an internal URL. A big site's hundreds of millions
    of pairs are never held with all their columns.

    With the numba kernels (a site of at least score._COMPILED_MIN_LINKS pairs), each batch is
    summed in one pass in place (_kernels.flow_sums); otherwise with NumPy, in chunks of
    _FLOW_CHUNK pairs. Both count a page's followed inlinks the same way: the passing pairs that
    arrive at their own target (one per source: link_pairs has one row per source and target),
    plus the distinct (source, page) of the pairs that arrive elsewhere (through a redirect or
    a canonical) that no direct pair already counts. `pairs`: the number of pairs, when known
    (the kept columns are then filled in place). keep_all: keep every pair, so that row k is
    link_pairs' row k (the links then name their pair's row: Store.audit_links), without src and
    dst, which the audit then reads from the links (at 10M pages, 1.6 GB less to hold and fill).
    With the kernels and keep_all, the pairs reached elsewhere are counted as the batches come,
    a source at a time (by_source; link_pairs is sorted by source: UnsortedPairs if not), and the
    pairs' sources and resolved pages are not kept either (a pair's resolved page is its
    target's: FlowTotals.page_resolved)."""
    n = len(pages)
    states = _state_category(pages)  # (codes and names: no text per page hashed)
    state_code, state_names = np.asarray(states.array.codes), list(states.cat.categories)
    del states
    state_after = np.append(state_code + 1, 0).astype(np.int32)  # index n: not a stored page
    n_states, n_pos, n_reasons = len(state_names) + 1, len(positions) + 1, len(reasons) + 1  # +1: none
    account_juice_ = np.zeros(n_reasons * n_pos * n_states)
    account_flows = np.zeros(n_reasons * n_pos * n_states, np.int64)
    followed_out = np.zeros(n, np.int64)
    targets = np.zeros(n, np.int64)
    elsewhere: list[np.ndarray] = []  # keys src * n + resolved of the passing pairs resolved away from dst
    elsewhere_rows: list[np.ndarray] = []  # their rows among the kept pairs, ascending
    named_at: list[np.ndarray] = []
    named_urls: list[pa.Array] = []
    passed, nofollow_code = list(reasons).index("passed"), list(reasons).index("nofollow")
    batches, kernels = _flow_kernels(iter(batches))
    # By each pair's target: the kernels add to one record a page (_kernels.FLOW_PAGE), NumPy to three arrays.
    if kernels is not None:
        page = np.zeros(n, kernels.FLOW_PAGE)
        page["resolved"] = -1
        inlinks = page["inlinks"]  # (a view: the record's field)
    else:
        inflow, inlinks, page_resolved = np.zeros(n), np.zeros(n, np.int64), np.full(n, -1, np.int32)
    streamed = kernels is not None and keep_all and by_source
    if streamed:  # (_kernels.elsewhere_inlinks' state)
        state, pending = np.array([-1, 0, 0], np.int64), np.zeros(0, np.int32)
        direct_of, counted_of = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
    # What is kept of each pair: not its target with keep_all; not its source and resolved page
    # when the pairs reached elsewhere are counted as they stream.
    dropped = ({"dst"} if keep_all else set()) | ({"src", "resolved"} if streamed else set())
    kept = _Columns({k: t for k, t in {"src": np.int32, "dst": np.int32, "resolved": np.int32, "reason": np.int8,
                                       "juice_per_link": np.float64}.items() if k not in dropped}, pairs)
    # The kernels sum each batch as DuckDB hands it over; NumPy's sums by page id cost a pass over
    # every page per call, so it sums chunks of many batches. (A batch's columns are views of its
    # Arrow buffers; a chunk's are copies.)
    for chunk in (batches if kernels is not None else _chunks(batches, _FLOW_CHUNK)):
        col = {name: chunk.column(name) for name in chunk.schema.names}
        src = col["src"].to_numpy()  # int32, as DuckDB hands them over
        dst = col["dst"].to_numpy()
        resolved = col["resolved"].fill_null(-1).to_numpy()
        reason = col["reason"].to_numpy()
        juice = col["juice"].to_numpy()
        internal = col["is_internal"].to_numpy(zero_copy_only=False)
        nofollow = col["nofollow"].to_numpy(zero_copy_only=False)
        position = col["position"].to_numpy()
        if kernels is not None:
            rows = kernels.flow_sums(src, dst, resolved, reason, position, juice, internal, nofollow, state_after,
                                     n_pos, n_states, passed, nofollow_code, account_juice_, account_flows,
                                     followed_out, targets, page)
            to_page = (dst >= 0) & (dst < n)
            if streamed:
                if len(pending) < state[1] + len(src):
                    pending = np.concatenate([pending[:state[1]], np.zeros(len(src), np.int32)])
                kernels.elsewhere_inlinks(src, dst, resolved, reason, passed, False, state, pending, direct_of,
                                          counted_of, inlinks)
                if state[2]:
                    raise UnsortedPairs("the link pairs are not sorted by source")
                rows = rows[:0]
        else:
            reason = reason.astype(np.int32)
            to_page = (dst >= 0) & (dst < n)
            # The state a pair arrives at (+1; 0: not a stored page), the account's cell of each pair.
            cell = state_after[np.where(to_page, dst, n)]
            cell += ((reason + 1) * n_pos + position.astype(np.int32) + 1) * n_states
            account_juice_ += np.bincount(cell, weights=juice, minlength=len(account_juice_))
            account_flows += np.bincount(cell, minlength=len(account_flows))
            del cell
            in_pages = (src >= 0) & (src < n)
            _add_counts(followed_out, src[in_pages & internal & ~nofollow])
            _add_counts(targets, src[in_pages & internal])
            counted = to_page & (reason != nofollow_code)
            _add_counts(inflow, dst[counted], juice[counted])
            ok = (reason == passed) & (resolved >= 0) & (resolved < n) & (src != resolved) & in_pages
            _add_counts(inlinks, dst[ok & (resolved == dst)])
            rows = np.flatnonzero(ok & (resolved != dst))
            page_resolved[dst[to_page]] = resolved[to_page]
        # The pairs links can meet: to a stored page, or to an internal URL named by target_url.
        named = pc.is_valid(col["target_url"]).to_numpy(zero_copy_only=False)
        keep = slice(None) if keep_all else np.flatnonzero(to_page | named)  # (a slice: views)
        if len(rows):
            elsewhere.append(src[rows].astype(np.int64) * max(n, 1) + resolved[rows])
            if not keep_all:  # (their rows among the kept ones; one that is not kept is not counted)
                at = np.searchsorted(keep, rows)
                rows = at[keep[np.minimum(at, len(keep) - 1)] == rows] if len(keep) else at[:0]
            elsewhere_rows.append(rows + kept.filled)
        at = np.flatnonzero(named[keep])
        named_at.append(at + kept.filled)
        named_urls.append(col["target_url"].take(pa.array(at if keep_all else keep[at])))
        # (with keep_all, `keep` is a slice: the columns not kept are views, not copies)
        values = {"src": src[keep], "dst": dst[keep], "resolved": resolved[keep], "reason": reason[keep],
                  "juice_per_link": juice[keep] / np.maximum(col["n_links"].to_numpy()[keep], 1)}
        kept.append(**{k: v for k, v in values.items() if k in kept.dtypes})
    if streamed:  # (the last source)
        empty = np.zeros(0, np.int32)
        kernels.elsewhere_inlinks(empty, empty, empty, empty.astype(np.int8), passed, True, state, pending, direct_of,
                                  counted_of, inlinks)
        del direct_of, counted_of, pending
    if kernels is not None:  # (each sum an array of its own again)
        inflow, inlinks, page_resolved = (page["inflow"].copy(), page["inlinks"].astype(np.int64),
                                          page["resolved"].copy())
        del page
    cells = np.flatnonzero(account_flows)
    names_of = lambda values, code: np.array([None, *values], dtype=object)[code]  # noqa: E731 (code -1 -> None)
    account = pd.DataFrame({
        "reason": names_of(reasons, cells // (n_pos * n_states)),
        "position": names_of(positions, cells // n_states % n_pos),
        "arrives": names_of(list(state_names), cells % n_states),
        "juice": account_juice_[cells], "flows": account_flows[cells],
    })
    # The few named targets as a categorical (pandas keeps its codes in the smallest integers).
    at_named = np.concatenate(named_at) if named_at else np.zeros(0, np.int64)
    names = pd.Series(pa.chunked_array(named_urls, pa.string()).to_pandas(), dtype=object)
    del named_at, named_urls
    name_code, name_values = pd.factorize(names)
    # Each column joined (when it came in batches) and its batches dropped, one column at a time:
    # two copies of every kept pair at once were 4 GB at 10M pages.
    joined = {k: kept.pop(k) for k in list(kept.dtypes)}
    if elsewhere:
        _count_elsewhere(inlinks, _distinct(np.concatenate(elsewhere)), joined, np.concatenate(elsewhere_rows), passed)
    del elsewhere, elsewhere_rows
    if keep_all:
        joined.pop("src", None)  # (the links hold each pair's source)
    totals = FlowTotals(account=account, followed_inlinks=inlinks, followed_out=followed_out,
                        internal_targets=targets, inflow=inflow, page_resolved=page_resolved)
    codes = np.full(len(joined["reason"]), -1, np.int8 if len(name_values) < 127 else np.int32)
    codes[at_named] = name_code
    target_url = pd.Categorical.from_codes(codes, categories=pd.Index(name_values, dtype=object))
    del codes, names
    flows = pd.DataFrame(copy=False, data={
        **{k: joined[k] for k in ("src", "dst", "resolved") if k in joined}, "target_url": target_url,
        "reason": pd.Categorical.from_codes(joined["reason"], categories=pd.Index(list(reasons), dtype=object)),
        "juice_per_link": joined["juice_per_link"],
    })
    return flows, totals


def _count_elsewhere(inlinks: np.ndarray, keys: np.ndarray, kept: Mapping[str, np.ndarray], elsewhere_rows: np.ndarray,
                     passed: int) -> None:
    """Add to inlinks (per page) the (source, page) `keys` (distinct, source x n + page) of the
    passing pairs that arrive at another page than their target, except those where a passing
    pair from that source arrives at its own target, that page: collect_flows counted it. A
    passing pair that arrives at a page (not its source) arrives at its own target unless it is
    one of `elsewhere_rows` (ascending): the pairs' targets are not needed."""
    n = len(inlinks)
    src, resolved = kept["src"], kept["resolved"]
    concerned = np.zeros(n, bool)
    concerned[keys // n] = True
    rows = np.flatnonzero(concerned[src])  # the kept pairs of the sources with such keys
    to = resolved[rows]
    rows = rows[(kept["reason"][rows] == passed) & (to >= 0) & (to < n) & (src[rows] != to)]
    del to
    if len(elsewhere_rows):
        at = np.minimum(np.searchsorted(elsewhere_rows, rows), len(elsewhere_rows) - 1)
        rows = rows[elsewhere_rows[at] != rows]
    direct = _distinct(src[rows].astype(np.int64) * n + resolved[rows], runs=True)  # (in link_pairs' order: sorted)
    at = np.minimum(np.searchsorted(direct, keys), max(len(direct) - 1, 0))
    new = keys[direct[at] != keys] if len(direct) else keys
    inlinks += np.bincount(new % n, minlength=n)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditInputs:
    """What the audit reads (linkjuice.store.Store's audit methods produce each frame)."""

    pages: pd.DataFrame  # Store.audit_pages(): one row per page, row i = page_id i
    # collect_flows(Store.audit_link_flows()): one row per (source page, target URL) pair that a
    # link can meet, and the sums over every pair.
    flows: pd.DataFrame
    flow_totals: FlowTotals
    links: AuditLinks  # Store.audit_links(): one row per internal link, self-links left out
    redirect_paths: pd.DataFrame  # Store.redirect_paths()
    known_urls: pd.DataFrame  # Store.known_urls(): url, source
    importance: pd.DataFrame  # Store.importance_inputs(): url, clicks, impressions, weight
    damping: float
    crawl_complete: bool  # False when the crawl stopped at a limit (max pages, max depth)
    start_url: str | None = None
    # pipeline.juice_without_rendering(): per page, juice and juice without the link pairs found only
    # in the rendered DOM (crawl --render); None when there are none. links then needs found_in.
    rendering: pd.DataFrame | None = None
    # Store.crawl_traps(): kind, pattern, example_url, skipped (URLs the crawler refused to fetch).
    traps: pd.DataFrame | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem; its affected links or URLs are the rows of AuditResult.items with its finding_id."""

    finding_id: int
    code: str
    severity: Severity
    url: str
    anchor: str | None
    item_count: int
    juice_at_stake: float
    explanation: str
    fix: str


class StoredAudit(Protocol):
    """Where a result written to a store reads its findings back (pipeline.run_audit)."""

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every finding (in priority order) and every item."""

    def head(self, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The first n findings and their items."""


class AuditResult:
    """What an audit found: `findings` (FINDING_COLUMNS, in priority order), their `items`
    (ITEM_COLUMNS), `juice_flow` (dimension: destination | position, category, juice, share) and
    the `summary` (totals, concentration, crawl completeness, thresholds).

    A result written to a store (pipeline.run_audit) reads its findings and items back from the
    store when they are first asked for: a big site has tens of millions, which the summary, the
    counts per code and the first findings (head) do not need."""

    __slots__ = ("_findings", "_items", "juice_flow", "summary", "_stored", "_by_code")

    def __init__(self, findings: pd.DataFrame | None, items: pd.DataFrame | None, juice_flow: pd.DataFrame,
                 summary: dict[str, Any], *, stored: StoredAudit | None = None,
                 by_code: pd.DataFrame | None = None) -> None:
        if (findings is None or items is None) and stored is None:
            raise ValueError("an AuditResult needs its findings and items, or the store that holds them")
        self._findings, self._items, self._stored, self._by_code = findings, items, stored, by_code
        self.juice_flow, self.summary = juice_flow, summary

    def _load(self) -> None:
        if self._findings is None or self._items is None:
            assert self._stored is not None
            self._findings, self._items = self._stored.frames()

    @property
    def findings(self) -> pd.DataFrame:
        self._load()
        return self._findings  # type: ignore[return-value]

    @property
    def items(self) -> pd.DataFrame:
        self._load()
        return self._items  # type: ignore[return-value]

    def head(self, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The first n findings (the highest priority) and their items, without loading the rest."""
        if self._findings is None and self._stored is not None:
            return self._stored.head(n)
        findings = self.findings.head(n)
        return findings, self.items[self.items["finding_id"].isin(findings["finding_id"])]

    def records(self) -> list[Finding]:
        return [Finding(**{**row, "severity": Severity(row["severity"]),
                           "anchor": None if pd.isna(row["anchor"]) else row["anchor"]})
                for row in self.findings.to_dict("records")]

    def by_code(self) -> pd.DataFrame:
        """One row per finding code present: severity, findings, items, juice at stake; by priority."""
        return self._by_code.copy() if self._by_code is not None else summarize(self.findings)


def summarize(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings counted per code, ordered by severity, then juice at stake."""
    if findings.empty:
        return pd.DataFrame(columns=["code", "title", "severity", "findings", "items", "juice_at_stake"])
    return _by_priority(findings.groupby(["code", "severity"], as_index=False, observed=True).agg(
        findings=("juice_at_stake", "size"), items=("item_count", "sum"), juice_at_stake=("juice_at_stake", "sum")))


def _by_priority(out: pd.DataFrame) -> pd.DataFrame:
    """summarize's rows (code, severity, findings, items, juice_at_stake) with titles, by priority."""
    out["title"] = out["code"].map(lambda c: CODES[c].title)
    out["_rank"] = out["severity"].map(lambda s: _SEVERITY_RANK[Severity(s)])
    out = out.sort_values(["_rank", "juice_at_stake", "findings"], ascending=[True, False, False], ignore_index=True)
    return out[["code", "title", "severity", "findings", "items", "juice_at_stake"]]


# -- --fail-on ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FailOn:
    codes: frozenset[str]
    severities: frozenset[str]

    def matches(self, findings: pd.DataFrame) -> pd.DataFrame:
        """The rows of `findings` (or of AuditResult.by_code()) whose code or severity is named."""
        mask = findings["code"].isin(self.codes) | findings["severity"].isin(self.severities)
        return findings[mask]


def parse_fail_on(spec: str) -> FailOn:
    """Comma-separated codes, group names (FAIL_ON_GROUPS) or severities ("error" = any error,
    "warning" = any error or warning). A group name wins over a code of the same name."""
    codes: set[str] = set()
    severities: set[str] = set()
    for raw in spec.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name in FAIL_ON_GROUPS:
            codes |= FAIL_ON_GROUPS[name]
        elif name in CODES:
            codes.add(name)
        elif name in ("error", "errors"):
            severities.add(Severity.ERROR)
        elif name in ("warning", "warnings"):
            severities |= {Severity.ERROR, Severity.WARNING}
        else:
            raise UsageError(f"--fail-on: unknown finding {name!r}: use a code (see docs/audit.md), "
                             f"a group ({', '.join(FAIL_ON_GROUPS)}), errors or warnings")
    if not codes and not severities:
        raise UsageError("--fail-on needs at least one finding code or group")
    return FailOn(frozenset(codes), frozenset(str(s) for s in severities))


# -- helpers --------------------------------------------------------------------------------------
def url_key(urls: pd.Series) -> pd.Series:
    """The key under which URL variants are the same page for orphan detection: case and a
    trailing slash do not matter (http://x/Page/ and http://x/page are one page)."""
    return urls.astype("string").str.lower().str.rstrip("/")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _agree(n: int, one: str, many: str) -> str:
    """The words that agree with a count of n things (a verb, a pronoun): `one` when n is 1."""
    return one if n == 1 else many


def _agree_v(counts: Any, one: str, many: str) -> pa.DictionaryArray:
    """_agree for a column of counts, as codes into the two texts: a piece of an explanation
    (_join writes it out) or a fix column as it is (written out, 6.5M generic-anchor fixes took
    1.4 s and 0.6 GB)."""
    codes = (np.asarray(counts, np.int64) != 1).astype(np.int8)
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array([one, many], pa.large_string()))


def _fmt_juice(value: float) -> str:
    return f"{value:.4g}"


def _score(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.0f}"


def _rows(frame: pd.DataFrame) -> Any:
    """The rows of a frame for the per-finding texts, with text columns as Python objects
    (iterating Arrow-backed strings one by one is several times slower)."""
    text = [c for c in frame.columns if frame[c].dtype != object and not pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]
    return frame.astype(dict.fromkeys(text, object)).itertuples(index=False) if text else frame.itertuples(index=False)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@contextmanager
def kept_heap() -> Iterator[None]:
    """While the audit runs, glibc serves big arrays from its heap instead of fresh mappings and
    keeps what is freed there until release_heap, so that an array freed by one step is reused by
    the next without the kernel zeroing it again (on this VM a GB touched afresh is about a CPU
    second: docs/benchmarks.md). Its settings go back to glibc's defaults after. A no-op where
    there is no glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        mallopt(_M_MMAP_MAX, 65536)
        mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
        release_heap()


def release_heap() -> None:
    """Hand freed memory back to the system: the C heap's (glibc's malloc_trim, as Dask's workers
    do; glibc keeps freed blocks below its mmap threshold: after the audit's passes over a big
    site's links, 0.3-1.8 GB at 3M pages; a no-op where there is no glibc) and Arrow's (its
    allocator, mimalloc here, kept 1.4 GB after the relevance of 10M pages' texts)."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _codes_in(values: pd.Series, names: Sequence[str]) -> np.ndarray:
    """Whether each value is one of `names`; for a categorical (a column of every link), by its
    codes: pandas' isin took 0.75 s for 59M links' positions, a lookup of their codes 0.1 s."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.isin(names).to_numpy(bool)
    wanted = np.append(np.isin(np.asarray(values.cat.categories, dtype=object), list(names)), False)
    return wanted[values.array.codes]  # code -1 (missing) reads the last entry: False


def _decoded(values: pd.Series) -> pd.Series:
    """A categorical column as its texts (in the categories' dtype). Arrow-backed categories are
    taken with Arrow: pandas' astype converts every category first (a site's millions of distinct
    anchors for each finding's few links: 1.2 s for 4M links, Arrow's take 0.14 s)."""
    categories = values.cat.categories
    if not isinstance(categories.array, pd.arrays.ArrowStringArray):
        return values.astype(categories.dtype)
    codes = values.array.codes
    taken = pa.array(categories.array).take(pa.array(codes, mask=codes < 0))
    return pd.Series(pd.array(taken, dtype=categories.dtype), index=values.index, name=values.name)


def _distinct(values: np.ndarray, *, runs: bool = False) -> np.ndarray:
    """The distinct values, sorted (a sort and a comparison; faster than np.unique's hashing on
    tens of millions of integers). runs: the values come mostly in long sorted runs, which
    NumPy's stable sort (a merge sort of the runs) orders in about one pass: 0.07 s for 59M
    keys in 15 sorted runs, where its default sort took 1.4 s."""
    if not len(values):
        return values
    ordered = np.sort(values, kind="stable" if runs else None)
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


# Codes counted this many at a time (_count_codes).
_COUNT_SLICE = 1 << 23


def _count_codes(codes: np.ndarray, minlength: int) -> np.ndarray:
    """np.bincount(codes, minlength=minlength), a slice of the codes at a time: np.bincount first
    widens its input to 64-bit integers, a fresh copy of all of them (200M links' int32 codes:
    1.6 GB, 3.5-4.8 s on this VM, where the slices' copies, reused, took 1.3-1.4 s). With numba,
    in one pass (197M target codes: 1.0 s, where the slices took 1.3-1.9 s alone, 6 s beside
    the anchor checks' thread)."""
    from .score import _compiled_kernels  # numba is optional

    kernels = _compiled_kernels(len(codes))
    if kernels is not None:
        counted, total = kernels.count_codes(codes, minlength)
        if counted:
            return total
    total = np.zeros(minlength, np.int64)
    for lo in range(0, len(codes), _COUNT_SLICE):
        counts = np.bincount(codes[lo:lo + _COUNT_SLICE], minlength=minlength)
        if len(counts) > len(total):
            total = np.concatenate([total, np.zeros(len(counts) - len(total), np.int64)])
        total[:len(counts)] += counts
    return total


def _group_sums(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """pandas' pd.Series(values).groupby(codes).sum() for codes 0..n_groups-1 that all occur:
    compensated sums, with numba in one pass (to the bit the same: _kernels.group_sums)."""
    from .score import _compiled_kernels  # numba is optional

    kernels = _compiled_kernels(len(codes))
    if kernels is not None:
        return kernels.group_sums(codes, np.asarray(values, np.float64), n_groups)
    return pd.Series(values).groupby(codes, sort=True).sum().to_numpy()


def _first_distinct(group: np.ndarray, value: np.ndarray, n_groups: int, k: int) -> np.ndarray:
    """Per group 0..n_groups-1, its first k distinct values (>= 0) in row order, -1 where it has
    fewer: an (n_groups, k) int32 array (with numba in one pass: _kernels.first_distinct)."""
    from .score import _compiled_kernels  # numba is optional

    kernels = _compiled_kernels(len(group))
    if kernels is not None:
        return kernels.first_distinct(group, value, n_groups, k)
    out = np.full((n_groups, k), -1, np.int32)
    used = pd.DataFrame({"group": group, "value": value})
    used = used[used["value"].to_numpy() >= 0].drop_duplicates()
    nth = used.groupby("group", sort=False).cumcount().to_numpy()
    kept = nth < k
    out[used["group"].to_numpy()[kept], nth[kept]] = used["value"].to_numpy()[kept]
    return out


@dataclass(slots=True)
class _Context:
    """Per-page arrays, the links and the model's flows, shared by the detectors.

    Links stay as Store.audit_links() reads them (integer ids and codes): a big site has tens of
    millions, and most produce no finding. `items` makes the frame of the few that do, with
    their URLs and texts as strings and the juice of their (source, target) pair."""

    pages: pd.DataFrame
    flows: pd.DataFrame
    links: pd.DataFrame
    totals: FlowTotals
    t: AuditThresholds
    d: float
    complete: bool
    start_url: str | None
    juice: np.ndarray
    ranked: np.ndarray
    state: np.ndarray
    state_category: pd.Series  # state as a categorical: checked by its codes (in_states)
    reference: float  # median juice of the indexable pages
    median_score: float
    # The URLs links point at: the page URLs (code = page id), then the sorted internal URLs that
    # are not stored pages; and each link's code into them.
    target_urls: pd.Index
    target_code: np.ndarray
    # Pairs and links meet on (source id, match code), integers: the flows' keys, sorted (see
    # store.link_pair_keys); row k of `flows` is the pair of key k. None when the links name their pair's
    # row (links["pair"], stored by finalize) and flows holds every pair in link_pairs' order.
    flow_key: np.ndarray | None
    # Per target code, the page a link to it resolves to (-1: none, no pair links to it, or not a
    # stored page): a pair's resolved page depends on its target only (pipeline._pairs_of).
    target_resolved: np.ndarray
    unranked_links: tuple[np.ndarray, np.ndarray] | None = None  # (_Context._links_to_unranked)
    canonical_kinds: np.ndarray | None = None  # (_canonical_kinds)

    def in_states(self, names: tuple[str, ...]) -> np.ndarray:
        """Per page id, whether the page is in one of the states `names` (by the states' codes:
        10M pages' state texts hashed for each check took seconds)."""
        return _codes_in(self.state_category, names)

    def links_to(self, page_class: np.ndarray) -> dict[int, np.ndarray]:
        """The positions of the links to the pages of each class: `page_class` gives each page id
        a small integer (0: none); returns {class: positions, in link order} for the classes
        that some link meets. One pass over the links whatever the number of classes: a pass
        per class, each with its own copies, was a third of a big site's detectors. The classes
        the detectors give are of pages that are not indexable, and the links to those are
        found once (_links_to_unranked): a pass over every link per detector was 7 s at 10M pages."""
        classes = np.zeros(len(self.target_urls), np.int8)  # (0 for the URLs that are not stored pages)
        classes[:len(self.pages)] = page_class
        if classes[:len(self.pages)][self.ranked].any():
            at, target = None, self.target_code
        else:
            at, target = self._links_to_unranked()
        per_link = classes[target]
        hit = np.flatnonzero(per_link)
        of = per_link[hit]
        if at is not None:
            hit = at[hit]
        return {int(k): hit[of == k] for k in np.unique(of)}

    def _links_to_unranked(self) -> tuple[np.ndarray, np.ndarray]:
        """The positions (in link order) and target codes of the links to stored pages that are
        not indexable, found on the first call."""
        if self.unranked_links is None:
            unranked = np.zeros(len(self.target_urls), bool)
            unranked[:len(self.pages)] = ~self.ranked
            at = np.flatnonzero(unranked[self.target_code])
            self.unranked_links = (at, self.target_code[at])
        return self.unranked_links

    def pair_row(self, idx: np.ndarray) -> np.ndarray:
        """The flows row of the (source page, target URL) pair of each link at positions `idx`; -1: none."""
        if self.flow_key is None:
            return self.links["pair"].to_numpy()[idx].astype(np.int64)
        if not len(self.flow_key):
            return np.full(len(idx), -1, np.int64)
        key = link_pair_keys(self.links["src"].to_numpy()[idx], self.target_code[idx], len(self.pages),
                         len(self.target_urls))
        if len(key) > 1 << 16 and not (key[1:] >= key[:-1]).all():
            # Looked up in key order: millions of binary searches in no order miss the cache.
            by_key = np.argsort(key)
            at = np.empty(len(key), np.int64)
            at[by_key] = np.searchsorted(self.flow_key, key[by_key])
        else:
            at = np.searchsorted(self.flow_key, key)
        at = np.minimum(at, len(self.flow_key) - 1)
        return np.where(self.flow_key[at] == key, at, -1)

    def page_ids(self, code: np.ndarray) -> np.ndarray:
        """The page id of each target `code`; -1 where the target is not a stored page."""
        return np.where(code < len(self.pages), code, -1)

    def resolved(self, idx: np.ndarray) -> np.ndarray:
        """The page that receives the juice of each link at positions `idx` (an array, or a mask)
        after redirects and canonicals (-1: none), as int32: looked up by target, where a search
        of each link's pair among hundreds of millions took most of a big site's anchor checks."""
        return self.target_resolved[self.target_code[idx]]

    def items(self, idx: np.ndarray | pd.Series, *, url_codes: bool = False, **aligned: np.ndarray) -> pd.DataFrame:
        """The links at positions `idx` (or where a mask is true) as the detectors' item rows: text
        columns as plain strings (but with url_codes, source_url and target_url are left out: src
        and target_code are their codes into target_urls, written as text by _assemble once the
        links are freed), and target_code, juice (an equal part of what the pair
        carries, so a finding's items add up to its juice at stake), reason (the pair's: passed
        when it has none), resolved, and lost (what a finding about the target can claim: a
        nofollow pair's juice belongs to the nofollow finding, so no juice is counted twice)."""
        idx = np.asarray(idx)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
        # In link order (source page, then its link order, NULLs last): the links are held as
        # DuckDB returned them, and only the few a finding lists are sorted. `aligned` arrays
        # (one value per entry of idx) follow and become columns.
        links = self.links
        # Each column gathered first, then widened: a whole column converted is a copy of every link.
        # (A link without an order has LINK_ORDER_MISSING, the highest: it comes last.)
        key = links["src"].to_numpy()[idx].astype(np.int64) << 32
        key += links["link_order"].to_numpy()[idx].astype(np.int64) + (1 << 31)
        order = np.argsort(key, kind="stable")
        del key
        idx = idx[order]
        code = self.target_code[idx]
        out = links.drop(columns=["target", "pair"], errors="ignore").iloc[idx].reset_index(drop=True)
        out.insert(1, "dst", self.page_ids(code))
        link_order = out["link_order"].to_numpy()
        out["link_order"] = np.where(link_order == LINK_ORDER_MISSING, np.nan, link_order)
        for name, values in aligned.items():
            out[name] = np.asarray(values)[order]
        for col in ("anchor", "position", "found_in"):
            if col in out and isinstance(out[col].dtype, pd.CategoricalDtype):
                out[col] = _decoded(out[col])
        if not url_codes:
            out["source_url"] = _taken_texts(self.target_urls, out["src"].to_numpy())
            out["target_url"] = _taken_texts(self.target_urls, code)
        out["target_code"] = code
        row = self.pair_row(idx)
        hit, at = row >= 0, np.maximum(row, 0)
        f = self.flows
        out["juice"] = np.where(hit, f["juice_per_link"].to_numpy()[at].astype(np.float64, copy=False), 0.0)
        reasons = f["reason"]  # categorical as collect_flows makes it (astype of every pair: 0.9 s at 3M)
        if not isinstance(reasons.dtype, pd.CategoricalDtype):
            reasons = reasons.astype("category")
        names = np.append(reasons.cat.categories.astype(object).to_numpy(), "passed")  # code -1: passed
        out["reason"] = names[np.where(hit, reasons.array.codes[at] if len(f) else -1, -1)]
        # (a pair's resolved page is its target's: the flows may not hold it, collect_flows)
        resolved = f["resolved"].to_numpy()[at] if "resolved" in f else self.target_resolved[code]
        out["resolved"] = np.where(hit, resolved.astype(np.int64), -1)
        out["lost"] = np.where((out["reason"] == "nofollow").to_numpy(bool), 0.0, out["juice"].to_numpy())
        return out


def _context(inputs: AuditInputs, t: AuditThresholds) -> _Context:
    pages = inputs.pages.reset_index(drop=True)
    n = len(pages)
    juice = pages["juice"].astype("float64").fillna(0.0).to_numpy()
    ranked = pages["indexable"].astype(bool).to_numpy()
    state_category = _state_category(pages)
    state = state_category.to_numpy(dtype=object)  # (page_states, from the categorical made once)
    flows = inputs.flows
    links, extra_urls = inputs.links.frame, inputs.links.extra_urls
    if inputs.links.pages != n:
        raise ValueError(f"the links name {inputs.links.pages} pages, the pages are {n}")
    # Target codes: the page id, or n + the rank of the URL among the sorted extra URLs, as the
    # store reads them (DuckDB sorts the URLs' bytes, which is Python's order of their code points).
    target_code = links["target"].to_numpy()
    target_urls = pd.Index(pages["url"].array)
    if len(extra_urls):
        target_urls = target_urls.append(extra_urls)
    target_resolved = np.full(len(target_urls), -1, np.int32)
    target_resolved[:n] = inputs.flow_totals.page_resolved
    if "pair" in links:  # each link names its pair's row, and flows holds every pair in that order
        flow_key = None
        flows = flows[[c for c in ("resolved", "reason", "juice_per_link") if c in flows]]
    else:
        flow_key, flows = _flow_keys(flows, target_code, target_urls, n, len(extra_urls))
    scores = pages.loc[ranked, "juice_score"].astype("float64")
    return _Context(
        pages=pages, flows=flows, links=links, totals=inputs.flow_totals, t=t, d=inputs.damping,
        complete=inputs.crawl_complete,
        start_url=inputs.start_url, juice=juice, ranked=ranked, state=state,
        state_category=state_category,
        reference=float(np.median(juice[ranked])) if ranked.any() else 0.0,
        median_score=float(scores.median()) if len(scores) else 0.0,
        target_urls=target_urls, target_code=target_code, flow_key=flow_key, target_resolved=target_resolved,
    )


def _flow_keys(flows: pd.DataFrame, target_code: np.ndarray, target_urls: pd.Index, n: int, n_extra: int
               ) -> tuple[np.ndarray, pd.DataFrame]:
    """The flows' keys (link_pair_keys), sorted, and what the detectors read of the flows in that
    order (a pair to a URL that is not a stored page is found by its URL)."""
    flow_code = flows["dst"].to_numpy().astype(target_code.dtype)  # a copy: the named ones are changed
    if n_extra and "target_url" in flows:
        named = np.flatnonzero(flows["target_url"].notna().to_numpy() & (flow_code < 0))
        at = target_urls[n:].get_indexer(flows["target_url"].iloc[named].astype(object))
        flow_code[named] = np.where(at >= 0, n + at, -1)
    # flow_row: the flows row of each key; None while that is the identity (the usual case: every
    # pair collect_flows keeps has a code and link_pairs stores them in key order), which saves a
    # big site two copies of every pair.
    flow_row = None if (flow_code >= 0).all() else np.flatnonzero(flow_code >= 0)
    rows = slice(None) if flow_row is None else flow_row  # a slice: views, not copies
    flow_key = link_pair_keys(flows["src"].to_numpy()[rows], flow_code[rows], n, len(target_urls))
    del flow_code, rows  # (flow_code[rows] with a slice is a view, which astype copies once)
    if len(flow_key) > 1 and not (flow_key[1:] >= flow_key[:-1]).all():
        order = np.argsort(flow_key, kind="stable")
        flow_key = flow_key[order]
        flow_row = order if flow_row is None else flow_row[order]
        del order
    # What the detectors read of a pair, in key order (row k: flow_key[k]); the pairs' ids and
    # URLs are not kept.
    flows = flows[["resolved", "reason", "juice_per_link"]]
    if flow_row is not None:
        flows = flows.take(flow_row).reset_index(drop=True)
    del flow_row
    return flow_key, flows


@dataclass(slots=True)
class _Template:
    """The explanations of a part's findings as one SQL expression over the finding's url and two
    numbers (_n, an integer, and _x, a float; NULL for NaN), which DuckDB evaluates as the findings
    are stored (in the audit's in-memory results too: _assemble): the codes that can have a finding
    per page of a big site (weak-page, deep-page). Written in Python, their texts were made, put in
    order and handed over one by one: 10M pages, 19M findings, ~13 s of the audit's main thread."""

    sql: str
    fix: str | pa.DictionaryArray  # one for all, or per finding of the part
    n: np.ndarray  # int64, per finding of the part
    x: np.ndarray  # float64, per finding of the part
    # Per finding of the part, a text the SQL reads as `explanation` (stored in that column):
    # the few texts a template cannot make from numbers (the quoted anchors of generic-anchor).
    text: pa.DictionaryArray | None = None


@dataclass(slots=True)
class _Part:
    findings: pd.DataFrame  # _PART_FINDING columns
    items: pd.DataFrame  # _PART_ITEM columns; _local = the row of its finding in `findings`
    # What `describe` reads (row i: finding i) for the explanations and fixes. _assemble has
    # them written once the findings are in their final order: a big site has millions of
    # findings, and a sort of the finished texts would gather millions of strings from all over
    # memory, where texts written in order are read front to back.
    frame: pd.DataFrame | None = None
    describe: Callable[[Any], tuple[Any, Any]] | None = None
    # When set, the items' url, source_url and target_url are codes into these URLs.
    url_codes: pd.Index | None = None
    # Instead of `describe`: explanations that DuckDB writes as they are stored (_Template).
    template: _Template | None = None

    def texts(self, rows: np.ndarray) -> tuple[pa.Array, pa.Array | str]:
        """(explanations, fixes) of the findings at `rows`, in that order; the fix as one text when
        all have the same."""
        explanation, fix = _texts(self.describe, self.frame.iloc[rows].reset_index(drop=True))
        return _text_array(explanation, len(rows)), fix if isinstance(fix, str) else _text_array(fix, len(rows))


def _text_array(texts: Any, n: int) -> pa.Array:
    """One text for all n findings, or one each (a list, a NumPy or an Arrow-backed array), as Arrow
    (codes into a few texts, _agree_v's, as they are)."""
    if isinstance(texts, str):
        return pa.repeat(pa.scalar(texts, pa.large_string()), n)
    if isinstance(texts, pa.DictionaryArray):
        return texts
    if isinstance(texts, pd.api.extensions.ExtensionArray):
        texts = pa.array(texts)
    return texts.cast(pa.large_string()) if isinstance(texts, pa.Array) else pa.array(texts, pa.large_string())


_PART_FINDING = ["code", "severity", "url", "anchor", "item_count", "juice_at_stake"]
_PART_ITEM = ["code", "url", "finding_anchor", "source_url", "target_url", "anchor", "position", "link_order",
              "juice", "detail", "_local"]


def _whole_frame(describe: Callable[[pd.DataFrame], tuple[Any, Any]]) -> Callable[[pd.DataFrame], tuple[Any, Any]]:
    """Mark a describe function as writing every finding's texts at once, with vectorised string
    operations, for the codes that can have a finding per page on a big site."""
    describe.whole_frame = True  # type: ignore[attr-defined]
    return describe


def _texts(describe: Callable[[Any], tuple[Any, Any]], frame: pd.DataFrame) -> tuple[Any, Any]:
    """(explanations, fixes) of the rows of `frame`: a list each, or arrays from a whole-frame describe."""
    if getattr(describe, "whole_frame", False):
        explanation, fix = describe(frame)
        # .array, not .to_numpy(): Arrow-backed strings stay so (no Python string per row).
        return (explanation.array if isinstance(explanation, pd.Series) else explanation,
                fix.array if isinstance(fix, pd.Series) else fix)
    texts = [describe(r) for r in _rows(frame)]
    return [e for e, _ in texts], [f for _, f in texts]


def _join(*pieces: Any) -> pa.Array:
    """The texts of a whole-frame describe: its pieces (texts the same for every row, or columns:
    Series, arrays) joined row by row in one pass of Arrow's kernels."""
    def arrow(piece: Any) -> Any:
        if isinstance(piece, str):
            return pa.scalar(piece, pa.large_string())
        return (piece if isinstance(piece, (pa.Array, pa.ChunkedArray)) else pa.array(piece)).cast(pa.large_string())
    return pc.binary_join_element_wise(*map(arrow, pieces), pa.scalar("", pa.large_string()))


# A column of small integers becomes text by a take from the texts of its range when the range
# is at most this wide (3M counts: 0.015 instead of 0.11 s formatted and joined one by one).
_TEXT_TABLE = 1 << 16


def _plural_v(counts: Any, word: str) -> pa.Array:
    """_plural for a column of counts."""
    values = np.asarray(counts, np.int64)
    if len(values) and 0 <= values.min() and values.max() < _TEXT_TABLE:
        return pa.array([_plural(i, word) for i in range(int(values.max()) + 1)], pa.large_string()).take(values)
    counts = pa.array(values)
    return _join(counts, pc.if_else(pc.equal(counts, 1), pa.scalar(f" {word}", pa.large_string()),
                                    pa.scalar(f" {word}s", pa.large_string())))


class _Sql(str):
    """A piece of SQL among a template's pieces (the others are texts)."""


def _sql_template(*pieces: str) -> str:
    """A _Template's SQL: the pieces concatenated, texts as SQL literals."""
    return " || ".join(p if isinstance(p, _Sql) else _sql_literal(p) for p in pieces)


def _plural_sql(column: str, word: str) -> _Sql:
    """_plural_v in SQL, for an integer column."""
    return _Sql(f"CAST({column} AS VARCHAR) || CASE WHEN {column} = 1 THEN ' {word}' ELSE ' {word}s' END")


def _agree_sql(column: str, one: str, many: str) -> _Sql:
    """_agree_v in SQL, for an integer column."""
    return _Sql(f"CASE WHEN {column} = 1 THEN {_sql_template(one)} ELSE {_sql_template(many)} END")


def _score_sql(column: str) -> _Sql:
    """_score in SQL, for a float column (NULL: missing): rounded half to even, as Python's format does."""
    return _Sql(f"coalesce(CAST(CAST(round_even({column}, 0) AS BIGINT) AS VARCHAR), '-')")


def _strings(values: pd.Series) -> Any:
    """A text column to put in a new frame: Arrow-backed strings as they are (no Python string
    per row), others as their array."""
    return values.array if isinstance(values.dtype, pd.StringDtype) else values.to_numpy()


def _repeated(text: str, n: int) -> pd.Categorical:
    """A column of n times the same text (a part's code or severity), as a categorical: no text
    per finding (_order ranks the codes and severities by their categories)."""
    return pd.Categorical.from_codes(np.zeros(n, np.int8), categories=[text])


def _empty_part() -> _Part:
    return _Part(pd.DataFrame(columns=_PART_FINDING), pd.DataFrame(columns=_PART_ITEM))


def _link_part(
    code: str,
    items: pd.DataFrame,
    describe: Callable[[Any], tuple[str, str]] | None,
    *,
    template: Callable[[pd.DataFrame], _Template] | None = None,
    juice_col: str = "lost",
    detail: pd.Series | str | None = None,
    url: pd.Series | None = None,
    finding_anchor: pd.Series | None = None,
    severity: Severity | None = None,
    urls: pd.Index | None = None,
) -> _Part:
    """Findings made of links: one finding per `url` (default: the link target) and finding
    anchor; juice at stake = the sum of the links' juice. `describe` gets the aggregated row
    (url, finding_anchor, item_count, juice_at_stake, sources; target_code when one finding per
    target) and returns (explanation, fix); or `template` gets those rows as one frame and returns
    the findings' _Template. `urls`: the items came with url_codes (Context.items) and these are
    the URLs their codes point into."""
    if items.empty:
        return _empty_part()
    if urls is not None:  # one finding per target; the items keep their URLs as codes
        target = pd.Series(items["target_code"].to_numpy())
    else:
        target = url if url is not None else items["target_url"]
    # Groups by integer codes, numbered in order of first appearance (a groupby on the URL
    # strings hashes each of a big site's millions of items).
    url_code = pd.factorize(url if url is not None else items["target_code"], use_na_sentinel=False)[0].astype(np.int64)
    if finding_anchor is not None:
        anchor_code = pd.factorize(finding_anchor, use_na_sentinel=False)[0].astype(np.int64)
        url_code = pd.factorize(url_code * (int(anchor_code.max()) + 1) + anchor_code)[0].astype(np.int64)
    juice = items[juice_col].to_numpy(dtype="float64")
    # The codes count up from 0 as they first appear: each group's first item is where their
    # running maximum grows; its item count, a count of codes; its sources, distinct (code,
    # source) pairs counted per code (integers, where pandas' nunique sorted a big site's
    # millions of items). The juice is summed by pandas, whose group sums are compensated.
    first = np.flatnonzero(np.diff(np.maximum.accumulate(url_code), prepend=-1) > 0)
    src = items["src"].to_numpy().astype(np.int64)
    width = int(src.max()) + 1
    pairs = _distinct(url_code * width + src)
    agg = pd.DataFrame(copy=False, data={
        "url": target.iloc[first].array if urls is None else _taken_texts(urls, target.to_numpy()[first]),
        "finding_anchor": finding_anchor.to_numpy()[first] if finding_anchor is not None else None,
        "item_count": np.bincount(url_code, minlength=len(first)),
        "juice_at_stake": _group_sums(url_code, juice, len(first)),
        "sources": np.bincount(pairs // width, minlength=len(first)),
    })
    del src, pairs
    if url is None:
        agg["target_code"] = items["target_code"].to_numpy()[first]
    rows = pd.DataFrame(copy=False, data={
        "code": _repeated(code, len(items)),  # (not a text per item: _item_tables ranks the codes)
        "url": target.array if urls is None else target.to_numpy(),
        "finding_anchor": (finding_anchor.to_numpy() if finding_anchor is not None else None),
        "source_url": items["source_url"].array if urls is None else items["src"].to_numpy(),
        "target_url": items["target_url"].array if urls is None else target.to_numpy(),
        "anchor": items["anchor"].array, "position": items["position"].array,
        "link_order": items["link_order"].to_numpy(), "juice": juice,
        "detail": detail.to_numpy() if isinstance(detail, pd.Series) else detail,
        "_local": url_code,
    })
    findings = pd.DataFrame({
        "code": _repeated(code, len(agg)), "severity": _repeated(str(severity or CODES[code].severity), len(agg)),
        "url": agg["url"],
        "anchor": agg["finding_anchor"], "item_count": agg["item_count"].astype(int),
        "juice_at_stake": agg["juice_at_stake"].astype(float),
    })
    if template is not None:
        return _Part(findings, rows[_PART_ITEM], url_codes=urls, template=template(agg))
    return _Part(findings, rows[_PART_ITEM], agg, describe, url_codes=urls)


def _page_part(code: str, frame: pd.DataFrame, describe: Callable[[Any], tuple[str, str]] | None,
               severity: pd.Series | Severity | None = None,
               items: pd.DataFrame | None = None, template: _Template | None = None) -> _Part:
    """Findings about pages: `frame` has url and juice_at_stake plus what `describe` reads (or
    their texts are the `template`'s, whose arguments are the frame's rows')."""
    if frame.empty:
        return _empty_part()
    sev = severity if isinstance(severity, pd.Series) else str(severity or CODES[code].severity)
    findings = pd.DataFrame({
        "code": _repeated(code, len(frame)),
        "severity": pd.Categorical(sev.to_numpy()) if isinstance(sev, pd.Series) else _repeated(sev, len(frame)),
        "url": _strings(frame["url"]), "anchor": None,
        "item_count": 0, "juice_at_stake": frame["juice_at_stake"].astype(float).to_numpy(),
    })
    if items is not None and not items.empty:
        urls = pd.Index(findings["url"].astype(object))
        first = np.flatnonzero(~urls.duplicated())  # an item belongs to the first finding of its URL
        at = urls[first].get_indexer(items["url"].astype(object))
        local = np.where(at >= 0, first[np.maximum(at, 0)], -1)
        items = items.assign(code=_repeated(code, len(items)), finding_anchor=None, _local=local)[_PART_ITEM]
        findings["item_count"] = np.bincount(local[local >= 0], minlength=len(findings))[:len(findings)]
    else:
        items = pd.DataFrame(columns=_PART_ITEM)
    if template is not None:
        return _Part(findings, items, template=template)
    return _Part(findings, items, frame.reset_index(drop=True), describe)


_TRAP_FIX = {
    "url-pattern": "Stop generating endless variants of this URL shape (filters, sorting, pagination without "
                   "end): link only the useful ones, and disallow the rest in robots.txt.",
    "calendar": "Stop linking calendar pages without end: link only dates with content, and disallow the "
                "rest in robots.txt.",
    "session-id": "Keep session ids out of URLs (use cookies); add rel=canonical to the clean URL.",
    "query-length": "Shorten the query string: drop parameters that do not change the content.",
    "repeated-parameter": "Stop appending the same parameter again: build links from the clean URL.",
    "path-repetition": "Fix the relative links that repeat path segments (a missing leading slash or "
                       "a wrong <base href>).",
}


def _traps(traps: pd.DataFrame | None) -> _Part:
    """infinite-space: URL patterns the crawler refused after their per-pattern limit."""
    if traps is None or traps.empty:
        return _empty_part()
    frame = traps.rename(columns={"example_url": "url"}).assign(juice_at_stake=0.0)

    def describe(r: Any) -> tuple[str, str]:
        text = (f"The crawler found an endless URL space ({r.kind}: {r.pattern}) and skipped "
                f"{_plural(int(r.skipped), 'URL')} of it, for example {r.url}. Crawlers waste their budget "
                "there and the juice of these links spreads over pages nobody needs.")
        return text, _TRAP_FIX.get(str(r.kind), _TRAP_FIX["url-pattern"])

    return _page_part("infinite-space", frame, describe)


def _what_broken(status: Any, error: Any) -> str:
    if status is not None and not pd.isna(status):
        return f"returns HTTP {int(status)}"
    return f"fails ({error})" if error is not None and not pd.isna(error) else "fails"


# -- detectors ------------------------------------------------------------------------------------
def _broken_links(ctx: _Context) -> _Part:
    items = ctx.items(ctx.links_to(ctx.in_states(_BROKEN_STATES)).get(1, np.zeros(0, np.int64)))
    if items.empty:
        return _empty_part()
    # What each broken page does, worded once per page: a page is the target of many links.
    dst = items["dst"].to_numpy(np.int64)
    ids = np.unique(dst)
    pages = ctx.pages
    what = pd.Series([_what_broken(s, e) for s, e in zip(pages["status"].iloc[ids], pages["error"].iloc[ids])],
                     index=ids, dtype=object)
    what_of_url = dict(zip(pages["url"].iloc[ids], what))

    @_whole_frame
    def describe(f: pd.DataFrame) -> tuple[Any, Any]:
        url = f["url"].astype(str)
        return (_join(url, " ", url.map(what_of_url), ". ", _plural_v(f["item_count"], "link"), " on ",
                      _plural_v(f["sources"], "page"),
                      _agree_v(f["item_count"], " points at it, and the juice it would pass is lost.",
                               " point at it, and the juice they would pass is lost.")),
                _agree_v(f["item_count"],
                         "Restore the page, or change this link to a live URL (or remove it); if the page "
                         "moved, redirect it to its new address.",
                         "Restore the page, or change these links to a live URL (or remove them); if the page "
                         "moved, redirect it to its new address."))

    return _link_part("broken-links", items, describe, detail=pd.Series(what.loc[dst].to_numpy(), dtype=object))


class _RowsByKey:
    """frame.to_dict("index")[key][column], each row's values gathered when it is asked for: a
    dict of every row, made at once, took 1.5-2.5 s for 50k redirects."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._at = {key: i for i, key in enumerate(frame.index)}
        self._columns = {name: frame[name].tolist() for name in frame.columns}

    def __getitem__(self, key: Any) -> dict[str, Any]:
        i = self._at[key]
        return {name: values[i] for name, values in self._columns.items()}


def _redirects(ctx: _Context, paths: pd.DataFrame) -> list[_Part]:
    pages = ctx.pages
    is_redirect = pages["status"].between(300, 399).fillna(False).to_numpy(bool)
    if not is_redirect.any():
        return []
    walks = _walks(paths)
    red = pages.loc[is_redirect, ["page_id", "url", "status", "final_url", "found_via"]].copy()
    # The ids of the redirects' final URLs (an index of every page's URL was 1 GB at 10M pages).
    at = np.flatnonzero(pages["url"].isin(red["final_url"].dropna().unique()).to_numpy(bool))
    url_to_id = pd.Series(at, index=pages["url"].iloc[at].array)
    red = red.join(walks, on="url")
    red["hops"] = red["hops"].fillna(1).astype(int)
    red["loop"] = red["loop"].fillna(False).astype(bool) | red["final_url"].isna()
    # The final page's state, status and error, gathered by id (a lookup per redirect was seconds at 10M).
    final_id = red["final_url"].map(url_to_id).to_numpy(np.float64)
    crawled = np.flatnonzero(~np.isnan(final_id))
    at = final_id[crawled].astype(np.int64)
    for name, values, missing in (("final_state", ctx.state, "outside the crawl"),
                                  ("final_status", pages["status"], None), ("final_error", pages["error"], None)):
        column = np.full(len(red), missing, dtype=object)
        column[crawled] = values[at] if isinstance(values, np.ndarray) else values.iloc[at].to_numpy(object)
        red[name] = column
    code = np.select(
        [red["loop"], red["final_state"].isin(_BROKEN_STATES),
         ~red["final_state"].isin(["indexable", "canonicalised"]), red["hops"] >= 2],
        ["redirect-loop", "redirect-to-broken", "redirect-to-non-indexable", "redirect-chain"],
        "links-to-redirects")
    red["code"] = code
    # Which pages some link points at, as a mask by page id (no hashing of millions of links).
    # Redirects are not indexable: the links to them are among those to the pages that are not,
    # found once for the detectors (_Context.links_to), where a mark for each of a big site's 200M
    # links took 2-5 s.
    red_id = red["page_id"].to_numpy(np.int64)
    targets = ctx.target_code if ctx.ranked[red_id].any() else ctx._links_to_unranked()[1]
    linked_page = np.zeros(len(ctx.target_urls), bool)  # (by target code: a page id is a page's code)
    linked_page[targets] = True
    linked = pd.Series(linked_page[red_id], index=red.index)
    # A redirect reached only through another redirect is part of that one's finding.
    entry = linked | (red["found_via"] != "redirect")
    red = red[entry & ((red["code"] != "links-to-redirects") | linked)].set_index("url")

    red_row = _RowsByKey(red)  # looked up once per finding

    def path_text(url: str) -> str:
        path = red_row[url]["path"]
        return " -> ".join([url, *path]) if isinstance(path, list) else url

    def describe_for(code_name: str) -> Callable[[Any], tuple[str, str]]:
        def describe(r: Any) -> tuple[str, str]:
            row = red_row[r.url]
            final = row["final_url"]
            via = (f"{_plural(r.item_count, 'link')} on {_plural(r.sources, 'page')}" if r.item_count
                   else "no crawled page links to it, but visitors from elsewhere")
            one = r.item_count == 1  # (the verbs agree with `via`)
            if code_name == "redirect-loop":
                return (f"{r.url} redirects in a loop ({path_text(r.url)}) and never reaches a page; "
                        f"{via} {'leads nowhere and its' if one else 'lead nowhere and their'} juice is lost.",
                        f"Break the loop: redirect {r.url} once to the page it should lead to (or serve it "
                        "with status 200), then link to that page directly.")
            if code_name == "redirect-to-broken":
                return (f"{r.url} redirects to {final}, which {_what_broken(row['final_status'], row['final_error'])}; "
                        f"{via} {'loses its' if one else 'lose their'} juice on the way.",
                        f"Redirect {r.url} to a live page (or restore {final}) and link to the live page directly.")
            if code_name == "redirect-to-non-indexable":
                return (f"{r.url} redirects to {final}, which is not indexable ({row['final_state']}); "
                        f"{via} {'loses its' if one else 'lose their'} juice on the way.",
                        "Redirect to an indexable page, or link straight to one.")
            if code_name == "redirect-chain":
                return (f"{r.url} reaches {final} only after {row['hops']} redirects ({path_text(r.url)}); "
                        f"{via} {'goes' if one else 'go'} through the chain. Each hop costs a request and search "
                        "engines may stop following before the end.",
                        f"Redirect {r.url} straight to {final} (one hop) and change the links to point at {final}.")
            return (f"{r.url} redirects ({int(row['status'])}) to {final}; {via} {'points' if one else 'point'} "
                    "at the redirect. The juice passes on, but every visit costs an extra request and relies on the "
                    "redirect staying.",
                    f"Change {'this link' if one else 'these links'} to point straight at {final}.")
        return describe

    redirect_detail = {u: f"redirects to {f}" if isinstance(f, str) else "redirect loop"
                       for u, f in zip(red.index, red["final_url"].astype(object))}
    parts = []
    code_names = ("redirect-loop", "redirect-to-broken", "redirect-to-non-indexable", "redirect-chain",
                  "links-to-redirects")
    page_class = np.zeros(len(pages), np.int8)  # 1 + the code of each redirect's finding
    page_class[red["page_id"].to_numpy(np.int64)] = pd.Index(code_names).get_indexer(red["code"]) + 1
    linking = ctx.links_to(page_class)
    for k, code_name in enumerate(code_names, start=1):
        subset = red[red["code"] == code_name]
        if subset.empty:
            continue
        items = ctx.items(linking.get(k, np.zeros(0, np.int64)))
        juice_col = "juice"  # a followed link to a redirect carries its juice either on or into the void
        items = items.assign(counted=np.where(items["reason"] == "nofollow", 0.0, items[juice_col]))
        part = _link_part(code_name, items, describe_for(code_name), juice_col="counted",
                          detail=items["target_url"].map(redirect_detail))
        # Redirects nobody links to (known from a sitemap, say) still get their finding.
        unlinked = subset[~subset["page_id"].isin(items["dst"])]
        if len(unlinked):
            extra = pd.DataFrame({"url": unlinked.index, "juice_at_stake": 0.0})
            describe = describe_for(code_name)
            parts.append(part)
            part = _page_part(code_name, extra, lambda r, f=describe: f(_Unlinked(r.url)))
        parts.append(part)
    return parts


def _walks(paths: pd.DataFrame) -> pd.DataFrame:
    """Per redirecting URL (the index, in order of first appearance): its hops, whether its walk
    closes a loop, and the list of URLs it walks through, in hop order (grouped by sorting the
    start codes: pandas' list aggregation called Python once per redirect)."""
    start_code, starts = pd.factorize(paths["start_url"])
    index = pd.Index(starts, name="start_url")
    if not len(start_code):
        return pd.DataFrame({"hops": [], "loop": [], "path": []}, index=index)
    order = np.argsort(start_code, kind="stable")
    first = np.flatnonzero(np.diff(start_code[order], prepend=-1))
    targets = paths["target_url"].to_numpy(object)[order]
    return pd.DataFrame({
        "hops": np.maximum.reduceat(paths["hop"].to_numpy()[order], first),
        "loop": np.logical_or.reduceat(paths["closes_loop"].to_numpy(bool)[order], first),
        "path": [chunk.tolist() for chunk in np.split(targets, first[1:])],
    }, index=index)


@dataclass(slots=True)
class _Unlinked:
    url: str
    item_count: int = 0
    sources: int = 0


def _orphans(ctx: _Context, known: pd.DataFrame) -> list[_Part]:
    if known.empty:
        return []
    pages, links = ctx.pages, ctx.links
    cand = known.copy()
    cand["key"] = url_key(cand["url"])
    if ctx.start_url:
        cand = cand[cand["key"] != url_key(pd.Series([ctx.start_url])).iloc[0]]
    # Imported lists may hold other sites' URLs: keep the hosts the crawl saw.
    hosts = set(pages["url"].str.extract(r"^[a-z]+://([^/]+)", expand=False).str.lower().dropna())
    cand = cand[cand["url"].str.extract(r"^[a-zA-Z]+://([^/]+)", expand=False).str.lower().isin(hosts)]
    page_id = pd.Series(np.arange(len(pages)), index=pages["url"])
    cid = cand["url"].map(page_id)
    crawled = cid.notna()
    cstate = np.where(crawled, ctx.state[cid.fillna(0).astype(int)], "not crawled")
    cand = cand[(cstate == "indexable") | ~crawled].copy()
    cand["page_id"] = cid[cand.index]
    if cand.empty:
        return []
    # Every link reaches its target's key and, through redirects, its final URL's key; a page's
    # links to its own variants do not count.
    # Keys are matched as integers (ids of the candidates' keys): a big site has millions of links.
    cand_keys = pd.Index(cand["key"].unique())
    targets = ctx.target_urls
    target_kid = cand_keys.get_indexer(url_key(pd.Series(targets.astype(object))))
    final_kid = cand_keys.get_indexer(url_key(pages["final_url"].fillna(pages["url"])))
    src = links["src"].to_numpy()
    via_target = target_kid[ctx.target_code]
    # (-1 for the URLs that are not stored pages: they have no final URL)
    via_final = np.append(final_kid, np.full(len(targets) - len(final_kid), -1))[ctx.target_code]
    via_final = np.where(via_final == via_target, -1, via_final)
    own_kid = target_kid[src]  # source URLs are the first categories of target_url (page id order)
    first = np.flatnonzero((via_target >= 0) & (via_target != own_kid))
    second = np.flatnonzero((via_final >= 0) & (via_final != own_kid))
    in_link = np.concatenate([first, second])
    in_kid = np.concatenate([via_target[first], via_final[second]])
    in_followed = ~links["nofollow"].to_numpy(bool)[in_link]
    in_indexable = in_followed & ctx.ranked[src[in_link]]
    k = len(cand_keys)
    per_key = pd.DataFrame({"any_link": np.bincount(in_kid, minlength=k),
                            "followed": np.bincount(in_kid, weights=in_followed, minlength=k),
                            "from_indexable": np.bincount(in_kid, weights=in_indexable, minlength=k)},
                           index=cand_keys)
    cand = cand.join(per_key, on="key")
    cand[["any_link", "followed", "from_indexable"]] = cand[["any_link", "followed", "from_indexable"]].fillna(0)
    own = np.where(cand["page_id"].notna(), ctx.juice[cand["page_id"].fillna(0).astype(int)], 0.0)
    cand["juice_at_stake"] = np.maximum(ctx.reference - own, 0.0)
    cand["kind"] = np.select([cand["any_link"] == 0, cand["followed"] == 0, cand["from_indexable"] == 0],
                             ["orphan", "orphan-nofollow-only", "orphan-noindex-only"], "")
    cand = cand[cand["kind"] != ""]
    partial = "" if ctx.complete else (
        " The crawl was partial (it stopped at a limit), so a page it did not reach may link here: "
        "re-crawl without limits to confirm.")
    parts = []
    for kind in ("orphan", "orphan-nofollow-only", "orphan-noindex-only"):
        frame = cand[cand["kind"] == kind].reset_index(drop=True)
        if frame.empty:
            continue
        sev = CODES[kind].severity if ctx.complete else Severity.NOTICE
        if kind == "orphan":
            items = pd.DataFrame({"url": frame["url"], "source_url": None, "target_url": frame["url"],
                                  "anchor": None, "position": None, "link_order": None, "juice": 0.0,
                                  "detail": "known from " + frame["source"].astype(str)})

            def describe(r: Any) -> tuple[str, str]:
                seen = "was crawled" if not pd.isna(r.page_id) else "was not reached by the crawl"
                return (f"{r.url} is known from {r.source} but no crawled page links to it; it {seen} and gets "
                        f"only the juice every page starts with.{partial}",
                        "Link to it from related pages and from its section's hub page; if it is obsolete, "
                        "remove it from the sitemap and redirect it.")
        else:
            chosen = np.isin(in_kid, cand_keys.get_indexer(frame["key"]))
            if kind == "orphan-nofollow-only":
                chosen &= ~in_followed
            sub = ctx.items(in_link[chosen], key=cand_keys[in_kid[chosen]].to_numpy())
            key_to_url = dict(zip(frame["key"], frame["url"]))
            detail = "nofollow" if kind == "orphan-nofollow-only" else \
                "from a page that is " + pd.Series(ctx.state[sub["src"].to_numpy()], dtype=object)
            items = pd.DataFrame({"url": sub["key"].map(key_to_url).to_numpy(),
                                  "source_url": sub["source_url"].to_numpy(),
                                  "target_url": sub["target_url"].to_numpy(), "anchor": sub["anchor"].to_numpy(),
                                  "position": sub["position"].to_numpy(), "link_order": sub["link_order"].to_numpy(),
                                  "juice": sub["lost"].to_numpy(dtype=float),
                                  "detail": detail if isinstance(detail, str) else detail.to_numpy()})
            if kind == "orphan-nofollow-only":
                def describe(r: Any) -> tuple[str, str]:
                    return (f"{r.url} is linked only with rel=nofollow ({_plural(int(r.any_link), 'link')}): "
                            f"no juice reaches it through links.{partial}",
                            "Remove rel=nofollow from the internal links to it, or add followed links from "
                            "related pages.")
            else:
                def describe(r: Any) -> tuple[str, str]:
                    return (f"{r.url} is linked only from pages that are not indexable "
                            f"({_plural(int(r.any_link), 'link')}); those pages hold no juice, so none reaches "
                            f"it.{partial}",
                            "Link to it from indexable pages (its section's hub, related articles).")
        parts.append(_page_part(kind, frame, describe, severity=sev, items=items))
    return parts


def _importance(ctx: _Context, importance: pd.DataFrame) -> _Part:
    if importance.empty:
        return _empty_part()
    t, pages = ctx.t, ctx.pages
    imp = importance.copy()
    imp["key"] = url_key(imp["url"])
    imp = imp.groupby("key", as_index=False).agg(url=("url", "first"), clicks=("clicks", "sum"),
                                                  impressions=("impressions", "sum"), weight=("weight", "max"))
    important = imp["weight"] > 0
    for col in ("clicks", "impressions"):
        positive = imp.loc[imp[col] > 0, col]
        if len(positive):
            important |= imp[col] >= positive.quantile(1.0 - t.important_top_share)
    imp = imp[important]
    # Match to crawled pages by key; prefer an indexable page among variants.
    keyed = pd.DataFrame({"key": url_key(pages["url"]), "page_id": np.arange(len(pages)), "ranked": ctx.ranked})
    keyed = keyed.sort_values("ranked", ascending=False).drop_duplicates("key")
    imp = imp.merge(keyed[["key", "page_id"]], on="key", how="left")
    ids = imp["page_id"].fillna(-1).astype(int).to_numpy()
    found, safe = ids >= 0, np.maximum(ids, 0)
    own = np.where(found, ctx.juice[safe], 0.0)
    ranked = np.where(found, ctx.ranked[safe], False)
    bar = float(np.percentile(ctx.juice[ctx.ranked], t.important_percentile)) if ctx.ranked.any() else 0.0
    imp = imp.assign(
        url=np.where(found, pages["url"].to_numpy()[safe], imp["url"].to_numpy()), juice=own, ranked=ranked,
        state=np.where(found, ctx.state[safe], "not crawled"),
        score=np.where(found, pages["juice_score"].astype("float64").to_numpy()[safe], math.nan),
        juice_at_stake=np.maximum(bar - own, 0.0))
    imp = imp[~ranked | (own < bar)]

    def describe(r: Any) -> tuple[str, str]:
        why = []
        if r.clicks or r.impressions:
            why.append(f"{r.clicks:.0f} clicks and {r.impressions:.0f} impressions in Search Console")
        if r.weight > 0:
            why.append(f"priority weight {r.weight:g}")
        matters = f"{r.url} is important ({'; '.join(why)})"
        if pd.isna(r.page_id):
            return (f"{matters} but the crawl never reached it, so no link passes it juice.",
                    "Check the URL still works, then link to it from strong pages (home, hubs, popular articles).")
        if not r.ranked:
            return (f"{matters} but it is not indexable ({r.state}), so it holds no juice.",
                    "Make the page indexable (or link to the URL that replaced it), then link to it from strong pages.")
        return (f"{matters} but holds less juice than {t.important_percentile:g}% of indexable pages "
                f"(juice score {_score(r.score)}/100).",
                "Link to it prominently from strong pages (home page, hubs, popular articles) with "
                "descriptive anchors, and from the pages its searchers land on.")

    return _page_part("important-but-weak", imp.reset_index(drop=True), describe)


def _page_findings(ctx: _Context, skip: set[str]) -> list[_Part]:
    """weak-page, deep-page, dead-end and too-many-links. Pages in `skip` (orphans, important
    pages) already have a finding whose fix also cures weakness and depth."""
    t, pages = ctx.t, ctx.pages
    n = len(pages)
    is_page = ctx.ranked & pages["is_html"].to_numpy(bool)
    shortfall = np.maximum(ctx.reference - ctx.juice, 0.0)
    # Only the columns the texts read: the findings take their rows from this frame.
    frame = pages[["url", "juice"]].assign(juice_at_stake=shortfall, inlinks=ctx.totals.followed_inlinks[:n])
    parts = []

    shown_score = pages["juice_score"].astype("float64").to_numpy()  # (NaN: missing, shown as "-")
    weak = is_page & ((frame["inlinks"].to_numpy() < t.min_inlinks) | (np.nan_to_num(shown_score) < t.weak_score))
    kept = ~pages["url"].isin(skip).to_numpy()  # (each page's URL looked up once for both codes)
    weak &= kept & (pages["url"] != (ctx.start_url or "")).to_numpy()

    weak_texts = _sql_template(
        _Sql("url"), " gets followed links from ", _plural_sql("_n", "other page"), " and has a juice score of ",
        _score_sql("_x"), f"/100 (the median indexable page: {ctx.median_score:.0f}).")
    parts.append(_page_part("weak-page", frame[weak], None, template=_Template(
        weak_texts, "Link to it from related, stronger pages, in the content and with a descriptive anchor, or from "
        "its section's hub page.", frame["inlinks"].to_numpy(np.int64)[weak], shown_score[weak])))

    depth = pages["depth"].astype("float64").to_numpy()
    deep = is_page & (np.nan_to_num(depth, nan=-1) > t.max_depth) & kept
    deep_texts = _sql_template(
        _Sql("url"), " is ", _Sql("CAST(_n AS VARCHAR)"), f" clicks from the start page (threshold: {t.max_depth}); "
        "deep pages receive little juice and are crawled less often.")
    parts.append(_page_part("deep-page", frame[deep], None, template=_Template(
        deep_texts, "Link to it from a page closer to the home page (a hub or category page), or from navigation "
        "or a related-links block.", depth[deep].astype(np.int64), np.full(int(deep.sum()), np.nan))))

    dead = is_page & (ctx.totals.followed_out[:n] == 0)
    dead_frame = frame[dead].assign(juice_at_stake=ctx.d * ctx.juice[dead])

    def describe_dead(r: Any) -> tuple[str, str]:
        return (f"{r.url} has no followed internal links: the juice it holds ({_fmt_juice(r.juice or 0)}) is "
                "not passed to any other page of the site.",
                "Add links from it to related pages, its section's hub and the main navigation.")
    parts.append(_page_part("dead-end", dead_frame, describe_dead))

    targets = ctx.totals.internal_targets[:n]
    many = (targets > t.max_links) & ctx.ranked
    many_frame = frame[many].assign(targets=targets[many])
    excess = (targets[many] - t.max_links) / np.maximum(targets[many], 1)
    many_frame["juice_at_stake"] = ctx.d * ctx.juice[many] * excess

    def describe_many(r: Any) -> tuple[str, str]:
        each = ctx.d * (r.juice or 0) / max(r.targets, 1)
        return (f"{r.url} links to {r.targets} internal URLs (threshold: {t.max_links}); each link passes on "
                f"average {_fmt_juice(each)}, 1/{r.targets} of what the page passes.",
                "Cut the links readers do not need (repeated menus, long tag lists, footer link farms) so the "
                "important ones pass more.")
    parts.append(_page_part("too-many-links", many_frame, describe_many))
    return parts


def _nofollow(ctx: _Context) -> _Part:
    links = ctx.links
    items = ctx.items(links["nofollow"].to_numpy(bool))
    items = items.assign(counted=np.where(items["reason"] == "nofollow", items["juice"], 0.0))

    def describe(r: Any) -> tuple[str, str]:
        tail = "" if r.juice_at_stake > 0 else (" The same pages also link there without nofollow, so nothing is "
                                                 "lost yet.")
        return (f"{_plural(r.item_count, 'internal link')} on {_plural(r.sources, 'page')} to {r.url} "
                + _agree(r.item_count, "carries rel=nofollow: it keeps its", "carry rel=nofollow: they keep their")
                + f" share of the page's juice and pass{_agree(r.item_count, 'es', '')} none of it.{tail}",
                "Remove rel=nofollow from internal links; to keep a page out of search results use noindex, "
                "not nofollow.")

    return _link_part("nofollow-internal", items, describe, juice_col="counted", detail="nofollow")


def _target_states(ctx: _Context) -> list[_Part]:
    pages = ctx.pages
    canon = pages["canonical"]
    parts = []

    def noindex(r: Any) -> tuple[str, str]:
        return (f"{r.url} is noindex, so the juice of {_plural(r.item_count, 'link')} from "
                f"{_plural(r.sources, 'page')} stops there.",
                "Link to indexable pages instead; if the page should rank, remove noindex, and if it should not, "
                "link to it less.")

    canonical_of: list[pd.Series] = []  # made at the first such finding (a Series of every page)

    def canonicalised(r: Any) -> tuple[str, str]:
        if not canonical_of:
            canonical_of.append(pd.Series(canon.to_numpy(), index=pages["url"]))
        target = canonical_of[0][r.url]
        return (f"{r.url} names {target} as its canonical; {_plural(r.item_count, 'link')} on "
                f"{_plural(r.sources, 'page')} {_agree(r.item_count, 'points', 'point')} at the duplicate instead.",
                f"Link straight to {target}.")

    def blocked(r: Any) -> tuple[str, str]:
        return (f"robots.txt blocks {r.url}: search engines cannot crawl it, so the juice of "
                f"{_plural(r.item_count, 'link')} on {_plural(r.sources, 'page')} goes nowhere.",
                "Allow it in robots.txt if it should rank; otherwise remove the links or mark the page noindex "
                "instead of blocking it.")

    def non_html(r: Any) -> tuple[str, str]:
        return (f"{r.url} is not an HTML page; the juice of {_plural(r.item_count, 'link')} sent to it does "
                "not flow on.",
                "Fine for downloads; for the juice to count, link to an HTML page that presents the file.")

    checks = (("links-to-noindex", "noindex", noindex),
              ("links-to-canonicalised", "canonicalised", canonicalised),
              ("links-to-blocked", "blocked by robots.txt", blocked),
              ("links-to-non-html", "not html", non_html))
    # Each page's check (1 + its index; 0: none). A duplicate whose canonical is itself a problem
    # is reported as canonical-to-* instead.
    page_class = np.zeros(len(pages), np.int8)
    for k, (_, st, _) in enumerate(checks, start=1):
        page_class[ctx.in_states((st,))] = k
    page_class[_canonical_kinds(ctx) > 0] = 0
    linking = ctx.links_to(page_class)
    for k, (code, st, describe) in enumerate(checks, start=1):
        items = ctx.items(linking.get(k, np.zeros(0, np.int64)))
        parts.append(_link_part(code, items, describe, detail=st))
    return parts


_CANONICAL_CODES = ("canonical-to-redirect", "canonical-to-broken", "canonical-to-noindex")


def _canonical_kinds(ctx: _Context) -> np.ndarray:
    """Per page: 1 + the index in _CANONICAL_CODES of its canonical-to-* code when its canonical
    tag points at a bad URL, else 0 (int8, made on the first call: as texts, a fixed-width
    string per page, it was 0.8 GB and 1.4 s at 10M pages, twice)."""
    if ctx.canonical_kinds is None:
        pages = ctx.pages
        has = (pages["canonical"].notna() & (pages["canonical"] != pages["url"])).to_numpy(bool)
        cstatus = pages["canonical_status"].astype("float64")
        cstate = pages["canonical_indexability"]
        ctx.canonical_kinds = np.select(
            [has & cstatus.between(300, 399).to_numpy(bool), has & cstate.isin(_BROKEN_STATES).to_numpy(bool),
             has & (cstate == "noindex").to_numpy(bool)], [np.int8(1), np.int8(2), np.int8(3)], np.int8(0))
    return ctx.canonical_kinds


def _canonicals(ctx: _Context) -> list[_Part]:
    pages = ctx.pages
    kinds = _canonical_kinds(ctx)
    if not kinds.any():
        return []
    inflow = ctx.totals.inflow
    url_to_row = pd.Series(np.arange(len(pages)), index=pages["url"])
    parts = []
    for kind, code in enumerate(_CANONICAL_CODES, start=1):
        if not (kinds == kind).any():
            continue
        frame = pages[kinds == kind].assign(juice_at_stake=inflow[:len(pages)][kinds == kind])
        rows = frame["canonical"].map(url_to_row).astype(int)
        frame = frame.assign(c_final=pages["final_url"].to_numpy()[rows], c_error=pages["error"].to_numpy()[rows])
        detail = {"canonical-to-redirect": "canonical redirects", "canonical-to-broken": "canonical is broken",
                  "canonical-to-noindex": "canonical is noindex"}[code]
        items = pd.DataFrame({"url": frame["url"], "source_url": frame["url"], "target_url": frame["canonical"],
                              "anchor": None, "position": None, "link_order": None,
                              "juice": frame["juice_at_stake"], "detail": detail})

        def describe(r: Any, code: str = code) -> tuple[str, str]:
            if code == "canonical-to-redirect":
                end = r.c_final if isinstance(r.c_final, str) else "nowhere (a loop)"
                what, fix = f"a URL that redirects to {end}", f"Point the canonical tag at {end}, the final URL."
            elif code == "canonical-to-broken":
                what = f"a URL that {_what_broken(r.canonical_status, r.c_error)}"
                fix = "Point the canonical tag at a live page, or at the page itself."
            else:
                what, fix = "a noindex page", "Point the canonical tag at an indexable page, or at the page itself."
            return (f"{r.url} names {r.canonical} as its canonical, {what}. Search engines may ignore the tag, "
                    "and the juice sent to this page is lost in the model.", fix)
        parts.append(_page_part(code, frame.reset_index(drop=True), describe, items=items))
    return parts


@dataclass(slots=True)
class _AnchorClasses:
    """What the anchor checks share: each link's anchor code (row; None once read), the
    normalized text of each code, and the links whose anchor is weak (empty or generic): their
    positions, ascending, and whether each one's anchor is empty. A big site's weak links are a
    few of its links: a mask of every link for each class, and the passes over them, were 3.9 s
    and 0.4 GB of the anchor checks' thread at 10M pages."""

    row: np.ndarray | None
    # The normalized text of each anchor code (the last entry: no anchor text), dictionary-encoded
    # (anchor-multiple-targets' codes of the texts): encoded here, on the anchor checks' thread,
    # which has time to spare; the caller's thread may take that check.
    normalized: pa.DictionaryArray
    weak: np.ndarray
    weak_empty: np.ndarray
    weak_of: np.ndarray  # per anchor code (the last entry: no anchor text), whether it is weak

    @property
    def empty(self) -> np.ndarray:
        """The positions of the links with an empty anchor."""
        return self.weak[self.weak_empty]

    @property
    def generic(self) -> np.ndarray:
        """The positions of the links with a generic anchor."""
        return self.weak[~self.weak_empty]


def _anchor_classes(ctx: _Context) -> _AnchorClasses | None:
    """The links' anchors, normalized and classed (None: no links)."""
    if ctx.links.empty:
        return None
    anchor = ctx.links["anchor"].astype("category")
    uniques = anchor.cat.categories
    # Normalise each distinct anchor once (templates repeat the same text on every page); the
    # last slot stands for links without anchor text, whose code is -1: the links' own codes
    # index the per-anchor arrays as they are (a copy of them was 0.8 GB at 200M links). Per
    # link only one mask is made: a big site has hundreds of millions of links.
    row = anchor.array.codes
    del anchor
    normalized = pa.concat_arrays([normalize_anchors(pa.array(uniques, pa.string())), pa.array([""], pa.string())])
    empty_of = pc.equal(normalized, "").to_numpy(zero_copy_only=False)
    weak_of = generic_normalized_mask(normalized) | empty_of
    weak = np.flatnonzero(weak_of[row])
    return _AnchorClasses(row, normalized.dictionary_encode(), weak, empty_of[row[weak]], weak_of)


def _anchors(ctx: _Context, classes: _AnchorClasses | None) -> list[_Part]:
    """empty-anchor and generic-anchor."""
    if classes is None:
        return []
    target_urls = ctx.target_urls
    parts = []

    def describe_empty(r: Any) -> tuple[str, str]:
        return (f"{_plural(r.item_count, 'link')} on {_plural(r.sources, 'page')} "
                f"{_agree(r.item_count, 'points', 'point')} at {r.url} with no anchor text (and no image alt "
                f"text): {_agree(r.item_count, 'it tells', 'they tell')} readers and search engines nothing about "
                "the page.",
                "Give each link visible text, or alt text on its image, that names the target.")
    parts.append(_link_part("empty-anchor", ctx.items(classes.empty, url_codes=True), describe_empty,
                            detail="empty anchor", urls=ctx.target_urls))

    anchors = ctx.links["anchor"]
    generic = classes.generic
    gen = ctx.items(generic, url_codes=True, anchor_code=anchors.array.codes[generic])
    quoted, quoted_at = _quoted_anchors(gen["target_code"].to_numpy(), gen["anchor_code"].to_numpy(),
                                        anchors.cat.categories, len(target_urls))

    # The explanations are DuckDB's (6.5M at 10M pages: joined in Arrow and compressed whole, they
    # were a sixth of the findings' write); a finding stores its quoted anchors only.
    explain_generic = _sql_template(
        _plural_sql("item_count", "link"), " on ", _plural_sql("_n", "page"),
        _agree_sql("item_count", " points at ", " point at "), _Sql("url"),
        _agree_sql("item_count", " with a generic anchor (", " with generic anchors ("), _Sql("explanation"),
        _agree_sql("item_count", ") that says nothing about it.", ") that say nothing about it."))

    def generic_template(f: pd.DataFrame) -> _Template:
        return _Template(
            explain_generic,
            _agree_v(f["item_count"], "Replace it with words that describe the target page (its topic, product "
                     "or title).", "Replace them with words that describe the target page (its topic, product "
                     "or title)."),
            f["sources"].to_numpy(np.int64), np.full(len(f), np.nan),
            text=pa.DictionaryArray.from_arrays(pa.array(quoted_at[f["target_code"].to_numpy()]), quoted))
    parts.append(_link_part("generic-anchor", gen, None, template=generic_template, detail="generic anchor",
                            urls=ctx.target_urls))
    del gen  # the part holds what it needs
    return parts


# The three anchor codes of a quoted list are packed in one int64 below this many lists.
_PACKED_LISTS = 1 << 62


def _quoted_anchors(target: np.ndarray, anchor_code: np.ndarray, anchors: pd.Index, n_targets: int
                    ) -> tuple[pa.Array, np.ndarray]:
    """Per target of the links (target codes below n_targets, with the links' anchors as codes
    into `anchors`, in link order), its first three distinct anchors (told apart once stripped),
    quoted: '"a", "b", "c"'. Returns the distinct quoted lists and each target's row among them.
    Integers throughout: a site's generic anchors are a few texts on millions of links."""
    used = np.zeros(len(anchors) + 1, bool)
    used[anchor_code] = True
    used = np.flatnonzero(used[:-1])  # (code -1, no text, is not a generic anchor)
    stripped_code, stripped = pd.factorize(pd.Series(anchors[used]).str.strip())
    value = np.full(len(anchors) + 1, -1, np.int32)
    value[used] = stripped_code
    present = np.zeros(n_targets, bool)
    present[target] = True
    targets = np.flatnonzero(present)
    slot = np.full(n_targets, -1, np.int32)
    slot[targets] = np.arange(len(targets), dtype=np.int32)
    first = _first_distinct(slot[target], value[anchor_code], len(targets), 3)
    # The lists are few: each is written once, from its three codes (+1) packed in one integer.
    width = len(stripped) + 1
    texts = ['"' + str(text) + '"' for text in stripped]
    if width ** 3 < _PACKED_LISTS:
        packed = ((first[:, 0].astype(np.int64) + 1) * width + first[:, 1] + 1) * width + first[:, 2] + 1
        list_of, lists = pd.factorize(packed)
        rows = [(p // width ** 2 - 1, p // width % width - 1, p % width - 1) for p in lists.tolist()]
    else:  # (millions of distinct generic anchors)
        distinct, list_of = np.unique(first, axis=0, return_inverse=True)
        rows = distinct.tolist()
    quoted = pa.array([", ".join(texts[c] for c in row if c >= 0) for row in rows], pa.large_string())
    quoted_at = np.zeros(n_targets, np.int64)  # a target's row in `quoted` (a binary search a finding cost more)
    quoted_at[targets] = list_of
    return quoted, quoted_at


def _shared_anchors(ctx: _Context, classes: _AnchorClasses | None) -> list[_Part]:
    """anchor-multiple-targets: one anchor text, several targets (editorial links only; after
    redirects and canonicals). A target is its resolved page or, when none, its URL's key; both
    as integers."""
    if classes is None:
        return []
    links = ctx.links
    row, encoded = classes.row, classes.normalized
    target_code = ctx.target_code
    target_urls = ctx.target_urls
    parts = []
    n = len(ctx.pages)
    norm_code_of = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    n_norm = len(encoded)

    def key_targets() -> np.ndarray:
        # A target: its resolved page or, when none, n + the code of its URL's key (numbered in
        # target URL order: among equal counts, the dominant target is the first). The keys are
        # only made when some target is not resolved.
        key_code = pd.factorize(url_key(pd.Series(target_urls.array)).to_numpy())[0].astype(np.int32)
        return np.where(ctx.target_resolved < 0, n + key_code, ctx.target_resolved)

    from .score import _compiled_kernels  # numba is optional

    kernels = _compiled_kernels(len(links))
    if kernels is not None and isinstance(links["position"].dtype, pd.CategoricalDtype):
        position = links["position"].array.codes
        editorial_of = np.isin(np.asarray(links["position"].cat.categories, dtype=object), _EDITORIAL_POSITIONS)
        args = (position, row, target_code, editorial_of, np.where(classes.weak_of, -1, norm_code_of).astype(np.int32))
        known, edit, target, norm = kernels.shared_anchor_links(*args, ctx.target_resolved, n_norm)
        if not known:
            known, edit, target, norm = kernels.shared_anchor_links(*args, key_targets(), n_norm)
        del position, args
    else:
        editorial = _codes_in(links["position"], _EDITORIAL_POSITIONS)  # (a new array)
        editorial[classes.weak] = False
        norm = norm_code_of[row[editorial]]
        target = ctx.resolved(editorial)
        unresolved = target < 0
        if unresolved.any():
            target[unresolved] = key_targets()[target_code[editorial][unresolved]]
        del unresolved
        # An anchor points at several targets when one of its links' targets differs from the one
        # recorded for it (any of them: plain assignments, where np.minimum.at/maximum.at were slower).
        one_target = np.full(n_norm, -1, np.int32)
        one_target[norm] = target
        several_of = np.zeros(n_norm, bool)
        several_of[norm[target != one_target[norm]]] = True
        several = several_of[norm]
        del one_target, several_of
        target, norm = target[several], norm[several]
        editorial[editorial] = several
        edit = np.flatnonzero(editorial)
        del editorial, several
    del row, norm_code_of  # each link's anchor code is not needed from here
    classes.row = None
    if len(edit):
        width = np.int64(n + len(target_urls) + 1)
        distinct = _distinct(norm.astype(np.int64) * width + target)
        n_targets = np.bincount(distinct // width, minlength=n_norm)
        norm_text = encoded.dictionary.take(pa.array(norm)).to_numpy(zero_copy_only=False)
        multi = ctx.items(edit, norm=norm_text, target=target, norm_code=norm)
        # (items puts the links in link order: the counts are taken by the reordered codes)
        n_targets = pd.Series(n_targets[multi["norm_code"].to_numpy()],
                              index=multi["norm"].to_numpy()).groupby(level=0).first()
        counts = multi.groupby(["norm", "target"]).size().rename("n").reset_index()
        top = counts.sort_values(["norm", "n"], ascending=[True, False]).drop_duplicates("norm").set_index("norm")
        main_url = multi.drop_duplicates(["norm", "target"]).set_index(["norm", "target"])["target_url"]
        dominant_url = {k: main_url.loc[(k, top.at[k, "target"])] for k in top.index}
        # The anchor shown: the most used spelling (the first in sort order among equals).
        spelled = multi.assign(text=multi["anchor"].str.strip()).groupby(["norm", "text"]).size().rename("n")
        spelled = spelled.reset_index().sort_values(["norm", "n", "text"], ascending=[True, False, True])
        shown = spelled.drop_duplicates("norm").set_index("norm")["text"]
        is_main = multi["target"].to_numpy() == top.loc[multi["norm"], "target"].to_numpy()
        multi = multi.assign(counted=np.where(is_main, 0.0, multi["juice"]))

        other_urls = multi[~is_main].drop_duplicates(["norm", "target"]).groupby("norm")["target_url"]

        def describe_multi(r: Any) -> tuple[str, str]:
            k = normalize_anchor(r.finding_anchor)
            listed = ", ".join(other_urls.get_group(k).head(3))
            return (f'The anchor "{r.finding_anchor}" points at {int(n_targets[k])} different pages: mostly '
                    f"{r.url}, but also {listed}; search engines cannot tell which page the words describe.",
                    f"Keep this anchor for {r.url} only and describe the other pages with their own words.")
        parts.append(_link_part(
            "anchor-multiple-targets", multi, describe_multi, juice_col="counted",
            url=multi["norm"].map(dominant_url), finding_anchor=multi["norm"].map(shown),
            detail=pd.Series(np.where(is_main, "main target", "other target"), dtype=object)))

    return parts


def _mostly_generic(ctx: _Context, classes: _AnchorClasses | None) -> list[_Part]:
    """mostly-generic-anchors: pages reached mostly by generic or empty anchors (per target URL)."""
    if classes is None:
        return []
    t = ctx.t
    target_code, target_urls = ctx.target_code, ctx.target_urls
    weak_code = target_code[classes.weak]
    total = _count_codes(target_code, len(target_urls))
    weak = _count_codes(weak_code, len(target_urls))
    hit = (total >= max(t.min_generic_links, 1)) & (weak >= t.generic_share * total) & (weak > 0)
    chosen = hit[weak_code]  # of the weak links
    del weak_code

    explain_mostly = _sql_template(
        _Sql("CAST(item_count AS VARCHAR)"), " of the ", _Sql("CAST(_n AS VARCHAR)"), " internal links to ",
        _Sql("url"), _agree_sql("item_count", " uses", " use"),
        " generic or empty anchors: search engines learn little about what the page is about from its links.")

    def mostly_template(f: pd.DataFrame) -> _Template:
        return _Template(explain_mostly, "Rewrite the generic anchors on the linking pages to describe this page's "
                         "topic.", total[f["target_code"].to_numpy()].astype(np.int64), np.full(len(f), np.nan))
    mostly = ctx.items(classes.weak[chosen], url_codes=True, empty=classes.weak_empty[chosen])
    return [_link_part("mostly-generic-anchors", mostly, None, template=mostly_template, urls=ctx.target_urls,
                       detail=pd.Series(np.where(mostly["empty"], "empty anchor", "generic anchor"), dtype=object))]


def _js_only(ctx: _Context, rendering: pd.DataFrame | None) -> tuple[_Part, dict[str, Any]]:
    """js-only-links: one finding per page that receives links found only in the rendered DOM;
    juice at stake = what the page loses when the model is solved without them (`rendering`)."""
    links = ctx.links
    if rendering is None or links.empty or "found_in" not in links.columns:
        return _empty_part(), {}
    rendered = (links["found_in"] == "rendered").to_numpy()
    # A pair (source page, target URL) with a link in the raw HTML too keeps passing juice without
    # JavaScript: only pairs whose every link is rendered-only count, as in the re-solved model.
    whole_pair = pd.Series(rendered).groupby([links["src"].to_numpy(), ctx.target_code]).transform("all").to_numpy(bool)
    resolved = ctx.resolved(np.ones(len(links), bool))
    receiver = np.where(resolved >= 0, resolved, ctx.page_ids(ctx.target_code))
    chosen = rendered & whole_pair & (receiver >= 0)
    if not chosen.any():
        return _empty_part(), {}
    before = rendering["juice"].to_numpy(np.float64)
    after = rendering["juice_without_rendering"].to_numpy(np.float64)
    raw_inlinks = np.bincount(receiver[(receiver >= 0) & ~rendered], minlength=len(ctx.pages))
    items = ctx.items(chosen, page=receiver[chosen])
    pages = np.unique(items["page"].to_numpy(np.int64))
    frame = pd.DataFrame({
        "url": ctx.pages["url"].to_numpy()[pages], "before": before[pages], "after": after[pages],
        "juice_at_stake": np.maximum(before[pages] - after[pages], 0.0), "js_only": raw_inlinks[pages] == 0,
        "links": items.groupby("page").size().reindex(pages).to_numpy(),
        "sources": items.groupby("page")["src"].nunique().reindex(pages).to_numpy(),
    })
    page_url = ctx.pages["url"].to_numpy()[items["page"].to_numpy(np.int64)]

    def describe(r: Any) -> tuple[str, str]:
        text = (f"{_plural(int(r.links), 'link')} on {_plural(int(r.sources), 'page')} to {r.url} "
                f"{'exists' if r.links == 1 else 'exist'} only after JavaScript runs")
        if r.js_only:
            text += "; no link in the raw HTML reaches the page, so a crawler that does not render finds it only by other means"
        if r.before > 0:
            text += (f". If rendering fails, the page loses {100 * r.juice_at_stake / r.before:.0f}% of its juice "
                     f"({_fmt_juice(r.before)} -> {_fmt_juice(r.after)}).")
        else:
            text += ". The page holds no juice (not indexable), so nothing is lost yet."
        return (text, f"Put {_agree(r.links, 'this link', 'these links')} in the HTML the server sends "
                      "(server-side rendering or static markup, menus first): search engines render late and many "
                      "crawlers never do.")

    part_items = pd.DataFrame({
        "url": page_url, "source_url": items["source_url"].to_numpy(), "target_url": items["target_url"].to_numpy(),
        "anchor": items["anchor"].to_numpy(), "position": items["position"].to_numpy(),
        "link_order": items["link_order"].to_numpy(), "juice": items["juice"].to_numpy(np.float64),
        "detail": "only in the rendered DOM",
    })
    held = float(frame["before"].sum())
    stats = {"js_only_pages": int((frame["js_only"]).sum()), "js_dependent_pages": int(len(frame)),
             "js_only_links": int(len(items)), "js_juice_at_stake": float(frame["juice_at_stake"].sum()),
             "js_juice_share": float(frame["juice_at_stake"].sum() / held) if held > 0 else 0.0}
    return _page_part("js-only-links", frame, describe, items=part_items), stats


# -- accounting -----------------------------------------------------------------------------------
def account_juice(account: pd.DataFrame, page_juice: np.ndarray,
                  ranked: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Where the juice passed through links goes (shares adding up to 1), through which link
    positions, and how concentrated page juice is (top 1% share, Gini). `account`: the flows'
    juice summed per reason, position and state of the page they point at (FlowTotals.account)."""
    juice = account["juice"].astype("float64").fillna(0.0).to_numpy()
    reason = account["reason"].astype(object).to_numpy()
    by_cat: dict[str, float] = {}
    for name in dict.fromkeys(r for r in reason if isinstance(r, str)):
        key = "redirect_lost" if name == "redirect_broken" else name
        by_cat[key] = by_cat.get(key, 0.0) + float(juice[reason == name].sum())
    if "passed" in by_cat:
        # Juice passed on is split by where it arrives: an indexable page, a redirect, a duplicate.
        passed = reason == "passed"
        arrives = account["arrives"].astype(object).to_numpy()
        split = {state: float(juice[passed & (arrives == state)].sum()) for state in ("redirect", "canonicalised")}
        by_cat["redirected"] = by_cat.get("redirected", 0.0) + split["redirect"]
        by_cat["canonicalised"] = by_cat.get("canonicalised", 0.0) + split["canonicalised"]
        by_cat["indexable"] = (by_cat.get("indexable", 0.0) + by_cat.pop("passed")
                               - split["redirect"] - split["canonicalised"])
    total = float(juice.sum())
    rows = []
    for name in _FLOW_CATEGORIES:
        value = float(by_cat.get(name, 0.0))
        rows.append(("destination", name, value, value / total if total > 0 else 0.0))
    # Positions in name order, "content" standing for none recorded (after the others when no
    # pair records it), so that equal sums keep that order.
    recorded = account["position"].dropna().astype(str)
    names = sorted(set(recorded)) + ([] if "content" in set(recorded) else ["content"])
    position = account["position"].astype(object).where(account["position"].notna(), "content").to_numpy()
    code = pd.Index(names).get_indexer(position)
    sums = np.bincount(code, weights=juice, minlength=len(names))
    present = np.bincount(code, weights=account["flows"].to_numpy(np.float64), minlength=len(names)) > 0
    by_pos = pd.Series(sums[present], index=np.array(names, dtype=object)[present])
    for name, value in by_pos.sort_values(ascending=False, kind="stable").items():
        rows.append(("position", str(name), float(value), float(value) / total if total > 0 else 0.0))
    table = pd.DataFrame(rows, columns=["dimension", "category", "juice", "share"])

    held = np.sort(np.asarray(page_juice, np.float64)[np.asarray(ranked, bool)])[::-1]
    held_total = float(held.sum())
    top_n = max(1, math.ceil(0.01 * len(held))) if len(held) else 0
    asc = held[::-1]
    m = len(asc)
    gini = float((2.0 * np.arange(1, m + 1) @ asc) / (m * held_total) - (m + 1) / m) if m and held_total > 0 else 0.0
    stats = {
        "link_juice": total,
        "page_juice": held_total,
        "ranked_pages": int(m),
        "top1_pages": int(top_n),
        "top1_share": float(held[:top_n].sum() / held_total) if held_total > 0 else 0.0,
        "gini": gini,
    }
    return table, stats


# -- the audit ------------------------------------------------------------------------------------
def audit_site(inputs: AuditInputs, thresholds: AuditThresholds | None = None) -> AuditResult:
    """Every finding of docs/audit.md, in priority order (severity, then juice at stake)."""
    stream = stream_audit(inputs, thresholds)
    findings, items = _assemble(stream._ordered)
    return AuditResult(findings, items, stream.juice_flow, stream.summary, by_code=stream.by_code)


@dataclass(slots=True)
class _Ordered:
    """The detectors' parts, with the final order of their findings."""

    parts: list[_Part]
    # Every part's findings in the final order (_PART_FINDING, _part, _local; _n and _x, a
    # template's numbers: 0 and NaN without one), item counts set.
    findings: pd.DataFrame
    offset: np.ndarray  # part i's findings are offset[i]:offset[i + 1] in `finding_id`
    finding_id: np.ndarray  # of finding `local` of part i at offset[i] + local (1 = first in the final order)
    fixes: dict[str, int]  # the fix texts met so far: text -> code (grown as the texts are written)
    templates: list[str]  # the parts' _Template SQL, numbered in part order (_FindingSlice.template)
    # The findings' url and anchor, part after part (not in the final order: taken a slice at a
    # time as they are written, by `order`, the rows of `texts` in the final order).
    texts: pa.Table
    order: np.ndarray
    urls: pd.Index | None = None  # the URLs the store's items may name by code (AuditStream.urls)

    def text_columns(self, lo: int, hi: int) -> dict[str, pa.ChunkedArray]:
        """The url and anchor of the findings at lo:hi of the final order."""
        rows = pa.array(self.order[lo:hi])
        return {name: self.texts.column(name).take(rows) for name in ("url", "anchor")}


@dataclass(slots=True)
class AuditStream:
    """An audit whose findings and items are handed over as Arrow tables, a slice at a time
    (stream_audit): a big site's tens of millions of findings are written where they go without
    all of them being held as one frame. The tables are made once, as they are read."""

    juice_flow: pd.DataFrame
    summary: dict[str, Any]
    by_code: pd.DataFrame  # summarize() of the findings
    _ordered: _Ordered | None
    # The URLs the items' URL codes point into (item_tables' _url, _source_url):
    # each page's, in page order, then the linked URLs that are no stored page (_Context.target_urls).
    urls: pa.Array | pa.ChunkedArray

    @property
    def view_sql(self) -> dict[str, str]:
        """The SQL of the findings' columns that finding_tables holds in other forms, over its
        columns: the code and severity from their numbers (_code, _severity), the explanation
        from its template where finding_tables left it NULL (_Template)."""
        return {"code": _names_sql("_code", _CODE_NAMES), "severity": _names_sql("_severity", _SEVERITY_NAMES),
                "explanation": _explanation_sql(self._ordered.templates if self._ordered is not None else [])}

    def finding_tables(self) -> Iterator[pa.Table]:
        """The findings, a slice of the priority order at a time, in order: FINDING_COLUMNS, but
        the code and severity as numbers (_code, _severity), and what view_sql reads to write the
        explanations left NULL (_template, _n, _x)."""
        o = self._ordered
        if o is None:
            return
        for texts in _finding_texts(o):
            yield _finding_table(o, texts)
        o.texts = o.texts.slice(0, 0)  # (all taken)
        _texts_done(o.parts)

    def item_tables(self) -> Iterator[pa.Table]:
        """The items, a part's slice at a time, in no particular order (readers order them by
        finding_id, source_url, link_order), as the store keeps them: ITEM_COLUMNS, but the code
        as its number (_code) and, for the parts whose items hold their URLs as codes into `urls`,
        those codes (_url, _source_url; the texts NULL, and the target_url's too where it is the
        url). Read after finding_tables."""
        o, self._ordered = self._ordered, None
        if o is None:
            return
        yield from _item_tables(o)


def stream_audit(inputs: AuditInputs, thresholds: AuditThresholds | None = None) -> AuditStream:
    """audit_site's findings, handed over as an AuditStream. The inputs are consumed: the
    detectors free what they have read."""
    t = thresholds or AuditThresholds()
    ctx = _context(inputs, t)
    release_heap()
    # The pairs are in ctx now, as far as the detectors need them: the inputs' frame of every pair
    # is freed here when the caller handed the inputs over without keeping them (audit_store).
    redirect_paths, known_urls, importance = inputs.redirect_paths, inputs.known_urls, inputs.importance
    rendering, traps, crawl_complete = inputs.rendering, inputs.traps, inputs.crawl_complete
    del inputs
    # First, while memory holds only the inputs: it passes over every flow.
    flow_table, stats = account_juice(ctx.totals.account, ctx.juice, ctx.ranked)
    # The anchor checks, the longest detectors (passes over every link's anchor), run on a thread
    # of their own while this one runs the others, then mostly-generic-anchors: NumPy, Arrow and
    # pandas' hashing release the GIL, and so do the first touches of fresh memory, a third of a
    # big site's detectors on this VM (docs/benchmarks.md). 10M pages: the detectors 45.5 -> 26-28
    # s, the peak 18.7 -> 18.8-19.3 GB. The detectors only read ctx; the heap is trimmed once all
    # are done. The shared anchors come last on that thread: this one takes them when it is done
    # first and they have not started (at 10M pages it was 5-13 s ahead, then waited).
    pool = ThreadPoolExecutor(1, thread_name_prefix="linkjuice-anchors")
    try:
        classes = pool.submit(_anchor_classes, ctx)
        anchor_parts = pool.submit(lambda made: _anchors(ctx, made.result()), classes)
        shared = pool.submit(lambda made: _shared_anchors(ctx, made.result()), classes)
        parts: list[_Part] = [_broken_links(ctx)]
        parts += _redirects(ctx, redirect_paths)
        parts += _orphans(ctx, known_urls)
        important = _importance(ctx, importance)
        parts.append(important)
        skip = set(important.findings["url"]) | {u for p in parts
                                                 for c, u in zip(p.findings["code"], p.findings["url"])
                                                 if str(c).startswith("orphan")}
        page_parts_at = len(parts)  # made last (below), listed here
        parts.append(_nofollow(ctx))
        parts += _target_states(ctx)
        parts += _canonicals(ctx)
        js_part, js_stats = _js_only(ctx, rendering)
        parts.append(js_part)
        parts.append(_traps(traps))
        mostly_generic = _mostly_generic(ctx, classes.result())  # (while the other anchor checks run)
        shared_parts = _shared_anchors(ctx, classes.result()) if shared.cancel() else shared.result()
        parts += anchor_parts.result() + shared_parts + mostly_generic
    finally:  # (all done on success; on an error, what has not started is cancelled, not awaited)
        pool.shutdown(wait=False, cancel_futures=True)
    # (the futures hold what they made: each link's anchor classes)
    del classes, anchor_parts, shared, shared_parts, mostly_generic
    # The detectors are done: the links and pairs (most of the memory on a big site; the texts
    # only read per-page values and constants) are freed before the texts are written.
    ctx.links = ctx.flows = ctx.target_code = ctx.flow_key = None  # type: ignore[assignment]
    release_heap()
    # Page findings read per-page values only: made once the links are freed (a big site has a
    # weak or deep-page finding for most of its pages).
    parts[page_parts_at:page_parts_at] = _page_findings(ctx, skip)
    ordered = _order(parts)
    if ordered is None:
        by_code = summarize(pd.DataFrame(columns=_PART_FINDING))
    else:
        by_code = _counted(ordered.findings)
    summary = {
        **stats,
        "crawl_complete": crawl_complete,
        **js_stats,
        "findings": int(by_code["findings"].sum()),
        **{f"{s}s": int(by_code.loc[by_code["severity"] == str(s), "findings"].sum()) for s in Severity},
        "thresholds": asdict(t),
    }
    if ordered is not None:
        ordered.urls = ctx.target_urls
    urls = pa.array(ctx.target_urls.array)  # (the pages' Arrow strings as they are: no copy)
    return AuditStream(flow_table, summary, by_code, ordered, urls if urls.type != pa.null() else urls.cast(pa.string()))


def _counted(findings: pd.DataFrame) -> pd.DataFrame:
    """summarize() of _Ordered.findings, by their codes' and severities' ranks: no text per
    finding, and sums by bincount (pandas' groupby of 26.8M findings: 2.2 s of one core)."""
    n_severities = len(_SEVERITY_NAMES)
    cell = findings["_order"].to_numpy().astype(np.int64) * n_severities + findings["_rank"].to_numpy()
    size = len(_CODE_NAMES) * n_severities
    count = np.bincount(cell, minlength=size)
    items = np.bincount(cell, weights=findings["item_count"].to_numpy(), minlength=size)
    # (a finding without juice at stake adds none, as in pandas' sum)
    juice = np.bincount(cell, weights=np.nan_to_num(findings["juice_at_stake"].to_numpy(np.float64)), minlength=size)
    cells = np.flatnonzero(count)
    grouped = pd.DataFrame({
        "code": _CODE_NAMES.to_numpy(zero_copy_only=False)[cells // n_severities],
        "severity": _SEVERITY_NAMES.to_numpy(zero_copy_only=False)[cells % n_severities],
        "findings": count[cells], "items": items[cells].astype(np.int64), "juice_at_stake": juice[cells],
    })
    # (in summarize's order before it is sorted by priority: by code and severity)
    return _by_priority(grouped.sort_values(["code", "severity"], ignore_index=True))


def _sort_order(frame: pd.DataFrame, keys: list[tuple[str, str]]) -> np.ndarray:
    """The row order that sorts `frame` by `keys` (column, "ascending" | "descending"), missing
    values first, equal rows in their order. DuckDB's sort (an in-memory database, both cores):
    Arrow's, on one core, took 1.4-1.8x as long for millions of findings with their URLs; both
    several times faster than pandas' on millions of strings."""
    table = pa.Table.from_pandas(frame[[k for k, _ in keys]], preserve_index=False)
    table = table.append_column("_row", pa.array(np.arange(len(frame), dtype=np.int64)))
    by = ", ".join(f'"{k}" {"DESC" if o == "descending" else "ASC"} NULLS FIRST' for k, o in keys)
    with duckdb.connect() as con:
        con.register("sorted_rows", table)
        return _arrow_of(con.sql(f"SELECT _row FROM sorted_rows ORDER BY {by}, _row")).column(0).to_numpy()


def _arrow_of(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A DuckDB relation's rows as an Arrow table (DuckDB 2 renamed arrow() to to_arrow_table())."""
    return (getattr(relation, "to_arrow_table", None) or relation.arrow)()


def _ranks(values: pd.Series, mapping: Mapping[str, int]) -> np.ndarray:
    """mapping[v] (a small integer) for each value of a column of a few distinct strings, each
    looked up once (a categorical's by its categories)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = values.array.codes, values.cat.categories
    elif len(values) and (same := values.iat[0]) is not None and (values.to_numpy() == same).all():
        return np.full(len(values), mapping[str(same)], np.int16)  # (a part's one code: no hashing)
    else:
        codes, uniques = pd.factorize(values)
    return np.array([mapping[str(u)] for u in uniques], np.int16)[codes]


def _fix_codes(fix: pa.Array | str, n: int, index: dict[str, int]) -> np.ndarray:
    """Codes into `index` (fix text -> code, grown as new texts come) of n findings' fixes: one
    text for all, or one each."""
    if isinstance(fix, str):
        return np.full(n, index.setdefault(fix, len(index)), np.int32)
    encoded = fix.dictionary_encode()
    mapped = np.array([index.setdefault(t, len(index)) for t in encoded.dictionary.to_pylist()] + [-1], np.int32)
    return mapped[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)]


# Findings whose texts are written at a time.
_TEXT_SLICE = 1 << 20


def _order(parts: list[_Part]) -> _Ordered | None:
    """The parts' findings in one frame (each part's own frame is dropped once copied), their
    item counts and their final order: severity, then juice at stake, then code, then URL. None
    when there is no finding."""
    sizes = np.zeros(len(parts) + 1, np.int64)
    tables = []
    for i, part in enumerate(parts):
        f = part.findings
        if not f.empty:
            n = sizes[i + 1] = len(f)
            # A finding's item count: the rows listed for it.
            local = part.items["_local"].to_numpy(np.int64) if not part.items.empty else np.zeros(0, np.int64)
            local = local[(local >= 0) & (local < n)]
            # The code and severity as their ranks, from a part's few values (no text per finding).
            tables.append(pa.table({
                "_rank": pa.array(_ranks(f["severity"], _SEVERITY_RANK_OF).astype(np.int8)),
                "_order": pa.array(_ranks(f["code"], _CODE_RANK_OF)),
                "url": pa.Array.from_pandas(f["url"], type=pa.large_string()),
                "anchor": pa.Array.from_pandas(f["anchor"], type=pa.large_string()),
                "item_count": pa.array(np.bincount(local, minlength=n).astype(np.int64)),
                "juice_at_stake": pa.array(f["juice_at_stake"].to_numpy(np.float64), from_pandas=True),
                "_part": pa.array(np.full(n, i, np.int16)), "_local": pa.array(np.arange(n, dtype=np.int32)),
                # A template's numbers, taken into the final order with the others (gathered and
                # scattered a slice at a time, 19M findings at 10M pages took 2-4 s of the write).
                "_n": pa.array(np.asarray(part.template.n, np.int64) if part.template is not None
                               else np.zeros(n, np.int64)),
                "_x": pa.array(np.asarray(part.template.x, np.float64) if part.template is not None
                               else np.full(n, np.nan)),
            }))
        part.findings = None  # type: ignore[assignment]
    if not tables:
        return None
    offset = np.cumsum(sizes)
    found = pa.concat_tables(tables)
    del tables
    # The texts in one array each: Arrow's take from hundreds of chunks (a big site's parts come
    # in many) took 3-5x as long as from one (26.8M URLs: 5.0 s a slice at a time, against 1.6 s).
    texts = found.select(["url", "anchor"]).combine_chunks()
    found = found.set_column(found.schema.get_field_index("url"), "url", texts.column("url"))
    order = _priority_rows(found)
    # The numbers in the final order; the texts stay as they are, each taken as it is written (a
    # copy of 26.8M URLs, 1.5 GB, less at 10M pages, and their gather done beside DuckDB's inserts).
    numbers = found.select(["_rank", "_order", "item_count", "juice_at_stake", "_part", "_local", "_n", "_x"]
                           ).take(pa.array(order))
    findings = pd.DataFrame(copy=False, data={c: numbers.column(c).to_numpy() for c in numbers.column_names})
    del numbers
    finding_id = np.empty(len(findings), np.int64)
    finding_id[offset[findings["_part"].to_numpy()] + findings["_local"].to_numpy()] = np.arange(1, len(findings) + 1)
    return _Ordered(parts, findings, offset, finding_id, {}, [p.template.sql for p in parts if p.template is not None],
                    texts, order)


def _priority_rows(found: pa.Table) -> np.ndarray:
    """The rows of `found` (_rank, juice_at_stake, _order, url, _part, _local) in the order of
    _rank, juice_at_stake from the highest, _order, url (missing values first, URLs by their
    bytes), _part, _local. DuckDB sorts them by the numbers alone, then the URLs break the ties:
    in pairs by one comparison each, in larger groups by a sort of their rows. (Sorted by DuckDB
    with the URL among the keys and every column carried, 26.8M findings took 6-7 s of the 10M
    audit and 12 s shuffled; by the numbers alone, 2 s: the URL is needed for ties only, and a
    big site's ties are mostly pairs of pages of one template.
    This function and the take of every column in its order: 4.4 + 2.5 s, 9.7 CPU s against
    14-16; the numbers alone are taken now, the texts as they are written.)"""
    with duckdb.connect() as con:  # (an in-memory database, both cores)
        # (the rows come part after part, each in its own order: the row number is (_part, _local))
        keys = found.select(["_rank", "juice_at_stake", "_order"])
        con.register("found", keys.append_column("_row", pa.array(np.arange(found.num_rows, dtype=np.int64))))
        rows = _arrow_of(con.sql("SELECT _row FROM found ORDER BY _rank, juice_at_stake DESC NULLS FIRST, _order, "
                                 "_row")).column(0).to_numpy()
        del keys
    if not rows.flags.writeable:  # (a view of DuckDB's result)
        rows = rows.copy()
    # Ties: neighbours in this order with the same rank, juice (missing equals missing) and code.
    juice = found.column("juice_at_stake").to_numpy(zero_copy_only=False)[rows]
    same = (juice[1:] == juice[:-1]) | (np.isnan(juice[1:]) & np.isnan(juice[:-1]))
    del juice
    for name in ("_rank", "_order"):
        values = found.column(name).to_numpy()[rows]
        same &= values[1:] == values[:-1]
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    del same
    size = np.diff(np.append(starts, len(rows)))
    urls = found.column("url")
    # Pairs: the second goes first when its URL is missing and the first's is not, or is lower.
    first = starts[size == 2]
    a, b = urls.take(pa.array(rows[first])), urls.take(pa.array(rows[first + 1]))
    swap = pc.or_(pc.and_(pc.is_null(b), pc.is_valid(a)), pc.fill_null(pc.less(b, a), False))
    swap = first[swap.to_numpy(zero_copy_only=False)]
    rows[swap], rows[swap + 1] = rows[swap + 1], rows[swap].copy()
    # Larger groups: their rows sorted by group, URL and their place so far.
    big = size > 2
    if big.any():
        at = np.flatnonzero(np.repeat(big, size))  # (each group's places, ascending, one group after another)
        with duckdb.connect() as con:
            con.register("tied", pa.table({"tie": np.repeat(np.arange(big.sum()), size[big]), "place": at,
                                           "url": urls.take(pa.array(rows[at]))}))
            moved = _arrow_of(con.sql("SELECT place FROM tied ORDER BY tie, url NULLS FIRST, place")).column(0)
        rows[at] = rows[moved.to_numpy()]
    return rows


# The codes and severities by rank (_Ordered.findings' _order and _rank), and back.
_CODE_NAMES = pa.array(list(CODES), pa.string())
_SEVERITY_NAMES = pa.array([str(s) for s, _ in sorted(_SEVERITY_RANK.items(), key=lambda kv: kv[1])], pa.string())
_CODE_RANK_OF = {c: i for i, c in enumerate(CODES)}
_SEVERITY_RANK_OF = {str(s): rank for s, rank in _SEVERITY_RANK.items()}


@dataclass(slots=True)
class _FindingSlice:
    """The texts of the findings at positions lo:hi of the final order. A finding's explanation is
    `explanation` or, where that is NULL, the SQL of its part's _Template (`template`: its number
    in _Ordered.templates, -1 for none) over its url, `n` and `x` (_explanation_sql)."""

    lo: int
    hi: int
    explanation: pa.Array
    fix: np.ndarray  # codes into _Ordered.fixes
    template: np.ndarray  # int8
    n: np.ndarray
    x: np.ndarray


def _finding_texts(o: _Ordered) -> Iterator[_FindingSlice]:
    """The findings' texts, a slice of the final order at a time, in that order: written per part
    for its findings in the slice, then interleaved. Written whole, then put in order, a big site's
    explanations were held three times: 4 GB at 3M pages. (Handed over a part after another, for
    DuckDB to sort each slice with its texts as it was inserted, the audit's write took a fifth
    more CPU at 3M pages, and five times the page faults.)"""
    part_of = o.findings["_part"].to_numpy()
    local = o.findings["_local"].to_numpy()
    template_of = np.full(len(o.parts), -1, np.int8)
    template_of[[i for i, p in enumerate(o.parts) if p.template is not None]] = np.arange(len(o.templates))
    for lo in range(0, len(local), _TEXT_SLICE):
        hi = min(lo + _TEXT_SLICE, len(local))
        by_part = np.argsort(part_of[lo:hi], kind="stable")
        bounds = np.flatnonzero(np.diff(part_of[lo:hi][by_part])) + 1
        pieces = []
        fix_code = np.empty(hi - lo, np.int32)
        for rows in np.split(by_part, bounds):
            part = o.parts[part_of[lo + rows[0]]]
            if (template := part.template) is not None:  # (its texts are DuckDB's; its numbers in o.findings)
                at_part = local[lo:hi][rows]
                taken = pa.array(at_part)
                explanation = (pa.nulls(len(rows), pa.large_string()) if template.text is None else
                               template.text.dictionary.take(template.text.indices.take(taken)))
                fix = template.fix if isinstance(template.fix, str) else template.fix.take(taken)
            else:
                explanation, fix = part.texts(local[lo:hi][rows])
            pieces.append(explanation)
            fix_code[rows] = _fix_codes(fix, len(rows), o.fixes)
        at = np.empty(hi - lo, np.int64)
        at[by_part] = np.arange(hi - lo)  # the slice's row k is at[k] among the pieces, one part after another
        # (taken from the chunks, not from one array of them: a copy of every text less)
        yield _FindingSlice(lo, hi, pa.chunked_array(pieces, pa.large_string()).take(pa.array(at)).combine_chunks(),
                            fix_code, template_of[part_of[lo:hi]], o.findings["_n"].to_numpy()[lo:hi],
                            o.findings["_x"].to_numpy()[lo:hi])
        del pieces


def _names_sql(column: str, names: pa.Array) -> str:
    """The SQL of names[column] (column: a 0-based number, NULL when missing)."""
    listed = ", ".join(_sql_literal(name) for name in names.to_pylist())
    return f"([{listed}]::VARCHAR[])[{column} + 1]"


def _explanation_sql(templates: Sequence[str]) -> str:
    """The SQL expression of a finding's explanation over a table of _FindingSlice's columns
    (url, explanation, _template, _n, _x)."""
    if not templates:
        return "explanation"
    cases = " ".join(f"WHEN {i} THEN {sql}" for i, sql in enumerate(templates))
    return f"CASE _template {cases} ELSE explanation END"


def _finding_table(o: _Ordered, texts: _FindingSlice) -> pa.Table:
    """A slice of the findings in order, as AuditStream.finding_tables hands them over."""
    rows = o.findings.iloc[texts.lo:texts.hi]
    fixes = pa.array(list(o.fixes), pa.string())
    url_anchor = o.text_columns(texts.lo, texts.hi)
    return pa.table({
        "finding_id": pa.array(np.arange(texts.lo + 1, texts.hi + 1, dtype=np.int64)),
        # The code and severity as their numbers (AuditStream.view_sql names them); the fixes, texts
        # of a few values, as a dictionary: a million fixes written out were 0.1 s a slice.
        "_code": pa.array(rows["_order"].to_numpy().astype(np.int8)),
        "_severity": pa.array(rows["_rank"].to_numpy().astype(np.int8)),
        **url_anchor,
        "item_count": pa.array(rows["item_count"].to_numpy(np.int64)),
        "juice_at_stake": pa.array(rows["juice_at_stake"].to_numpy(np.float64)),
        "explanation": texts.explanation,
        "fix": pa.DictionaryArray.from_arrays(pa.array(texts.fix, mask=texts.fix < 0), fixes),
        "_template": pa.array(texts.template), "_n": pa.array(texts.n), "_x": pa.array(texts.x, from_pandas=True),
    })


def _texts_done(parts: list[_Part]) -> None:
    """Free what the texts were written from."""
    for part in parts:
        part.frame = part.describe = None
    release_heap()


# Items made into a frame at a time (their URLs decoded from codes, for the parts that hold codes).
_ITEM_SLICE = 1 << 21


def _item_parts(o: _Ordered) -> Iterator[tuple[pd.DataFrame, np.ndarray, pd.Index | None]]:
    """Each part's items, a slice at a time, with their finding ids, and the URLs their url
    columns are codes into (None: texts); each part is dropped once its items are made."""
    parts = o.parts
    for i, p in enumerate(parts):
        items, codes = p.items, p.url_codes
        parts[i] = None  # type: ignore[call-overload]
        size = int(o.offset[i + 1] - o.offset[i])
        if items is None or items.empty or not size:
            continue
        for lo in range(0, len(items), _ITEM_SLICE):
            rows = items.iloc[lo:lo + _ITEM_SLICE]
            local = rows["_local"].to_numpy(np.int64)
            ok = (local >= 0) & (local < size)
            if not ok.all():
                rows, local = rows[ok], local[ok]
            yield rows, o.finding_id[o.offset[i] + local], codes
        del items


def _item_url_texts(rows: pd.DataFrame, codes: pd.Index) -> pd.DataFrame:
    """Items whose url, source_url and target_url are codes into `codes`, with those as texts
    (made here, now that the links are freed)."""
    url, target = rows["url"].to_numpy(np.int64), rows["target_url"].to_numpy(np.int64)
    url_text = _taken_texts(codes, url)
    # (a finding per target: its items' url is their target, taken once)
    return rows.assign(url=url_text, source_url=_taken_texts(codes, rows["source_url"].to_numpy(np.int64)),
                       target_url=url_text if np.array_equal(url, target) else _taken_texts(codes, target))


def _item_frames(o: _Ordered) -> Iterator[pd.DataFrame]:
    """The items (ITEM_COLUMNS, finding_id set), a part's slice at a time."""
    for rows, finding_id, codes in _item_parts(o):
        if codes is not None:
            rows = _item_url_texts(rows, codes)
        rows = rows.assign(finding_id=finding_id, code=rows["code"].astype("str"), juice=rows["juice"].astype(float),
                           link_order=rows["link_order"].astype("Int64"))
        yield rows[list(ITEM_COLUMNS)].reset_index(drop=True)


def _item_tables(o: _Ordered) -> Iterator[pa.Table]:
    """The items as the store keeps them (AuditStream.item_tables), a part's slice at a time,
    made into Arrow a column at a time (a frame assigned columns copied them: 1.7 s at 10M pages)."""
    for rows, finding_id, codes in _item_parts(o):
        n = len(rows)
        table: dict[str, Any] = {"finding_id": pa.array(finding_id.astype(np.int32)),
                                 "_code": pa.array(_ranks(rows["code"], _CODE_RANK_OF).astype(np.int8))}
        if codes is not None and codes is not o.urls:  # (codes the store does not hold: as texts)
            rows, codes = _item_url_texts(rows, codes), None
        if codes is None:
            for name, coded in ITEM_URL_CODES.items():
                table[name], table[coded] = pa.Array.from_pandas(rows[name], type=pa.string()), pa.nulls(n, pa.int32())
            table["target_url"] = pa.Array.from_pandas(rows["target_url"], type=pa.string())
        else:  # kept as codes (the view names them); the target as text unless it is the url (NULL)
            for name, coded in ITEM_URL_CODES.items():
                table[name], table[coded] = pa.nulls(n, pa.string()), pa.array(rows[name].to_numpy().astype(np.int32))
            target = rows["target_url"].to_numpy(np.int64)
            table["target_url"] = (pa.nulls(n, pa.string()) if np.array_equal(target, rows["url"].to_numpy(np.int64))
                                   else pa.array(_taken_texts(codes, target)))
        link_order = rows["link_order"].astype("Int64")
        table.update({name: pa.Array.from_pandas(rows[name]) for name in ("anchor", "position", "detail")})
        table["link_order"] = pa.Array.from_pandas(link_order, type=pa.int32())
        table["juice"] = pa.array(rows["juice"].to_numpy(np.float64))
        yield pa.table(table)


def _taken_texts(texts: pd.Index, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """texts[codes] (codes in range), gathered by Arrow: pandas' take of an Arrow-backed
    array checks and converts the codes first, which doubled the gather (15.8M items' URLs at
    10M pages: 5.7 s of the audit's write)."""
    array = texts.array
    if not isinstance(array, pd.arrays.ArrowStringArray):
        return array.take(codes)
    return pd.array(pa.array(array).take(pa.array(codes)), dtype=texts.dtype)  # (pa.array: its Arrow data)


def _assemble(o: _Ordered | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The findings and items as frames, in their final order, with ids and texts. Consumes the
    parts (each part's frames dropped as they are copied): a big site's findings would otherwise
    be held twice."""
    if o is None:
        return pd.DataFrame(columns=list(FINDING_COLUMNS)), pd.DataFrame(columns=list(ITEM_COLUMNS))
    findings = o.findings
    findings["finding_id"] = np.arange(1, len(findings) + 1, dtype=np.int64)
    findings["code"] = pd.array(_CODE_NAMES.take(pa.array(findings["_order"].to_numpy())), dtype="str")
    findings["severity"] = pd.array(_SEVERITY_NAMES.take(pa.array(findings["_rank"].to_numpy())), dtype="str")
    # Fixes become a categorical: a code's findings mostly share one fix.
    fix_code = np.empty(len(findings), np.int32)
    chunks = []
    with duckdb.connect() as con:  # (the templates' texts, as the store writes them)
        for texts in _finding_texts(o):
            if (texts.template >= 0).any():
                con.register("finding_slice", _finding_table(o, texts))
                texts.explanation = _arrow_of(con.sql(f"SELECT {_explanation_sql(o.templates)} FROM finding_slice")
                                              ).column(0).combine_chunks().cast(pa.large_string())
                con.unregister("finding_slice")
            chunks.append(texts.explanation)
            fix_code[texts.lo:texts.hi] = texts.fix
    findings["explanation"] = pd.array(pa.chunked_array(chunks, pa.large_string()), dtype="str")
    del chunks
    findings["fix"] = pd.Categorical.from_codes(fix_code, categories=pd.Index(list(o.fixes), dtype=object))
    _texts_done(o.parts)
    url_anchor = o.text_columns(0, len(findings))
    findings["url"] = pd.array(url_anchor["url"], dtype="str")
    findings["anchor"] = url_anchor["anchor"].to_numpy()  # (objects, None when missing)
    listed = list(_item_frames(o))
    if listed:
        items = pd.concat(listed, ignore_index=True)
        del listed
        items = items.take(_sort_order(items, [("finding_id", "ascending"), ("source_url", "ascending"),
                                               ("link_order", "ascending")])).reset_index(drop=True)
    else:
        items = pd.DataFrame(columns=list(ITEM_COLUMNS))
    return findings[list(FINDING_COLUMNS)], items

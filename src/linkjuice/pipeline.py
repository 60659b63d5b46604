"""Orchestration: wires crawl -> store -> graph -> score. The CLI and notebooks call these.

Everything here returns plain records or pandas DataFrames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .config import CrawlConfig, ModelConfig
from .crawl.crawler import CrawlProgress, CrawlSummary, validate_start_url
from .crawl.crawler import crawl as _run_crawl
from .errors import CrawlError, StoreError, UsageError
from .graph import click_depths
from .score import classic_pagerank, juice_rank, juice_score
from .store import Store

__all__ = [
    "crawl_site",
    "finalize_store",
    "score_store",
    "ScoreSummary",
    "LinkFlows",
    "link_flows",
    "pages",
    "links",
    "export_table",
    "open_store",
]

# Why a link passes nothing: the reason codes stored with each link's flow.
REASONS = ("passed", "nofollow", "external", "broken", "redirect_broken", "non_indexable", "not_crawled", "blocked")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreSummary:
    pages: int
    ranked_pages: int
    links: int
    iterations_classic: int
    iterations_juice: int
    seconds: float
    model: str


def open_store(db: str | Path, *, read_only: bool = True) -> Store:
    return Store(db, read_only=read_only, create=not read_only)


def crawl_site(
    config: CrawlConfig,
    db: str | Path,
    *,
    resume: bool = False,
    model: ModelConfig | None = None,
    on_progress: Callable[[CrawlProgress], None] | None = None,
    score: bool = True,
) -> CrawlSummary:
    """Crawl a site into `db`, then derive depths and indexability, then score it."""
    validate_start_url(config.start_url)
    created = not Path(db).exists()
    try:
        with Store(db) as store:
            summary = _run_crawl(config, store, resume=resume, on_progress=on_progress)
            if summary.stop_reason != "interrupted":
                finalize_store(store, config)
                if score:
                    score_store(store, model=model)
    except CrawlError:
        if created:  # a store we made for a crawl that could not start holds nothing of value
            Path(db).unlink(missing_ok=True)
        raise
    return summary


def finalize_store(store: Store, config: CrawlConfig | None = None) -> None:
    """Derive page ids, final URLs, indexability, template links and click depths."""
    settings = store.meta().get("settings") or {}
    share = config.template_share if config else float(settings.get("template_share", 0.5))
    min_pages = config.template_min_pages if config else int(settings.get("template_min_pages", 10))
    store.finalize(template_share=share, template_min_pages=min_pages)
    page = store.page_arrays()
    n = len(page["page_id"])
    groups = store.link_groups({"content": 1.0})  # weights are irrelevant for depth
    src, dst = groups["src"].astype(np.int64), groups["dst"].astype(np.int64)
    hops = store.redirect_arrays()  # following a redirect is not a click
    start_url = store.meta().get("start_url")
    start = np.flatnonzero(page["url"] == start_url)
    depths = click_depths(n, src, dst, int(start[0]) if len(start) else -1,
                          free_src=hops["src"].astype(np.int64), free_dst=hops["dst"].astype(np.int64))
    store.set_depths(page["page_id"], depths)


@dataclass(frozen=True, slots=True)
class LinkFlows:
    """Every deduplicated link with its weight, where it delivers, and why it may pass nothing."""

    src: np.ndarray
    dst: np.ndarray  # the linked page id (-1 external or unknown)
    resolved: np.ndarray  # the page that receives the juice after redirects/canonicals (-1 none)
    weight: np.ndarray
    passes: np.ndarray
    reason: np.ndarray  # index into REASONS
    is_internal: np.ndarray


def link_flows(store: Store, model: ModelConfig, page: dict[str, np.ndarray]) -> LinkFlows:
    """Resolve each link's target through redirects and canonicals and classify it."""
    groups = store.link_groups(model.position_weights)
    src = groups["src"].astype(np.int64)
    dst = groups["dst"].astype(np.int64)
    nofollow = groups["nofollow"].astype(bool)
    internal = groups["is_internal"].astype(bool)
    status = page["status"]
    indexability = page["indexability"]
    known = dst >= 0
    safe = np.where(known, dst, 0)
    is_redirect = known & (status[safe] >= 300) & (status[safe] < 400)
    resolved = np.where(known, dst, -1)
    resolved = np.where(is_redirect, page["final_id"][safe], resolved)
    # A canonicalised page hands what it receives to its canonical (one step).
    safe_res = np.where(resolved >= 0, resolved, 0)
    canon = (resolved >= 0) & (indexability[safe_res] == "canonicalised") & (page["canonical_id"][safe_res] >= 0)
    resolved = np.where(canon, page["canonical_id"][safe_res], resolved)
    ranked = page["indexable"].astype(bool)
    safe_res = np.where(resolved >= 0, resolved, 0)
    delivers = (resolved >= 0) & ranked[safe_res]
    reason = np.full(len(src), REASONS.index("non_indexable"), np.int8)
    target_state = np.where(known, indexability[safe], None)
    reason[delivers] = REASONS.index("passed")
    reason[~internal] = REASONS.index("external")
    reason[internal & ~known] = REASONS.index("not_crawled")
    broken = known & np.isin(target_state, ["client error", "server error", "error"])
    reason[broken] = REASONS.index("broken")
    reason[known & (target_state == "blocked by robots.txt")] = REASONS.index("blocked")
    reason[is_redirect & ~delivers] = REASONS.index("redirect_broken")
    reason[nofollow] = REASONS.index("nofollow")
    passes = (reason == REASONS.index("passed"))
    weight = groups["weight"].astype(np.float64)
    return LinkFlows(src=src, dst=dst, resolved=resolved, weight=weight, passes=passes,
                     reason=reason, is_internal=internal)


def score_store(store: Store, *, model: ModelConfig | None = None, model_name: str = "juice") -> ScoreSummary:
    """Compute classic PageRank and the juice model for every page and store them."""
    if model_name not in ("juice", "classic"):
        raise UsageError(f"unknown model {model_name!r}: choose juice or classic")
    model = model or ModelConfig()
    started = time.perf_counter()
    page = store.page_arrays()
    n = len(page["page_id"])
    if n == 0:
        raise StoreError(f"{store.path} holds no pages: nothing to score")
    flows = link_flows(store, model, page)
    ranked = page["indexable"].astype(bool)
    known = flows.dst >= 0
    classic = classic_pagerank(n, flows.src[known], flows.dst[known], nodes=ranked,
                               damping=model.damping, tol=model.tol, max_iter=model.max_iter)
    juice, _share = juice_rank(n, flows.src, flows.resolved, flows.weight, flows.passes, ranked=ranked,
                               damping=model.damping, tol=model.tol, max_iter=model.max_iter)
    teleport_floor = (1.0 - model.damping) / max(int(ranked.sum()), 1)
    outlinks = np.bincount(flows.src[flows.is_internal], minlength=n)
    inlinks = np.bincount(flows.dst[known], minlength=n)
    frame = pd.DataFrame({
        "url": page["url"],
        "page_id": page["page_id"].astype(np.int32),
        "inlinks": inlinks.astype(np.int32),
        "outlinks": outlinks.astype(np.int32),
        "pagerank": np.where(ranked, classic.scores, np.nan),
        "juice": np.where(ranked, juice.scores, np.nan),
        "juice_score": juice_score(juice.scores, ranked, teleport_floor),
    })
    store.write_scores(frame)
    seconds = time.perf_counter() - started
    store.set_meta({
        "scored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": model_name, "damping": model.damping, "tol": model.tol,
                  "position_weights": dict(model.position_weights),
                  "iterations_classic": classic.iterations, "iterations_juice": juice.iterations},
    })
    return ScoreSummary(pages=n, ranked_pages=int(ranked.sum()), links=len(flows.src),
                        iterations_classic=classic.iterations, iterations_juice=juice.iterations,
                        seconds=seconds, model=model_name)


# -- reads for users and notebooks ------------------------------------------------------------
_SORTABLE = {"url", "status", "depth", "inlinks", "outlinks", "pagerank", "juice", "juice_score", "word_count"}


def pages(
    db: str | Path,
    *,
    sort: str = "juice",
    descending: bool = True,
    limit: int | None = None,
    url_contains: str | None = None,
    status: int | None = None,
    indexable: bool | None = None,
    min_depth: int | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The pages table with scores, sorted and filtered, as a DataFrame."""
    if sort not in _SORTABLE:
        raise UsageError(f"cannot sort by {sort!r}: choose one of {', '.join(sorted(_SORTABLE))}")
    where, params = [], []
    if url_contains:
        where.append("contains(url, ?)")
        params.append(url_contains)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if indexable is not None:
        where.append("coalesce(indexable, false) = ?")
        params.append(indexable)
    if min_depth is not None:
        where.append("depth >= ?")
        params.append(min_depth)
    order = f"{sort} {'DESC' if descending else 'ASC'} NULLS LAST, url"
    with open_store(db) as store:
        return store.pages_frame(where=" AND ".join(where) or None, order_by=order, limit=limit,
                                 params=params, columns=columns)


def links(db: str | Path, *, limit: int | None = None) -> pd.DataFrame:
    """The links table as a DataFrame."""
    with open_store(db) as store:
        return store.table_frame("links", limit=limit)


def export_table(db: str | Path, table: str, fmt: str, path: str | Path) -> int:
    """Export a table to CSV, JSON or Parquet; returns the number of rows written."""
    if fmt not in ("csv", "json", "parquet"):
        raise UsageError(f"unknown format {fmt!r}: choose csv, json or parquet")
    with open_store(db) as store:
        return store.export(table, path, fmt)

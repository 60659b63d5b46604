"""Orchestration: wires crawl -> store -> graph -> score. The CLI and notebooks call these.

Everything here returns plain records or pandas DataFrames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .audit import (AuditInputs, AuditResult, AuditThresholds, UnsortedPairs, collect_flows, kept_heap, release_heap,
                    stream_audit)
from .config import CrawlConfig, ModelConfig
from .crawl.crawler import CrawlProgress, CrawlSummary, validate_start_url
from .crawl.crawler import crawl as _run_crawl
from .errors import CrawlError, StoreError, UsageError
from .graph import click_depths
from .relevance import Part, page_documents, pair_similarity, tfidf_vectors
from .score import PowerResult, classic_pagerank, juice_iterate, juice_score
from .score import _compiled_kernels  # the numba kernels when installed and worth it
from .store import Store, audit_memory, flows_view_sql
from .explain import PageExplanation
from .config import DEFAULT_POSITION_WEIGHTS
from .weights import TopicIndex, anchor_factor, anchor_features, position_factor_codes, relevance_factor, topic_text

if TYPE_CHECKING:
    from .engines import RankEngine

__all__ = [
    "crawl_site",
    "finalize_store",
    "score_store",
    "audit_store",
    "juice_without_rendering",
    "run_audit",
    "ScoreSummary",
    "LinkFlows",
    "link_flows",
    "build_link_pairs",
    "pages",
    "links",
    "export_table",
    "open_store",
    "explain",
    "section_flows",
    "hubs",
    "stored_model_config",
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
    on_stage: Callable[[str], None] | None = None,
) -> CrawlSummary:
    """Crawl a site into `db`, then derive depths and indexability, then score it. `on_stage` is
    told when each step after the crawl starts ("finalizing", "scoring"): on a big site they
    take minutes."""
    validate_start_url(config.start_url)
    if config.render:
        from .crawl.render import require_render

        require_render(config.browser_path)  # the extra and Chromium, before a store is made
    created = not Path(db).exists()
    try:
        with Store(db) as store:
            summary = _run_crawl(config, store, resume=resume, on_progress=on_progress)
            if summary.stop_reason != "interrupted":
                if on_stage is not None:
                    on_stage("finalizing")
                finalize_store(store, config)
                if score:
                    if on_stage is not None:
                        on_stage("scoring")
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
    with store.memory_limit(_BUILD_MEMORY):  # DuckDB's joins and sorts spill to disk beyond it
        store.finalize(template_share=share, template_min_pages=min_pages)
        build_link_pairs(store)
        store.write_link_codes()  # after link_pairs, which names the unstored targets
        n = store.counts()["pages"]
        edges = store.link_edges()
        hops = store.redirect_arrays()  # following a redirect is not a click
        start = store.page_id_of(store.meta().get("start_url"))
    with store.memory_limit(_SEARCH_MEMORY):  # DuckDB's cache gives way to the search's arrays
        depths = click_depths(n, edges["src"], edges["dst"], -1 if start is None else start,
                              free_src=hops["src"].astype(np.int64), free_dst=hops["dst"].astype(np.int64))
        del edges
    with store.memory_limit(_BUILD_MEMORY):
        store.set_depths(np.arange(n, dtype=np.int32), depths)


@dataclass(frozen=True, slots=True)
class LinkFlows:
    """Every deduplicated link (source page, target URL) with its weight, where it delivers,
    and why it may pass nothing. target_url, position and anchor are None unless asked for
    (labels=True): on a big site they are costly as Python strings and scoring needs none."""

    src: np.ndarray
    dst: np.ndarray  # the linked page id (-1 external or unknown)
    resolved: np.ndarray  # the page that receives the juice after redirects/canonicals (-1 none)
    weight: np.ndarray  # position factor x relevance factor x anchor factor
    nofollow: np.ndarray
    passes: np.ndarray
    reason: np.ndarray  # index into REASONS
    is_internal: np.ndarray
    pass_factor: np.ndarray  # share of the link's juice that arrives (redirect_factor ** hops)
    target_url: np.ndarray | None = None
    position: np.ndarray | None = None
    anchor: np.ndarray | None = None


# link_pairs is built in chunks of at least this many pairs (by source page), more on a store of
# over 16M pairs (Store.stage_link_groups reads the staged groups at most 16 times): memory stays bounded.
_PAIR_CHUNK = 1_000_000
_PAIR_SLICE = 250_000  # link_pairs rows computed (and written) at a time from one chunk
# DuckDB's memory while it groups a big site's links (it spills to disk beyond this).
_BUILD_MEMORY = "768MB"
_SEARCH_MEMORY = "64MB"
_SCORE_MEMORY = "256MB"


def build_link_pairs(store: Store, model: ModelConfig | None = None, *, chunk_rows: int = _PAIR_CHUNK) -> pa.Table | None:
    """Derive link_pairs (see the store's schema) from links and pages: ids, where each pair
    delivers and why not, and the anchor's class and match. A writable store gets it written
    (finalize does this once per crawl), chunk by chunk, and None is returned; a read-only one
    gets it computed in memory and returned."""
    model = model or stored_model_config(store)
    one_chunk = store.read_only or store.counts()["links"] <= chunk_rows
    with store.memory_limit(_BUILD_MEMORY), ThreadPoolExecutor(1, thread_name_prefix="linkjuice-groups") as pool:
        # One chunk (no work table to write and read back): DuckDB groups the links on a thread
        # (it releases the GIL) while the page topics are read and split into words here.
        groups = pool.submit(store.link_groups, model.position_weights, concurrent=True) if one_chunk else None
        page = store.page_arrays(urls=False)
        page.update(_page_states(page["indexability"]))
        topics = TopicIndex.build(topic_text(t, h, u) for urls, titles, h1s in store.iter_page_topics()
                                  for u, t, h in zip(urls, titles, h1s))
        if store.read_only:  # computed in memory, returned
            return _pairs_of(groups.result(), page, topics)
        # built_at: which build of link_pairs a score used (audit_store refuses older scores).
        meta = {"position_weights": dict(model.position_weights), "relevance": None,
                "built_at": datetime.now(timezone.utc).isoformat(timespec="microseconds")}
        if groups is not None:
            # In slices: each is written while the next is computed.
            table = groups.result()
            store.replace_link_pairs((_pairs_of(table.slice(start, _PAIR_SLICE), page, topics)
                                      for start in range(0, max(table.num_rows, 1), _PAIR_SLICE)), meta)
            return None
        ranges = store.stage_link_groups(model.position_weights, chunk_rows)
        store.replace_link_pairs((_pairs_of(store.link_group_chunk(lo, hi), page, topics) for lo, hi in ranges), meta)
    return None


def _page_states(indexability: np.ndarray) -> dict[str, np.ndarray]:
    """Per page, whether it is canonicalised, broken or blocked by robots.txt: compared once per
    page, not once per link (an object array of labels compares slowly)."""
    return {"is_canonicalised": indexability == "canonicalised",
            "is_broken": np.isin(indexability, ["client error", "server error", "error"]),
            "is_blocked": indexability == "blocked by robots.txt"}


def _pairs_of(groups: pa.Table, page: dict[str, np.ndarray], topics: TopicIndex) -> pa.Table:
    """link_pairs rows for link_groups rows: resolve targets, classify, measure anchors. `page`:
    store.page_arrays with _page_states added."""
    src = groups.column("src").to_numpy().astype(np.int32)
    dst = groups.column("dst").to_numpy().astype(np.int32)
    nofollow = groups.column("nofollow").to_numpy(zero_copy_only=False).astype(bool)
    internal = groups.column("is_internal").to_numpy(zero_copy_only=False).astype(bool)
    status = page["status"]
    known = dst >= 0
    safe = np.where(known, dst, 0)
    is_redirect = known & (status[safe] >= 300) & (status[safe] < 400) if len(status) else known
    resolved = np.where(known, dst, -1)
    resolved = np.where(is_redirect, page["final_id"][safe], resolved)
    # A canonicalised page hands what it receives to its canonical (one step).
    safe_res = np.where(resolved >= 0, resolved, 0)
    canon = (resolved >= 0) & page["is_canonicalised"][safe_res] & (page["canonical_id"][safe_res] >= 0)
    resolved = np.where(canon, page["canonical_id"][safe_res], resolved).astype(np.int32)
    ranked = page["indexable"].astype(bool)
    safe_res = np.where(resolved >= 0, resolved, 0)
    delivers = (resolved >= 0) & ranked[safe_res]
    reason = np.full(len(src), REASONS.index("non_indexable"), np.int8)
    reason[delivers] = REASONS.index("passed")
    reason[~internal] = REASONS.index("external")
    reason[internal & ~known] = REASONS.index("not_crawled")
    reason[known & page["is_broken"][safe]] = REASONS.index("broken")
    reason[known & page["is_blocked"][safe]] = REASONS.index("blocked")
    reason[is_redirect & ~delivers] = REASONS.index("redirect_broken")
    reason[nofollow] = REASONS.index("nofollow")
    hops = np.where(is_redirect, page["redirect_hops"][safe], 0).astype(np.int32)
    anchor_class, anchor_match = anchor_features(groups.column("anchor"), resolved, topics)
    return pa.table({
        "src": src, "dst": dst, "target_url": groups.column("target_url"), "resolved": resolved, "reason": reason,
        "hops": hops, "nofollow": nofollow, "is_internal": internal, "n_links": groups.column("n_links"),
        "position": groups.column("position"), "anchor": groups.column("anchor"), "anchor_class": anchor_class,
        "anchor_match": anchor_match,
    })


def _pairs_built_for(state: dict[str, Any] | None, model: ModelConfig) -> bool:
    """Whether link_pairs (its state: Store.link_pairs_state) was built with the model's position
    weights; else link_flows builds it again."""
    return state is not None and state.get("position_weights") == dict(model.position_weights)


def _relevance_key(model: ModelConfig) -> str:
    return f"{model.relevance_engine}:{model.relevance_model_path or ''}"


def link_flows(store: Store, model: ModelConfig, page: dict[str, np.ndarray] | None = None,
               text: PageText | None = None, *, labels: bool = True,
               fields: Collection[str] | None = None, src: np.ndarray | None = None) -> LinkFlows:
    """The model's links from link_pairs (rebuilt first when missing or built with other
    position weights), weighed with `model`. Relevance is computed once per engine and kept
    with the pairs when the store is writable. `fields` (default: all) names the LinkFlows
    arrays to read, the others are left empty: scoring reads a big site's links in two rounds,
    so that not every column is held at once. `src`: link_pairs' src column, when already read."""
    wanted = set(LinkFlows.__dataclass_fields__) if fields is None else set(fields)
    state = store.link_pairs_state()
    table = None
    if not _pairs_built_for(state, model):
        table = build_link_pairs(store, model)
        state = {"relevance": None}
        if not store.read_only:
            table = None  # written: read it back column by column like a fresh store

    def column(name: str) -> np.ndarray:
        if table is not None:
            return table.column(name).to_numpy(zero_copy_only=False)
        return store.pair_column(name)

    def read_ids(name: str) -> np.ndarray:
        return column(name).astype(np.int32, copy=False)

    def ids(name: str) -> np.ndarray:
        return read_ids(name) if name in wanted else _NO_IDS

    def flags(name: str) -> np.ndarray:
        return column(name).astype(bool, copy=False) if name in wanted else _NO_FLAGS

    pairs = table.num_rows if table is not None else store.pair_count()
    if src is not None:
        wanted.add("src")
    src, resolved = (ids("src") if src is None else src), ids("resolved")
    weight = _NO_WEIGHTS
    if "weight" in wanted:
        use_relevance = model.relevance_weight > 0 and pairs > 0
        cosine = None
        if use_relevance:
            key = _relevance_key(model)
            if table is not None or state.get("relevance") != key:
                stored = table is None and not store.read_only
                cosine = pair_similarity((text or page_text(store, model)).vectors,
                                         src if len(src) == pairs else read_ids("src"),
                                         resolved if len(resolved) == pairs else read_ids("resolved"),
                                         dtype=np.float32 if stored else np.float64)  # the store keeps float32
                if stored:
                    store.set_pair_relevance(cosine, key)
                    cosine = None  # kept with the pairs: the weights are formed from there
                    # The texts' and words' Arrow memory, freed but kept by Arrow's allocator
                    # (1.4 GB at 10M pages), would be held through the juice layout's build.
                    release_heap()
        if table is None and cosine is None:
            # position x relevance x anchor, formed from link_pairs: one column is held.
            weight = store.pair_weights(**{**_pair_weight_settings(model), "use_relevance": use_relevance})
        else:
            # The same product, formed in place: a big site's links are many.
            weight = np.require(position_factor_codes(table.column("position"), model) if table is not None
                                else store.pair_position_factor(model.position_weights, DEFAULT_POSITION_WEIGHTS),
                                np.float64, "W")
            weight *= (relevance_factor(cosine, model) if cosine is not None
                       else relevance_factor(np.zeros(1), model)[0])
            del cosine
            weight *= anchor_factor(column("anchor_class"), column("anchor_match"), model)
    reason = column("reason").astype(np.int8, copy=False) if wanted & {"reason", "passes"} else _NO_CODES
    pass_factor = np.broadcast_to(np.float64(1.0), (pairs if "pass_factor" in wanted else 0,))
    # Redirect hops matter only when a hop loses juice (the default loses none).
    if "pass_factor" in wanted and model.redirect_factor != 1.0:
        hops = column("hops")
        if hops.any():
            pass_factor = model.redirect_factor ** hops.astype(np.float64)
    out = LinkFlows(
        src=src, dst=ids("dst"), resolved=resolved, weight=weight, nofollow=flags("nofollow"),
        passes=reason == REASONS.index("passed") if "passes" in wanted else _NO_FLAGS,
        reason=reason if "reason" in wanted else _NO_CODES, is_internal=flags("is_internal"),
        # Without redirect hops (or losses) every factor is 1: a read-only broadcast, no memory per link.
        pass_factor=pass_factor,
    )
    if not labels:
        return out
    if table is not None:
        urls = store.page_arrays()["url"] if page is None or "url" not in page else page["url"]
        dst = out.dst
        target = np.where(dst >= 0, urls[np.where(dst >= 0, dst, 0)] if len(urls) else None,
                          table.column("target_url").to_numpy(zero_copy_only=False))
        named = {"target_url": target, "position": table.column("position").to_numpy(zero_copy_only=False),
                 "anchor": table.column("anchor").to_numpy(zero_copy_only=False)}
    else:
        named = store.pair_labels()
    return replace(out, **named)


@dataclass(slots=True)
class PageText:
    """The pages' text, their relevance vectors (computed on first use) and anchor topics."""

    frame: pd.DataFrame  # page_id, url, title, h1, headings, main_text (ordered by page_id)
    engine: str = "tfidf"
    _vectors: object = None
    model_path: str | None = None  # semantic: another ONNX model folder
    cache: Store | None = None  # semantic: where embeddings are kept between runs
    _pending: Future | None = None  # the tfidf vectors, being made on a thread (_text_ahead: no frame then)

    @property
    def vectors(self):  # type: ignore[no-untyped-def]
        """tfidf: sparse L2-normalised rows; semantic: a dense float32 array of normalised rows."""
        if self._vectors is None:
            if self._pending is not None:
                pending, self._pending = self._pending, None
                self._vectors = pending.result()
            elif self.engine == "semantic":
                from .semantic import page_vectors  # optional extra: imported only when chosen

                self._vectors = page_vectors(self.frame, cache=self.cache, model_path=self.model_path)
            else:
                self._vectors = tfidf_vectors(_documents(self.frame))
        return self._vectors

    @property
    def topics(self) -> list[str]:
        f = self.frame
        return [topic_text(t, h, u) for t, h, u in zip(f["title"].tolist(), f["h1"].tolist(), f["url"].tolist())]


def _documents(frame: pd.DataFrame) -> list[Part]:
    # pandas' strings are Arrow-backed: the columns go to the Arrow word splitter as they are.
    return page_documents(*(pa.array(frame[c]) for c in ("title", "h1", "headings", "main_text")))


def page_text(store: Store, model: ModelConfig | None = None) -> PageText:
    if model is None:
        return PageText(frame=store.page_texts())
    return PageText(frame=store.page_texts(), engine=model.relevance_engine, model_path=model.relevance_model_path,
                    cache=store)


# What a stored model must hold for the audit to form each pair's juice as the link_flows view does.
_WEIGHT_SETTINGS = frozenset({"relevance_weight", "anchor_empty", "anchor_generic", "anchor_descriptive",
                              "use_anchor", "damping"})


def _pair_weight_settings(model: ModelConfig) -> dict[str, Any]:
    """Store.pair_weights' settings for `model` (the link_flows view's weights too)."""
    return {"position_weights": {**DEFAULT_POSITION_WEIGHTS, **model.position_weights},
            "relevance_weight": model.relevance_weight, "use_relevance": model.relevance_weight > 0,
            "anchor_empty": model.anchor_empty, "anchor_generic": model.anchor_generic,
            "anchor_descriptive": model.anchor_descriptive, "use_anchor": model.use_anchor}


def stored_model_config(store: Store) -> ModelConfig:
    """The model settings of the last `score` run (defaults when never scored), so later
    commands (what-ifs, rescoring after an import) compare like with like."""
    stored = store.meta().get("model") or {}
    fields = set(ModelConfig.__dataclass_fields__)
    return ModelConfig(**{k: v for k, v in stored.items() if k in fields})


def score_store(store: Store, *, model: ModelConfig | None = None, model_name: str = "juice",
                engine: RankEngine | None = None) -> ScoreSummary:
    """Compute classic PageRank and the juice model for every page and store them with the
    section flow matrix and the link_flows view (each link's factors and flow, computed from
    link_pairs and the scores when read). `engine` (linkjuice.engines) iterates elsewhere, on
    the same flows and teleport vector; the default iterates here."""
    # DuckDB would otherwise keep every column scoring reads cached, beside the model's arrays.
    with store.memory_limit(_SCORE_MEMORY):
        return _score_store(store, model=model, model_name=model_name, engine=engine)


def _score_store(store: Store, *, model: ModelConfig | None, model_name: str,
                 engine: RankEngine | None) -> ScoreSummary:
    if model_name not in ("juice", "classic"):
        raise UsageError(f"unknown model {model_name!r}: choose juice or classic")
    model = model or ModelConfig()
    started = time.perf_counter()
    # The local engine reads page ids and indexability only; an engine also gets the URLs.
    page = store.page_arrays() if engine is not None else store.ranked_pages()
    n = len(page["page_id"])
    if n == 0:
        raise StoreError(f"{store.path} holds no pages: nothing to score")
    ranked = page["indexable"].astype(bool)
    teleport, backlink_share = teleport_vector(store, model, page, ranked)
    sections, labels = store.page_sections(model.section_depth)
    if engine is not None:
        flows = link_flows(store, model, page)
        outlinks, inlinks = _link_counts(n, flows)
        out_weight = _out_weight(n, flows)
        with store.memory_limit(_SEARCH_MEMORY):  # every input is read: DuckDB's cache gives way
            classic, juice, share = engine.rank(page["url"], flows, ranked=ranked, teleport=teleport, model=model)
    else:
        # The links are read in two rounds: classic PageRank's ids (and the link counts), then
        # what the juice model reads. dst and is_internal are gone before the weights (8 bytes a
        # link) and the juice layout are built: 200M links hold 1 GB less at the peak.
        last = store.last_scores(n)
        # A first score (the relevance not yet kept with the pairs) makes the pages' tfidf vectors
        # on a thread while the first round reads the links and iterates classic PageRank.
        text = _text_ahead(store, model)
        ids = link_flows(store, model, page, labels=False, fields=("src", "dst", "is_internal"))
        outlinks, inlinks = _link_counts(n, ids)
        with store.memory_limit(_SEARCH_MEMORY):
            classic = _classic_rank(n, ids, ranked, model, last)
        flows = link_flows(store, model, page, text, labels=False, src=ids.src,
                           fields=("resolved", "weight", "passes", "pass_factor"))
        del ids, text
        out_weight = _out_weight(n, flows)
        with store.memory_limit(_SEARCH_MEMORY):
            juice, share = _juice_rank(n, flows, ranked, teleport, model, last, out_weight), None
        # Why a link passes nothing is read for the section flows only, after the juice layout is gone.
        flows = replace(flows, reason=store.pair_column("reason").astype(np.int8, copy=False))
    with store.memory_limit(_SEARCH_MEMORY):
        chosen = juice.scores if model_name == "juice" else classic.scores
        floor_vector = teleport if model_name == "juice" else ranked / max(int(ranked.sum()), 1)
        teleport_floor = (1.0 - model.damping) * float(floor_vector[ranked].min()) if ranked.any() else 1.0
        dangling_mass = float(juice.scores[ranked & (out_weight == 0)].sum())
        # What each link takes from its page: d x juice of the page x the link's share.
        section_flows = section_flow_matrix(flows, juice.scores * model.damping, share, sections, labels,
                                            out_weight=out_weight)
        del share

    def nullable(values: np.ndarray) -> pa.Array:  # NaN (not ranked) is stored as NULL
        return pa.array(values, pa.float64(), from_pandas=True)

    scores = pa.table({
        "page_id": page["page_id"].astype(np.int32),
        "inlinks": inlinks.astype(np.int32),
        "outlinks": outlinks.astype(np.int32),
        "pagerank": nullable(np.where(ranked, classic.scores, np.nan)),
        "juice": nullable(np.where(ranked, juice.scores, np.nan)),
        "juice_score": nullable(juice_score(chosen, ranked, teleport_floor)),
        "teleport": nullable(np.where(ranked, teleport, np.nan)),
        "backlink_share": nullable(np.where(ranked, backlink_share, np.nan)),
        "out_weight": out_weight,
        "section": pa.DictionaryArray.from_arrays(pa.array(sections), pa.array(labels.tolist(), pa.string())),
    })
    view = {scan: flows_view_sql(**_pair_weight_settings(model), damping=model.damping,
                                 redirect_factor=model.redirect_factor, reasons=REASONS, scan=scan)
            for scan in (False, True)}
    store.write_scores(scores, section_flows,
                       section_depth=model.section_depth, flows_view=view[False], flows_scan=view[True], reasons=REASONS)
    seconds = time.perf_counter() - started
    store.set_meta({
        "scored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": model_name, "damping": model.damping, "tol": model.tol,
                  "position_weights": dict(model.position_weights), "relevance_weight": model.relevance_weight,
                  "relevance_engine": model.relevance_engine, "relevance_model_path": model.relevance_model_path,
                  "anchor_empty": model.anchor_empty, "anchor_generic": model.anchor_generic,
                  "anchor_descriptive": model.anchor_descriptive, "use_anchor": model.use_anchor,
                  "backlink_mix": model.backlink_mix, "authority_base": model.authority_base,
                  "redirect_factor": model.redirect_factor,
                  "section_depth": model.section_depth, "dangling_mass": dangling_mass,
                  "link_pairs_built": (store.link_pairs_state() or {}).get("built_at"),
                  "total_juice": float(juice.scores[ranked].sum()),
                  # (what a pair can carry at most: Store.flows_of reads the strongest sources first)
                  "max_pair_weight": float(flows.weight.max()) if len(flows.weight) else 0.0,
                  "iterations_classic": classic.iterations, "iterations_juice": juice.iterations},
    })
    return ScoreSummary(pages=n, ranked_pages=int(ranked.sum()), links=len(flows.src),
                        iterations_classic=classic.iterations, iterations_juice=juice.iterations,
                        seconds=seconds, model=model_name)


# A section's flows to other sections kept as cells of their own (the rest: "(other sections)").
SECTION_KEEP = 50
# Links are summed into section cells this many at a time: the per-link keys stay small.
_SECTION_CHUNK = 1 << 22
# Section cells are counted in dense arrays up to this many, or as many as there are links.
_DENSE_CELLS = 1 << 22


_NO_IDS = np.zeros(0, np.int32)
_NO_FLAGS = np.zeros(0, bool)
_NO_CODES = np.zeros(0, np.int8)
_NO_WEIGHTS = np.zeros(0)
# Links are counted this many at a time: the temporaries np.bincount makes stay small.
_COUNT_CHUNK = 1 << 22


def _text_ahead(store: Store, model: ModelConfig) -> PageText | None:
    """The pages' text, its tfidf vectors started on a thread, when the next weights compute the
    pairs' relevance (link_flows' rule: cached with link_pairs, keyed by engine); else None."""
    state = store.link_pairs_state()
    due = (model.relevance_weight > 0 and model.relevance_engine == "tfidf" and not store.read_only
           and _pairs_built_for(state, model) and state.get("relevance") != _relevance_key(model))
    if not due:
        return None
    # Only the texts go to the thread (they read no store; Arrow's word splitting, NumPy's sorts
    # and SciPy release the GIL), and they are freed once the vectors are made: 10M pages' texts
    # held on through the weights' read took the score's peak 0.4 GB higher.
    documents = _documents(store.page_texts())
    return PageText(frame=pd.DataFrame(), _pending=_on_daemon_thread("linkjuice-tfidf", tfidf_vectors, documents))


def _on_daemon_thread(name: str, fn: Callable[..., Any], *args: Any) -> Future:
    """fn(*args) on a daemon thread of its own, its result (or error) in the Future: a Ctrl-C
    exits without waiting for it (a ThreadPoolExecutor's threads are joined at exit: an interrupted
    10M-page score waited up to 20 s for its vectors)."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits for the result
                future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _link_counts(n: int, flows: LinkFlows) -> tuple[np.ndarray, np.ndarray]:
    """Per page: outlinks (internal link pairs) and inlinks (pairs to it), from flows' src, dst
    and is_internal."""
    kernels = _compiled_kernels(len(flows.src))
    if kernels is not None:  # one pass: each np.bincount below makes and adds a page-sized array
        return kernels.link_counts(n, flows.src, flows.dst, flows.is_internal)
    outlinks = np.zeros(n, np.int64)
    inlinks = np.zeros(n, np.int64)
    for lo in range(0, len(flows.src), _COUNT_CHUNK):  # a chunk at a time: the temporaries stay small
        part = slice(lo, lo + _COUNT_CHUNK)
        dst = flows.dst[part]
        outlinks += np.bincount(flows.src[part][flows.is_internal[part]], minlength=n)
        inlinks += np.bincount(dst[dst >= 0], minlength=n)
    return outlinks, inlinks


def _out_weight(n: int, flows: LinkFlows) -> np.ndarray:
    """Per page, the total weight of its links (flows' src and weight)."""
    kernels = _compiled_kernels(len(flows.src))
    if kernels is not None:  # summed in link order, as one np.bincount would
        return kernels.source_weights(n, flows.src, flows.weight)
    out_weight = np.zeros(n)
    for lo in range(0, len(flows.src), _COUNT_CHUNK):  # np.bincount would copy src as int64
        part = slice(lo, lo + _COUNT_CHUNK)
        out_weight += np.bincount(flows.src[part], weights=flows.weight[part], minlength=n)
    return out_weight


def _warm_start(last: dict[str, np.ndarray] | None, name: str, ranked: np.ndarray) -> np.ndarray | None:
    """Where an iteration starts: the store's last scores (NaN, unranked: 0), or None (cold).
    Scoring again after a small change (imports, another weight) then takes a few steps instead
    of ~30; the stopping rule is the same, so the scores are as close to the fixed point."""
    if last is None:
        return None
    start = np.where(ranked, np.nan_to_num(last[name], nan=0.0), 0.0)
    return start if start.sum() > 0 else None


def _classic_rank(n: int, flows: LinkFlows, ranked: np.ndarray, model: ModelConfig,
                  last: dict[str, np.ndarray] | None) -> PowerResult:
    # Links to no stored page (dst -1) are left out by classic_pagerank: no filtered copy.
    return classic_pagerank(n, flows.src, flows.dst, nodes=ranked, damping=model.damping, tol=model.tol,
                            max_iter=model.max_iter, start=_warm_start(last, "pagerank", ranked))


def _juice_rank(n: int, flows: LinkFlows, ranked: np.ndarray, teleport: np.ndarray, model: ModelConfig,
                last: dict[str, np.ndarray] | None, out_weight: np.ndarray) -> PowerResult:
    return juice_iterate(n, flows.src, flows.resolved, flows.weight, flows.passes, ranked=ranked,
                         teleport=teleport, damping=model.damping, tol=model.tol, max_iter=model.max_iter,
                         pass_factor=flows.pass_factor, start=_warm_start(last, "juice", ranked),
                         out_weight=out_weight)


def section_flow_matrix(flows: LinkFlows, passed_on: np.ndarray, share: np.ndarray | None, sections: np.ndarray,
                        labels: np.ndarray, keep: int = SECTION_KEEP, *,
                        out_weight: np.ndarray | None = None) -> pa.Table:
    """Juice carried between sections; lost juice goes to the pseudo-section "(lost: reason)".
    The matrix adds up to all juice that pages pass through links. Each link carries
    passed_on[source] (d x its juice) x its share (None: its weight / out_weight[source], the
    total weight of the source's links, computed here unless given). `sections` holds each
    page's section as a code into `labels`. Section names come as Arrow dictionary columns: no
    string per cell is built.

    Of each section's flows to other sections the `keep` largest are cells of their own and the
    rest one "(other sections)" cell: a site of 10M pages in sections of 500 has 20,000 sections,
    and its links reach most of them from each (tens of millions of cells no one reads). The
    compiled kernel counts one from-section at a time; without it the cells are counted in dense
    arrays while there are no more cells than links, else only the cells that occur are kept
    (hashed per chunk), and then cut the same way."""
    n_labels = len(labels)
    width = n_labels + len(REASONS)
    per_weight = None  # juice a unit of link weight carries from each page
    if share is None:
        if out_weight is None:
            out_weight = np.bincount(flows.src, weights=flows.weight, minlength=len(passed_on))
        per_weight = np.divide(passed_on, out_weight, out=np.zeros(len(passed_on)), where=out_weight > 0)
    kernels = _compiled_kernels(len(flows.src))
    if kernels is not None and _ascending(flows.src):
        ptr = kernels.source_ptr(len(passed_on), flows.src)
        sec_ptr = np.zeros(n_labels + 1, np.int64)
        np.cumsum(np.bincount(sections, minlength=n_labels), out=sec_ptr[1:])
        from_sec, to_sec, juice, count = kernels.section_cells(
            ptr, np.argsort(sections, kind="stable").astype(np.int32), sec_ptr, flows.resolved, flows.passes,
            flows.reason, sections, n_labels, width, passed_on,
            np.zeros(0) if share is None else np.asarray(share, np.float64), flows.weight,
            np.zeros(0) if per_weight is None else per_weight, keep)
    else:
        cells, juice, count = _section_cells(flows, passed_on, share, per_weight, sections, n_labels, width)
        from_sec, to_sec, juice, count = _keep_top_sections(cells // width, cells % width, juice, count, n_labels,
                                                            width, keep)
    order = np.argsort(-juice, kind="stable")  # most juice first; ties in (from, to) order
    names = pa.array([*labels.tolist(), *(f"(lost: {r})" for r in REASONS), "(other sections)"], pa.string())
    return pa.table({
        "from_section": pa.DictionaryArray.from_arrays(pa.array(from_sec[order].astype(np.int32)), names),
        "to_section": pa.DictionaryArray.from_arrays(pa.array(to_sec[order].astype(np.int32)), names),
        "juice": juice[order], "links": count[order].astype(np.int64)})


def _ascending(values: np.ndarray, chunk: int = 1 << 22) -> bool:
    """Whether values never decrease (checked a chunk at a time: no per-link temporary)."""
    for lo in range(0, len(values) - 1, chunk):
        part = values[lo:lo + chunk + 1]
        if not np.all(part[:-1] <= part[1:]):
            return False
    return True


def _section_cells(flows: LinkFlows, passed_on: np.ndarray, share: np.ndarray | None, per_weight: np.ndarray | None,
                   sections: np.ndarray, n_labels: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every cell that occurs (from * width + to, ascending), its juice and its links, by numpy."""
    cells_total = n_labels * width
    dense = cells_total <= max(len(flows.src), _DENSE_CELLS)
    lost = n_labels + np.arange(len(REASONS), dtype=np.int64)
    juice_sum = np.zeros(cells_total if dense else 0)
    count_sum = np.zeros(cells_total if dense else 0, np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    # Chunks of links, or as many as there are dense cells (whose arrays each chunk's count fills).
    chunk = max(_SECTION_CHUNK, cells_total if dense else 0)
    for lo in range(0, len(flows.src), chunk):
        part = slice(lo, lo + chunk)
        src, resolved, passes = flows.src[part], flows.resolved[part], flows.passes[part]
        to_code = np.where(passes, sections[np.where(resolved >= 0, resolved, 0)], lost[flows.reason[part]])
        key = sections[src].astype(np.int64)
        key *= width
        key += to_code
        del to_code
        if per_weight is None:
            link_juice = passed_on[src]
            link_juice *= share[part]
        else:
            link_juice = per_weight[src]
            link_juice *= flows.weight[part]
        if dense:
            juice_sum += np.bincount(key, weights=link_juice, minlength=cells_total)
            count_sum += np.bincount(key, minlength=cells_total)
        else:
            codes, cells = pd.factorize(key)
            parts.append((cells, np.bincount(codes, weights=link_juice, minlength=len(cells)),
                          np.bincount(codes, minlength=len(cells))))
    if dense:
        cells = np.flatnonzero(count_sum)
        return cells, juice_sum[cells], count_sum[cells]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    codes, cells = pd.factorize(np.concatenate([p[0] for p in parts]))
    juice = np.bincount(codes, weights=np.concatenate([p[1] for p in parts]), minlength=len(cells))
    count = np.bincount(codes, weights=np.concatenate([p[2] for p in parts]), minlength=len(cells))
    order = np.argsort(cells)  # in key order, as the dense arrays give them
    return cells[order], juice[order], count[order].astype(np.int64)


def _keep_top_sections(from_sec: np.ndarray, to_sec: np.ndarray, juice: np.ndarray, count: np.ndarray,
                       n_labels: int, width: int, keep: int) -> tuple[np.ndarray, ...]:
    """Cells in (from, to) order with each from-section's flows to sections beyond its `keep`
    largest (ties: the lower section) summed into one cell of column `width`, most juice first."""
    real = np.flatnonzero(to_sec < n_labels)
    ranked = real[np.lexsort((to_sec[real], -juice[real], from_sec[real]))]
    group = from_sec[ranked]
    cut = ranked[np.arange(len(ranked)) - np.searchsorted(group, group) >= keep]
    if not len(cut):
        return from_sec, to_sec, juice, count
    cut.sort()  # each row's other flows summed in section order, as the compiled kernel does
    rows = np.unique(from_sec[cut])
    other_juice = np.bincount(from_sec[cut], weights=juice[cut])[rows]
    other_count = np.bincount(from_sec[cut], weights=count[cut])[rows].astype(np.int64)
    stay = np.ones(len(juice), bool)
    stay[cut] = False
    from_sec = np.concatenate([from_sec[stay], rows])
    to_sec = np.concatenate([to_sec[stay], np.full(len(rows), width)])
    order = np.lexsort((to_sec, from_sec))
    return (from_sec[order], to_sec[order], np.concatenate([juice[stay], other_juice])[order],
            np.concatenate([count[stay], other_count])[order])


def teleport_vector(store: Store, model: ModelConfig, page: dict[str, np.ndarray],
                    ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where juice enters: uniform over ranked pages, mixed with outside authority (backlinks).

    Returns the teleport vector (sums to 1 over ranked pages) and each page's share of the
    backlink part. With no backlinks imported it is uniform and the model is unchanged."""
    n = len(ranked)
    uniform = ranked / max(int(ranked.sum()), 1)
    strength = backlink_strength(store, model, n)
    strength = np.where(ranked, strength, 0.0)
    if strength.sum() <= 0 or model.backlink_mix == 0:
        return uniform, np.zeros(n)
    outside = strength / strength.sum()
    return (1 - model.backlink_mix) * uniform + model.backlink_mix * outside, outside


def backlink_strength(store: Store, model: ModelConfig, n: int) -> np.ndarray:
    """Per page: the sum over referring domains of authority_base ** (metric / 10) (1 without a
    metric); nofollow backlinks bring nothing. Zero when no backlinks are imported."""
    frame = store.backlink_domains()
    out = np.zeros(n)
    if frame.empty:
        return out
    metric = frame["authority"].to_numpy(dtype=float)
    weight = np.where(np.isnan(metric), 1.0, model.authority_base ** (np.nan_to_num(metric) / 10.0))
    np.add.at(out, frame["page_id"].to_numpy(dtype=np.int64), weight)
    return out


# -- audit ------------------------------------------------------------------------------------
def audit_store(store: Store, thresholds: AuditThresholds | None = None) -> AuditResult:
    """Audit a scored store (linkjuice.audit) and replace its findings tables with the result.
    The findings and items are written as they are made (a big site has tens of millions); the
    result reads them back from the store when they are asked for (AuditResult)."""
    if not store.has_rows("link_flows"):
        raise StoreError(f"{store.path} holds no scored links: run 'linkjuice score --db {store.path}' first")
    _require_current_scores(store)
    with kept_heap():
        # Handed over, not kept here: the audit frees the frame of every pair once it has taken what it reads.
        stream = stream_audit(_audit_inputs(store), thresholds)
        summary = {**stream.summary, "audited_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        store.write_audit_tables(stream.finding_tables(), stream.item_tables(), stream.juice_flow, summary,
                                 view_sql=stream.view_sql, urls=stream.urls)
    return AuditResult(None, None, stream.juice_flow, summary, stored=_StoredFindings(store), by_code=stream.by_code)


def _require_current_scores(store: Store) -> None:
    """Refuse to audit scores made before the store's link pairs were last built (a crawl
    finalized again, e.g. resumed with --no-score): their page ids and weights may not match."""
    model = store.meta().get("model") or {}
    state = store.link_pairs_state() or {}
    stale = "link_pairs_built" in model and model["link_pairs_built"] != state.get("built_at")
    # (scores of an earlier version: the relevance they used is no longer cached)
    stale |= bool(state) and float(model.get("relevance_weight") or 0) > 0 and state.get("relevance") is None
    if stale:
        raise StoreError(f"{store.path}: the scores are older than the links (the crawl was finalized again since): "
                         f"run 'linkjuice score --db {store.path}' first")


class _StoredFindings:
    """Where an audit result written to `store` reads its findings (linkjuice.audit.StoredAudit):
    through the store while it is open, else from its file, opened read-only for the read."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _read(self, first: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        if not self._store.closed:
            return self._store.audit_findings(first)
        with open_store(self._store.path) as store:
            return store.audit_findings(first)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self._read(None)

    def head(self, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self._read(max(int(n), 0))


def _audit_inputs(store: Store) -> AuditInputs:
    """What the audit reads of a store (linkjuice.audit.AuditInputs)."""
    meta = store.meta()
    pages_stored = int(store.con.execute("SELECT count(*) FROM pages").fetchall()[0][0])  # type: ignore[index]
    with store.memory_limit(audit_memory(pages_stored)):
        # DuckDB's cached blocks are handed back after each big read: the audit's own arrays
        # need the memory (at 10M pages DuckDB held 3 GB after the page read, 6.7 GB after the flows).
        pages = store.audit_pages()
        store.release_memory()
        model = meta.get("model") or {}
        # Each pair's juice formed with the stored model; a store scored by a version that did not
        # store all of its weight settings is read through the link_flows view.
        formed = ({"weights": _pair_weight_settings(stored_model_config(store)), "damping": float(model["damping"])}
                  if _WEIGHT_SETTINGS <= model.keys() else {})
        # The number of pairs, read first (the flows' reader holds the connection): collect_flows
        # fills its columns in place.
        pairs = store.pair_count() if formed else None
        # Every pair kept, in link_pairs' order, when the links name their pair's row (stored by
        # finalize): the audit then finds a link's pair by that row instead of a search by key.
        by_row = bool(formed) and store.link_code_pairs()
        try:
            flows, totals = collect_flows(pages, *store.audit_link_flows(REASONS, **formed), reasons=REASONS,
                                          pairs=pairs, keep_all=by_row)
        except UnsortedPairs:  # (link_pairs is written sorted by source; read again, counted otherwise)
            flows, totals = collect_flows(pages, *store.audit_link_flows(REASONS, **formed), reasons=REASONS,
                                          pairs=pairs, keep_all=by_row, by_source=False)
        store.release_memory()
        release_heap()
        links = store.audit_links(pairs=by_row)
        store.release_memory()
        release_heap()
        return AuditInputs(
            pages=pages, flows=flows, flow_totals=totals, links=links,
            redirect_paths=store.redirect_paths(), known_urls=store.known_urls(),
            importance=store.importance_inputs(), damping=float(model.get("damping", 0.85)),
            # Orphans are only certain when every reachable page was crawled.
            crawl_complete=meta.get("stop_reason", "complete") == "complete" and not meta.get("limits_hit", False),
            start_url=meta.get("start_url"),
            rendering=juice_without_rendering(store),
            traps=store.crawl_traps(),
        )


def juice_without_rendering(store: Store) -> pd.DataFrame | None:
    """Per page (row i = page_id i): its juice, and its juice if rendering failed, i.e. with the
    model solved again without the link pairs found only in the rendered DOM (crawl --render).
    None when no pair exists only after rendering."""
    pairs = store.rendered_only_pairs()
    if pairs.empty:
        return None
    from .opportunities import load_state  # it builds on this module

    loaded = load_state(store)
    wanted = set(zip(pairs["src"].astype(np.int64).tolist(), pairs["target_url"].tolist()))
    flows = loaded.flows
    drop = np.fromiter(((int(s), t) in wanted for s, t in zip(flows.src, flows.target_url)), bool, len(flows.src))
    after = loaded.state.without(drop).solve(start=loaded.state.juice)
    return pd.DataFrame({"url": loaded.state.urls, "juice": loaded.state.juice,
                         "juice_without_rendering": after.juice})


def run_audit(db: str | Path, thresholds: AuditThresholds | None = None) -> AuditResult:
    """Audit the store at `db` (it must be scored) and store the findings in it."""
    with open_store(db, read_only=False) as store:
        return audit_store(store, thresholds)


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
    if limit is not None and limit < 0:
        raise UsageError("--limit must not be negative")
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


def explain(db: str | Path, url: str, *, top: int | None = None) -> PageExplanation:
    """Break a page's juice into its sources (see linkjuice.explain). `top`: list only that many
    sources and targets (the most juice first), with the totals of all of them summed by DuckDB:
    a hub of a 10M-page site has 10M sources, which read whole took 40 s and 17 GB."""
    from .explain import explain_page
    from .urls import normalize_url

    with open_store(db) as store:
        row = store.score_row(url) or store.score_row(normalize_url(url) or url)
        if row is None:
            raise UsageError(f"{url} is not in {db}")
        if row.get("juice") is None or row["juice"] != row["juice"]:
            raise UsageError(f"{row['url']} has no juice: it is not an indexable page ({row.get('indexability')})")
        meta = store.meta().get("model") or {}
        all_juice = store.sql("SELECT juice FROM page_scores WHERE juice IS NOT NULL")["juice"].to_numpy()
        # (no memory cap: the need of the view's joins for a hub page is not predictable enough;
        # capped at the audit's allowance, the home page of a 3M-page store failed now and then)
        inflows = store.link_flows_frame(resolved=row["url"], reason="passed", order_by="delivered", limit=top)
        outflows = store.link_flows_frame(source=row["url"], limit=top)
        totals = store.page_flow_totals(row["url"]) if top is not None else None
        has_backlinks = bool(row.get("backlink_share") and row["backlink_share"] == row["backlink_share"]
                             and store.sql("SELECT sum(backlink_share) AS s FROM page_scores")["s"].iloc[0] > 0)
    return explain_page(
        url=row["url"], juice=float(row["juice"]), juice_score=float(row["juice_score"]),
        teleport=float(row["teleport"]), backlink_share=float(row.get("backlink_share") or 0.0),
        all_juice=all_juice, inflows=inflows, outflows=outflows, damping=float(meta.get("damping", 0.85)),
        dangling_mass=float(meta.get("dangling_mass", 0.0)), backlink_mix=float(meta.get("backlink_mix", 0.5)),
        has_backlinks=has_backlinks, totals=totals,
    )


def hubs(db: str | Path, *, top: int = 10, per_hub: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hub pages and where their juice goes.

    With backlinks imported, hubs are the pages that receive the most outside authority;
    otherwise the strongest pages. Returns (hubs: url, juice, juice_score, backlink_share,
    passed_on, lost; flows: hub_url, target_url, juice delivered), `per_hub` flows per hub."""
    if top < 0 or per_hub < 0:
        raise UsageError("--top and --per-hub must not be negative")
    with open_store(db) as store:
        by_outside = bool(store.sql("SELECT coalesce(sum(backlink_share), 0) > 0 AS b FROM page_scores")["b"].iloc[0])
        key = "backlink_share" if by_outside else "juice"
        # (the top by SQL: read whole into pandas, 10M pages' scores and URLs were 6.7 GB)
        chosen = store.sql(
            "SELECT url, juice, juice_score, coalesce(backlink_share, 0) AS backlink_share FROM scores "
            f"WHERE juice IS NOT NULL ORDER BY {key} DESC, juice DESC, url LIMIT ?", [int(top)])
        flows = store.flows_from(list(chosen["url"]))[["source_url", "resolved_url", "delivered", "juice", "reason"]]
        flows = flows.rename(columns={"source_url": "hub_url", "resolved_url": "target_url"})
    passed = flows.groupby("hub_url")["delivered"].sum()
    taken = flows.groupby("hub_url")["juice"].sum()
    out = chosen.assign(passed_on=chosen["url"].map(passed).fillna(0.0),
                        lost=(chosen["url"].map(taken).fillna(0.0) - chosen["url"].map(passed).fillna(0.0)))
    out.attrs["ranked_by"] = "outside authority (backlinks)" if by_outside else "juice (no backlinks imported)"
    sent = flows[flows["reason"] == "passed"].groupby(["hub_url", "target_url"], as_index=False)["delivered"].sum()
    sent = sent.sort_values(["hub_url", "delivered"], ascending=[True, False]).groupby("hub_url").head(per_hub)
    return out.reset_index(drop=True), sent.rename(columns={"delivered": "juice"}).reset_index(drop=True)


def section_flows(db: str | Path, *, section: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """The section-to-section juice flow matrix (long form: from, to, juice, links), the largest
    flows first. `section`: only the flows from or to it ("/blog/"; "blog" and "/blog" find it too).
    `limit`: only that many rows. attrs: `flows` and `juice` of every matching row, `total_juice`,
    and `section` as found."""
    if limit is not None and limit < 0:
        raise UsageError("--limit must not be negative")
    with open_store(db) as store:
        if section is not None:
            section = _known_section(store, section)
        frame = store.section_flows_frame(section=section, limit=limit)
    frame.attrs["section"] = section
    return frame


def _known_section(store: Store, section: str) -> str:
    names = store.section_names()
    if section in names:
        return section
    slashed = "/" + section.strip("/") + "/" if section.strip("/") else "/"
    if slashed in names:
        return slashed
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    raise UsageError(f"no section {section!r} in the scores: the sections are {shown or 'none (run score first)'}")


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

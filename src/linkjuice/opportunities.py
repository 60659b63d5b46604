"""Orchestration of link opportunities: `suggest`, `simulate` and `optimize` over a stored crawl.

Reads the store once, builds the model in memory (linkjuice.whatif.ModelState) and never changes
the stored crawl; `suggest` saves its output to the `suggestions` table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .config import ModelConfig
from .errors import InputFileError, UsageError
from .pipeline import (REASONS, LinkFlows, PageText, _warm_start, link_flows, open_store, page_text,
                       stored_model_config, teleport_vector)
from .score import juice_score
from .store import Store
from .suggest import find_anchor, title_phrases, top_similar
from .urls import normalize_url
from .weights import anchor_factors, relevance_factor, topic_text
from .whatif import (ModelState, OptimizeResult, Transition, accounting, first_order_term, greedy_optimize,
                     two_hop_gains)

__all__ = ["SuggestOptions", "suggest_links", "SimulationResult", "simulate", "optimize", "load_state"]

WEAK_CODES = ("weak-page", "important-but-weak")


@dataclass(frozen=True, slots=True)
class Loaded:
    state: ModelState
    flows: LinkFlows
    page: dict[str, np.ndarray]
    text: PageText
    model: ModelConfig


def load_state(store: Store, model: ModelConfig | None = None, *, labels: bool = True) -> Loaded:
    """The juice model of a stored crawl, solved, in memory (from the stored scores, when there
    are: a step or two instead of ~30). `labels`: also each link's target URL, position and anchor
    as strings (what-ifs by URL need them; at 1M pages they took 27 s and several GB)."""
    model = model or stored_model_config(store)
    page = store.page_arrays()
    if len(page["page_id"]) == 0:
        raise UsageError(f"{store.path} holds no pages")
    text = page_text(store, model)
    flows = link_flows(store, model, page, text, labels=labels)
    ranked = page["indexable"].astype(bool)
    teleport, _ = teleport_vector(store, model, page, ranked)
    content = model.position_weights.get("content", 1.0)

    def weigh(src: np.ndarray, dst: np.ndarray, anchors: list[str], positions: list[str]) -> np.ndarray:
        from .relevance import pair_similarity

        pos = np.array([model.position_weights.get(p or "content", content) for p in positions])
        cos = pair_similarity(text.vectors, src, dst) if model.relevance_weight > 0 else np.zeros(len(src))
        # Only the new links' targets' topics: every page's, as strings, took 7 s at 1M pages.
        frame = text.frame
        topics = {int(t): topic_text(frame["title"].iat[t], frame["h1"].iat[t], frame["url"].iat[t])
                  for t in np.unique(dst)}
        _, _, anchor_f = anchor_factors(anchors, topics, dst, model)
        return pos * relevance_factor(cos, model) * anchor_f

    state = ModelState(
        urls=page["url"], src=flows.src, dst=flows.resolved, weight=flows.weight, passes=flows.passes,
        pass_factor=flows.pass_factor, reason=pd.Categorical.from_codes(flows.reason, categories=list(REASONS)),
        ranked=ranked, teleport=teleport, damping=model.damping, tol=model.tol, weigh=weigh,
    ).solve(start=_warm_start(store.last_scores(len(page["page_id"])), "juice", ranked))
    return Loaded(state=state, flows=flows, page=page, text=text, model=model)


def _page_ids(state: ModelState, pattern: str) -> np.ndarray:
    """Ranked pages matching a URL (exact, after normalisation) or else a regular expression."""
    urls = state.urls
    exact = normalize_url(pattern) if "://" in pattern else None
    if exact is not None and (urls == exact).any():
        ids = np.flatnonzero(urls == exact)
    else:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--target is neither a crawled URL nor a valid regex: {exc}") from None
        ids = np.array([i for i, u in enumerate(urls) if regex.search(str(u))], dtype=np.int64)
    ids = ids[state.ranked[ids]] if len(ids) else ids
    if len(ids) == 0:
        raise UsageError(f"no indexable crawled page matches {pattern!r}")
    return ids.astype(np.int64)


def _default_targets(store: Store, loaded: Loaded) -> np.ndarray:
    """The audit's weak pages in its priority order, then the weakest quarter of indexable pages
    (all that is known before an audit has run), weakest first."""
    state = loaded.state
    flagged = store.finding_page_ids(WEAK_CODES)
    ranked = np.flatnonzero(state.ranked)
    cut = np.percentile(state.juice[ranked], 25) if len(ranked) else 0
    weakest = ranked[state.juice[ranked] <= cut]
    weakest = weakest[np.argsort(state.juice[weakest], kind="stable")]
    ids = pd.unique(np.concatenate([flagged, weakest]).astype(np.int64))
    return ids[state.ranked[ids]] if len(ids) else ids.astype(np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class SuggestOptions:
    target: str | None = None  # URL or regex; default: weak pages from the audit
    priorities: bool = False  # targets from `import priorities`
    per_target: int = 3
    limit: int = 50
    min_relevance: float = 0.1
    max_links: int = 150  # skip sources already at the too-many-links threshold
    candidates: int = 40  # nearest neighbours examined per target
    max_targets: int = 100  # targets considered, in priority order (0: all of them)
    exact_top: int | None = None  # suggestions whose gain is recomputed exactly (None: 25, fewer on big sites)
    engine: str | None = None  # relevance engine (tfidf|semantic); default: the one `score` used
    model_path: str | None = None  # semantic: another ONNX model folder


def suggest_links(db: str | Path, options: SuggestOptions | None = None, *, save: bool = True) -> pd.DataFrame:
    """Concrete new links: source, target, anchor found in the source's text, context, predicted gain."""
    options = options or SuggestOptions()
    if options.max_targets < 0:
        raise UsageError("--max-targets must not be negative")
    if options.exact_top is not None and options.exact_top < 0:
        raise UsageError("--exact-top must not be negative")
    with open_store(db, read_only=not save) as store:
        model = None
        if options.engine or options.model_path:  # relevance in memory with another engine
            stored = stored_model_config(store)
            engine = options.engine or ("semantic" if options.model_path else stored.relevance_engine)
            path = options.model_path or (stored.relevance_model_path if engine == "semantic" else None)
            model = replace(stored, relevance_engine=engine, relevance_model_path=path)
        loaded = load_state(store, model, labels=False)
        state = loaded.state
        if options.target:
            targets = _page_ids(state, options.target)
        elif options.priorities:  # the heaviest first
            prio = store.priority_urls().sort_values("weight", ascending=False, kind="stable")
            targets = pd.Index(state.urls).get_indexer(pd.Index(prio["url"], dtype=object))
            targets = pd.unique(targets[targets >= 0]).astype(np.int64)
            if len(targets) == 0:
                raise UsageError("no imported priority URL is a crawled page (run 'linkjuice import priorities')")
        else:
            targets = _default_targets(store, loaded)
        matched = len(targets)
        if options.max_targets and matched > options.max_targets:
            if options.target:  # a pattern's pages: the weakest first
                targets = targets[np.argsort(state.juice[targets], kind="stable")]
            targets = targets[:options.max_targets]
        frame = _suggest(loaded, targets, options, store.source_anchors)
        frame.attrs.update(targets=int(len(targets)), matched_targets=int(matched))
        if save:
            store.write_suggestions(frame)
            # The report tells "ran and found nothing" from "not run" by this marker.
            store.set_meta({"suggest": {"targets": int(len(targets)), "matched_targets": int(matched),
                                        "suggestions": int(len(frame)), "min_relevance": options.min_relevance}})
    return frame


# Work (links x solves) a suggest spends on exact answers by default: an adjoint solve per target
# for the first-order gains, and a solve per reported suggestion for the exact gains, each ~130
# sparse products over every link. ~10-15 s here; past it, two-hop gains and fewer exact ones.
ADJOINT_WORK = 20_000_000
EXACT_WORK = 3_000_000_000
EXACT_TOP = 25


def _candidate_gains(state: ModelState, s_ids: np.ndarray, t_ids: np.ndarray,
                     weight: np.ndarray) -> tuple[np.ndarray, Transition | None]:
    """First-order gain of each candidate for its own target: exact adjoints (one solve per
    target, the targets as columns of one block) while they fit in ADJOINT_WORK, else two hops.
    Also the transition matrix, when one was built (the exact gains reuse it)."""
    targets, column = np.unique(t_ids, return_inverse=True)
    if len(targets) * max(len(state.src), 1) > ADJOINT_WORK:
        return two_hop_gains(state, s_ids, t_ids, weight), None
    objectives = np.zeros((state.n, len(targets)))
    objectives[targets, np.arange(len(targets))] = 1.0
    transition = Transition.of(state)
    adjoints = transition.adjoint(objectives)
    gains = first_order_term(state.juice, transition.out_weight, state.damping, s_ids, weight,
                             adjoints[t_ids, column], adjoints[s_ids, column], (s_ids == t_ids).astype(np.float64))
    return gains, transition


def _existing(state: ModelState, flows: LinkFlows, s_ids: np.ndarray, t_ids: np.ndarray) -> np.ndarray:
    """Whether each candidate pair is already linked (as crawled or after redirects): only the
    links into the candidates' targets are read."""
    n = np.int64(state.n)
    keys = []
    for src, dst in ((state.src, state.dst), (flows.src, flows.dst)):
        into = np.isin(dst, t_ids)
        keys.append(src[into].astype(np.int64) * n + dst[into])
    return np.isin(s_ids.astype(np.int64) * n + t_ids, np.concatenate(keys))


def _suggest(loaded: Loaded, targets: np.ndarray, options: SuggestOptions,
             source_anchors: Callable[[np.ndarray], dict[int, list[str]]]) -> pd.DataFrame:
    state, text, model = loaded.state, loaded.text, loaded.model
    columns = ["rank", "source_url", "target_url", "anchor", "context", "relevance", "predicted_gain", "gain_pct",
               "exact", "source_juice_score", "target_juice_score"]
    if len(targets) == 0:
        return pd.DataFrame(columns=columns)
    t_ids, s_ids, cos = top_similar(text.vectors, targets, options.candidates, min_similarity=options.min_relevance)
    outlinks = np.bincount(loaded.flows.src[loaded.flows.is_internal], minlength=state.n)
    keep = state.ranked[s_ids] & (outlinks[s_ids] < options.max_links)
    t_ids, s_ids, cos = t_ids[keep], s_ids[keep], cos[keep]
    keep = ~_existing(state, loaded.flows, s_ids, t_ids)
    t_ids, s_ids, cos = t_ids[keep], s_ids[keep], cos[keep]
    if len(t_ids) == 0:
        return pd.DataFrame(columns=columns)
    # Rank candidates by first-order gain for their own target.
    content = model.position_weights.get("content", 1.0)
    weight = content * relevance_factor(cos, model)
    gains, transition = _candidate_gains(state, s_ids, t_ids, weight)
    frame = text.frame
    titles, h1s, main_text, headings = frame["title"], frame["h1"], frame["main_text"], frame["headings"]
    anchors_by_page = source_anchors(np.unique(s_ids))
    phrases_cache: dict[int, list[str]] = {}
    used: dict[int, list[str]] = {}
    rows = []
    for k in np.argsort(-gains, kind="stable"):
        s, t = int(s_ids[k]), int(t_ids[k])
        if len(used.get(t, [])) >= options.per_target:
            continue
        phrases = phrases_cache.get(t)
        if phrases is None:
            phrases = phrases_cache[t] = title_phrases(titles[t], h1s[t])
        match = find_anchor(main_text[s], phrases, existing_anchors=anchors_by_page.get(s, []),
                            headings=[titles[s], h1s[s], *str(headings[s]).split("\n")], avoid=used.get(t, []))
        if match is None:
            continue
        used.setdefault(t, []).append(match.anchor.lower())
        link_weight = float(state.weigh(np.array([s]), np.array([t]), [match.anchor], ["content"])[0]) if state.weigh else float(weight[k])
        rows.append({"source": s, "target": t, "anchor": match.anchor, "context": match.context,
                     "relevance": float(cos[k]), "weight": link_weight, "first_order": float(gains[k] * link_weight / weight[k])})
        if len(rows) >= options.limit:
            break
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(rows).sort_values("first_order", ascending=False, ignore_index=True)
    exact = np.zeros(len(out), bool)
    predicted = out["first_order"].to_numpy().copy()
    exact_top = options.exact_top
    if exact_top is None:  # as many as fit in EXACT_WORK (each ~130 products over every link)
        exact_top = min(EXACT_TOP, int(EXACT_WORK // (130 * max(len(state.src), 1))))
    if exact_top > 0:
        if transition is None:
            transition = Transition.of(state)
        for i in range(min(exact_top, len(out))):
            predicted[i] = transition.exact_gain(state.juice, int(out.at[i, "source"]), int(out.at[i, "target"]),
                                                 float(out.at[i, "weight"]))
            exact[i] = True
    scores = juice_score(state.juice, state.ranked, (1 - state.damping) * float(state.teleport[state.ranked].min()))
    result = pd.DataFrame({
        "source_url": state.urls[out["source"]], "target_url": state.urls[out["target"]], "anchor": out["anchor"],
        "context": out["context"], "relevance": out["relevance"], "predicted_gain": predicted,
        "gain_pct": 100 * predicted / state.juice[out["target"]], "exact": exact,
        "source_juice_score": scores[out["source"]], "target_juice_score": scores[out["target"]],
    }).sort_values("predicted_gain", ascending=False, ignore_index=True)
    result.insert(0, "rank", np.arange(1, len(result) + 1, dtype=np.int32))
    return result


# -- simulate ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SimulationResult:
    pages: pd.DataFrame  # url, juice_before, juice_after, change, change_pct, score_before, score_after
    accounting_before: pd.DataFrame  # reason, juice, share
    accounting_after: pd.DataFrame
    changes: list[str]  # what was applied, in words


def _read_edges(path: str | Path, *, need_anchor: bool = False) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise InputFileError("no such file", path=str(p))
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError("not UTF-8 text", path=str(p)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"not a CSV file ({str(exc).splitlines()[0]})", path=str(p)) from None
    frame.columns = [c.strip().lower() for c in frame.columns]
    for column in ("source", "target"):
        if column not in frame.columns:
            raise InputFileError(f"missing column {column!r} (need source,target[,anchor,position])", path=str(p), line=1)
    return frame


def _ids_for(store: Store, frame: pd.DataFrame, path: str | Path, base: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Page ids of the file's source/target URLs (absolute, or paths on the crawled site), looked
    up in the store (a dict of every URL took 6.5 s and 1 GB at 10M pages, for one link)."""
    ends = {end: [normalize_url(u, base) for u in frame[end]] for end in ("source", "target")}
    ids = {end: store.page_ids_of(urls) for end, urls in ends.items()}
    for line, row in enumerate(zip(ids["source"], ids["target"]), start=2):
        for end, page_id in zip(ends, row):
            if page_id < 0:
                raise InputFileError(f"{end} {frame[end].iat[line - 2]!r} is not a crawled page", path=str(path),
                                     line=line)
    return ids["source"], ids["target"]


def _pair_keys(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """One int64 per (source, target) page-id pair (a target of -1 included)."""
    return np.asarray(src, np.int64) * (n + 1) + (np.asarray(dst, np.int64) + 1)


def _listed(keys: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Whether each key is in `listed` (sorted, distinct)."""
    if not len(listed):
        return np.zeros(len(keys), bool)
    at = np.minimum(np.searchsorted(listed, keys), len(listed) - 1)
    return listed[at] == keys


def simulate(
    db: str | Path,
    *,
    add: str | Path | None = None,
    remove: str | Path | None = None,
    fix_redirects: bool = False,
    nofollow_to_follow: bool = False,
    drop_section: str | None = None,
) -> SimulationResult:
    """Recompute the model after hypothetical edits; the stored crawl is not changed."""
    if not (add or remove or fix_redirects or nofollow_to_follow or drop_section):
        raise UsageError("nothing to simulate: give --add, --remove, --fix-redirects, --nofollow-to-follow or --drop-section")
    with open_store(db) as store:
        base = store.meta().get("start_url")
        # The files first: a wrong line is reported before a big site's model is loaded.
        edits: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
        for name, path in (("remove", remove), ("add", add)):
            if path:
                frame = _read_edges(path)
                edits[name] = (frame, *_ids_for(store, frame, path, base))
        loaded = load_state(store, labels=False)
    before = loaded.state
    accounting_before = accounting(before)
    after = before
    flows = loaded.flows
    changes: list[str] = []
    kept: np.ndarray | None = None  # the crawl's links left, when some are removed
    if "remove" in edits:
        _, src, dst = edits["remove"]
        # A link goes when its (source, target) is listed, the target as linked or as it resolves:
        # each as one integer key, looked up in the sorted listed ones (as Python tuples, 200M
        # links would take minutes and tens of GB).
        listed = np.unique(_pair_keys(src, dst, before.n))
        drop = _listed(_pair_keys(after.src, flows.dst, before.n), listed)
        drop |= _listed(_pair_keys(after.src, after.dst, before.n), listed)
        after = after.without(drop)
        kept = ~drop
        changes.append(f"removed {int(drop.sum())} links")
    if fix_redirects:
        raw_dst = flows.dst if kept is None else flows.dst[kept]  # (the links as linked, before resolving)
        status = loaded.page["status"]
        via_redirect = (raw_dst >= 0) & (status[np.where(raw_dst >= 0, raw_dst, 0)] >= 300) & (status[np.where(raw_dst >= 0, raw_dst, 0)] < 400)
        after = replace(after, pass_factor=np.where(via_redirect, 1.0, after.pass_factor))
        changes.append(f"pointed {int(via_redirect.sum())} links at their final targets")
    if nofollow_to_follow:
        flip = (after.reason == "nofollow") & (after.dst >= 0)
        flip &= after.ranked[np.where(after.dst >= 0, after.dst, 0)]
        after = replace(after, passes=after.passes | flip, reason=np.where(flip, "passed", after.reason).astype(object))
        changes.append(f"made {int(flip.sum())} nofollow links followed")
    if drop_section:
        prefix = drop_section if drop_section.startswith("/") else "/" + drop_section
        in_section = np.array([str(u).split("://", 1)[-1].partition("/")[1:] != ("", "") and
                               ("/" + str(u).split("://", 1)[-1].partition("/")[2]).startswith(prefix)
                               for u in after.urls], dtype=bool)
        touching = in_section[after.src] | (after.dst >= 0) & in_section[np.where(after.dst >= 0, after.dst, 0)]
        after = after.without(touching)
        after = replace(after, ranked=after.ranked & ~in_section)
        changes.append(f"dropped {int(in_section.sum())} pages under {prefix} and {int(touching.sum())} links to or from them")
    if "add" in edits:
        frame, src, dst = edits["add"]
        # A link added without a stated anchor is assumed to name its target (its title), the
        # same assumption `optimize` makes, so the two always agree.
        titles = loaded.text.frame["title"]
        given = list(frame["anchor"]) if "anchor" in frame.columns else [""] * len(src)
        anchors = [a if a.strip() else str(titles[t]) for a, t in zip(given, dst.tolist())]
        positions = list(frame["position"]) if "position" in frame.columns else ["content"] * len(src)
        weights = before.weigh(src, dst, anchors, positions) if before.weigh else np.ones(len(src))
        del titles
    # What was read of the crawl beside the model (the links as linked, the page texts and their
    # vectors, which `weigh` holds) is let go before the new links are added to copies of every
    # link's arrays: at 10M pages, 15.0 GB at the peak with them.
    del loaded, flows
    before, after = replace(before, weigh=None), replace(after, weigh=None)
    if "add" in edits:
        after = after.with_links(src, dst, weights)
        changes.append(f"added {len(src)} links")
    # The edited state holds the links it needs: the crawl's are let go before the solve (at 10M
    # pages, both sets of links and the solve's layout did not fit in 24 GB).
    # (no link kept: fresh empty arrays, where slices of them would keep every link's buffers alive)
    before = before.without(np.ones(len(before.src), bool))
    after = after.solve(start=before.juice)
    floor_b = (1 - before.damping) * float(before.teleport[before.ranked].min())
    score_b = juice_score(before.juice, before.ranked, floor_b)
    score_a = juice_score(after.juice, after.ranked, floor_b)
    pages = pd.DataFrame({
        "url": before.urls,
        "juice_before": np.where(before.ranked, before.juice, np.nan),
        "juice_after": np.where(after.ranked, after.juice, np.nan),
        "score_before": score_b, "score_after": score_a,
    })
    pages["change"] = pages["juice_after"].fillna(0) - pages["juice_before"].fillna(0)
    pages["change_pct"] = 100 * pages["change"] / pages["juice_before"]
    pages = pages[before.ranked | after.ranked].sort_values("change", key=np.abs, ascending=False, ignore_index=True)
    return SimulationResult(pages=pages, accounting_before=accounting_before, accounting_after=accounting(after),
                            changes=changes)


# -- optimize ---------------------------------------------------------------------------------
def optimize(db: str | Path, target: str, budget: int, *, min_relevance: float = 0.05, candidates: int = 200,
             max_links: int = 150) -> tuple[OptimizeResult, pd.DataFrame]:
    """Greedy choice of `budget` new links that raise the target set's juice the most.

    Returns the optimiser's result and its chosen links with an anchor found in each source."""
    if budget < 1:
        raise UsageError("--budget must be at least 1")
    with open_store(db) as store:
        loaded = load_state(store, labels=False)
    state, text = loaded.state, loaded.text
    targets = _page_ids(state, target)
    t_ids, s_ids, cos = top_similar(text.vectors, targets, candidates, min_similarity=min_relevance)
    keep = state.ranked[s_ids] & ~_existing(state, loaded.flows, s_ids, t_ids)
    t_ids, s_ids, cos = t_ids[keep], s_ids[keep], cos[keep]
    if len(t_ids) == 0:
        raise UsageError("no relevant candidate sources for the target(s): lower --min-relevance")
    objective = np.zeros(state.n)
    objective[targets] = 1.0
    # Candidates are weighed as content links whose anchor names the target (factor 1).
    weight = loaded.model.position_weights.get("content", 1.0) * relevance_factor(cos, loaded.model)
    outlinks = np.bincount(loaded.flows.src[loaded.flows.is_internal], minlength=state.n)
    result = greedy_optimize(state, s_ids, t_ids, weight, objective, budget, max_links=max_links, existing_links=outlinks)
    frame = text.frame
    with open_store(db) as store:  # (the chosen links' ids: no index of every page's URL)
        chosen_sources = store.page_ids_of(list(result.chosen["source_url"]))
        chosen_targets = store.page_ids_of(list(result.chosen["target_url"]))
        anchors_by_page = store.source_anchors(np.unique(chosen_sources))
    anchors, contexts = [], []
    for s, t in zip(chosen_sources.tolist(), chosen_targets.tolist()):
        match = find_anchor(frame["main_text"][s], title_phrases(frame["title"][t], frame["h1"][t]),
                            existing_anchors=anchors_by_page.get(s, []),
                            headings=[frame["title"][s], frame["h1"][s], *str(frame["headings"][s]).split("\n")])
        anchors.append(match.anchor if match else None)
        contexts.append(match.context if match else None)
    chosen = result.chosen.assign(anchor=anchors, context=contexts)
    return result, chosen

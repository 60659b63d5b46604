"""What the report and the dashboard show, as one JSON-ready dict built from a store.

The same payload drives both: the static report embeds the tables' rows (capped, with a note),
the dashboard leaves them out and its page fetches them a page at a time. Every string that came
from a crawl is passed through `clean_text` (control and bidi characters removed); HTML escaping
happens where it is shown (Jinja's autoescape, `textContent` in the page's script).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..diff import DIFF_PARTS, CrawlDiff
from ..store import Store
from ..textsafe import clean_text
from .layout import radial_layout

__all__ = ["ReportLimits", "TABLES", "report_payload", "table_payload", "frame_rows", "diff_section"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLimits:
    """Caps that keep a report of a million-page crawl a file a browser opens in seconds."""

    max_nodes: int = 20_000  # graph: the strongest pages by juice
    max_edges: int = 100_000  # graph: the links that carry the most juice among them
    max_rows: int = 20_000  # embedded rows per table (the dashboard pages through all)
    drilldown_pages: int = 5_000  # pages whose sources and sends are embedded
    per_page: int = 15  # sources and sends embedded per page
    diff_rows: int = 50  # rows per list in the comparison
    sections: int = 12  # sections drawn in the Sankey and coloured in the graph; the rest are "other"


# The tables the report shows: name -> (columns shown, columns offered as dropdown filters).
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "findings": (("finding_id", "severity", "code", "url", "item_count", "juice_at_stake", "explanation", "fix"),
                 ("severity", "code")),
    "finding_items": (("finding_id", "code", "url", "source_url", "target_url", "anchor", "position", "juice",
                       "detail"), ()),
    "pages": (("url", "title", "status", "indexability", "depth", "section", "inlinks", "outlinks", "juice_score",
               "juice"), ("indexability", "section")),
    "suggestions": (("rank", "source_url", "target_url", "anchor", "context", "relevance", "predicted_gain",
                     "gain_pct"), ()),
}

# Node flags in the graph (bit mask).
ORPHAN, BROKEN, REDIRECT, NOT_INDEXABLE = 1, 2, 4, 8


def _cell(value: Any) -> Any:
    """A JSON-safe cell: NaN/NA become null, numpy scalars plain numbers, text cleaned."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, (datetime, pd.Timestamp)):
        return value.isoformat()
    return clean_text(value)


def frame_rows(frame: pd.DataFrame, columns: tuple[str, ...] | list[str] | None = None) -> list[list[Any]]:
    """Rows of a DataFrame as lists of JSON-safe cells."""
    cols = [c for c in (columns or frame.columns) if c in frame.columns]
    return [[_cell(v) for v in row] for row in frame[cols].itertuples(index=False, name=None)]


def table_payload(store: Store, name: str, *, rows: int | None, **browse: Any) -> dict[str, Any]:
    """A table as {columns, rows, total, truncated}; `rows=None` sends no rows (the dashboard)."""
    columns = [c for c in TABLES[name][0] if c in store.browse_columns(name)]
    frame, total = store.browse(name, limit=rows if rows is not None else 0, **browse)
    return {"columns": columns, "rows": frame_rows(frame, columns) if rows is not None else [],
            "total": total, "truncated": rows is not None and total > rows}


def _status(store: Store, meta: dict[str, Any]) -> dict[str, str]:
    """Which later stages have run: the audit leaves a summary in meta; suggestions are rows."""
    findings = store.table_rows("findings")
    suggestions = store.table_rows("suggestions")
    return {
        "findings": "ok" if "audit" in meta and findings is not None else "not_run",
        "suggestions": "ok" if suggestions else ("empty" if "suggest" in meta else "not_run"),
    }


def _facets(store: Store, name: str) -> dict[str, list[Any]]:
    out = {}
    for column in TABLES[name][1]:
        if column in store.browse_columns(name):
            out[column] = [_cell(v) for v in store.browse_values(name, column, limit=200)]
    return out


def _histogram(juice: np.ndarray) -> dict[str, Any]:
    """Pages per bin of log10(juice): juice spans orders of magnitude, so linear bins hide all
    but the top pages."""
    if len(juice) == 0:
        return {"edges": [], "counts": []}
    logs = np.log10(juice)
    lo, hi = math.floor(logs.min() * 4) / 4, math.ceil(logs.max() * 4) / 4
    edges = np.arange(lo, max(hi, lo + 0.25) + 1e-9, 0.25)
    counts, edges = np.histogram(logs, bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _accounting(store: Store, status: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Where the juice passed through links goes (the audit's accounting when it has run, else
    from the section flow matrix, whose lost rows carry the reason)."""
    if status["findings"] == "ok":
        frame, _ = store.browse("juice_flow", limit=None)
        return {dim: [{"category": clean_text(r.category), "juice": _cell(r.juice), "share": _cell(r.share)}
                      for r in part.itertuples(index=False)]
                for dim, part in frame.groupby("dimension", sort=False)}
    flows, _ = store.browse("section_flows", limit=None)
    if flows.empty:
        return {}
    lost = flows["to_section"].str.startswith("(lost: ")
    category = np.where(lost, flows["to_section"].str.slice(7, -1), "passed to pages")
    grouped = flows.assign(category=category).groupby("category", as_index=False)["juice"].sum()
    total = float(grouped["juice"].sum()) or 1.0
    grouped = grouped.sort_values("juice", ascending=False)
    return {"destination": [{"category": str(c), "juice": float(j), "share": float(j) / total}
                            for c, j in zip(grouped["category"], grouped["juice"])]}


def _sankey(store: Store, keep: int) -> dict[str, Any]:
    """Section flows as a two-column Sankey (sources left, receivers right): the matrix has
    cycles (blog -> shop -> blog), which a one-column Sankey cannot draw."""
    flows, _ = store.browse("section_flows", limit=None)
    flows = flows[flows["juice"] > 0]
    if flows.empty:
        return {"nodes": [], "links": []}
    strength = flows.groupby("from_section")["juice"].sum().sort_values(ascending=False)
    top = set(strength.index[:keep])

    def bucket(name: str) -> str:
        return name if name in top or name.startswith("(lost") else "(other sections)"

    frame = pd.DataFrame({"source": "from " + flows["from_section"].map(bucket),
                          "target": "to " + flows["to_section"].map(bucket),
                          "juice": flows["juice"], "links": flows["links"]})
    frame = frame.groupby(["source", "target"], as_index=False).sum().sort_values("juice", ascending=False)
    names = list(dict.fromkeys(list(frame["source"]) + list(frame["target"])))
    return {"nodes": [clean_text(n) for n in names],
            "links": [{"source": clean_text(s), "target": clean_text(t), "value": float(j), "links": int(n)}
                      for s, t, j, n in frame.itertuples(index=False, name=None)]}


def _graph(store: Store, limits: ReportLimits, start_url: str | None) -> dict[str, Any]:
    nodes, total = store.browse("pages", limit=limits.max_nodes)
    urls = nodes["url"].astype(str).to_numpy()
    sections = nodes["section"].fillna("(not scored)").astype(str).to_numpy()
    # Colours go to the sections that hold the most juice (then the most pages), the rest are grey.
    weight = pd.DataFrame({"section": sections, "juice": nodes["juice"].astype(float).fillna(0).to_numpy()})
    counts = weight.groupby("section").agg(juice=("juice", "sum"), pages=("juice", "size"))
    counts = counts.sort_values(["juice", "pages"], ascending=False)
    named = list(counts.index[: limits.sections])
    section_idx = np.array([named.index(s) if s in named else len(named) for s in sections], dtype=int)
    depth = nodes["depth"].astype("Float64").fillna(-1).to_numpy(dtype=float)
    x, y = radial_layout(depth, section_idx, urls)
    juice = nodes["juice"].astype(float).fillna(0).to_numpy()
    top = juice.max() if len(juice) and juice.max() > 0 else 1.0
    size = 2.0 + 12.0 * np.sqrt(juice / top)
    status = nodes["status"].astype("Float64").fillna(0).to_numpy(dtype=float)
    indexability = nodes["indexability"].fillna("").astype(str).to_numpy()
    flags = np.zeros(len(urls), dtype=int)
    flags |= np.where((depth < 0) & (urls != (start_url or "")), ORPHAN, 0)
    flags |= np.where(np.isin(indexability, ["client error", "server error", "error"]), BROKEN, 0)
    flags |= np.where((status >= 300) & (status < 400), REDIRECT, 0)
    flags |= np.where(indexability != "indexable", NOT_INDEXABLE, 0)
    edges = store.flows_among(list(urls), limits.max_edges)
    index = {u: i for i, u in enumerate(urls)}
    return {
        "total_pages": total, "sampled": total > len(urls), "max_nodes": limits.max_nodes,
        "sections": [clean_text(s) for s in named] + (["(other sections)"] if len(counts) > len(named) else []),
        "url": [clean_text(u) for u in urls],
        "title": [_cell(t) for t in nodes["title"]],
        "x": [round(float(v), 4) for v in x], "y": [round(float(v), 4) for v in y],
        "size": [round(float(v), 2) for v in size], "section": section_idx.tolist(), "flags": flags.tolist(),
        "score": [_cell(v) for v in nodes["juice_score"]],
        "edges": [[index[s], index[t], bool(p)] for s, t, p in
                  zip(edges["source_url"], edges["target_url"], edges["passes"])],
        "edges_capped": len(edges) >= limits.max_edges,
    }


def _drilldown(store: Store, urls: list[str], per_page: int) -> dict[str, Any]:
    """Each listed page's strongest sources and sends, with URLs stored once."""
    flows = store.flows_of(urls, per_page)
    pool: dict[str, int] = {}

    def ref(value: Any) -> int | None:
        if value is None or value != value:
            return None
        return pool.setdefault(clean_text(value), len(pool))

    rows = [[d, ref(p), ref(s), ref(t), ref(r), _cell(a), _cell(pos), _cell(sh), _cell(j), _cell(reason)]
            for d, p, s, t, r, a, pos, _nf, sh, j, reason in flows.itertuples(index=False, name=None)]
    return {"urls": list(pool), "rows": rows, "pages": len(urls)}


def diff_section(diff: CrawlDiff) -> dict[str, Any]:
    """A crawl comparison as the report shows it: counts, and per list its columns and rows."""
    return {"old": clean_text(diff.old), "old_finished_at": diff.old_finished_at, "counts": diff.counts,
            "columns": {k: list(diff.parts[k].columns) for k in DIFF_PARTS},
            "rows": {k: frame_rows(diff.parts[k]) for k in DIFF_PARTS}}


def report_payload(store: Store, *, limits: ReportLimits | None = None, embed_rows: bool = True,
                   diff: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the report shows. `embed_rows=False` leaves table rows and drill-downs out
    (the dashboard serves them on demand)."""
    limits = limits or ReportLimits()
    meta = store.meta()
    status = _status(store, meta)
    settings = meta.get("settings") or {}
    model = meta.get("model") or {}
    stats = store.report_stats()
    severity: dict[str, int] = {}
    if status["findings"] == "ok":
        severity = {str(k): int(v) for k, v in store.browse_counts("findings", "severity").items()}
    depth = store.depth_stats()
    total_juice = float(depth["juice"].sum()) or 1.0
    tables: dict[str, Any] = {}
    for name in TABLES:
        if name in ("findings", "finding_items") and status["findings"] != "ok":
            continue
        if name == "suggestions" and status["suggestions"] == "not_run":
            continue
        tables[name] = table_payload(store, name, rows=limits.max_rows if embed_rows else None)
        tables[name]["facets"] = _facets(store, name)
    top_pages, _ = store.browse("pages", limit=20)
    payload: dict[str, Any] = {
        "mode": "static" if embed_rows else "live",
        "meta": {
            "start_url": _cell(meta.get("start_url")), "version": __version__,
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "started_at": _cell(meta.get("started_at")), "finished_at": _cell(meta.get("finished_at")),
            "stop_reason": _cell(meta.get("stop_reason")), "limits_hit": bool(meta.get("limits_hit")),
            "model": _cell(model.get("name")), "damping": _cell(model.get("damping")),
            "settings": {k: _cell(settings.get(k)) for k in ("max_pages", "max_depth", "obey_robots",
                                                               "use_sitemaps", "concurrency", "user_agent")
                         if k in settings},
            "audit": {k: _cell(v) for k, v in (meta.get("audit") or {}).items() if not isinstance(v, dict)},
        },
        "status": status,
        "stats": stats,
        "severity": severity,
        "accounting": _accounting(store, status),
        "top_pages": {"columns": list(TABLES["pages"][0]), "rows": frame_rows(top_pages, TABLES["pages"][0])},
        "histogram": _histogram(store.juice_values()),
        "depth": [{"depth": _cell(r.depth), "pages": int(r.pages), "ranked": int(r.ranked),
                   "juice_share": float(r.juice) / total_juice, "median_score": _cell(r.median_score)}
                  for r in depth.itertuples(index=False)],
        "sankey": _sankey(store, limits.sections),
        "graph": _graph(store, limits, meta.get("start_url")),
        "tables": tables,
        "diff": diff,
        "limits": {"max_rows": limits.max_rows, "drilldown_pages": limits.drilldown_pages,
                   "per_page": limits.per_page},
    }
    if embed_rows:
        pages = tables["pages"]["rows"][: limits.drilldown_pages]
        payload["drilldown"] = _drilldown(store, [r[0] for r in pages], limits.per_page)
    return payload

"""Why a page has the juice it has: its sources, what it passes on, and how it compares.

In the juice model (docs/model.md) a ranked page's juice is exactly

    x_j = sum over links i->j of d * x_i * share_ij   +   (1 - d + d * D) * v_j

where D is the juice of dangling pages and v the teleport vector, itself (1 - b) * uniform +
b * backlinks. `explain_page` computes each term from the stored flows and reports how closely
they add up to the stored juice (the difference is the solver's tolerance).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PageExplanation", "explain_page"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PageExplanation:
    url: str
    juice: float
    juice_score: float
    rank: int  # 1 = strongest page
    ranked_pages: int
    percentile: float  # share of ranked pages with less juice
    from_links: float
    from_base: float  # the uniform part of the teleport
    from_backlinks: float  # outside authority
    sources: pd.DataFrame  # source_url, anchor, position, weight, share, juice, share_of_page (the most first)
    sends: pd.DataFrame  # target_url, resolved_url, reason, juice (the most first)
    sent_total: float
    lost_total: float
    source_count: int  # passing links in (sources lists them all, or the top ones)
    send_count: int  # links out (likewise)

    @property
    def accounted(self) -> float:
        return self.from_links + self.from_base + self.from_backlinks


def explain_page(
    *,
    url: str,
    juice: float,
    juice_score: float,
    teleport: float,
    backlink_share: float,
    all_juice: np.ndarray,
    inflows: pd.DataFrame,
    outflows: pd.DataFrame,
    damping: float,
    dangling_mass: float,
    backlink_mix: float,
    has_backlinks: bool,
    totals: Mapping[str, float | int] | None = None,
) -> PageExplanation:
    """Break a page's juice into contributions (link by link, base teleport, backlinks).
    `inflows` and `outflows` are the page's flows, all of them; or only the top ones, and then
    `totals` (Store.page_flow_totals) gives what all of them add up to."""
    entering = (1.0 - damping + damping * dangling_mass)
    backlink_part = entering * backlink_mix * backlink_share if has_backlinks else 0.0
    base_part = entering * teleport - backlink_part
    passed = inflows[inflows["reason"] == "passed"].copy()
    # What arrives (after any redirect loss) is the page's contribution.
    passed["juice"] = passed["delivered"]
    passed["share_of_page"] = passed["juice"] / juice if juice > 0 else 0.0
    sources = passed[["source_url", "anchor", "position", "weight", "share", "juice", "share_of_page"]]
    sources = sources.sort_values("juice", ascending=False, ignore_index=True, kind="stable")
    sends = outflows[["target_url", "resolved_url", "position", "anchor", "reason", "share", "juice"]]
    sends = sends.sort_values("juice", ascending=False, ignore_index=True, kind="stable")
    ranked = all_juice[np.isfinite(all_juice)]
    rank = int((ranked > juice).sum()) + 1
    if totals is None:
        totals = {"from_links": float(sources["juice"].sum()), "sources": len(sources),
                  "sent": float(sends["juice"].sum()), "sends": len(sends),
                  "lost": float(sends.loc[sends["reason"] != "passed", "juice"].sum())}
    return PageExplanation(
        url=url, juice=juice, juice_score=juice_score, rank=rank, ranked_pages=len(ranked),
        percentile=float((ranked < juice).mean()) if len(ranked) else 0.0,
        from_links=float(totals["from_links"]), from_base=float(base_part), from_backlinks=float(backlink_part),
        sources=sources, sends=sends, sent_total=float(totals["sent"]), lost_total=float(totals["lost"]),
        source_count=int(totals["sources"]), send_count=int(totals["sends"]),
    )

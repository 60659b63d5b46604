"""What changed between two crawls of a site: broken links, orphans, juice, links.

Pages are matched by URL, so compare crawls of the same origin. The definitions:

* broken link: a followed or nofollow link whose target is broken (4xx/5xx/no response) or
  redirects to a broken page (`link_flows.reason` broken / redirect_broken); "fixed" says how
  (the target now works, the link was removed, or its source page is gone);
* orphan: a URL listed in an in-scope sitemap that no followed link from another crawled page
  points at (directly or through a redirect);
* juice moved: indexable in both crawls, ranked by the change of juice_score (0-100, log scale,
  comparable between crawls of different sizes, unlike raw juice, which sums to the site's total);
* links added/removed: internal (source, target) pairs, self-links left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .store import Store

__all__ = ["CrawlDiff", "DIFF_PARTS", "diff_stores", "compare_store"]

# The lists a diff holds, in the order they are shown.
DIFF_PARTS: tuple[str, ...] = ("new_broken", "fixed_broken", "new_orphans", "fixed_orphans", "juice_moved",
                               "links_added", "links_removed", "pages_added", "pages_removed")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrawlDiff:
    """Counts of every change, and the first `limit` rows of each list (see DIFF_PARTS)."""

    old: str
    new: str
    old_finished_at: str | None
    new_finished_at: str | None
    counts: dict[str, int]
    parts: dict[str, pd.DataFrame]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts and each list as records."""
        return {"old": self.old, "new": self.new, "old_finished_at": self.old_finished_at,
                "new_finished_at": self.new_finished_at, "counts": dict(self.counts),
                **{name: _records(self.parts[name]) for name in DIFF_PARTS}}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    clean = frame.astype(object).where(frame.notna(), None)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in clean.to_dict("records")]


def _finished(path: str | Path) -> str | None:
    with Store(path, read_only=True) as store:
        value = store.meta().get("finished_at")
    return None if value is None else str(value)


def compare_store(store: Store, old: str | Path, *, limit: int = 50) -> CrawlDiff:
    """Compare an open store (the newer crawl) with the crawl in `old`."""
    result = store.compare(old, limit=limit)
    finished = store.meta().get("finished_at")
    return CrawlDiff(old=str(old), new=str(store.path), old_finished_at=_finished(old),
                     new_finished_at=None if finished is None else str(finished),
                     counts={k: int(result["counts"][k]) for k in DIFF_PARTS},
                     parts={k: result[k] for k in DIFF_PARTS})


def diff_stores(old: str | Path, new: str | Path, *, limit: int = 50) -> CrawlDiff:
    """Compare the crawl in `old` with the crawl in `new` (both opened read-only)."""
    with Store(new, read_only=True) as store:
        return compare_store(store, old, limit=limit)


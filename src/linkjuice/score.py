"""The scoring engines: textbook PageRank and the link-juice (reasonable surfer) model.

Both are sparse power iterations (Page et al. 1999; Langville & Meyer, "Deeper Inside PageRank",
2004) written as x <- d (M^T x + (x . dangling) v) + (1 - d) v with M row-(sub)stochastic:

* classic: M = D^-1 A over unique page-to-page links, dangling mass spread uniformly, sums to 1.
* juice: M[i, j] = (weight of i's link to j) / (total weight of all of i's links). Links that pass
  nothing (nofollow, broken, external, to non-indexable pages) still take their share of the
  denominator, so their juice leaves the system: that is the "lost juice" the audit reports.
  The weights are products of documented factors (docs/model.md), not learned numbers.

Inputs are arrays; outputs are arrays. docs/model.md derives every formula with a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .errors import ScoringError
from .graph import to_csr, unique_edges

__all__ = ["PowerResult", "power_iterate", "classic_pagerank", "juice_rank", "juice_score"]


@dataclass(frozen=True, slots=True)
class PowerResult:
    scores: np.ndarray
    iterations: int
    residual: float  # L1 change of the last iteration


def power_iterate(
    transition_t: sp.csr_array,
    *,
    teleport: np.ndarray,
    dangling: np.ndarray,
    damping: float = 0.85,
    tol: float = 1e-10,
    max_iter: int = 1000,
    start: np.ndarray | None = None,
) -> PowerResult:
    """Iterate x <- d (M^T x + (x . dangling) teleport) + (1 - d) teleport until the L1 change < tol.

    `transition_t` is M transposed (so each step is one CSR mat-vec); `dangling` is a 0/1 vector
    of the pages whose mass is redistributed through the teleport vector.
    """
    n = transition_t.shape[0]
    if n == 0:
        return PowerResult(np.zeros(0), 0, 0.0)
    x = teleport.copy() if start is None else start.astype(np.float64, copy=True)
    base = (1.0 - damping) * teleport
    residual = np.inf
    for it in range(1, max_iter + 1):
        x_new = transition_t @ x
        x_new += float(dangling @ x) * teleport
        x_new *= damping
        x_new += base
        residual = float(np.abs(x_new - x).sum())
        x = x_new
        if residual < tol:
            return PowerResult(x, it, residual)
    raise ScoringError(f"power iteration did not converge in {max_iter} iterations (L1 change {residual:.3g})")


def classic_pagerank(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    *,
    nodes: np.ndarray | None = None,
    damping: float = 0.85,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> PowerResult:
    """Textbook PageRank over `nodes` (a boolean mask; default all) and their unique links.

    Self-links and duplicate links count once or not at all; dangling pages' mass is spread
    uniformly over the nodes. Pages outside `nodes` score 0. Sums to 1 over the nodes.
    """
    mask = np.ones(n, bool) if nodes is None else np.asarray(nodes, bool)
    s, d = unique_edges(n, src, dst)
    keep = mask[s] & mask[d]
    s, d = s[keep], d[keep]
    outdeg = np.bincount(s, minlength=n).astype(np.float64)
    m = int(mask.sum())
    if m == 0:
        return PowerResult(np.zeros(n), 0, 0.0)
    teleport = mask / m
    dangling = (mask & (outdeg == 0)).astype(np.float64)
    inv = np.divide(1.0, outdeg, out=np.zeros(n), where=outdeg > 0)
    mt = to_csr(n, d, s, inv[s])  # transposed: row = target
    return power_iterate(mt, teleport=teleport, dangling=dangling, damping=damping, tol=tol, max_iter=max_iter)


def juice_rank(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    passes: np.ndarray,
    *,
    ranked: np.ndarray,
    teleport: np.ndarray | None = None,
    damping: float = 0.85,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> tuple[PowerResult, np.ndarray]:
    """The link-juice model. Returns the result and each link's share of its source's juice.

    src/dst/weight/passes describe every (deduplicated) link of every page: `weight` is its
    product of factors, `passes` whether it delivers to `dst` (a ranked page). Only `ranked`
    pages hold juice; teleport (default: uniform over ranked pages) is where outside authority
    enters. A ranked page with no links at all is dangling: its mass re-enters via the teleport.
    """
    ranked = np.asarray(ranked, bool)
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    weight = np.asarray(weight, np.float64)
    passes = np.asarray(passes, bool) & (dst >= 0)
    passes &= ranked[np.where(dst >= 0, dst, 0)] & ranked[src]
    if teleport is None:
        m = int(ranked.sum())
        teleport = ranked / m if m else np.zeros(n)
    else:
        teleport = np.where(ranked, teleport, 0.0)
        total = teleport.sum()
        if total <= 0:
            raise ScoringError("the teleport vector has no mass on ranked pages")
        teleport = teleport / total
    out_weight = np.bincount(src, weights=weight, minlength=n)
    share = np.divide(weight, out_weight[src], out=np.zeros(len(weight)), where=out_weight[src] > 0)
    dangling = (ranked & (out_weight == 0)).astype(np.float64)
    mt = to_csr(n, dst[passes], src[passes], share[passes])
    result = power_iterate(mt, teleport=teleport, dangling=dangling, damping=damping, tol=tol, max_iter=max_iter)
    return result, share


def juice_score(juice: np.ndarray, ranked: np.ndarray, floor: float) -> np.ndarray:
    """Map raw juice to 0-100 on a log scale: `floor` (the juice of a page no link reaches)
    maps to 0 and the strongest page to 100. NaN for pages that are not ranked."""
    out = np.full(len(juice), np.nan)
    mask = np.asarray(ranked, bool) & (juice > 0)
    if not mask.any():
        return out
    top = float(juice[mask].max())
    if top <= floor:
        out[mask] = 100.0
        return out
    out[mask] = 100.0 * np.log(juice[mask] / floor) / np.log(top / floor)
    return np.clip(out, 0.0, 100.0)

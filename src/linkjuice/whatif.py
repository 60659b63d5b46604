"""What-if analysis on the juice model: simulate edits, predict a new link's gain, optimise.

The juice model solves x = (1 - d) v + d P^T x, with P = M + dangling v^T (M: each passing
link's delivered share). Write A = I - d P^T and G = A^-1, so x = (1 - d) G v.

Adding a link s -> t of weight w scales s's existing shares by (1 - a) and gives the new link
a = w / (W_s + w), so P's row s changes by a (e_t - p_s). For an objective J = c . x (the juice
of a target set), the Sherman-Morrison formula gives the exact change

    dJ = d x_s (c . z) / (1 - d z_s),   z = a G (e_t - p_s),

and, with r = G^T c (one "adjoint" solve for the whole target set) and the identity
d G P^T = G - I,  c . z = a (r_t - (r_s - c_s) / d).  We rank candidates by the first-order
gain d x_s (c . z), which ignores the feedback term 1 / (1 - d z_s) (juice that the new link
sends back round to s itself; it is small when s is not downstream of t). Every prediction we
report is then recomputed exactly with a warm-started solve, and tests check both against a
full recomputation.

Choosing the best K links is NP-hard in general (Olsen, "Maximizing PageRank with new
backlinks", 2008), so `optimize` is greedy: at each step one adjoint solve scores every
remaining candidate by first-order gain, the best is added, and the juice is re-solved exactly
(warm start) before the next step. The reported total is the exact gain of the chosen set;
there is no worst-case approximation guarantee.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .graph import to_csr
from .score import juice_iterate, power_iterate

__all__ = ["ModelState", "first_order_gains", "exact_gain", "greedy_optimize", "OptimizeResult", "accounting"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelState:
    """Everything needed to recompute the juice model in memory, without the store."""

    urls: np.ndarray
    src: np.ndarray
    dst: np.ndarray  # the page that receives (after redirects/canonicals), -1 for none
    weight: np.ndarray
    passes: np.ndarray
    pass_factor: np.ndarray
    reason: np.ndarray  # reason names ("passed", "broken", ...)
    ranked: np.ndarray
    teleport: np.ndarray
    damping: float
    tol: float
    juice: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Weighs new links: (src ids, dst ids, anchors, positions) -> weights.
    weigh: Callable[[np.ndarray, np.ndarray, list[str], list[str]], np.ndarray] | None = None

    @property
    def n(self) -> int:
        return len(self.urls)

    def solve(self, start: np.ndarray | None = None) -> ModelState:
        """This state with its juice (re)computed; `start` warm-starts the iteration."""
        result = juice_iterate(self.n, self.src, self.dst, self.weight, self.passes, ranked=self.ranked,
                               teleport=self.teleport, damping=self.damping, tol=self.tol,
                               pass_factor=self.pass_factor, start=start)
        return replace(self, juice=result.scores)

    def out_weight(self) -> np.ndarray:
        return np.bincount(self.src, weights=self.weight, minlength=self.n)

    def shares(self) -> np.ndarray:
        w = self.out_weight()
        return np.divide(self.weight, w[self.src], out=np.zeros(len(self.weight)), where=w[self.src] > 0)

    def with_links(self, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, reason: str = "passed") -> ModelState:
        """This state plus new links (not yet re-solved)."""
        passes = np.asarray(dst) >= 0
        passes &= self.ranked[np.where(passes, dst, 0)]
        return replace(
            self,
            src=np.concatenate([self.src, np.asarray(src, np.int64)]),
            dst=np.concatenate([self.dst, np.asarray(dst, np.int64)]),
            weight=np.concatenate([self.weight, np.asarray(weight, np.float64)]),
            passes=np.concatenate([self.passes, passes]),
            pass_factor=np.concatenate([self.pass_factor, np.ones(len(src))]),
            reason=np.concatenate([self.reason, np.where(passes, reason, "non_indexable").astype(object)]),
        )

    def without(self, drop: np.ndarray) -> ModelState:
        keep = ~np.asarray(drop, bool)
        return replace(self, src=self.src[keep], dst=self.dst[keep], weight=self.weight[keep],
                       passes=self.passes[keep], pass_factor=self.pass_factor[keep], reason=self.reason[keep])


def _adjoint(state: ModelState, c: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """r = G^T c, i.e. r = c + d P r, by the same power iteration as the model."""
    share = state.shares() * state.pass_factor
    keep = state.passes
    m = to_csr(state.n, state.src[keep], state.dst[keep], share[keep])  # M, rows = sources
    dangling = (state.ranked & (state.out_weight() == 0)).astype(np.float64)
    # r = c + d (M r + dangling (v . r)): iterate it as x <- d (A x + (x . v) dangling) + c.
    # power_iterate computes d (T x + (x . g) h) + (1 - d) h; we pass h = dangling and add c.
    r = c.astype(np.float64).copy() if start is None else start.astype(np.float64).copy()
    for _ in range(10_000):
        r_new = c + state.damping * (m @ r + dangling * float(state.teleport @ r))
        if np.abs(r_new - r).sum() < state.tol:
            return r_new
        r = r_new
    return r


def first_order_gains(state: ModelState, src: np.ndarray, dst: np.ndarray, weight: np.ndarray,
                      objective: np.ndarray, adjoint: np.ndarray | None = None) -> np.ndarray:
    """First-order change of objective . juice for each candidate link src[k] -> dst[k] alone."""
    r = _adjoint(state, objective) if adjoint is None else adjoint
    out_w = state.out_weight()
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    alpha = weight / (out_w[src] + weight)
    d = state.damping
    cz = alpha * (r[dst] - (r[src] - objective[src]) / d)
    return d * state.juice[src] * cz


def exact_gain(state: ModelState, src: int, dst: int, weight: float, objective: np.ndarray) -> float:
    """The exact change of objective . juice when one link is added (warm-started re-solve)."""
    after = state.with_links(np.array([src]), np.array([dst]), np.array([weight])).solve(start=state.juice)
    return float(objective @ (after.juice - state.juice))


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    chosen: pd.DataFrame  # step, source_url, target_url, weight, predicted_gain (first order), exact_gain
    before: float
    after: float
    state: ModelState

    @property
    def total_gain(self) -> float:
        return self.after - self.before


def greedy_optimize(state: ModelState, cand_src: np.ndarray, cand_dst: np.ndarray, cand_weight: np.ndarray,
                    objective: np.ndarray, budget: int, *, max_links: int | None = None,
                    existing_links: np.ndarray | None = None) -> OptimizeResult:
    """Greedily choose `budget` candidate links that raise objective . juice the most."""
    if state.juice.size != state.n:
        state = state.solve()
    before = float(objective @ state.juice)
    available = np.ones(len(cand_src), bool)
    links_per_page = (np.bincount(state.src, minlength=state.n) if existing_links is None
                      else np.asarray(existing_links).copy())
    rows = []
    adjoint = None
    for step in range(1, budget + 1):
        if max_links is not None:
            available &= links_per_page[cand_src] < max_links
        if not available.any():
            break
        adjoint = _adjoint(state, objective, start=adjoint)
        idx = np.flatnonzero(available)
        gains = first_order_gains(state, cand_src[idx], cand_dst[idx], cand_weight[idx], objective, adjoint)
        best = idx[int(np.argmax(gains))]
        previous = float(objective @ state.juice)
        state = state.with_links(cand_src[best:best + 1], cand_dst[best:best + 1], cand_weight[best:best + 1])
        state = state.solve(start=state.juice)
        available[best] = False
        links_per_page[cand_src[best]] += 1
        rows.append({"step": step, "source_url": state.urls[cand_src[best]], "target_url": state.urls[cand_dst[best]],
                     "weight": float(cand_weight[best]), "predicted_gain": float(gains.max()),
                     "exact_gain": float(objective @ state.juice) - previous})
    return OptimizeResult(pd.DataFrame(rows, columns=["step", "source_url", "target_url", "weight",
                                                      "predicted_gain", "exact_gain"]),
                          before, float(objective @ state.juice), state)


def accounting(state: ModelState) -> pd.DataFrame:
    """Where the juice that pages pass through links goes, by reason, as shares adding up to 1."""
    carried = state.damping * state.juice[state.src] * state.shares()
    reasons = state.reason.astype(object)
    frame = pd.DataFrame({"reason": reasons, "juice": carried})
    lost_in_redirects = carried * (1 - state.pass_factor) * state.passes
    out = frame.groupby("reason", as_index=False)["juice"].sum()
    if lost_in_redirects.sum() > 0:
        out.loc[out["reason"] == "passed", "juice"] -= lost_in_redirects.sum()
        out = pd.concat([out, pd.DataFrame({"reason": ["redirect_loss"], "juice": [lost_in_redirects.sum()]})])
    total = out["juice"].sum()
    out["share"] = out["juice"] / total if total > 0 else 0.0
    return out.sort_values("juice", ascending=False, ignore_index=True)


# power_iterate is re-exported for callers that build custom states.
_ = power_iterate

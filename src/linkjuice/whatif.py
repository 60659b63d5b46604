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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .graph import to_csr
from .score import juice_iterate, power_iterate

__all__ = ["ModelState", "Transition", "first_order_term", "first_order_gains", "two_hop_gains", "greedy_optimize",
           "OptimizeResult", "accounting"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelState:
    """Everything needed to recompute the juice model in memory, without the store."""

    urls: np.ndarray
    src: np.ndarray
    dst: np.ndarray  # the page that receives (after redirects/canonicals), -1 for none
    weight: np.ndarray
    passes: np.ndarray
    pass_factor: np.ndarray
    reason: np.ndarray | pd.Categorical  # reason names ("passed", "broken", ...); a store's as a Categorical
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
        """This state plus new links (not yet re-solved). Links kept in source order stay so (the
        new ones after their source's): the compiled solve builds its layout from links in that
        order, and any other way holds a sparse matrix of them (at 200M links, past 24 GB)."""
        src, dst = np.asarray(src), np.asarray(dst)
        order = np.argsort(src, kind="stable")
        src, dst, weight = src[order], dst[order], np.asarray(weight, np.float64)[order]
        passes = dst >= 0
        passes &= self.ranked[np.where(passes, dst, 0)]
        at = np.searchsorted(self.src, src, side="right") if _by_source(self.src) else np.full(len(src), len(self.src))
        reasons = np.where(passes, reason, "non_indexable")
        if isinstance(self.reason, pd.Categorical):
            merged = _concat_reasons(self.reason, reasons)  # (the categories of both, new codes placed below)
            codes = np.insert(merged.codes[:len(self.src)], at, merged.codes[len(self.src):])
            kept_reason: np.ndarray | pd.Categorical = pd.Categorical.from_codes(codes, categories=merged.categories)
        else:
            kept_reason = np.insert(np.asarray(self.reason, dtype=object), at, reasons.astype(object))
        return replace(
            self,
            # (in the ids' own width: int32 ids widened to int64 were 3.3 GB more at 200M links)
            src=np.insert(self.src.astype(_id_type(self.src, src), copy=False), at, src),
            dst=np.insert(self.dst.astype(_id_type(self.dst, dst), copy=False), at, dst),
            weight=np.insert(np.asarray(self.weight, np.float64), at, weight),
            passes=np.insert(np.asarray(self.passes, bool), at, passes),
            pass_factor=np.insert(np.asarray(self.pass_factor, np.float64), at, np.ones(len(src))),
            reason=kept_reason,
        )

    def without(self, drop: np.ndarray) -> ModelState:
        keep = ~np.asarray(drop, bool)
        return replace(self, src=self.src[keep], dst=self.dst[keep], weight=self.weight[keep],
                       passes=self.passes[keep], pass_factor=self.pass_factor[keep], reason=self.reason[keep])


@dataclass(frozen=True, slots=True)
class Transition:
    """P = M + dangling v^T of one state, built once for many solves (at 1M pages the CSR alone
    took ~5 s to build, and each solve then costs one sparse product per iteration). Links added
    later (with_link) are kept as changes of their source's row, not built into the matrix: a
    greedy `optimize` adds one a step."""

    m: sp.csr_array  # M: each passing link's delivered share (x its pass factor); rows = sources
    dangling: np.ndarray  # 1.0 for a ranked page without links (its row of P is v)
    teleport: np.ndarray  # v
    out_weight: np.ndarray
    damping: float
    tol: float
    ranked: np.ndarray | None = None  # a link to an unranked page takes its share and passes nothing
    changes: tuple[tuple[int, np.ndarray, np.ndarray], ...] = ()  # (s, cols, values) added to row s of P

    @classmethod
    def of(cls, state: ModelState) -> Transition:
        out_weight = state.out_weight()
        src, dst = state.src, state.dst
        keep = np.asarray(state.passes, bool) & (dst >= 0)
        pass_factor = np.broadcast_to(state.pass_factor, src.shape)
        # (a lost link's share as 0, the pass factor applied)
        share = np.empty(len(src))
        for part, part_share in _shares_in_slices(state, out_weight):
            share[part] = part_share * np.where(keep[part], pass_factor[part], 0.0)
        if _by_source(src):
            # Links in source order (as a store reads them): the CSR arrays are the links
            # themselves, lost ones as zeros, with no sorted copy of them.
            index = np.int32 if max(state.n, len(src)) < 2**31 else np.int64
            indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=state.n))]).astype(index)
            m = sp.csr_array((share, np.where(keep, dst, 0).astype(index), indptr), shape=(state.n, state.n))
        else:
            m = to_csr(state.n, src[keep], dst[keep], share[keep])
        return cls(m=m, dangling=(state.ranked & (out_weight == 0)).astype(np.float64),
                   teleport=np.asarray(state.teleport, np.float64), out_weight=out_weight,
                   damping=state.damping, tol=state.tol, ranked=np.asarray(state.ranked, bool))

    def row(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Row s of P as (columns, values): its links' shares, v for a dangling page, and the
        changes made to it since."""
        if self.dangling[s]:
            cols = np.flatnonzero(self.teleport)
            parts = [(cols, self.teleport[cols])]
        else:
            lo, hi = self.m.indptr[s], self.m.indptr[s + 1]
            parts = [(self.m.indices[lo:hi].astype(np.int64), self.m.data[lo:hi])]
        parts += [(cols, vals) for page, cols, vals in self.changes if page == s]
        cols, at = np.unique(np.concatenate([c for c, _ in parts]), return_inverse=True)
        return cols, np.bincount(at, weights=np.concatenate([v for _, v in parts]), minlength=len(cols))

    def with_link(self, src: int, dst: int, weight: float) -> Transition:
        """P after a link src -> dst of `weight` is added: row s becomes (1 - a) p_s + a e_t,
        a = w / (W_s + w) (1 for a page that had no links: its row was v); to an unranked page,
        (1 - a) p_s (as ModelState.with_links: the link takes its share and passes nothing)."""
        s, t, w = int(src), int(dst), float(weight)
        cols, vals = self.row(s)
        a = w / (float(self.out_weight[s]) + w)
        out_weight = self.out_weight.copy()
        out_weight[s] += w
        passes = self.ranked is None or bool(self.ranked[t])
        change = (s, np.concatenate([[t], cols]), np.concatenate([[a if passes else 0.0], -a * vals]))
        return replace(self, out_weight=out_weight, changes=(*self.changes, change))

    def apply(self, r: np.ndarray) -> np.ndarray:
        """P r, for r of shape (n,) or (n, k)."""
        dangling = self.dangling if r.ndim == 1 else self.dangling[:, None]
        out = self.m @ r + dangling * (self.teleport @ r)
        for s, cols, vals in self.changes:
            out[s] += vals @ r[cols]
        return out

    def apply_transposed(self, x: np.ndarray) -> np.ndarray:
        """P^T x."""
        out = self.m.T @ x + self.teleport * float(self.dangling @ x)
        for s, cols, vals in self.changes:
            np.add.at(out, cols, vals * x[s])
        return out

    def adjoint(self, c: np.ndarray, start: np.ndarray | None = None, *, rtol: float = 0.0) -> np.ndarray:
        """r = G^T c, i.e. r = c + d P r, by power iteration; `c` one objective (n,) or several as
        columns (n, k), each converged to the model's tolerance (or, with `rtol`, to that share of
        its own size, when a ranking is all it is for)."""
        d = self.damping
        r = c.astype(np.float64).copy() if start is None else start.astype(np.float64).copy()
        for _ in range(10_000):
            r_new = c + d * self.apply(r)
            step = np.abs(r_new - r).sum(axis=0)
            r = r_new
            if (step < np.maximum(self.tol, rtol * np.abs(r).sum(axis=0))).all():
                break
        return r

    def link_change(self, juice: np.ndarray, src: int, dst: int, weight: float, *,
                    rtol: float = 1e-9) -> tuple[Transition, np.ndarray]:
        """P with the link src -> dst of `weight` added, and the exact change of every page's juice.

        With P' = P + e_s delta^T (delta: the change of row s), the change of the juice is
        D = x' - x = d P'^T D + d x_s delta: iterated from D = 0 it converges on its own scale
        (relative to |D|), whatever the error left in x by the model's tolerance."""
        after = self.with_link(src, dst, weight)
        s, cols, vals = after.changes[-1]
        d = self.damping
        first = np.zeros(len(juice))
        np.add.at(first, cols, d * float(juice[s]) * vals)
        change = first.copy()
        for _ in range(10_000):
            nxt = d * after.apply_transposed(change) + first
            step = np.abs(nxt - change).sum()
            change = nxt
            if step <= rtol * np.abs(change).sum() or step < 1e-300:
                break
        return after, change

    def exact_gain(self, juice: np.ndarray, src: int, dst: int, weight: float, *, rtol: float = 1e-9) -> float:
        """The exact change of page `dst`'s juice when the link src -> dst of `weight` is added."""
        return float(self.link_change(juice, src, dst, weight, rtol=rtol)[1][int(dst)])


def _by_source(src: np.ndarray) -> bool:
    """Whether links are in source order (as a store reads them)."""
    return len(src) < 2 or bool((src[1:] >= src[:-1]).all())


# Links whose shares are made at a time (_shares_in_slices): all at once, their temporaries took
# 5 GB at 200M links.
_SHARE_SLICE = 1 << 24


def _shares_in_slices(state: ModelState, out_weight: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """(slice of the links, each one's share: weight / its source's out_weight, 0 where that is 0),
    a slice of links at a time."""
    for lo in range(0, len(state.src), _SHARE_SLICE):
        part = slice(lo, lo + _SHARE_SLICE)
        total = out_weight[state.src[part]]
        yield part, np.divide(state.weight[part], total, out=np.zeros(len(total)), where=total > 0)


def _id_type(ids: np.ndarray, more: Any) -> np.dtype:
    """The dtype that holds `ids` and `more`: theirs when they fit in it."""
    more = np.asarray(more)
    if ids.dtype.kind == "i" and (not len(more) or np.iinfo(ids.dtype).min <= more.min() and more.max() <= np.iinfo(ids.dtype).max):
        return ids.dtype
    return np.dtype(np.int64)


def _concat_reasons(reasons: np.ndarray | pd.Categorical, more: np.ndarray) -> np.ndarray | pd.Categorical:
    """reasons + more, kept a Categorical when it is one (10M pages' links as Python strings: 1.65 GB)."""
    if isinstance(reasons, pd.Categorical):
        categories = list(dict.fromkeys([*reasons.categories, *pd.unique(np.asarray(more, dtype=object))]))
        codes = np.concatenate([reasons.codes, pd.Categorical(np.asarray(more, dtype=object), categories=categories).codes])
        return pd.Categorical.from_codes(codes, categories=categories)
    return np.concatenate([reasons, np.asarray(more, dtype=object)])


def _adjoint(state: ModelState, c: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """r = G^T c, i.e. r = c + d P r, by the same power iteration as the model."""
    return Transition.of(state).adjoint(c, start)


def _cells(matrix: sp.csr_array, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """matrix[rows[k], cols[k]] for each k (0 where no entry), by a sorted search of its keys."""
    coo = matrix.tocoo()
    coo.sum_duplicates()
    width = np.int64(matrix.shape[1])
    keys = coo.row.astype(np.int64) * width + coo.col
    want = np.asarray(rows, np.int64) * width + np.asarray(cols, np.int64)
    if len(keys) == 0:
        return np.zeros(len(want))
    order = np.argsort(keys)
    keys, vals = keys[order], coo.data[order]
    at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return np.where(keys[at] == want, vals[at], 0.0)


def two_hop_gains(state: ModelState, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """first_order_gains for each candidate's own target (objective e_t), with the adjoint
    r = G^T e_t = e_t + d P e_t + d^2 P^2 e_t + ... cut after two hops: r_t ~ 1 + d P_tt +
    d^2 (P^2)_tt and r_s ~ d P_st + d^2 (P^2)_st. One adjoint solve per target costs ~140 sparse
    products over every link (13 s a target at 1M pages); this reads only the links out of the
    candidates' sources and into their targets. What it leaves out is juice coming round in three
    hops or more, which shrinks by d per hop."""
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    n, d = state.n, state.damping
    out_w = state.out_weight()
    dangling = (state.ranked & (out_w == 0)).astype(np.float64)
    v = np.asarray(state.teleport, np.float64)
    targets = np.unique(dst)
    rows = np.unique(np.concatenate([src, targets]))
    live = state.passes & (state.dst >= 0)
    into = np.flatnonzero(live & np.isin(state.dst, targets))  # the links of M[:, T]
    out_of = np.flatnonzero(live & np.isin(state.src, rows))  # of M[S, :]

    def share(links: np.ndarray) -> np.ndarray:  # only these links' shares: 200M of them are 1.6 GB
        total = out_w[state.src[links]]
        return np.divide(state.weight[links], total, out=np.zeros(len(links)), where=total > 0) * \
            np.asarray(state.pass_factor)[links]

    t_col = np.searchsorted(targets, state.dst[into])
    m_t = sp.csr_array((share(into), (state.src[into], t_col)), shape=(n, len(targets)))
    m_s = sp.csr_array((share(out_of), (np.searchsorted(rows, state.src[out_of]), state.dst[out_of])),
                       shape=(len(rows), n))
    # P = M + dangling v^T, so P^2[s, t] = (M_s + dangling_s v) . (M[:, t] + dangling v_t).
    m_st = (m_s @ m_t).tocsr()
    s_dangling = m_s @ dangling
    v_m_t = v @ m_t  # (|T|,)
    v_dangling = float(v @ dangling)

    def hop(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (P[s, t], P^2[s, t])
        si, ti = np.searchsorted(rows, s), np.searchsorted(targets, t)
        one = _cells(m_t, s, ti) + dangling[s] * v[t]
        two = _cells(m_st, si, ti) + s_dangling[si] * v[t] + dangling[s] * v_m_t[ti] + dangling[s] * v_dangling * v[t]
        return one, two

    p_tt, p2_tt = hop(dst, dst)
    p_st, p2_st = hop(src, dst)
    r_t = 1.0 + d * p_tt + d * d * p2_tt
    r_s = d * p_st + d * d * p2_st
    return first_order_term(state.juice, out_w, d, src, weight, r_t, r_s, 0.0)


def first_order_term(juice: np.ndarray, out_weight: np.ndarray, damping: float, src: np.ndarray, weight: np.ndarray,
                     r_dst: np.ndarray, r_src: np.ndarray, c_src: np.ndarray | float) -> np.ndarray:
    """d x_s a (r_t - (r_s - c_s) / d), a = w / (W_s + w): the first-order gain of each candidate
    link, given the adjoint r at its two ends and the objective c at its source (module docstring)."""
    alpha = weight / (out_weight[src] + weight)
    return damping * juice[src] * alpha * (r_dst - (r_src - c_src) / damping)


def first_order_gains(state: ModelState, src: np.ndarray, dst: np.ndarray, weight: np.ndarray,
                      objective: np.ndarray, adjoint: np.ndarray | None = None) -> np.ndarray:
    """First-order change of objective . juice for each candidate link src[k] -> dst[k] alone."""
    r = _adjoint(state, objective) if adjoint is None else adjoint
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    return first_order_term(state.juice, state.out_weight(), state.damping, src, weight, r[dst], r[src], objective[src])


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    chosen: pd.DataFrame  # step, source_url, target_url, weight, predicted_gain (first order), exact_gain
    before: float
    after: float
    juice: np.ndarray  # every page's juice with the chosen links (the model with them added would be
    # every link's arrays copied: 7 GB at 200M links)

    @property
    def total_gain(self) -> float:
        return self.after - self.before


def greedy_optimize(state: ModelState, cand_src: np.ndarray, cand_dst: np.ndarray, cand_weight: np.ndarray,
                    objective: np.ndarray, budget: int, *, max_links: int | None = None,
                    existing_links: np.ndarray | None = None) -> OptimizeResult:
    """Greedily choose `budget` candidate links that raise objective . juice the most.

    The transition matrix is built once; each chosen link is a change of its source's row
    (Transition.with_link) and the juice moves by its exact change (Transition.link_change)
    instead of a new model solved from scratch (at 1M pages that took ~15 s a step)."""
    if state.juice.size != state.n:
        state = state.solve()
    before = float(objective @ state.juice)
    available = np.ones(len(cand_src), bool)
    links_per_page = (np.bincount(state.src, minlength=state.n) if existing_links is None
                      else np.asarray(existing_links).copy())
    transition = Transition.of(state)
    juice = state.juice
    d = state.damping
    rows = []
    adjoint = None
    for step in range(1, budget + 1):
        if max_links is not None:
            available &= links_per_page[cand_src] < max_links
        if not available.any():
            break
        # Only the ranking reads the adjoint: 1e-7 of its size, not the model's absolute 1e-10.
        adjoint = transition.adjoint(objective, start=adjoint, rtol=1e-7)
        idx = np.flatnonzero(available)
        src, dst = cand_src[idx], cand_dst[idx]
        gains = first_order_term(juice, transition.out_weight, d, src, cand_weight[idx], adjoint[dst], adjoint[src],
                                 objective[src])
        best = idx[int(np.argmax(gains))]
        transition, change = transition.link_change(juice, cand_src[best], cand_dst[best], cand_weight[best])
        juice = juice + change
        available[best] = False
        links_per_page[cand_src[best]] += 1
        rows.append({"step": step, "source_url": state.urls[cand_src[best]], "target_url": state.urls[cand_dst[best]],
                     "weight": float(cand_weight[best]), "predicted_gain": float(gains.max()),
                     "exact_gain": float(objective @ change)})
    return OptimizeResult(pd.DataFrame(rows, columns=["step", "source_url", "target_url", "weight",
                                                      "predicted_gain", "exact_gain"]),
                          before, float(objective @ juice), juice)


def accounting(state: ModelState) -> pd.DataFrame:
    """Where the juice that pages pass through links goes, by reason, as shares adding up to 1.
    Summed by reason code a slice of links at a time: each link's reason as a Python string,
    grouped by pandas, held 30 GB at 10M pages' links."""
    reason = state.reason if isinstance(state.reason, pd.Categorical) else pd.Categorical(state.reason)
    codes, names = np.asarray(reason.codes), list(reason.categories)
    juice = np.zeros(len(names))
    counts = np.zeros(len(names), np.int64)
    lost_in_redirects = 0.0
    pass_factor = np.broadcast_to(state.pass_factor, state.src.shape)
    for part, share in _shares_in_slices(state, state.out_weight()):
        carried = state.damping * state.juice[state.src[part]] * share
        kept = codes[part] >= 0
        juice += np.bincount(codes[part][kept], weights=carried[kept], minlength=len(names))
        counts += np.bincount(codes[part][kept], minlength=len(names))
        lost_in_redirects += float((carried * (1 - pass_factor[part]) * state.passes[part]).sum())
    listed = np.flatnonzero(counts > 0)
    out = pd.DataFrame({"reason": [names[i] for i in listed], "juice": juice[listed]})
    out = out.sort_values("reason", ignore_index=True)
    if lost_in_redirects > 0:
        out.loc[out["reason"] == "passed", "juice"] -= lost_in_redirects
        out = pd.concat([out, pd.DataFrame({"reason": ["redirect_loss"], "juice": [lost_in_redirects]})])
    total = out["juice"].sum()
    out["share"] = out["juice"] / total if total > 0 else 0.0
    return out.sort_values("juice", ascending=False, ignore_index=True)


# power_iterate is re-exported for callers that build custom states.
_ = power_iterate

"""The scoring engines: textbook PageRank and the link-juice (reasonable surfer) model.

Both are sparse power iterations (Page et al. 1999; Langville & Meyer, "Deeper Inside PageRank",
2004) written as x <- d (M^T x + (x . dangling) v) + (1 - d) v with M row-(sub)stochastic:

* classic: M = D^-1 A over unique page-to-page links, dangling mass spread uniformly, sums to 1.
* juice: M[i, j] = (weight of i's link to j) / (total weight of all of i's links). Links that pass
  nothing (nofollow, broken, external, to non-indexable pages) still take their share of the
  denominator, so their juice leaves the system: that is the "lost juice" the audit reports.
  The weights are products of documented factors (docs/model.md), not learned numbers.

Both stop when one step changes x by less than `tol` in L1. That change is the L1 residual of the
fixed-point equation, so any x that passes it is as good as any other. The juice model's slowest
error mode is the leak: where 2.4% of the juice leaves per step (the benchmark store of
benchmarks/bench_store_scale.py), the error shrinks by d x 0.976 = 0.83 per step, 104 steps to
1e-10, where classic PageRank, whose mass is conserved, needs 18. Once the change shrinks by a
steady ratio r, that mode is removed in one step, x + (x - x_prev) r / (1 - r), the tail of its
geometric series (Kamvar, Haveliwala, Manning & Golub, "Extrapolation methods for accelerating
PageRank computations", WWW 2003): 30 steps. The stopping test is unchanged and always applies
to a plain step.

Inputs are arrays; outputs are arrays. docs/model.md derives every formula with a worked example.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import scipy.sparse as sp

from .errors import ScoringError
from .graph import csr_pattern, to_csr

__all__ = ["PowerResult", "power_iterate", "iterate_matvec", "classic_pagerank", "juice_rank", "juice_iterate",
           "link_shares", "juice_score"]


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
    kernels = _compiled_kernels(transition_t.nnz)
    if kernels is not None and n < 2**32 - 1:
        mt = transition_t if transition_t.format == "csr" else sp.csr_array(transition_t)
        matrix = kernels.to_sell(mt.indptr, mt.indices, mt.data)
        return _iterate_compiled(kernels, matrix, x, damping, tol, max_iter, teleport=teleport, dangling=dangling)
    return iterate_matvec(lambda v: transition_t @ v, teleport=teleport, dangling=dangling, damping=damping,
                          tol=tol, max_iter=max_iter, start=x)


def iterate_matvec(
    matvec: Callable[[np.ndarray], np.ndarray],
    *,
    teleport: np.ndarray,
    dangling: np.ndarray,
    damping: float,
    tol: float,
    max_iter: int,
    start: np.ndarray | None = None,
) -> PowerResult:
    """The power iteration around any M^T x mat-vec (in memory, or spread over a cluster)."""
    x = teleport.copy() if start is None else start.astype(np.float64, copy=True)
    base = (1.0 - damping) * teleport
    residual = np.inf
    changes: list[tuple[float, float]] = []
    total = float(x.sum())
    for it in range(1, max_iter + 1):
        x_new = matvec(x)
        x_new += float(dangling @ x) * teleport
        x_new *= damping
        x_new += base
        residual = float(np.abs(x_new - x).sum())
        if residual < tol:
            return PowerResult(x_new, it, residual)
        total_new = float(x_new.sum())
        factor = _extrapolation(changes, residual, total_new - total)
        if factor:
            x_new += factor * (x_new - x)
            total_new = float(x_new.sum())
        x, total = x_new, total_new
    raise _no_convergence(max_iter, residual)


# The ratio of successive changes counts as steady when two ratios differ by less than this
# fraction of 1 - ratio: an error of e in the ratio leaves e / (1 - ratio) of the slow mode.
_STEADY = 1e-3


def _extrapolation(changes: list[tuple[float, float]], residual: float, mass_change: float) -> float:
    """The factor f for which x_new + f (x_new - x) removes the error's slowest mode, else 0.

    `changes` (kept by the caller) holds each step's L1 change and change of sum(x). When one
    mode with a real, positive ratio r dominates, both shrink by r at every step. A mode with a
    negative ratio (a 2-cycle of pages) shrinks the L1 change steadily too, but flips the sign
    of the sum, and extrapolating it with +|r| would push the error up instead."""
    changes.append((residual, mass_change))
    if len(changes) < 3:
        return 0.0
    (l0, s0), (l1, s1), (l2, s2) = changes[-3:]
    if l0 <= 0 or l1 <= 0 or s0 == 0 or s1 == 0:
        return 0.0
    ratio = l2 / l1
    slack = _STEADY * (1.0 - ratio)
    if not (0.0 < ratio < 1.0 and abs(ratio - l1 / l0) < slack and abs(ratio - s2 / s1) < slack
            and abs(ratio - s1 / s0) < slack):
        return 0.0
    changes.clear()  # the next ratios are measured after the jump
    return ratio / (1.0 - ratio)


def _no_convergence(max_iter: int, residual: float) -> ScoringError:
    return ScoringError(f"power iteration did not converge in {max_iter} iterations (L1 change {residual:.3g})")


# Below this many links, compiling (or loading the cached) kernels costs more than they save.
_COMPILED_MIN_LINKS = 200_000


@functools.cache
def _load_kernels() -> ModuleType | None:
    try:
        from . import _kernels
    except ImportError:  # numba is optional (the `fast` extra); scipy does the same work
        return None
    try:
        _kernels.smoke_test()
    except Exception as exc:  # a numba / llvmlite that cannot build them: scipy does the same work
        warnings.warn(f"linkjuice: compiled kernels unavailable ({type(exc).__name__}), using scipy", stacklevel=2)
        return None
    return _kernels


def _compiled_kernels(nnz: int) -> ModuleType | None:
    """The numba kernels when installed and worth it. LINKJUICE_NUMBA=0 turns them off,
    =1 uses them whatever the size (tests and benchmarks compare the two paths)."""
    choice = os.environ.get("LINKJUICE_NUMBA", "").strip()
    if choice == "0" or (choice != "1" and nnz < _COMPILED_MIN_LINKS):
        return None
    return _load_kernels()


def _iterate_compiled(
    kernels: ModuleType,
    matrix: object,
    x: np.ndarray,
    damping: float,
    tol: float,
    max_iter: int,
    *,
    teleport: np.ndarray | None = None,
    dangling: np.ndarray | None = None,
    inv_out: np.ndarray | None = None,
) -> PowerResult:
    """The power iteration of `power_iterate`, one fused kernel step per iteration, on the
    matrix in the kernels' layout (`_kernels.Sell`). Page vectors get one extra entry, 0: the
    layout's padding reads it.

    With `teleport` and `dangling` the matrix is M^T itself. Without, it is the 0/1 pattern, the
    teleport vector is uniform over the pages with `inv_out` >= 0 and `inv_out` holds
    1 / outdegree (0: dangling, -1: not a page of the graph), so that M^T x = P^T (x * inv_out)."""
    n = len(x)
    x = np.append(x, 0.0)
    x_new = np.zeros_like(x)
    if inv_out is None:
        assert teleport is not None and dangling is not None
        teleport = np.append(np.asarray(teleport, np.float64), 0.0)
        dangling = np.append(np.asarray(dangling, np.float64), 0.0)
        dm = float(dangling @ x)
    else:
        inv = np.append(inv_out, -1.0)
        t0 = 1.0 / int((inv_out >= 0).sum())
        z = x * np.maximum(inv, 0.0)
        z_new = np.zeros_like(x)
        dm = float(x[inv == 0].sum())
    residual = np.inf
    changes: list[tuple[float, float]] = []
    total = float(x.sum())
    with kernels.LOCK:  # one parallel kernel at a time per process
        for it in range(1, max_iter + 1):
            c = 1.0 - damping + damping * dm
            if inv_out is None:
                residual, dm = kernels.step_weighted(matrix, teleport, dangling, damping, c, x, x_new)
            else:
                residual, dm = kernels.step_pattern(matrix, z, inv, t0, damping, c, x, x_new, z_new)
            if residual < tol:
                return PowerResult(x_new[:n], it, residual)
            total_new = float(x_new.sum())
            factor = _extrapolation(changes, residual, total_new - total)
            if factor:  # entry n stays 0 in both
                x -= x_new
                x *= -factor
                x_new += x
                total_new = float(x_new.sum())
                if inv_out is None:
                    dm = float(dangling @ x_new)
                else:
                    np.multiply(x_new, np.maximum(inv, 0.0), out=z_new)
                    dm = float(x_new[inv == 0].sum())
            if inv_out is not None:
                z, z_new = z_new, z
            x, x_new, total = x_new, x, total_new
    raise _no_convergence(max_iter, residual)


def classic_pagerank(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    *,
    nodes: np.ndarray | None = None,
    damping: float = 0.85,
    tol: float = 1e-10,
    max_iter: int = 1000,
    start: np.ndarray | None = None,
) -> PowerResult:
    """Textbook PageRank over `nodes` (a boolean mask; default all) and their unique links.

    Self-links and duplicate links count once or not at all, links with a negative id (to no
    stored page) not at all; dangling pages' mass is spread
    uniformly over the nodes. Pages outside `nodes` score 0. Sums to 1 over the nodes.
    `start` (default: uniform) is where the iteration starts: the last scores, when scoring again.
    """
    mask = np.ones(n, bool) if nodes is None else np.asarray(nodes, bool)
    m = int(mask.sum())
    if m == 0:
        return PowerResult(np.zeros(n), 0, 0.0)
    src, dst = _integer_ids(src), _integer_ids(dst)
    kernels = _compiled_kernels(len(src))
    teleport = mask / m
    x = teleport if start is None else _start_vector(start, mask)
    stepped = 0
    if kernels is not None and start is not None and n < 2**31:
        # A warm start's first step, along the links: when the last scores still hold, no layout is built.
        first = kernels.push_pattern_step(n, src, dst, mask, teleport, x, damping)
        if first is not None:
            if first[1] < tol:
                return PowerResult(first[0], 1, first[1])
            x, stepped = first[0], 1
    # The in-link pattern (row = target, columns = its distinct linking pages): the transposed
    # transition matrix without its values, which are 1 / outdegree of the column.
    indptr = np.zeros(0, np.int64)
    if kernels is not None and n < 2**31:
        indptr, indices, outdeg_count = kernels.in_link_pattern(n, src, dst, mask)
    if len(indptr) == 0:  # no kernels, or links not sorted and distinct: filter, then sort
        keep = src != dst
        keep &= src >= 0
        keep &= dst >= 0
        if nodes is not None:
            keep &= mask[np.where(keep, src, 0)]
            keep &= mask[np.where(keep, dst, 0)]
        if not keep.all():
            src, dst = src[keep], dst[keep]
        del keep
        indptr, indices = csr_pattern(n, dst, src)
        outdeg_count = np.bincount(indices, minlength=n)
    outdeg = outdeg_count.astype(np.float64)
    del outdeg_count
    if kernels is not None and n < 2**32 - 1:  # the layout's ids are uint32
        matrix = kernels.pattern_layout(indptr, indices, outdeg == 0)
        del indptr, indices
        # 1 / outdegree, 0 for a dangling page, -1 for a page outside `nodes` (no teleport)
        inv = np.divide(1.0, outdeg, out=outdeg, where=outdeg > 0)
        inv[~mask] = -1.0
        return _after(stepped, _iterate_compiled(kernels, matrix, x, damping, tol, max_iter - stepped, inv_out=inv))
    dangling = (mask & (outdeg == 0)).astype(np.float64)
    inv = np.divide(1.0, outdeg, out=outdeg, where=outdeg > 0)  # in place: outdeg is not needed again
    mt = sp.csr_array((inv[indices], indices, indptr), shape=(n, n))
    return _after(stepped, power_iterate(mt, teleport=teleport, dangling=dangling, damping=damping, tol=tol,
                                         max_iter=max_iter - stepped, start=x))


def _after(stepped: int, result: PowerResult) -> PowerResult:
    """`result` counted with the steps taken before it."""
    return PowerResult(result.scores, result.iterations + stepped, result.residual)


def _start_vector(start: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A start for the iteration from earlier scores: NaN (no score) as 0, 0 off the graph,
    scaled to sum 1 (uniform when nothing is left)."""
    x = np.where(mask, np.nan_to_num(np.asarray(start, np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    x = np.maximum(x, 0.0)
    total = float(x.sum())
    return x / total if total > 0 else mask / max(int(mask.sum()), 1)


def _integer_ids(ids: np.ndarray) -> np.ndarray:
    """Page ids as an integer array, without copying integer input (20M links are 160 MB)."""
    ids = np.asarray(ids)
    return ids if ids.dtype.kind in "iu" else ids.astype(np.int64)


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
    pass_factor: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> tuple[PowerResult, np.ndarray]:
    """The link-juice model. Returns the result and each link's share of its source's juice.

    src/dst/weight/passes describe every (deduplicated) link of every page: `weight` is its
    product of factors, `passes` whether it delivers to `dst` (a ranked page). Only `ranked`
    pages hold juice; teleport (default: uniform over ranked pages) is where outside authority
    enters. A ranked page with no links at all is dangling: its mass re-enters via the teleport.
    `pass_factor` (default 1) is the fraction of a passing link's share that arrives (a redirect
    loss, when configured); `start` warm-starts the iteration (what-if recomputations).
    """
    result = juice_iterate(n, src, dst, weight, passes, ranked=ranked, teleport=teleport, damping=damping, tol=tol,
                           max_iter=max_iter, pass_factor=pass_factor, start=start)
    src = _integer_ids(np.asarray(src))
    return result, link_shares(src, weight, np.bincount(src, weights=weight, minlength=n))  # the matrix is gone


def link_shares(src: np.ndarray, weight: np.ndarray, out_weight: np.ndarray) -> np.ndarray:
    """Each link's share of its source's juice: weight / out_weight[src] (0 where that is 0), with
    out_weight the total weight of each page's links (any chunk of the links at a time)."""
    weight = np.asarray(weight, np.float64)
    source_weight = out_weight[_integer_ids(np.asarray(src))]
    return np.divide(weight, source_weight, out=np.zeros(len(weight)), where=source_weight > 0)


def juice_iterate(
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
    pass_factor: np.ndarray | None = None,
    start: np.ndarray | None = None,
    out_weight: np.ndarray | None = None,
) -> PowerResult:
    """juice_rank's result without the shares (link_shares gives them): no per-link float array
    is held beside the matrix. `out_weight` (each page's total link weight) is computed unless given."""
    ranked = np.asarray(ranked, bool)
    src = _integer_ids(np.asarray(src))  # int32 ids stay int32: a big site's links are many
    dst = _integer_ids(np.asarray(dst))
    weight = np.asarray(weight, np.float64)
    if teleport is None:
        m = int(ranked.sum())
        teleport = ranked / m if m else np.zeros(n)
    else:
        teleport = np.where(ranked, teleport, 0.0)
        total = teleport.sum()
        if total <= 0:
            raise ScoringError("the teleport vector has no mass on ranked pages")
        teleport = teleport / total
    if out_weight is None:
        out_weight = np.bincount(src, weights=weight, minlength=n)
    dangling = (ranked & (out_weight == 0)).astype(np.float64)
    scaled = pass_factor is not None and not _all_ones(pass_factor)
    stepped = 0
    if start is not None and n < 2**31 and (kernels := _compiled_kernels(len(src))) is not None:
        # A warm start's first step, along the links: when the last scores still hold, no layout is built.
        start, change = kernels.push_weighted_step(
            n, src, dst, weight, out_weight, np.asarray(pass_factor, np.float64) if scaled else np.zeros(0),
            np.asarray(passes, bool), ranked, teleport, start, damping)
        if change < tol:
            return PowerResult(start, 1, change)
        stepped = 1
    passes = _passing(np.asarray(passes, bool), src, dst, ranked)
    kernels = _compiled_kernels(int(passes.sum()))  # power_iterate's rule, on the links that pass
    if kernels is not None and n < 2**31:
        # The iteration layout straight from the links (sorted by source, as the store keeps
        # them): no filtered copies, no COO or CSR matrix in between.
        factor = np.asarray(pass_factor, np.float64) if scaled else np.zeros(0)
        matrix = kernels.sell_from_links(n, src, dst, weight, out_weight, factor, passes)
        del factor
        if matrix is not None:
            del passes
            x = teleport if start is None else np.asarray(start, np.float64)
            return _after(stepped, _iterate_compiled(kernels, matrix, x, damping, tol, max_iter - stepped,
                                                     teleport=teleport, dangling=dangling))
    delivered = link_shares(src, weight, out_weight)[passes]
    del out_weight
    if scaled:
        delivered *= np.asarray(pass_factor, np.float64)[passes]
    mt = to_csr(n, dst[passes], src[passes], delivered)
    del delivered
    return _after(stepped, power_iterate(mt, teleport=teleport, dangling=dangling, damping=damping, tol=tol,
                                         max_iter=max_iter - stepped, start=start))


# Links are checked this many at a time: the temporaries stay small (a big site's links are many).
_PASS_CHUNK = 1 << 22


def _passing(passes: np.ndarray, src: np.ndarray, dst: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """Whether each link passes juice: it is marked so and links two ranked pages (a copy)."""
    out = np.empty(len(passes), bool)
    for lo in range(0, len(passes), _PASS_CHUNK):
        part = slice(lo, lo + _PASS_CHUNK)
        d = dst[part]
        known = d >= 0
        np.logical_and(passes[part], known, out=out[part])
        out[part] &= ranked[np.where(known, d, 0)]
        out[part] &= ranked[src[part]]
    return out


def _all_ones(values: np.ndarray) -> bool:
    """Whether a factor array is 1 everywhere (a broadcast 1.0 is answered without reading it)."""
    values = np.asarray(values)
    if values.ndim == 1 and values.strides == (0,) and len(values):
        return bool(values[0] == 1.0)
    return bool(np.all(values == 1.0))


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

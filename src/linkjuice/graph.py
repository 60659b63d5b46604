"""Edge arrays to sparse matrices, and graph walks that need no scores (click depth).

Compute modules take numpy arrays; they never touch the store, the crawler or the network.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

__all__ = ["to_csr", "click_depths", "unique_edges"]


def to_csr(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray | None = None,
           *, dtype: type = np.float64) -> sp.csr_array:
    """An n x n CSR matrix with entry (src, dst) = sum of the weights of those edges."""
    data = np.ones(len(src), dtype=dtype) if weight is None else np.asarray(weight, dtype=dtype)
    m = sp.coo_array((data, (np.asarray(src, np.int64), np.asarray(dst, np.int64))), shape=(n, n))
    out = m.tocsr()
    out.sum_duplicates()
    return out


def unique_edges(n: int, src: np.ndarray, dst: np.ndarray, *, drop_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (src, dst) pairs, self-links removed unless asked otherwise."""
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    keep = (src >= 0) & (dst >= 0)
    if drop_self:
        keep &= src != dst
    key = np.unique(src[keep] * n + dst[keep])
    return key // n, key % n


def click_depths(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    start: int,
    *,
    free_src: np.ndarray | None = None,
    free_dst: np.ndarray | None = None,
) -> np.ndarray:
    """Fewest clicks from `start` to every page; -1 where unreachable.

    `free_src -> free_dst` are steps that cost no click (redirect hops): they get a tiny weight,
    so a shortest-path search counts clicks exactly and rounding removes the tiny part.
    """
    if n == 0 or start < 0:
        return np.full(n, -1, dtype=np.int32)
    s, d = unique_edges(n, src, dst)
    if free_src is not None and free_dst is not None and len(free_src):
        fs, fd = unique_edges(n, free_src, free_dst)
        s, d = np.concatenate([s, fs]), np.concatenate([d, fd])
        w = np.concatenate([np.ones(len(s) - len(fs)), np.full(len(fs), 1e-6)])
        dist = shortest_path(to_csr(n, s, d, w), directed=True, indices=start)
        dist = np.round(dist)
    else:
        dist = shortest_path(to_csr(n, s, d), directed=True, unweighted=True, indices=start)
    out = np.where(np.isfinite(dist), dist, -1)
    return out.astype(np.int32)

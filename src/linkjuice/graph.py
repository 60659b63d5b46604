"""Edge arrays to sparse matrices, and graph walks that need no scores (click depth).

Compute modules take numpy arrays; they never touch the store, the crawler or the network.

Matrices are built with scipy's COO -> CSR conversion, a counting sort in C++ that is linear in
the number of links; edges that arrive sorted (as the store returns them) come out canonical,
so removing duplicates costs one check. Index arrays are kept as given (int32 stays int32: 20M
links are 80 MB, not 160), and np.unique is avoided: numpy 2.3+ runs it through a hash table that
is ~60x slower than a sort on 20M int64 keys (benchmarks/bench_score.py, docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

__all__ = ["to_csr", "csr_pattern", "click_depths", "unique_edges"]


def _ids(ids: np.ndarray) -> np.ndarray:
    """Node ids as an integer array, without copying integer input."""
    ids = np.asarray(ids)
    return ids if ids.dtype.kind in "iu" else ids.astype(np.int64)


def to_csr(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray | None = None,
           *, dtype: type = np.float64) -> sp.csr_array:
    """An n x n CSR matrix with entry (src, dst) = sum of the weights of those edges."""
    data = np.ones(len(src), dtype=dtype) if weight is None else np.asarray(weight, dtype=dtype)
    out = sp.coo_array((data, (_ids(src), _ids(dst))), shape=(n, n)).tocsr()
    out.sum_duplicates()
    return out


def csr_pattern(n: int, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of the n x n 0/1 matrix of the distinct (row, col) pairs, columns sorted
    within each row. No values: an unweighted mat-vec only needs the pattern."""
    ones = np.ones(len(rows), np.int8)  # values are dropped; 1 byte each while building
    out = sp.coo_array((ones, (_ids(rows), _ids(cols))), shape=(n, n)).tocsr()
    out.sum_duplicates()  # merges repeated pairs (their summed value is irrelevant)
    return out.indptr, out.indices


def unique_edges(n: int, src: np.ndarray, dst: np.ndarray, *, drop_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (src, dst) pairs, sorted, self-links removed unless asked otherwise."""
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    keep = (src >= 0) & (dst >= 0)
    if drop_self:
        keep &= src != dst
    if not keep.all():
        src, dst = src[keep], dst[keep]
    del keep
    indptr, cols = csr_pattern(n, src, dst)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    return rows, cols.astype(np.int64)


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

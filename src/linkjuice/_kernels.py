"""Compiled inner loops of the power iteration (optional: needs numba, the `fast` extra).

One fused, multi-threaded pass per iteration does what the scipy path does in five (mat-vec,
dangling dot product, damping update, L1 change, and for classic PageRank x / outdegree). The
classic kernel reads only the 0/1 pattern of the in-link matrix: x / outdegree is formed once
per page, so no per-link float is stored or read (12 -> 4 bytes per link).

Rows are handed to threads in blocks of about equal link counts, because a web graph's in-degree
is power-law distributed (a home page can hold a third of all links). Index arrays are read as
unsigned so numba need not check for negative (wrap-around) indices on every gather.

Threads: unless NUMBA_THREADING_LAYER says otherwise, numba picks a fork-safe layer (GNU OpenMP
aborts a forked child that runs a parallel kernel after its parent did), and callers hold `LOCK`
while a parallel kernel runs (the fork-safe `workqueue` layer is not thread-safe). Both layers
ran equally fast here.
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import get_num_threads, njit, prange

__all__ = ["LOCK", "in_link_pattern", "row_blocks", "step_pattern", "step_weighted"]

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"
LOCK = threading.Lock()


def row_blocks(indptr: np.ndarray) -> np.ndarray:
    """Row boundaries splitting the rows into blocks of about equal link counts."""
    n = len(indptr) - 1
    blocks = max(1, 8 * get_num_threads())
    bounds = np.searchsorted(indptr, np.linspace(0, int(indptr[-1]), blocks + 1)).astype(np.int64)
    bounds[0], bounds[-1] = 0, n
    return np.unique(np.minimum(bounds, n))


@njit(parallel=True, cache=True, nogil=True)
def step_pattern(bounds, indptr, indices, z, inv_out, teleport, dangling, damping, c, x, x_new, z_new):  # pragma: no cover
    """x_new = damping * P^T z + c * teleport with P the 0/1 pattern and z = x / outdegree.

    Writes x_new and z_new = x_new / outdegree; returns (L1 change, dangling . x_new)."""
    diff = 0.0
    dm = 0.0
    for b in prange(len(bounds) - 1):
        for i in range(bounds[b], bounds[b + 1]):
            acc0 = 0.0
            acc1 = 0.0
            k = indptr[i]
            end = indptr[i + 1]
            while k + 1 < end:  # two sums: half the floating-point add latency chain
                acc0 += z[indices[k]]
                acc1 += z[indices[k + 1]]
                k += 2
            if k < end:
                acc0 += z[indices[k]]
            v = damping * (acc0 + acc1) + c * teleport[i]
            diff += abs(v - x[i])
            x_new[i] = v
            z_new[i] = v * inv_out[i]
            dm += dangling[i] * v
    return diff, dm


@njit(parallel=True, cache=True, nogil=True)
def step_weighted(bounds, indptr, indices, data, teleport, dangling, damping, c, x, x_new):  # pragma: no cover
    """x_new = damping * M^T x + c * teleport; returns (L1 change, dangling . x_new)."""
    diff = 0.0
    dm = 0.0
    for b in prange(len(bounds) - 1):
        for i in range(bounds[b], bounds[b + 1]):
            acc0 = 0.0
            acc1 = 0.0
            k = indptr[i]
            end = indptr[i + 1]
            while k + 1 < end:
                acc0 += data[k] * x[indices[k]]
                acc1 += data[k + 1] * x[indices[k + 1]]
                k += 2
            if k < end:
                acc0 += data[k] * x[indices[k]]
            v = damping * (acc0 + acc1) + c * teleport[i]
            diff += abs(v - x[i])
            x_new[i] = v
            dm += dangling[i] * v
    return diff, dm


@njit(cache=True, nogil=True)
def in_link_pattern(n, src, dst, mask):  # pragma: no cover
    """The in-link pattern of links (src -> dst) between pages in `mask`, self-links dropped,
    by a counting sort: (indptr, indices, outdegree), or empty arrays when the links are not
    sorted by (src, dst) without repeats (the caller then sorts them another way).

    Two passes over the links instead of a sort: links read from the store arrive sorted and
    distinct, and a stable counting sort by target then leaves each row's sources sorted."""
    m = len(src)
    indptr = np.zeros(n + 1, np.int64)
    outdeg = np.zeros(n, np.int64)
    prev_s = -1
    prev_d = -1
    for k in range(m):
        s = src[k]
        d = dst[k]
        if s == d or s < 0 or d < 0 or not mask[s] or not mask[d]:
            continue
        if s < prev_s or (s == prev_s and d <= prev_d):
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
        prev_s = s
        prev_d = d
        indptr[d + 1] += 1
        outdeg[s] += 1
    for i in range(n):
        indptr[i + 1] += indptr[i]
    fill = indptr[:-1].copy()
    indices = np.empty(indptr[n], np.int32)
    for k in range(m):
        s = src[k]
        d = dst[k]
        if s == d or s < 0 or d < 0 or not mask[s] or not mask[d]:
            continue
        indices[fill[d]] = s
        fill[d] += 1
    return indptr, indices, outdeg

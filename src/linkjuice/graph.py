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

__all__ = ["to_csr", "csr_pattern", "click_depths"]


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

    `free_src -> free_dst` are steps that cost no click (redirect hops). A breadth-first search
    level by level over the links' 0/1 pattern (int32, no per-link values): each level is closed
    under the free steps, then its pages' links give the next level, all with array operations.
    """
    depth = np.full(n, -1, dtype=np.int32)
    if n == 0 or start < 0:
        return depth
    links = _pattern_without_self(n, src, dst)
    free = _pattern_without_self(n, free_src, free_dst) if free_src is not None and free_dst is not None \
        and len(free_src) else None
    frontier = np.array([start], dtype=np.int64)
    level = 0
    while len(frontier):
        depth[frontier] = level
        if free is not None:  # pages one or more free steps away are at the same depth
            reached = frontier
            while len(reached):
                reached = _unvisited(_neighbours(free, reached), depth)
                depth[reached] = level
                frontier = np.concatenate([frontier, reached])
        frontier = _unvisited(_neighbours(links, frontier), depth)
        level += 1
    return depth


def _pattern_without_self(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    src, dst = _ids(src), _ids(dst)
    keep = (src >= 0) & (dst >= 0) & (src != dst)
    if not keep.all():
        src, dst = src[keep], dst[keep]
    del keep
    if _sorted_distinct(src, dst):
        # Already in CSR order (link_pairs is stored sorted by source, then target): the targets
        # are the pattern's indices as they are, with no copy of every link.
        return np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]), dst
    return csr_pattern(n, src, dst)


def _sorted_distinct(rows: np.ndarray, cols: np.ndarray, chunk: int = 1 << 22) -> bool:
    """Whether (rows, cols) are strictly increasing pairs, checked in chunks (bounded memory)."""
    for start in range(0, max(len(rows) - 1, 0), chunk):
        r, c = rows[start:start + chunk + 1], cols[start:start + chunk + 1]
        step_r, step_c = r[1:] > r[:-1], r[1:] == r[:-1]
        if not (step_r | (step_c & (c[1:] > c[:-1]))).all():
            return False
    return True


def _neighbours(pattern: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Every column of the given rows (with repeats): ranges of `indices` gathered at once."""
    indptr, indices = pattern
    begin, end = indptr[rows], indptr[rows + 1]
    sizes = end - begin
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # position k of the output reads indices[begin[row of k] + (k - first k of that row)]
    offsets = np.repeat(begin - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return indices[np.arange(total, dtype=np.int64) + offsets]


def _unvisited(pages: np.ndarray, depth: np.ndarray) -> np.ndarray:
    pages = pages[depth[pages] < 0]
    if len(pages) < 2:
        return pages.astype(np.int64)
    pages = np.sort(pages)  # a sort, not np.unique (see the module docstring)
    return pages[np.concatenate([[True], pages[1:] != pages[:-1]])].astype(np.int64)

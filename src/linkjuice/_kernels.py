"""Compiled inner loops of the power iteration (optional: needs numba, the `fast` extra).

One fused, multi-threaded pass per iteration does what the scipy path does in five (mat-vec,
dangling dot product, damping update, L1 change, and for classic PageRank x / outdegree). The
classic kernel reads only the 0/1 pattern of the in-link matrix: x / outdegree is formed once
per page, so no per-link float is stored or read.

The matrix is not iterated as CSR but in a layout built once per graph (docs/benchmarks.md
"Scoring" has the measurements that chose it). The juice model's (`Sell`):

* Short rows (at most LONG_MIN links; all but a few hundred pages) in SELL-8-sigma: within each
  window of WINDOW consecutive rows, rows are ordered by length; each chunk of 8 rows stores its
  links column-major (link j of the 8 rows side by side), padded to the chunk's longest row with
  a dummy source whose value is 0. The 8 rows are summed together with 8 independent sums, so
  the loop has no branch per row (in CSR, each row end is a mispredicted branch: 1M rows of ~20
  links) and 8 gathers in flight. Each row is still summed in its own link order with one sum,
  as scipy does. The window keeps link locality (a row's sources stay where they were) and the
  padding small (1.1% on the benchmark graph).
* Long rows (the home page, the hubs of the site template: a third of all links in a few hundred
  rows) are summed in stripes of STRIPE sources, every long row's part of one stripe while that
  stripe of x is in L2; a row's partial sums are added in stripe order. Row by row, each long
  row would stream the whole vector from L3 again.

Classic PageRank's (`Pattern`) splits the links by where their source lies: a short row's links
from sources within NEAR ids (the site's own section) in SELL-8 as above, as 16-bit offsets and
without prefetching (z is in L1 there); its other links in tiles of 64k rows x 64k sources sorted
by source; the long rows' links per stripe in source order, added into per-stripe sums that stay
in L1. Each part sums a row's links in ascending source order; a row's value is the sum of its
parts (far, then near), which differs from scipy's link order by rounding only (about 1e-15
relative on the benchmark graph).

The juice model's layout is built straight from the links as the store keeps them (sorted by
source; `sell_from_links`): two passes over the links, no CSR matrix beside it. The section flow
matrix is counted one from-section at a time (`section_cells`), in memory of one row of cells.

Index arrays are unsigned so numba need not check for negative (wrap-around) indices on every
gather. All page vectors carry one extra entry at index n: the dummy row and source, always 0.

Threads: unless NUMBA_THREADING_LAYER says otherwise, numba picks a fork-safe layer (GNU OpenMP
aborts a forked child that runs a parallel kernel after its parent did), and callers hold `LOCK`
while a parallel kernel runs (the fork-safe `workqueue` layer is not thread-safe). Both layers
ran equally fast here.
"""

from __future__ import annotations

import os
import threading
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LOCK", "Sell", "Pattern", "pattern_layout", "for_threads", "in_link_pattern", "to_sell", "sell_from_links",
           "section_cells", "source_ptr", "link_counts", "source_weights", "push_pattern_step", "push_weighted_step",
           "step_pattern", "step_weighted", "pair_dots", "FLOW_PAGE", "flow_sums", "pair_juice", "HashTable",
           "hash_table", "hash_codes", "ascii_words", "ascii_normalized", "string_bytes", "smoke_test"]

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"
LOCK = threading.Lock()

LANES = 8  # rows summed side by side (the njit kernels below spell out 8 sums)
WINDOW = 512  # rows are ordered by length within windows of this many rows
LONG_MIN = 2048  # rows with more links than this are summed stripe by stripe
STRIPE = 65536  # sources per stripe: 512 KB of float64, inside a 1.25 MB L2
PREFETCH = 32  # columns of a chunk ahead whose sources are prefetched (8 links each)
_1, _2, _3, _4, _5, _6, _7, _8 = (np.uint64(i) for i in range(1, 9))  # unsigned offsets
_AHEAD = np.uint64(8 * PREFETCH)
# Passes over the links (sorted by source) that touch each link's target's entries in page-sized
# arrays miss the caches on nearly every link: the entries of the link LINKS_AHEAD ahead are
# prefetched and, where the slot an entry points to is touched too, that slot SLOTS_AHEAD ahead
# (reading the entry prefetched before). At 10M pages the relevance's pair_dots took 4.4 ->
# 1.1 s, in_link_pattern 3.9 -> 2.6 s, the juice layout's fill 4.2-7.6 -> 3.2 s.
LINKS_AHEAD = 128
SLOTS_AHEAD = 64


@njit(inline="always")
def _target_ahead(dst, k, lo, hi):  # pragma: no cover
    """dst[k] when k is a link and its target is in lo:hi, else -1."""
    if k < len(dst):
        d = dst[k]
        if lo <= d < hi:
            return d
    return -1


@intrinsic
def _prefetch(typingctx, array, index):  # pragma: no cover
    """Hint the CPU to load array[index] into the caches (llvm.prefetch: read, keep, data).
    The random far-away sources of a web graph miss L2; issued PREFETCH columns ahead, their
    loads overlap: 16% less time per iteration on the benchmark graph, 1 thread."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]], wraparound=False)
        i8p = ir.PointerType(ir.IntType(8))
        name = "llvm.prefetch.p0" if str(i8p) == "ptr" else "llvm.prefetch.p0i8"  # opaque pointers or not
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [i8p, ir.IntType(32), ir.IntType(32), ir.IntType(32)]), name)
        i32 = ir.IntType(32)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(array, index), codegen


@njit(inline="always")
def _prefetch8(a, idx, p):  # pragma: no cover
    _prefetch(a, idx[p])
    _prefetch(a, idx[p + _1])
    _prefetch(a, idx[p + _2])
    _prefetch(a, idx[p + _3])
    _prefetch(a, idx[p + _4])
    _prefetch(a, idx[p + _5])
    _prefetch(a, idx[p + _6])
    _prefetch(a, idx[p + _7])


class Sell(NamedTuple):
    """The transposed transition matrix (or its 0/1 pattern) in the iteration layout."""

    n: int
    cptr: np.ndarray  # uint64, chunk c's links are idx[cptr[c]:cptr[c + 1]], 8 per column
    idx: np.ndarray  # uint32 sources, column-major per chunk; n = padding
    data: np.ndarray  # float64 values beside idx (empty for a pattern)
    rows: np.ndarray  # uint32 row of each lane of each chunk; n = padding
    blocks: np.ndarray  # int64 chunk boundaries of the parallel blocks (about equal link counts)
    long_rows: np.ndarray  # uint32
    long_cut: np.ndarray  # int64 (stripes + 1, long rows): where each long row's stripe starts in long_idx
    long_idx: np.ndarray  # uint32 sources of the long rows, row by row, sorted
    long_data: np.ndarray  # float64 values beside long_idx (empty for a pattern)
    part: np.ndarray  # float64 (stripes, long rows) scratch: partial sums
    sums: np.ndarray  # float64 scratch: the sum of each lane of each chunk

    def nbytes(self) -> int:
        """Bytes of the matrix that one iteration reads."""
        return sum(a.nbytes for a in (self.cptr, self.idx, self.data, self.rows, self.long_cut,
                                      self.long_idx, self.long_data, self.long_rows))


def to_sell(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None = None) -> Sell:
    """The iteration layout of a CSR matrix (columns sorted within rows), n < 2**32 - 1."""
    n = len(indptr) - 1
    values = np.zeros(0) if data is None else np.ascontiguousarray(data, np.float64)
    with LOCK:  # the build runs parallel loops too
        built = _sell_build(np.asarray(indptr, np.int64), indices, values, data is not None, LONG_MIN, WINDOW, STRIPE)
    return _sell(n, *built)


def sell_from_links(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, out_weight: np.ndarray,
                    factor: np.ndarray, passes: np.ndarray) -> Sell | None:
    """The layout of M^T, the juice model's transposed transition matrix, built from the links
    themselves: row = target, columns = its sources, values = weight / out_weight[source] (times
    `factor`, unless empty) over the links that pass, repeated (source, target) pairs summed in
    link order. The same arrays as to_sell of scipy's CSR of it (COO -> CSR, sum_duplicates), with
    no matrix in between: one pass counts each target's distinct sources, one writes each link
    into its slot. None when the links are not sorted by source (the caller builds it another way)."""
    with LOCK:  # parallel kernels
        deg = _distinct_in_degrees(n, src, dst, passes, target_cuts(n))
        if len(deg) != n:
            return None
        rows, cptr, long_rows, start, nlong_links = _sell_layout(deg, deg > LONG_MIN, WINDOW)
        idx, vals, long_idx, long_vals = _sell_fill_links(n, src, dst, weight, out_weight, factor, passes, deg, cptr,
                                                          start, LONG_MIN, nlong_links, target_cuts(n, deg))
    long_cut = _long_cuts(long_rows, start, deg, long_idx, n, STRIPE)
    return _sell(n, cptr.view(np.uint64), idx, vals, rows, long_rows, long_cut, long_idx, long_vals)


def target_cuts(n: int, deg: np.ndarray | None = None) -> np.ndarray:
    """Target (row) ranges, one per thread, that the link-scanning builds split their writes by:
    of about equal links when each row's count (`deg`) is known, else of equal size."""
    parts = get_num_threads()
    if deg is None or n == 0:
        return (np.arange(parts + 1, dtype=np.int64) * n) // parts
    return np.append(np.searchsorted(np.cumsum(deg), np.linspace(0, int(deg.sum()), parts + 1)[:-1]), n)


def _sell(n: int, cptr: np.ndarray, idx: np.ndarray, vals: np.ndarray, rows: np.ndarray, long_rows: np.ndarray,
          long_cut: np.ndarray, long_idx: np.ndarray, long_vals: np.ndarray) -> Sell:
    bounds = np.searchsorted(cptr, np.linspace(0, int(cptr[-1]), 8 * get_num_threads() + 1))
    nch = len(cptr) - 1
    blocks = np.unique(np.minimum(bounds.astype(np.int64), nch))
    blocks[0], blocks[-1] = 0, nch
    part = np.zeros((long_cut.shape[0] - 1, len(long_rows)))
    return Sell(n, cptr, idx, vals, rows, blocks, long_rows, long_cut, long_idx, long_vals, part, np.zeros(len(rows)))


@njit(parallel=True, cache=True, nogil=True)
def _sell_layout(deg, is_long, window):  # pragma: no cover
    """Where each row's links go, from the rows' lengths: long rows (is_long)
    one after another in long_idx, short rows ordered by length (longest first) within windows
    of rows, then in chunks of LANES (deg: a row's links in that part). Returns (rows: the row of
    each lane of each chunk, n for padding; cptr; long_rows; start: the slot of each row's first
    link, in long_idx for a long row, else in idx, its next links every 8 slots; links in long
    rows)."""
    n = len(deg)
    nlong = 0
    nlong_links = 0
    for i in range(n):
        if is_long[i]:
            nlong += 1
            nlong_links += deg[i]
    long_rows = np.empty(nlong, np.uint32)
    short = np.empty(n - nlong, np.int64)
    start = np.empty(n, np.int64)
    a = 0
    b = 0
    pos = 0
    for i in range(n):
        if is_long[i]:
            long_rows[a] = i
            start[i] = pos
            pos += deg[i]
            a += 1
        else:
            short[b] = i
            b += 1
    ns = len(short)
    nch = (ns + 7) // 8
    rows = np.full(nch * 8, n, np.uint32)
    sdeg = np.empty(ns, np.int64)
    for t in range(ns):
        sdeg[t] = deg[short[t]]
    for wi in prange((ns + window - 1) // window):
        w0 = wi * window
        w1 = min(w0 + window, ns)
        order = np.argsort(-sdeg[w0:w1], kind="mergesort")
        for t in range(w1 - w0):
            rows[w0 + t] = short[w0 + order[t]]
    cptr = np.zeros(nch + 1, np.int64)
    for c in range(nch):
        w = 0
        for r in range(8):
            row = rows[c * 8 + r]
            if row < n:
                w = max(w, deg[row])
        cptr[c + 1] = cptr[c] + w * 8
    for c in prange(nch):
        for r in range(8):
            row = rows[c * 8 + r]
            if row < n:
                start[row] = cptr[c] + r
    return rows, cptr, long_rows, start, nlong_links


@njit(cache=True, nogil=True)
def _long_cuts(long_rows, start, deg, long_idx, n, stripe):  # pragma: no cover
    """(stripes + 1, long rows): where each long row's links from each stripe of sources start
    in long_idx (a row's sources are sorted)."""
    nst = max(1, (n + stripe - 1) // stripe)
    long_cut = np.empty((nst + 1, len(long_rows)), np.int64)
    for h in range(len(long_rows)):
        s0 = start[long_rows[h]]
        s1 = s0 + deg[long_rows[h]]
        k = s0
        for s in range(nst):
            while k < s1 and long_idx[k] < s * stripe:
                k += 1
            long_cut[s, h] = k
        long_cut[nst, h] = s1
    return long_cut


@njit(parallel=True, cache=True, nogil=True)
def _sell_build(indptr, indices, data, weighted, long_min, window, stripe):  # pragma: no cover
    n = len(indptr) - 1
    deg = np.empty(n, np.int64)
    for i in range(n):
        deg[i] = indptr[i + 1] - indptr[i]
    rows, cptr, long_rows, start, nlong_links = _sell_layout(deg, deg > long_min, window)
    # long rows: their links copied out
    long_idx = np.empty(nlong_links, np.uint32)
    long_vals = np.empty(nlong_links if weighted else 0, np.float64)
    for h in range(len(long_rows)):
        row = long_rows[h]
        pos = start[row]
        for k in range(indptr[row], indptr[row + 1]):
            long_idx[pos] = indices[k]
            if weighted:
                long_vals[pos] = data[k]
            pos += 1
    long_cut = _long_cuts(long_rows, start, deg, long_idx, n, stripe)
    nch = len(cptr) - 1
    idx = np.empty(cptr[nch], np.uint32)
    vals = np.empty(cptr[nch] if weighted else 0, np.float64)
    for c in prange(nch):
        base = cptr[c]
        w = (cptr[c + 1] - base) // 8
        for r in range(8):
            row = rows[c * 8 + r]
            d = 0
            if row < n:
                s = indptr[row]
                d = indptr[row + 1] - s
                for j in range(d):
                    idx[base + j * 8 + r] = indices[s + j]
                    if weighted:
                        vals[base + j * 8 + r] = data[s + j]
            for j in range(d, w):
                idx[base + j * 8 + r] = n
                if weighted:
                    vals[base + j * 8 + r] = 0.0
    return cptr.view(np.uint64), idx, vals, rows, long_rows, long_cut, long_idx, long_vals


@njit(parallel=True, cache=True, nogil=True)
def _distinct_in_degrees(n, src, dst, passes, cuts):  # pragma: no cover
    """Per target, its distinct sources among the passing links; empty when the links are not
    sorted by source. Part p counts the targets cuts[p]:cuts[p + 1] (see `target_cuts`)."""
    deg = np.zeros(n, np.int64)
    last = np.full(n, -1, np.int32)
    parts = len(cuts) - 1
    ok = np.ones(parts, np.bool_)
    for part in prange(parts):
        lo = cuts[part]
        hi = cuts[part + 1]
        prev = -1
        for k in range(len(src)):
            ahead = _target_ahead(dst, k + LINKS_AHEAD, lo, hi)
            if ahead >= 0:
                _prefetch(last, ahead)
                _prefetch(deg, ahead)
            if passes[k]:
                d = dst[k]
                if d < lo or d >= hi:
                    continue
                s = src[k]
                if s < prev:
                    ok[part] = False
                    break
                prev = s
                if last[d] != s:
                    last[d] = s
                    deg[d] += 1
    for part in range(parts):
        if not ok[part]:
            return np.zeros(0, np.int64)
    return deg


@njit(parallel=True, cache=True, nogil=True)
def _sell_fill_links(n, src, dst, weight, out_weight, factor, passes, deg, cptr, start, long_min,
                     nlong_links, cuts):  # pragma: no cover
    """Each passing link's share written into its row's next slot (repeated pairs summed in link
    order, as scipy's sum_duplicates does); padding is source n with value 0. Part p writes the
    rows cuts[p]:cuts[p + 1]: every part reads all links, but writes (the cost: cache misses)
    are split between the threads and each part's land in its own share of the arrays.

    One page-sized array is touched per link, `nxt`: 2 x the row's next slot, + 1 once the row
    has a link, negated (-1 - that) for a long row. A repeated pair is found at the row's
    previous slot, beside the one written. The targets are random, so on a 3M-page site each
    page-sized array read per link is a cache miss: with four of them the build took 7.7-9.4 s
    for 62M links, with one 5.9 s."""
    nslots = cptr[len(cptr) - 1]
    idx = np.full(nslots, n, np.uint32)
    vals = np.zeros(nslots, np.float64)
    long_idx = np.empty(nlong_links, np.uint32)
    long_vals = np.empty(nlong_links, np.float64)
    nxt = np.empty(n, np.int64)
    for i in range(n):
        nxt[i] = -1 - 2 * start[i] if deg[i] > long_min else 2 * start[i]
    scaled = len(factor) > 0
    for part in prange(len(cuts) - 1):
        lo = cuts[part]
        hi = cuts[part + 1]
        for k in range(len(src)):
            ahead = _target_ahead(dst, k + LINKS_AHEAD, lo, hi)
            if ahead >= 0:
                _prefetch(nxt, ahead)
            ahead = _target_ahead(dst, k + SLOTS_AHEAD, lo, hi)
            if ahead >= 0 and nxt[ahead] >= 0:  # a short row's next slot (a long row's are in order)
                _prefetch(idx, nxt[ahead] >> 1)
                _prefetch(vals, nxt[ahead] >> 1)
            if not passes[k]:
                continue
            d = dst[k]
            if d < lo or d >= hi:
                continue
            s = src[k]
            total = out_weight[s]
            v = weight[k] / total if total > 0 else 0.0
            if scaled:
                v *= factor[k]
            code = nxt[d]
            if code >= 0:
                p = code >> 1
                if code & 1 and idx[p - 8] == s:
                    vals[p - 8] += v
                else:
                    idx[p] = s
                    vals[p] = v
                    nxt[d] = 2 * (p + 8) + 1
            else:
                code = -1 - code
                p = code >> 1
                if code & 1 and long_idx[p - 1] == s:
                    long_vals[p - 1] += v
                else:
                    long_idx[p] = s
                    long_vals[p] = v
                    nxt[d] = -1 - (2 * (p + 1) + 1)
    return idx, vals, long_idx, long_vals


@njit(inline="always")
def _store8(out, o, a0, a1, a2, a3, a4, a5, a6, a7):  # pragma: no cover
    out[o] = a0
    out[o + 1] = a1
    out[o + 2] = a2
    out[o + 3] = a3
    out[o + 4] = a4
    out[o + 5] = a5
    out[o + 6] = a6
    out[o + 7] = a7


# -- classic PageRank: the 0/1 pattern, z = x / outdegree ----------------------------------------
class Pattern(NamedTuple):
    """The in-link pattern (row = target, columns = its sources) in the classic kernel's layout:
    each link in one of three parts, by where its source lies (docs/benchmarks.md "Scoring").

    * near: the links of a short row whose source is within NEAR ids of the row (the site's own
      section, in crawl order: z[source] is in L1 while the rows around it are summed), in
      SELL-8 chunks as in `Sell`, with no prefetch;
    * far: the other links of the short rows, in tiles of TILE target rows x TILE sources, each
      entry (row offset << 16 | source offset) in one uint32, a tile's entries sorted by source:
      the tile's slice of z is read in order and its slice of the far sums `fy` stays in L2;
    * long rows (more than LONG_MIN links): per stripe of TILE sources, entries
      (long row << 16 | source offset) sorted by source, added into the stripe's row of `part`.

    A short row's value is its far sum plus its near links in link order; a long row's the sum of
    its stripe sums in stripe order; each part sums its links in ascending source order, so a
    row's sum differs from scipy's (link order) by rounding only."""

    n: int
    cptr: np.ndarray  # uint64, chunk c's near links are idx[cptr[c]:cptr[c + 1]], 8 per column
    idx: np.ndarray  # uint16 near sources - base, column-major per chunk (uint32 where that does not fit)
    rows: np.ndarray  # uint32 row of each lane of each chunk; n = padding
    blocks: np.ndarray  # int64 chunk boundaries of the parallel blocks (whole windows, about equal slot counts)
    row_cut: np.ndarray  # int64 page boundaries of the blocks: block b finishes pages row_cut[b]:row_cut[b + 1]
    far_ptr: np.ndarray  # uint64 (row tiles x source tiles + 1): where each tile's entries start in far_ent
    far_ent: np.ndarray  # uint32 (row - tile row) << 16 | (source - tile source)
    tasks: np.ndarray  # int64 boundaries of the parallel tasks over [far row tiles..., long-row stripes...]
    long_rows: np.ndarray  # uint32
    long_ptr: np.ndarray  # uint64 (stripes + 1): stripe s's entries are long_ent[long_ptr[s]:long_ptr[s + 1]]
    long_ent: np.ndarray  # uint32 long row number << 16 | (source - stripe start)
    part: np.ndarray  # float64 (stripes, long rows) scratch: stripe sums
    fy: np.ndarray  # float64 (n + 1) scratch: far sums, then row sums
    base: np.ndarray  # uint32 (chunks) z index that chunk c's offsets in idx count from

    def nbytes(self) -> int:
        """Bytes of the matrix that one iteration reads."""
        return sum(a.nbytes for a in (self.cptr, self.idx, self.base, self.rows, self.far_ptr, self.far_ent,
                                      self.long_rows, self.long_ptr, self.long_ent))


NEAR = 1024  # a short row's links from sources at most this far from it go to the SELL part
TILE = 65536  # rows and sources per far tile and sources per long-row stripe (16-bit offsets)


def pattern_layout(indptr: np.ndarray, indices: np.ndarray, zero: np.ndarray | None = None) -> Pattern:
    """The classic kernel's layout of a CSR pattern (columns sorted within rows), n < 2**32 - 1.
    `zero`, when given: a boolean mask of the pages with no out-link (whose z is always 0)."""
    indptr = np.asarray(indptr, np.int64)
    n = len(indptr) - 1
    deg = np.diff(indptr)
    long_min = LONG_MIN
    if int((deg > long_min).sum()) >= 65536:  # a long row's number has 16 bits
        long_min = int(np.partition(deg, n - 65535)[n - 65535])
    with LOCK:  # the build runs parallel loops too
        is_long, ndeg = _near_degrees(indptr, indices, long_min, NEAR)
        rows, cptr, long_rows, _, _ = _sell_layout(ndeg, is_long, WINDOW)
        if zero is None:
            zero = np.flatnonzero(np.bincount(indices, minlength=n + 1) == 0)
        else:
            zero = np.append(np.flatnonzero(zero), n)
        idx, base, narrow = _near_fill16(indptr, indices, rows, cptr, NEAR, zero)
        if not narrow:
            idx, base = _near_fill(indptr, indices, rows, cptr, NEAR), np.zeros(len(cptr) - 1, np.uint32)
        far_ptr, far_ent = _far_build(indptr, indices, is_long, ndeg, NEAR)
        long_ptr, long_ent = _long_build(indptr, indices, long_rows)
    cptr, far_ptr, long_ptr = cptr.view(np.uint64), far_ptr.view(np.uint64), long_ptr.view(np.uint64)
    part = np.zeros((len(long_ptr) - 1, len(long_rows)))
    none = np.zeros(0, np.int64)  # the parallel cuts, set by for_threads
    m = Pattern(n, cptr, idx, rows, none, none, far_ptr, far_ent, none, long_rows, long_ptr, long_ent, part,
                np.zeros(n + 1), base)
    return for_threads(m, get_num_threads())


def for_threads(m, threads: int):
    """The layout with its parallel blocks cut for `threads` threads."""
    if isinstance(m, Sell):
        return m._replace(blocks=_cut(m.cptr, 8 * threads))
    # whole windows (WINDOW // 8 chunks): a block's rows are then all the pages of an id range
    per = WINDOW // 8
    nch = len(m.cptr) - 1
    wptr = m.cptr[::per] if nch % per == 0 else np.append(m.cptr[::per], m.cptr[-1])
    if nch:
        blocks = np.minimum(_cut(wptr, 8 * threads) * per, nch)
        row_cut = np.array([m.rows[b * 8:(b + per) * 8].min() for b in blocks[:-1]] + [m.n], np.int64)
        row_cut[0] = 0
    else:  # no short row: one block of no chunks finishes the (long) rows
        blocks, row_cut = np.zeros(2, np.int64), np.array([0, m.n], np.int64)
    # one task per thread over the far row tiles and then the long-row stripes, of about equal
    # time: a row tile took 0.23 ms + 1.2 ns a far link, a long-row link 0.66 ns (1M / 20M,
    # 1 thread; 1.4 ns a link in the first row tile, where the popular pages are, 3.6 in the last)
    far = m.far_ptr[::len(m.long_ptr) - 1].astype(np.float64)
    far = 1.2 * far + 230e3 * np.arange(len(far))
    cost = np.concatenate([far, far[-1] + 0.66 * m.long_ptr[1:].astype(np.float64)])
    return m._replace(blocks=blocks, row_cut=row_cut, tasks=_cut(cost, threads))


def _cut(ptr: np.ndarray, parts: int) -> np.ndarray:
    """Boundaries of up to `parts` consecutive ranges of the len(ptr) - 1 items of about equal
    weight (ptr: cumulative weights)."""
    count = len(ptr) - 1
    bounds = np.searchsorted(ptr, np.linspace(0, int(ptr[-1]), parts + 1))
    cut = np.unique(np.minimum(bounds.astype(np.int64), count))
    cut[0], cut[-1] = 0, count
    return cut


@njit(inline="always")
def _near_range(indptr, indices, row, near):  # pragma: no cover
    """a, b: the near links of a row are indices[a:b] (its sources are sorted: those within `near`
    of it lie together), found from both ends, past the far ones only."""
    a = indptr[row]
    b = indptr[row + 1]
    while a < b and np.int64(indices[a]) < row - near:
        a += 1
    while b > a and np.int64(indices[b - 1]) > row + near:
        b -= 1
    return a, b


@njit(parallel=True, cache=True, nogil=True)
def _near_degrees(indptr, indices, long_min, near):  # pragma: no cover
    n = len(indptr) - 1
    is_long = np.empty(n, np.bool_)
    ndeg = np.empty(n, np.int64)  # near links of a short row; all links of a long row
    for i in prange(n):
        d = indptr[i + 1] - indptr[i]
        is_long[i] = d > long_min
        if is_long[i]:
            ndeg[i] = d
        else:
            a, b = _near_range(indptr, indices, i, near)
            ndeg[i] = b - a
    return is_long, ndeg


@njit(inline="always")
def _near_chunk(idx, indptr, indices, rows, cptr, c, near, b, pad):  # pragma: no cover
    """Chunk c's near links as sources - b, 8 rows side by side (column-major), padded with pad."""
    n = len(indptr) - 1
    start = cptr[c]
    w = (cptr[c + 1] - start) // 8
    for r in range(8):
        row = rows[c * 8 + r]
        j = 0
        if row < n:
            a, e = _near_range(indptr, indices, row, near)
            for k in range(a, e):
                idx[start + j * 8 + r] = np.int64(indices[k]) - b
                j += 1
        for t in range(j, w):
            idx[start + t * 8 + r] = pad


@njit(parallel=True, cache=True, nogil=True)
def _near_fill(indptr, indices, rows, cptr, near):  # pragma: no cover
    """The near links as uint32 page ids, the padding the dummy page n."""
    n = len(indptr) - 1
    nch = len(cptr) - 1
    idx = np.empty(cptr[nch], np.uint32)
    for c in prange(nch):
        _near_chunk(idx, indptr, indices, rows, cptr, c, near, 0, n)
    return idx


@njit(parallel=True, cache=True, nogil=True)
def _far_build(indptr, indices, is_long, ndeg, near):  # pragma: no cover
    """The far links of the short rows as (row offset << 16 | source offset) per tile of 64k rows x
    64k sources, by source within a tile: copied out in row order, then per row tile two stable
    counting sorts, by source offset and by source tile (linear in links and pages; one count of
    all sources per row tile would grow with the square of the pages)."""
    n = len(indptr) - 1
    nst = max(1, (n + 65535) >> 16)  # source tiles
    nrt = (n + 1 + 65535) >> 16  # row tiles (the dummy row n in the last)
    fpos = np.zeros(n + 1, np.int64)
    for i in range(n):
        fpos[i + 1] = fpos[i] + (0 if is_long[i] else indptr[i + 1] - indptr[i] - ndeg[i])
    m = fpos[n]
    ent = np.empty(m, np.uint32)
    src_tile = np.empty(m, np.uint32)
    for i in prange(n):
        if not is_long[i]:
            p = fpos[i]
            a, b = _near_range(indptr, indices, i, near)
            for k in range(indptr[i], a):  # the far ones before the near ones
                s = np.int64(indices[k])
                ent[p] = ((i & 65535) << 16) | (s & 65535)
                src_tile[p] = s >> 16
                p += 1
            for k in range(b, indptr[i + 1]):  # and after
                s = np.int64(indices[k])
                ent[p] = ((i & 65535) << 16) | (s & 65535)
                src_tile[p] = s >> 16
                p += 1
    far_ptr = np.zeros(nrt * nst + 1, np.int64)
    far_ent = np.empty(m, np.uint32)
    for rt in prange(nrt):
        a = fpos[rt << 16]
        b = fpos[min((rt + 1) << 16, n)]
        count = np.zeros(65537, np.int64)
        for k in range(a, b):
            count[(ent[k] & 65535) + 1] += 1
        for j in range(65536):
            count[j + 1] += count[j]
        ent1 = np.empty(b - a, np.uint32)
        tile1 = np.empty(b - a, np.uint32)
        for k in range(a, b):
            j = ent[k] & 65535
            ent1[count[j]] = ent[k]
            tile1[count[j]] = src_tile[k]
            count[j] += 1
        start = np.zeros(nst + 1, np.int64)
        for k in range(b - a):
            start[tile1[k] + 1] += 1
        for st in range(nst):
            start[st + 1] += start[st]
            far_ptr[rt * nst + st] = a + start[st]
        for k in range(b - a):
            st = tile1[k]
            far_ent[a + start[st]] = ent1[k]
            start[st] += 1
    far_ptr[nrt * nst] = m
    return far_ptr, far_ent


@njit(parallel=True, cache=True, nogil=True)
def _long_build(indptr, indices, long_rows):  # pragma: no cover
    n = len(indptr) - 1
    nst = max(1, (n + 65535) >> 16)
    # long rows: (long row number, source offset) per stripe of sources, by source; per stripe,
    # a counting sort of the long rows' links from it (a row's sources are sorted)
    nl = len(long_rows)
    cut = np.empty((nst + 1, nl), np.int64)
    for h in prange(nl):
        k = indptr[long_rows[h]]
        end = indptr[long_rows[h] + 1]
        for st in range(nst):
            while k < end and indices[k] < (st << 16):
                k += 1
            cut[st, h] = k
        cut[nst, h] = end
    long_ptr = np.zeros(nst + 1, np.int64)
    for st in range(nst):
        total = 0
        for h in range(nl):
            total += cut[st + 1, h] - cut[st, h]
        long_ptr[st + 1] = long_ptr[st] + total
    long_ent = np.empty(long_ptr[nst], np.uint32)
    for st in prange(nst):
        count = np.zeros(65537, np.int64)
        for h in range(nl):
            for k in range(cut[st, h], cut[st + 1, h]):
                count[(indices[k] & 65535) + 1] += 1
        for j in range(65536):
            count[j + 1] += count[j]
        for h in range(nl):
            for k in range(cut[st, h], cut[st + 1, h]):
                j = indices[k] & 65535
                long_ent[long_ptr[st] + count[j]] = (h << 16) | j
                count[j] += 1
    return long_ptr, long_ent


@njit(parallel=True, cache=True, nogil=True)
def _near_fill16(indptr, indices, rows, cptr, near, zero):  # pragma: no cover
    """The near links as 16-bit offsets from a base per chunk, the padding an offset whose z is
    always 0: a page in `zero` (sorted: pages with no out-link, z = x / outdegree = 0 there, and
    the dummy n), within 65,535 of all the chunk's sources. (idx, base, True) or, when some chunk
    has no such page in reach, (empty, empty, False)."""
    n = len(indptr) - 1
    nch = len(cptr) - 1
    idx = np.empty(cptr[nch], np.uint16)
    base = np.empty(nch, np.uint32)
    miss = np.zeros(nch, np.bool_)
    for c in prange(nch):
        lo = n
        hi = 0
        for r in range(8):
            row = rows[c * 8 + r]
            if row < n:
                a, e = _near_range(indptr, indices, row, near)
                if e > a:
                    lo = min(lo, np.int64(indices[a]))
                    hi = max(hi, np.int64(indices[e - 1]))
        if hi < lo:  # no near link
            lo = hi = n
        j = np.searchsorted(zero, lo)  # zero[j] >= lo (the last is n >= lo)
        q = zero[j]
        if max(hi, q) - lo > 65535 and j > 0:
            q = zero[j - 1]
        b = min(lo, q)
        if max(hi, q) - b > 65535:
            miss[c] = True
            continue
        base[c] = b
        _near_chunk(idx, indptr, indices, rows, cptr, c, near, b, q - b)
    if miss.any():
        return np.zeros(0, np.uint16), np.zeros(0, np.uint32), False
    return idx, base, True


def step_pattern(m: Pattern, z, inv, t0, damping, c, x, x_new, z_new):
    """x_new = damping * P^T z + c * t0 on pages, with P the 0/1 pattern and z = x / outdegree.

    `inv` is 1 / outdegree, 0 for a dangling page, -1 for a page outside the graph (no teleport)
    and for the dummy entry n. Writes x_new and z_new = x_new * max(inv, 0); returns
    (L1 change, mass of the dangling pages in x_new). z must be 0 at the pages with no out-link
    in the pattern and at n: the padding of the near links reads them."""
    _far_long(m.tasks, (len(m.far_ptr) - 1) // (len(m.long_ptr) - 1), m.far_ptr, m.far_ent, m.long_ptr, m.long_ent, z,
              m.fy, m.part)
    if len(m.long_rows):
        _long_sums(m.long_rows, m.part, m.fy)
    return _near_pattern(m.blocks, m.row_cut, m.cptr, m.idx, m.base, m.rows, m.fy, z, inv, t0, damping, c, x, x_new,
                         z_new)


@njit(parallel=True, cache=True, nogil=True)
def _far_long(tasks, nrt, far_ptr, far_ent, long_ptr, long_ent, z, fy, part):  # pragma: no cover
    """The far sums (fy) and the long rows' stripe sums (part), in one parallel loop: task t does
    the items tasks[t]:tasks[t + 1] of [row tiles of the far links..., stripes of the long rows...].

    A row tile: its slice of fy zeroed, then its tiles in source order, every entry added into fy
    (the tile's slices of z and fy stay in L2). A stripe: its long-row links in source order, each
    added into the stripe's row of part (z is read in order, the sums stay in L1)."""
    nst = len(long_ptr) - 1
    n1 = len(fy)
    for t in prange(len(tasks) - 1):
        for item in range(tasks[t], tasks[t + 1]):
            if item < nrt:
                r0 = item << 16
                for r in range(r0, min(r0 + 65536, n1)):
                    fy[r] = 0.0
                ys = fy[r0:]
                for st in range(nst):
                    zs = z[st << 16:]
                    k = far_ptr[item * nst + st]
                    end = far_ptr[item * nst + st + 1]
                    while k < end:
                        e = far_ent[k]
                        ys[np.uint64(e >> np.uint32(16))] += zs[np.uint64(e & np.uint32(65535))]
                        k += _1
            else:
                st = item - nrt
                acc = part[st]
                for h in range(len(acc)):
                    acc[h] = 0.0
                zs = z[st << 16:]
                k = long_ptr[st]
                end = long_ptr[st + 1]
                while k < end:
                    e = long_ent[k]
                    acc[np.uint64(e >> np.uint32(16))] += zs[np.uint64(e & np.uint32(65535))]
                    k += _1


@njit(parallel=True, cache=True, nogil=True)
def _near_pattern(blocks, row_cut, cptr, idx, base, rows, fy, z, inv, t0, damping, c, x, x_new,
                  z_new):  # pragma: no cover
    """Each chunk's 8 rows: far sum + near links, in place in fy; then the new values of the
    block's pages (its short rows and the long rows among them, whose sums are in fy already)."""
    diff = 0.0
    dm = 0.0
    for b in prange(len(blocks) - 1):
        for ch in range(blocks[b], blocks[b + 1]):
            o = ch * 8
            r0 = rows[o]
            r1 = rows[o + 1]
            r2 = rows[o + 2]
            r3 = rows[o + 3]
            r4 = rows[o + 4]
            r5 = rows[o + 5]
            r6 = rows[o + 6]
            r7 = rows[o + 7]
            a0 = fy[r0]
            a1 = fy[r1]
            a2 = fy[r2]
            a3 = fy[r3]
            a4 = fy[r4]
            a5 = fy[r5]
            a6 = fy[r6]
            a7 = fy[r7]
            zc = z[base[ch]:]  # idx: 16-bit offsets from the chunk's base
            k = cptr[ch]
            end = cptr[ch + 1]
            while k < end:  # unsigned k and offsets: no wrap-around check per gather
                a0 += zc[np.uint64(idx[k])]
                a1 += zc[np.uint64(idx[k + _1])]
                a2 += zc[np.uint64(idx[k + _2])]
                a3 += zc[np.uint64(idx[k + _3])]
                a4 += zc[np.uint64(idx[k + _4])]
                a5 += zc[np.uint64(idx[k + _5])]
                a6 += zc[np.uint64(idx[k + _6])]
                a7 += zc[np.uint64(idx[k + _7])]
                k += _8
            fy[r0] = a0
            fy[r1] = a1
            fy[r2] = a2
            fy[r3] = a3
            fy[r4] = a4
            fy[r5] = a5
            fy[r6] = a6
            fy[r7] = a7
        d = 0.0
        m = 0.0
        for row in range(row_cut[b], row_cut[b + 1]):  # in page order: the vectors are streamed
            w = inv[row]
            v = damping * fy[row] + (c * t0 if w >= 0.0 else 0.0)
            d += abs(v - x[row])
            x_new[row] = v
            z_new[row] = v * max(w, 0.0)
            m += v if w == 0.0 else 0.0
        diff += d
        dm += m
    return diff, dm


@njit(cache=True, nogil=True)
def _long_sums(long_rows, part, fy):  # pragma: no cover
    """fy of each long row: its stripe sums, in stripe order."""
    for h in range(len(long_rows)):
        acc = 0.0
        for s in range(part.shape[0]):
            acc += part[s, h]
        fy[long_rows[h]] = acc


# -- the weighted matrix (the juice model) -------------------------------------------------------
def step_weighted(m: Sell, teleport, dangling, damping, c, x, x_new):
    """x_new = damping * M^T x + c * teleport; returns (L1 change, dangling . x_new)."""
    if len(m.long_rows):
        _long_weighted(m.long_cut, m.long_idx, m.long_data, x, m.part)
    d0, m0 = _sell_weighted(m.blocks, m.cptr, m.idx, m.data, m.rows, m.sums, teleport, dangling, damping, c, x, x_new)
    d1, m1 = _long_finish_weighted(m.long_rows, m.part, teleport, dangling, damping, c, x, x_new)
    return d0 + d1, m0 + m1


@njit(parallel=True, cache=True, nogil=True)
def _sell_weighted(blocks, cptr, idx, data, rows, sums, teleport, dangling, damping, c, x, x_new):  # pragma: no cover
    last = cptr[len(cptr) - 1] - min(cptr[len(cptr) - 1], _AHEAD)  # prefetch below the end
    diff = 0.0
    dm = 0.0
    for b in prange(len(blocks) - 1):
        for ch in range(blocks[b], blocks[b + 1]):
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            a4 = 0.0
            a5 = 0.0
            a6 = 0.0
            a7 = 0.0
            k = cptr[ch]
            end = cptr[ch + 1]
            while k < end:
                if k < last:
                    _prefetch8(x, idx, k + _AHEAD)
                a0 += data[k] * x[idx[k]]
                a1 += data[k + _1] * x[idx[k + _1]]
                a2 += data[k + _2] * x[idx[k + _2]]
                a3 += data[k + _3] * x[idx[k + _3]]
                a4 += data[k + _4] * x[idx[k + _4]]
                a5 += data[k + _5] * x[idx[k + _5]]
                a6 += data[k + _6] * x[idx[k + _6]]
                a7 += data[k + _7] * x[idx[k + _7]]
                k += _8
            _store8(sums, ch * 8, a0, a1, a2, a3, a4, a5, a6, a7)
        d = 0.0
        m = 0.0
        for i in range(blocks[b] * 8, blocks[b + 1] * 8):
            row = rows[i]
            v = damping * sums[i] + c * teleport[row]
            d += abs(v - x[row])
            x_new[row] = v
            m += dangling[row] * v
        diff += d
        dm += m
    return diff, dm


@njit(parallel=True, cache=True, nogil=True)
def _long_weighted(long_cut, long_idx, long_data, x, part):  # pragma: no cover
    for s in prange(long_cut.shape[0] - 1):
        for h in range(long_cut.shape[1]):
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            k = np.uint64(long_cut[s, h])
            end = np.uint64(long_cut[s + 1, h])
            while k + _3 < end:
                a0 += long_data[k] * x[long_idx[k]]
                a1 += long_data[k + _1] * x[long_idx[k + _1]]
                a2 += long_data[k + _2] * x[long_idx[k + _2]]
                a3 += long_data[k + _3] * x[long_idx[k + _3]]
                k += _4
            while k < end:
                a0 += long_data[k] * x[long_idx[k]]
                k += _1
            part[s, h] = (a0 + a1) + (a2 + a3)


@njit(cache=True, nogil=True)
def _long_finish_weighted(long_rows, part, teleport, dangling, damping, c, x, x_new):  # pragma: no cover
    diff = 0.0
    dm = 0.0
    for h in range(len(long_rows)):
        acc = 0.0
        for s in range(part.shape[0]):
            acc += part[s, h]
        row = long_rows[h]
        v = damping * acc + c * teleport[row]
        diff += abs(v - x[row])
        x_new[row] = v
        dm += dangling[row] * v
    return diff, dm


def in_link_pattern(n: int, src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """The in-link pattern of links (src -> dst) between pages in `mask`, self-links dropped,
    by a counting sort: (indptr, indices, outdegree), or empty arrays when the links are not
    sorted by (src, dst) without repeats (the caller then sorts them another way).

    Two passes over the links instead of a sort: links read from the store arrive sorted and
    distinct, and a stable counting sort by target then leaves each row's sources sorted. Each
    thread takes a range of targets (reading every link, writing its own rows)."""
    with LOCK:
        return _in_link_pattern(n, src, dst, mask, target_cuts(n))


@njit(inline="always")
def _counts(s, d, lo, hi, mask):  # pragma: no cover
    """Whether link s -> d is in the pattern (between pages in `mask`, not a self-link) and its
    target in the part's range lo:hi (lo >= 0, so d is a page id when this holds)."""
    return lo <= d < hi and s != d and s >= 0 and mask[s] and mask[d]


@njit(parallel=True, cache=True, nogil=True)
def _in_link_pattern(n, src, dst, mask, cuts):  # pragma: no cover
    m = len(src)
    parts = len(cuts) - 1
    indptr = np.zeros(n + 1, np.int64)
    outdeg_part = np.zeros((parts, n), np.int32)  # a source's links land in every part
    ok = np.ones(parts, np.bool_)
    for part in prange(parts):
        lo = cuts[part]
        hi = cuts[part + 1]
        prev_s = -1
        prev_d = -1
        for k in range(m):
            ahead = _target_ahead(dst, k + LINKS_AHEAD, lo, hi)
            if ahead >= 0:
                _prefetch(mask, ahead)
                _prefetch(indptr, ahead + 1)
            s = src[k]
            d = dst[k]
            if not _counts(s, d, lo, hi, mask):
                continue
            # a part's links in (src, dst) order without repeats: then so is each of its rows
            if s < prev_s or (s == prev_s and d <= prev_d):
                ok[part] = False
                break
            prev_s = s
            prev_d = d
            indptr[d + 1] += 1
            outdeg_part[part, s] += 1
    for part in range(parts):
        if not ok[part]:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
    outdeg = np.zeros(n, np.int64)
    for part in range(parts):
        for i in range(n):
            outdeg[i] += outdeg_part[part, i]
    for i in range(n):
        indptr[i + 1] += indptr[i]
    fill = indptr[:-1].copy()
    indices = np.empty(indptr[n], np.int32)
    for part in prange(parts):
        lo = cuts[part]
        hi = cuts[part + 1]
        for k in range(m):
            ahead = _target_ahead(dst, k + LINKS_AHEAD, lo, hi)
            if ahead >= 0:
                _prefetch(fill, ahead)
            ahead = _target_ahead(dst, k + SLOTS_AHEAD, lo, hi)
            if ahead >= 0:
                _prefetch(indices, fill[ahead])
            s = src[k]
            d = dst[k]
            if not _counts(s, d, lo, hi, mask):
                continue
            indices[fill[d]] = s
            fill[d] += 1
    return indptr, indices, outdeg


def section_cells(ptr: np.ndarray, order: np.ndarray, sec_ptr: np.ndarray, resolved: np.ndarray, passes: np.ndarray,
                  reason: np.ndarray, sections: np.ndarray, n_labels: int, width: int, passed_on: np.ndarray,
                  share: np.ndarray, weight: np.ndarray, per_weight: np.ndarray,
                  keep: int) -> tuple[np.ndarray, ...]:
    """The section flow matrix, one from-section at a time, in memory of one row of cells per
    thread; the threads take runs of sections of about equal links.

    Links are sorted by source: page p's are ptr[p]:ptr[p + 1]; `order` lists the pages by
    section, section s's at sec_ptr[s]:sec_ptr[s + 1]. A link goes to cell (sections[source],
    sections[resolved] when it passes, else n_labels + reason) with passed_on[source] x share[k]
    (when `share` is empty: per_weight[source] x weight[k], per_weight = passed_on / out_weight)
    and a count, summed in link order. Of a row's cells to sections, the `keep` with the most
    juice are kept (ties: the lower section) and the others summed, in section order, into one
    cell of column `width` ("other sections"). Returns (from, to, juice, count), cells in
    (from, to) order."""
    n_sec = len(sec_ptr) - 1
    per_section = np.cumsum(np.bincount(sections, weights=np.diff(ptr), minlength=n_sec))
    parts = 4 * get_num_threads()
    bounds = np.searchsorted(per_section, np.linspace(0, per_section[-1] if n_sec else 0, parts + 1)[1:-1], "right")
    runs = np.unique(np.concatenate([[0], np.minimum(bounds, n_sec), [n_sec]]).astype(np.int64))
    with LOCK:  # parallel kernel
        return _section_cells(ptr, order, sec_ptr, resolved, passes, reason, sections, n_labels, width, passed_on,
                              share, weight, per_weight, keep, runs)


@njit(parallel=True, cache=True, nogil=True)
def _section_cells(ptr, order, sec_ptr, resolved, passes, reason, sections, n_labels, width, passed_on, share,
                   weight, per_weight, keep, runs):  # pragma: no cover
    n_sec = len(sec_ptr) - 1
    slots = min(width, keep + 1 + width - n_labels)  # a section's cells at most: kept, lost, other
    out_to = np.empty(n_sec * slots, np.int32)
    out_juice = np.empty(n_sec * slots, np.float64)
    out_count = np.empty(n_sec * slots, np.int64)
    used = np.zeros(n_sec, np.int64)
    given = len(share) > 0
    for run in prange(len(runs) - 1):
        row_juice = np.zeros(width, np.float64)
        row_count = np.zeros(width, np.int64)
        touched = np.empty(width, np.int64)
        scratch = np.empty(width, np.float64)
        for sec in range(runs[run], runs[run + 1]):
            m = 0
            for t in range(sec_ptr[sec], sec_ptr[sec + 1]):
                s = order[t]
                carried = passed_on[s] if given else per_weight[s]
                for k in range(ptr[s], ptr[s + 1]):
                    if passes[k]:
                        r = resolved[k]
                        to = np.int64(sections[r if r >= 0 else 0])
                    else:
                        to = np.int64(n_labels) + reason[k]
                    if row_count[to] == 0:
                        touched[m] = to
                        m += 1
                    row_juice[to] += carried * (share[k] if given else weight[k])
                    row_count[to] += 1
            # The row's cells in ascending order: sorted when few, else read off the row.
            if m * 16 > width:
                j = 0
                for to in range(width):
                    if row_count[to] != 0:
                        touched[j] = to
                        j += 1
            else:
                touched[:m] = np.sort(touched[:m])
            real = 0
            while real < m and touched[real] < n_labels:
                real += 1
            threshold = -np.inf  # the keep-th largest juice among the real cells (all kept: -inf)
            ties = 0  # cells at the threshold still kept, the lower sections first
            if real > keep:
                for i in range(real):
                    scratch[i] = -row_juice[touched[i]]
                threshold = -np.partition(scratch[:real], keep - 1)[keep - 1] if keep > 0 else np.inf
                ties = keep
                for i in range(real):
                    if row_juice[touched[i]] > threshold:
                        ties -= 1
            base = sec * slots
            o = 0
            other = 0.0
            other_links = 0
            for i in range(m):
                to = touched[i]
                v = row_juice[to]
                if i < real and not v > threshold:
                    if v == threshold and ties > 0:
                        ties -= 1
                    else:
                        other += v
                        other_links += row_count[to]
                        continue
                out_to[base + o] = to
                out_juice[base + o] = v
                out_count[base + o] = row_count[to]
                o += 1
            if real > keep:
                out_to[base + o] = width
                out_juice[base + o] = other
                out_count[base + o] = other_links
                o += 1
            used[sec] = o
            for i in range(m):
                row_juice[touched[i]] = 0.0
                row_count[touched[i]] = 0
    total = 0
    for sec in range(n_sec):
        total += used[sec]
    res_from = np.empty(total, np.int32)
    res_to = np.empty(total, np.int32)
    res_juice = np.empty(total, np.float64)
    res_count = np.empty(total, np.int64)
    j = 0
    for sec in range(n_sec):
        for i in range(sec * slots, sec * slots + used[sec]):
            res_from[j] = sec
            res_to[j] = out_to[i]
            res_juice[j] = out_juice[i]
            res_count[j] = out_count[i]
            j += 1
    return res_from, res_to, res_juice, res_count


@njit(cache=True, nogil=True)
def source_ptr(n, src):  # pragma: no cover
    """CSR row pointers of links sorted by source: page p's links are ptr[p]:ptr[p + 1]."""
    ptr = np.zeros(n + 1, np.int64)
    for k in range(len(src)):
        ptr[src[k] + 1] += 1
    for i in range(n):
        ptr[i + 1] += ptr[i]
    return ptr


@njit(cache=True, nogil=True)
def link_counts(n, src, dst, internal):  # pragma: no cover
    """Per page, in one pass over the links: internal links out, and links in (dst >= 0). The
    links come by source: each link's target count is prefetched LINKS_AHEAD links ahead."""
    outlinks = np.zeros(n, np.int64)
    inlinks = np.zeros(n, np.int64)
    m = len(src)
    for k in range(m):
        if k + LINKS_AHEAD < m:
            ahead = dst[k + LINKS_AHEAD]
            if ahead >= 0:
                _prefetch(inlinks, ahead)
        if internal[k]:
            outlinks[src[k]] += 1
        d = dst[k]
        if d >= 0:
            inlinks[d] += 1
    return outlinks, inlinks


@njit(cache=True, nogil=True)
def source_weights(n, src, weight):  # pragma: no cover
    """Per page, the total weight of its links, summed in link order (as np.bincount does)."""
    out = np.zeros(n, np.float64)
    for k in range(len(src)):
        out[src[k]] += weight[k]
    return out


# -- one step straight from the links (a warm start that has converged needs no layout) ----------
def push_pattern_step(n: int, src: np.ndarray, dst: np.ndarray, mask: np.ndarray, teleport: np.ndarray,
                      x: np.ndarray, damping: float) -> tuple[np.ndarray, float] | None:
    """One step of classic PageRank (as `_iterate_compiled` takes with the pattern layout; the
    `teleport` vector is uniform over `mask`) from the links sorted by (src, dst) without
    repeats, pushed along them: (x_new, L1 change), or None when the links are not so sorted.
    No layout is built: when the last scores are still the fixed point, scoring again stops here
    (the layouts take ~10 times one step to build)."""
    with LOCK:  # parallel kernel
        x_new, change = _push_pattern(n, src, dst, mask, np.asarray(teleport, np.float64), np.asarray(x, np.float64),
                                      damping, target_cuts(n))
    return None if change < 0 else (x_new, change)


@njit(cache=True, nogil=True)
def _finish_step(y, x, teleport, damping, c):  # pragma: no cover
    """y (the links' sums) becomes damping * y + c * teleport; returns its L1 change from x."""
    diff = 0.0
    for i in range(len(y)):
        v = damping * y[i] + c * teleport[i]
        diff += abs(v - x[i])
        y[i] = v
    return diff


@njit(parallel=True, cache=True, nogil=True)
def _push_pattern(n, src, dst, mask, teleport, x, damping, cuts):  # pragma: no cover
    inv = np.zeros(n, np.float64)
    prev_s = -1
    prev_d = -1
    for k in range(len(src)):  # out-degrees within the pattern, and the order check
        s = src[k]
        d = dst[k]
        if not _counts(s, d, 0, n, mask):
            continue
        if s < prev_s or (s == prev_s and d <= prev_d):
            return np.zeros(0, np.float64), -1.0
        prev_s = s
        prev_d = d
        inv[s] += 1.0
    dm = 0.0
    for i in range(n):
        if mask[i]:
            if inv[i] == 0.0:
                dm += x[i]
            else:
                inv[i] = 1.0 / inv[i]
    c = 1.0 - damping + damping * dm
    y = np.zeros(n, np.float64)
    for part in prange(len(cuts) - 1):
        lo = cuts[part]
        hi = cuts[part + 1]
        for k in range(len(src)):
            ahead = _target_ahead(dst, k + LINKS_AHEAD, lo, hi)
            if ahead >= 0:
                _prefetch(mask, ahead)
                _prefetch(y, ahead)
            s = src[k]
            d = dst[k]
            if _counts(s, d, lo, hi, mask):
                y[d] += x[s] * inv[s]
    return y, _finish_step(y, x, teleport, damping, c)


def push_weighted_step(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, out_weight: np.ndarray,
                       factor: np.ndarray, passes: np.ndarray, ranked: np.ndarray, teleport: np.ndarray,
                       x: np.ndarray, damping: float) -> tuple[np.ndarray, float]:
    """One step of the juice model (as `_iterate_compiled` takes with `sell_from_links`' layout)
    pushed along the links: each link that `passes` between two `ranked` pages carries
    x[source] x weight / out_weight[source] (x `factor`, unless empty). (x_new, L1 change)."""
    with LOCK:  # parallel kernel
        return _push_weighted(n, src, dst, weight, out_weight, factor, passes, ranked, np.asarray(teleport, np.float64),
                              np.asarray(x, np.float64), damping, target_cuts(n))


@njit(parallel=True, cache=True, nogil=True)
def _push_weighted(n, src, dst, weight, out_weight, factor, passes, ranked, teleport, x, damping,
                   cuts):  # pragma: no cover
    dm = 0.0
    for i in range(n):
        if ranked[i] and out_weight[i] == 0.0:
            dm += x[i]
    c = 1.0 - damping + damping * dm
    scaled = len(factor) > 0
    y = np.zeros(n, np.float64)
    for part in prange(len(cuts) - 1):
        lo = cuts[part]
        hi = cuts[part + 1]
        for k in range(len(src)):
            ahead = _target_ahead(dst, k + LINKS_AHEAD, lo, hi)
            if ahead >= 0:
                _prefetch(ranked, ahead)
                _prefetch(y, ahead)
            d = dst[k]
            if d < lo or d >= hi or not passes[k]:
                continue
            s = src[k]
            if not (ranked[d] and ranked[s]):
                continue
            total = out_weight[s]
            v = weight[k] / total if total > 0 else 0.0
            if scaled:
                v *= factor[k]
            y[d] += v * x[s]
    return y, _finish_step(y, x, teleport, damping, c)


def pair_dots(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, src: np.ndarray,
              dst: np.ndarray) -> np.ndarray:
    """The dot product of CSR rows src[k] and dst[k] (indices sorted within rows) for every pair k,
    0 where either is -1, in the data's dtype (relevance.pair_similarity: TF-IDF cosines)."""
    out = np.empty(len(src), data.dtype)
    with LOCK:  # parallel kernel
        _pair_dots(np.asarray(indptr, np.int64), indices, data, np.asarray(src, np.int32),
                   np.asarray(dst, np.int32), out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _pair_dots(indptr, indices, data, src, dst, out):  # pragma: no cover
    """Each pair's two rows are merged by column (both sorted) and the products of matching
    columns summed in float64; no row is gathered or copied, so memory is the output alone.
    The target's row pointer is prefetched LINKS_AHEAD pairs ahead, its columns and values SLOTS_AHEAD."""
    rows = len(indptr) - 1
    for k in prange(len(src)):
        ahead = _target_ahead(dst, k + LINKS_AHEAD, 0, rows)
        if ahead >= 0:
            _prefetch(indptr, ahead)
        ahead = _target_ahead(dst, k + SLOTS_AHEAD, 0, rows)
        if ahead >= 0:
            _prefetch(indices, indptr[ahead])
            _prefetch(data, indptr[ahead])
        out[k] = _row_dot(indptr, indices, data, src[k], dst[k])


@njit(inline="always")
def _row_dot(indptr, indices, data, a, b):  # pragma: no cover
    """The dot product of CSR rows a and b (0 when either is -1)."""
    total = 0.0
    if a >= 0 and b >= 0:
        i, i_end, j, j_end = indptr[a], indptr[a + 1], indptr[b], indptr[b + 1]
        while i < i_end and j < j_end:
            ci, cj = indices[i], indices[j]
            if ci == cj:
                total += data[i] * data[j]
                i += 1
                j += 1
            elif ci < cj:
                i += 1
            else:
                j += 1
    return total


# -- the audit's sums over the model's flows -----------------------------------------------------
# What flow_sums adds up per page by each pair's target, one record a page: a pair then touches one
# cache line of its target's instead of three (three arrays: 53 -> 32 ns a pair on 20M pairs of
# the 10M-page store, docs/benchmarks.md).
FLOW_PAGE = np.dtype([("inflow", np.float64), ("inlinks", np.int32), ("resolved", np.int32)])


@njit(cache=True, nogil=True)
def flow_sums(src, dst, resolved, reason, position, juice, internal, nofollow, state_after, n_pos, n_states,
              passed, nofollow_code, account_juice, account_flows, followed_out, targets, page):  # pragma: no cover
    """linkjuice.audit.collect_flows' sums over a batch of link pairs, added in place, in one pass
    (NumPy made a temporary array of the batch per mask and per sum: at 3M pages their first
    touches were most of that function's time). Per pair: its account cell (the state it arrives
    at x position x reason), a page's internal targets and followed ones, and in its target's
    record of `page` (FLOW_PAGE) the juice it receives (nofollow pairs left out), for a passing
    pair that arrives at its own target that page's followed inlink, and the page a pair to a
    page resolves to. Returns the rows of the passing pairs that arrive at another page (through
    a redirect or a canonical): the caller counts those once per source."""
    n = len(followed_out)
    elsewhere = np.empty(len(src), np.int64)
    count = 0
    for k in range(len(src)):
        ahead = _target_ahead(dst, k + LINKS_AHEAD, 0, n)
        if ahead >= 0:
            _prefetch(page, ahead)
            _prefetch(state_after, ahead)
        s = np.int64(src[k])
        d = np.int64(dst[k])
        r = np.int64(reason[k])
        to_page = d >= 0 and d < n
        cell = state_after[d if to_page else n] + ((r + 1) * n_pos + np.int64(position[k]) + 1) * n_states
        account_juice[cell] += juice[k]
        account_flows[cell] += 1
        in_pages = s >= 0 and s < n
        if in_pages and internal[k]:
            targets[s] += 1
            if not nofollow[k]:
                followed_out[s] += 1
        res = np.int64(resolved[k])
        if to_page:
            page[d].resolved = res
            if r != nofollow_code:
                page[d].inflow += juice[k]
        if r == passed and res >= 0 and res < n and s != res and in_pages:
            if res == d:
                page[d].inlinks += 1
            else:
                elsewhere[count] = k
                count += 1
    return elsewhere[:count]


@njit(cache=True, nogil=True)
def pair_juice(src, pf, af, cosine, lo, a, page_juice, out_weight):  # pragma: no cover
    """The juice of each pair of a batch that starts at link_pairs' row lo, in one pass, with the
    operations of linkjuice.store's NumPy form in their order (the same floats): its weight
    pf x ((1 - a) + a x cosine[lo + k]) x af (cosine empty: relevance off, the view's 0.0), over
    its source's out weight (0 where that is not above 0), times page_juice (d x the source's
    juice). NumPy made six temporary arrays of the batch for it."""
    out = np.empty(len(src))
    relevance = len(cosine) > 0
    for k in range(len(src)):
        s = src[k]
        weight = pf[k]
        if relevance:
            weight *= (1.0 - a) + a * np.float64(cosine[lo + k])
        else:
            weight *= (1.0 - a) + a * 0.0
        weight *= af[k]
        total = out_weight[s]
        share = weight / total if total > 0 else 0.0
        out[k] = page_juice[s] * share
    return out


@njit(cache=True, nogil=True)
def elsewhere_inlinks(src, dst, resolved, reason, passed, final, state, pending, direct_of, counted_of,
                      inlinks):  # pragma: no cover
    """linkjuice.audit._count_elsewhere as the batches of link pairs come, a source at a time (the
    pairs come sorted by source): a passing pair that arrives at another page than its target
    (through a redirect or a canonical) adds a followed inlink to that page, once per source,
    unless a passing pair of that source arrives there as its own target (flow_sums counted
    that one). Kept whole, every pair's source and resolved page (1.6 GB at 10M pages) were held
    for this. `state` carries [current source, pending pages, 1 when a source came out of order]
    from batch to batch; `pending` (room for that many plus the batch) holds the current source's
    pages reached elsewhere; direct_of and counted_of, per page, the last source that reached it
    directly and the last that counted it (-1: none). `final`: the last batch (the current source
    is then counted). A source out of order sets state[2] and stops: the caller counts otherwise."""
    n = len(inlinks)
    current = state[0]
    count = state[1]
    for k in range(len(src) + (1 if final else 0)):
        s = np.int64(src[k]) if k < len(src) else np.int64(-2)
        if s != current:
            if k < len(src) and s < current:
                state[2] = 1
                return
            for j in range(count):
                p = pending[j]
                if direct_of[p] != current and counted_of[p] != current:
                    counted_of[p] = current
                    inlinks[p] += 1
            count = 0
            current = s
        if k == len(src) or reason[k] != passed:
            continue
        res = np.int64(resolved[k])
        if res < 0 or res >= n or s == res or s < 0 or s >= n:
            continue
        if res == dst[k]:
            direct_of[res] = s
        else:
            pending[count] = res
            count += 1
    state[0] = current
    state[1] = count


@njit(cache=True, nogil=True)
def count_codes(codes, minlength):  # pragma: no cover
    """np.bincount(codes, minlength=minlength) in one pass, without widening the codes to 64-bit
    first (linkjuice.audit._count_codes). Returns False and no counts when a code is negative or
    not below minlength (the caller counts those with NumPy)."""
    counts = np.zeros(minlength, np.int64)
    for i in range(len(codes)):
        c = codes[i]
        if c < 0 or c >= minlength:
            return False, counts[:0]
        counts[c] += 1
    return True, counts


@njit(cache=True, nogil=True)
def group_sums(codes, values, n_groups):  # pragma: no cover
    """pandas' groupby(codes).sum() of float64 `values` into n_groups sums, in one pass and to the
    bit: the same compensated (Kahan) sum per group, in row order, NaN skipped, and a compensation
    that turns NaN (inf - inf) reset to 0 (pandas' group_sum). A code below 0 is skipped. At 10M
    pages the generic-anchor links' juice summed per target by pandas took 2.2 s of one core."""
    sums = np.zeros(n_groups, np.float64)
    compensation = np.zeros(n_groups, np.float64)
    for i in range(len(codes)):
        g = codes[i]
        value = values[i]
        if g < 0 or value != value:
            continue
        y = value - compensation[g]
        t = sums[g] + y
        c = t - sums[g] - y
        compensation[g] = 0.0 if c != c else c
        sums[g] = t
    return sums


@njit(cache=True, nogil=True)
def first_distinct(group, value, n_groups, k):  # pragma: no cover
    """Per group (0 <= group < n_groups), its first k distinct values >= 0 in row order (-1 where
    it has fewer): a row per group. What drop_duplicates, then groupby.cumcount, did on pairs of
    strings (generic-anchor's first three distinct anchors per target: 2.5 s at 10M pages)."""
    out = np.full((n_groups, k), -1, np.int32)
    filled = np.zeros(n_groups, np.int32)
    for i in range(len(group)):
        g = group[i]
        v = value[i]
        if v < 0 or filled[g] >= k:
            continue
        seen = False
        for j in range(filled[g]):
            if out[g, j] == v:
                seen = True
                break
        if not seen:
            out[g, filled[g]] = v
            filled[g] += 1
    return out


# -- anchor-multiple-targets: the links whose anchor names several targets ----------------------
@njit(inline="always")
def _editorial_text(position, row, editorial_of, i):  # pragma: no cover
    """Whether link i is editorial and has anchor text."""
    p = position[i]
    return p >= 0 and row[i] >= 0 and editorial_of[p]


@njit(inline="always")
def _editorial_norm(position, row, editorial_of, norm_of, i):  # pragma: no cover
    """Link i's normalized anchor code when it is editorial and its anchor is not weak, else -1."""
    if not _editorial_text(position, row, editorial_of, i):
        return -1
    return norm_of[row[i]]


def shared_anchor_links(position, row, target_code, editorial_of, norm_of, target_of, n_norm):
    """linkjuice.audit._shared_anchors' links, in two passes over every link, each split among
    numba's threads (the caller's other thread is often done: at 10M pages the first pass was 3-4 s
    of one core while the other one waited): the editorial links (editorial_of[position]) whose
    anchor is not weak (norm_of[row], its normalized anchor's code: -1 when weak, i.e. empty or
    generic; row -1, no text: empty) and leads to more than one target (target_of[target_code]).
    NumPy made a mask, a gather and a copy of the editorial links for each step: 7 s of one core
    at 10M pages. Returns whether every such link's target is known (not -1: else the caller
    numbers the unresolved targets and calls again), and their positions (ascending), targets
    and normalized anchors."""
    cuts = (np.arange(get_num_threads() + 1, dtype=np.int64) * len(row)) // get_num_threads()
    with LOCK:  # parallel kernel
        known, several, candidates = _anchor_targets(position, row, target_code, editorial_of, norm_of, target_of,
                                                     n_norm, cuts)
        if not known or not several.any():
            return known, np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32)
        return _shared_links(position, row, target_code, editorial_of, norm_of, target_of, several, cuts,
                             candidates)


@njit(parallel=True, cache=True, nogil=True)
def _anchor_targets(position, row, target_code, editorial_of, norm_of, target_of, n_norm, cuts):  # pragma: no cover
    """The first pass: per normalized anchor, whether its candidate links lead to several targets;
    per part of the links (cuts), its candidates; False when a candidate's target is unknown."""
    parts = len(cuts) - 1
    one = np.full((parts, n_norm), -1, np.int32)  # (int32: half the cache lines of int64)
    several_in = np.zeros((parts, n_norm), np.bool_)
    candidates = np.zeros(parts, np.int64)
    unknown = np.zeros(parts, np.bool_)
    for c in prange(parts):
        hi = cuts[c + 1]
        for i in range(cuts[c], hi):
            j = i + LINKS_AHEAD
            if j < hi and _editorial_text(position, row, editorial_of, j):  # (most links are not: no fetch)
                _prefetch(norm_of, np.int64(row[j]))
                _prefetch(target_of, np.int64(target_code[j]))
            k = _editorial_norm(position, row, editorial_of, norm_of, i)
            if k < 0:
                continue
            t = np.int32(target_of[target_code[i]])
            if t < 0:
                unknown[c] = True
                break
            candidates[c] += 1
            seen = one[c, k]
            if seen == -1:
                one[c, k] = t
            elif seen != t:
                several_in[c, k] = True
    several = np.zeros(n_norm, np.bool_)
    if unknown.any():
        return False, several, candidates
    for k in prange(n_norm):
        first = np.int32(-1)
        for c in range(parts):
            if several_in[c, k]:
                several[k] = True
                break
            t = one[c, k]
            if t != -1:
                if first == -1:
                    first = t
                elif t != first:
                    several[k] = True
                    break
    return True, several, candidates


@njit(parallel=True, cache=True, nogil=True)
def _shared_links(position, row, target_code, editorial_of, norm_of, target_of, several, cuts,
                  candidates):  # pragma: no cover
    """The second pass: the candidate links whose anchor leads to several targets, each part of
    the links written at its own offset (room for all of its candidates, of which only what is
    filled is touched: fresh memory costs at its first touch), then joined in link order."""
    parts = len(cuts) - 1
    room = np.zeros(parts + 1, np.int64)
    room[1:] = np.cumsum(candidates)
    at = np.empty(room[-1], np.int64)
    target = np.empty(room[-1], np.int32)
    norm = np.empty(room[-1], np.int32)
    filled = np.zeros(parts, np.int64)
    for c in prange(parts):
        hi = cuts[c + 1]
        count = room[c]
        for i in range(cuts[c], hi):
            j = i + LINKS_AHEAD
            if j < hi and _editorial_text(position, row, editorial_of, j):
                _prefetch(norm_of, np.int64(row[j]))
            k = _editorial_norm(position, row, editorial_of, norm_of, i)
            if k >= 0 and several[k]:
                at[count] = i
                target[count] = target_of[target_code[i]]
                norm[count] = k
                count += 1
        filled[c] = count - room[c]
    total = filled.sum()
    out_at = np.empty(total, np.int64)
    out_target = np.empty(total, np.int32)
    out_norm = np.empty(total, np.int32)
    lo = 0
    for c in range(parts):
        f = filled[c]
        out_at[lo:lo + f] = at[room[c]:room[c] + f]
        out_target[lo:lo + f] = target[room[c]:room[c] + f]
        out_norm[lo:lo + f] = norm[room[c]:room[c] + f]
        lo += f
    return True, out_at, out_target, out_norm


# -- 64-bit hash to code: the audit's links meet their pages, targets and anchors --------------
class HashTable(NamedTuple):
    """An open-addressing table (linear probing) of distinct 64-bit keys to int32 codes."""

    keys: np.ndarray  # uint64 per slot
    codes: np.ndarray  # int32 per slot, -1: empty
    shift: int  # a key's first slot: (key x a Fibonacci constant) >> shift


_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)


def hash_table(keys: np.ndarray, codes: np.ndarray) -> HashTable:
    """The table of `keys` (distinct uint64) to `codes` (int32 >= 0), at most half full."""
    bits = max(4, int(2 * max(len(keys), 1) - 1).bit_length())
    table = HashTable(np.zeros(1 << bits, np.uint64), np.full(1 << bits, -1, np.int32), 64 - bits)
    _table_fill(table.keys, table.codes, np.uint64(table.shift), np.asarray(keys, np.uint64),
                np.asarray(codes, np.int32))
    return table


def hash_codes(table: HashTable, hashes: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """The code of each of `hashes` (uint64) in `table`: -1 where it is not there or `missing`
    (bool, optional) is set. The hashes come in the store's order, so the slots they look up are
    random (a cache miss each, as in a database's hash join): each is prefetched LINKS_AHEAD ahead."""
    out = np.empty(len(hashes), np.int32)
    with LOCK:  # parallel kernel
        _table_find(table.keys, table.codes, np.uint64(table.shift), np.asarray(hashes, np.uint64),
                    np.zeros(0, np.bool_) if missing is None else np.asarray(missing, np.bool_), out)
    return out


@njit(cache=True, nogil=True)
def _table_fill(keys, codes, shift, new_keys, new_codes):  # pragma: no cover
    mask = np.uint64(len(keys) - 1)
    for k in range(len(new_keys)):
        key = new_keys[k]
        i = (key * _FIBONACCI) >> shift
        while codes[i] != -1:
            i = (i + np.uint64(1)) & mask
        keys[i] = key
        codes[i] = new_codes[k]


@njit(parallel=True, cache=True, nogil=True)
def _table_find(keys, codes, shift, hashes, missing, out):  # pragma: no cover
    mask = np.uint64(len(keys) - 1)
    m = len(hashes)
    skip = len(missing) > 0
    for k in prange(m):
        if k + LINKS_AHEAD < m:
            ahead = (hashes[k + LINKS_AHEAD] * _FIBONACCI) >> shift
            _prefetch(keys, ahead)
            _prefetch(codes, ahead)
        out[k] = -1
        if skip and missing[k]:
            continue
        key = hashes[k]
        i = (key * _FIBONACCI) >> shift
        while codes[i] != -1:
            if keys[i] == key:
                out[k] = codes[i]
                break
            i = (i + np.uint64(1)) & mask


def string_bytes(array) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """The data bytes and the int32 offsets (from its first text) of an Arrow string array, as
    the text kernels below read them; no copy."""
    _, offsets, data = array.buffers()
    return (np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8),
            np.frombuffer(offsets, np.int32)[array.offset:array.offset + len(array) + 1])


@njit(inline="always")
def _word_byte(c):  # pragma: no cover
    """0: not a word character of an ASCII text; 1: a letter; 2: a digit; 3: "_"."""
    if (c >= 97 and c <= 122) or (c >= 65 and c <= 90):
        return 1
    if c >= 48 and c <= 57:
        return 2
    return 3 if c == 95 else 0


@njit(inline="always")
def _lower(c):  # pragma: no cover
    """An ASCII byte lower-cased."""
    return c + 32 if c >= 65 and c <= 90 else c


@njit(inline="always")
def _next_word(data, i, end):  # pragma: no cover
    """The next run of word characters in data[i:end]: (its start, its end, whether it is a word:
    it starts with a letter, holds no "_" and is 2+ long); (end, end, False) when there is none."""
    kind = 0
    while i < end:
        kind = _word_byte(data[i])
        if kind != 0:
            break
        i += 1
    if i == end:
        return end, end, False
    start = i
    ok = kind == 1
    i += 1
    while i < end:
        kind = _word_byte(data[i])
        if kind == 0:
            break
        ok &= kind != 3
        i += 1
    return start, i, ok and i - start >= 2


@njit(cache=True, nogil=True)
def ascii_words(data, offsets, rows):  # pragma: no cover
    """The words of the ASCII texts `rows` of an Arrow string array (its data bytes and its
    offsets, from the array's first text), split as linkjuice.relevance.tokenize_many splits them
    with Arrow's regex kernels: runs of [A-Za-z0-9_] that start with a letter, hold no "_" and
    are 2+ long, lower-cased. Returns (each word's text, from `rows`, in order; the words'
    int32 offsets into the third; their bytes). Two passes: count, then copy. At 10M pages the
    regex split took ~80 CPU s of the first score for 20M titles and h1s (RE2's set-up per text)."""
    words, size = _scan_words(data, offsets, rows, np.zeros(0, np.int64), np.zeros(1, np.int32),
                              np.zeros(0, np.uint8), False)
    owner = np.empty(words, np.int64)
    word_offsets = np.zeros(words + 1, np.int32)
    chars = np.empty(size, np.uint8)
    _scan_words(data, offsets, rows, owner, word_offsets, chars, True)
    return owner, word_offsets, chars


@njit(inline="always")
def _scan_words(data, offsets, rows, owner, word_offsets, chars, fill):  # pragma: no cover
    """ascii_words' pass: counts the words and their bytes, and with `fill` writes them too."""
    words = 0
    at = 0
    for k in range(len(rows)):
        i, end = offsets[rows[k]], offsets[rows[k] + 1]
        while i < end:
            start, i, ok = _next_word(data, i, end)
            if ok:
                if fill:
                    for j in range(start, i):
                        chars[at + j - start] = _lower(data[j])
                    owner[words] = rows[k]
                    word_offsets[words + 1] = at + i - start
                words += 1
                at += i - start
    return words, at


@njit(cache=True, nogil=True)
def ascii_normalized(data, offsets):  # pragma: no cover
    """Each text of an Arrow string array (its data bytes and its offsets, from the array's first
    text) as linkjuice.anchors.normalize_anchors normalises an ASCII text with Arrow's kernels:
    lower-cased, each run of characters other than [a-z0-9] one space, trimmed. Returns (int32
    offsets, bytes) of the normalised texts (none is longer than its text). At 10M pages the
    regex replace took 3-8 s of the audit's anchor checks for 10M distinct anchors."""
    n = len(offsets) - 1
    chars = np.empty(offsets[n] - offsets[0], np.uint8)
    normalized = np.zeros(n + 1, np.int32)
    at = 0
    for r in range(n):
        first = at
        gap = False
        for i in range(offsets[r], offsets[r + 1]):
            c = _lower(data[i])
            if (c >= 97 and c <= 122) or (c >= 48 and c <= 57):
                if gap and at > first:
                    chars[at] = 32
                    at += 1
                chars[at] = c
                at += 1
                gap = False
            else:
                gap = True
        normalized[r + 1] = at
    return normalized, chars[:at]


def smoke_test() -> None:
    """Compile (or load from the cache) and run every kernel once on a 3-page cycle; raises
    if this numba / llvmlite cannot build them."""
    indptr = np.array([0, 1, 2, 3], np.int64)
    indices = np.array([2, 0, 1], np.int32)
    x = np.array([0.2, 0.3, 0.5, 0.0])
    for data in (None, np.ones(3)):
        m = pattern_layout(indptr, indices) if data is None else to_sell(indptr, indices, data)
        with LOCK:
            if data is None:
                inv = np.array([1.0, 1.0, 1.0, -1.0])
                step_pattern(m, x.copy(), inv, 1 / 3, 0.85, 0.15, x, np.zeros(4), np.zeros(4))
            else:
                step_weighted(m, np.append(np.full(3, 1 / 3), 0.0), np.zeros(4), 0.85, 0.15, x, np.zeros(4))
    src, dst = np.array([0, 1, 2], np.int32), np.array([1, 2, 0], np.int32)
    sell_from_links(3, src, dst, np.ones(3), np.ones(3), np.zeros(0), np.ones(3, bool))
    pair_dots(indptr, indices, np.ones(3, np.float32), src, dst)
    count_codes(dst, 3)
    elsewhere_inlinks(src, dst, dst, np.zeros(3, np.int8), 0, True, np.array([-1, 0, 0], np.int64),
                      np.zeros(3, np.int32), np.full(3, -1, np.int32), np.full(3, -1, np.int32),
                      np.zeros(3, FLOW_PAGE)["inlinks"])
    group_sums(dst, np.ones(3), 3)
    first_distinct(dst, src, 3, 2)
    shared_anchor_links(np.zeros(3, np.int8), np.array([0, 1, -1], np.int32), np.array([0, 1, 2], np.int32),
                        np.ones(1, bool), np.zeros(2, np.int32), np.array([0, 1, 2], np.int32), 1)
    hash_codes(hash_table(np.array([7, 9], np.uint64), np.array([0, 1], np.int32)), np.array([9, 8], np.uint64))
    ascii_words(np.frombuffer(b"Ab c_d 9e fG", np.uint8), np.array([0, 6, 12], np.int32), np.array([0, 1], np.int64))
    ascii_normalized(np.frombuffer(b" Ab--c ", np.uint8), np.array([0, 7], np.int32))
    pair_juice(src, np.ones(3), np.ones(3), np.ones(3, np.float32), 0, 0.5, np.ones(3), np.ones(3))
    flow_sums(src, dst, dst, np.zeros(3, np.int8), np.zeros(3, np.int8), np.ones(3), np.ones(3, bool),
              np.zeros(3, bool), np.zeros(4, np.int32), 2, 2, 0, 1, np.zeros(8), np.zeros(8, np.int64),
              np.zeros(3, np.int64), np.zeros(3, np.int64), np.zeros(3, FLOW_PAGE))

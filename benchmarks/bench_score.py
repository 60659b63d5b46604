"""Scoring benchmark: classic PageRank on generated web-like graphs, linkjuice vs igraph,
networkit and networkx, with the memory-bandwidth bound of one iteration measured in the same run.

    .venv/bin/python benchmarks/bench_score.py --sizes 100k,1M

Every engine runs in its own subprocess (peak RSS = that process's VmHWM, the same as ru_maxrss
here; it includes the interpreter, the imports and the edge arrays it is handed) and starts from the same int32 edge
arrays. All stop on the same rule, an L1 change < 1e-10 between iterations: networkx scales its
tol by N, so it gets tol = 1e-10 / N; networkit gets the L1 norm and DistributeSinks (by default
it neither spreads dangling mass nor uses L1); igraph's PRPACK has its own fixed 1e-10 rule and
ARPACK its eigen-residual rule (neither is configurable from Python), so for them the agreement
column is the check. Results are compared with linkjuice's (max absolute difference).

The machine is shared and noisy: read the ratios between engines of one run, not absolute times.
Graphs are cached in .bench/graphs (git-ignored); results go to .bench/score-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench" / "graphs"
LINKS_PER_PAGE = 20
TOL = 1e-10
DAMPING = 0.85
ENGINES = ("linkjuice", "linkjuice-scipy", "igraph-prpack", "igraph-arpack", "networkit", "networkx")
NETWORKX_MAX_PAGES = 100_000  # a DiGraph of 2M links already takes ~2 GB and a minute to build


# -- graphs ---------------------------------------------------------------------------------------
def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def generate_graph(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A web-like site graph: n pages, exactly m distinct links, no self-links, sorted by (src, dst).

    Out-degrees are lognormal with 5% dangling pages. Each link is, with probability
    0.3 a template link (header/nav/footer) to one of the 100 hub pages (Zipf-like: hub k gets
    ~1/sqrt(k) of them), 0.5 a local link to a page within a few dozen ids (the same section;
    ids follow crawl order), 0.2 a content link to any page with a power-law popularity
    (P(id < t) = (t / n)^(1/3)). The in-degree is therefore heavy-tailed.
    """
    rng = np.random.default_rng(seed)
    over = int(m * 1.08)  # dropping duplicates and self-links loses a few percent
    weight = rng.lognormal(0.0, 1.0, n)
    weight[rng.random(n) < 0.05] = 0.0
    src = np.repeat(np.arange(n, dtype=np.int64), rng.multinomial(over, weight / weight.sum()))
    kind = rng.random(over)
    offset = (rng.standard_exponential(over) * 50).astype(np.int64) + 1
    offset[rng.random(over) < 0.5] *= -1
    hub = (min(100, n) * rng.random(over) ** 2).astype(np.int64)
    far = (n * rng.random(over) ** 3).astype(np.int64)
    dst = np.where(kind < 0.3, hub, np.where(kind < 0.8, np.clip(src + offset, 0, n - 1), far))
    del kind, offset, hub, far
    key = src * n + dst
    key = key[src != dst]
    del src, dst
    key.sort()
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    if len(key) > m:
        key = np.delete(key, rng.choice(len(key), len(key) - m, replace=False))
    return (key // n).astype(np.int32), (key % n).astype(np.int32)


def graph_path(pages: int) -> Path:
    return CACHE / f"web-{pages}-{pages * LINKS_PER_PAGE}-seed0.npz"


def ensure_graph(pages: int) -> Path:
    """The cached graph file, generated first (in a subprocess, so this process stays small:
    a child's ru_maxrss starts at its parent's peak, which exec does not reset)."""
    path = graph_path(pages)
    if not path.exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "_generate", str(pages)], check=True)
        print(f"  generated {path.name} in {time.perf_counter() - t:.1f} s")
    return path


def write_graph(pages: int) -> None:
    path = graph_path(pages)
    CACHE.mkdir(parents=True, exist_ok=True)
    src, dst = generate_graph(pages, pages * LINKS_PER_PAGE)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, src=src, dst=dst, n=np.int64(pages))
    tmp.rename(path)


def load_graph(path: Path) -> tuple[int, np.ndarray, np.ndarray]:
    with np.load(path) as f:
        return int(f["n"]), f["src"], f["dst"]


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (exact, per process), else ru_maxrss (KiB on Linux)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- engines (each runs in a fresh subprocess) ------------------------------------------------------
def run_engine(name: str, path: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    n, src, dst = load_graph(path)
    info: dict = {"engine": name, "load_s": time.perf_counter() - t0}
    if name.startswith("linkjuice"):
        from linkjuice.score import classic_pagerank

        # Warm up on a tiny graph: numba compiles its kernels on first use (cached on disk after),
        # and imports load lazily; neither belongs to the scoring time of a graph.
        choice = os.environ.get("LINKJUICE_NUMBA")
        os.environ["LINKJUICE_NUMBA"] = choice or "1"  # use the kernels even on the tiny graph
        t = time.perf_counter()
        ring = np.arange(300, dtype=np.int32)
        classic_pagerank(300, ring, np.roll(ring, 1))
        info["warmup_s"] = time.perf_counter() - t
        if choice is None:
            del os.environ["LINKJUICE_NUMBA"]
        info["rss_before_mb"] = peak_rss_mb()
        t = time.perf_counter()
        result = classic_pagerank(n, src, dst, damping=DAMPING, tol=TOL)
        info["build_s"] = None
        info["score_s"] = time.perf_counter() - t
        scores, info["iterations"] = result.scores, result.iterations
    elif name.startswith("igraph"):
        import igraph

        info["rss_before_mb"] = peak_rss_mb()
        t = time.perf_counter()
        g = igraph.Graph(n=n, edges=np.column_stack([src, dst]), directed=True)
        info["build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        scores = np.asarray(g.pagerank(damping=DAMPING, implementation=name.split("-")[1]))
        info["score_s"] = time.perf_counter() - t
        info["iterations"] = None
    elif name == "networkit":
        import networkit as nk

        nk.engineering.setLogLevel("ERROR")
        info["threads"] = nk.getMaxNumberOfThreads()
        info["rss_before_mb"] = peak_rss_mb()
        t = time.perf_counter()
        g = nk.GraphFromCoo((src.astype(np.uint64), dst.astype(np.uint64)), n=n, directed=True)
        info["build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        pr = nk.centrality.PageRank(g, damp=DAMPING, tol=TOL,
                                    distributeSinks=nk.centrality.SinkHandling.DistributeSinks)
        pr.norm = nk.centrality.Norm.L1_NORM
        pr.run()
        scores = np.asarray(pr.scores())
        info["score_s"] = time.perf_counter() - t
        info["iterations"] = pr.numberOfIterations()
    elif name == "networkx":
        import networkx as nx

        info["rss_before_mb"] = peak_rss_mb()
        t = time.perf_counter()
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_edges_from(zip(src.tolist(), dst.tolist()))
        info["build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ranks = nx.pagerank(g, alpha=DAMPING, tol=TOL / n, max_iter=1000)
        scores = np.fromiter((ranks[i] for i in range(n)), np.float64, n)
        info["score_s"] = time.perf_counter() - t
        info["iterations"] = None
    else:
        raise SystemExit(f"unknown engine {name}")
    info["total_s"] = info["score_s"] + (info["build_s"] or 0.0)
    info["peak_rss_mb"] = peak_rss_mb()
    np.save(out, scores)
    return info


# -- the bandwidth bound and the iteration kernels ---------------------------------------------------
def copy_rate(threads: int = 1) -> float:
    """Bytes per second that np.copyto moves (read + write) on arrays far larger than the caches,
    with `threads` Python threads each copying its share (numpy releases the GIL while it copies)."""
    from concurrent.futures import ThreadPoolExecutor

    a = np.ones(32 * 2**20)  # 256 MiB
    b = np.zeros_like(a)
    parts = np.array_split(np.arange(len(a)), threads)
    cuts = [(int(p[0]), int(p[-1]) + 1) for p in parts]
    with ThreadPoolExecutor(threads) as pool:
        def run() -> None:
            list(pool.map(lambda c: np.copyto(b[c[0]:c[1]], a[c[0]:c[1]]), cuts))
        best = min(_timed(run) for _ in range(7))
    return 2 * a.nbytes / best


def _timed(f, *args) -> float:
    t = time.perf_counter()
    f(*args)
    return time.perf_counter() - t


def _csr_kernels():
    """The CSR kernels that linkjuice iterated before the SELL layout (for the 'before' rows):
    one row at a time, two partial sums, rows split into blocks of equal link counts."""
    from numba import njit, prange

    @njit(parallel=True, nogil=True)
    def step_pattern(bounds, indptr, indices, z, inv_out, teleport, dangling, damping, c, x, x_new, z_new):
        diff = 0.0
        dm = 0.0
        for b in prange(len(bounds) - 1):
            for i in range(bounds[b], bounds[b + 1]):
                acc0 = 0.0
                acc1 = 0.0
                k = indptr[i]
                end = indptr[i + 1]
                while k + 1 < end:
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

    @njit(parallel=True, nogil=True)
    def step_weighted(bounds, indptr, indices, data, teleport, dangling, damping, c, x, x_new):
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

    return step_pattern, step_weighted


def _sell_kernels():
    """The SELL-8 pattern kernel that linkjuice iterated before the near / far / long split (for
    the 'before' row): every link in SELL-8 chunks, uint32 sources, prefetch 32 columns ahead,
    long rows row by row per stripe (`_kernels.to_sell` still builds that layout)."""
    from numba import njit, prange

    from linkjuice import _kernels as K

    @njit(parallel=True, nogil=True)
    def _sell_pattern(blocks, cptr, idx, rows, sums, z, inv, t0, damping, c, x, x_new, z_new):
        last = cptr[len(cptr) - 1] - min(cptr[len(cptr) - 1], K._AHEAD)  # prefetch below the end
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
                while k < end:  # unsigned k: no wrap-around check per gather
                    if k < last:
                        K._prefetch8(z, idx, k + K._AHEAD)
                    a0 += z[idx[k]]
                    a1 += z[idx[k + K._1]]
                    a2 += z[idx[k + K._2]]
                    a3 += z[idx[k + K._3]]
                    a4 += z[idx[k + K._4]]
                    a5 += z[idx[k + K._5]]
                    a6 += z[idx[k + K._6]]
                    a7 += z[idx[k + K._7]]
                    k += K._8
                K._store8(sums, ch * 8, a0, a1, a2, a3, a4, a5, a6, a7)
            d = 0.0
            m = 0.0
            for i in range(blocks[b] * 8, blocks[b + 1] * 8):  # apart: a simple loop, 20% faster
                row = rows[i]
                w = inv[row]
                v = damping * sums[i] + (c * t0 if w >= 0.0 else 0.0)
                d += abs(v - x[row])
                x_new[row] = v
                z_new[row] = v * max(w, 0.0)
                m += v if w == 0.0 else 0.0
            diff += d
            dm += m
        return diff, dm

    @njit(parallel=True, nogil=True)
    def _long_pattern(long_cut, long_idx, z, part):
        for s in prange(long_cut.shape[0] - 1):
            for h in range(long_cut.shape[1]):
                a0 = 0.0
                a1 = 0.0
                a2 = 0.0
                a3 = 0.0
                k = np.uint64(long_cut[s, h])
                end = np.uint64(long_cut[s + 1, h])
                while k + K._3 < end:
                    a0 += z[long_idx[k]]
                    a1 += z[long_idx[k + K._1]]
                    a2 += z[long_idx[k + K._2]]
                    a3 += z[long_idx[k + K._3]]
                    k += K._4
                while k < end:
                    a0 += z[long_idx[k]]
                    k += K._1
                part[s, h] = (a0 + a1) + (a2 + a3)

    @njit(nogil=True)
    def _long_finish_pattern(long_rows, part, inv, t0, damping, c, x, x_new, z_new):
        diff = 0.0
        dm = 0.0
        for h in range(len(long_rows)):
            acc = 0.0
            for s in range(part.shape[0]):
                acc += part[s, h]
            row = long_rows[h]
            w = inv[row]
            v = damping * acc + (c * t0 if w >= 0.0 else 0.0)
            diff += abs(v - x[row])
            x_new[row] = v
            z_new[row] = v * max(w, 0.0)
            dm += v if w == 0.0 else 0.0
        return diff, dm

    def step_pattern(m, z, inv, t0, damping, c, x, x_new, z_new):
        if len(m.long_rows):
            _long_pattern(m.long_cut, m.long_idx, z, m.part)
        d0, m0 = _sell_pattern(m.blocks, m.cptr, m.idx, m.rows, m.sums, z, inv, t0, damping, c, x, x_new, z_new)
        d1, m1 = _long_finish_pattern(m.long_rows, m.part, inv, t0, damping, c, x, x_new, z_new)
        return d0 + d1, m0 + m1

    return step_pattern


def run_iteration_probe(path: Path) -> dict:
    """Time one iteration of each inner loop on the graph, against the bandwidth bound.

    The bound of a loop is the bytes its matrix format must read (all of its index and value
    arrays) plus x read once and y written once, over the copy rate; it is given for the copy
    rate of 1 thread and of 2 threads, and each numba loop is timed on 1 and on 2 threads (best of
    10, the loops taking turns)."""
    import scipy.sparse as sp

    from linkjuice.graph import csr_pattern

    n, src, dst = load_graph(path)
    indptr, indices = csr_pattern(n, dst, src)  # in-link pattern, as classic_pagerank builds it
    indptr = indptr.astype(np.int64)
    nnz = len(indices)
    outdeg = np.bincount(indices, minlength=n).astype(np.float64)
    inv = np.divide(1.0, outdeg, out=np.zeros(n), where=outdeg > 0)
    dangling = (outdeg == 0).astype(np.float64)
    teleport = np.full(n, 1.0 / n)
    x = teleport.copy()
    rates = {1: copy_rate(1), 2: copy_rate(2)}
    rows: dict = {}
    vec = 2 * 8 * n  # x read once + y written once
    csr_pattern_bytes = indptr.nbytes + 4 * nnz + vec  # int64 indptr + int32 indices
    csr_f64_bytes = csr_pattern_bytes + 8 * nnz
    reps = 10
    mt = sp.csr_array((inv[indices], indices, indptr), shape=(n, n))

    def scipy_step() -> None:  # the body of power_iterate's scipy loop
        y = mt @ x
        y += float(dangling @ x) * teleport
        y *= DAMPING
        y += (1 - DAMPING) * teleport
        float(np.abs(y - x).sum())

    rows["scipy CSR f64 + vector ops"] = {1: min(_timed(scipy_step) for _ in range(reps)), "bytes": csr_f64_bytes}
    layout = {}
    try:
        import numba

        from linkjuice import _kernels
    except ImportError:
        kernels = None
    else:
        kernels = _kernels
    if kernels is not None:
        old_pattern, old_weighted = _csr_kernels()
        sell_pattern = _sell_kernels()
        ind_u = indices.view(np.uint32)
        z, x_new, z_new = x * inv, np.empty(n), np.empty(n)
        data = inv[indices]
        kernels.to_sell(indptr[:2] * 0, indices[:0], data[:0])  # compiled (or loaded) before timing
        kernels.pattern_layout(indptr[:2] * 0, indices[:0])
        t = time.perf_counter()
        pattern = kernels.pattern_layout(indptr, indices, outdeg == 0)  # as classic_pagerank builds it
        layout["build_pattern_s"] = time.perf_counter() - t
        t = time.perf_counter()
        weighted = kernels.to_sell(indptr, indices, data)
        layout["build_weighted_s"] = time.perf_counter() - t
        sell = kernels.to_sell(indptr, indices)
        layout.update(links=nnz, near_slots=int(pattern.cptr[-1]), near_index=str(pattern.idx.dtype),
                      far_links=len(pattern.far_ent), long_rows=len(pattern.long_rows),
                      long_links=len(pattern.long_ent), sell_slots=int(sell.cptr[-1]))
        inv_p = np.append(inv, -1.0)
        xp, xp_new = np.append(x, 0.0), np.zeros(n + 1)
        zp, zp_new = xp * np.maximum(inv_p, 0.0), np.zeros(n + 1)
        tp, dp = np.append(teleport, 0.0), np.append(dangling, 0.0)
        layouts = {"pattern": pattern, "weighted": weighted, "sell": sell}
        cases = {
            "numba CSR pattern (before)": (csr_pattern_bytes, lambda b, L: old_pattern(
                b, indptr, ind_u, z, inv, teleport, dangling, DAMPING, 0.1, x, x_new, z_new)),
            "numba CSR f64 (before)": (csr_f64_bytes, lambda b, L: old_weighted(
                b, indptr, ind_u, data, teleport, dangling, DAMPING, 0.1, x, x_new)),
            "numba SELL pattern (before)": (sell.nbytes() + vec, lambda b, L: sell_pattern(
                L["sell"], zp, inv_p, 1.0 / n, DAMPING, 0.1, xp, xp_new, zp_new)),
            "numba split pattern (classic)": (pattern.nbytes() + vec, lambda b, L: kernels.step_pattern(
                L["pattern"], zp, inv_p, 1.0 / n, DAMPING, 0.1, xp, xp_new, zp_new)),
            "numba SELL f64 (juice model)": (weighted.nbytes() + vec, lambda b, L: kernels.step_weighted(
                L["weighted"], tp, dp, DAMPING, 0.1, xp, xp_new)),
        }
        for name, (nbytes, step) in cases.items():
            rows[name] = {"bytes": nbytes}
        for threads in (1, 2):
            numba.set_num_threads(threads)
            bounds = np.searchsorted(indptr, np.linspace(0, nnz, 8 * threads + 1)).astype(np.int64)
            cut = {name: kernels.for_threads(m, threads) for name, m in layouts.items()}
            for name, (nbytes, step) in cases.items():
                step(bounds, cut)
            for _ in range(reps):  # interleaved: a burst of other work slows every loop alike
                for name, (nbytes, step) in cases.items():
                    t = _timed(step, bounds, cut)
                    rows[name][threads] = min(rows[name].get(threads, t), t)
    out = {}
    for name, r in rows.items():
        out[name] = {"bytes_mb": r["bytes"] / 1e6, "vs_csr_f64_bytes": r["bytes"] / csr_f64_bytes}
        for threads in (1, 2):
            if threads in r:
                bound = r["bytes"] / rates[threads]
                out[name][f"ms_{threads}t"] = r[threads] * 1e3
                out[name][f"bound_ms_{threads}t"] = bound * 1e3
                out[name][f"ratio_{threads}t"] = r[threads] / bound
                out[name][f"ratio_csr_f64_bound_{threads}t"] = r[threads] / (csr_f64_bytes / rates[threads])
    return {"copy_gbps": {f"{k}t": v / 1e9 for k, v in rates.items()}, "layout": layout, "kernels": out}


def subprocess_json(args: list[str], env: dict | None = None, timeout: float = 900) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the report -----------------------------------------------------------------------------------
def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem / 2**20, 1),
            "python": platform.python_version(), "numpy": np.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1M", help="pages per graph (links = 20 x pages)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; the fastest is kept")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "score-results.json")
    parser.add_argument("--no-probe", action="store_true", help="skip the per-iteration kernel probe")
    parser.add_argument("--plot", type=Path, help="write a log-log PNG of time and peak RSS vs graph size")
    parser.add_argument("--max-pages", default="", help="per-engine size caps, e.g. igraph-arpack=1M,networkit=3M")
    args = parser.parse_args()
    caps = {k: parse_size(v) for k, v in (item.split("=") for item in args.max_pages.split(",") if item)}
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    results = {"machine": machine(), "command": " ".join(sys.argv), "sizes": []}
    print(f"machine: {results['machine']}")
    for pages in map(parse_size, args.sizes.split(",")):
        path = ensure_graph(pages)
        entry: dict = {"pages": pages, "links": pages * LINKS_PER_PAGE, "engines": {}, "loadavg": os.getloadavg()}
        print(f"\n## {pages:,} pages / {pages * LINKS_PER_PAGE:,} links")
        if not args.no_probe:
            entry["probe"] = subprocess_json(["_probe", str(path)])
            probe = entry["probe"]
            if "error" in probe:
                print(f"  iteration probe failed: {probe['error']}")
            else:
                rates = probe["copy_gbps"]
                print(f"  numpy copy rate (read + write): {rates['1t']:.1f} GB/s 1 thread, {rates['2t']:.1f} GB/s 2 threads")
                print(f"  layout: {probe['layout']}")
                for name, k in probe["kernels"].items():
                    for t in (1, 2):
                        if f"ms_{t}t" in k:
                            print(f"  one iteration, {name:30s} {t} thr {k[f'ms_{t}t']:7.1f} ms   "
                                  f"bound {k[f'bound_ms_{t}t']:5.1f} ms ({k['bytes_mb']:.0f} MB)   "
                                  f"ratio {k[f'ratio_{t}t']:5.2f}   vs CSR f64 bound {k[f'ratio_csr_f64_bound_{t}t']:5.2f}")
        ref = None
        for name in engines:
            if pages > caps.get(name, NETWORKX_MAX_PAGES if name == "networkx" else pages):
                continue
            env = {"LINKJUICE_NUMBA": "0"} if name == "linkjuice-scipy" else {}
            out = CACHE / f"scores-{name}-{pages}.npy"
            best: dict | None = None
            for _ in range(args.repeat):
                info = subprocess_json(["_engine", name, str(path), str(out)], env=env)
                if "error" in info or best is None or info["total_s"] < best["total_s"]:
                    best = info
                if "error" in info:
                    break
            assert best is not None
            if "error" not in best:
                scores = np.load(out)
                if ref is None:
                    ref = scores
                best["max_abs_diff"] = float(np.abs(scores - ref).max())
                best["sum"] = float(scores.sum())
            entry["engines"][name] = best
            print("  " + format_row(name, best))
        results["sizes"].append(entry)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {args.out}")
    print("\n" + markdown_table(results))
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


def markdown_table(results: dict) -> str:
    lines = ["| pages / links | engine | build s | score s | total s | vs linkjuice | iterations | peak RSS MB | max abs diff |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in results["sizes"]:
        ref = entry["engines"].get("linkjuice", {}).get("total_s")
        for name, r in entry["engines"].items():
            size = f"{entry['pages'] / 1e6:g}M / {entry['links'] / 1e6:g}M"
            if "error" in r:
                lines.append(f"| {size} | {name} | failed: {r['error']} | | | | | | |")
                continue
            build = f"{r['build_s']:.2f}" if r.get("build_s") is not None else "(in total)"
            ratio = f"{r['total_s'] / ref:.1f}x" if ref else ""
            lines.append(f"| {size} | {name} | {build} | {r['score_s']:.2f} | {r['total_s']:.2f} | {ratio} | "
                         f"{r.get('iterations') or '-'} | {r['peak_rss_mb']:.0f} | {r['max_abs_diff']:.1e} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = dict.fromkeys(name for e in results["sizes"] for name in e["engines"])
    for name in names:
        pts = [(e["links"], e["engines"][name]) for e in results["sizes"]
               if name in e["engines"] and "error" not in e["engines"][name]]
        if not pts:
            continue
        links = [p[0] for p in pts]
        ax_t.plot(links, [p[1]["total_s"] for p in pts], "o-", label=name)
        ax_m.plot(links, [p[1]["peak_rss_mb"] for p in pts], "o-", label=name)
    sizes = [e["links"] for e in results["sizes"]]
    for ax, label in ((ax_t, "time from edge arrays to scores (s)"), (ax_m, "peak RSS of the process (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{s / 1e6:g}M" for s in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"links (pages = links / {LINKS_PER_PAGE})")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(f"Classic PageRank to L1 change < 1e-10, web-like graphs; {m['nproc']} cores, {m['cpu']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def format_row(name: str, r: dict) -> str:
    if "error" in r:
        return f"{name:16s} failed: {r['error']}"
    build = f"{r['build_s']:6.2f}" if r.get("build_s") is not None else "     -"
    its = r.get("iterations") or "-"
    return (f"{name:16s} build {build} s  score {r['score_s']:6.2f} s  total {r['total_s']:6.2f} s  "
            f"iters {its!s:>4}  peak RSS {r['peak_rss_mb']:6.0f} MB (before {r['rss_before_mb']:4.0f})  "
            f"max|diff| {r['max_abs_diff']:.1e}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_engine":
        print(json.dumps(run_engine(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "_generate":
        write_graph(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_probe":
        print(json.dumps(run_iteration_probe(Path(sys.argv[2]))))
    else:
        main()

"""Engines on the same graph: local (DuckDB + scipy in one process) against the Dask engine on a
LocalCluster, from the same Parquet datasets. Results go to docs/scaling.md.

    .venv/bin/python benchmarks/bench_engines.py                       # 100k/2M and 1M/20M
    .venv/bin/python benchmarks/bench_engines.py --sizes 100000:2000000 --workers 2

Each engine runs in a fresh subprocess so that its peak RSS is its own (for Dask with worker
processes: the client's plus every worker's). The graph is web-like: every page links to a few
template pages (nav/footer), content links prefer popular pages and nearby pages; 5% of pages are
not indexable, 3% of links are external and 2% nofollow, so every part of the model is exercised.
Needs the dask extra: pip install -e '.[dask]'.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

__all__ = ["make_graph", "run_local", "run_dask"]

ORIGIN = "https://site.example/p/"


def _urls(ids: np.ndarray, prefix: str = ORIGIN) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(ids), pa.string()), "")


def make_graph(directory: Path, n: int, m: int, *, seed: int = 7, rows_per_file: int = 1_000_000) -> dict[str, int]:
    """Write pages/ and link_flows/ datasets (the columns rank_parquet reads) for a web-like graph."""
    rng = np.random.default_rng(seed)
    template = min(40, n)
    src = np.sort(rng.integers(0, n, m))
    kind = rng.random(m)
    popular = (n * rng.random(m) ** 3).astype(np.int64)  # skewed towards low ids
    nearby = (src + rng.geometric(0.05, m)) % n
    dst = np.where(kind < 0.25, rng.integers(0, template, m), np.where(kind < 0.6, popular, nearby))
    key = np.unique(src * n + dst)  # one row per (source, target), no self-links
    src, dst = key // n, key % n
    keep = src != dst
    src, dst = src[keep], dst[keep]
    links = len(src)
    indexable = rng.random(n) >= 0.05
    indexable[:template] = True
    external = rng.random(links) < 0.03
    nofollow = ~external & (rng.random(links) < 0.02)
    target = _urls(dst)
    ext_urls = _urls(rng.integers(0, 1_000_000, links), "https://elsewhere.example/")
    target_url = pc.if_else(pa.array(external), ext_urls, target)
    reason = np.where(external, "external", np.where(nofollow, "nofollow",
                                                     np.where(indexable[dst], "passed", "non_indexable")))
    resolved_url = pc.if_else(pa.array(external), pa.nulls(links, pa.string()), target)
    weight = np.where(dst < template, 0.5, 1.0) * (0.5 + 0.5 * rng.random(links))
    pages = pa.table({"url": _urls(np.arange(n)), "indexable": indexable,
                      "teleport": np.where(indexable, 1.0 / indexable.sum(), np.nan)})
    flows = pa.table({"source_url": _urls(src), "target_url": target_url, "resolved_url": resolved_url,
                      "weight": weight, "reason": pa.array(reason), "pass_factor": np.ones(links)})
    for name, table in (("pages", pages), ("link_flows", flows)):
        out = directory / name
        out.mkdir(parents=True, exist_ok=True)
        for i, start in enumerate(range(0, max(len(table), 1), rows_per_file)):
            pq.write_table(table.slice(start, rows_per_file), out / f"part-{i}.parquet", row_group_size=122_880)
    return {"pages": n, "links": links}


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_local(directory: Path) -> dict[str, object]:
    """The local engine on the same datasets: DuckDB maps URLs to ids, scipy iterates."""
    import duckdb

    from linkjuice.score import classic_pagerank, juice_rank

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"CREATE TABLE p AS SELECT (row_number() OVER () - 1)::BIGINT AS id, url, indexable, teleport "
                f"FROM read_parquet('{directory}/pages/*.parquet')")
    pages = con.execute("SELECT id, url, indexable, teleport FROM p ORDER BY id").fetchnumpy()
    flows = con.execute(
        f"""SELECT s.id AS src, coalesce(r.id, -1) AS res, coalesce(t.id, -1) AS dst, f.weight,
                   f.reason = 'passed' AS passes, f.pass_factor
            FROM read_parquet('{directory}/link_flows/*.parquet') f JOIN p s ON s.url = f.source_url
            LEFT JOIN p r ON r.url = f.resolved_url LEFT JOIN p t ON t.url = f.target_url""").fetchnumpy()
    con.close()
    n = len(pages["id"])
    ranked = pages["indexable"].astype(bool)
    teleport = np.nan_to_num(pages["teleport"].astype(np.float64))
    ids_s = time.perf_counter() - started
    started = time.perf_counter()
    juice, _ = juice_rank(n, flows["src"], flows["res"], flows["weight"], flows["passes"], ranked=ranked,
                          teleport=teleport, pass_factor=flows["pass_factor"])
    known = flows["dst"] >= 0
    classic = classic_pagerank(n, flows["src"][known], flows["dst"][known], nodes=ranked)
    iterate_s = time.perf_counter() - started
    # One mat-vec over all links, the work a cluster would split (the CSR build is not counted).
    keep = flows["passes"] & (flows["res"] >= 0)
    mt = sp.csr_array((flows["weight"][keep], (flows["res"][keep], flows["src"][keep])), shape=(n, n))
    x = np.full(n, 1.0 / n)
    matvec_ms = _best_ms(lambda: mt @ x)
    return {"engine": "local", "ids_s": ids_s, "blocks_s": 0.0, "iterate_s": iterate_s, "start_s": 0.0,
            "matvec_ms": matvec_ms, "comm_ms": 0.0,
            "iterations": juice.iterations + classic.iterations, "peak_rss": _peak_rss_bytes(),
            "scores": _save_scores(directory, "local", pages["url"], classic.scores, juice.scores)}


def run_dask(directory: Path, workers: int, processes: bool) -> dict[str, object]:
    import logging

    from distributed import Client, LocalCluster

    from linkjuice.engines.dask import rank_parquet

    started = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, host="127.0.0.1" if processes else None, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        start_s = time.perf_counter() - started
        ranks = rank_parquet(client, f"{directory}/pages", f"{directory}/link_flows")
        comm_ms = _communication_ms(client, len(ranks.url), workers)
        worker_rss = client.run(_peak_rss_bytes) if processes else {}
    peak = _peak_rss_bytes() + sum(worker_rss.values())
    label = f"dask, {workers} {'processes' if processes else 'threads'}"
    return {"engine": label, "start_s": start_s, "comm_ms": comm_ms, "matvec_ms": 0.0, "ids_s": ranks.seconds["ids"], "blocks_s": ranks.seconds["blocks"],
            "iterate_s": ranks.seconds["iterate"], "iterations": ranks.juice.iterations + ranks.pagerank.iterations,
            "peak_rss": peak, "scores": _save_scores(directory, label, ranks.url, ranks.pagerank.scores, ranks.juice.scores)}


def _best_ms(step, repeat: int = 10) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _slice(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return x[lo:hi].copy()


def _communication_ms(client, n: int, blocks: int) -> float:  # type: ignore[no-untyped-def]
    """One iteration of the Dask engine without the arithmetic: broadcast x, one task per block
    that returns its slice, gather: what the cluster adds to each iteration."""
    bounds = np.linspace(0, n, blocks + 1).astype(int)
    x = np.full(n, 1.0 / n)

    def step() -> None:
        x_f = client.scatter(x, broadcast=True, hash=False)
        client.gather([client.submit(_slice, x_f, int(bounds[i]), int(bounds[i + 1]), pure=False)
                       for i in range(blocks)])
    return _best_ms(step)


def _save_scores(directory: Path, label: str, url: np.ndarray, pagerank: np.ndarray, juice: np.ndarray) -> str:
    path = directory / f"scores-{label.replace(' ', '_').replace(',', '')}.parquet"
    pq.write_table(pa.table({"url": pa.array(url, pa.string()), "pagerank": pagerank, "juice": juice}), path)
    return str(path)


def _max_diff(a_path: str, b_path: str) -> float:
    a = pq.read_table(a_path).to_pandas().set_index("url").sort_index()
    b = pq.read_table(b_path).to_pandas().set_index("url").sort_index()
    return float(max(np.abs(a["pagerank"] - b["pagerank"]).max(), np.abs(a["juice"] - b["juice"]).max()))


def _child(args: argparse.Namespace) -> None:
    directory = Path(args.dir)
    if args.engine == "local":
        result = run_local(directory)
    else:
        result = run_dask(directory, args.workers, processes=args.engine == "dask-processes")
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000:2000000,1000000:20000000", help="pages:links,...")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="local,dask-threads,dask-processes")
    parser.add_argument("--json", help="Also write the results here.")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        _child(args)
        return
    rows = []
    for size in args.sizes.split(","):
        n, m = (int(v) for v in size.split(":"))
        with tempfile.TemporaryDirectory(prefix="lj-bench-engines-") as tmp:
            started = time.perf_counter()
            shape = make_graph(Path(tmp), n, m)
            print(f"graph {shape['pages']:,} pages / {shape['links']:,} links written in "
                  f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
            results = []
            for engine in args.engines.split(","):
                started = time.perf_counter()
                out = subprocess.run([sys.executable, __file__, "--engine", engine, "--dir", tmp,
                                      "--workers", str(args.workers)], capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{engine} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result["total_s"] = time.perf_counter() - started
                result.update(shape)
                results.append(result)
                print(f"  {engine}: {result['total_s']:.1f}s", file=sys.stderr)
            local = next((r for r in results if r["engine"] == "local"), None)
            for r in results:
                r["max_diff"] = _max_diff(local["scores"], r["scores"]) if local else float("nan")
                rows.append({k: v for k, v in r.items() if k != "scores"})
    print("| graph | engine | cluster start | read + map URLs | build blocks | iterate (both models) "
          "| per iteration | of which mat-vec / communication | total | peak RSS | max diff vs local |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = r["iterate_s"] / max(r["iterations"], 1)
        split = f"{r['matvec_ms']:.1f} ms mat-vec" if r["engine"] == "local" else f"{r['comm_ms']:.1f} ms comm."
        print(f"| {r['pages']:,} / {r['links']:,} | {r['engine']} | {r['start_s']:.1f} s | {r['ids_s']:.1f} s "
              f"| {r['blocks_s']:.1f} s | {r['iterate_s']:.2f} s ({r['iterations']} it.) | {per * 1000:.1f} ms "
              f"| {split} | {r['total_s']:.1f} s | {r['peak_rss'] / 2**30:.2f} GiB | {r['max_diff']:.1e} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()

"""Two versions of the crawler, side by side: the CPU each process spends a page, old vs new.

    .venv/bin/python benchmarks/crawl_ab.py /path/to/old/src /path/to/new/src --pages 20000 --rounds 3

On a machine shared with other jobs, a process's CPU a page follows the load (caches, SMT
siblings, frequency) by ±25% from one minute to the next, so runs one after the other compare
badly. Here each round crawls the generated site of bench_crawl.py with both versions at the same
time, each against its own nginx worker, in processes started with PYTHONPATH set to one version's
source; both see the same load. The crawl is crawl_phase.py's (uvloop, rare collections,
concurrency 16, robots.txt and sitemaps off). Rounds alternate which version starts first.
Reports, per round and as the median over rounds, the CPU µs a page of the event loop's process
(its threads included), of the extraction workers and of nginx, their total, and new / old; and
each crawl's wall seconds (the two compete for the same cores: only a hint).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crawl import Nginx, generate_site  # noqa: E402

_CRAWL = """
import asyncio, json, resource, sys, time
from linkjuice.config import CrawlConfig
from linkjuice.crawl.crawler import Crawler, _loop_factory, rare_collections
from linkjuice.store import Store
def cpu():
    return {who: (u := resource.getrusage(getattr(resource, f"RUSAGE_{who.upper()}"))).ru_utime + u.ru_stime
            for who in ("self", "children")}
before, started = cpu(), time.perf_counter()
with Store(sys.argv[2]) as store:
    config = CrawlConfig(start_url=sys.argv[1], obey_robots=False, use_sitemaps=False, concurrency=16)
    crawler = Crawler(config, store)
    with asyncio.Runner(loop_factory=_loop_factory(config)) as runner, rare_collections():
        summary = runner.run(crawler.run())
after, seconds = cpu(), time.perf_counter() - started
print(json.dumps({"pages": summary.pages, "seconds": seconds, **{who: after[who] - before[who] for who in after}}))
"""


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the old version's source folder (its PYTHONPATH)")
    parser.add_argument("new", help="the new version's source folder")
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lj-crawl-ab-") as tmp:
        tmp_path = Path(tmp)
        tmp_path.chmod(0o755)  # nginx workers drop root and must read the site
        generate_site(tmp_path / "site", args.pages)
        versions = {"old": args.old, "new": args.new}
        servers = {}
        try:
            for name in versions:
                (tmp_path / name).mkdir()
                servers[name] = Nginx(tmp_path / "site", tmp_path / name)
            nginx_pids = {name: int(Path(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children").read_text().split()[0])
                          for name, s in servers.items()}
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in versions}
            for round_ in range(args.rounds):
                order = list(versions) if round_ % 2 == 0 else list(reversed(versions))
                nginx0 = {name: _process_cpu(pid) for name, pid in nginx_pids.items()}
                procs = {}
                for name in order:
                    db = tmp_path / f"{name}.duckdb"
                    db.unlink(missing_ok=True)
                    env = {**os.environ, "PYTHONPATH": versions[name]}
                    procs[name] = subprocess.Popen([sys.executable, "-c", _CRAWL, servers[name].url, str(db)],
                                                   env=env, stdout=subprocess.PIPE, text=True)
                for name, proc in procs.items():
                    out, _ = proc.communicate()
                    if proc.returncode:
                        raise SystemExit(f"{name} crawl failed ({proc.returncode})")
                    result = json.loads(out.strip().splitlines()[-1])
                    n = result["pages"]
                    rows[name].append({"loop": result["self"] / n * 1e6, "workers": result["children"] / n * 1e6,
                                       "nginx": (_process_cpu(nginx_pids[name]) - nginx0[name]) / n * 1e6})
                    rows[name][-1]["total"] = sum(rows[name][-1].values())
                    rows[name][-1]["wall s"] = result["seconds"]
                print(f"round {round_ + 1} ({' first, '.join(order)} second), CPU µs a page: "
                      + "; ".join(f"{k} {rows['old'][-1][k]:.0f} -> {rows['new'][-1][k]:.0f}"
                                  for k in rows["old"][-1]), flush=True)
            print(f"median of {args.rounds} rounds, CPU µs a page and wall s (old -> new, new/old):")
            for key in rows["old"][0]:
                old = statistics.median(r[key] for r in rows["old"])
                new = statistics.median(r[key] for r in rows["new"])
                ratios = statistics.median(b[key] / a[key] for a, b in zip(rows["old"], rows["new"]))
                print(f"  {key:8s} {old:6.0f} -> {new:6.0f}   median ratio {ratios:.3f}")
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    main()

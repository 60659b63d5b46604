"""The crawl phase alone, as it runs: wall time, and the CPU of each process a page.

    .venv/bin/python benchmarks/crawl_phase.py --pages 20000 --repeat 2
    PYTHONPATH=/path/to/other/src .venv/bin/python benchmarks/crawl_phase.py   # another version

Crawls the generated site of bench_crawl.py (served by one nginx worker) with `Crawler.run()`, on
the event loop and with the cycle-collector thresholds of `linkjuice crawl` (crawler.crawl: uvloop,
rare_collections), concurrency 16, robots.txt and sitemaps off (no finalize, no scoring), and
reports pages/s, then the CPU µs a page of the event loop's process (its threads included), of the
extraction workers and of nginx, and the cores each kept busy. On a shared machine compare versions in the same
minutes: the kernel's autogroup scheduling gives a crawl one share of the machine, so under heavy
load its wall time follows its total CPU, and only a lightly loaded machine shows stalls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crawl import Nginx, generate_site  # noqa: E402


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import linkjuice
    from linkjuice.config import CrawlConfig
    from linkjuice.crawl.crawler import Crawler, _loop_factory, rare_collections
    from linkjuice.store import Store

    print(f"linkjuice from {Path(linkjuice.__file__).parent}")
    with tempfile.TemporaryDirectory(prefix="lj-crawl-phase-") as tmp:
        tmp_path = Path(tmp)
        tmp_path.chmod(0o755)  # nginx workers drop root and must read the site
        count = generate_site(tmp_path / "site", args.pages)
        work = tmp_path / "work"
        work.mkdir()
        server = Nginx(tmp_path / "site", work)
        try:
            nginx_worker = int(Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()[0])
            for run in range(args.repeat):
                db = tmp_path / f"crawl{run}.duckdb"
                load = os.getloadavg()[0]
                nginx0, self0, kids0 = _process_cpu(nginx_worker), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                with Store(db) as store:
                    config = CrawlConfig(start_url=server.url, obey_robots=False, use_sitemaps=False,
                                         concurrency=args.concurrency)
                    crawler = Crawler(config, store)
                    with asyncio.Runner(loop_factory=_loop_factory(config)) as runner, rare_collections():
                        summary = runner.run(crawler.run())
                wall = time.perf_counter() - started
                loop_cpu = _cpu(resource.RUSAGE_SELF) - self0
                workers_cpu = _cpu(resource.RUSAGE_CHILDREN) - kids0  # the workers are reaped at the end
                nginx_cpu = _process_cpu(nginx_worker) - nginx0
                n = summary.pages
                by_workers = crawler._pool.parsed_by_workers if crawler._pool else 0
                print(f"{n} of {count} pages, {summary.links} links: {wall:.1f} s, {n / wall:.0f} pages/s; "
                      f"CPU µs a page: loop process {loop_cpu / n * 1e6:.0f}, workers {workers_cpu / n * 1e6:.0f} "
                      f"({by_workers} pages parsed there), nginx {nginx_cpu / n * 1e6:.0f}; cores busy: "
                      f"{loop_cpu / wall:.2f} + {workers_cpu / wall:.2f} + {nginx_cpu / wall:.2f}; "
                      f"load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
                db.unlink()
        finally:
            server.stop()


if __name__ == "__main__":
    main()

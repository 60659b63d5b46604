"""Where a linkjuice crawl spends its time per page: the cost of each stage of the crawl loop,
measured separately on the generated benchmark site, against wget's per-page time in the same run.

    .venv/bin/python benchmarks/profile_crawl.py --pages 3000

Stages: start-up imports (`python -m linkjuice --help`), fetching alone (HttpFetcher, the same
concurrency, bodies discarded), extraction alone (extract_columns: what an extraction worker process
does per page), the event loop's side of a worker round trip (pickling the request, unpickling the
answer), the crawler's per-page bookkeeping (Crawler._add_page given the extracted columns: scope
checks, hashing, trap guard, link columns) and the store writes (Crawler._flush).
A stage's µs/page is CPU time on one core; a crawl at P pages/s has 1e6 / P µs per page in all.
With extraction workers the event loop's process does fetch + round trip + bookkeeping + writes and
the workers do the extraction, on other cores.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crawl import Nginx, generate_site  # noqa: E402


def per_page(samples: list[float], count: int) -> float:
    return min(samples) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from linkjuice.config import CrawlConfig
    from linkjuice.crawl.crawler import Crawler
    from linkjuice.crawl.extract import PageColumns, extract_columns
    from linkjuice.crawl.fetch import HttpFetcher
    from linkjuice.models import FetchResult
    from linkjuice.store import Store

    with tempfile.TemporaryDirectory(prefix="lj-profile-") as tmp:
        tmp_path = Path(tmp)
        tmp_path.chmod(0o755)
        root = tmp_path / "site"
        generate_site(root, args.pages)
        work = tmp_path / "work"
        work.mkdir()
        server = Nginx(root, work)
        try:
            files = sorted(p for p in root.rglob("*.html"))
            urls = [server.url + str(p.relative_to(root)).removesuffix("index.html") for p in files]
            bodies = [p.read_bytes() for p in files]
            n = len(urls)
            print(f"{n} pages, {sum(map(len, bodies)) / n / 1024:.1f} KiB/page, served by nginx at {server.url}")

            started = time.perf_counter()
            subprocess.run(["wget", "-r", "-l", "inf", "-nd", "--delete-after", "-q", "-e", "robots=off",
                            "-P", str(work / "wget"), server.url], check=False)
            wget_s = time.perf_counter() - started
            print(f"wget -r (sequential)          {wget_s / n * 1e6:8.0f} µs/page   ({n / wget_s:.0f} pages/s)")

            imports = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "linkjuice", "crawl", "--help"], capture_output=True, check=True)
                imports.append(time.perf_counter() - t)
            print(f"start-up: `linkjuice crawl --help` {min(imports):.2f} s (a fixed cost per crawl)")

            async def fetch_all() -> list[FetchResult]:
                fetcher = HttpFetcher(user_agent="bench", timeout=20, max_body_bytes=10 * 2**20, retries=0,
                                      backoff=0.1, concurrency=args.concurrency)
                queue: asyncio.Queue[str] = asyncio.Queue()
                for u in urls:
                    queue.put_nowait(u)
                out: list[FetchResult] = []

                async def worker() -> None:
                    while not queue.empty():
                        out.append(await fetcher.fetch(queue.get_nowait()))

                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
                await fetcher.close()
                return out

            fetch_times, results = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                results = asyncio.run(fetch_all())
                fetch_times.append(time.perf_counter() - t)
            assert all(r.status == 200 for r in results)
            print(f"fetch only (aiohttp, c={args.concurrency})    {per_page(fetch_times, n):8.0f} µs/page   "
                  f"({n / min(fetch_times):.0f} pages/s)")

            extract_times, extracted = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                extracted = [extract_columns(body, url, encoding="utf-8") for url, body in zip(urls, bodies)]
                extract_times.append(time.perf_counter() - t)
            extract_us = per_page(extract_times, n)
            print(f"extract (extract_columns)     {extract_us:8.0f} µs/page   (in a worker process)")

            trip_times = []
            answers = [pickle.dumps(tuple(e), protocol=pickle.HIGHEST_PROTOCOL) for e in extracted]
            for _ in range(args.repeat):
                t = time.perf_counter()
                for url, body, answer in zip(urls, bodies, answers):
                    pickle.dumps((body, url, "utf-8"), protocol=pickle.HIGHEST_PROTOCOL)
                    PageColumns._make(pickle.loads(answer))
                trip_times.append(time.perf_counter() - t)
            trip_us = per_page(trip_times, n)
            print(f"worker round trip (pickles)   {trip_us:8.0f} µs/page   (event loop side)")

            add_times, flush_times = [], []
            by_url = {r.url: r for r in results}
            for i in range(args.repeat):
                store = Store(tmp_path / f"p{i}.duckdb")
                crawler = Crawler(CrawlConfig(start_url=server.url, obey_robots=False, use_sitemaps=False), store)
                t_add = t_flush = 0.0
                for seq, (url, columns) in enumerate(zip(urls, extracted)):
                    t = time.perf_counter()
                    crawler._add_page(seq=seq, url=url, depth=1, via="link", result=by_url[url], columns=columns)
                    t_add += time.perf_counter() - t
                    if (seq + 1) % crawler.config.batch_size == 0:
                        t = time.perf_counter()
                        crawler._flush(force=True)
                        t_flush += time.perf_counter() - t
                t = time.perf_counter()
                crawler._flush(force=True)
                t_flush += time.perf_counter() - t
                store.close()
                add_times.append(t_add)
                flush_times.append(t_flush)
            add_us = per_page(add_times, n)
            print(f"bookkeeping (_add_page)       {add_us:8.0f} µs/page")
            print(f"store writes (_flush)         {per_page(flush_times, n):8.0f} µs/page")
            loop_us = per_page(fetch_times, n) + trip_us + add_us + per_page(flush_times, n)
            print(f"event loop process            {loop_us:8.0f} µs/page   (~{1e6 / loop_us:.0f} pages/s on one core)")
            total = loop_us + extract_us
            print(f"all stages                    {total:8.0f} µs/page   (~{1e6 / total:.0f} pages/s on one core, "
                  f"~{2e6 / total:.0f} on two)")
            print(f"spread of repeats: fetch {statistics.pstdev(fetch_times) / min(fetch_times):.0%}, "
                  f"add {statistics.pstdev(add_times) / min(add_times):.0%}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()

"""Crawl memory and speed as the site grows: generated sites of 10k, 100k, 1M pages on 127.0.0.1.

    .venv/bin/python benchmarks/bench_crawl_scale.py --pages 10k,100k            # ~7 min
    .venv/bin/python benchmarks/bench_crawl_scale.py --pages 10k,100k,1M --plot docs/bench-crawl-scale.png

For each size, benchmarks/sitegen_server.py serves a generated site (pages made on the fly from
the URL: nav/footer templates, paginated listings, articles with in-text links, ~45 links and
~8 KB a page) in its own process, and

    linkjuice crawl http://127.0.0.1:PORT/ --db .bench/scale-N.duckdb --concurrency 16 \\
        --ignore-robots --no-sitemaps --no-score --quiet

runs under /usr/bin/time -v (peak RSS = its VmHWM, wall, CPU). Every --sample seconds the
crawler's VmRSS and the server's request counter are recorded (.bench/crawl-scale-N-rss.csv), so
the timeline shows whether memory grows with the site and where the crawl ends and the finalize
step (page ids, indexability, template links, click depths) begins: the crawl phase is
the crawler's own `crawl_seconds` (store meta), the finalize phase is the rest of the run after
the last page was fetched.

Known URLs = rows of the store's frontier (every in-scope URL discovered, crawled or not) +
crawler-trap URLs: the size of the crawler's seen-set.
Bytes per known URL = (peak RSS of the crawler process during the crawl phase - baseline RSS) /
known URLs, where the baseline is the RSS of an idle interpreter that imported what `linkjuice
crawl` imports and opened an empty store. The same with the whole run's peak (finalize included)
is given too. Extraction worker processes (`crawl --workers`, one per spare core by default) are
sampled separately (their peak RSS is a constant per process, reported as workers_peak_rss_mb):
the RAM of the whole crawl is the crawler's peak plus theirs. Between two sizes, the marginal
cost is (peak_b - peak_a) / (known_b - known_a), free of the fixed costs.

Results: .bench/crawl-scale.json and .bench/crawl-scale.csv (one row per size).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVER = Path(__file__).resolve().parent / "sitegen_server.py"
BENCH = ROOT / ".bench"


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * mult)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else (f"{n // 1000}k" if n % 1000 == 0 else str(n))


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    import duckdb

    return {"cores": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem / 2**20, 1), "python": platform.python_version(),
            "duckdb": duckdb.__version__, "kernel": platform.release()}


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in KiB, from /proc/PID/status ({} once the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS", "VmHWM")):
                    key, value = line.split(":")
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu(pid: int) -> float | None:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the crawler's extraction workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(k) for t in os.listdir(f"/proc/{p}/task")
                    for k in open(f"/proc/{p}/task/{t}/children").read().split()]
        except OSError:
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


def git_state() -> dict:
    """HEAD and the files changed in the working tree: the numbers belong to that code."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()
    return {"head": git("rev-parse", "--short", "HEAD").strip(),
            "dirty": [line[3:] for line in git("status", "--short", "--", "src").splitlines()]}


def child_of(pid: int, timeout: float = 10.0) -> int:
    """The (single) child process of `pid`: the crawler under /usr/bin/time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.01)
    raise RuntimeError("the crawler process did not start")


BASELINE_CODE = """
import os, tempfile
import linkjuice.cli, linkjuice.pipeline, linkjuice.crawl.crawler, linkjuice.crawl.fetch, aiohttp
from linkjuice.store import Store
d = tempfile.mkdtemp()
s = Store(os.path.join(d, "b.duckdb")); s.counts()
print(open("/proc/self/status").read())
s.close()
"""


def baseline_rss_kib() -> int:
    """RSS of an interpreter that imported what `linkjuice crawl` imports and opened an empty store."""
    out = subprocess.run([sys.executable, "-c", BASELINE_CODE], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"VmRSS:\s+(\d+)", out).group(1))


class Server:
    def __init__(self, pages: int, stats: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "--pages", str(pages), "--port", "0",
                                      "--stats", str(stats)], stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.info['port']}/"

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "__stats", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def parse_time_v(text: str) -> dict:
    def grab(name: str) -> str | None:
        m = re.search(rf"^\s*{re.escape(name)}: (.+)$", text, re.M)
        return m.group(1).strip() if m else None

    wall = grab("Elapsed (wall clock) time (h:mm:ss or m:ss)") or "0:0"
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {"wall_s": seconds, "user_s": float(grab("User time (seconds)") or 0),
            "sys_s": float(grab("System time (seconds)") or 0),
            "peak_rss_kib": int(grab("Maximum resident set size (kbytes)") or 0),
            "exit": int(grab("Exit status") or -1)}


def store_facts(db: Path) -> dict:
    from linkjuice.store import Store

    with Store(db, read_only=True) as store:
        meta = store.meta()
        con = store.con
        row = con.execute(
            "SELECT (SELECT count(*) FROM pages), (SELECT count(*) FROM pages WHERE status = 200), "
            "(SELECT count(*) FROM links), (SELECT count(*) FROM frontier), (SELECT count(*) FROM crawl_trap_urls), "
            "(SELECT count(*) FROM pages WHERE error IS NOT NULL OR status >= 400), "
            "(SELECT max(depth) FROM pages), (SELECT count(*) FROM links WHERE position = 'template')"
        ).fetchone()
    pages, ok, links, frontier, traps, errors, max_depth, template = row
    return {"pages": pages, "pages_200": ok, "links": links, "frontier": frontier, "trap_urls": traps,
            "errors": errors, "max_click_depth": max_depth, "template_links": template,
            "known_urls": frontier + traps, "crawl_seconds": meta.get("crawl_seconds"),
            "stop_reason": meta.get("stop_reason")}


def run_size(pages: int, args: argparse.Namespace, baseline_kib: int) -> dict:
    tag = label(pages)
    db = BENCH / f"scale-{tag}.duckdb"
    for path in (db, db.with_name(db.name + ".wal")):
        path.unlink(missing_ok=True)
    time_file = BENCH / f"crawl-scale-{tag}-time.txt"
    log_file = BENCH / f"crawl-scale-{tag}.log"
    server = Server(pages, BENCH / f"crawl-scale-{tag}-server.json")
    load_start = os.getloadavg()
    print(f"\n## {tag}: {server.info['pages']:,} pages ({server.info['sections']} sections x "
          f"{server.info['categories']} categories x {server.info['per_category']} articles) at {server.url}; "
          f"load {load_start[0]:.2f}", flush=True)
    cmd = [str(VENV_BIN / "linkjuice"), "crawl", server.url, "--db", str(db), "--concurrency", str(args.concurrency),
           "--ignore-robots", "--no-sitemaps", "--no-score", "--quiet", *args.crawl_args.split()]
    samples: list[dict] = []
    server_cpu0 = server.stats()["cpu_seconds"]
    with open(log_file, "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        started = time.monotonic()
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(time_file), *cmd], stdout=log, stderr=subprocess.STDOUT)
        crawler = child_of(proc.pid)
        stop = threading.Event()
        worker_hwm: dict[int, int] = {}  # peak RSS (KiB) of each extraction worker process
        worker_cpu: dict[int, float] = {}  # last CPU seconds seen of each worker

        def sample() -> None:
            while not stop.is_set():
                status = proc_status(crawler)
                if not status:
                    break
                workers_kib = 0
                for pid in descendants(crawler):
                    ws = proc_status(pid)
                    workers_kib += ws.get("VmRSS", 0)
                    worker_hwm[pid] = max(worker_hwm.get(pid, 0), ws.get("VmHWM", 0))
                    worker_cpu[pid] = proc_cpu(pid) or worker_cpu.get(pid, 0.0)
                try:
                    st = server.stats()
                except OSError:
                    st = {}
                samples.append({"t": round(time.monotonic() - started, 2), "rss_mb": status.get("VmRSS", 0) / 1024,
                                "hwm_mb": status.get("VmHWM", 0) / 1024, "workers_rss_mb": workers_kib / 1024,
                                "fetched": st.get("requests"),
                                "crawler_cpu_s": proc_cpu(crawler),
                                "workers_cpu_s": round(sum(worker_cpu.values()), 2),
                                "server_cpu_s": round(st.get("cpu_seconds", server_cpu0) - server_cpu0, 2),
                                "load1": os.getloadavg()[0]})
                stop.wait(args.sample)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait()
        stop.set()
        thread.join()
    final_server = server.stats()
    server.stop()
    timing = parse_time_v(time_file.read_text())
    out_text = log_file.read_text()
    result: dict = {"size": tag, "site_pages": server.info["pages"], **timing, "crawl_args": args.crawl_args,
                    "extract_workers": len(worker_hwm), "workers_peak_rss_mb": round(sum(worker_hwm.values()) / 1024, 1),
                    "load_start": round(load_start[0], 2), "load_end": round(os.getloadavg()[0], 2),
                    "server_requests": final_server["requests"], "server_404": final_server["not_found"],
                    "server_cpu_s": round(final_server["cpu_seconds"] - server_cpu0, 2)}
    if timing["exit"] != 0:
        result["error"] = out_text[-2000:]
        print(out_text[-2000:])
    if db.exists():
        result.update(store_facts(db))
        result["store_mb"] = round(sum(p.stat().st_size for p in (db, db.with_name(db.name + ".wal")) if p.exists()) / 2**20, 1)
    # Phases from the timeline: the crawl ends at the last sample whose request count grew.
    last_fetch_t = max((s["t"] for i, s in enumerate(samples) if i and s["fetched"] != samples[i - 1]["fetched"]),
                       default=None)
    crawl_peak = max((s["hwm_mb"] for s in samples if last_fetch_t is None or s["t"] <= last_fetch_t), default=0)
    crawl_s = result.get("crawl_seconds") or 0
    result["crawl_peak_rss_mb"] = round(crawl_peak, 1)
    result["peak_rss_mb"] = round(timing["peak_rss_kib"] / 1024, 1)
    result["baseline_rss_mb"] = round(baseline_kib / 1024, 1)
    known = result.get("known_urls") or 0
    if known:
        result["bytes_per_known_url_crawl"] = round((crawl_peak * 1024 - baseline_kib) * 1024 / known)
        result["bytes_per_known_url_total"] = round((timing["peak_rss_kib"] - baseline_kib) * 1024 / known)
    result["pages_per_s"] = round(result.get("pages", 0) / crawl_s, 1) if crawl_s else None
    result["finalize_s"] = round(timing["wall_s"] - last_fetch_t, 1) if last_fetch_t else None
    result["startup_s"] = round(samples[next((i for i, s in enumerate(samples) if s["fetched"]), 0)]["t"], 1) if samples else None
    # Pages/s and RSS in the first and last tenth of the crawl (does either grow with the tables?).
    crawl = [s for s in samples if s["fetched"] and (last_fetch_t is None or s["t"] <= last_fetch_t)]
    if len(crawl) >= 20:
        k = len(crawl) // 10
        first, last = crawl[:k + 1], crawl[-k - 1:]
        for name, part in (("first", first), ("last", last)):
            pages_done = part[-1]["fetched"] - part[0]["fetched"]
            result[f"pages_per_s_{name}_tenth"] = round(pages_done / (part[-1]["t"] - part[0]["t"]), 1)
            # CPU per page does not depend on what else runs on a shared machine; wall time does
            if pages_done and part[0]["crawler_cpu_s"] is not None and part[-1]["crawler_cpu_s"] is not None:
                # the crawler process and its extraction workers together
                cpu = (part[-1]["crawler_cpu_s"] + part[-1]["workers_cpu_s"]
                       - part[0]["crawler_cpu_s"] - part[0]["workers_cpu_s"])
                result[f"cpu_ms_per_page_{name}_tenth"] = round(cpu * 1000 / pages_done, 2)
        half = crawl[len(crawl) // 2:]
        xs = [s["fetched"] for s in half]
        ys = [s["rss_mb"] * 2**20 for s in half]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var:
            # marginal memory: least-squares slope of RSS against pages fetched, second half of the crawl
            result["rss_bytes_per_page_second_half"] = round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var)
    with open(BENCH / f"crawl-scale-{tag}-rss.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(samples[0]) if samples else ["t"])
        w.writeheader()
        w.writerows(samples)
    print(f"  {result.get('pages', 0):,} pages ({result.get('pages_200', 0):,} answered 200), "
          f"{result.get('links', 0):,} links, {known:,} known URLs; crawl {crawl_s:.1f} s = {result['pages_per_s']} pages/s "
          f"(first/last tenth {result.get('pages_per_s_first_tenth')}/{result.get('pages_per_s_last_tenth')}; CPU (crawler + workers) "
          f"{result.get('cpu_ms_per_page_first_tenth')}/{result.get('cpu_ms_per_page_last_tenth')} ms a page), "
          f"finalize ~{result['finalize_s']} s, wall {timing['wall_s']:.1f} s", flush=True)
    print(f"  peak RSS: crawl phase {crawl_peak:.0f} MB, whole run {result['peak_rss_mb']:.0f} MB; "
          f"{result.get('bytes_per_known_url_crawl')} B per known URL (crawl), {result.get('bytes_per_known_url_total')} "
          f"(whole run); RSS growth {result.get('rss_bytes_per_page_second_half')} B per page in the crawl's second half; "
          f"extraction workers {result['extract_workers']} (peak {result['workers_peak_rss_mb']} MB); "
          f"store {result.get('store_mb')} MB; server CPU {result['server_cpu_s']} s; load {result['load_start']} -> "
          f"{result['load_end']}", flush=True)
    if not args.keep_db:
        for path in (db, db.with_name(db.name + ".wal")):
            path.unlink(missing_ok=True)
    return result


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.5))
    ok = [r for r in results if r.get("known_urls")]
    x = [r["known_urls"] for r in ok]
    a.loglog(x, [r["crawl_peak_rss_mb"] for r in ok], "o-", label="peak RSS, crawl phase")
    a.loglog(x, [r["peak_rss_mb"] for r in ok], "s--", label="peak RSS, whole run (finalize)")
    a.axhline(2048, color="grey", lw=0.8, ls=":")
    a.set_xlabel("known URLs")
    a.set_ylabel("MB")
    a.legend()
    a.set_title("peak RSS")
    b.semilogx(x, [r["pages_per_s"] for r in ok], "o-", label="pages/s (wall; depends on the load)")
    b.set_xlabel("known URLs")
    b.set_ylabel("pages/s (crawl phase)")
    b.set_ylim(bottom=0)
    b.set_title("crawl speed")
    b2 = b.twinx()
    for key, style in (("cpu_ms_per_page_first_tenth", "s--"), ("cpu_ms_per_page_last_tenth", "^--")):
        b2.semilogx(x, [r.get(key) for r in ok], style, color="tab:red", label=key.replace("_", " "))
    b2.set_ylabel("crawler CPU ms a page", color="tab:red")
    b2.set_ylim(bottom=0)
    b.legend(loc="lower left", fontsize=8)
    b2.legend(loc="lower right", fontsize=8)
    for r in ok:
        rows = list(csv.DictReader(open(BENCH / f"crawl-scale-{r['size']}-rss.csv")))
        c.plot([float(s["t"]) for s in rows], [float(s["rss_mb"]) for s in rows], label=r["size"])
    c.set_xlabel("seconds since start")
    c.set_ylabel("RSS MB")
    c.set_title("RSS over time (crawl, then finalize)")
    c.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", default="10k,100k", help="site sizes, e.g. 10k,100k,1M")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="per size, seconds")
    parser.add_argument("--keep-db", action="store_true", help="keep .bench/scale-N.duckdb")
    parser.add_argument("--crawl-args", default="", help="more `linkjuice crawl` options, e.g. '--workers 0'")
    parser.add_argument("--plot", type=Path, help="write a PNG (matplotlib)")
    parser.add_argument("--out", type=Path, default=BENCH / "crawl-scale.json")
    args = parser.parse_args()
    BENCH.mkdir(exist_ok=True)
    info = machine()
    print(f"machine: {info['cores']} cores, {info['cpu']}, {info['ram_gib']} GiB RAM; Python {info['python']}, "
          f"DuckDB {info['duckdb']}; load average {os.getloadavg()[0]:.2f}")
    baseline = baseline_rss_kib()
    print(f"baseline (imports + empty store): {baseline / 1024:.0f} MB RSS")
    info["git"] = git_state()
    print(f"code: {info['git']['head']}, changed in src/: {', '.join(info['git']['dirty']) or 'nothing'}")
    results = []
    for size in args.pages.split(","):
        results.append(run_size(parse_size(size), args, baseline))
        args.out.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    ok = [r for r in results if r.get("known_urls")]
    for a, b in zip(ok, ok[1:]):
        for key in ("crawl_peak_rss_mb", "peak_rss_mb"):
            marginal = (b[key] - a[key]) * 2**20 / (b["known_urls"] - a["known_urls"])
            b[f"marginal_bytes_per_url_{key.removesuffix('_mb')}"] = round(marginal)
        print(f"marginal {a['size']} -> {b['size']}: {b['marginal_bytes_per_url_crawl_peak_rss']} B per extra known URL "
              f"(crawl phase), {b['marginal_bytes_per_url_peak_rss']} B (whole run)")
    args.out.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        fields = sorted({k for r in results for k in r if k != "error"})
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(results)
    print(f"\nresults: {args.out}, {args.out.with_suffix('.csv')}; load average {os.getloadavg()[0]:.2f} at the end")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()

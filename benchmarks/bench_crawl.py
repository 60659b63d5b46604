"""Crawl throughput: linkjuice vs Scrapy's CrawlSpider vs wget, on sites served by nginx on 127.0.0.1.

    .venv/bin/python benchmarks/bench_crawl.py                      # both sites, concurrency 16
    .venv/bin/python benchmarks/bench_crawl.py --sites generated --pages 5000 --concurrency 8

Sites: (a) a generated static site (default 20,000 pages) with realistic templates: header, nav,
breadcrumb, article body with in-text links, a related-links aside and a footer, ~45 links and
~8 KB per page, written to a temporary folder; (b) a real documentation site available offline:
the Python documentation that Debian's python3-doc package installs (/usr/share/doc/python3*/html;
`apt-get install python3-doc`), skipped with a note when absent.

Each tool runs in its own process under /usr/bin/time (wall seconds and peak RSS, %M), one after
the other, against one nginx worker (nginx and the crawler share the machine's cores). Pages are
counted uniformly from nginx's access log: distinct URLs answered to a GET. Same concurrency for
linkjuice and Scrapy; robots.txt and sitemaps off for all (equal work); wget is sequential
(one connection), which it cannot change. linkjuice runs twice: crawl only (--no-score) and end
to end (crawl, template detection, click depths, both scoring models).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOOLS = ("linkjuice-crawl", "linkjuice-e2e", "scrapy", "wget", "wget-spider")


# -- (a) the generated site --------------------------------------------------------------------------
def generate_site(root: Path, pages: int, seed: int = 0) -> int:
    """Write a static site of about `pages` pages under `root`; returns the number written."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghiklmnoprstuvwy") for _ in range(rng.randint(2, 10))) for _ in range(3000)]
    sections = max(1, min(40, pages // 100))
    per_listing = 25
    articles = max(1, (pages - 6 - sections) * per_listing // (per_listing + 1) // sections)
    listings = -(-articles // per_listing)
    names = [" ".join(rng.choice(words).title() for _ in range(2)) for _ in range(sections)]
    slugs = [f"{name.lower().replace(' ', '-')}-{_letters(s)}" for s, name in enumerate(names)]

    # Slug URLs, as most CMSs make them: /section-name/words-of-the-title-xy.html
    def art(s: int, a: int) -> str:
        return f"/{slugs[s]}/{title(s, a).lower().replace(' ', '-')[:60]}-{_letters(a)}.html"

    def listing(s: int, i: int) -> str:
        return f"/{slugs[s]}/" if i == 0 else f"/{slugs[s]}/page/{i + 1}.html"

    def title(s: int, a: int) -> str:
        r = random.Random(s * 100_003 + a)
        return " ".join(r.choice(words) for _ in range(r.randint(3, 7))).capitalize()

    nav = "".join(f'<li><a href="{listing(s, 0)}">{names[s]}</a></li>' for s in range(min(10, sections)))
    header = (
        '<header class="site-header"><a class="logo" href="/"><img src="/logo.png" alt="Example home"></a>'
        '<form action="/search"><input name="q"></form><a href="/account/login.html">Log in</a></header>'
        f'<nav class="main-nav"><ul><li><a href="/">Home</a></li>{nav}'
        '<li><a href="/sections.html">All sections</a></li><li><a href="/about.html">About</a></li></ul></nav>'
    )
    footer = (
        '<footer class="site-footer"><ul><li><a href="/about.html">About us</a></li>'
        '<li><a href="/contact.html">Contact</a></li><li><a href="/privacy.html">Privacy</a></li>'
        '<li><a href="/terms.html">Terms</a></li><li><a href="/sections.html">Site map</a></li>'
        '<li><a href="https://twitter.com/example" rel="nofollow">Twitter</a></li>'
        '<li><a href="https://github.com/example">GitHub</a></li>'
        '<li><a href="https://www.youtube.com/example" rel="nofollow">YouTube</a></li></ul>'
        '<p>&copy; 2024 Example Media. All rights reserved.</p></footer>'
    )

    def page(path: str, head_title: str, body: str) -> None:
        html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{head_title} | Example</title>'
                f'<meta name="viewport" content="width=device-width"><link rel="stylesheet" href="/style.css">'
                f'<link rel="canonical" href="{path}"></head><body>{header}{body}{footer}</body></html>')
        target = root / (path.lstrip("/") + ("index.html" if path.endswith("/") else ""))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html)

    def paragraph(r: random.Random, links: list[str]) -> str:
        out = []
        for _ in range(r.randint(40, 90)):
            if links and r.random() < 0.06:
                href = links.pop()
                out.append(f'<a href="{href}">{" ".join(r.choice(words) for _ in range(r.randint(1, 4)))}</a>')
            else:
                out.append(r.choice(words))
        return "<p>" + " ".join(out) + ".</p>"

    written = 0
    for s in range(sections):
        for a in range(articles):
            r = random.Random(s * 100_003 + a + 7)
            inline = [art(s if r.random() < 0.7 else r.randrange(sections), r.randrange(articles))
                      for _ in range(r.randint(5, 15))]
            paras = "".join(paragraph(r, inline) for _ in range(r.randint(4, 8)))
            related = "".join(f'<li><a href="{art(s, b)}">{title(s, b)}</a></li>'
                              for b in r.sample(range(articles), min(8, articles)))
            pager = "".join(f'<a rel="{rel}" href="{art(s, b)}">{label}</a>'
                            for rel, b, label in (("prev", a - 1, "Previous"), ("next", a + 1, "Next"))
                            if 0 <= b < articles)
            body = (f'<ol class="breadcrumb"><li><a href="/">Home</a></li><li><a href="{listing(s, 0)}">{names[s]}</a></li></ol>'
                    f'<main><article><h1>{title(s, a)}</h1>{paras}<div class="pager">{pager}</div></article></main>'
                    f'<aside class="sidebar"><h2>Related</h2><ul>{related}</ul></aside>')
            page(art(s, a), title(s, a), body)
            written += 1
        for i in range(listings):
            items = "".join(f'<li><a href="{art(s, a)}">{title(s, a)}</a></li>'
                            for a in range(i * per_listing, min(articles, (i + 1) * per_listing)))
            more = f'<a rel="next" href="{listing(s, i + 1)}">Older</a>' if i + 1 < listings else ""
            page(listing(s, i), f"{names[s]} - page {i + 1}",
                 f'<main><h1>{names[s]}</h1><ul class="articles">{items}</ul>{more}</main>')
            written += 1
    index = "".join(f'<li><a href="{listing(s, 0)}">{names[s]}</a></li>' for s in range(sections))
    page("/sections.html", "All sections", f"<main><h1>All sections</h1><ul>{index}</ul></main>")
    latest = "".join(f'<li><a href="{art(s, 0)}">{title(s, 0)}</a></li>' for s in range(sections))
    page("/", "Home", f"<main><h1>Example Media</h1><ul>{latest}</ul></main>")
    for name in ("about", "contact", "privacy", "terms"):
        page(f"/{name}.html", name.title(), f"<main><h1>{name.title()}</h1>{paragraph(rng, [])}</main>")
    (root / "account").mkdir(exist_ok=True)
    page("/account/login.html", "Log in", "<main><h1>Log in</h1></main>")
    return written + 7


def _letters(i: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "ba": a suffix that keeps slugs unique without digits."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out = chr(97 + r) + out
        if i == 0:
            return out


def python_docs() -> Path | None:
    found = sorted({Path(p).resolve().parent for p in glob.glob("/usr/share/doc/python3*/html/index.html")})
    return found[-1] if found else None


# -- nginx ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """One nginx worker serving `root` on 127.0.0.1, logging `method uri status` per request."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root, self.work, self.port = root, work, free_port()
        self.log = work / "access.log"
        conf = work / "nginx.conf"
        temp = {name: work / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        conf.write_text(textwrap.dedent(f"""\
            worker_processes 1;
            daemon off;
            pid {work}/nginx.pid;
            error_log {work}/error.log error;
            events {{ worker_connections 4096; }}
            http {{
                include /etc/nginx/mime.types;
                default_type application/octet-stream;
                log_format lj '$request_method $uri $status';
                access_log {self.log} lj;
                sendfile on;
                tcp_nopush on;
                keepalive_requests 1000000;
                keepalive_timeout 60s;
                client_body_temp_path {temp['body']};
                proxy_temp_path {temp['proxy']};
                fastcgi_temp_path {temp['fastcgi']};
                uwsgi_temp_path {temp['uwsgi']};
                scgi_temp_path {temp['scgi']};
                server {{
                    listen 127.0.0.1:{self.port};
                    root {root};
                    index index.html;
                }}
            }}
            """))
        self.proc = subprocess.Popen(["nginx", "-p", str(work), "-c", str(conf)], stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("nginx did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def pages_since(self, offset: int) -> dict:
        with open(self.log, "rb") as f:
            f.seek(offset)
            lines = f.read().decode().splitlines()
        gets = {line.split()[1] for line in lines if line.startswith("GET ") and line.endswith(" 200")}
        return {"requests": len(lines), "pages": len(gets)}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- the crawlers ------------------------------------------------------------------------------------
SPIDER = '''
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class BenchSpider(CrawlSpider):
    name = "bench"

    def __init__(self, start="", **kw):
        self.start_urls = [start]
        self.allowed_domains = ["127.0.0.1"]
        super().__init__(**kw)

    rules = (Rule(LinkExtractor(), callback="parse_item", follow=True),)

    def parse_item(self, response):
        return None
'''


def commands(tool: str, url: str, concurrency: int, work: Path) -> list[str]:
    if tool.startswith("linkjuice"):
        db = work / f"{tool}.duckdb"
        db.unlink(missing_ok=True)
        cmd = [str(VENV_BIN / "linkjuice"), "crawl", url, "--db", str(db), "--concurrency", str(concurrency),
               "--ignore-robots", "--no-sitemaps", "--quiet"]
        return cmd + (["--no-score"] if tool == "linkjuice-crawl" else [])
    if tool == "scrapy":
        spider = work / "bench_spider.py"
        spider.write_text(SPIDER)
        settings = {"CONCURRENT_REQUESTS": concurrency, "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
                    "DOWNLOAD_DELAY": 0, "ROBOTSTXT_OBEY": False, "LOG_LEVEL": "ERROR", "AUTOTHROTTLE_ENABLED": False,
                    "TELNETCONSOLE_ENABLED": False, "COOKIES_ENABLED": False, "RETRY_ENABLED": False,
                    "DEPTH_LIMIT": 0}
        sets = [arg for k, v in settings.items() for arg in ("-s", f"{k}={v}")]
        return [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"start={url}", *sets]
    out = work / "wget"
    shutil.rmtree(out, ignore_errors=True)
    common = ["wget", "-r", "-l", "inf", "-nv", "-e", "robots=off", "-P", str(out), url]
    if tool == "wget":
        return [common[0], "-nd", "--delete-after", *common[1:]]
    return [common[0], "--spider", *common[1:]]


def run_tool(tool: str, server: Nginx, concurrency: int, work: Path, timeout: float) -> dict:
    cmd = commands(tool, server.url, concurrency, work)
    stats = work / "time.txt"
    offset = server.log_size()
    started = time.perf_counter()
    try:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(stats), *cmd], cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - started
    time.sleep(0.2)  # let nginx flush its log
    counts = server.pages_since(offset)
    seconds, rss_kib = stats.read_text().split()[-2:]
    result = {"tool": tool, "seconds": float(seconds), "wall": wall, "peak_rss_mb": int(rss_kib) / 1024,
              **counts, "pages_per_s": counts["pages"] / float(seconds), "exit": proc.returncode}
    if proc.returncode not in (0, 8):  # wget exits 8 when some link answered 404
        result["stderr"] = proc.stderr.strip()[-300:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", default="generated,python-docs")
    parser.add_argument("--pages", type=int, default=20_000, help="size of the generated site")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "crawl-results.json")
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is not installed (apt-get install -y nginx)")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}; load average {os.getloadavg()[0]:.1f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="lj-bench-crawl-") as tmp:
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o755)  # nginx workers drop root and must read the site
        for site in (s.strip() for s in args.sites.split(",")):
            if site == "generated":
                root = tmp_path / "site"
                t = time.perf_counter()
                count = generate_site(root, args.pages)
                label = f"generated, {count:,} pages"
                print(f"generated {count:,} pages in {time.perf_counter() - t:.1f} s under {root}")
            elif site == "python-docs":
                found = python_docs()
                if found is None:
                    print("python-docs: /usr/share/doc/python3*/html not found (apt-get install python3-doc); skipped")
                    continue
                root, label = found, f"Python docs ({found})"
            else:
                raise SystemExit(f"unknown site {site}")
            work = tmp_path / f"work-{site}"
            work.mkdir()
            server = Nginx(root, work)
            print(f"\n## {label}, concurrency {args.concurrency}, served by nginx at {server.url}")
            try:
                for tool in tools:
                    r = run_tool(tool, server, args.concurrency, work, args.timeout)
                    r["site"] = label
                    results.append(r)
                    if "error" in r:
                        print(f"  {tool:16s} {r['error']}")
                        continue
                    print(f"  {tool:16s} {r['pages']:6d} pages {r['seconds']:7.1f} s {r['pages_per_s']:7.0f} pages/s  "
                          f"peak RSS {r['peak_rss_mb']:6.0f} MB  ({r['requests']} requests, exit {r['exit']})"
                          + (f"  stderr: {r['stderr']}" if "stderr" in r else ""))
            finally:
                server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {args.out}  (load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()

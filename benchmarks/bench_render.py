"""Rendered pages per second (`crawl --render`) against raw pages per second, on one generated site.

    .venv/bin/python benchmarks/bench_render.py                       # 300 pages, the default grid
    .venv/bin/python benchmarks/bench_render.py --pages 1000 --render-pages 1 4 8 --markdown

The site: `--pages` pages written to a temporary folder and served by Python's threaded static
server in its own process on 127.0.0.1. Each page has ~20 links in its HTML (header, breadcrumb,
body text, footer), a logo image and a web font (both refused when rendering), and loads one shared
script that builds a 12-link menu and appends 3 related-article links: the rendered DOM has 15 links
that the raw HTML lacks, as on a site whose navigation is built in the browser.

Runs, one after the other, each a full crawl into a fresh store without scoring (`score=False`),
robots.txt and sitemaps off: the raw crawl (the HTTP fetcher only), then rendered crawls for each
`--render-pages` pool size, both settling rules: network idle (the default: 500 ms with no request in
flight) and `--render-wait 0` (read the DOM at the load event), which bounds what rendering itself
costs. Each crawl checks that every page was crawled and that the rendered crawls found the
script-built links. Chromium is Debian's /usr/bin/chromium (or $LINKJUICE_CHROMIUM).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from linkjuice.config import CrawlConfig
from linkjuice.crawl.render import find_browser
from linkjuice.pipeline import crawl_site
from linkjuice.store import Store

_SCRIPT = """
(function () {
  var menu = document.getElementById('menu');
  var html = '';
  for (var i = 0; i < 12; i++) html += '<a href="/s' + i + '/">Section ' + i + '</a> ';
  menu.innerHTML = html;
  var n = parseInt(document.body.dataset.n, 10), total = parseInt(document.body.dataset.total, 10);
  var related = document.getElementById('related');
  for (var k = 1; k <= 3; k++) {
    var a = document.createElement('a');
    a.href = '/p' + ((n * 7 + k * 13) % total) + '.html';
    a.textContent = 'Related story ' + k;
    related.appendChild(a);
  }
})();
"""


def generate_site(root: Path, pages: int, seed: int = 0) -> None:
    """`pages` article pages (/p0.html ... and /index.html = p0) plus 12 section pages."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghiklmnoprstuvwy") for _ in range(rng.randint(3, 9))) for _ in range(800)]
    (root / "app.js").write_text(_SCRIPT)
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    (root / "font.woff2").write_bytes(b"wOF2" + bytes(20000))

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    def document(title: str, n: int, body: str) -> str:
        return (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            "<style>@font-face{font-family:B;src:url(/font.woff2)}body{font-family:B}</style>"
            "<script src='/app.js' defer></script></head>"
            f"<body data-n='{n}' data-total='{pages}'><header><a href='/'><img src='/logo.png' alt='Home'></a>"
            "<a href='/about.html'>About</a></header><nav id='menu'></nav>"
            f"<main><p class='crumbs'><a href='/'>Home</a> / <a href='/s{n % 12}/'>Section {n % 12}</a></p>"
            f"{body}<aside id='related'></aside></main>"
            "<footer><a href='/about.html'>About us</a> <a href='/contact.html'>Contact</a> "
            "<a href='/privacy.html'>Privacy</a></footer></body></html>"
        )

    for n in range(pages):
        links = " ".join(f"<a href='/p{(n + k) % pages}.html'>{text(3)}</a> {text(25)}" for k in (1, 2, 3, 5, 8, 13,
                                                                                                   21, 34, 55, 89))
        html = document(f"Article {n}: {text(4)}", n, f"<article><h1>{text(6)}</h1><p>{text(80)} {links}</p></article>")
        (root / f"p{n}.html").write_text(html)
    (root / "index.html").write_text((root / "p0.html").read_text())
    for s in range(12):
        (root / f"s{s}").mkdir(exist_ok=True)
        body = " ".join(f"<a href='/p{(s * 31 + k * 17) % pages}.html'>{text(3)}</a>" for k in range(20))
        (root / f"s{s}" / "index.html").write_text(document(f"Section {s}", s, f"<p>{body}</p>"))
    for name in ("about", "contact", "privacy"):
        (root / f"{name}.html").write_text(document(name.title(), 0, f"<p>{text(60)}</p>"))


def _serve(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(origin + "/about.html", timeout=1).read()
            return proc, origin
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the static server did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_crawl(origin: str, folder: Path, name: str, **options: object) -> dict[str, object]:
    db = folder / f"{name}.duckdb"
    config = CrawlConfig(start_url=origin + "/", obey_robots=False, use_sitemaps=False, concurrency=8,
                         retries=0, timeout=30.0, **options)  # type: ignore[arg-type]
    started = time.perf_counter()
    cpu = time.process_time()
    summary = crawl_site(config, db, score=False)
    wall = time.perf_counter() - started
    with Store(db, read_only=True) as store:
        found = dict(store.con.execute("SELECT found_in, count(*) FROM links GROUP BY ALL").fetchall())
        errors = store.con.execute("SELECT count(*) FROM pages WHERE error IS NOT NULL").fetchone()
    return {"name": name, "pages": summary.pages, "seconds": wall, "cpu": time.process_time() - cpu,
            "pages_per_s": summary.pages / wall, "found_in": found, "errors": errors[0] if errors else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--render-pages", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--markdown", action="store_true", help="print a section for docs/benchmarks.md")
    args = parser.parse_args()
    browser = find_browser()
    version = subprocess.run([browser, "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        root, folder = Path(tmp) / "site", Path(tmp) / "stores"
        root.mkdir()
        folder.mkdir()
        generate_site(root, args.pages)
        server, origin = _serve(root)
        try:
            rows = [run_crawl(origin, folder, "raw")]
            for pool in args.render_pages:
                rows.append(run_crawl(origin, folder, f"render-idle-{pool}", render=True, render_pages=pool))
                rows.append(run_crawl(origin, folder, f"render-wait0-{pool}", render=True, render_pages=pool,
                                      render_wait_ms=0))
        finally:
            server.terminate()
            server.wait()
    expected = args.pages + 12 + 3  # articles, sections, about/contact/privacy (index.html is p0's copy at /)
    for row in rows:
        if row["pages"] < expected - 1 or row["errors"]:
            raise SystemExit(f"{row['name']}: {row['pages']} pages, {row['errors']} errors (expected ~{expected})")
        if str(row["name"]).startswith("render") and not row["found_in"].get("rendered"):  # type: ignore[union-attr]
            raise SystemExit(f"{row['name']}: no rendered-only links found")
    raw_rate = float(rows[0]["pages_per_s"])  # type: ignore[arg-type]
    load = os.getloadavg()[0]
    print(f"{args.pages + 15} pages; {os.cpu_count()} cores; load {load:.1f}; {version}")
    for row in rows:
        rate = float(row["pages_per_s"])  # type: ignore[arg-type]
        print(f"{row['name']:>16}: {row['pages']} pages in {row['seconds']:.2f} s ({rate:.1f} pages/s, "
              f"{rate / raw_rate:.3f} x raw; crawler CPU {row['cpu']:.1f} s); links {row['found_in']}")
    if args.markdown:
        print(_markdown(rows, raw_rate, version, load, args.pages))


def _markdown(rows: list[dict[str, object]], raw_rate: float, version: str, load: float, pages: int) -> str:
    today = date.today().isoformat()
    out = [f"\n## Rendering: rendered vs raw pages per second (benchmarks/bench_render.py, {today})\n",
           f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {version}; load average "
           f"{load:.1f} at the end. A generated site of {pages + 15} pages served by Python's static server on "
           "127.0.0.1; each page has ~20 links in its HTML and a script that adds 15 more (a 12-link menu, 3 related "
           "links), an image and a web font (refused when rendering). Crawler concurrency 8, no scoring, robots.txt "
           "and sitemaps off.\n",
           "| crawl | render pages | settles at | pages/s | x raw | wall s | crawler CPU s |",
           "|---|---|---|---|---|---|---|"]
    for row in rows:
        name = str(row["name"])
        pool = name.rsplit("-", 1)[-1] if name != "raw" else "-"
        settle = ("-" if name == "raw" else "network idle (500 ms)" if "idle" in name
                  else "load event (`--render-wait 0`)")
        rate = float(row["pages_per_s"])  # type: ignore[arg-type]
        crawl = "raw" if name == "raw" else "--render"
        out.append(f"| {crawl} | {pool} | {settle} | {rate:.1f} | {rate / raw_rate:.3f} "
                   f"| {float(row['seconds']):.1f} | {float(row['cpu']):.1f} |")  # type: ignore[arg-type]
    return "\n".join(out)


if __name__ == "__main__":
    main()

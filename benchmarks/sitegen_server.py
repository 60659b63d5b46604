"""A fast generated-site HTTP server for crawl benchmarks: pages are made on the fly from the URL.

    .venv/bin/python benchmarks/sitegen_server.py --pages 1000000 --port 8765
    .venv/bin/python benchmarks/sitegen_server.py --pages 100000 --selftest 20000   # pages/s alone

Binds 127.0.0.1 only. HTTP/1.1 with keep-alive (and pipelining), GET and HEAD, on a bare
asyncio.Protocol: no framework, minimal request parsing, one core.

The site (deterministic: the same URL always gives the same page, for any --seed):

* ``/`` home (latest article of every section), ``/sections.html`` (every section and category),
  ``/about.html``, ``/contact.html``, ``/privacy.html``, ``/terms.html``, ``/account/login.html``;
* ``/{section}/`` a section index listing its categories;
* ``/{section}/{category}/`` and ``/{section}/{category}/page/{k}.html`` paginated listings of 25
  articles, with a pager to the first, previous, next and last page and 10 pages back and forward,
  so every listing is a few clicks from its category (click depth stays bounded as the site grows);
* ``/{section}/{category}/{title-words}-{letters}.html`` articles with slug URLs (letters, not
  digits, as in bench_crawl.py: numbered paths are not what is being measured).

Every page has a header (logo, search form, log in), a nav of 13 links (home, 10 sections, all
sections, about), and a footer of 8 links (3 external). An article adds a breadcrumb, 4-8
paragraphs with 5-15 in-text links (60% to the same category, 20% to the same section, 20% to any
article with a power-law popularity: article g is picked with probability ~ 1/(g+1)), prev/next
within its category and an aside of 8 related articles of its category: ~45 links and ~8 KB, like
the generated site of bench_crawl.py. Anything else, and ids out of range, answer 404.

Counters (requests, 200s, 404s, bytes, and the server's CPU seconds) answer ``GET /__stats`` (not
linked from any page, not counted) and are written as JSON to --stats on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import sys
import time

PER_LISTING = 25
_MASK = (1 << 64) - 1
CATEGORIES = 20  # per section
STATIC = ("about", "contact", "privacy", "terms")


def _letters(i: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "ba": a suffix that keeps slugs unique without digits."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out = chr(97 + r) + out
        if i == 0:
            return out


def _from_letters(s: str) -> int:
    n = 0
    for ch in s:
        c = ord(ch) - 97
        if not 0 <= c < 26:
            return -1
        n = n * 26 + c
    if len(s) > 1 and s[0] == "a":
        return -1  # not canonical ("ab" is not a suffix _letters makes)
    return n


class Site:
    """The site's structure and page generator for `pages` pages (about: the count is rounded)."""

    def __init__(self, pages: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.words = ["".join(rng.choice("abcdefghiklmnoprstuvwy") for _ in range(rng.randint(2, 10)))
                      for _ in range(3000)]
        # Sections grow slowly with the site (5 at 10k, 16 at 100k, 50 at 1M), 20 categories each.
        self.sections = max(1, min(50, round(math.sqrt(pages) / 20)))
        self.cats = CATEGORIES if pages >= 2000 else max(1, pages // 100)
        groups = self.sections * self.cats
        fixed = 2 + len(STATIC) + 1 + self.sections  # home, sections.html, static, login, indexes
        # articles + ceil(articles / 25) listings per category = the rest
        self.per_cat = max(1, (max(pages - fixed, groups * 2) // groups) * PER_LISTING // (PER_LISTING + 1))
        self.listings = -(-self.per_cat // PER_LISTING)
        self.articles = groups * self.per_cat
        self.total = fixed + groups * (self.per_cat + self.listings)
        names = [" ".join(rng.choice(self.words).title() for _ in range(2)) for _ in range(self.sections)]
        self.sec_name = names
        self.sec_slug = [f"{n.lower().replace(' ', '-')}-{_letters(s)}" for s, n in enumerate(names)]
        self.cat_name = [" ".join(rng.choice(self.words).title() for _ in range(2)) for _ in range(self.cats)]
        self.cat_slug = [f"{n.lower().replace(' ', '-')}-{_letters(c)}" for c, n in enumerate(self.cat_name)]
        self.sec_index = {slug: s for s, slug in enumerate(self.sec_slug)}
        self.cat_index = {slug: c for c, slug in enumerate(self.cat_slug)}
        # Paragraph pool: 2048 paragraphs of 5-11 word runs; links go between the runs.
        self.pool = []
        for _ in range(2048):
            runs = [" ".join(rng.choice(self.words) for _ in range(rng.randint(5, 11))) for _ in range(rng.randint(8, 14))]
            self.pool.append(runs)
        self.anchor_pool = [" ".join(rng.choice(self.words) for _ in range(rng.randint(1, 4))) for _ in range(4096)]
        self._log_articles = math.log(self.articles + 1)
        nav = "".join(f'<li><a href="/{self.sec_slug[s]}/">{names[s]}</a></li>' for s in range(min(10, self.sections)))
        self.header = (
            '<header class="site-header"><a class="logo" href="/"><img src="/logo.png" alt="Example home"></a>'
            '<form action="/search"><input name="q"></form><a href="/account/login.html">Log in</a></header>'
            f'<nav class="main-nav"><ul><li><a href="/">Home</a></li>{nav}'
            '<li><a href="/sections.html">All sections</a></li><li><a href="/about.html">About</a></li></ul></nav>'
        )
        self.footer = (
            '<footer class="site-footer"><ul><li><a href="/about.html">About us</a></li>'
            '<li><a href="/contact.html">Contact</a></li><li><a href="/privacy.html">Privacy</a></li>'
            '<li><a href="/terms.html">Terms</a></li><li><a href="/sections.html">Site map</a></li>'
            '<li><a href="https://twitter.com/example" rel="nofollow">Twitter</a></li>'
            '<li><a href="https://github.com/example">GitHub</a></li>'
            '<li><a href="https://www.youtube.com/example" rel="nofollow">YouTube</a></li></ul>'
            '<p>&copy; 2024 Example Media. All rights reserved.</p></footer></body></html>'
        )

    # -- ids and URLs ------------------------------------------------------------------------
    def title(self, g: int) -> str:
        """3-7 words chosen by a 64-bit mix of g (no Random object: titles are made ~30 times a page)."""
        h = ((g + 1) * 0x9E3779B97F4A7C15) & _MASK
        h = ((h ^ (h >> 31)) * 0xBF58476D1CE4E5B9) & _MASK
        h ^= h >> 29
        w = self.words
        out = []
        for _ in range(3 + h % 5):
            h = (h * 6364136223846793005 + 1442695040888963407) & _MASK  # one LCG step a word
            out.append(w[(h >> 33) % 3000])
        return " ".join(out).capitalize()

    def art_url(self, g: int) -> str:
        grp, a = divmod(g, self.per_cat)
        s, c = divmod(grp, self.cats)
        return f"/{self.sec_slug[s]}/{self.cat_slug[c]}/{self.title(g).lower().replace(' ', '-')[:60]}-{_letters(a)}.html"

    def listing_url(self, s: int, c: int, k: int) -> str:
        return f"/{self.sec_slug[s]}/{self.cat_slug[c]}/" + ("" if k == 0 else f"page/{k + 1}.html")

    # -- pages -------------------------------------------------------------------------------
    def _doc(self, path: str, title: str, body: str) -> bytes:
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} | Example</title>'
                '<meta name="viewport" content="width=device-width"><link rel="stylesheet" href="/style.css">'
                f'<link rel="canonical" href="{path}"></head><body>{self.header}{body}{self.footer}').encode()

    def page(self, path: str) -> bytes | None:
        """The HTML of `path`, or None (404)."""
        if path == "/":
            latest = "".join(f'<li><a href="{self.art_url((s * self.cats) * self.per_cat)}">{self.title(s * self.cats * self.per_cat)}</a></li>'
                             for s in range(self.sections))
            return self._doc(path, "Home", f"<main><h1>Example Media</h1><ul>{latest}</ul></main>")
        parts = path.split("/")
        # parts[0] == "" always (path starts with "/")
        if len(parts) == 2:
            name = parts[1]
            if name == "sections.html":
                items = "".join(
                    f'<li><a href="/{self.sec_slug[s]}/">{self.sec_name[s]}</a><ul>'
                    + "".join(f'<li><a href="{self.listing_url(s, c, 0)}">{self.cat_name[c]}</a></li>' for c in range(self.cats))
                    + "</ul></li>" for s in range(self.sections))
                return self._doc(path, "All sections", f"<main><h1>All sections</h1><ul>{items}</ul></main>")
            if name.endswith(".html") and name[:-5] in STATIC:
                t = name[:-5].title()
                return self._doc(path, t, f"<main><h1>{t}</h1><p>{' '.join(self.pool[len(name)])}.</p></main>")
            return None
        s = self.sec_index.get(parts[1])
        if s is None:
            if path == "/account/login.html":
                return self._doc(path, "Log in", "<main><h1>Log in</h1></main>")
            return None
        if len(parts) == 3:
            if parts[2] != "":
                return None
            cats = "".join(f'<li><a href="{self.listing_url(s, c, 0)}">{self.cat_name[c]}</a></li>' for c in range(self.cats))
            return self._doc(path, self.sec_name[s], f'<main><h1>{self.sec_name[s]}</h1><ul class="categories">{cats}</ul></main>')
        c = self.cat_index.get(parts[2])
        if c is None:
            return None
        if len(parts) == 4:
            last = parts[3]
            if last == "":
                return self.listing(s, c, 0)
            if not last.endswith(".html"):
                return None
            slug, _, suffix = last[:-5].rpartition("-")
            a = _from_letters(suffix)
            if not slug or not 0 <= a < self.per_cat:
                return None
            g = (s * self.cats + c) * self.per_cat + a
            if self.art_url(g) != path:
                return None
            return self.article(path, s, c, a, g)
        if len(parts) == 5 and parts[3] == "page" and parts[4].endswith(".html"):
            num = parts[4][:-5]
            if not num.isdigit() or num.startswith("0"):
                return None
            k = int(num) - 1
            if not 1 <= k < self.listings:
                return None
            return self.listing(s, c, k)
        return None

    def listing(self, s: int, c: int, k: int) -> bytes:
        base = (s * self.cats + c) * self.per_cat
        items = "".join(f'<li><a href="{self.art_url(base + a)}">{self.title(base + a)}</a></li>'
                        for a in range(k * PER_LISTING, min(self.per_cat, (k + 1) * PER_LISTING)))
        last = self.listings - 1
        targets = []
        for label, j in (("First", 0), ("-10", k - 10), ("Newer", k - 1), ("Older", k + 1), ("+10", k + 10), ("Last", last)):
            if 0 <= j <= last and j != k:
                targets.append(f'<a href="{self.listing_url(s, c, j)}">{label}</a>')
        crumb = (f'<ol class="breadcrumb"><li><a href="/">Home</a></li><li><a href="/{self.sec_slug[s]}/">'
                 f'{self.sec_name[s]}</a></li></ol>')
        path = self.listing_url(s, c, k)
        name = f"{self.sec_name[s]} / {self.cat_name[c]}"
        return self._doc(path, f"{name} - page {k + 1}",
                         f'{crumb}<main><h1>{name}</h1><ul class="articles">{items}</ul>'
                         f'<div class="pager">{"".join(targets)}</div></main>')

    def _link_target(self, r: random.Random, s: int, c: int) -> int:
        x = r.random()
        if x < 0.6:  # same category
            return (s * self.cats + c) * self.per_cat + int(x / 0.6 * self.per_cat)
        if x < 0.8:  # same section
            return (s * self.cats + int(r.random() * self.cats)) * self.per_cat + int(r.random() * self.per_cat)
        # power law: P(g) ~ 1/(g+1) over all articles (a few very popular pages)
        return min(self.articles - 1, int(math.exp(r.random() * self._log_articles)) - 1)

    def article(self, path: str, s: int, c: int, a: int, g: int) -> bytes:
        r = random.Random(g)
        base = (s * self.cats + c) * self.per_cat
        n_links = r.randint(5, 15)
        n_paras = r.randint(4, 8)
        pool, anchors, w = self.pool, self.anchor_pool, self.words
        # spread the links over the paragraphs
        per = [n_links // n_paras + (1 if i < n_links % n_paras else 0) for i in range(n_paras)]
        paras = []
        for i in range(n_paras):
            runs = pool[int(r.random() * 2048)]
            k = min(per[i], len(runs) - 1)
            out = []
            for j, run in enumerate(runs):
                out.append(run)
                if j < k:
                    t = self._link_target(r, s, c)
                    out.append(f'<a href="{self.art_url(t)}">{anchors[int(r.random() * 4096)]}</a>')
            paras.append("<p>" + " ".join(out) + ".</p>")
        related = "".join(f'<li><a href="{self.art_url(base + b)}">{self.title(base + b)}</a></li>'
                          for b in r.sample(range(self.per_cat), min(8, self.per_cat)))
        pager = "".join(f'<a rel="{rel}" href="{self.art_url(base + b)}">{label}</a>'
                        for rel, b, label in (("prev", a - 1, "Previous"), ("next", a + 1, "Next"))
                        if 0 <= b < self.per_cat)
        title = self.title(g)
        body = (f'<ol class="breadcrumb"><li><a href="/">Home</a></li><li><a href="/{self.sec_slug[s]}/">'
                f'{self.sec_name[s]}</a></li><li><a href="{self.listing_url(s, c, a // PER_LISTING)}">{self.cat_name[c]}</a></li></ol>'
                f'<main><article><h1>{title}</h1><p class="byline">By {w[g % 3000].title()} {w[(g * 7) % 3000].title()}</p>'
                f'{"".join(paras)}<div class="pager">{pager}</div></article></main>'
                f'<aside class="sidebar"><h2>Related</h2><ul>{related}</ul></aside>')
        return self._doc(path, title, body)


# -- HTTP ------------------------------------------------------------------------------------------
class Stats:
    def __init__(self) -> None:
        self.requests = self.ok = self.not_found = self.bytes = self.connections = 0
        self.started = time.monotonic()

    def as_dict(self) -> dict:
        return {"requests": self.requests, "ok": self.ok, "not_found": self.not_found, "bytes": self.bytes,
                "connections": self.connections, "seconds": round(time.monotonic() - self.started, 3),
                "cpu_seconds": round(time.process_time(), 3)}


_NOT_FOUND = b"<!DOCTYPE html><html><head><title>Not found</title></head><body><h1>404 Not found</h1></body></html>"


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: request line + headers up to a blank line; bodies are not expected."""

    __slots__ = ("site", "stats", "transport", "buf")

    def __init__(self, site: Site, stats: Stats) -> None:
        self.site, self.stats, self.buf = site, stats, b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        close = False
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buf = buf[:end], buf[end + 4:]
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            try:
                method, target, version = request_line.decode("latin-1").split(" ")
            except ValueError:
                out.append(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                close = True
                break
            lower = head.lower()
            if version == "HTTP/1.0" and b"connection: keep-alive" not in lower:
                close = True
            elif b"connection: close" in lower:
                close = True
            path = target.split("?", 1)[0].split("#", 1)[0]
            if target.startswith("http://") or target.startswith("https://"):
                path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
            if path == "/__stats":  # for the benchmark's sampler; not linked, not counted
                body = json.dumps(self.stats.as_dict()).encode()
                out.append(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                           + str(len(body)).encode() + b"\r\n\r\n" + body)
                continue
            self.stats.requests += 1
            body = self.site.page(path) if method in ("GET", "HEAD") else None
            if body is None:
                status, body = (b"404 Not Found" if method in ("GET", "HEAD") else b"405 Method Not Allowed"), _NOT_FOUND
                self.stats.not_found += 1
            else:
                status = b"200 OK"
                self.stats.ok += 1
            self.stats.bytes += len(body)
            out.append(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
                       + str(len(body)).encode() + (b"\r\nConnection: close" if close else b"") + b"\r\n\r\n")
            if method != "HEAD":
                out.append(body)
            if close:
                break
        self.buf = buf
        if out:
            self.transport.writelines(out)  # type: ignore[union-attr]
        if close:
            self.transport.close()  # type: ignore[union-attr]
        elif len(self.buf) > 65536:
            self.transport.close()  # type: ignore[union-attr]


async def serve(site: Site, port: int, stats: Stats, ready_fd: int | None, stats_path: str | None) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    server = await loop.create_server(lambda: HttpProtocol(site, stats), sock=sock, backlog=1024)
    port = sock.getsockname()[1]
    print(json.dumps({"port": port, "pages": site.total, "articles": site.articles, "sections": site.sections,
                      "categories": site.cats, "per_category": site.per_cat, "listings_per_category": site.listings}),
          flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if stats_path:
        with open(stats_path, "w") as f:
            json.dump(stats.as_dict(), f)


# -- self-test: pages/s of the server alone ------------------------------------------------------
def selftest(pages: int, count: int, concurrency: int) -> None:
    """Start the server in a subprocess (its own core) and fetch `count` pages with aiohttp."""
    import subprocess

    import aiohttp

    proc = subprocess.Popen([sys.executable, __file__, "--pages", str(pages), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    info = json.loads(proc.stdout.readline())
    base = f"http://127.0.0.1:{info['port']}"
    site = Site(pages)
    r = random.Random(1)
    urls = [site.art_url(r.randrange(site.articles)) for _ in range(count)]

    async def run() -> tuple[float, int, int]:
        conn = aiohttp.TCPConnector(limit=concurrency)
        nbytes = ok = 0
        async with aiohttp.ClientSession(connector=conn) as session:
            it = iter(urls)

            async def worker() -> None:
                nonlocal nbytes, ok
                for u in it:
                    async with session.get(base + u) as resp:
                        body = await resp.read()
                        nbytes += len(body)
                        ok += resp.status == 200

            t = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - t, nbytes, ok

    cpu0 = _proc_cpu(proc.pid)
    seconds, nbytes, ok = asyncio.run(run())
    cpu = _proc_cpu(proc.pid) - cpu0
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    print(f"{count} article pages, concurrency {concurrency}: {seconds:.2f} s, {count / seconds:,.0f} pages/s "
          f"(client-bound on a shared machine), server CPU {cpu:.2f} s = {count / max(cpu, 1e-9):,.0f} pages per "
          f"server CPU-second, {nbytes / count / 1024:.1f} KiB a page, {ok} answered 200; load {os.getloadavg()[0]:.1f}")


def _proc_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=float, default=10_000, help="site size (about; 1e6 works)")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed as JSON on stdout)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", help="write request counters as JSON here on exit")
    parser.add_argument("--selftest", type=int, metavar="N", help="measure: fetch N article pages with aiohttp")
    parser.add_argument("--concurrency", type=int, default=16, help="for --selftest")
    args = parser.parse_args()
    if args.selftest:
        selftest(int(args.pages), args.selftest, args.concurrency)
        return
    site = Site(int(args.pages), args.seed)
    asyncio.run(serve(site, args.port, Stats(), None, args.stats))


if __name__ == "__main__":
    main()

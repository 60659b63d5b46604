"""Check that two versions of the crawler store the same data: crawl fixed sites with each, compare.

    PYTHONPATH=/path/to/old/src .venv/bin/python benchmarks/crawl_equality.py crawl /tmp/eq-old
    PYTHONPATH=/path/to/new/src .venv/bin/python benchmarks/crawl_equality.py crawl /tmp/eq-new
    .venv/bin/python benchmarks/crawl_equality.py compare /tmp/eq-old /tmp/eq-new

Sites: the generated site of bench_crawl.py (--pages, default 20,000), with a page of unusual
markup linked from its home page (landmark roles, <noscript>, image and <area> links, rel values,
relative and odd hrefs, redirects, errors, a non-HTML file), and, when installed, the Python
documentation (real-world markup; python3-doc). Each is served by nginx on a fixed port (the
port is part of every stored URL) and crawled with concurrency 1, so that discovery order, sequence
numbers and depths are deterministic; extraction workers run as in any crawl.
`compare` checks the pages, links, redirects and frontier tables row for row, every column except
the timings (response_time_ms, crawled_at).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_crawl  # noqa: E402

_PORT = 18731
_TIMINGS = {"response_time_ms", "crawled_at"}
_ORDER = {"pages": "seq", "links": "source_url, link_order", "redirects": "source_url",
          "frontier": "seq"}


_EXTRAS = """<!DOCTYPE html><html lang="en-GB"><head><title>Extras &amp; more</title>
<meta name="robots" content="index, follow"><base href="/extras/base/"></head><body class="has-sidebar">
<div role="navigation"><a href="../../">Up</a><a href="one.html" rel="UGC Sponsored">One</a></div>
<div id="topMenu"><a href="/extras-dir">A folder without its slash (301)</a></div>
<div class="card-header"><a href="/missing.html">Missing (404)</a></div>
<header role="banner"><a href="/robots-less.txt"><img src="x.png" alt="Alt  text"></a></header>
<main class="sidebar"><article><header><a href="/extras/plain.txt">Byline</a></header>
<p>Text with <a href="?q=1&amp;utm_source=x#frag">a query</a>, <a href="#top">a jump</a>,
<a href="mailto:a@b.c">mail</a>, <a href="javascript:void(0)">script</a> and
<a href="HTTP://127.0.0.1:18731/%7Euser/./a/../b.html" title="Titled"></a>.</p>
<noscript><a href="/noscript.html">Hidden</a></noscript>
<map name="m"><area href="/area.html" alt="An area"></map>
<nav><aside><a href="/nested.html" aria-label="Label">\u00a0</a></aside></nav></article></main>
<div class="widgets-area"><a href="/footer-ish.html" rel="nofollow">W\u00e9b</a></div>
<footer class="site-footer"><a href="//127.0.0.1:18731/proto-relative.html">PR</a></footer>
</body></html>"""


def _add_extras(root: Path) -> None:
    """The page of unusual markup, linked from the home page, and what it links to."""
    (root / "extras.html").write_text(_EXTRAS, encoding="utf-8")
    (root / "extras-dir").mkdir()
    (root / "extras-dir" / "index.html").write_text("<p>A folder</p>")
    (root / "extras").mkdir()
    (root / "extras" / "plain.txt").write_text("not html")
    home = root / "index.html"
    home.write_text(home.read_text().replace("<main>", '<main><a href="/extras.html">Extras</a>', 1))


def _crawl(out: Path, pages: int) -> None:
    from linkjuice.config import CrawlConfig
    from linkjuice.crawl.crawler import Crawler
    from linkjuice.store import Store

    import linkjuice
    print(f"linkjuice from {Path(linkjuice.__file__).parent}")
    out.mkdir(parents=True, exist_ok=True)
    bench_crawl.free_port = lambda: _PORT  # the same URLs in every run
    with tempfile.TemporaryDirectory(prefix="lj-equality-") as tmp:
        tmp_path = Path(tmp)
        tmp_path.chmod(0o755)
        sites = {"generated": tmp_path / "site"}
        bench_crawl.generate_site(sites["generated"], pages)
        _add_extras(sites["generated"])
        docs = bench_crawl.python_docs()
        if docs is not None:
            sites["docs"] = docs
        for name, root in sites.items():
            work = tmp_path / f"work-{name}"
            work.mkdir()
            server = bench_crawl.Nginx(root, work)
            try:
                db = out / f"{name}.duckdb"
                db.unlink(missing_ok=True)
                with Store(db) as store:
                    config = CrawlConfig(start_url=server.url, obey_robots=False, use_sitemaps=False,
                                         concurrency=1)
                    summary = asyncio.run(Crawler(config, store).run())
                print(f"{name}: {summary.pages} pages, {summary.links} links -> {db}")
            finally:
                server.stop()


def _compare(old: Path, new: Path) -> bool:
    import duckdb

    same = True
    for db_old in sorted(old.glob("*.duckdb")):
        db_new = new / db_old.name
        con = duckdb.connect()
        con.execute(f"ATTACH '{db_old}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{db_new}' AS b (READ_ONLY)")
        for table, order in _ORDER.items():
            columns = [row[0] for row in con.execute(f"DESCRIBE a.{table}").fetchall()
                       if row[0] not in _TIMINGS]
            cols = ", ".join(columns)
            counts = [con.execute(f"SELECT count(*) FROM {db}.{table}").fetchone()[0] for db in "ab"]
            # EXCEPT ALL both ways: rows (duplicates counted) that only one side holds.
            only = [con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {x}.{table} "
                                f"EXCEPT ALL SELECT {cols} FROM {y}.{table})").fetchone()[0]
                    for x, y in (("a", "b"), ("b", "a"))]
            ordered = con.execute(
                f"SELECT count(*) FROM (SELECT row_number() OVER (ORDER BY {order}) AS i, {cols} FROM a.{table}) x "
                f"FULL JOIN (SELECT row_number() OVER (ORDER BY {order}) AS i, {cols} FROM b.{table}) y "
                f"USING (i) WHERE x IS DISTINCT FROM y").fetchone()[0]
            ok = counts[0] == counts[1] and only == [0, 0] and ordered == 0
            same &= ok
            print(f"{db_old.stem:10s} {table:10s} rows {counts[0]:>8} vs {counts[1]:>8}; only in old {only[0]}, "
                  f"only in new {only[1]}, rows differing in order {ordered}: {'same' if ok else 'DIFFERENT'}")
        con.close()
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    crawl = sub.add_parser("crawl")
    crawl.add_argument("out", type=Path)
    crawl.add_argument("--pages", type=int, default=20_000)
    compare = sub.add_parser("compare")
    compare.add_argument("old", type=Path)
    compare.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "crawl":
        _crawl(args.out, args.pages)
    else:
        sys.exit(0 if _compare(args.old, args.new) else 1)


if __name__ == "__main__":
    main()

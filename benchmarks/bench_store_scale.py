"""Scoring, auditing and exporting straight from a crawl store, as the store grows.

    .venv/bin/python benchmarks/bench_store_scale.py --sizes 100k,1M            # ~15 min
    .venv/bin/python benchmarks/bench_store_scale.py --sizes 100k,1M,3M --audit-max 3M \
        --plot docs/bench-store-scale.png

For each size a store is generated (cached in .bench/stores/) as a crawl leaves it before its
finalize step: pages, links with DOM positions and anchors, redirects. Then each step runs in a
fresh subprocess, so its wall time and peak RSS (VmHWM) are what a user sees: `finalize`
(template links, link_pairs, click depths: the end of `linkjuice crawl`), `linkjuice score` (the
first one computes and caches the relevance of every linked pair), `score` again (`rescore`),
`linkjuice audit`, `linkjuice export pages` (CSV) and `linkjuice export links --format parquet`.
Optional steps: `first-score` (the store's scores and cached relevance are removed first, untimed,
as on a new crawl: the iterations start from scratch), `reweigh` (`score --relevance-weight
0.4`: a changed model, iterated from the last scores; later steps keep that model), the audit's
exports `export-findings` (CSV), `export-findings-parquet` and `export-items` (CSV, after an
audit), and the Parquet datasets `dataset-pages`, `dataset-links`, `dataset-link-flows` and
`dataset-scores` (`linkjuice export parquet --dataset ...`). Each export's output is deleted
once measured (the 10M store's findings CSV alone is 8.9 GB). `explain-home` and `explain-product`
time `linkjuice explain` on the home page (every page links to it) and on a product page (s7/p3777:
a few dozen links in).

Each row also records the host (host_probe: the libraries' versions and the memory bandwidth),
since the shared VM's pace varies between days.

The generated site is an e-commerce-like store of N pages in sections of 500 with 21 links a page:
a header link home, 8 nav links to section hubs, 3 footer links and 1 external link, and 8 content
links (4 within the section, 3 to popular products with a power-law popularity, 1 "read more"),
content anchors naming their target. 1% of pages answer 404, 0.5% redirect, 1% are noindex.
Pages carry a title and h1 but no body text (a 10M-page crawl's text is cached separately), so
the relevance factor is computed from titles.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".bench"
STORES = OUT / "stores"
LINKS_PER_PAGE = 21
SECTION = 500
PAGES_PER_INSERT = 200_000


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * mult)


def make_store(path: Path, n: int) -> float:
    """Write a finished crawl store of n pages; returns seconds taken."""
    sys.path.insert(0, str(ROOT / "src"))
    from linkjuice.store import Store

    started = time.perf_counter()
    origin = "https://shop.example"
    tmp = path.with_suffix(".tmp.duckdb")
    tmp.unlink(missing_ok=True)
    with Store(tmp) as store:
        con = store.con
        # Pseudo-random but deterministic per (page, slot): hash() based, so runs agree.
        con.execute(f"""
            INSERT INTO pages (url, seq, status, content_type, bytes, response_time_ms, found_depth, found_via,
                               title, h1, redirect_to, is_html, noindex, nofollow, blocked_by_robots, crawled_at, word_count)
            SELECT CASE WHEN i = 0 THEN '{origin}/' ELSE '{origin}/s' || (i // {SECTION}) || '/p' || i END,
                   i,
                   CASE WHEN i > 0 AND hash(i, 'st') % 100 = 0 THEN 404
                        WHEN i > 0 AND hash(i, 'st') % 200 = 1 THEN 301 ELSE 200 END,
                   'text/html', 8000, 12.0, 3, 'link',
                   'Widget ' || i || ' | Shop', 'Widget ' || i,
                   CASE WHEN i > 0 AND hash(i, 'st') % 200 = 1
                        THEN '{origin}/s' || ((i + 1) // {SECTION}) || '/p' || (i + 1) END,
                   true, i > 0 AND hash(i, 'st') % 100 = 2, false, false, TIMESTAMP '2026-11-01', 300
            FROM range({n}) t(i)
        """)
        con.execute("""
            INSERT INTO redirects SELECT url, 301, redirect_to FROM pages WHERE redirect_to IS NOT NULL
        """)
        con.execute(f"""
            CREATE TEMP MACRO page_url(i) AS
                CASE WHEN i = 0 THEN '{origin}/' ELSE '{origin}/s' || (i // {SECTION}) || '/p' || i END
        """)
        sections = max(1, n // SECTION)
        # As a crawl writes them: each page's links together, pages in order (a slice of pages
        # per statement, each sorted: one sort of every link would spill gigabytes at 10M).
        for first in range(0, n, PAGES_PER_INSERT):
            _insert_links(con, origin, n, sections, first, min(n, first + PAGES_PER_INSERT))
        store.set_meta({"start_url": f"{origin}/", "status": "finished", "links_by_source": True,
                        "settings": {"template_share": 0.5, "template_min_pages": 10}})
    tmp.rename(path)
    return time.perf_counter() - started


def _insert_links(con, origin: str, n: int, sections: int, first: int, last: int) -> None:  # noqa: ANN001
    """The links of pages first <= i < last, in page order and, within a page, in link order."""
    con.execute(f"""
            INSERT INTO links (source_url, target_url, anchor, rel, nofollow, dom_position, link_order, is_internal,
                               position)
            WITH slots AS (
                SELECT i, j, hash(i, j) AS h FROM range({first}, {last}) p(i), range({LINKS_PER_PAGE}) s(j)
                WHERE NOT (hash(i, 'st') % 100 = 0 AND i > 0) AND NOT (hash(i, 'st') % 200 = 1 AND i > 0)
            ), targets AS (
                SELECT i, j, CASE
                    WHEN j = 0 THEN 0
                    WHEN j <= 8 THEN least({n} - 1, ((h % {sections}) * {SECTION}) + 1)
                    WHEN j <= 11 THEN least({n} - 1, j - 8)
                    WHEN j = 12 THEN -1
                    WHEN j <= 16 THEN least({n} - 1, (i // {SECTION}) * {SECTION} + h % {SECTION})
                    WHEN j <= 19 THEN (({n} - 1) * pow((h % 1000003) / 1000003.0, 3))::BIGINT
                    ELSE least({n} - 1, i + 1 + h % 7) END AS t
                FROM slots
            )
            SELECT page_url(i),
                   CASE WHEN t < 0 THEN 'https://partner' || (i % 97) || '.example/' ELSE page_url(t) END,
                   CASE WHEN j = 0 THEN 'Home' WHEN j <= 8 THEN 'Section ' || (t // {SECTION})
                        WHEN j <= 11 THEN 'About ' || j WHEN j = 12 THEN 'Partner'
                        WHEN j = 20 THEN 'read more' ELSE 'Widget ' || t END,
                   CASE WHEN j = 12 THEN 'nofollow' END, j = 12,
                   CASE WHEN j = 0 THEN 'header' WHEN j <= 8 THEN 'nav' WHEN j <= 12 THEN 'footer' ELSE 'content' END,
                   j, t >= 0,
                   -- as the crawler writes it: position starts as dom_position
                   CASE WHEN j = 0 THEN 'header' WHEN j <= 8 THEN 'nav' WHEN j <= 12 THEN 'footer' ELSE 'content' END
            FROM targets WHERE t <> i
            ORDER BY i, j
        """)


FINALIZE = ("import sys; from linkjuice.store import Store; from linkjuice.pipeline import finalize_store\n"
            "with Store(sys.argv[1]) as s: finalize_store(s)")


def forget_scores(path: Path) -> None:
    """Make the next `score` a first one, as after a new crawl: no stored scores to start from and
    no cached relevance (not timed)."""
    sys.path.insert(0, str(ROOT / "src"))
    from linkjuice.store import Store

    with Store(path) as store:
        state = store.meta().get("link_pairs") or {}
        store.con.execute("DELETE FROM page_scores")
        store.con.execute("DROP TABLE IF EXISTS pair_relevance")
        store.set_meta({"link_pairs": {**state, "relevance": None}})


def host_probe() -> dict[str, object]:
    """What sets this machine's pace today, recorded with each row: the libraries' versions and
    the memory bandwidth (GiB/s of a second fill of a 1 GiB array, already backed). On the shared
    VM these benchmarks run on it varied 5x between sessions (docs/benchmarks.md, eighteenth
    session), and the audit's time with it: rows of different days compare only where it agrees."""
    from importlib.metadata import version

    import numpy as np
    from fresh_memory import _fill_seconds  # (beside this script)

    array = np.empty(1 << 27)  # 1 GiB of float64
    _fill_seconds(array, 1)  # (first touch: backed now)
    return {"mem_gib_s": round(1.0 / _fill_seconds(array, 2), 1),
            "versions": {name: version(name) for name in ("duckdb", "pyarrow", "numpy", "pandas")}}


def run_step(name: str, argv: list[str]) -> dict[str, object]:
    """Run one step under /usr/bin/time; wall seconds and peak RSS."""
    program = [sys.executable, "-c", FINALIZE] if argv[0] == "finalize" else [str(ROOT / ".venv/bin/linkjuice")]
    cmd = ["/usr/bin/time", "-f", "%e %M", *program, *(argv[1:] if argv[0] == "finalize" else argv)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1].split()
    wall, rss_kb = float(last[0]), int(last[1])
    if proc.returncode not in (0, 3):
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    return {"step": name, "seconds": wall, "peak_rss_mb": round(rss_kb / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1M")
    parser.add_argument("--steps", default="finalize,score,rescore,audit,export-pages,export-links")
    parser.add_argument("--audit-max", default="3M", help="largest size the audit runs on")
    parser.add_argument("--plot", default=None)
    parser.add_argument("--plot-only", action="store_true",
                        help="measure nothing: draw --plot from the saved rows (.bench/store-scale.json)")
    args = parser.parse_args()
    if args.plot_only:
        if not args.plot or not (OUT / "store-scale.json").exists():
            raise SystemExit("--plot-only needs --plot PATH and saved rows in .bench/store-scale.json")
        plot(json.loads((OUT / "store-scale.json").read_text()), args.plot)
        return
    STORES.mkdir(parents=True, exist_ok=True)
    host = host_probe()
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}, memory {host['mem_gib_s']} GiB/s, "
          + ", ".join(f"{k} {v}" for k, v in host["versions"].items()))
    results = []
    for size in [parse_size(s) for s in args.sizes.split(",")]:
        db = STORES / f"store-{size}.duckdb"
        if not db.exists():
            print(f"generating {size:,} pages ...", flush=True)
            print(f"  generated in {make_store(db, size):.1f} s", flush=True)
        import duckdb

        with duckdb.connect(str(db), read_only=True) as con:
            pages = con.execute("SELECT count(*) FROM pages").fetchone()[0]
            links = con.execute("SELECT count(*) FROM links").fetchone()[0]
            home = con.execute("SELECT value FROM meta WHERE key = 'start_url'").fetchone()[0]
        steps = {
            "finalize": ["finalize", str(db)],
            "score": ["score", "--db", str(db)],
            "first-score": ["score", "--db", str(db)],  # after forget_scores
            "rescore": ["score", "--db", str(db)],
            "reweigh": ["score", "--db", str(db), "--relevance-weight", "0.4"],  # then rescored from there
            "audit": ["audit", "--db", str(db), "--top", "3"],
            "export-pages": ["export", "pages", "--db", str(db), "--format", "csv", "-o", str(OUT / "pages.csv")],
            "export-links": ["export", "links", "--db", str(db), "--format", "parquet", "-o",
                             str(OUT / "links.parquet")],
            "export-findings": ["export", "findings", "--db", str(db), "-o", str(OUT / "findings.csv")],
            "export-findings-parquet": ["export", "findings", "--db", str(db), "--format", "parquet", "-o",
                                        str(OUT / "findings.parquet")],
            "export-items": ["export", "finding-items", "--db", str(db), "-o", str(OUT / "items.csv")],
            **{f"dataset-{name.replace('_', '-')}": ["export", "parquet", "--db", str(db), "-o",
                                                      str(OUT / "datasets"), "--dataset", name]
               for name in ("pages", "links", "link_flows", "scores")},
            "explain-home": ["explain", home, "--db", str(db)],
            "explain-product": ["explain", f"{home}s7/p3777", "--db", str(db)],
        }
        for name in args.steps.split(","):
            if name == "audit" and size > parse_size(args.audit_max):
                continue
            if name == "first-score":
                forget_scores(db)
            row = {"pages": pages, "links": links, "store_mb": round(db.stat().st_size / 2**20),
                   "load": round(os.getloadavg()[0], 1), **host, **run_step(name, steps[name])}
            for written in (OUT / "findings.csv", OUT / "findings.parquet", OUT / "items.csv"):
                written.unlink(missing_ok=True)
            shutil.rmtree(OUT / "datasets", ignore_errors=True)
            results.append(row)
            print(json.dumps(row), flush=True)
    # Earlier rows of other sizes or steps are kept, so steps can be re-measured one at a time.
    saved = OUT / "store-scale.json"
    done = {(r["pages"], r["step"]) for r in results}
    earlier = json.loads(saved.read_text()) if saved.exists() else []
    results = [r for r in earlier if (r["pages"], r["step"]) not in done] + results
    saved.write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)


def plot(results: list[dict[str, object]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5))
    # One colour and marker per step (17 steps: a 10-colour cycle would repeat), the legend beside.
    colours, markers = plt.get_cmap("tab20").colors, "osD^v<>ph*"
    steps = sorted({str(r["step"]) for r in results})
    for k, step in enumerate(steps):
        rows = sorted((r for r in results if r["step"] == step), key=lambda r: r["links"])
        links = [r["links"] for r in rows]
        style = {"marker": markers[k % len(markers)], "color": colours[k % len(colours)], "label": step}
        ax_t.loglog(links, [r["seconds"] for r in rows], **style)
        ax_m.loglog(links, [r["peak_rss_mb"] for r in rows], **style)
    ax_t.axhline(60, color="grey", linestyle="--", linewidth=1)  # the minute
    ax_t.set(xlabel="links in the store", ylabel="wall seconds", title="time from the store (dashed: 1 minute)")
    ax_m.set(xlabel="links in the store", ylabel="peak RSS, MB", title="memory")
    from matplotlib.ticker import NullFormatter

    for ax in (ax_t, ax_m):
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

"""The HTML report: built from a real crawl of the demo site, checked as text, then opened in
headless Chromium (offline, zero requests, no console errors, a graph that draws, tables that
filter and sort, the XSS probe title shown as text)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from linkjuice.cli import app
from linkjuice.config import ModelConfig
from linkjuice.pipeline import finalize_store, open_store, score_store
from linkjuice.report import ReportLimits, build_report, render_report, report_payload
from linkjuice.report.layout import radial_layout
from linkjuice.report.render import embed_json
from linkjuice.store import Store

from .browserkit import browser, needs_chromium, open_page, pixel_spread
from .reportkit import XSS_TITLE, demo_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return demo_store(tmp_path_factory.mktemp("report") / "demo.duckdb")


@pytest.fixture(scope="module")
def report(demo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "report.html"
    build_report(demo[0], out)
    return out


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = dict(attrs).get("id") if tag == "script" else None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.data[self._in] = self.data.get(self._in, "") + data


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


# -- the file ---------------------------------------------------------------------------------
def test_embedded_json_cannot_end_its_script_element() -> None:
    nasty = {"title": "</script><script>alert(1)</script>", "c": "<!-- x", "amp": "a & b > c",
             "line": "a\u2028b", "SCRIPT": "</SCRIPT >"}
    text = str(embed_json(nasty))
    assert "</" not in text and "<!--" not in text and "<" not in text
    assert json.loads(text) == nasty


def test_report_is_one_self_contained_file(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    tags = _parse(html).tags
    # Nothing refers to another file or host: no src/href to fetch, no <link>, no <iframe>...
    assert not [t for t, a in tags if t in ("link", "iframe", "img", "object", "embed", "base")]
    assert not [a for t, a in tags if t == "script" and "src" in a]
    hrefs = [a.get("href") for t, a in tags if t == "a"]
    assert all(h and h.startswith("#") for h in hrefs)
    csp = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "connect-src 'none'" in csp and "default-src 'none'" in csp and "unsafe-eval" not in csp
    assert len(re.findall(r"'sha256-[A-Za-z0-9+/=]+'", csp)) == 4  # the three libraries and report.js
    assert "sigma.js 3.0.3" in html and "Apache ECharts 6.1.0" in html  # licences named in the footer


def test_xss_probe_is_data_not_markup(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert XSS_TITLE not in html  # never raw: in the data block as \u003c..., in markup as &lt;...
    parsed = _parse(html)
    data = json.loads(parsed.data["lj-data"])
    titles = data["tables"]["pages"]["rows"]
    assert XSS_TITLE in {row[1] for row in titles}  # the JSON still holds the exact title
    # Every <script> element is one of ours: the data block and the four inline scripts.
    scripts = [a for t, a in parsed.tags if t == "script"]
    assert len(scripts) == 5 and scripts[0] == {"type": "application/json", "id": "lj-data"}


def test_server_rendered_parts_escape_crawled_text(demo: tuple[Path, str]) -> None:
    # The top-pages table and the summary are rendered by Jinja: put the probe where they show it.
    with Store(demo[0], read_only=True) as store:
        payload = report_payload(store)
    payload["top_pages"]["rows"][0][1] = XSS_TITLE
    payload["meta"]["start_url"] = "http://x/\"><img src=x onerror=alert(1)>"
    from linkjuice.report.render import render_page

    html, _ = render_page(payload)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Best Brownies" in html
    assert "<img src=x" not in html and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_sections_and_numbers(demo: tuple[Path, str]) -> None:
    db, origin = demo
    with Store(db, read_only=True) as store:
        p = report_payload(store)
        ranked = int(store.sql("SELECT count(*) AS n FROM scores WHERE juice > 0")["n"].iloc[0])
        findings = store.sql("SELECT severity, count(*) AS n FROM findings GROUP BY severity")
    assert p["status"] == {"findings": "ok", "suggestions": "ok"}
    assert p["severity"] == dict(zip(findings["severity"], findings["n"].astype(int)))
    assert sum(p["histogram"]["counts"]) == ranked
    assert sum(d["juice_share"] for d in p["depth"]) == pytest.approx(1.0)
    destination = p["accounting"]["destination"]
    assert sum(r["share"] for r in destination) == pytest.approx(1.0)
    # The Sankey is the section flow matrix: its widths add up to the matrix total.
    with Store(db, read_only=True) as store:
        total = float(store.sql("SELECT sum(juice) AS j FROM section_flows")["j"].iloc[0])
    assert sum(link["value"] for link in p["sankey"]["links"]) == pytest.approx(total)
    assert all(n.startswith(("from ", "to ")) for n in p["sankey"]["nodes"])
    g = p["graph"]
    assert len(g["url"]) == p["stats"]["pages"] and not g["sampled"]
    home = g["url"].index(origin + "/")
    assert (g["x"][home], g["y"][home]) == (0.0, 0.0)
    orphan = g["url"].index(origin + "/blog/rye-starter-secrets/")  # no link reaches it
    assert g["flags"][orphan] & 1
    broken = g["url"].index(origin + "/shop/proofing-box/")
    assert g["flags"][broken] & 2
    # Drill-down rows are the page's link flows: the first "in" row of /blog/ is its strongest source.
    blog = origin + "/blog/"
    urls = p["drilldown"]["urls"]
    first_in = next(r for r in p["drilldown"]["rows"] if r[0] == "in" and urls[r[1]] == blog)
    with Store(db, read_only=True) as store:
        strongest = store.link_flows_frame(resolved=blog, limit=1)
    assert urls[first_in[2]] == strongest["source_url"].iloc[0]
    assert first_in[8] == pytest.approx(float(strongest["juice"].iloc[0]))


# -- the flows the graph and drill-downs read (Store.flows_among, Store.flows_of) ---------------
def _tied_store(db: Path, leaves: int = 30) -> Path:
    """A home page, a hub and `leaves` pages alike but for their URLs: each leaf gets the same
    juice, so the hub's strongest sources tie and are told apart by URL alone."""
    origin = "https://t.example"
    names = [f"{origin}/leaf-{i:02d}" for i in range(leaves)]
    pages = [{"url": u, "seq": k, "status": 200, "is_html": True, "content_type": "text/html",
              "title": "Leaf", "main_text": "leaf words", "found_via": "link"}
             for k, u in enumerate([f"{origin}/", f"{origin}/hub", *names])]
    links = [{"source_url": f"{origin}/", "target_url": u, "anchor": "leaf", "dom_position": "content",
              "link_order": k, "is_internal": True} for k, u in enumerate([f"{origin}/hub", *names])]
    links += [{"source_url": u, "target_url": t, "anchor": "hub", "dom_position": "content", "link_order": k,
               "is_internal": True} for u in names for k, t in enumerate([f"{origin}/hub", f"{origin}/"])]
    links.append({"source_url": f"{origin}/hub", "target_url": f"{origin}/", "anchor": "home",
                  "dom_position": "nav", "link_order": 0, "is_internal": True})
    with Store(db) as store:
        store.write_batch(pages=pages, links=links, redirects=[])
        store.set_meta({"start_url": f"{origin}/"})
        finalize_store(store)
    with open_store(db, read_only=False) as store:
        score_store(store)
    return db


def _strongest(flows: pd.DataFrame, by: str, per_page: int) -> pd.DataFrame:
    """Every page's per_page strongest flows by `by` (resolved_url or source_url), from all of
    them; equal juice by source, then target URL."""
    ordered = flows.sort_values([by, "juice", "source_url", "target_url"], ascending=[True, False, True, True])
    return ordered.groupby(by, sort=False).head(per_page)


@pytest.fixture(scope="module")
def flow_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from .test_export_parquet import generated_store

    folder = tmp_path_factory.mktemp("flows")
    generated = generated_store(folder / "g.duckdb", n=600, seed=11)
    with open_store(generated, read_only=False) as store:
        score_store(store, model=ModelConfig(redirect_factor=0.8))
    return {"generated": generated, "tied": _tied_store(folder / "t.duckdb")}


@pytest.mark.parametrize("kind", ["generated", "tied"])
@pytest.mark.parametrize("first_sources", [2, 1 << 14, None])
def test_drilldown_flows_are_each_pages_strongest_of_all_its_flows(flow_stores: dict[str, Path], kind: str,
                                                                   first_sources: int | None, monkeypatch) -> None:
    """The strongest sources are read from the strongest source pages first, a round at a time
    (first_sources: 2 makes several rounds; None: a store scored before the heaviest pair weight
    was kept, read in one round): the rows are those of a sort of every flow, ties by URL."""
    db = flow_stores[kind]
    if first_sources is not None:
        monkeypatch.setattr(Store, "_INFLOW_SOURCES", first_sources)
    with Store(db, read_only=True) as store:
        every = store.sql("SELECT * FROM link_flows")
        urls = list(store.sql("SELECT url FROM pages ORDER BY url")["url"])
        if first_sources is None:
            model = store.meta()["model"]
            assert "max_pair_weight" in model  # (kept by score)
            monkeypatch.setattr(Store, "meta", lambda self: {"model": {k: v for k, v in model.items()
                                                                      if k != "max_pair_weight"}})
        for per_page in (1, 3, 5):
            got = store.flows_of(urls, per_page)
            into = _strongest(every[every["resolved_url"].isin(urls)], "resolved_url", per_page)
            out = _strongest(every[every["source_url"].isin(urls)], "source_url", per_page)
            for direction, want, page in (("in", into, "resolved_url"), ("out", out, "source_url")):
                rows = got[got["direction"] == direction].reset_index(drop=True)
                assert list(rows["page"]) == list(want[page]), (direction, per_page)
                for column in ("source_url", "target_url", "resolved_url", "anchor", "reason"):
                    assert list(rows[column]) == list(want[column]), (direction, per_page, column)
                assert rows["juice"].to_numpy() == pytest.approx(want["juice"].to_numpy(), rel=1e-12)
    if kind == "tied":  # (what this store is for: the hub's sources tie, and are cut by URL)
        leaves = every[every["resolved_url"].str.endswith("/hub") & every["source_url"].str.contains("/leaf-")]
        assert len(leaves) == 30 and leaves["juice"].nunique() == 1


@pytest.mark.parametrize("first_sources", [2, 1 << 14])
def test_a_pages_top_sources_and_sends_are_those_of_all_its_flows(flow_stores: dict[str, Path], first_sources: int,
                                                                  monkeypatch) -> None:
    """explain's lists (link_flows_frame with a limit: by juice or by what arrives, passing links
    only) and hubs' reads (flows_from) give the rows of a filter and sort of every flow."""
    monkeypatch.setattr(Store, "_INFLOW_SOURCES", first_sources)
    for kind, db in flow_stores.items():
        with Store(db, read_only=True) as store:
            every = store.sql("SELECT * FROM link_flows")
            urls = list(store.sql("SELECT url FROM scores ORDER BY juice DESC NULLS LAST, url")["url"])
            for url in urls[:6] + urls[len(urls) // 2:len(urls) // 2 + 3]:
                for order_by, reason, limit in (("juice", None, 4), ("delivered", "passed", 7), ("juice", None, 0)):
                    got = store.link_flows_frame(resolved=url, limit=limit, order_by=order_by, reason=reason)
                    mine = every[(every["resolved_url"] == url) & ((every["reason"] == reason) if reason else True)]
                    want = mine.sort_values([order_by, "source_url", "target_url"],
                                            ascending=[False, True, True]).head(limit)
                    assert list(zip(got["source_url"], got["target_url"])) == \
                        list(zip(want["source_url"], want["target_url"])), (kind, url, order_by)
                    assert got[order_by].to_numpy() == pytest.approx(want[order_by].to_numpy(), rel=1e-12)
                    assert list(got.columns) == list(every.columns)
            sent = store.flows_from(urls[:5])
            want = every[every["source_url"].isin(urls[:5])]
            key = ["source_url", "target_url"]
            assert sent.sort_values(key, ignore_index=True).equals(want.sort_values(key, ignore_index=True)), kind


@pytest.mark.parametrize("first_sources", [2, 1 << 14])
def test_the_dashboards_link_flows_pages_are_those_of_the_view(flow_stores: dict[str, Path], first_sources: int,
                                                               monkeypatch) -> None:
    """The link_flows table's pages by juice (read from the strongest sources first) and its
    count (without the view) are the view's own, sorted and counted."""
    monkeypatch.setattr(Store, "_INFLOW_SOURCES", first_sources)
    for kind, db in flow_stores.items():
        with Store(db, read_only=True) as store:
            query = Store.BROWSE["link_flows"][0]
            count = int(store.sql(f"SELECT count(*) AS n FROM ({query})")["n"].iloc[0])
            assert store.table_rows("link_flows") == count
            for offset, limit in ((0, 50), (37, 20), (count - 5, 50)):
                got, total = store.browse("link_flows", limit=limit, offset=offset)
                want = store.sql(f"{query} ORDER BY juice DESC NULLS LAST, source_url, target_url LIMIT ? OFFSET ?",
                                 [limit, offset])
                assert total == count
                assert got.drop(columns=["juice", "share", "weight"]).equals(
                    want.drop(columns=["juice", "share", "weight"])), (kind, offset)
                assert got["juice"].to_numpy() == pytest.approx(want["juice"].to_numpy(), rel=1e-12)


def test_graph_edges_are_the_strongest_links_within_the_sample(flow_stores: dict[str, Path]) -> None:
    with Store(flow_stores["generated"], read_only=True) as store:
        every = store.sql("SELECT * FROM link_flows")
        sample = list(store.sql("SELECT url FROM scores ORDER BY juice DESC NULLS LAST, url LIMIT 150")["url"])
        got = store.flows_among(sample, 200)
    inside = every[every["source_url"].isin(sample) & every["target_url"].isin(sample)
                   & (every["source_url"] != every["target_url"])]
    want = (inside.assign(passes=inside["reason"] == "passed").groupby(["source_url", "target_url"], as_index=False)
            .agg(juice=("juice", "sum"), passes=("passes", "any"))
            .sort_values(["juice", "source_url", "target_url"], ascending=[False, True, True]).head(200))
    assert len(want) == 200 and len(inside) > 200  # (the limit cuts)
    assert list(zip(got["source_url"], got["target_url"])) == list(zip(want["source_url"], want["target_url"]))
    assert got["juice"].to_numpy() == pytest.approx(want["juice"].to_numpy(), rel=1e-12)
    assert list(got["passes"]) == list(want["passes"])


def test_big_crawls_are_sampled_with_a_note(demo: tuple[Path, str]) -> None:
    html = render_report(demo[0], limits=ReportLimits(max_nodes=10, max_rows=15, drilldown_pages=5))
    data = json.loads(_parse(html).data["lj-data"])
    assert len(data["graph"]["url"]) == 10 and data["graph"]["sampled"]
    assert "Showing the 10 strongest of 61 URLs" in html
    assert len(data["tables"]["pages"]["rows"]) == 15 and data["tables"]["pages"]["truncated"]
    assert "This report holds the 15 strongest of 61 URLs" in html
    # The sample is the strongest pages, and every edge joins two sampled nodes.
    juice = [row[-1] for row in data["tables"]["pages"]["rows"][:10]]
    assert juice == sorted(juice, reverse=True)
    assert all(0 <= s < 10 and 0 <= t < 10 for s, t, _ in data["graph"]["edges"])


def test_stages_not_run_yet_are_said_so(tmp_path: Path) -> None:
    db, _ = demo_store(tmp_path / "bare.duckdb", audit=False, suggest=False)
    html = render_report(db)
    assert "The audit has not been run on this crawl yet" in html
    assert "Suggestions have not been made for this crawl yet" in html
    data = json.loads(_parse(html).data["lj-data"])
    assert set(data["tables"]) == {"pages"}
    assert data["accounting"]["destination"]  # from the section flows instead


def test_radial_layout() -> None:
    depth = np.array([0, 1, 1, 1, 2, 2, -1])
    section = np.array([0, 0, 1, 1, 0, 1, 1])
    x, y = radial_layout(depth, section, np.array(list("abcdefg")))
    radius = np.hypot(x, y)
    assert radius[0] == 0 and np.allclose(radius[1:4], 1) and np.allclose(radius[4:6], 2)
    assert radius[6] > 2  # unreachable pages on the outer ring
    angle = np.mod(np.arctan2(y, x), 2 * np.pi)
    # Each section keeps one wedge on every ring: the wedges do not interleave.
    s0, s1 = angle[[1, 4]], angle[[2, 3, 5, 6]]
    assert s0.max() < s1.min() or s1.max() < s0.min()


def test_cli_report_and_errors(demo: tuple[Path, str], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "--db", str(demo[0]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1_000_000 and "Wrote" in result.output
    for command in ("report", "serve", "diff"):
        assert runner.invoke(app, [command, "--help"]).exit_code == 0


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "linkjuice", "report", "--db", str(tmp_path / "none.duckdb"),
                          "-o", str(tmp_path / "x.html")], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "no store at" in run.stderr


# -- in a real browser ------------------------------------------------------------------------
@needs_chromium
def test_report_in_chromium(report: Path, demo: tuple[Path, str]) -> None:
    url = report.as_uri()
    with browser() as instance:
        w = open_page(instance, url)
        page = w.page
        page.wait_for_timeout(500)  # let sigma and echarts draw

        # The graph draws: the canvas area is far from blank.
        stddev, drawn = pixel_spread(page.locator("#graph-canvas").screenshot())
        assert stddev > 10 and drawn > 0.01, (stddev, drawn)
        assert page.evaluate("window.linkjuice.renderer.getGraph().order") == 61
        # The Sankey and both charts drew too (echarts canvases with content).
        for chart in ("#chart-sankey", "#chart-hist", "#chart-depth"):
            assert pixel_spread(page.locator(chart).screenshot())[1] > 0.01, chart

        # A filter narrows a table.
        rows = page.locator("[data-table=pages] tbody tr")
        assert rows.count() == 50
        page.fill("[data-filter=pages]", "brownies")
        page.wait_for_timeout(300)
        assert rows.count() == 2
        assert "2 rows" in page.locator("[data-table=pages] .count").inner_text()

        # The XSS probe title is text: the cell holds it literally, no element was created from it.
        cell = page.locator("[data-table=pages] tbody td", has_text="Best Brownies")
        assert cell.evaluate("td => td.textContent") == XSS_TITLE
        assert cell.evaluate("td => td.children.length") == 0
        assert "&lt;script&gt;" in cell.evaluate("td => td.innerHTML")
        assert page.evaluate("document.scripts.length") == 5

        # Sorting: click "juice score" twice for the strongest first.
        page.fill("[data-filter=pages]", "")
        page.wait_for_timeout(300)
        header = page.locator("[data-table=pages] th", has_text="juice score")
        header.click()
        header.click()
        first = page.locator("[data-table=pages] tbody tr").first.locator("td").nth(8).inner_text()
        assert float(first) == pytest.approx(max(r[-2] or 0 for r in _pages_rows(page)), abs=0.05)

        # Findings filter by severity; a click shows the finding's links.
        page.select_option("[data-table=findings] select[data-facet=severity]", "error")
        page.wait_for_timeout(200)
        sev = page.locator("[data-table=findings] tbody td.sev-error")
        assert sev.count() == page.locator("[data-table=findings] tbody tr").count() > 0
        page.locator("[data-table=findings] tbody tr").first.click()
        assert page.locator("#finding-items").is_visible()
        assert page.locator("#finding-items tbody tr").count() >= 1

        # The drill-down: a page's sources and sends, from the embedded link flows.
        page.fill("[data-filter=pages]", "/blog/")
        page.wait_for_timeout(300)
        page.locator("[data-table=pages] tbody tr").first.click()
        assert page.locator("#drill").is_visible()
        assert page.locator("#drill-in tbody tr").count() > 0 and page.locator("#drill-out tbody tr").count() > 0

        page.keyboard.press("Escape")
        assert not page.locator("#drill").is_visible()

        # CSV download of the filtered rows (a blob: URL, not a request).
        page.fill("[data-filter=pages]", "brownies")
        page.wait_for_timeout(300)
        with page.expect_download() as download:
            page.locator("[data-table=pages] button", has_text="Download CSV").click()
        text = Path(download.value.path()).read_text(encoding="utf-8")
        assert text.splitlines()[0].startswith("url,title,status") and len(text.splitlines()) == 3
        assert '"<script>alert(1)</script> Best Brownies"' in text or XSS_TITLE in text

        # Nothing fetched, nothing logged as an error, no dialog ever opened.
        assert [r for r in w.requests if not r.startswith(("blob:", "data:"))] == [url], w.requests
        assert w.console_errors() == []
        assert w.dialogs == []


def _pages_rows(page) -> list[list]:  # type: ignore[no-untyped-def]
    return page.evaluate("window.linkjuice.DATA.tables.pages.rows")


def test_the_dashboards_link_flows_filtered_by_a_url_are_the_views_rows(flow_stores: dict[str, Path]) -> None:
    """Filtered by a source, target or resolved URL (read from that page's pairs alone), alone or
    with another filter, the link_flows table's pages, counts and CSV rows are the view's own, filtered:
    for pages, for targets that are no stored page (external and broken links), for links
    through redirects, and for a URL that is no page at all."""
    for kind, db in flow_stores.items():
        with Store(db, read_only=True) as store:
            query = Store.BROWSE["link_flows"][0]
            every = store.sql(query)
            unstored = every.loc[~every["target_url"].isin(store.sql("SELECT url FROM pages")["url"]), "target_url"]
            moved = every.dropna(subset=["resolved_url"])
            moved = moved[moved["target_url"] != moved["resolved_url"]]  # (links through redirects)
            assert (len(unstored) and len(moved)) or kind == "tied"  # (the generated site has both)
            filters = [{"source_url": every["source_url"].iloc[3]}, {"target_url": every["target_url"].iloc[5]},
                       {"resolved_url": every["resolved_url"].dropna().iloc[7]},
                       *({"target_url": u} for u in unstored.head(1)),
                       *({column: u} for column in ("target_url", "resolved_url") for u in moved[column].head(1)),
                       {"source_url": every["source_url"].iloc[3], "reason": "passed"},
                       {"source_url": every["source_url"].iloc[3], "target_url": every["target_url"].iloc[3]},
                       {"source_url": "https://nowhere.example/"}]
            assert store._pairs_of_urls(filters[0]) is not None
            for equals in filters:
                got, total = store.browse("link_flows", equals=equals, sort="juice", limit=500)
                where = " AND ".join(f"CAST({c} AS VARCHAR) = ?" for c in equals)
                matching = store.sql(f"SELECT * FROM ({query}) WHERE {where} "
                                     "ORDER BY juice DESC NULLS LAST, source_url, target_url", list(equals.values()))
                want = matching.head(500)
                assert total == len(matching) and len(got) == len(want), (kind, equals)
                assert got.drop(columns=["juice", "share", "weight"]).equals(
                    want.drop(columns=["juice", "share", "weight"])), (kind, equals)
                assert got["juice"].to_numpy() == pytest.approx(want["juice"].to_numpy(), rel=1e-12)
                # (every matching row, a CSV download's)
                streamed = store.browse_batches("link_flows", equals=equals, sort="juice", batch_rows=7).read_all()
                texts = [c for c in matching.columns if c not in ("juice", "share", "weight")]
                assert streamed.select(texts).to_pylist() == [  # (a column of no URL: NaN in the frame)
                    {c: (None if pd.isna(v) else v) for c, v in row.items()}
                    for row in matching[texts].astype(object).to_dict("records")], (kind, equals)
            assert any(len(store.browse("link_flows", equals=e, limit=500)[0]) > 1 for e in filters)

"""Remake the report screenshots in docs/ (docs/report-*.png) from the bundled demo site.

    .venv/bin/python docs/report_screenshots.py

Needs Debian's chromium (/usr/bin/chromium) and the test extra (Playwright).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from linkjuice.config import CrawlConfig
from linkjuice.demo import serve_folder
from linkjuice.opportunities import suggest_links
from linkjuice.pipeline import crawl_site, run_audit
from linkjuice.report import build_report

DOCS = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db, html = Path(tmp) / "demo.duckdb", Path(tmp) / "report.html"
        with serve_folder() as origin:
            crawl_site(CrawlConfig(start_url=origin + "/"), db)
        run_audit(db)
        suggest_links(db)
        build_report(db, html)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.goto(html.as_uri())
            page.wait_for_function("window.linkjuice !== undefined")
            page.wait_for_timeout(800)
            page.locator("#summary").screenshot(path=DOCS / "report-summary.png")
            page.locator("#graph").screenshot(path=DOCS / "report-graph.png")
            page.locator("#flow").screenshot(path=DOCS / "report-sections.png")
            page.locator("#juice .two").screenshot(path=DOCS / "report-charts.png")
            findings = page.locator("#findings")
            box = findings.bounding_box()
            assert box is not None
            page.screenshot(path=DOCS / "report-findings.png", full_page=True,
                            clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": 640})
            page.fill("[data-filter=pages]", "/blog/sourdough-starter/")
            page.wait_for_timeout(300)
            page.locator("[data-table=pages] tbody tr").first.click()
            page.wait_for_timeout(300)
            page.screenshot(path=DOCS / "report-drilldown.png")
            browser.close()


if __name__ == "__main__":
    main()

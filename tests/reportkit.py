"""Stores for the report, dashboard and diff tests: the bundled demo site (with its XSS probe title
`<script>alert(1)</script> Best Brownies`), crawled, scored, audited and given suggestions for real."""

from __future__ import annotations

from pathlib import Path

from linkjuice.config import CrawlConfig
from linkjuice.demo import serve_folder
from linkjuice.opportunities import suggest_links
from linkjuice.pipeline import crawl_site, run_audit

XSS_TITLE = "<script>alert(1)</script> Best Brownies"


def demo_store(path: Path, *, audit: bool = True, suggest: bool = True) -> tuple[Path, str]:
    """Crawl the demo site into `path`; returns the store and the site's origin."""
    with serve_folder() as origin:
        crawl_site(CrawlConfig(start_url=origin + "/", concurrency=8), path)
    if audit:
        run_audit(path)
    if suggest:
        suggest_links(path)
    return path, origin

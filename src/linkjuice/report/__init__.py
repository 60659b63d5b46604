"""The HTML report: one self-contained file with charts, the site graph, tables and drill-downs.

    build_report(db, "report.html")                    # the file to send to a client
    build_report(db, "report.html", compare="old.duckdb")  # with what changed since then

`report_payload` (data.py) gathers what is shown, `render_page` (render.py) turns it into the page;
the dashboard (linkjuice.dashboard) serves the same page over the same store.
"""

from __future__ import annotations

from pathlib import Path

from ..diff import compare_store
from ..errors import UsageError
from ..store import Store
from .data import ReportLimits, diff_section, report_payload
from .render import render_page

__all__ = ["build_report", "render_report", "ReportLimits", "report_payload", "render_page"]


def render_report(db: str | Path, *, compare: str | Path | None = None, limits: ReportLimits | None = None) -> str:
    """The report of the crawl in `db` as an HTML string."""
    limits = limits or ReportLimits()
    with Store(db, read_only=True) as store:
        diff = diff_section(compare_store(store, compare, limit=limits.diff_rows)) if compare is not None else None
        payload = report_payload(store, limits=limits, diff=diff)
    html, _ = render_page(payload)
    return html


def build_report(db: str | Path, output: str | Path, *, compare: str | Path | None = None,
                 limits: ReportLimits | None = None) -> int:
    """Write the report of `db` to `output`; returns its size in bytes."""
    html = render_report(db, compare=compare, limits=limits)
    data = html.encode("utf-8")
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    return len(data)

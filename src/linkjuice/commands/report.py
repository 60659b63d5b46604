"""CLI for looking at a crawl: `report` (one HTML file), `serve` (a local dashboard), `diff`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..cli import DbOption, app, check_format, console, err_console
from ..errors import UsageError
from ..textsafe import clean_text

__all__ = ["report", "serve", "diff"]


@app.command()
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("report.html"),
    db: DbOption = Path("linkjuice.duckdb"),
    compare: Annotated[Optional[Path], typer.Option("--compare", help="An older store of the same site: add what changed since.")] = None,
    max_nodes: Annotated[int, typer.Option(help="Pages drawn in the site graph (the strongest by juice).")] = 20_000,
    max_rows: Annotated[int, typer.Option(help="Rows embedded per table (serve browses them all).")] = 20_000,
) -> None:
    """Write a self-contained HTML report (opens offline, fetches nothing) of a crawl."""
    from ..report import ReportLimits, build_report

    if max_nodes < 1 or max_rows < 1:
        raise UsageError("--max-nodes and --max-rows must be at least 1")
    size = build_report(db, output, compare=compare, limits=ReportLimits(max_nodes=max_nodes, max_rows=max_rows))
    console.print(f"Wrote {output} ({size / 1e6:.1f} MB)", highlight=False)


@app.command()
def serve(
    db: DbOption = Path("linkjuice.duckdb"),
    host: Annotated[str, typer.Option(help="Address to bind. Anything but loopback exposes the crawl to your network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8765,
) -> None:
    """A local, read-only dashboard over a store: the report's views, with server-side filtering,
    paging and CSV downloads (needs linkjuice[dashboard])."""
    from ..dashboard import is_loopback, serve as run

    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port number")
    if not is_loopback(host):
        err_console.print(f"warning: binding {host} makes the dashboard (no login) reachable from other machines",
                          highlight=False, markup=False, soft_wrap=True)

    def ready(url: str) -> None:
        console.print(f"Serving {db} at {url} (read-only; Ctrl+C stops)", highlight=False, markup=False,
                      soft_wrap=True)

    run(db, host=host, port=port, on_ready=ready)


_DIFF_TITLES = {
    "new_broken": "New broken links", "fixed_broken": "Fixed broken links", "new_orphans": "New orphans",
    "fixed_orphans": "Orphans now linked", "juice_moved": "Pages whose juice moved most",
    "links_added": "Links added", "links_removed": "Links removed", "pages_added": "URLs added",
    "pages_removed": "URLs gone",
}


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The older store.")],
    new: Annotated[Path, typer.Argument(help="The newer store.")],
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    limit: Annotated[int, typer.Option(help="Rows per list.")] = 20,
) -> None:
    """What changed between two crawls: broken links, orphans, juice, links."""
    from ..diff import DIFF_PARTS, diff_stores

    check_format(fmt, "table", "json")
    if limit < 0:
        raise UsageError("--limit must not be negative")
    result = diff_stores(old, new, limit=limit)
    if fmt == "json":
        sys.stdout.write(json.dumps(result.to_dict(), default=str) + "\n")
        return
    summary = Table(title=f"Changes from {old} to {new}", title_justify="left")
    summary.add_column("change")
    summary.add_column("count", justify="right")
    for name in DIFF_PARTS:
        summary.add_row(_DIFF_TITLES[name], f"{result.counts[name]:,}")
    console.print(summary)
    for name in DIFF_PARTS:
        frame = result.parts[name]
        if frame.empty:
            continue
        shown = f" (first {len(frame)})" if result.counts[name] > len(frame) else ""
        table = Table(title=_DIFF_TITLES[name] + shown, title_justify="left")
        for column in frame.columns:
            table.add_column(column, overflow="fold", justify="right" if frame[column].dtype.kind in "fiu" else "left")
        for row in frame.itertuples(index=False):
            table.add_row(*(_cell(v) for v in row))
        console.print(table)


def _cell(value: object) -> str:
    if value is None or value != value:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return clean_text(str(value))

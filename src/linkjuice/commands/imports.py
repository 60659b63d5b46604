"""CLI for `linkjuice import ...`: thin calls into linkjuice.imports, then a summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from ..cli import DbOption, app, console
from ..textsafe import clean_text

if TYPE_CHECKING:
    from ..imports import ImportReport

__all__ = ["import_app", "print_report"]

import_app = typer.Typer(
    help="Import data from other tools: URL lists, Search Console, priorities, backlinks, link graphs.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

FileArgument = Annotated[Path, typer.Argument(help="The file to import.", show_default=False)]
BaseUrlOption = Annotated[Optional[str], typer.Option(
    "--base-url", help="Site URL that paths such as /blog/x are resolved against (default: the crawl's start URL).")]


def print_report(report: ImportReport) -> None:
    """One summary line, notes, and a table of skipped rows per reason."""
    console.print(
        f"Imported {report.rows:,} rows into {report.table} from {clean_text(report.path)} "
        f"({clean_text(report.format)}).", highlight=False, markup=False,
    )
    for note in report.notes:
        console.print(f"  {clean_text(note)}", highlight=False, markup=False)
    if not report.skipped:
        return
    table = Table(title=f"Skipped {report.skipped_rows:,} rows", title_justify="left")
    table.add_column("reason", overflow="fold")
    table.add_column("rows", justify="right")
    table.add_column("first lines / example", overflow="fold")
    for entry in report.skipped:
        where = ", ".join(str(n) for n in entry.lines)
        if not where and entry.example is not None:
            where = repr(clean_text(entry.example[:80]))
        table.add_row(clean_text(entry.reason), f"{entry.count:,}", where)
    console.print(table)


@import_app.command("urls")
def import_urls_command(
    file: FileArgument,
    db: DbOption = Path("linkjuice.duckdb"),
    base_url: BaseUrlOption = None,
    replace_all: Annotated[bool, typer.Option("--replace-all", help="Drop URLs imported from other files too.")] = False,
) -> None:
    """URLs that exist or matter (plain list, CSV with a URL column, GA4 landing pages): feed orphan detection."""
    from ..imports import import_urls

    print_report(import_urls(db, file, base_url=base_url, replace_all=replace_all))


@import_app.command("gsc")
def import_gsc_command(file: FileArgument, db: DbOption = Path("linkjuice.duckdb"), base_url: BaseUrlOption = None) -> None:
    """A Search Console performance export (Pages.csv or the export zip): clicks and impressions per page."""
    from ..imports import import_gsc

    print_report(import_gsc(db, file, base_url=base_url))


@import_app.command("priorities")
def import_priorities_command(file: FileArgument, db: DbOption = Path("linkjuice.duckdb"),
                              base_url: BaseUrlOption = None) -> None:
    """Your money pages: url[,weight] per line (weight defaults to 1)."""
    from ..imports import import_priorities

    print_report(import_priorities(db, file, base_url=base_url))


@import_app.command("backlinks")
def import_backlinks_command(
    file: FileArgument,
    db: DbOption = Path("linkjuice.duckdb"),
    base_url: BaseUrlOption = None,
    target: Annotated[Optional[str], typer.Option(
        help="The linked page, for exports that do not name it (Search Console 'Latest links').")] = None,
    append: Annotated[bool, typer.Option("--append", help="Add to the stored backlinks instead of replacing them.")] = False,
    no_score: Annotated[bool, typer.Option("--no-score", help="Do not rescore after the import.")] = False,
) -> None:
    """Backlinks from Ahrefs, Semrush, Majestic, Moz, Search Console or a generic CSV (detected by header);
    then rescores, since backlinks decide where outside authority enters (docs/model.md)."""
    from .. import pipeline
    from ..imports import import_backlinks

    print_report(import_backlinks(db, file, base_url=base_url, target=target, append=append))
    if not no_score:
        with pipeline.open_store(db, read_only=False) as store:
            if store.meta().get("model"):  # a scored crawl: keep its model settings
                summary = pipeline.score_store(store, model=pipeline.stored_model_config(store))
                console.print(f"Rescored {summary.ranked_pages} pages with the backlinks as outside authority.",
                              highlight=False)


@import_app.command("links")
def import_links_command(
    file: FileArgument,
    db: DbOption = Path("linkjuice.duckdb"),
    start_url: Annotated[Optional[str], typer.Option(
        help="The site's start page (default: the root of the most common source host).")] = None,
    no_score: Annotated[bool, typer.Option("--no-score", help="Do not score after the import.")] = False,
) -> None:
    """Build a store without crawling, from Screaming Frog 'All Inlinks' or an edge list (CSV or Parquet)."""
    from ..imports import import_links

    print_report(import_links(db, file, start_url=start_url, score=not no_score))

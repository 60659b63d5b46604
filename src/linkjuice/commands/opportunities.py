"""CLI for link opportunities: `suggest`, `simulate`, `optimize`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..cli import RELEVANCE_ENGINE_HELP, DbOption, ModelPathOption, app, check_format, console, short_url, site_origin
from ..errors import UsageError
from ..textsafe import clean_text

FormatOption = Annotated[str, typer.Option("--format", help="table, csv or json.")]
OutputOption = Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the rows to this .csv, .json or "
                                                                    ".parquet file.")]


_OUTPUT_SUFFIXES = (".csv", ".json", ".parquet")


def _check_output(fmt: str, output: Path | None) -> None:
    """Refuse a bad --format or --output before the work: suggest and optimize take minutes on a big site."""
    check_format(fmt, "table", "csv", "json")
    if output is not None and output.suffix.lower() not in _OUTPUT_SUFFIXES:
        raise UsageError(f"--output {output}: name a .csv, .json or .parquet file")


def _emit(frame, fmt: str, output: Path | None) -> bool:  # type: ignore[no-untyped-def]
    """Write csv/json to stdout or a file; True when the caller should not print a table."""
    if output is not None:
        suffix = output.suffix.lower()
        if suffix == ".json":
            output.write_text(frame.to_json(orient="records", indent=1), encoding="utf-8")
        elif suffix == ".parquet":
            frame.to_parquet(output, index=False)
        else:
            frame.to_csv(output, index=False)
        console.print(f"Wrote {len(frame)} rows to {output}", highlight=False)
    if fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
        return True
    if fmt == "json":
        sys.stdout.write(frame.to_json(orient="records") + "\n")
        return True
    return False


@app.command()
def suggest(
    db: DbOption = Path("linkjuice.duckdb"),
    target: Annotated[Optional[str], typer.Option(help="Target URL or regex (default: weak pages from the audit).")] = None,
    priorities: Annotated[bool, typer.Option("--priorities", help="Targets from 'linkjuice import priorities'.")] = False,
    per_target: Annotated[int, typer.Option(help="Suggestions per target page.")] = 3,
    limit: Annotated[int, typer.Option(help="Suggestions in all.")] = 50,
    min_relevance: Annotated[float, typer.Option(help="Minimum text similarity (cosine, 0-1) of source and target.")] = 0.1,
    max_links: Annotated[int, typer.Option(help="Skip sources that already have this many internal links.")] = 150,
    max_targets: Annotated[int, typer.Option(help="Consider this many target pages, the most important first "
                                                  "(the audit's order; --priorities: the heaviest; --target: the "
                                                  "weakest); 0: all.")] = 100,
    exact_top: Annotated[Optional[int], typer.Option(
        help="Recompute the gain exactly for this many top suggestions (default 25, fewer on a big site: "
             "each is a solve over every link).")] = None,
    engine: Annotated[Optional[str], typer.Option("--engine", "--relevance-engine", help=RELEVANCE_ENGINE_HELP + " "
                                                  "Default: the one 'score' used.")] = None,
    model_path: ModelPathOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
) -> None:
    """Suggest new internal links (source, target, anchor found in the source's own text, context),
    ranked by the juice they would add to the target; saved to the `suggestions` table."""
    from ..opportunities import SuggestOptions, suggest_links

    _check_output(fmt, output)
    frame = suggest_links(db, SuggestOptions(target=target, priorities=priorities, per_target=per_target, limit=limit,
                                             min_relevance=min_relevance, max_links=max_links, exact_top=exact_top, max_targets=max_targets,
                                             engine=engine, model_path=str(model_path.expanduser().resolve()) if model_path else None))
    if _emit(frame, fmt, output):
        return
    considered, matched = frame.attrs.get("targets", 0), frame.attrs.get("matched_targets", 0)
    if considered < matched:
        console.print(f"Considered the first {considered:,} of {matched:,} target pages "
                      f"({'the weakest first' if target else 'the heaviest first' if priorities else 'the audit order'}); "
                      "--max-targets 0 considers them all.", highlight=False)
    if frame.empty:
        console.print("No suggestion: no relevant source mentions the targets' topics in its text. "
                      "Try --min-relevance 0.05 or --target.", highlight=False)
        return
    origin = site_origin(db)
    table = Table(title=f"{len(frame)} link suggestions (gain: added juice for the target, exact where marked *)"
                        f" - {origin}", title_justify="left")
    for col in ("#", "add a link on", "to", "anchor", "context", "relevance", "gain"):
        table.add_column(col, overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(str(row.rank), short_url(row.source_url, origin), short_url(row.target_url, origin),
                      clean_text(row.anchor), clean_text(row.context), f"{row.relevance:.2f}",
                      f"+{row.gain_pct:.1f}%{'*' if row.exact else ''}")
    console.print(table)


@app.command()
def simulate(
    db: DbOption = Path("linkjuice.duckdb"),
    add: Annotated[Optional[Path], typer.Option(help="CSV of links to add: source,target[,anchor,position].")] = None,
    remove: Annotated[Optional[Path], typer.Option(help="CSV of links to remove: source,target.")] = None,
    fix_redirects: Annotated[bool, typer.Option("--fix-redirects", help="Point links at their redirects' final targets.")] = False,
    nofollow_to_follow: Annotated[bool, typer.Option("--nofollow-to-follow", help="Make internal nofollow links followed.")] = False,
    drop_section: Annotated[Optional[str], typer.Option(help="Remove every page under this path prefix, and links to it.")] = None,
    top: Annotated[int, typer.Option(help="Biggest movers to show.")] = 15,
    fmt: FormatOption = "table",
    output: OutputOption = None,
) -> None:
    """What-if: recompute juice after edits, without changing the stored crawl."""
    from ..opportunities import simulate as run

    _check_output(fmt, output)
    result = run(db, add=add, remove=remove, fix_redirects=fix_redirects, nofollow_to_follow=nofollow_to_follow,
                 drop_section=drop_section)
    if _emit(result.pages, fmt, output):
        return
    console.print("Simulated: " + "; ".join(result.changes), highlight=False)
    origin = site_origin(db)
    movers = Table(title=f"Biggest movers - {origin}", title_justify="left")
    for col in ("url", "juice before", "after", "change", "score before", "after "):
        movers.add_column(col, overflow="fold")
    for row in result.pages.head(top).itertuples(index=False):
        pct = "" if row.change_pct != row.change_pct else f" ({row.change_pct:+.1f}%)"
        movers.add_row(short_url(row.url, origin), f"{row.juice_before:.4g}", f"{row.juice_after:.4g}", f"{row.change:+.3g}{pct}",
                       f"{row.score_before:.1f}", f"{row.score_after:.1f}")
    console.print(movers)
    acc = Table(title="Where passed juice goes", title_justify="left")
    for col in ("reason", "before", "after"):
        acc.add_column(col)
    before = dict(zip(result.accounting_before["reason"], result.accounting_before["share"]))
    after = dict(zip(result.accounting_after["reason"], result.accounting_after["share"]))
    for reason in sorted(set(before) | set(after), key=lambda r: -after.get(r, 0)):
        acc.add_row(reason, f"{before.get(reason, 0):.1%}", f"{after.get(reason, 0):.1%}")
    console.print(acc)


@app.command()
def optimize(
    target: Annotated[str, typer.Option(help="Target URL or regex: the pages whose juice to raise.")],
    budget: Annotated[int, typer.Option(help="How many new links to choose.")] = 10,
    db: DbOption = Path("linkjuice.duckdb"),
    min_relevance: Annotated[float, typer.Option(help="Minimum text similarity of a candidate source.")] = 0.05,
    max_links: Annotated[int, typer.Option(help="Per-page internal link limit, counting added links.")] = 150,
    fmt: FormatOption = "table",
    output: OutputOption = None,
) -> None:
    """Choose the K new links that raise the target pages' juice the most (greedy, exact totals)."""
    from ..opportunities import optimize as run

    _check_output(fmt, output)
    result, chosen = run(db, target, budget, min_relevance=min_relevance, max_links=max_links)
    if _emit(chosen, fmt, output):
        return
    gain = result.total_gain
    console.print(f"Target juice {result.before:.4g} -> {result.after:.4g} (+{gain:.3g}, "
                  f"+{100 * gain / result.before:.1f}%) with {len(chosen)} new links.", highlight=False)
    origin = site_origin(db)
    table = Table(title=f"Chosen links, in order - {origin}", title_justify="left")
    for col in ("step", "add a link on", "to", "anchor", "gain"):
        table.add_column(col, overflow="fold")
    for row in chosen.itertuples(index=False):
        table.add_row(str(row.step), short_url(row.source_url, origin), short_url(row.target_url, origin),
                      clean_text(row.anchor) or "(no phrase found: write one)", f"+{row.exact_gain:.3g}")
    console.print(table)

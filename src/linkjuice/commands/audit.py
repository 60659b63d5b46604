"""CLI for the audit: `linkjuice audit` and `linkjuice export findings | finding-items | juice-flow`.

Everything here formats what linkjuice.pipeline.run_audit returns; the findings are computed in
linkjuice.audit. Crawled text (URLs, anchors) is shown as plain text, never as rich markup.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from ..cli import (ConfigOption, DbOption, FormatOption, OutputOption, app, check_format, console, err_console,
                   export_app, keep_arrow_memory)
from ..errors import UsageError
from ..textsafe import clean_text

if TYPE_CHECKING:
    from ..audit import AuditResult, AuditThresholds

__all__ = ["audit_command", "github_annotations", "load_thresholds", "print_report"]

FAIL_EXIT_CODE = 3

_STYLE = {"error": "bold red", "warning": "yellow", "notice": "cyan"}
_DESTINATIONS = {
    "indexable": "to indexable pages",
    "redirected": "to indexable pages through redirects",
    "canonicalised": "to canonical pages through canonicalised URLs",
    "broken": "lost to broken links",
    "redirect_lost": "lost in redirect loops or redirects to non-indexable pages",
    "nofollow": "lost to nofollow links",
    "non_indexable": "lost to non-indexable pages (noindex, files, bad canonicals)",
    "blocked": "lost to pages blocked by robots.txt",
    "external": "out through external links",
    "not_crawled": "to internal URLs the crawl did not fetch",
}
_TEMPLATE_POSITIONS = ("nav", "header", "footer", "template")


def load_thresholds(config_file: Path | None, options: dict[str, Any]) -> AuditThresholds:
    """Defaults, then the `[audit]` table of linkjuice.toml (or --config), then the options given."""
    from ..audit import AuditThresholds
    from ..config import load_toml

    if config_file is not None and not config_file.is_file():
        raise UsageError(f"--config {config_file}: no such file")
    table = load_toml(config_file or "linkjuice.toml").get("audit", {})
    if not isinstance(table, dict):
        raise UsageError(f"{config_file or 'linkjuice.toml'}: [audit] must be a table of thresholds")
    base = AuditThresholds.from_mapping(table)
    return AuditThresholds.from_mapping({k: v for k, v in options.items() if v is not None}, base=base)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(result: AuditResult) -> list[str]:
    """One GitHub Actions workflow command per finding (::error / ::warning / ::notice)."""
    lines = []
    for f in result.findings.itertuples(index=False):
        url = clean_text(str(f.url))
        message = clean_text(f"{f.explanation} Fix: {f.fix}")
        lines.append(f"::{f.severity} file={_escape_property(url)},title={_escape_property(f.code)}::"
                     f"{_escape_data(message)}")
    return lines


def _juice(value: float) -> str:
    return f"{value:.4g}" if value else "0"


def _percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole > 0 else "-"


def _print_summary(result: AuditResult) -> None:
    s = result.summary
    counts = ", ".join(f"{s.get(k, 0)} {k}" for k in ("errors", "warnings", "notices"))
    console.print(f"Audit: {s['findings']} findings ({counts}) over {s['ranked_pages']} indexable pages.",
                  highlight=False)
    if not s.get("crawl_complete", True):
        console.print("The crawl stopped at a limit: orphan findings are unconfirmed (shown as notices).",
                      style="yellow", highlight=False)
    table = Table(title="Findings by priority (juice at stake in pages.juice units; % of all page juice)",
                  title_justify="left")
    for name, justify in (("finding", "left"), ("severity", "left"), ("count", "right"), ("items", "right"),
                          ("juice at stake", "right"), ("%", "right")):
        table.add_column(name, justify=justify, no_wrap=name != "finding")  # type: ignore[arg-type]
    for row in result.by_code().itertuples(index=False):
        table.add_row(row.code, Text(row.severity, style=_STYLE[row.severity]), str(row.findings),
                      str(row.items), _juice(row.juice_at_stake), _percent(row.juice_at_stake, s["page_juice"]))
    console.print(table)


def _print_accounting(result: AuditResult) -> None:
    s, flow = result.summary, result.juice_flow
    table = Table(title=f"Where the juice passed through links goes (total {_juice(s['link_juice'])})",
                  title_justify="left")
    table.add_column("destination")
    table.add_column("share", justify="right")
    table.add_column("juice", justify="right")
    for row in flow[flow["dimension"] == "destination"].itertuples(index=False):
        table.add_row(_DESTINATIONS.get(row.category, row.category), f"{100 * row.share:.1f}%", _juice(row.juice))
    console.print(table)
    pos = flow[flow["dimension"] == "position"]
    template = float(pos.loc[pos["category"].isin(_TEMPLATE_POSITIONS), "share"].sum())
    parts = ", ".join(f"{r.category} {100 * r.share:.1f}%" for r in pos.itertuples(index=False))
    console.print(f"Through navigation, header, footer and template links: {100 * template:.1f}%; through "
                  f"content and asides: {100 * (1 - template) if len(pos) else 0:.1f}% ({parts}).", highlight=False)
    console.print(f"Concentration: the top 1% of indexable pages ({s['top1_pages']}) hold "
                  f"{100 * s['top1_share']:.1f}% of the juice; Gini {s['gini']:.2f}.", highlight=False)


def _print_top(result: AuditResult, top: int, items_each: int = 5) -> None:
    if top <= 0 or not result.summary.get("findings"):
        return
    findings, all_items = result.head(top)
    console.print(f"Top {len(findings)} findings", style="bold", highlight=False)
    # One scan of the items per finding shown: a groupby would index every finding's items.
    item_finding = all_items["finding_id"].to_numpy()
    for f in findings.itertuples(index=False):
        head = Text(f"{f.finding_id}. ")
        head.append(f"[{f.severity}] ", style=_STYLE[f.severity])
        head.append(f"{f.code}  ")
        head.append(clean_text(str(f.url)))
        if isinstance(f.anchor, str):
            head.append(f'  anchor "{clean_text(f.anchor)}"')
        head.append(f"  juice at stake {_juice(f.juice_at_stake)}")
        console.print(head)
        console.print(Text("   " + clean_text(f.explanation)))
        console.print(Text("   Fix: " + clean_text(f.fix), style="green"))
        items = all_items[item_finding == f.finding_id]
        if len(items):
            for it in items.head(items_each).itertuples(index=False):
                if isinstance(it.source_url, str) and it.source_url != it.url:
                    line = f"   - from {it.source_url}"
                    if isinstance(it.anchor, str):
                        line += f' "{it.anchor}"'
                    if isinstance(it.position, str):
                        line += f" ({it.position})"
                else:
                    line = f"   - {it.detail}"
                console.print(Text(clean_text(line)), soft_wrap=True)
            if len(items) > items_each:
                console.print(f"   ... and {len(items) - items_each} more (linkjuice export finding-items)",
                              highlight=False)


def print_report(result: AuditResult, top: int = 10) -> None:
    """The summary table, the juice accounting and the top findings with their items."""
    _print_summary(result)
    _print_accounting(result)
    _print_top(result, top)


def _json(result: AuditResult) -> str:
    def records(frame: Any) -> list[dict[str, Any]]:
        return json.loads(frame.to_json(orient="records"))

    items = result.items.groupby("finding_id")
    findings = []
    for f in records(result.findings):
        fid = f["finding_id"]
        f["items"] = records(items.get_group(fid).drop(columns=["finding_id"])) if fid in items.groups else []
        findings.append(f)
    return json.dumps({"summary": result.summary, "by_code": records(result.by_code()),
                       "juice_flow": records(result.juice_flow), "findings": findings}, ensure_ascii=False)


@app.command("audit")
def audit_command(
    db: DbOption = Path("linkjuice.duckdb"),
    fmt: Annotated[str, typer.Option("--format", help="table (default) or json.")] = "table",
    fail_on: Annotated[Optional[str], typer.Option(
        "--fail-on", help="Exit with code 3 when any of these findings is present: comma-separated codes "
        "(see docs/audit.md), groups (broken-links, orphans, redirect-loops, redirects, canonicals, anchors, "
        "weak-pages) or severities (errors, warnings).")] = None,
    github: Annotated[bool, typer.Option("--github", help="Also print GitHub Actions annotations (::error, "
                                                          "::warning, ::notice lines), one per finding.")] = False,
    top: Annotated[int, typer.Option(help="How many findings to detail after the summary (table format).")] = 10,
    config_file: ConfigOption = None,
    max_depth: Annotated[Optional[int], typer.Option(help="deep-page: click depth above this (default 3).")] = None,
    max_links: Annotated[Optional[int], typer.Option(
        help="too-many-links: unique internal link targets above this (default 150).")] = None,
    min_inlinks: Annotated[Optional[int], typer.Option(
        help="weak-page: fewer followed links from other pages than this (default 2).")] = None,
    weak_score: Annotated[Optional[float], typer.Option(
        help="weak-page: juice score (0-100) below this (default 20).")] = None,
    important_percentile: Annotated[Optional[float], typer.Option(
        help="important-but-weak: juice below this percentile of indexable pages (default 50).")] = None,
    important_top_share: Annotated[Optional[float], typer.Option(
        help="Important pages: the top share (0-1) of Search Console pages by clicks or impressions "
             "(default 0.2); every page in the priorities list counts too.")] = None,
    generic_share: Annotated[Optional[float], typer.Option(
        help="mostly-generic-anchors: share (0-1) of generic or empty inbound anchors (default 0.5).")] = None,
    min_generic_links: Annotated[Optional[int], typer.Option(
        help="mostly-generic-anchors: only pages with at least this many inbound links (default 2).")] = None,
) -> None:
    """Audit a scored crawl: what stops link juice from flowing, ranked by the juice at stake."""
    keep_arrow_memory()  # (before pyarrow loads)
    from .. import pipeline
    from ..audit import parse_fail_on

    check_format(fmt, "table", "json")
    if github and fmt == "json":
        raise UsageError("--github and --format json both write to stdout: choose one")
    gate = parse_fail_on(fail_on) if fail_on is not None else None
    thresholds = load_thresholds(config_file, {
        "max_depth": max_depth, "max_links": max_links, "min_inlinks": min_inlinks, "weak_score": weak_score,
        "important_percentile": important_percentile, "important_top_share": important_top_share,
        "generic_share": generic_share, "min_generic_links": min_generic_links,
    })
    result = pipeline.run_audit(db, thresholds)
    if fmt == "json":
        sys.stdout.write(_json(result) + "\n")
    else:
        if github:
            for line in github_annotations(result):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        print_report(result, top)
    if gate is not None:
        # Counted per code (the result's counts): a big site's findings are not loaded for this.
        hits = gate.matches(result.by_code())
        if len(hits):
            counts = ", ".join(f"{r.code}: {r.findings}" for r in hits.sort_values(
                ["findings", "code"], ascending=[False, True]).itertuples(index=False))
            err_console.print(f"audit failed: {int(hits['findings'].sum())} findings match --fail-on ({counts})",
                              markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(FAIL_EXIT_CODE)


def _export_audit(table: str, db: Path, fmt: str, output: Path) -> None:
    from .. import pipeline

    with pipeline.open_store(db) as store:
        if "audit" not in store.meta():
            raise UsageError(f"{db} has no audit yet: run 'linkjuice audit --db {db}' first")
    rows = pipeline.export_table(db, table, fmt, output)
    console.print(f"Wrote {rows} {table} rows to {output}", highlight=False, markup=False)


@export_app.command("findings")
def export_findings(output: OutputOption, db: DbOption = Path("linkjuice.duckdb"), fmt: FormatOption = "csv") -> None:
    """Export the last audit's findings (one row per finding)."""
    _export_audit("findings", db, fmt, output)


@export_app.command("finding-items")
def export_finding_items(output: OutputOption, db: DbOption = Path("linkjuice.duckdb"),
                         fmt: FormatOption = "csv") -> None:
    """Export what each finding affects (one row per link or URL, keyed by finding_id)."""
    _export_audit("finding_items", db, fmt, output)


@export_app.command("juice-flow")
def export_juice_flow(output: OutputOption, db: DbOption = Path("linkjuice.duckdb"),
                      fmt: FormatOption = "csv") -> None:
    """Export the last audit's juice accounting (destination and position shares)."""
    _export_audit("juice_flow", db, fmt, output)

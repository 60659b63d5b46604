"""CLI for the model's explanations: `explain URL`, `sections`, and the weight table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..cli import DbOption, app, check_format, console
from ..config import ModelConfig
from ..textsafe import clean_text


def _num(value: float, spec: str = ".3g") -> str:
    return "-" if value != value else format(value, spec)


def print_weights(db: Path, config: ModelConfig, examples: int = 12) -> None:
    """The factors every link weight is made of, then example links with each factor."""
    from .. import pipeline

    factors = Table(title="Link weight = position x relevance x anchor (nofollow: takes its share, passes nothing)",
                    title_justify="left")
    factors.add_column("factor")
    factors.add_column("rule")
    for name, weight in sorted(config.position_weights.items(), key=lambda kv: -kv[1]):
        factors.add_row(f"position: {name}", f"{weight:g}")
    a = config.relevance_weight
    factors.add_row("relevance", f"{1 - a:g} + {a:g} x cosine(source text, target text)  (TF-IDF)")
    if config.use_anchor:
        factors.add_row("anchor: empty", f"{config.anchor_empty:g}")
        factors.add_row("anchor: generic (click here, read more...)", f"{config.anchor_generic:g}")
        b = config.anchor_descriptive
        factors.add_row("anchor: descriptive", f"{b:g} + {1 - b:g} x share of anchor words in the target's title/h1/URL")
    else:
        factors.add_row("anchor", "off (1)")
    factors.add_row("teleport", f"{1 - config.backlink_mix:g} x uniform + {config.backlink_mix:g} x backlinks "
                                "(when imported)")
    console.print(factors)
    with pipeline.open_store(db) as store:
        flows = store.link_flows_frame(limit=examples)
    table = Table(title=f"The {examples} links that carry the most juice", title_justify="left")
    for col in ("source", "target", "anchor", "position", "relevance", "anchor factor", "weight", "share", "juice"):
        table.add_column(col, overflow="fold")
    for row in flows.itertuples(index=False):
        table.add_row(clean_text(str(row.source_url)), clean_text(str(row.target_url)), clean_text(str(row.anchor or "")),
                      str(row.position), _num(row.relevance_factor), _num(row.anchor_factor), _num(row.weight),
                      _num(row.share), _num(row.juice))
    console.print(table)


@app.command()
def explain(
    url: Annotated[str, typer.Argument(help="The page to explain (as crawled).")],
    db: DbOption = Path("linkjuice.duckdb"),
    top: Annotated[int, typer.Option(help="How many sources and targets to list.")] = 10,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Where a page's juice comes from, where it sends it, and how it compares with the site."""
    import json

    from .. import pipeline

    check_format(fmt, "table", "json")
    explanation = pipeline.explain(db, url, top=max(top, 0))
    if fmt == "json":
        payload = {k: getattr(explanation, k) for k in ("url", "juice", "juice_score", "rank", "ranked_pages",
                                                       "percentile", "from_links", "from_base", "from_backlinks",
                                                       "sent_total", "lost_total", "source_count", "send_count")}
        payload["sources"] = explanation.sources.head(top).to_dict(orient="records")
        payload["sends"] = explanation.sends.head(top).to_dict(orient="records")
        console.print_json(json.dumps(payload, default=str))
        return
    e = explanation
    console.print(f"{clean_text(e.url)}", markup=False, highlight=False)
    console.print(f"juice {e.juice:.4g} (score {e.juice_score:.1f}/100), rank {e.rank} of {e.ranked_pages} "
                  f"indexable pages, stronger than {e.percentile:.0%} of them", highlight=False)
    total = e.juice or 1.0
    console.print(f"comes from: links {e.from_links / total:.1%}, base share {e.from_base / total:.1%}, "
                  f"backlinks {e.from_backlinks / total:.1%} (sum {e.accounted / total:.4%} of its juice)",
                  highlight=False)
    sources = Table(title=f"Top sources ({e.source_count} linking pages)", title_justify="left")
    for col in ("source", "anchor", "position", "weight", "share of source", "juice", "% of page"):
        sources.add_column(col, overflow="fold")
    for row in e.sources.head(top).itertuples(index=False):
        sources.add_row(clean_text(str(row.source_url)), clean_text(str(row.anchor or "")), str(row.position),
                        _num(row.weight), _num(row.share), _num(row.juice), f"{row.share_of_page:.1%}")
    console.print(sources)
    sends = Table(title=f"Where it sends juice ({e.send_count} links, {e.sent_total:.3g} in all, {e.lost_total:.3g} lost)",
                  title_justify="left")
    for col in ("target", "receives", "reason", "share", "juice"):
        sends.add_column(col, overflow="fold")
    for row in e.sends.head(top).itertuples(index=False):
        sends.add_row(clean_text(str(row.target_url)), clean_text(str(row.resolved_url or "-")), str(row.reason),
                      _num(row.share), _num(row.juice))
    console.print(sends)


@app.command()
def sections(
    db: DbOption = Path("linkjuice.duckdb"),
    section: Annotated[Optional[str], typer.Option(help="Only the flows from or to this section (/blog/).")] = None,
    limit: Annotated[int, typer.Option(help="The largest flows to list; 0 lists them all.")] = 30,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """How juice flows between site sections (path prefixes), the largest flows first; lost juice
    has its own rows."""
    import sys

    from .. import pipeline

    check_format(fmt, "table", "csv", "json")
    frame = pipeline.section_flows(db, section=section, limit=limit or None)
    if fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
        return
    if fmt == "json":
        sys.stdout.write(frame.to_json(orient="records") + "\n")
        return
    total = frame.attrs["total_juice"] or 1.0
    scope = f" from or to {frame.attrs['section']}" if section else ""
    table = Table(title=f"Juice flow between sections{scope} (share of all juice passed through links)",
                  title_justify="left")
    for col in ("from", "to", "links", "share"):
        table.add_column(col, overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(clean_text(row.from_section), clean_text(row.to_section), str(row.links), f"{row.juice / total:.1%}")
    if len(frame) < frame.attrs["flows"]:
        table.caption = (f"the {len(frame):,} largest of {frame.attrs['flows']:,} flows ("
                         f"{frame['juice'].sum() / total:.1%} of all juice passed); --limit 0 lists them all")
    console.print(table)


@app.command()
def hubs(
    db: DbOption = Path("linkjuice.duckdb"),
    top: Annotated[int, typer.Option(help="How many hubs.")] = 10,
    per_hub: Annotated[int, typer.Option(help="Recipients shown per hub.")] = 5,
) -> None:
    """Hub pages (most outside authority, or strongest) and where they pass their juice on."""
    from .. import pipeline
    from ..cli import short_url, site_origin

    frame, flows = pipeline.hubs(db, top=top, per_hub=per_hub)
    origin = site_origin(db)
    table = Table(title=f"Hubs by {frame.attrs.get('ranked_by', 'juice')} - {origin}", title_justify="left")
    for col in ("hub", "score", "backlink share", "passes on", "lost", "top recipients"):
        table.add_column(col, overflow="fold")
    for row in frame.itertuples(index=False):
        mine = flows[flows["hub_url"] == row.url]
        recipients = "\n".join(f"{short_url(t, origin)} ({j:.2g})" for t, j in zip(mine["target_url"], mine["juice"]))
        table.add_row(short_url(row.url, origin), f"{row.juice_score:.0f}", f"{row.backlink_share:.1%}",
                      f"{row.passed_on:.3g}", f"{row.lost:.3g}", recipients or "-")
    console.print(table)

"""The `linkjuice` command: a thin layer over linkjuice.pipeline.

Every error the library raises on purpose becomes one line on stderr and an exit code
(0 success, 1 failure, 2 usage error); tracebacks are never shown for those.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .config import CrawlConfig, ModelConfig
from .errors import LinkJuiceError, UsageError
from .textsafe import clean_text

if TYPE_CHECKING:
    from .crawl.crawler import CrawlProgress


def keep_arrow_memory() -> None:
    """Make Arrow's allocator (mimalloc) keep the memory it frees for the life of the command,
    where it hands it back to the system 10 ms later: the audit soon asks for as much again,
    which the kernel must zero anew (a CPU second a GB on the benchmark VM). The 10M-page audit
    took 5-7 CPU s less (docs/benchmarks.md). Only for the audit: the 10M first score's peak rose
    from 7.1 to 8.5 GiB with it, past issue 7's 8 GB. mimalloc reads the setting when pyarrow
    loads: called before that (once loaded, nothing changes); a value set by the user is kept."""
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")


app = typer.Typer(
    name="linkjuice",
    help="See how link juice flows through a website, what blocks it, and how to fix it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
export_app = typer.Typer(help="Export a table of the store to CSV, JSON or Parquet.", no_args_is_help=True)
app.add_typer(export_app, name="export")

# markup=False: crawled text ("[/]", "[link=file:///...]") must never be read as Rich markup.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

DbOption = Annotated[Path, typer.Option("--db", help="The DuckDB store of the crawl.")]


def _version(value: bool) -> None:
    if value:
        console.print(f"linkjuice {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """linkjuice: crawl a site, score its link juice, audit what blocks it."""


def check_format(fmt: str, *choices: str) -> None:
    """Reject an unknown --format before any work starts: a long suggest or sections run must not end in it."""
    if fmt not in choices:
        raise UsageError(f"unknown format {fmt!r}: choose {', '.join(choices[:-1])} or {choices[-1]}")


def site_origin(db: Path) -> str | None:
    """The crawl's origin ("https://example.com"), to show URLs as paths in tables."""
    from .store import Store

    try:
        with Store(db, read_only=True) as store:
            start = store.meta().get("start_url")
    except LinkJuiceError:
        return None
    if not start:
        return None
    scheme, _, rest = str(start).partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def short_url(url: object, origin: str | None) -> str:
    """A crawled URL for a terminal table: the path when it is on the crawled site, escaped."""
    text = "" if url is None else str(url)
    if origin and text.startswith(origin + "/"):
        text = text[len(origin):]
    return clean_text(text)


class _ProgressView:
    """A rich progress bar on a terminal; a log line every few seconds otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.progress: Progress | None = None
        self._last_line = time.monotonic()

    def __enter__(self) -> _ProgressView:
        if self.live:
            self.progress = Progress(
                SpinnerColumn(), TextColumn("[bold]{task.fields[stage]}"), BarColumn(),
                TextColumn("{task.fields[done]} done, {task.fields[queued]} queued, "
                           "{task.fields[errors]} errors, {task.fields[rate]:.0f} pages/s"),
                TimeElapsedColumn(), console=console, transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("crawl", total=None, done=0, queued=0, errors=0, rate=0.0,
                                               stage="crawling")
        return self

    # What each step after the crawl does (finalize: 11 minutes at 10M pages, with no bar of its own).
    _STAGES = {"finalizing": "finalizing: page ids, link pairs, link codes, click depths",
               "scoring": "scoring the links"}

    def stage(self, name: str) -> None:
        text = self._STAGES.get(name, name)
        if self.progress is not None:
            self.progress.update(self.task, stage=text)
        elif not self.quiet:
            err_console.print(f"{text}...", highlight=False)

    def __call__(self, p: CrawlProgress) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=p.done, total=p.done + p.queued, done=p.done,
                                 queued=p.queued, errors=p.errors, rate=p.pages_per_second)
        elif not self.quiet and time.monotonic() - self._last_line > 5:
            self._last_line = time.monotonic()
            err_console.print(f"crawled {p.done} pages, {p.queued} queued, {p.errors} errors, "
                              f"{p.pages_per_second:.0f} pages/s", highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _crawl_config(start_url: str, **options: object) -> CrawlConfig:
    return CrawlConfig(start_url=start_url, **options)  # type: ignore[arg-type]


@app.command()
def crawl(
    start: Annotated[Optional[str], typer.Argument(help="Start URL, or a folder holding a static build (with --base-url).")] = None,
    db: DbOption = Path("linkjuice.duckdb"),
    base_url: Annotated[Optional[str], typer.Option(help="Local mode: the site URL the folder is a build of.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the crawl stored in --db.")] = False,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 8,
    rate: Annotated[Optional[float], typer.Option(help="Maximum requests per second per host.")] = None,
    ignore_robots: Annotated[bool, typer.Option("--ignore-robots", help="Do not obey robots.txt.")] = False,
    no_sitemaps: Annotated[bool, typer.Option("--no-sitemaps", help="Do not read sitemaps.")] = False,
    user_agent: Annotated[Optional[str], typer.Option(help="User-Agent header (and robots.txt token).")] = None,
    include: Annotated[Optional[list[str]], typer.Option(help="Only crawl URLs matching this regex (repeatable).")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(help="Skip URLs matching this regex (repeatable).")] = None,
    subdomains: Annotated[bool, typer.Option("--subdomains", help="Treat subdomains as part of the site.")] = False,
    max_pages: Annotated[Optional[int], typer.Option(help="Stop after this many URLs.")] = None,
    max_depth: Annotated[Optional[int], typer.Option(help="Do not follow links deeper than this many clicks.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 20.0,
    max_body: Annotated[int, typer.Option(help="Maximum body size in bytes, after decompression.")] = 10 * 1024 * 1024,
    strip_tracking: Annotated[bool, typer.Option("--strip-tracking", help="Remove utm_* and click-id parameters from URLs.")] = False,
    max_per_pattern: Annotated[int, typer.Option(help="Crawl at most this many URLs of one shape (calendars and other crawler traps).")] = 1000,
    workers: Annotated[Optional[int], typer.Option(help="Processes parsing HTML beside the fetching loop (default: 2 on a machine with 2 cores or more, for crawls past 200 URLs; 0: none).")] = None,
    render: Annotated[bool, typer.Option("--render", help="Also load each HTML page in headless Chromium and read the links of the rendered DOM (the 'render' extra; docs/rendering.md).")] = False,
    render_wait: Annotated[Optional[int], typer.Option(help="With --render: read the DOM this many ms after the load event (default: once the network is idle).")] = None,
    render_pages: Annotated[int, typer.Option(help="With --render: browser pages rendering at once.")] = 4,
    browser: Annotated[Optional[str], typer.Option(help="With --render: the Chromium executable (default $LINKJUICE_CHROMIUM, then /usr/bin/chromium).")] = None,
    no_score: Annotated[bool, typer.Option("--no-score", help="Do not score at the end.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Crawl a website (or a local static build) into a DuckDB store, then score it."""
    from . import pipeline
    if resume:
        from .store import Store

        with Store(db, read_only=True) as store:
            meta = store.meta()
        settings = dict(meta.get("settings") or {})
        if not settings:
            raise UsageError(f"{db} holds no crawl to resume")
        start_url = settings.pop("start_url")
        config = CrawlConfig(start_url=start_url, **{k: v for k, v in settings.items()})
    else:
        if not start:
            raise UsageError("give a start URL (or a folder with --base-url), or --resume")
        local_root = None
        start_url = start
        if base_url or Path(start).is_dir():
            if not Path(start).is_dir():
                raise UsageError(f"{start} is not a folder")
            if not base_url:
                raise UsageError("local mode needs --base-url, the site URL the folder is a build of")
            local_root, start_url = str(Path(start).resolve()), base_url
        config = CrawlConfig(
            start_url=start_url, concurrency=concurrency, rate=rate, obey_robots=not ignore_robots,
            use_sitemaps=not no_sitemaps, include=tuple(include or ()), exclude=tuple(exclude or ()),
            subdomains=subdomains, max_pages=max_pages, max_depth=max_depth, timeout=timeout,
            max_body_bytes=max_body, strip_tracking=strip_tracking, local_root=local_root,
            max_urls_per_pattern=max_per_pattern, extract_workers=workers, render=render, render_wait_ms=render_wait,
            render_pages=render_pages, browser_path=browser,
            **({"user_agent": user_agent} if user_agent else {}),
        )
    with _ProgressView(quiet) as view:
        summary = pipeline.crawl_site(config, db, resume=resume, on_progress=view, score=not no_score,
                                      on_stage=view.stage)
    rate_text = f"{summary.pages / summary.seconds:.0f} pages/s" if summary.seconds > 0 else ""
    console.print(
        f"Crawled {summary.pages} pages and {summary.links} links in {summary.seconds:.1f}s "
        f"({rate_text}); {summary.errors} errors; stopped: {summary.stop_reason}. Store: {db}",
        highlight=False,
    )
    if summary.stop_reason == "interrupted":
        console.print(f"Resume with: linkjuice crawl --resume --db {db}", highlight=False)


def model_config(
    *,
    config_file: Path | None,
    damping: float | None = None,
    relevance_weight: float | None = None,
    no_anchor: bool = False,
    backlink_mix: float | None = None,
    section_depth: int | None = None,
    relevance_engine: str | None = None,
    relevance_model_path: Path | None = None,
) -> ModelConfig:
    """ModelConfig from linkjuice.toml's [model] table, overridden by command-line options."""
    from .config import load_toml, with_overrides

    values = dict(load_toml(config_file or "linkjuice.toml").get("model", {}))
    if "position_weights" in values:
        values["position_weights"] = {**ModelConfig().position_weights, **values["position_weights"]}
    for key, value in (("damping", damping), ("relevance_weight", relevance_weight),
                       ("backlink_mix", backlink_mix), ("section_depth", section_depth)):
        if value is not None:
            values[key] = value
    if no_anchor:
        values["use_anchor"] = False
    if relevance_model_path is not None:  # a model folder only makes sense for the semantic engine
        values["relevance_model_path"] = str(relevance_model_path.expanduser().resolve())
        values["relevance_engine"] = relevance_engine or "semantic"
    elif relevance_engine is not None:
        values["relevance_engine"] = relevance_engine
        if relevance_engine != "semantic":
            values.pop("relevance_model_path", None)
    return with_overrides(ModelConfig(), values)


ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="Settings file (default: ./linkjuice.toml if present).")]
RELEVANCE_ENGINE_HELP = "Relevance engine: tfidf (default) or semantic (sentence embeddings; needs linkjuice[semantic])."
# `score --engine` picks the rank engine (local|dask), so score names this one in full.
RelevanceEngineOption = Annotated[Optional[str], typer.Option("--relevance-engine", help=RELEVANCE_ENGINE_HELP)]
ModelPathOption = Annotated[Optional[Path], typer.Option("--model-path", help="semantic: a folder with model.onnx and "
                                                         "tokenizer.json to use instead of the packaged model.")]


@app.command()
def score(
    db: DbOption = Path("linkjuice.duckdb"),
    model: Annotated[str, typer.Option(help="juice (reasonable surfer, default) or classic (textbook PageRank) drives juice_score.")] = "juice",
    damping: Annotated[Optional[float], typer.Option(help="Damping factor (default 0.85).")] = None,
    relevance_weight: Annotated[Optional[float], typer.Option(help="0-1: how much topical relevance scales a link (0 = off; default 0.5).")] = None,
    no_anchor: Annotated[bool, typer.Option("--no-anchor", help="Ignore anchor text in link weights.")] = False,
    backlink_mix: Annotated[Optional[float], typer.Option(help="0-1: share of entering juice driven by backlinks (default 0.5).")] = None,
    section_depth: Annotated[Optional[int], typer.Option(help="Path segments that define a site section (default 1).")] = None,
    explain_weights: Annotated[bool, typer.Option("--explain-weights", help="Print the link-weight factors and examples.")] = False,
    config_file: ConfigOption = None,
    relevance_engine: RelevanceEngineOption = None,
    model_path: ModelPathOption = None,
    engine: Annotated[str, typer.Option(help="local (default) or dask: iterate on a Dask cluster (extra linkjuice[dask]).")] = "local",
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address (default: a LocalCluster on this machine).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Dask workers: of the LocalCluster, or to wait for on --scheduler.")] = None,
    parquet_dir: Annotated[Optional[str], typer.Option(help="Where the Dask workers read the model's inputs (shared folder or s3://...).")] = None,
) -> None:
    """Score every page of a crawl (classic PageRank and the juice model)."""
    from . import pipeline
    from .engines import open_engine

    config = model_config(config_file=config_file, damping=damping, relevance_weight=relevance_weight,
                          no_anchor=no_anchor, backlink_mix=backlink_mix, section_depth=section_depth,
                          relevance_engine=relevance_engine, relevance_model_path=model_path)
    with pipeline.open_store(db, read_only=False) as store, \
            open_engine(engine, scheduler=scheduler, workers=workers, parquet_dir=parquet_dir) as ranker:
        summary = pipeline.score_store(store, model=config, model_name=model, engine=ranker)
    console.print(
        f"Scored {summary.ranked_pages} indexable of {summary.pages} pages over {summary.links} links in "
        f"{summary.seconds:.2f}s (classic: {summary.iterations_classic} iterations, juice: "
        f"{summary.iterations_juice}).",
        highlight=False,
    )
    if explain_weights:
        from .commands.model import print_weights

        print_weights(db, config)


def _pages_table(frame, title: str, origin: str | None = None) -> Table:  # type: ignore[no-untyped-def]
    if origin:
        title += f" - {origin}"
    table = Table(title=title, title_justify="left")
    url_width = min(max((len(short_url(u, origin)) for u in frame["url"]), default=10), max(console.width - 55, 16))
    # Short headers keep the table inside 80 columns; the export columns keep their full names.
    for name, header in (("url", "url"), ("status", "status"), ("depth", "depth"), ("inlinks", "in"),
                         ("outlinks", "out"), ("pagerank", "pagerank"), ("juice_score", "score")):
        if name == "url":
            table.add_column(header, overflow="fold", min_width=url_width)
        else:
            table.add_column(header, justify="right", no_wrap=True)
    for row in frame.itertuples(index=False):
        table.add_row(
            short_url(row.url, origin), _fmt(row.status), _fmt(row.depth), _fmt(row.inlinks),
            _fmt(row.outlinks), _fmt(row.pagerank, ".4f"), _fmt(row.juice_score, ".1f"),
        )
    return table


def _fmt(value: object, spec: str = "") -> str:
    try:
        if value is None or value != value:  # NaN
            return "-"
        if spec:
            return format(value, spec)
        return str(int(value)) if isinstance(value, float) else str(value)
    except (TypeError, ValueError):
        return str(value)


@app.command()
def pages(
    db: DbOption = Path("linkjuice.duckdb"),
    sort: Annotated[str, typer.Option(help="Column to sort by.")] = "juice",
    ascending: Annotated[bool, typer.Option("--ascending", help="Smallest first.")] = False,
    limit: Annotated[int, typer.Option(help="Rows to show; 0 shows them all.")] = 20,
    url_contains: Annotated[Optional[str], typer.Option("--url", help="Only URLs containing this text.")] = None,
    status: Annotated[Optional[int], typer.Option(help="Only this HTTP status.")] = None,
    indexable: Annotated[Optional[bool], typer.Option("--indexable/--not-indexable", help="Only (non-)indexable pages.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Show the top pages by juice (sortable and filterable)."""
    from . import pipeline
    check_format(fmt, "table", "csv", "json")
    frame = pipeline.pages(db, sort=sort, descending=not ascending, limit=limit or None, url_contains=url_contains,
                           status=status, indexable=indexable)
    if fmt == "table":
        console.print(_pages_table(frame, f"Pages by {sort}", site_origin(db)))
    elif fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    else:
        sys.stdout.write(frame.to_json(orient="records", date_format="iso") + "\n")


def _export(table: str, db: Path, fmt: str, output: Path) -> None:
    from . import pipeline
    rows = pipeline.export_table(db, table, fmt, output)
    console.print(f"Wrote {rows} {table} rows to {output}", highlight=False)


FormatOption = Annotated[str, typer.Option("--format", "-f", help="csv, json or parquet.")]
OutputOption = Annotated[Path, typer.Option("--output", "-o", help="File to write.")]


@export_app.command("pages")
def export_pages(output: OutputOption, db: DbOption = Path("linkjuice.duckdb"), fmt: FormatOption = "csv") -> None:
    """Export pages with their scores."""
    _export("pages", db, fmt, output)


@export_app.command("links")
def export_links(output: OutputOption, db: DbOption = Path("linkjuice.duckdb"), fmt: FormatOption = "csv") -> None:
    """Export every link (one row per link)."""
    _export("links", db, fmt, output)


@export_app.command("redirects")
def export_redirects(output: OutputOption, db: DbOption = Path("linkjuice.duckdb"), fmt: FormatOption = "csv") -> None:
    """Export every redirect hop (source, status, target)."""
    _export("redirects", db, fmt, output)


@app.command()
def demo(
    db: Annotated[Optional[Path], typer.Option("--db", help="Where to keep the demo store (default: a temporary folder); an earlier demo's store there is replaced, any other file refused.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Serve the bundled sample site on 127.0.0.1, crawl, score, audit it, suggest links, report."""
    from . import pipeline
    from .commands.audit import print_report
    from .demo import serve_folder
    from .opportunities import SuggestOptions, suggest_links

    workdir = None
    if db is None:
        workdir = tempfile.mkdtemp(prefix="linkjuice-demo-")
        db = Path(workdir) / "demo.duckdb"
    else:
        _replaceable_demo_store(db)
    # Marked before the crawl: a demo stopped half-way leaves a store the next demo may replace.
    with pipeline.open_store(db, read_only=False) as store:
        store.set_meta({"demo": True})
    with serve_folder() as origin:
        console.print(f"Serving the sample site at {origin}/", highlight=False)
        config = CrawlConfig(start_url=origin + "/", concurrency=8)
        with _ProgressView(quiet) as view:
            summary = pipeline.crawl_site(config, db, on_progress=view)
    console.print(f"Crawled {summary.pages} URLs and {summary.links} links in {summary.seconds:.1f}s; store: {db}",
                  highlight=False)
    origin = site_origin(db)
    frame = pipeline.pages(db, limit=10, indexable=True)
    console.print(_pages_table(frame, "Strongest pages (juice_score: 0-100, log scale)", origin))
    console.print()
    print_report(pipeline.run_audit(db), top=5)
    suggestions = suggest_links(db, SuggestOptions(limit=5))
    if not suggestions.empty:
        table = Table(title=f"Top link suggestions - {origin}", title_justify="left")
        for col in ("add a link on", "to", "with the words", "gain for the target"):
            table.add_column(col, overflow="fold")
        for row in suggestions.itertuples(index=False):
            table.add_row(short_url(row.source_url, origin), short_url(row.target_url, origin),
                          clean_text(row.anchor), f"+{row.gain_pct:.0f}%")
        console.print(table)
    from .report import build_report

    report_path = db.with_name("linkjuice-demo-report.html")
    build_report(db, report_path)
    console.print(f"Report: {report_path} (open it in a browser; it works offline)", highlight=False)
    # One command a line: "a | b" would read as a shell pipe when copied.
    console.print("Next:", highlight=False)
    for command in ("audit", "suggest", "explain URL"):
        console.print(f"  linkjuice {command} --db {db}", highlight=False, soft_wrap=True)


def _replaceable_demo_store(db: Path) -> None:
    """Make room for the demo's store at `db`: an earlier demo's store is removed; any other file
    (a real crawl, say) is refused, never deleted. (A missing folder is the Store's error, met
    when the demo makes its store, before the site is served.)"""
    if not db.exists():
        return
    from . import pipeline

    try:
        with pipeline.open_store(db) as store:
            is_demo = store.meta().get("demo") is True
    except Exception:  # (no store, or not one this version reads: not a demo's either)
        is_demo = False
    if not is_demo:
        raise UsageError(f"{db} exists and is not an earlier demo's store: give another --db (the demo replaces its store)")
    db.unlink()
    Path(f"{db}.wal").unlink(missing_ok=True)


def _kind(exc: BaseException) -> set[str]:
    # Typer has vendored click in recent releases and depended on it before: match by class name.
    return {cls.__name__ for cls in type(exc).__mro__}


def _interrupted(exc: BaseException) -> bool:
    """Whether a Ctrl-C caused `exc`: one that lands while a numba kernel calls back into Python
    comes out of the kernel as a SystemError ("returned a result with an exception set") whose
    cause is the KeyboardInterrupt; a query run while it unwinds (a DuckDB setting put back)
    fails with "Query interrupted", the KeyboardInterrupt as its context."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _exit_interrupted() -> NoReturn:
    err_console.print("interrupted", highlight=False)
    sys.exit(130)


def main() -> None:
    """Entry point: run the app, turning expected errors into one clean line."""
    try:
        code = app(standalone_mode=False)
        # Without standalone mode click returns, not raises, the code of typer.Exit(n); typer
        # turns a Ctrl-C inside a command into code 130, silently.
        if code == 130:
            _exit_interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except LinkJuiceError as exc:
        err_console.print(f"error: {clean_text(str(exc))}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _exit_interrupted()
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:
        kinds = _kind(exc)
        if _interrupted(exc):
            _exit_interrupted()
        if "NoArgsIsHelpError" in kinds:
            sys.exit(0)
        if "Exit" in kinds:
            sys.exit(getattr(exc, "exit_code", 0))
        if "Abort" in kinds:
            err_console.print("aborted", highlight=False)
            sys.exit(130)
        if "UsageError" in kinds or "ClickException" in kinds:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            err_console.print(f"error: {exc.format_message()}{hint}", highlight=False, markup=False, soft_wrap=True)  # type: ignore[attr-defined]
            sys.exit(2 if "UsageError" in kinds else getattr(exc, "exit_code", 1))
        # Last resort for the store and the file system (disk full, read-only, permissions): a
        # failure of the whole operation, said in one line; the store keeps what it committed.
        if type(exc).__module__.lstrip("_").startswith("duckdb"):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            err_console.print(f"error: store: {clean_text(first)}", highlight=False, markup=False, soft_wrap=True)
            sys.exit(1)
        if isinstance(exc, OSError):
            where = f": {exc.filename}" if exc.filename else ""
            err_console.print(f"error: {clean_text(exc.strerror or str(exc))}{where}", highlight=False, markup=False,
                              soft_wrap=True)
            sys.exit(1)
        raise


# Commands of later stages register themselves on `app` (imported last: they import from here).
from . import commands  # noqa: E402,F401

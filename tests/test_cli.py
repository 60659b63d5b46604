"""Every command has --help, and is named in the README; usage errors are one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from linkjuice.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _commands(group, prefix=()):  # type: ignore[no-untyped-def]
    for name, command in sorted(getattr(group, "commands", {}).items()):
        path = (*prefix, name)
        yield path
        yield from _commands(command, path)


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_command_tree_is_complete() -> None:
    names = {" ".join(c) for c in COMMANDS}
    for expected in ("crawl", "score", "pages", "export pages", "export links", "export redirects", "demo", "audit",
                     "import links", "import backlinks", "explain", "sections", "hubs", "suggest", "simulate",
                     "optimize", "report", "serve", "diff"):
        assert expected in names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output.strip().splitlines()) > 3


def test_top_level_commands_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in COMMANDS:
        if len(path) == 1:
            assert path[0] in readme, f"README does not mention `linkjuice {path[0]}`"


def test_usage_error_is_one_line_exit_2() -> None:
    result = subprocess.run([sys.executable, "-m", "linkjuice", "crawl", "--max-pages", "lots"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:")


def test_missing_store_is_one_line_exit_1(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "linkjuice", "pages", "--db", str(tmp_path / "none.duckdb")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no store at") and "Traceback" not in result.stderr


# Runs a command in this process's way (linkjuice.cli.main), then prints what Arrow's allocator
# was told and whether pyarrow had loaded by then.
_ALLOCATOR_PROBE = """
import os, sys
from linkjuice.cli import main
sys.argv = ["linkjuice", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(os.environ.get("MIMALLOC_PURGE_DELAY"), "pyarrow" in sys.modules)
"""


@pytest.mark.parametrize(("command", "preset", "expected"), [
    ("audit", None, "-1"),  # the audit keeps what Arrow frees
    ("audit", "10", "10"),  # a value the user set is kept
    ("score", None, "None"),  # other commands keep Arrow's default (the first score's peak)
    ("pages", None, "None"),
])
def test_only_the_audit_keeps_the_memory_arrow_frees(tmp_path: Path, command: str, preset: str | None,
                                                     expected: str) -> None:
    db = tmp_path / "store.duckdb"
    from linkjuice.store import Store

    with Store(db):  # an empty store: each command loads pyarrow, then stops at the missing crawl
        pass
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"}
    if preset is not None:
        env["MIMALLOC_PURGE_DELAY"] = preset
    result = subprocess.run([sys.executable, "-c", _ALLOCATOR_PROBE, command, "--db", str(db)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.stdout.split()[-2:] == [expected, "True"], result.stdout + result.stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_crawl_says_when_it_finalizes_and_scores(tmp_path: Path, quiet: bool) -> None:
    """The steps after the crawl take minutes on a big site and have no bar of their own: the
    crawl says when each starts (a log line when stderr is not a terminal), unless --quiet."""
    from .sitekit import page, serve

    routes = {"/": page("Home", '<a href="/a/">A</a>'), "/a/": page("A", '<a href="/">Home</a>')}
    with serve(routes) as server:
        result = subprocess.run(
            [sys.executable, "-m", "linkjuice", "crawl", server.url("/"), "--db", str(tmp_path / "s.duckdb"),
             *(["--quiet"] if quiet else [])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    if quiet:
        assert "finalizing" not in result.stderr and "scoring" not in result.stderr
    else:
        assert result.stderr.index("finalizing: page ids") < result.stderr.index("scoring the links")
    assert "Crawled 2 pages" in result.stdout


def _interrupted_in_python() -> None:
    raise KeyboardInterrupt


def _interrupted_in_a_kernel() -> None:
    # numba, when the interrupt lands as a kernel calls back into Python (seen on a 10M-page score)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        raise SystemError("CPUDispatcher(<function link_counts>) returned a result with an exception set") from exc


def _interrupted_then_a_query() -> None:
    # DuckDB, when a clean-up runs a query on the connection the interrupt stopped
    try:
        raise KeyboardInterrupt
    finally:
        raise RuntimeError("Query interrupted")


@pytest.mark.parametrize("interrupt", [_interrupted_in_python, _interrupted_in_a_kernel, _interrupted_then_a_query])
def test_ctrl_c_during_a_command_is_one_line_exit_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], interrupt) -> None:  # type: ignore[no-untyped-def]
    """A Ctrl-C during a command says "interrupted" and exits 130, however it surfaces: as a
    KeyboardInterrupt (which typer turns silently into code 130), as the cause of a numba
    kernel's SystemError or as the context of a query run while it unwinds (both met on a
    10M-page score: a traceback and exit 1); the store keeps what it held. A SystemError of
    another cause is still a bug's traceback."""
    import linkjuice.pipeline as pipeline
    from linkjuice.cli import main
    from linkjuice.store import Store

    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        store.set_meta({"start_url": "https://t.example/"})
    monkeypatch.setattr(sys, "argv", ["linkjuice", "score", "--db", str(db)])
    monkeypatch.setattr(pipeline, "score_store", lambda *args, **kwargs: interrupt())
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    with Store(db, read_only=True) as store:
        assert store.meta()["start_url"] == "https://t.example/"

    def bug(*args: object, **kwargs: object) -> None:
        raise SystemError("returned a result with an exception set")

    monkeypatch.setattr(pipeline, "score_store", bug)
    with pytest.raises(SystemError):
        main()


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI's entry point in this process: (exit code, stdout, stderr)."""
    from linkjuice.cli import main

    monkeypatch.setattr(sys, "argv", ["linkjuice", *argv])
    code = 0
    try:
        main()
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sections_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site of four sections that link to each other unevenly (a local crawl: no server)."""
    from linkjuice.config import CrawlConfig
    from linkjuice.pipeline import crawl_site

    root = tmp_path_factory.mktemp("site")
    paths = ["/", "/blog/a/", "/blog/b/", "/blog/c/", "/shop/x/", "/shop/y/", "/docs/z/", "/about/"]
    links = {"/": paths[1:], "/blog/a/": ["/blog/b/", "/blog/c/", "/shop/x/"], "/blog/b/": ["/blog/a/", "/docs/z/"],
             "/blog/c/": ["/shop/y/"], "/shop/x/": ["/shop/y/", "/"], "/shop/y/": ["/shop/x/", "/gone/"],
             "/docs/z/": ["/about/"], "/about/": ["/"]}
    for path in paths:
        body = " ".join(f'<a href="{t}">{t.strip("/") or "home"}</a>' for t in links[path])
        file = root / path.strip("/") / "index.html"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"<html><head><title>{path}</title></head><body><main>{body}</main></body></html>",
                        encoding="utf-8")
    db = tmp_path_factory.mktemp("store") / "s.duckdb"
    crawl_site(CrawlConfig(start_url="https://t.example/", local_root=str(root)), db)
    return db


def test_sections_lists_the_largest_flows_and_says_how_many_it_left_out(
        sections_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    import pandas as pd

    from linkjuice.store import Store

    with Store(sections_db, read_only=True) as store:
        stored = store.con.execute("SELECT * FROM section_flows").df()
    code, out, _ = _run(["sections", "--db", str(sections_db), "--limit", "0", "--format", "csv"], monkeypatch, capsys)
    assert code == 0
    every = pd.read_csv(io.StringIO(out))
    assert len(every) == len(stored) > 3
    assert list(every["juice"]) == sorted(stored["juice"], reverse=True)

    code, out, _ = _run(["sections", "--db", str(sections_db), "--limit", "2", "--format", "json"], monkeypatch, capsys)
    assert code == 0 and pd.read_json(io.StringIO(out))[["from_section", "to_section"]].equals(
        every[["from_section", "to_section"]].head(2))

    code, out, _ = _run(["sections", "--db", str(sections_db), "--limit", "3"], monkeypatch, capsys)
    assert code == 0
    shown = every["juice"].head(3).sum() / every["juice"].sum()
    assert f"the 3 largest of {len(every)} flows ({shown:.1%} of all juice passed)" in " ".join(out.split())
    code, out, _ = _run(["sections", "--db", str(sections_db), "--limit", "0"], monkeypatch, capsys)
    assert code == 0 and "largest of" not in out and "(lost: broken)" in out


@pytest.mark.parametrize("name", ["/shop/", "shop", "/shop"])
def test_sections_of_one_section(sections_db: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str], name: str) -> None:
    import io

    import pandas as pd

    _, out, _ = _run(["sections", "--db", str(sections_db), "--limit", "0", "--format", "csv"], monkeypatch, capsys)
    every = pd.read_csv(io.StringIO(out))
    code, out, _ = _run(["sections", "--db", str(sections_db), "--section", name, "--limit", "0", "--format", "csv"],
                        monkeypatch, capsys)
    assert code == 0
    mine = every[(every["from_section"] == "/shop/") | (every["to_section"] == "/shop/")].reset_index(drop=True)
    assert len(mine) >= 2 and pd.read_csv(io.StringIO(out)).equals(mine)


def test_an_unknown_section_names_the_known_ones(sections_db: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["sections", "--db", str(sections_db), "--section", "/news/"], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no section '/news/'" in err
    assert "/blog/" in err and "/shop/" in err and "(lost" not in err


def test_pages_limit_zero_lists_every_page_and_a_negative_one_is_refused(
        sections_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from linkjuice.store import Store

    with Store(sections_db, read_only=True) as store:
        count = store.con.execute("SELECT count(*) FROM pages").fetchone()[0]
    code, out, _ = _run(["pages", "--db", str(sections_db), "--limit", "0", "--format", "csv"], monkeypatch, capsys)
    assert code == 0 and len(out.strip().splitlines()) == count + 1 > 8
    for command in ("pages", "sections"):
        code, _, err = _run([command, "--db", str(sections_db), "--limit", "-1"], monkeypatch, capsys)
        assert code == 2 and err.strip() == "error: --limit must not be negative"


@pytest.mark.parametrize("argv", [
    ["pages", "--db", "DB"], ["sections", "--db", "DB"], ["explain", "https://t.example/", "--db", "DB"],
    ["audit", "--db", "DB"], ["suggest", "--db", "DB"], ["simulate", "--db", "DB"],
    ["optimize", "--target", "/", "--db", "DB"], ["diff", "DB", "DB"],
], ids=lambda argv: argv[0])
def test_a_bad_format_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """Checked first: the store does not even exist, and the error is about the format (a suggest
    on a million pages ran two minutes before it said so)."""
    missing = str(tmp_path / "none.duckdb")
    code, out, err = _run([missing if arg == "DB" else arg for arg in argv] + ["--format", "xml"], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: unknown format 'xml': choose table")


@pytest.mark.parametrize("command", [["suggest"], ["simulate"], ["optimize", "--target", "/"]], ids=lambda c: c[0])
def test_an_output_file_of_an_unknown_kind_is_refused_before_any_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, _, err = _run([*command, "--db", str(tmp_path / "none.duckdb"), "-o", str(tmp_path / "out.xlsx")],
                        monkeypatch, capsys)
    assert code == 2 and "name a .csv, .json or .parquet file" in err and not (tmp_path / "out.xlsx").exists()

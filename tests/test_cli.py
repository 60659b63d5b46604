"""Every command has --help, and is named in the README; usage errors are one line, exit 2."""

from __future__ import annotations

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

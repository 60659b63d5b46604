"""Every command, given wrong arguments, missing files or files of the wrong type (a PNG or a text file
as the store, a directory, a PNG as an import), ends with one line on stderr, a non-zero exit code and
no traceback; run through `python -m linkjuice` as a user would. The command list is read from the CLI
itself, so a new command is covered the day it is added."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer.main

from linkjuice.cli import app
from linkjuice.store import Store

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00" + zlib.compress(b"\0" * 64)
ENV = {**os.environ, "COLUMNS": "80", "PYTHONUNBUFFERED": "1"}


def _commands() -> dict[str, list]:
    """Command path ("export pages") -> its click parameters."""
    found: dict[str, list] = {}

    def walk(command, path: list[str]) -> None:  # noqa: ANN001
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = list(command.params)

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()
# Commands that would do real work with valid input: only their argument handling is tried.
WORKERS = {"demo", "serve"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input")
    paths = {"missing": root / "no-such-file.duckdb", "png": root / "image.png", "text": root / "notes.txt",
             "dir": root / "a-folder", "store": root / "empty-store.duckdb", "csv-junk": root / "junk.csv"}
    paths["png"].write_bytes(PNG)
    paths["text"].write_text("just some notes\nnot a database\n")
    paths["dir"].mkdir()
    paths["csv-junk"].write_bytes(b"\xff\xfe\x00junk;;;\n\x00\x01\x02,,,\n")
    with Store(paths["store"]) as store:
        store.set_meta({"start_url": "http://example.com/"})
    return paths


def _required(command: str, params: list, bad_file: Path, tmp: Path) -> list[str]:
    """Values for the required parameters: the bad file where a file is expected."""
    args: list[str] = []
    for p in params:
        if not p.required:
            continue
        if p.name in ("file", "old", "new"):
            value = str(bad_file)
        elif p.name == "output":
            value = str(tmp / f"out-{command.replace(' ', '-')}")
        else:
            value = "http://example.com/"
        args += [value] if p.param_type_name == "argument" else [p.opts[0], value]
    return args


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "linkjuice", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=ENV, stdin=subprocess.DEVNULL)


def _check(args: list[str], proc: subprocess.CompletedProcess[str]) -> None:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, (args, proc.stderr)
    assert proc.returncode != 0, (args, proc.stdout[-500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, proc.stderr)


def _cases(command: str, params: list, files: dict[str, Path], tmp: Path) -> list[list[str]]:
    words = command.split()
    cases = [[*words, "--no-such-option"]]
    has_db = any("--db" in p.opts for p in params)
    if command in WORKERS:
        return cases + ([[*words, "--db", str(files["png"]), "--no-such-option"]] if has_db else [])
    # The store is opened by shared code: every kind of bad store for one reading and one writing
    # command, a PNG for every other command.
    kinds = ("missing", "png", "text", "dir") if command in ("pages", "score") else ("png",)
    for kind in kinds if has_db else ():
        if command == "crawl" and kind == "missing":
            continue  # crawl creates its store
        extra = ["http://127.0.0.1:9/"] if command == "crawl" else []
        cases.append([*words, *extra, *_required(command, params, files["text"], tmp), "--db", str(files[kind])])
    if any(p.name in ("file", "old", "new") for p in params):  # an input file that is not what it should be
        for kind in ("missing", "png", "csv-junk"):
            db = ["--db", str(files["store"])] if has_db else []
            cases.append([*words, *_required(command, params, files[kind], tmp), *db])
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_input_is_one_clean_line(command: str, files: dict[str, Path], tmp_path: Path) -> None:
    cases = _cases(command, COMMANDS[command], files, tmp_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda args: _run(args, tmp_path), cases))
    for args, proc in zip(cases, results):
        _check(args, proc)


def test_a_bad_option_value_names_the_option(tmp_path: Path) -> None:
    proc = _run(["crawl", "http://example.com/", "--concurrency", "many"], tmp_path)
    _check(["crawl"], proc)
    assert "--concurrency" in proc.stderr
    proc = _run(["crawl", "http://example.com/", "--concurrency", "0", "--db", str(tmp_path / "x.duckdb")], tmp_path)
    _check(["crawl"], proc)
    assert "--concurrency must be at least 1" in proc.stderr and proc.returncode == 2
    proc = _run(["crawl", "ftp://example.com/", "--db", str(tmp_path / "y.duckdb")], tmp_path)
    _check(["crawl"], proc)
    assert "not an http(s) URL" in proc.stderr and not (tmp_path / "y.duckdb").exists()

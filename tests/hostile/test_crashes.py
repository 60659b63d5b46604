"""Crashes and restarts: SIGTERM/SIGINT stop a crawl gracefully (status `interrupted`, resumable to the
same store as an uninterrupted crawl); a store of an older (or newer, or unknown) schema is refused with
a clear message; a full disk or a read-only file system gives one clear error and keeps the data
committed before it; a store locked by another process is refused. (SIGKILL: tests/test_resume.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from linkjuice.config import CrawlConfig
from linkjuice.errors import StoreError
from linkjuice.pipeline import crawl_site
from linkjuice.store import SCHEMA_VERSION, Store

from ..sitekit import Route, serve
from .servers import bounded

N_PAGES = 60
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _routes(delay: float = 0.02, text: str = "") -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for i in range(N_PAGES):
        links = " ".join(f"<a href='/p{(i * 7 + k) % N_PAGES}/'>page {(i * 7 + k) % N_PAGES}</a>" for k in range(1, 5))
        routes[f"/p{i}/"] = Route(body=f"<html><title>P{i}</title><main><p>{text}</p>{links}</main></html>", delay=delay)
    routes["/"] = Route(body="<html><title>Home</title><main><a href='/p0/'>start</a></main></html>")
    return routes


def _cmd(db: Path, url: str | None) -> list[str]:
    args = [sys.executable, "-m", "linkjuice", "crawl"]
    args += [url, "--db", str(db)] if url else ["--resume", "--db", str(db)]
    return args + ["--quiet", "--concurrency", "2", "--no-sitemaps"]


def _snapshot(db: Path) -> tuple[list, list]:
    with Store(db, read_only=True) as store:
        pages = store.con.execute("SELECT url, status FROM pages ORDER BY url").fetchall()
        links = store.con.execute("SELECT source_url, target_url, link_order FROM links ORDER BY ALL").fetchall()
    return pages, links


def _reference(tmp_path: Path, origin: str) -> tuple[list, list]:
    db = tmp_path / "reference.duckdb"
    bounded(lambda: crawl_site(CrawlConfig(start_url=origin + "/", concurrency=2, use_sitemaps=False), db), 60)
    return _snapshot(db)


def _wait_for(predicate, seconds: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def slow_site(tmp_path_factory: pytest.TempPathFactory):
    """The test site, and the snapshot of one uninterrupted crawl of it."""
    with serve(_routes()) as site:
        yield site, _reference(tmp_path_factory.mktemp("reference"), site.origin)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully_and_resumes(tmp_path: Path, slow_site, sig: signal.Signals) -> None:
    site, reference = slow_site
    db = tmp_path / "stopped.duckdb"
    proc = subprocess.Popen(_cmd(db, site.url("/")), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = len(site.requests)
    assert _wait_for(lambda: len(site.requests) >= seen + 15, 60)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    out = " ".join(out.split())  # rich wraps lines when stdout is not a terminal
    assert "stopped: interrupted" in out and "Resume with: linkjuice crawl --resume" in out
    with Store(db, read_only=True) as store:
        meta, partial = store.meta(), store.counts()["pages"]
    assert meta["status"] == "interrupted" and 0 < partial < len(reference[0])
    resumed = subprocess.run(_cmd(db, None), env=ENV, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert _snapshot(db) == reference


def test_ctrl_c_to_the_process_group_stops_the_extraction_workers(tmp_path: Path, slow_site) -> None:
    """A terminal's Ctrl-C reaches every process of the group: the workers ignore it, the crawl stops
    gracefully, closes them, and leaves no process behind; the resumed crawl is complete."""
    site, reference = slow_site
    db = tmp_path / "group.duckdb"
    proc = subprocess.Popen(_cmd(db, site.url("/")) + ["--workers", "1"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = len(site.requests)
    assert _wait_for(lambda: len(site.requests) >= seen + 15, 60)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "stopped: interrupted" in " ".join(out.split())
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker outlived the crawl
    resumed = subprocess.run(_cmd(db, None), env=ENV, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert _snapshot(db) == reference


def test_signal_while_reading_robots_txt(tmp_path: Path) -> None:
    calls = {"robots": 0}

    def robots(_: str) -> Route:
        calls["robots"] += 1
        return Route(body="User-agent: *\nAllow: /\n", content_type="text/plain", delay=30 if calls["robots"] == 1 else 0)

    with serve({**_routes(delay=0.0), "/robots.txt": robots}) as site:
        db = tmp_path / "early.duckdb"
        proc = subprocess.Popen(_cmd(db, site.url("/")), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert _wait_for(lambda: calls["robots"] == 1, 30)
        time.sleep(0.2)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - started < 10  # not after the 30 s robots.txt answer
        assert proc.returncode == 0 and "stopped: interrupted" in " ".join(out.split()), err
        resumed = subprocess.run(_cmd(db, None), env=ENV, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
    pages, _ = _snapshot(db)
    assert len(pages) == N_PAGES + 1


# -- schema versions ---------------------------------------------------------------------------

def _old_store(path: Path, version: str) -> None:
    """A store as an earlier linkjuice might have left it: fewer tables, fewer columns."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('start_url', '\"http://old.example/\"')", [version])
    con.execute("CREATE TABLE pages (url VARCHAR, status INTEGER)")
    con.execute("INSERT INTO pages VALUES ('http://old.example/', 200)")
    con.close()


@pytest.mark.parametrize(("version", "message"), [
    ("0", f"written by an older linkjuice (schema 0; this one reads {SCHEMA_VERSION}) and cannot be migrated"),
    ("99", f"written by a newer linkjuice (schema 99; this one reads {SCHEMA_VERSION})"),
    ("one", "has no valid schema version"),
])
def test_other_schema_versions_are_refused_clearly(tmp_path: Path, version: str, message: str) -> None:
    db = tmp_path / "old.duckdb"
    _old_store(db, version)
    before = db.read_bytes()
    for read_only in (True, False):
        with pytest.raises(StoreError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Store(db, read_only=read_only)
    proc = subprocess.run([sys.executable, "-m", "linkjuice", "pages", "--db", str(db)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and message in _one_line_error(proc.stderr)
    with duckdb.connect(str(db), read_only=True) as con:  # untouched: still the old store
        assert con.execute("SELECT * FROM pages").fetchall() == [("http://old.example/", 200)]
    assert db.read_bytes() == before


# -- full disk, read-only file system, locks ---------------------------------------------------

@contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount rights): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_disk_full_is_one_clear_error_and_keeps_what_was_committed(tmp_path: Path) -> None:
    text = " ".join(f"word{i}" for i in range(20_000))  # ~100 KB of main text per page
    with serve(_routes(text=text)) as site, _tmpfs(tmp_path / "small", "1m") as small:
        reference = _reference(tmp_path, site.origin)
        db = small / "full.duckdb"
        proc = subprocess.run(_cmd(db, site.url("/")), env=ENV, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        line = _one_line_error(proc.stderr)
        assert f"cannot write to {db}" in line and "No space left on device" in line
        with Store(db, read_only=True) as store:  # what was committed before is readable
            kept = store.con.execute("SELECT url, status FROM pages ORDER BY url").fetchall()
        assert kept and set(kept) <= set(reference[0])
        # With room again, the same store resumes to the full crawl.
        subprocess.run(["mount", "-o", "remount,size=256m", str(small)], check=True)
        resumed = subprocess.run(_cmd(db, None), env=ENV, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert _snapshot(db) == reference


def test_read_only_file_system(tmp_path: Path) -> None:
    with serve(_routes(delay=0.0)) as site, _tmpfs(tmp_path / "ro", "64m") as ro:
        db = ro / "store.duckdb"
        bounded(lambda: crawl_site(CrawlConfig(start_url=site.url("/"), use_sitemaps=False), db), 60)
        before = _snapshot(db)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        for args in (["score", "--db", str(db)], ["crawl", "--resume", "--db", str(db)]):
            proc = subprocess.run([sys.executable, "-m", "linkjuice", *args], capture_output=True, text=True, timeout=60)
            assert proc.returncode == 1 and "Read-only file system" in _one_line_error(proc.stderr), args
        shown = subprocess.run([sys.executable, "-m", "linkjuice", "pages", "--db", str(db), "--format", "csv"],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and site.url("/p0/") in shown.stdout  # reading still works
        assert _snapshot(db) == before


def test_store_locked_by_a_running_crawl(tmp_path: Path) -> None:
    with serve(_routes(delay=0.2)) as site:
        db = tmp_path / "busy.duckdb"
        crawler = subprocess.Popen(_cmd(db, site.url("/")), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert _wait_for(lambda: len(site.requests) >= 3, 30)
            proc = subprocess.run([sys.executable, "-m", "linkjuice", "score", "--db", str(db)], capture_output=True,
                                  text=True, timeout=60)
            assert proc.returncode == 1 and "lock" in _one_line_error(proc.stderr).lower()
        finally:
            crawler.send_signal(signal.SIGTERM)
            crawler.communicate(timeout=30)
        assert crawler.returncode == 0

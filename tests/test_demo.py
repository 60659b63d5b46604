"""`linkjuice demo`, the README's main job, end to end: the bundled site served on 127.0.0.1,
crawled, scored, audited, suggested and reported, and the commands it proposes next run."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb

RUN = [sys.executable, "-m", "linkjuice"]


def test_demo_crawls_scores_audits_and_reports(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    done = subprocess.run([*RUN, "demo", "--db", str(db), "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        start = con.execute("SELECT value FROM meta WHERE key = 'start_url'").fetchone()[0]
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("pages", "links", "page_scores", "findings", "suggestions")}
    assert start.startswith("http://127.0.0.1:")
    assert counts["pages"] >= 50 and counts["links"] > counts["pages"], counts
    assert counts["page_scores"] == counts["pages"] and counts["findings"] > 0 and counts["suggestions"] > 0, counts
    report = db.with_name("linkjuice-demo-report.html")
    assert report.stat().st_size > 10_000 and "Crumb &amp; Co." in report.read_text(encoding="utf-8")
    # The commands printed after "Next:", one a line, run as printed (explain with a real URL).
    lines = done.stdout.splitlines()
    proposed = [shlex.split(line) for line in lines[lines.index("Next:") + 1:] if line.startswith("  linkjuice ")]
    assert [c[1] for c in proposed] == ["audit", "suggest", "explain"]
    for command in proposed:
        args = [start if a == "URL" else a for a in command[1:]]
        ran = subprocess.run([*RUN, *args], capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, (args, ran.stderr)


def test_demo_into_a_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run([*RUN, "demo", "--db", str(tmp_path / "gone" / "demo.duckdb"), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1  # a StoreError, as for every command's store in a missing folder
    assert "Traceback" not in done.stderr and "does not exist" in done.stderr
    assert "Serving" not in done.stdout  # refused before the site is served
    assert not (tmp_path / "gone").exists()


def test_demo_replaces_its_own_store_but_never_another_file(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    for _ in range(2):  # the second run replaces the first's store
        done = subprocess.run([*RUN, "demo", "--db", str(db), "-q"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM pages").fetchone()[0] >= 50  # one crawl's pages, not two
        assert con.execute("SELECT count(DISTINCT url) = count(*) FROM pages").fetchone()[0]
    # A real crawl's store (or any other file) given by mistake is left as it is.
    site = tmp_path / "site.duckdb"
    with duckdb.connect(str(site)) as con:
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT INTO meta VALUES ('start_url', 'https://example.com/')")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for target in (site, notes):
        before = target.read_bytes()
        done = subprocess.run([*RUN, "demo", "--db", str(target), "-q"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "is not an earlier demo's store" in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert target.read_bytes() == before


def test_a_demo_killed_mid_crawl_leaves_a_store_the_next_demo_replaces(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen([*RUN, "demo", "--db", str(db), "-q"], stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Serving the sample site")  # the store is made by now
        proc.kill()
    assert db.exists()
    done = subprocess.run([*RUN, "demo", "--db", str(db), "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

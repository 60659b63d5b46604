"""A real crawl subprocess killed with SIGKILL at random moments, resumed each time, must end with
the same store as one uninterrupted crawl: same pages, same links, no duplicates."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from linkjuice.store import Store

from .sitekit import Route, serve

N_PAGES = 240


def _routes() -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for i in range(N_PAGES):
        links = " ".join(f"<a href='/p{(i * 7 + k) % N_PAGES}/'>page {(i * 7 + k) % N_PAGES}</a>" for k in range(1, 6))
        routes[f"/p{i}/"] = Route(body=f"<html><title>P{i}</title><nav><a href='/'>Home</a></nav><main>{links}"
                                       f"<a href='/missing{i % 5}/'>x</a></main></html>", delay=0.004)
    routes["/"] = Route(body="<html><title>Home</title><main><a href='/p0/'>start</a> <a href='/old/'>old</a></main></html>")
    routes["/old/"] = Route(status=301, headers={"Location": "/p1/"})
    return routes


def _crawl_cmd(db: Path, url: str | None) -> list[str]:
    args = [sys.executable, "-m", "linkjuice", "crawl"]
    args += [url, "--db", str(db)] if url else ["--resume", "--db", str(db)]
    return args + ["--quiet", "--concurrency", "4", "--no-sitemaps"]


def _snapshot(db: Path) -> tuple[list, list, int]:
    with Store(db, read_only=True) as store:
        pages = store.con.execute("SELECT url, status, redirect_to FROM pages ORDER BY url").fetchall()
        links = store.con.execute(
            "SELECT source_url, target_url, anchor, link_order FROM links ORDER BY ALL").fetchall()
        dup = store.con.execute(
            "SELECT count(*) FROM (SELECT source_url, link_order FROM links GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
        dup += store.con.execute("SELECT count(*) - count(DISTINCT url) FROM pages").fetchone()[0]
    return pages, links, dup


@pytest.mark.slow
def test_sigkill_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with serve(_routes()) as site:
        reference = tmp_path / "reference.duckdb"
        subprocess.run(_crawl_cmd(reference, site.url("/")), check=True, env=env, timeout=120)
        ref_pages, ref_links, ref_dup = _snapshot(reference)
        assert len(ref_pages) == N_PAGES + 1 + 1 + 5 and ref_dup == 0

        db = tmp_path / "killed.duckdb"
        rng = random.Random(1234)
        kills = 0
        first = True
        for _ in range(40):
            proc = subprocess.Popen(_crawl_cmd(db, site.url("/") if first else None), env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # Kill after a random amount of real progress (requests seen by the server), plus jitter,
            # so that kills land at every stage: start-up, mid-batch, during a store write.
            target = len(site.requests) + rng.randint(3, 70)
            deadline = time.monotonic() + 60
            while proc.poll() is None and len(site.requests) < target and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                if first and not db.exists():
                    continue  # killed before the store was created: start again
                first = False
            else:
                assert proc.returncode == 0, proc.stderr.read().decode()
                first = False
                break
        else:
            pytest.fail("the crawl never finished")
        assert kills >= 3, "the crawl finished too quickly to be interrupted; slow the site down"
        pages, links, dup = _snapshot(db)
    assert dup == 0
    assert pages == ref_pages
    assert links == ref_links

"""`linkjuice serve`: the API in-process (paging, filters, CSV, hostile input, read-only), then the
real server on 127.0.0.1 in headless Chromium."""

from __future__ import annotations

import csv
import hashlib
import io
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from linkjuice.cli import app as cli_app
from linkjuice.dashboard import bind, create_app, is_loopback
from linkjuice.errors import MissingExtraError, UsageError
from linkjuice.store import Store

from .browserkit import browser, needs_chromium, open_page, pixel_spread
from .reportkit import XSS_TITLE, demo_store

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return demo_store(tmp_path_factory.mktemp("dashboard") / "demo.duckdb")


@pytest.fixture(scope="module")
def client(demo: tuple[Path, str]) -> TestClient:
    return TestClient(create_app(demo[0]), base_url=BASE)


def _sql(db: Path, query: str, params: list | None = None):  # type: ignore[no-untyped-def]
    with Store(db, read_only=True) as store:
        return store.sql(query, params or [])


def test_page_is_the_report_without_rows(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert 'data-mode="live"' in r.text and XSS_TITLE not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"


def test_paging_matches_sql(client: TestClient, demo: tuple[Path, str]) -> None:
    expected = list(_sql(demo[0], "SELECT p.url FROM pages p LEFT JOIN scores s USING (url) "
                                  "ORDER BY s.juice DESC NULLS LAST, p.url")["url"])
    seen: list[str] = []
    for offset in range(0, len(expected), 25):
        body = client.get("/api/table/pages", params={"offset": offset, "limit": 25}).json()
        assert body["total"] == len(expected)
        seen += [row[0] for row in body["rows"]]
    assert seen == expected


def test_filters_search_and_sort(client: TestClient, demo: tuple[Path, str]) -> None:
    body = client.get("/api/table/findings", params={"f.severity": "error", "sort": "juice_at_stake",
                                                     "order": "asc"}).json()
    n_errors = int(_sql(demo[0], "SELECT count(*) AS n FROM findings WHERE severity = 'error'")["n"].iloc[0])
    sev, stake = body["columns"].index("severity"), body["columns"].index("juice_at_stake")
    assert body["total"] == len(body["rows"]) == n_errors > 0
    assert {r[sev] for r in body["rows"]} == {"error"}
    assert [r[stake] for r in body["rows"]] == sorted(r[stake] for r in body["rows"])
    found = client.get("/api/table/pages", params={"q": "BROWNIES"}).json()
    assert found["total"] == 2 and XSS_TITLE in {r[1] for r in found["rows"]}
    items = client.get("/api/table/finding_items", params={"f.finding_id": 3}).json()
    assert items["total"] == int(_sql(demo[0], "SELECT count(*) AS n FROM finding_items WHERE finding_id = 3")["n"].iloc[0])


@pytest.mark.parametrize("params", [
    {"sort": "juice; DROP TABLE pages"}, {"sort": "nope"}, {"order": "sideways"}, {"limit": "501"},
    {"limit": "0"}, {"offset": "-1"}, {"limit": "ten"}, {"f.no_such_column": "x"},
])
def test_bad_parameters_are_400(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/api/table/pages", params=params)
    assert r.status_code == 400 and "error" in r.json()


def test_hostile_values_are_only_data(client: TestClient, demo: tuple[Path, str]) -> None:
    for params in ({"q": "' OR 1=1 --"}, {"f.url": "x' OR '1'='1"}, {"f.url": "x\") OR (1=1"}):
        body = client.get("/api/table/pages", params=params).json()
        assert body["total"] == 0, params
    assert int(_sql(demo[0], "SELECT count(*) AS n FROM pages")["n"].iloc[0]) == 61


def test_only_its_own_routes(client: TestClient) -> None:
    for path in ("/etc/passwd", "/../../etc/passwd", "/assets/report.js", "/report.js", "/static/x",
                 "/api/table/..%2F..%2Fetc%2Fpasswd", "/api/table/meta", "/api/table/pages/../meta"):
        r = client.get(path)
        assert r.status_code in (400, 404), path
        assert "root:" not in r.text
    assert client.post("/api/table/pages").status_code == 405


def test_host_header_must_be_loopback(client: TestClient) -> None:
    assert client.get("/", headers={"host": "evil.example:8765"}).status_code == 421
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200
    assert client.get("/", headers={"host": "[::1]:8765"}).status_code == 200
    assert is_loopback("127.0.0.2") and not is_loopback("0.0.0.0") and not is_loopback("example.com")


def test_csv_of_a_whole_filtered_table(client: TestClient, demo: tuple[Path, str]) -> None:
    r = client.get("/api/table/link_flows.csv", params={"f.reason": "passed"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="link_flows.csv"' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    n = int(_sql(demo[0], "SELECT count(*) AS n FROM link_flows WHERE reason = 'passed'")["n"].iloc[0])
    assert rows[0][:2] == ["source_url", "target_url"] and len(rows) == n + 1
    pages = list(csv.reader(io.StringIO(client.get("/api/table/pages.csv", params={"q": "brownies"}).text)))
    assert XSS_TITLE in {row[1] for row in pages[1:]}


def test_csv_cells_cannot_be_formulas(tmp_path: Path, demo: tuple[Path, str]) -> None:
    db = tmp_path / "copy.duckdb"
    db.write_bytes(demo[0].read_bytes())
    with Store(db) as store:
        store.con.execute("UPDATE pages SET title = '=HYPERLINK(\"http://evil\")' WHERE url LIKE '%/about/'")
    client = TestClient(create_app(db), base_url=BASE)
    text = client.get("/api/table/pages.csv", params={"q": "/about/"}).text
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_page_drilldown(client: TestClient, demo: tuple[Path, str]) -> None:
    url = demo[1] + "/blog/"
    body = client.get("/api/page", params={"url": url, "limit": 3}).json()
    assert body["page"]["url"] == url and len(body["sources"]) == 3
    top = _sql(demo[0], "SELECT source_url FROM link_flows WHERE resolved_url = ? ORDER BY juice DESC LIMIT 1", [url])
    assert body["sources"][0]["source_url"] == top["source_url"].iloc[0]
    assert client.get("/api/page", params={"url": demo[1] + "/nope/"}).status_code == 404
    assert client.get("/api/page").status_code == 400


def test_store_is_never_written(tmp_path: Path, demo: tuple[Path, str]) -> None:
    db = tmp_path / "ro.duckdb"
    db.write_bytes(demo[0].read_bytes())
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    client = TestClient(create_app(db), base_url=BASE)
    for path in ("/", "/api/tables", "/api/table/pages", "/api/table/pages.csv", "/api/page?url=x"):
        client.get(path)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with Store(db) as store:  # and it holds no lock between requests: a writer can open it
        assert store.counts()["pages"] == 61


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, demo: tuple[Path, str]) -> None:
    monkeypatch.setitem(sys.modules, "starlette", None)  # import starlette now raises ImportError
    with pytest.raises(MissingExtraError, match=r"linkjuice\[dashboard\]"):
        create_app(demo[0])


def test_bind_errors_are_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(UsageError, match="cannot listen on 127.0.0.1"):
            bind("127.0.0.1", taken.getsockname()[1])


def test_cli_serve_warns_off_loopback(monkeypatch: pytest.MonkeyPatch, demo: tuple[Path, str]) -> None:
    calls: list[tuple[str, int]] = []

    def fake(db: Path, *, host: str, port: int, on_ready: object) -> None:
        calls.append((host, port))

    monkeypatch.setattr("linkjuice.dashboard.serve", fake)
    runner = CliRunner()
    quiet = runner.invoke(cli_app, ["serve", "--db", str(demo[0]), "--port", "0"])
    loud = runner.invoke(cli_app, ["serve", "--db", str(demo[0]), "--host", "0.0.0.0", "--port", "9"])
    assert calls == [("127.0.0.1", 0), ("0.0.0.0", 9)]
    assert "warning" not in quiet.output and "reachable from other machines" in loud.output


# -- the real server in a real browser --------------------------------------------------------
@pytest.fixture()
def server(demo: tuple[Path, str]) -> Iterator[str]:
    import uvicorn

    sock = bind("127.0.0.1", 0)
    instance = uvicorn.Server(uvicorn.Config(create_app(demo[0]), log_level="warning"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not instance.started:
        thread.join(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        instance.should_exit = True
        thread.join(5)
        sock.close()


@needs_chromium
def test_dashboard_in_chromium(server: str) -> None:
    with browser() as instance:
        w = open_page(instance, server)
        page = w.page
        rows = page.locator("[data-table=pages] tbody tr")
        rows.first.wait_for()
        page.wait_for_timeout(400)
        assert rows.count() == 50
        stddev, drawn = pixel_spread(page.locator("#graph-canvas").screenshot())
        assert stddev > 10 and drawn > 0.01, (stddev, drawn)

        # Server-side filtering: the request carries the filter and the table narrows.
        with page.expect_response(lambda r: "/api/table/pages?" in r.url and "q=brownies" in r.url):
            page.fill("[data-filter=pages]", "brownies")
        page.wait_for_timeout(200)
        assert rows.count() == 2
        cell = page.locator("[data-table=pages] tbody td", has_text="Best Brownies")
        assert cell.evaluate("td => td.textContent") == XSS_TITLE and cell.evaluate("td => td.children.length") == 0

        # Paging goes to the server.
        page.fill("[data-filter=pages]", "")
        with page.expect_response(lambda r: "offset=50" in r.url):
            page.locator("[data-table=pages] button", has_text="Next").click()
        page.wait_for_timeout(200)
        assert rows.count() == 11

        # The drill-down comes from /api/page.
        with page.expect_response(lambda r: "q=%2Fblog%2F" in r.url):
            page.fill("[data-filter=pages]", "/blog/")
        page.wait_for_timeout(200)
        with page.expect_response(lambda r: "/api/page?" in r.url):
            rows.first.click()
        page.locator("#drill-in tbody tr, #drill-out tbody tr").first.wait_for()

        # CSV download from the server.
        page.keyboard.press("Escape")
        page.fill("[data-filter=pages]", "brownies")
        page.wait_for_timeout(400)
        with page.expect_download() as download:
            page.locator("[data-table=pages] button", has_text="Download CSV").click()
        lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
        assert len(lines) == 3

        origin = server.rstrip("/")
        assert all(r.startswith(origin + "/") for r in w.requests), w.requests
        assert w.console_errors() == [] and w.dialogs == []

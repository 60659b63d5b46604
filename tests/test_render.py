"""`crawl --render` end to end: a site on 127.0.0.1 whose menu and some content links are built by
JavaScript, crawled for real through Debian's Chromium; and the audit's js-only-links finding,
checked against a crawl of the same site without rendering (which is what "rendering fails" means).

Skipped, saying why, only where /usr/bin/chromium is missing; CI installs it (.ci/run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from linkjuice.config import CrawlConfig, ModelConfig
from linkjuice.crawl import render
from linkjuice.errors import CrawlError, MissingExtraError
from linkjuice.models import ExtractedLink, FoundIn, LinkPosition
from linkjuice.pipeline import crawl_site, run_audit
from linkjuice.store import Store

from .browserkit import CHROMIUM, needs_chromium
from .sitekit import Route, page, serve

# Relevance and anchor factors off: a link's weight is its position factor, as in test_audit.
MODEL = ModelConfig(relevance_weight=0.0, use_anchor=False)
CRAWL = {"concurrency": 4, "timeout": 10.0, "retries": 0, "backoff": 0.01}

_APP_JS = """
document.getElementById('menu').innerHTML =
  "<a href='/products/'>Products</a> <a href='/blog/'>Blog</a>";
document.title = 'Home, rendered';
const article = document.createElement('a');
article.href = '/js-article/';
article.textContent = 'A story told by JavaScript';
document.querySelector('main p').append(article);
document.querySelector("a[href='/removed/']").remove();
"""
_DELAYED = """<script>
setTimeout(() => {
  const late = document.createElement('a');
  late.href = '/late/'; late.textContent = 'Arrives late';
  document.querySelector('main').append(late);
}, 300);
</script>"""
_THROWS = """<script>
document.querySelector('main').insertAdjacentHTML('beforeend', "<a href='/before-error/'>Before</a>");
null.boom();
document.querySelector('main').insertAdjacentHTML('beforeend', "<a href='/after-error/'>After</a>");
</script>"""


def _leaf(title: str) -> Route:
    return page(title, f"<p>{title}: back to the <a href='/'>home page</a>.</p>")


def _sitemap(origin: list[str]) -> Route:
    paths = ["/", "/about/", "/delayed/", "/throws/", "/removed/", "/products/", "/blog/", "/js-article/",
             "/late/", "/before-error/"]
    body = "".join(f"<url><loc>{origin[0]}{p}</loc></url>" for p in paths)
    return Route(body=f"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{body}</urlset>",
                 content_type="application/xml")


def _routes(origin: list[str], *, sitemap: bool = False) -> dict[str, Route]:
    routes: dict[str, Route] = {
        "/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type="text/plain"),
        "/": page("Home", "<p>Read <a href='/about/'>about us</a>, a <a href='/delayed/'>slow page</a>, "
                          "a <a href='/throws/'>broken script</a> and <a href='/removed/'>an old link</a>. "
                          "<img src='/logo.png' alt=''></p>",
                  head="<script src='/app.js' defer></script>"
                       "<style>@font-face { font-family: X; src: url(/font.woff2); } body { font-family: X; }</style>",
                  nav="<span id='menu'></span>"),
        "/app.js": Route(body=_APP_JS, content_type="application/javascript"),
        "/logo.png": Route(body=b"\x89PNG\r\n\x1a\n", content_type="image/png"),
        "/font.woff2": Route(body=b"wOF2", content_type="font/woff2"),
        "/about/": _leaf("About"),
        "/delayed/": page("Delayed", "<p>Links come later.</p>" + _DELAYED),
        "/throws/": page("Throws", "<p>A script that fails <a href='/about/'>half way</a>.</p>" + _THROWS),
    }
    for path in ("/removed/", "/products/", "/blog/", "/js-article/", "/late/", "/before-error/", "/after-error/"):
        routes[path] = _leaf(path.strip("/").replace("-", " ").title())
    if sitemap:
        routes["/sitemap.xml"] = lambda _: _sitemap(origin)
    return routes


RAW_ONLY = {("/", "/removed/")}
RENDERED_ONLY = {("/", "/products/"), ("/", "/blog/"), ("/", "/js-article/"), ("/delayed/", "/late/"),
                 ("/throws/", "/before-error/")}
BOTH = ({("/", "/"), ("/", "/about/"), ("/", "/delayed/"), ("/", "/throws/"), ("/throws/", "/about/")}
        | {(p, "/") for p in ("/about/", "/delayed/", "/throws/", "/removed/", "/products/", "/blog/", "/js-article/",
                              "/late/", "/before-error/")})


def _links(db: Path, origin: str) -> dict[str, set[tuple[str, str]]]:
    with Store(db, read_only=True) as store:
        rows = store.sql("SELECT source_url, target_url, found_in FROM links")
    out: dict[str, set[tuple[str, str]]] = {"raw": set(), "rendered": set(), "both": set()}
    for source, target, where in rows.itertuples(index=False):
        out[where].add((source.removeprefix(origin), target.removeprefix(origin)))
    return out


@pytest.fixture(scope="module")
def rendered_site(tmp_path_factory: pytest.TempPathFactory):
    """The site crawled with --render and, for comparison, without (sitemap on, so both crawls
    know the same pages)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: apt-get install -y chromium (CI installs it)")
    holder: list[str] = []
    with serve(_routes(holder, sitemap=True)) as server:
        holder.append(server.origin)
        folder = tmp_path_factory.mktemp("render")
        rendered_db, raw_db = folder / "rendered.duckdb", folder / "raw.duckdb"
        crawl_site(CrawlConfig(start_url=server.url("/"), render=True, render_pages=2, **CRAWL), rendered_db,
                   model=MODEL)
        crawl_site(CrawlConfig(start_url=server.url("/"), **CRAWL), raw_db, model=MODEL)
        yield server, rendered_db, raw_db


@needs_chromium
def test_links_say_where_they_were_found(tmp_path: Path) -> None:
    holder: list[str] = []
    with serve(_routes(holder)) as server:
        holder.append(server.origin)
        db = tmp_path / "site.duckdb"
        summary = crawl_site(CrawlConfig(start_url=server.url("/"), render=True, render_pages=3, **CRAWL), db,
                             model=MODEL)
        found = _links(db, server.origin)
        assert found["raw"] == RAW_ONLY
        assert found["rendered"] == RENDERED_ONLY
        assert found["both"] == BOTH
        assert ("/throws/", "/after-error/") not in found["rendered"]  # the script died before it
        # Pages reached only through rendered links were crawled; the page after the error was not.
        with Store(db, read_only=True) as store:
            crawled = {u.removeprefix(server.origin) for u in store.sql("SELECT url FROM pages")["url"]}
            home = store.sql("SELECT title, error FROM pages WHERE url = ?", [server.url("/")]).iloc[0]
            positions = dict(store.con.execute(
                "SELECT target_url, dom_position FROM links WHERE source_url = ?", [server.url("/")]).fetchall())
        assert {"/products/", "/blog/", "/js-article/", "/late/", "/before-error/"} <= crawled
        assert "/after-error/" not in crawled
        assert summary.pages == len(crawled)
        # Metadata is the rendered DOM's; positions are read from the rendered DOM by the same rules.
        assert home["title"] == "Home, rendered" and home["error"] is None
        assert positions[server.url("/products/")] == "nav"
        assert positions[server.url("/js-article/")] == "content"
        assert positions[server.url("/")] == "header"
        # Images and fonts were refused; scripts loaded; each page was requested once (by the fetcher).
        assert "/logo.png" not in server.requests and "/font.woff2" not in server.requests
        assert "/app.js" in server.requests
        assert server.requests.count("/") == 1


def test_a_crawl_without_render_writes_raw(tmp_path: Path) -> None:
    holder: list[str] = []
    with serve(_routes(holder)) as server:
        holder.append(server.origin)
        db = tmp_path / "site.duckdb"
        crawl_site(CrawlConfig(start_url=server.url("/"), **CRAWL), db, model=MODEL)
        found = _links(db, server.origin)
    assert found["rendered"] == found["both"] == set()
    assert found["raw"] == {("/", "/"), ("/", "/about/"), ("/", "/delayed/"), ("/", "/throws/"), ("/", "/removed/"),
                            ("/about/", "/"), ("/delayed/", "/"), ("/throws/", "/"), ("/throws/", "/about/"),
                            ("/removed/", "/")}


@needs_chromium
def test_js_only_finding_with_the_juice_that_depends_on_rendering(rendered_site) -> None:
    server, rendered_db, raw_db = rendered_site
    o = server.origin
    result = run_audit(rendered_db)
    js = result.findings[result.findings["code"] == "js-only-links"].set_index("url")
    # Every page that receives a rendered-only link, and only those.
    assert set(js.index) == {o + p for _, p in RENDERED_ONLY}
    # "If rendering fails" is the site as a crawler that does not render sees it: the same pages
    # (the sitemap lists them all) without the rendered-only links. Its juice, computed by its own
    # crawl and score, is the reference for what each page loses.
    with Store(rendered_db, read_only=True) as store:
        with_js = dict(store.con.execute("SELECT url, juice FROM scores").fetchall())
    with Store(raw_db, read_only=True) as store:
        without_js = dict(store.con.execute("SELECT url, juice FROM scores").fetchall())
    assert set(with_js) == set(without_js)
    for url, row in js.iterrows():
        lost = with_js[url] - without_js[url]
        assert lost > 0
        assert row["juice_at_stake"] == pytest.approx(lost, rel=1e-6)
        assert f"loses {100 * lost / with_js[url]:.0f}% of its juice" in row["explanation"]
        assert "no link in the raw HTML reaches the page" in row["explanation"]
        assert row["severity"] == "warning"
    # Items: one row per rendered-only link, under the page it reaches.
    items = result.items[result.items["code"] == "js-only-links"]
    assert {(s.removeprefix(o), t.removeprefix(o)) for s, t in zip(items["source_url"], items["target_url"])} \
        == RENDERED_ONLY
    assert (items["detail"] == "only in the rendered DOM").all()
    total_lost = sum(with_js[u] - without_js[u] for u in js.index)
    assert result.summary["js_juice_at_stake"] == pytest.approx(total_lost, rel=1e-6)
    assert result.summary["js_juice_share"] == pytest.approx(total_lost / sum(with_js[u] for u in js.index), rel=1e-6)
    assert result.summary["js_only_pages"] == result.summary["js_dependent_pages"] == 5
    # A crawl without rendering has nothing to report under this code.
    assert "js-only-links" not in set(run_audit(raw_db).findings["code"])


@needs_chromium
def test_a_link_also_in_the_raw_html_is_not_js_dependent(tmp_path: Path) -> None:
    """A pair with one rendered-only link and one raw link keeps its juice without JavaScript."""
    routes = {
        "/": page("Home", "<p><a href='/a/'>Alpha</a></p><script>document.querySelector('main').insertAdjacentHTML("
                          "'beforeend', \"<a href='/a/'>Alpha again</a><a href='/b/'>Beta</a>\")</script>"),
        "/a/": page("A", "<p>a</p>"), "/b/": page("B", "<p>b</p>"),
    }
    with serve(routes) as server:
        db = tmp_path / "site.duckdb"
        crawl_site(CrawlConfig(start_url=server.url("/"), render=True, **CRAWL), db, model=MODEL)
        result = run_audit(db)
        found = _links(db, server.origin)
    assert found["rendered"] == {("/", "/a/"), ("/", "/b/")} and ("/", "/a/") in found["both"]
    js = result.findings[result.findings["code"] == "js-only-links"]
    assert list(js["url"]) == [server.url("/b/")]


@needs_chromium
def test_a_render_that_never_settles_keeps_the_raw_links(tmp_path: Path) -> None:
    routes = {
        "/": page("Home", "<p><a href='/spin/'>Spin</a> <a href='/calm/'>Calm</a></p>"),
        "/spin/": page("Spin", "<p><a href='/'>Home</a></p><script>while (true) {}</script>"),
        "/calm/": page("Calm", "<p>calm</p><script>document.body.insertAdjacentHTML('beforeend', "
                               "\"<a href='/js/'>JS</a>\")</script>"),
        "/js/": page("JS", "<p>js</p>"),
    }
    with serve(routes) as server:
        db = tmp_path / "site.duckdb"
        crawl_site(CrawlConfig(start_url=server.url("/"), render=True, render_pages=1,
                               **{**CRAWL, "timeout": 2.0}), db, model=MODEL)
        with Store(db, read_only=True) as store:
            spin = store.sql("SELECT status, error FROM pages WHERE url = ?", [server.url("/spin/")]).iloc[0]
        found = _links(db, server.origin)
    assert spin["status"] == 200 and spin["error"] == "render failed: timeout after 2s"
    assert ("/spin/", "/") in found["raw"] and ("/spin/", "/") not in found["both"]
    # The stuck tab was replaced: the pages rendered after it still render.
    assert ("/calm/", "/js/") in found["rendered"]


@needs_chromium
def test_render_wait_reads_the_dom_after_a_fixed_delay(tmp_path: Path) -> None:
    # The link arrives 1.5 s after the load: with the 300 ms of _DELAYED, a render without a wait
    # on a loaded machine sometimes read the DOM after the link had come.
    late_script = _DELAYED.replace("}, 300);", "}, 1500);")
    assert late_script != _DELAYED
    routes = {"/": page("Home", "<p>home</p>" + late_script), "/late/": page("Late", "<p>late</p>")}
    with serve(routes) as server:
        short, long = tmp_path / "short.duckdb", tmp_path / "long.duckdb"
        crawl_site(CrawlConfig(start_url=server.url("/"), render=True, render_wait_ms=0, **CRAWL), short, score=False)
        crawl_site(CrawlConfig(start_url=server.url("/"), render=True, render_wait_ms=3000, **CRAWL), long,
                   score=False)
        assert ("/", "/late/") not in _links(short, server.origin)["rendered"]
        assert ("/", "/late/") in _links(long, server.origin)["rendered"]


def test_merge_links_pairs_by_url_and_anchor_then_url() -> None:
    def link(url: str, anchor: str, order: int) -> ExtractedLink:
        return ExtractedLink(url=url, anchor=anchor, rel="", nofollow=False, position=LinkPosition.CONTENT,
                             link_order=order)

    raw = [link("u:a", "A", 0), link("u:b", "B", 1), link("u:a", "A", 2), link("u:gone", "G", 3)]
    rendered = [link("u:menu", "M", 0), link("u:b", "B, renamed", 1), link("u:a", "A", 2), link("u:a", "A", 3),
                link("u:a", "A", 4)]
    links, found = render.merge_links(raw, rendered)
    assert [(x.url, x.anchor, x.link_order, str(f)) for x, f in zip(links, found)] == [
        ("u:menu", "M", 0, "rendered"), ("u:b", "B, renamed", 1, "both"), ("u:a", "A", 2, "both"),
        ("u:a", "A", 3, "both"), ("u:a", "A", 4, "rendered"), ("u:gone", "G", 5, "raw")]
    assert found[0] is FoundIn.RENDERED


def test_missing_extra_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "playwright.async_api", None)  # import now raises ImportError
    db = tmp_path / "site.duckdb"
    with pytest.raises(MissingExtraError) as caught:
        crawl_site(CrawlConfig(start_url="http://127.0.0.1:9/", render=True), db)
    assert str(caught.value) == "crawl --render needs the 'render' extra: pip install 'linkjuice[render]'"
    assert not db.exists()
    # Through the real CLI, in a Python where Playwright cannot be imported: one line, exit code 1.
    script = ("import sys; sys.modules['playwright.async_api'] = None; from linkjuice.cli import main; "
              f"sys.argv = ['linkjuice', 'crawl', 'http://127.0.0.1:9/', '--render', '--db', {str(db)!r}]; main()")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: crawl --render needs the 'render' extra: pip install 'linkjuice[render]'"
    assert not db.exists()


def test_missing_browser_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "site.duckdb"
    with pytest.raises(CrawlError, match=r"no executable at /nowhere/chromium \(--browser\)"):
        crawl_site(CrawlConfig(start_url="http://127.0.0.1:9/", render=True, browser_path="/nowhere/chromium"), db)
    monkeypatch.setenv(render.BROWSER_ENV, str(tmp_path / "not-a-browser"))
    with pytest.raises(CrawlError, match=r"\(LINKJUICE_CHROMIUM\)"):
        render.find_browser()
    assert not db.exists()
    # Through the real CLI: one line, exit code 1.
    proc = subprocess.run([sys.executable, "-m", "linkjuice", "crawl", "http://127.0.0.1:9/", "--render",
                           "--browser", "/nowhere/chromium", "--db", str(db)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "crawl --render needs Chromium" in proc.stderr


def test_render_options_are_validated() -> None:
    from linkjuice.errors import UsageError

    with pytest.raises(UsageError, match="--render-pages"):
        CrawlConfig(start_url="http://127.0.0.1/", render=True, render_pages=0)
    with pytest.raises(UsageError, match="--render-wait"):
        CrawlConfig(start_url="http://127.0.0.1/", render=True, render_wait_ms=-1)


@needs_chromium
def test_page_scripts_cannot_reach_other_internal_hosts(tmp_path: Path) -> None:
    """The site is on 127.0.0.1; its script asks localhost (another host name for this machine, as
    a hostile page would ask a cloud metadata address), and the server never sees the request.
    Recent Chromium refuses it by itself too (Local Network Access); linkjuice's own rule, for
    browsers without that, is checked on its own below."""
    port: list[int] = []

    def home(_: str) -> Route:
        return page("Home", "<p><a href='/a/'>A</a></p><script>fetch('http://localhost:" + str(port[0]) + "/secret')"
                            ".then(() => document.body.insertAdjacentHTML('beforeend', \"<a href='/leaked/'>x</a>\"))"
                            "</script>")

    with serve({"/": home, "/a/": page("A", "<p>a</p>"), "/secret": page("Secret", "<p>s</p>")}) as server:
        port.append(int(server.origin.rsplit(":", 1)[1]))
        db = tmp_path / "site.duckdb"
        crawl_site(CrawlConfig(start_url=server.url("/"), render=True, **CRAWL), db, score=False)
        assert "/secret" not in server.requests
        assert ("/", "/leaked/") not in _links(db, server.origin)["rendered"]


def test_internal_addresses_are_refused_unless_they_are_the_site() -> None:
    site = "http://127.0.0.1:8000/page"
    assert not render._internal_elsewhere("http://127.0.0.1:8000/app.js", site)
    assert not render._internal_elsewhere("https://cdn.example.com/app.js", site)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://localhost:9200/", "http://10.0.0.5/",
                "http://[::1]/", "http://192.168.1.1/admin"):
        assert render._internal_elsewhere(url, "https://example.com/")

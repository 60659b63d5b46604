"""Rendering pages in headless Chromium (`crawl --render`), and what rendering changes.

Search engines index the DOM a browser builds, not only the HTML a server sends; a site whose menu
is built by JavaScript has one link graph in its raw HTML and another after rendering. With
`--render` each 200 HTML page is fetched as usual (status, redirects and headers stay exact), then
loaded in Chromium from that same response, and its links are read from the serialised DOM by the
same extractor (so link positions are decided the same way). Every link records where it was found
(`models.FoundIn`): the raw HTML, the rendered DOM, or both.

How a page is rendered:

* The browser is Debian's `chromium` (or `--browser PATH` / `$LINKJUICE_CHROMIUM`), driven by
  Playwright's async API with `executable_path`; Playwright's own browser downloads are never used.
* The main document is answered from the crawler's fetch (no second request for it); scripts,
  styles and XHR load from the site; images, media and fonts are refused; iframes, pop-ups and
  script-driven navigations away from the page are refused, so the DOM read is the page's own.
* The page settles when the network is idle (no request for 500 ms) or, with `render_wait_ms`, that
  long after the load event; the whole render is bounded by the crawl's per-request timeout.
* A pool of browser pages (`render_pages`), each in its own browser context with cookies cleared
  after every page, renders that many pages at once; a page whose tab crashes gets a fresh tab.

A failed render (timeout, crash) is data, like a failed fetch: the page keeps its raw links and its
`error` says why.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from ..config import CrawlConfig
from ..errors import CrawlError, MissingExtraError
from ..models import ExtractedLink, ExtractedPage, FetchResult, FoundIn, RenderedDom
from .extract import extract_page
from .fetch import Fetcher, LocalFetcher

__all__ = [
    "BLOCKED_RESOURCE_TYPES",
    "BROWSER_ENV",
    "CHROMIUM_ARGS",
    "DEFAULT_BROWSER",
    "Renderer",
    "RenderingFetcher",
    "find_browser",
    "merge_links",
    "require_render",
    "start_rendering",
    "with_rendering",
]

DEFAULT_BROWSER = "/usr/bin/chromium"
BROWSER_ENV = "LINKJUICE_CHROMIUM"
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
)
# Resource types (Playwright's names) a page is not allowed to load: they never add links.
BLOCKED_RESOURCE_TYPES = frozenset({"image", "media", "font"})
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_MAX_ERROR_CHARS = 200
# Resolves at the load event (at once if it has fired).
_LOADED = ("() => document.readyState === 'complete' || "
           "new Promise(done => addEventListener('load', () => done(true), {once: true}))")
_IDLE_SECONDS = 0.5  # network idle: this long without a request in flight (as Playwright's networkidle)


def find_browser(path: str | None = None) -> str:
    """The Chromium executable to drive: `path`, else $LINKJUICE_CHROMIUM, else /usr/bin/chromium.
    CrawlError when it is missing or not executable."""
    chosen = path or os.environ.get(BROWSER_ENV) or DEFAULT_BROWSER
    if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
        where = "--browser" if path else (BROWSER_ENV if os.environ.get(BROWSER_ENV) else "the default")
        raise CrawlError(f"crawl --render needs Chromium: no executable at {chosen} ({where}); "
                         f"install it (apt-get install -y chromium) or name one with --browser PATH")
    return chosen


def require_render(browser_path: str | None = None) -> str:
    """Check that rendering can work (the `render` extra and a Chromium binary) before a crawl
    starts; returns the browser path."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        raise MissingExtraError("crawl --render", "render") from None
    return find_browser(browser_path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:_MAX_ERROR_CHARS]


@dataclass(slots=True)
class _Tab:
    """One browser context with one page, and the document it is about to be given."""

    context: Any
    page: Any
    document: FetchResult | None = None  # answers the next main-frame navigation, once
    script_errors: int = 0
    broken: bool = False
    # Requests started and not yet finished or failed (objects, so that late events of the previous
    # page's requests cannot unbalance a count), and when the last one started or ended.
    in_flight: set[Any] = field(default_factory=set)
    last_activity: float = 0.0

    def request_started(self, request: Any) -> None:
        self.in_flight.add(request)
        self.last_activity = time.monotonic()

    def request_ended(self, request: Any) -> None:
        self.in_flight.discard(request)
        self.last_activity = time.monotonic()


class Renderer:
    """A pool of headless Chromium pages. `await start()`, then `await render(result)` for each
    fetched page, then `await close()`."""

    def __init__(
        self,
        *,
        browser_path: str | None = None,
        pages: int = 4,
        wait_ms: int | None = None,
        timeout: float = 20.0,
        user_agent: str | None = None,
        serve: Callable[[str], Awaitable[FetchResult]] | None = None,
    ) -> None:
        self.browser_path = require_render(browser_path)
        self.pages = pages
        self.wait_ms = wait_ms
        self.timeout = timeout
        self.user_agent = user_agent
        # Local mode: the site has no server, so the page's own requests are answered from disk.
        self._serve = serve
        self._playwright: Any = None
        self._browser: Any = None
        self._idle: asyncio.Queue[_Tab] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._failure: str | None = None  # set when the browser cannot be restarted: renders fail at once
        self._timeout_error: type[Exception] = TimeoutError
        self._playwright_error: type[Exception] = Exception

    async def start(self) -> None:
        """Launch Chromium; CrawlError when it cannot start."""
        from playwright.async_api import Error, TimeoutError as PlaywrightTimeout, async_playwright

        self._timeout_error, self._playwright_error = PlaywrightTimeout, Error
        self._playwright = await async_playwright().start()
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=self.browser_path, args=list(CHROMIUM_ARGS), timeout=60_000)
            for _ in range(self.pages):
                await self._idle.put(await self._new_tab())
        except Exception as exc:  # noqa: BLE001 - any launch failure ends the crawl with one line
            await self.close()
            raise CrawlError(f"cannot start Chromium at {self.browser_path}: {_first_line(exc)}") from None

    async def close(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        try:
            if browser is not None:
                await browser.close()
        finally:
            if playwright is not None:
                await playwright.stop()

    async def _new_tab(self) -> _Tab:
        if self._browser is None or not self._browser.is_connected():
            async with self._lock:  # the browser died: one worker relaunches it
                if self._browser is None or not self._browser.is_connected():
                    self._browser = await self._playwright.chromium.launch(
                        executable_path=self.browser_path, args=list(CHROMIUM_ARGS), timeout=60_000)
        context = await self._browser.new_context(
            user_agent=self.user_agent, accept_downloads=False, service_workers="block",
            viewport={"width": 1366, "height": 900})
        page = await context.new_page()
        tab = _Tab(context=context, page=page)
        context.on("page", lambda popup: asyncio.ensure_future(popup.close()) if popup is not tab.page else None)
        page.on("pageerror", lambda _: setattr(tab, "script_errors", tab.script_errors + 1))
        page.on("request", lambda request: tab.request_started(request))
        page.on("requestfinished", lambda request: tab.request_ended(request))
        page.on("requestfailed", lambda request: tab.request_ended(request))
        await context.route("**/*", lambda route: self._route(tab, route))
        return tab

    async def _route(self, tab: _Tab, route: Any) -> None:
        request = route.request
        try:
            if request.resource_type in BLOCKED_RESOURCE_TYPES:
                await route.abort("blockedbyclient")
                return
            if request.is_navigation_request():
                document = tab.document
                if document is None or request.frame is not tab.page.main_frame:
                    # Iframes, and scripts navigating away: a 204 answer leaves the page where it is.
                    await route.fulfill(status=204, body=b"")
                    return
                tab.document = None
                headers = {k: v for k, v in document.headers.items() if v.isascii()
                           and k not in ("content-length", "content-encoding", "transfer-encoding")}
                headers["content-type"] = document.content_type or "text/html"
                await route.fulfill(status=200, headers=headers, body=document.body)
                return
            if _internal_elsewhere(request.url, tab.page.url):
                await route.abort("blockedbyclient")
                return
            if self._serve is not None and request.method == "GET" and _same_origin(request.url, route):
                served = await self._serve(request.url)
                if served.status is None:
                    await route.abort("failed")
                else:
                    await route.fulfill(status=served.status, body=served.body,
                                        headers={"content-type": served.content_type or "application/octet-stream"})
                return
            await route.continue_()
        except self._playwright_error:
            pass  # the page went away while its request was being answered

    async def render(self, result: FetchResult) -> RenderedDom:
        """Load a fetched page in a browser page from the pool and serialise its DOM once settled."""
        tab = await self._idle.get()
        started = time.monotonic()
        try:
            if self._failure is not None:
                return RenderedDom(url=result.url, html=None, error=self._failure)
            return await self._render_in(tab, result, started)
        finally:
            if tab.broken and self._failure is None:
                asyncio.ensure_future(_quietly(tab.context.close()))
                tab = await self._replacement() or tab
            await self._idle.put(tab)

    @staticmethod
    async def _network_idle(tab: _Tab, deadline: float) -> None:
        """Until no request has been in flight for _IDLE_SECONDS (or the deadline: a page that keeps
        polling never idles, and is read as it is then)."""
        while time.monotonic() < deadline:
            if not tab.in_flight and time.monotonic() - tab.last_activity >= _IDLE_SECONDS:
                return
            await asyncio.sleep(0.05)

    async def _replacement(self) -> _Tab | None:
        """A fresh tab for a broken one; None, and every later render failing at once, when the
        browser cannot give one (three tries)."""
        why = ""
        for attempt in range(3):
            try:
                return await self._new_tab()
            except self._playwright_error as exc:
                why = _first_line(exc)
                await asyncio.sleep(0.5 * (attempt + 1))
        self._failure = f"render failed: the browser cannot open pages ({why})"[:_MAX_ERROR_CHARS]
        return None

    async def _render_in(self, tab: _Tab, result: FetchResult, started: float) -> RenderedDom:
        deadline = started + self.timeout
        tab.document, tab.script_errors, tab.last_activity = result, 0, started
        tab.in_flight.clear()
        page = tab.page

        def left_ms() -> float:
            return max(1.0, (deadline - time.monotonic()) * 1000)

        def failed(why: str) -> RenderedDom:
            return RenderedDom(url=result.url, html=None, error=f"render failed: {why}"[:_MAX_ERROR_CHARS],
                               script_errors=tab.script_errors, render_ms=(time.monotonic() - started) * 1000)

        try:
            try:
                # Playwright's own "load" and "networkidle" waits lose track of a page whose script
                # starts a navigation that is then refused, so both are watched here.
                await page.goto(result.url, wait_until="commit", timeout=left_ms())
                await asyncio.wait_for(page.evaluate(_LOADED), timeout=left_ms() / 1000)
                if self.wait_ms is None:
                    await self._network_idle(tab, deadline)
                else:
                    await asyncio.sleep(min(self.wait_ms / 1000, left_ms() / 1000))
                html = await asyncio.wait_for(page.content(), timeout=left_ms() / 1000 + 1)
                dom_url = page.url
            except (self._timeout_error, asyncio.TimeoutError):
                tab.broken = True  # a page stuck in a script may never answer again
                return failed(f"timeout after {self.timeout:g}s")
            except self._playwright_error as exc:
                tab.broken = True
                return failed(_first_line(exc))
            rendered = RenderedDom(url=dom_url if _same_document_origin(dom_url, result.url) else result.url,
                                   html=html, script_errors=tab.script_errors,
                                   render_ms=(time.monotonic() - started) * 1000)
            try:
                # Stop the page's timers and sockets, and forget its cookies, before the next page.
                await page.goto("about:blank", timeout=5000)
                await tab.context.clear_cookies()
            except (self._timeout_error, self._playwright_error):
                tab.broken = True
            return rendered
        finally:
            tab.document = None


async def _quietly(work: Awaitable[Any]) -> None:
    try:
        await work
    except Exception:  # noqa: BLE001 - closing a crashed tab may fail; nothing depends on it
        pass


def _same_origin(url: str, route: Any) -> bool:
    try:
        frame_url = route.request.frame.url
    except Exception:  # noqa: BLE001 - service-worker requests have no frame
        return False
    return _same_document_origin(url, frame_url)


def _internal_elsewhere(url: str, page_url: str) -> bool:
    """A request a page's script makes to a loopback, private or link-local address (or localhost)
    on another host than the page's own: refused, so that a crawled page cannot make the crawling
    machine reach its own network (cloud metadata, admin consoles). Names that resolve to such
    addresses are not caught: that needs the resolver."""
    host = (urlsplit(url).hostname or "").lower()
    if not host or host == (urlsplit(page_url).hostname or "").lower():
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def _same_document_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc) == (pb.scheme, pb.netloc)


def _renderable(result: FetchResult) -> bool:
    content_type = (result.content_type or "").split(";")[0].strip().lower()
    return result.status == 200 and content_type in _HTML_TYPES and not result.truncated


class RenderingFetcher:
    """A Fetcher that fetches as `inner` does, then renders each 200 HTML response
    (FetchResult.rendered); everything else passes through unchanged."""

    def __init__(self, inner: Fetcher, renderer: Renderer) -> None:
        self.inner = inner
        self.renderer = renderer

    @classmethod
    def for_config(cls, inner: Fetcher, *, browser_path: str | None, pages: int, wait_ms: int | None,
                   timeout: float, user_agent: str | None) -> RenderingFetcher:
        serve = inner.fetch if isinstance(inner, LocalFetcher) else None
        return cls(inner, Renderer(browser_path=browser_path, pages=pages, wait_ms=wait_ms, timeout=timeout,
                                   user_agent=user_agent, serve=serve))

    async def start(self) -> None:
        await self.renderer.start()

    async def fetch(self, url: str) -> FetchResult:
        result = await self.inner.fetch(url)
        if _renderable(result):
            result.rendered = await self.renderer.render(result)
        return result

    async def close(self) -> None:
        try:
            await self.renderer.close()
        finally:
            await self.inner.close()


# -- what rendering changes ---------------------------------------------------------------------
def merge_links(raw: Sequence[ExtractedLink],
                rendered: Sequence[ExtractedLink]) -> tuple[list[ExtractedLink], list[FoundIn]]:
    """One list of a page's links with where each was found.

    A rendered link is the same link as a raw one with the same URL and anchor, else the same URL
    (scripts often rewrite a menu's text); each raw link pairs at most once, in document order.
    Paired and rendered-only links come in rendered-DOM order with their rendered attributes (what a
    search engine indexes), then the links that scripts removed, in raw order; link_order is
    renumbered along that list.
    """
    free = [True] * len(raw)
    by_key: dict[tuple[str, str], deque[int]] = defaultdict(deque)
    by_url: dict[str, deque[int]] = defaultdict(deque)
    for i, link in enumerate(raw):
        by_key[(link.url, link.anchor)].append(i)
        by_url[link.url].append(i)

    def take(queue: deque[int]) -> int | None:
        while queue:
            i = queue.popleft()
            if free[i]:
                free[i] = False
                return i
        return None

    paired: list[int | None] = [take(by_key[(link.url, link.anchor)]) for link in rendered]
    paired = [p if p is not None else take(by_url[link.url]) for p, link in zip(paired, rendered)]
    links: list[ExtractedLink] = []
    found: list[FoundIn] = []
    for link, partner in zip(rendered, paired):
        links.append(replace(link, link_order=len(links)))
        found.append(FoundIn.RENDERED if partner is None else FoundIn.BOTH)
    for i, link in enumerate(raw):
        if free[i]:
            links.append(replace(link, link_order=len(links)))
            found.append(FoundIn.RAW)
    return links, found


def _robots_union(raw: str | None, rendered: str | None) -> str | None:
    """Both pages' robots directives: a noindex in the raw HTML stops Google from rendering, and
    one added by a script is obeyed, so either counts."""
    if raw and rendered and raw != rendered:
        return f"{raw}, {rendered}"
    return rendered or raw


def with_rendering(raw: ExtractedPage, rendered: RenderedDom | None, *,
                   strip_tracking: bool = False) -> tuple[ExtractedPage, list[FoundIn]]:
    """The page the crawler stores, and where each of its links was found.

    Without a render every link is raw. With one, the metadata (title, h1, canonical, text...) is
    the rendered DOM's, robots directives are the union of both, and the links are merged
    (merge_links). A failed render keeps the raw page and says why in `problem`.
    """
    if rendered is None:
        return raw, [FoundIn.RAW] * len(raw.links)
    if rendered.html is None:
        return replace(raw, problem=raw.problem or rendered.error), [FoundIn.RAW] * len(raw.links)
    dom = extract_page(rendered.html.encode("utf-8", "replace"), rendered.url, encoding="utf-8",
                       strip_tracking=strip_tracking)
    links, found = merge_links(raw.links, dom.links)
    page = replace(dom, links=links, meta_robots=_robots_union(raw.meta_robots, dom.meta_robots),
                   problem=raw.problem or dom.problem)
    return page, found


async def start_rendering(inner: Fetcher, config: CrawlConfig) -> RenderingFetcher:
    """The crawler's fetcher for `crawl --render`, with Chromium started; closes `inner` and raises
    (MissingExtraError, CrawlError) when rendering cannot work."""
    try:
        fetcher = RenderingFetcher.for_config(
            inner, browser_path=config.browser_path, pages=config.render_pages, wait_ms=config.render_wait_ms,
            timeout=config.timeout, user_agent=config.user_agent)
        await fetcher.start()
    except BaseException:
        await inner.close()
        raise
    return fetcher

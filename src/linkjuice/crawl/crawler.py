"""The crawl loop: a store-backed frontier, bounded concurrency, politeness, and resumability.

Memory stays bounded: the frontier lives in the store (read back in small batches in discovery
order) and the seen-set holds one 64-bit hash per known URL. Results are written in small atomic
batches (a page with its links and the URLs it revealed), so a killed crawl loses at most the
pages in flight, and `resume` rebuilds the seen-set from the store and carries on.

During the loop the store is used from one background thread, one job at a time (DuckDB releases
the GIL): a batch's insert and commit (an fsync, now and then a checkpoint of tens of ms) no longer
stops the event loop, which keeps fetching and handing pages to the extraction workers meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..config import CrawlConfig
from ..errors import CrawlError, UsageError
from ..models import FetchResult
from ..store import Store
from ..urls import Scope, host_of, normalize_url, port_of
from .extract import PageColumns, extract_columns, extract_page
from .fetch import Fetcher, HostThrottle, HttpFetcher, LocalFetcher
from .render import start_rendering, with_rendering
from .robots import RobotsRules
from .sitemaps import parse_sitemap
from .traps import TrapGuard
from .workers import GC_THRESHOLDS, ExtractPool, auto_workers

__all__ = ["validate_start_url", "Crawler", "CrawlProgress", "CrawlSummary", "crawl"]

_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Ways of finding a URL that the crawler-trap limits apply to (a start URL or a sitemap entry is
# named by the site owner on purpose).
_GUARDED_VIA = frozenset({"link", "redirect", "canonical"})
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_MAX_RAW_LOCATION = 2048  # an unusable Location is stored for the record, this much of it
_MAX_SITEMAPS = 1000
_FLUSH_SECONDS = 0.5
_CRAWL_MEMORY_LIMIT = "256MB"  # DuckDB's memory during a crawl (Store.memory_limit says why)
# With automatic extraction workers, they start once the crawl knows this many URLs: a small crawl
# is over before a worker interpreter would have started.
_WORKERS_AFTER_URLS = 200
# Frontier rows kept in memory past the cursor, at most (more are read back from the store).
_MAX_TAIL = 50_000
_LINK_FIELDS = ("source_url", "target_url", "anchor", "rel", "nofollow", "dom_position", "link_order",
                "is_internal", "found_in")


@dataclass(slots=True)
class CrawlProgress:
    """A snapshot for progress displays."""

    done: int
    queued: int
    errors: int
    pages_per_second: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CrawlSummary:
    pages: int
    links: int
    errors: int
    seconds: float
    stop_reason: str  # complete | max-pages | interrupted
    limits_hit: bool


def _url_hash(url: str) -> int:
    """The seen-set key of a URL: Python's 64-bit string hash, keyed per process (the seen-set lives
    in memory only and is rebuilt on resume) and cached on the string: the hot path hashes every link."""
    return hash(url)


def _storable(text: str | None) -> str | None:
    """Text that can be stored: lone surrogates (undecodable bytes in headers) become U+FFFD."""
    if text is None:
        return None
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# Signatures of formats that are never HTML (images, archives, documents, executables).
_BINARY_MAGIC = (
    b"\x89PNG", b"GIF87a", b"GIF89a", b"\xff\xd8\xff", b"%PDF-", b"PK\x03\x04", b"\x1f\x8b", b"BZh",
    b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!", b"RIFF", b"OggS", b"ID3", b"fLaC", b"\x00\x00\x01\x00",
    b"\x7fELF", b"\x00asm", b"wOFF", b"wOF2", b"\x28\xb5\x2f\xfd",
)
# Control bytes no text encoding of a web page uses (ESC is kept: ISO-2022-JP needs it).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))


def _looks_binary(body: bytes) -> bool:
    """True for an image, archive or other binary served as text/html: a known signature, or control
    bytes in more than 1 in 20 of the first 1024 bytes (a stray NUL in a real page is tolerated).
    UTF-16 pages (with a BOM) are text."""
    head = body[:1024]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    if head.startswith(_BINARY_MAGIC):
        return True
    return len(head) - len(head.translate(None, _CONTROL_BYTES)) > len(head) // 20


def _robots_flags(*values: str | None) -> tuple[bool, bool]:
    tokens: set[str] = set()
    for value in values:
        if value:
            tokens.update(t.strip().lower() for t in value.replace(";", ",").split(","))
            tokens.update(t.split(":")[-1].strip().lower() for t in value.split(","))
    noindex = bool(tokens & {"noindex", "none"})
    nofollow = bool(tokens & {"nofollow", "none"})
    return noindex, nofollow


def validate_start_url(url: str) -> str:
    """The normalised start URL, or UsageError when it is not an http(s) URL with a host."""
    start = normalize_url(url)
    if start is None:
        raise UsageError(f"not an http(s) URL: {url!r}")
    return start


class Crawler:
    """Crawls one site into a Store. Use `await crawler.run()`."""

    def __init__(
        self,
        config: CrawlConfig,
        store: Store,
        *,
        fetcher: Fetcher | None = None,
        on_progress: Callable[[CrawlProgress], None] | None = None,
    ) -> None:
        start = validate_start_url(config.start_url)
        self.config = config
        self.start_url = start
        self.store = store
        self.scope = Scope(host=host_of(start), port=port_of(start), subdomains=config.subdomains,
                           include=config.include, exclude=config.exclude)
        self._fetcher = fetcher
        self.on_progress = on_progress
        self.robots = RobotsRules.allow_all()
        self._throttles: dict[str, HostThrottle] = {}
        self._interval: float | None = None  # seconds between requests to a host (see _throttle)
        self._seen: set[int] = set()
        self._next_seq = 0
        self._cursor = -1
        self._pending: dict[str, Any] = self._empty_pending()
        self._pending_pages = 0
        self._last_flush = time.monotonic()
        self._done = 0
        self._errors = 0
        self._in_flight = 0
        self._limits_hit = False
        self._stop = False
        self._stopped = asyncio.Event()
        self._traps = TrapGuard(max_per_pattern=config.max_urls_per_pattern, max_repeats=config.max_path_repeats,
                                max_query_length=config.max_query_length,
                                known=lambda u: _url_hash(u) in self._seen)
        self._robots_failure: str | None = None  # why robots.txt reads as disallow-all, if it failed
        self._frontier_unread = True  # frontier rows may exist in the store past the cursor
        # Every frontier row past the cursor, in order, while they are few (None: read the store).
        self._tail: deque[tuple[int, str, int | None, str, str | None, int]] | None = None
        self._wake = asyncio.Event()
        self._site_of_origin: dict[str, bool] = {}
        # The start URL's origin and a slash: a link starting with it is internal (most links are),
        # known without _internal's lookups.
        origin_end = start.find("/", 8)
        self._home = (start if origin_end < 0 else start[:origin_end]) + "/"
        self._patterns = bool(config.include or config.exclude)
        self._pool: ExtractPool | None = None
        self._low_water = config.concurrency * 4  # queued rows below which the loop reads the frontier
        # The store's thread during the loop, and its job in flight (a write, or a frontier read).
        self._store_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._job: concurrent.futures.Future[Any] | None = None
        # Set when a batch failed to write (disk full): no later batch is written, since its pages
        # may have been reached through frontier rows that only the lost batch held.
        self._write_failed = False
        self._wrote_pages = False  # the first page is written at once (a crawl is resumable early)

    @staticmethod
    def _empty_pending() -> dict[str, Any]:
        # Links, many per page, are kept as columns: the store writes them without a dict per row.
        return {"pages": [], "links": {name: [] for name in _LINK_FIELDS}, "redirects": [], "frontier": [],
                "sitemap_entries": [], "trap_urls": []}

    def _has_pending(self) -> bool:
        return any(self._pending[k] for k in ("pages", "redirects", "frontier", "sitemap_entries", "trap_urls")) \
            or bool(self._pending["links"]["source_url"])

    def _internal(self, url: str) -> bool:
        """Scope.same_site for a normalised URL, memoised per origin (the text before the path)."""
        end = url.find("/", 8)
        if end < 0:
            return self.scope.same_site(url)
        origin = url[:end]
        known = self._site_of_origin.get(origin)
        if known is None:
            known = self.scope.same_site(url)
            if len(self._site_of_origin) < 100_000:
                self._site_of_origin[origin] = known
        return known

    # -- set-up --------------------------------------------------------------------------------
    def _make_fetcher(self) -> Fetcher:
        if self.config.local_root:
            return LocalFetcher(self.config.local_root, self.start_url)
        return HttpFetcher(
            user_agent=self.config.user_agent, timeout=self.config.timeout,
            max_body_bytes=self.config.max_body_bytes, retries=self.config.retries,
            backoff=self.config.backoff, concurrency=self.config.concurrency,
        )

    def _throttle(self, url: str) -> HostThrottle | None:
        """The throttle of the URL's host; None when requests are not spaced (no rate, no
        crawl-delay), the usual case, which then costs no parsing of the URL's host."""
        if self._interval is None:  # decided at the first page, once robots.txt is read
            interval = 1.0 / self.config.rate if self.config.rate else 0.0
            delay = self.robots.crawl_delay() if self.config.obey_robots else None
            self._interval = max(interval, delay or 0.0)
        if self._interval <= 0:
            return None
        host = host_of(url)
        throttle = self._throttles.get(host)
        if throttle is None:
            throttle = self._throttles[host] = HostThrottle(self._interval)
        return throttle

    def _discover(self, url: str, *, depth: int | None, via: str, source: str | None, hops: int = 0) -> None:
        key = _url_hash(url)
        if key in self._seen:
            return
        if via in _GUARDED_VIA:
            trap = self._traps.admit(url)
            if trap is not None:
                # Decided once: a refused URL joins the seen-set and is stored, never fetched.
                self._seen.add(key)
                self._limits_hit = True
                self._pending["trap_urls"].append(
                    {"url": url, "kind": trap.kind, "pattern": trap.pattern, "found_from": source})
                return
        self._seen.add(key)
        self._pending["frontier"].append(
            {"seq": self._next_seq, "url": url, "depth": depth, "found_via": via,
             "found_from": source, "redirect_hops": hops}
        )
        if self._tail is not None:
            if len(self._tail) < _MAX_TAIL:
                self._tail.append((self._next_seq, url, depth, via, source, hops))
            else:  # too many to hold: read them back from the store, from the cursor on
                self._tail = None
                self._frontier_unread = True
        self._next_seq += 1

    async def _fetch_following(self, fetcher: Fetcher, url: str, hops: int = 5) -> FetchResult:
        """Fetch robots.txt or a sitemap, following redirects (they are not pages) within the site:
        a redirect to another host or scheme is not followed, and the 3xx is the answer."""
        result = await fetcher.fetch(url)
        while hops > 0 and result.status in _REDIRECT_STATUSES and result.location:
            target = normalize_url(result.location, url)
            if target is None or not self.scope.same_site(target):
                break
            url, hops = target, hops - 1
            result = await fetcher.fetch(url)
        return result

    async def _load_robots(self, fetcher: Fetcher) -> None:
        if not self.config.obey_robots and not self.config.use_sitemaps:
            return
        robots_url = f"{urlsplit(self.start_url).scheme}://{urlsplit(self.start_url).netloc}/robots.txt"
        result = await self._fetch_following(fetcher, robots_url)
        if result.status is None and (result.error or "").startswith("connection"):
            # No connection at all for robots.txt: the site itself is unreachable.
            raise CrawlError(f"cannot reach {self.start_url}: {result.error}")
        if result.status is None or result.status == 429 or result.status >= 500:
            # A server that answers robots.txt with an error, or not in time: like Google, read it
            # as "disallow all" (RobotsRules.parse), and say why on every page it blocks.
            why = f"HTTP {result.status}" if result.status is not None else result.error
            self._robots_failure = f"blocked: robots.txt failed ({why}), read as disallow all"
        rules = RobotsRules.parse(result.body, status=result.status, user_agent=self.config.user_agent, url=robots_url)
        if self.config.obey_robots:
            self.robots = rules
        self.store.set_meta({"robots_status": result.status, "robots_error": result.error})
        if self.config.use_sitemaps:
            self._sitemap_seeds = rules.sitemaps() or []
        else:
            self._sitemap_seeds = []

    async def _load_sitemaps(self, fetcher: Fetcher) -> None:
        """Read sitemaps (robots.txt Sitemap: lines, else /sitemap.xml), indexes included."""
        if not self.config.use_sitemaps:
            return
        parts = urlsplit(self.start_url)
        queue = list(dict.fromkeys(self._sitemap_seeds or [f"{parts.scheme}://{parts.netloc}/sitemap.xml"]))
        seen: set[str] = set()
        entries: list[dict[str, Any]] = []
        while queue and len(seen) < _MAX_SITEMAPS and not self._stop:
            sitemap_url = queue.pop(0)
            if sitemap_url in seen or not self.scope.same_site(sitemap_url):
                continue  # sitemaps on other hosts are not fetched: the crawl stays on its site
            seen.add(sitemap_url)
            result = await self._fetch_following(fetcher, sitemap_url)
            if result.status != 200 or not result.body:
                continue
            doc = parse_sitemap(result.body, url=sitemap_url)
            queue.extend(s for s in doc.sitemaps if s not in seen)
            for entry in doc.urls:
                entries.append({"sitemap_url": sitemap_url, "url": entry.loc, "lastmod": entry.lastmod,
                                "in_scope": self.scope.allows(entry.loc)})
        self.store.write_batch(sitemap_entries=entries)
        self.store.set_meta({"sitemaps_read": sorted(seen)})

    # -- the loop ------------------------------------------------------------------------------
    async def run(self, *, resume: bool = False) -> CrawlSummary:
        started = time.monotonic()
        meta = self.store.meta()
        if resume:
            self._restore(meta)
        elif "start_url" in meta:
            raise UsageError(f"{self.store.path} already holds a crawl: use --resume to continue it, or another --db")
        fetcher = self._fetcher or self._make_fetcher()
        if self.config.render and self._fetcher is None:
            fetcher = await start_rendering(fetcher, self.config)  # crawl --render: Chromium too
        installed = self._install_signal_handlers()
        # DuckDB caches what it writes up to its limit (80% of RAM): a crawl only appends.
        previous_memory_limit = self.store.set_memory_limit(_CRAWL_MEMORY_LIMIT)
        self.store.set_append_mode(True)
        workers = self.config.extract_workers
        processes = auto_workers() if workers is None else workers
        if not self.config.render and processes > 0:
            # Parsing in worker processes (crawl.workers); renders are parsed here (they are slow anyway).
            self._pool = ExtractPool(processes, strip_tracking=self.config.strip_tracking)
            if workers is not None:
                self._pool.start()
        try:
            if not resume:
                self.store.set_meta({
                    "start_url": self.start_url, "settings": _settings(self.config),
                    "linkjuice_version": __version__,
                    "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "status": "running",
                    # Each page's links are written together, in one batch (Store.stage_link_groups
                    # relies on it to group a big store's links a slice at a time).
                    "links_by_source": True,
                })
                # Queued first, so that a crawl stopped while reading robots.txt or sitemaps resumes.
                self._discover(self.start_url, depth=0, via="start", source=None)
                self._flush(force=True)
            await self._unless_stopped(self._load_robots(fetcher))
            if not resume or not self.store.meta().get("sitemaps_read"):
                await self._unless_stopped(self._load_sitemaps(fetcher))
            if not self._stop:
                await self._crawl_loop(fetcher)
        finally:
            self._remove_signal_handlers(installed)
            try:
                try:
                    self._settle_now()
                finally:
                    if not self._write_failed:  # may fail too (disk full): the fetcher is closed anyway
                        self._flush(force=True)
            finally:
                try:
                    if self._pool is not None:
                        await self._pool.close()
                finally:
                    if self._store_thread is not None:
                        self._store_thread.shutdown()
                        self._store_thread = None
                    if self._fetcher is None:
                        await fetcher.close()
        self.store.set_memory_limit(previous_memory_limit)
        self.store.set_append_mode(False)
        counts = self.store.counts()
        if counts["pages"] == 0 and not self._stop:
            raise CrawlError(f"nothing was crawled from {self.start_url}")
        if counts["pages"] == 1 and not resume and not self._stop:
            start_page = self.store.sql("SELECT status, error FROM pages WHERE url = ?", [self.start_url])
            if len(start_page) and start_page.status.isna().all() and start_page.error.notna().all():
                self.store.set_meta({"status": "failed", "stop_reason": "start URL unreachable"})
                raise CrawlError(f"cannot reach {self.start_url}: {start_page.error.iloc[0]}")
        stop_reason = "interrupted" if self._stop else ("max-pages" if self._limits_hit and self._max_pages_hit() else "complete")
        elapsed = time.monotonic() - started
        total_seconds = float(meta.get("crawl_seconds") or 0.0) + elapsed
        self.store.set_meta({
            "status": stop_reason if stop_reason == "interrupted" else "finished",
            "stop_reason": stop_reason, "limits_hit": self._limits_hit,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "crawl_seconds": round(total_seconds, 3),
        })
        return CrawlSummary(pages=counts["pages"], links=counts["links"], errors=counts["errors"],
                            seconds=elapsed, stop_reason=stop_reason, limits_hit=self._limits_hit)

    def _max_pages_hit(self) -> bool:
        return self.config.max_pages is not None and self._done >= self.config.max_pages

    def _restore(self, meta: dict[str, Any]) -> None:
        if meta.get("start_url") is None:
            raise UsageError(f"{self.store.path} holds no crawl to resume")
        if meta["start_url"] != self.start_url:
            raise UsageError(f"{self.store.path} holds a crawl of {meta['start_url']}, not {self.start_url}")
        # Rebuild the seen-set, and the crawler-trap counters by replaying admissions in order.
        for rows in self.store.iter_frontier():
            for url, via in rows:
                self._seen.add(_url_hash(url))
                if via in _GUARDED_VIA:
                    self._traps.replay(url)
        for chunk in self.store.iter_trap_urls():
            self._seen.update(_url_hash(u) for u in chunk)
        counts = self.store.counts()
        self._next_seq = counts["frontier"]
        self._done = counts["pages"]
        self._errors = counts["errors"]
        self._limits_hit = bool(meta.get("limits_hit"))
        self.store.set_meta({"status": "running"})

    def _install_signal_handlers(self) -> list[signal.Signals]:
        """SIGINT and SIGTERM stop the crawl gracefully (in the main thread of a Unix process)."""
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._request_stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        return installed

    @staticmethod
    def _remove_signal_handlers(installed: list[signal.Signals]) -> None:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)

    async def _unless_stopped(self, work: Any) -> None:
        """Await `work` (a coroutine), cancelling it when a stop is requested meanwhile."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled():
            task.result()  # re-raise a failure of the work itself

    async def _crawl_loop(self, fetcher: Fetcher) -> None:
        queue: asyncio.Queue[tuple[int, str, int | None, str, str | None, int] | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(fetcher, queue)) for _ in range(self.config.concurrency)]
        try:
            holes = self.store.unfinished_frontier()
            self._cursor = self.store.counts()["max_seq"]
            for row in holes:
                self._in_flight += 1
                queue.put_nowait(row)
            sitemap_phase_done = bool(self.store.meta().get("sitemap_phase_done"))
            last_report = 0.0
            started = time.monotonic()
            low_water, high_water = self._low_water, self.config.concurrency * 8
            while not self._stop:
                if self._max_pages_hit():
                    self._limits_hit = True
                    break
                if queue.qsize() < low_water:
                    room = high_water - queue.qsize()
                    if self.config.max_pages is not None:
                        room = min(room, self.config.max_pages - self._done - self._in_flight)
                    rows = await self._read_frontier(room)
                    if not rows and room > 0 and self._pending["frontier"]:
                        await self._settle()
                        self._flush_behind(force=True)
                        rows = await self._read_frontier(room)
                    for row in rows:
                        self._in_flight += 1
                        queue.put_nowait(row)
                    if not rows and self._in_flight == 0 and not self._pending["frontier"]:
                        if sitemap_phase_done or not self.config.use_sitemaps or room <= 0:
                            break
                        self._settle_now()
                        self._enqueue_sitemap_only()
                        sitemap_phase_done = True
                        self.store.set_meta({"sitemap_phase_done": True})
                        continue
                self._flush_behind()
                if self._pool is not None and self._next_seq >= _WORKERS_AFTER_URLS:
                    self._pool.start()  # once; a no-op after
                now = time.monotonic()
                if self.on_progress and now - last_report > 0.2:
                    last_report = now
                    rate = self._done / max(now - started, 1e-6)
                    self.on_progress(CrawlProgress(self._done, self._next_seq - self._done, self._errors, rate))
                # Sleep until a worker finishes a page (or the flush interval passes).
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=0.05)
                except asyncio.TimeoutError:
                    pass
            # Let the pages in flight finish unless we were asked to stop.
            if not self._stop:
                while self._in_flight > 0 and not self._stop:
                    await asyncio.sleep(0.01)
        finally:
            for _ in workers:
                queue.put_nowait(None)
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self.on_progress:
                self.on_progress(CrawlProgress(self._done, self._next_seq - self._done, self._errors, 0.0))

    async def _read_frontier(self, room: int) -> list[tuple]:
        """Next frontier rows in discovery order: from memory while every row past the cursor is
        there (so the loop never waits for a write), else from the store, on its thread after the
        write in flight (which may hold new rows); no query when nothing new was written."""
        if room <= 0:
            return []
        if self._tail is not None:
            rows = [self._tail.popleft() for _ in range(min(room, len(self._tail)))]
        elif not self._frontier_unread:
            return []
        else:
            rows = await self._in_store(self.store.frontier_after, self._cursor, room)
            if len(rows) < room:
                self._frontier_unread = False
                if not self._pending["frontier"]:
                    # The store holds every row there is (nothing is pending, no write in flight):
                    # from now on new rows are read from memory too.
                    self._tail = deque()
        if rows:
            self._cursor = rows[-1][0]
        return rows

    def _request_stop(self) -> None:
        if self._stop:
            raise KeyboardInterrupt  # a second signal: stop now, without the graceful path
        self._stop = True
        self._stopped.set()
        self._wake.set()

    def _enqueue_sitemap_only(self) -> None:
        """After the link frontier is exhausted, queue in-scope sitemap URLs never linked to."""
        for url in sorted(self.store.sitemap_urls()):
            if self.scope.allows(url):
                self._discover(url, depth=None, via="sitemap", source=None)
        self._flush(force=True)

    async def _worker(self, fetcher: Fetcher, queue: asyncio.Queue) -> None:
        while True:
            row = await queue.get()
            if row is None:
                return
            try:
                await self._process(fetcher, row)
            except Exception as exc:  # noqa: BLE001 - one bad page must never stop the crawl
                seq, url, depth, via, source, hops = row
                self._add_page(seq=seq, url=url, depth=depth, via=via, result=FetchResult(url=url, status=None, error=f"internal error: {type(exc).__name__}: {exc}"[:300]))
            finally:
                self._in_flight -= 1
                # Wake the loop only when it has something to do (refill, a full batch, a page limit):
                # waking it per page costs more than the rest of the loop; it also runs every 50 ms.
                if (queue.qsize() < self._low_water or self._pending_pages >= self.config.batch_size
                        or self.config.max_pages is not None):
                    self._wake.set()

    async def _process(self, fetcher: Fetcher, row: tuple) -> None:
        seq, url, depth, via, source, hops = row
        if self.config.obey_robots and not self.robots.allowed(url):
            self._add_page(seq=seq, url=url, depth=depth, via=via, blocked=True,
                           result=FetchResult(url=url, status=None, error=self._robots_failure or "blocked by robots.txt"))
            return
        throttle = self._throttle(url)
        if throttle is not None:
            await throttle.wait()
        result = await fetcher.fetch(url)
        columns = None
        if (self._pool is not None and result.rendered is None and _content_type(result)[1]
                and not _looks_binary(result.body)):
            columns = await self._pool.extract(result.body, url, result.encoding)
        self._add_page(seq=seq, url=url, depth=depth, via=via, result=result, hops=hops, columns=columns)

    def _add_page(self, *, seq: int, url: str, depth: int | None, via: str, result: FetchResult,
                  blocked: bool = False, hops: int = 0, columns: PageColumns | None = None) -> None:
        content_type, is_html = _content_type(result)
        page: dict[str, Any] = {
            "url": url, "seq": seq, "status": result.status, "content_type": content_type,
            "bytes": len(result.body) if result.status is not None else None,
            "response_time_ms": result.response_time_ms, "found_depth": depth, "found_via": via,
            "error": result.error, "blocked_by_robots": blocked, "is_html": is_html,
            "x_robots_tag": result.headers.get("x-robots-tag"),
            "crawled_at": datetime.now(timezone.utc).replace(tzinfo=None),
        }
        if result.status is not None and 300 <= result.status < 400:
            self._add_redirect(page, result, depth=depth, hops=hops)
        elif is_html:
            self._add_html(page, result, depth=depth, columns=columns)
        else:
            page["noindex"], page["nofollow"] = _robots_flags(page["x_robots_tag"])
        if result.error or (result.status is not None and result.status >= 400):
            self._errors += 1
        self._pending["pages"].append(page)
        self._pending_pages += 1
        self._done += 1

    def _add_redirect(self, page: dict[str, Any], result: FetchResult, *, depth: int | None, hops: int) -> None:
        url = page["url"]
        raw = _storable((result.location or "").strip()[:_MAX_RAW_LOCATION]) or ""
        target = normalize_url(raw, url, strip_tracking=self.config.strip_tracking) if raw else None
        page["redirect_to"] = target or raw or None
        self._pending["redirects"].append({"source_url": url, "status": result.status, "target_url": target or raw or None})
        if not raw:
            page["error"] = "redirect without Location header"
        elif target is None:
            page["error"] = f"redirect to unsupported URL: {raw[:200]}"
        elif not self.scope.allows(target):
            pass  # recorded; an out-of-scope target is never fetched
        elif hops + 1 > self.config.max_redirects:
            page["error"] = f"redirect chain longer than {self.config.max_redirects} hops"
        else:
            self._discover(target, depth=depth, via="redirect", source=url, hops=hops + 1)

    def _add_html(self, page: dict[str, Any], result: FetchResult, *, depth: int | None,
                  columns: PageColumns | None = None) -> None:
        url = page["url"]
        if columns is None and _looks_binary(result.body):  # with a worker's columns, _process sniffed it
            page.update(is_html=False, error=page["error"] or "binary content served as HTML: not parsed")
            page["noindex"], page["nofollow"] = _robots_flags(page["x_robots_tag"])
            return
        strip = self.config.strip_tracking
        found_in: list[str] | None = None
        link_nofollow: list[bool] | None = None
        if result.rendered is None:
            extracted = columns or extract_columns(result.body, url, encoding=result.encoding, strip_tracking=strip)
            urls, anchors, rels, positions = extracted.link_urls, extracted.anchors, extracted.rels, extracted.positions
            if extracted.page_nofollow:
                link_nofollow = [True] * len(urls)
        else:
            # With --render: the rendered DOM's metadata and links, each link saying where it was found.
            page_data, found = with_rendering(extract_page(result.body, url, encoding=result.encoding, strip_tracking=strip),
                                              result.rendered, strip_tracking=strip)
            extracted = page_data  # type: ignore[assignment]
            links = page_data.links
            urls = [link.url for link in links]
            anchors = [link.anchor for link in links]
            rels = [link.rel for link in links]
            positions = [str(link.position) for link in links]
            link_nofollow = [link.nofollow for link in links]
            found_in = [str(where) for where in found]
        if extracted.problem and not page["error"]:
            page["error"] = extracted.problem
        noindex, nofollow = _robots_flags(extracted.meta_robots, page["x_robots_tag"])
        page.update(
            title=extracted.title, h1=extracted.h1, meta_robots=extracted.meta_robots,
            canonical=extracted.canonical, lang=extracted.lang, word_count=extracted.word_count,
            main_text=extracted.main_text, headings=extracted.headings, noindex=noindex, nofollow=nofollow,
        )
        n = len(urls)
        if n:
            home, internal_of = self._home, self._internal
            internal = [u.startswith(home) or internal_of(u) for u in urls]
            if nofollow:
                nofollows = [True] * n
            elif link_nofollow is not None:
                nofollows = link_nofollow
            else:
                nofollows = [bool(rel) for rel in rels]
            out = self._pending["links"]
            out["source_url"].extend([url] * n)
            out["target_url"].extend(urls)
            out["anchor"].extend(anchors)
            out["rel"].extend(rels)
            out["nofollow"].extend(nofollows)
            out["dom_position"].extend(positions)
            out["link_order"].extend(range(n))
            out["is_internal"].extend(internal)
            out["found_in"].extend(found_in or ["raw"] * n)
            next_depth = None if depth is None else depth + 1
            too_deep = self.config.max_depth is not None and next_depth is not None and next_depth > self.config.max_depth
            seen = self._seen
            for link_url, inside in zip(urls, internal):
                if not inside or hash(link_url) in seen or (self._patterns and not self.scope.allows(link_url)):
                    continue
                if too_deep:
                    self._limits_hit = True
                    continue
                self._discover(link_url, depth=next_depth, via="link", source=url)
        if extracted.canonical and extracted.canonical != url and self.scope.allows(extracted.canonical):
            self._discover(extracted.canonical, depth=depth, via="canonical", source=url)

    def _take_pending(self, force: bool) -> dict[str, Any] | None:
        """The pending batch when it is due (full, old, or forced), leaving an empty one."""
        if not self._has_pending():
            return None
        now = time.monotonic()
        first = self._pending_pages > 0 and not self._wrote_pages
        if (not force and not first and self._pending_pages < self.config.batch_size
                and now - self._last_flush < _FLUSH_SECONDS):
            return None
        self._wrote_pages = self._wrote_pages or self._pending_pages > 0
        pending, self._pending = self._pending, self._empty_pending()
        if pending["frontier"]:
            self._frontier_unread = True
        self._pending_pages = 0
        self._last_flush = now
        return pending

    def _flush(self, *, force: bool = False) -> None:
        """Write the pending batch now, if due (after the store's job in flight)."""
        self._settle_now()
        pending = self._take_pending(force)
        if pending is not None:
            self._write(pending)

    def _write(self, pending: dict[str, Any]) -> None:
        """Write one batch; remember a failure (see _write_failed)."""
        try:
            self.store.write_batch(**pending)
        except BaseException:
            self._write_failed = True
            raise

    def _flush_behind(self, *, force: bool = False) -> None:
        """Start writing the pending batch on the store's thread, if due. One job at a time: while
        a write runs, pages gather into the next batch."""
        if self._job is not None:
            if not self._job.done():
                return
            self._settle_now()  # a failed write raises here
        pending = self._take_pending(force)
        if pending is not None:
            self._submit(self._write, pending)

    def _submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Start `fn` on the store's thread (no job may be in flight); it wakes the loop when done."""
        assert self._job is None or self._job.done()
        if self._store_thread is None:
            self._store_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="linkjuice-store")
        loop = asyncio.get_running_loop()
        job = self._job = self._store_thread.submit(fn, *args, **kwargs)
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._wake.set))
        return job

    async def _settle(self) -> None:
        """Wait for the store's job in flight without stopping the loop; its failure raises here.
        Cancelled meanwhile, the job stays in flight (run() waits for it before using the store)."""
        if self._job is not None:
            await asyncio.wait([asyncio.wrap_future(self._job)])
            self._settle_now()

    def _settle_now(self) -> None:
        """Wait for the store's job in flight (blocking: before using the store in this thread)."""
        job, self._job = self._job, None
        if job is not None:
            job.result()

    async def _in_store(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the store's thread, after the job in flight."""
        await self._settle()
        job = self._submit(fn, *args)
        await asyncio.wait([asyncio.wrap_future(job)])
        self._job = None
        return job.result()


def _content_type(result: FetchResult) -> tuple[str | None, bool]:
    """The response's media type, and whether it is an HTML page to parse."""
    content_type = (result.content_type or "").split(";")[0].strip().lower() or None
    return content_type, result.status == 200 and content_type in _HTML_TYPES


def _settings(config: CrawlConfig) -> dict[str, Any]:
    values = asdict(config)
    values["include"] = list(config.include)
    values["exclude"] = list(config.exclude)
    return values


def crawl(config: CrawlConfig, store: Store, *, resume: bool = False,
          on_progress: Callable[[CrawlProgress], None] | None = None) -> CrawlSummary:
    """Run a crawl to the end (blocking)."""
    with asyncio.Runner(loop_factory=_loop_factory(config)) as runner, rare_collections():
        return runner.run(Crawler(config, store, on_progress=on_progress).run(resume=resume))


@contextmanager
def rare_collections() -> Iterator[None]:
    """Python's cycle collector runs 70x less often meanwhile. A crawl makes a few short-lived
    containers per link, and with the default thresholds the collector kept walking the crawl's
    long-lived ones too (frontier tail, caches): the event loop's CPU a page fell ~10% in paired
    runs on the bench site.
    The crawl's data has no reference cycles to wait for; peak RSS in the bench is unchanged."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _loop_factory(config: CrawlConfig) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where installed (a dependency outside Windows): its transports and
    callbacks are C, and the event loop's process is the crawl's busiest (~20% less CPU a page
    there on the bench site). Not for --render (Playwright is tested on asyncio's own loop), nor
    with LINKJUICE_UVLOOP=0."""
    if config.render or os.environ.get("LINKJUICE_UVLOOP", "1") == "0":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop

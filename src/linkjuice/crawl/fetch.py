"""Fetching one URL, one hop at a time: over HTTP with aiohttp, or from a static build on disk.

Redirects are never followed here: the crawler stores each hop and queues the target, so chains and
loops stay visible. Per-URL failures come back as a FetchResult with `error` set; nothing raises.
"""

from __future__ import annotations

import asyncio
import email.utils
import mimetypes
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiohttp

from ..models import FetchResult

__all__ = ["Fetcher", "HttpFetcher", "LocalFetcher", "parse_retry_after", "HostThrottle"]

_RETRY_STATUSES = frozenset({429, 503})
_MAX_RETRY_AFTER = 60.0


class Fetcher(Protocol):
    async def fetch(self, url: str) -> FetchResult: ...
    async def close(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HostThrottle:
    """Spaces requests to one host at least `interval` seconds apart (rate limit, crawl-delay)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self.interval <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"' ").lower()
    return None


class HttpFetcher:
    """aiohttp client with timeouts, a decompressed-size cap, retries and per-host throttling."""

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float,
        max_body_bytes: int,
        retries: int,
        backoff: float,
        concurrency: int,
        throttle: HostThrottle | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout, sock_read=timeout)
        self.max_body_bytes = max_body_bytes
        self.retries = retries
        self.backoff = backoff
        self.throttle = throttle or HostThrottle(0.0)
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": user_agent, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        await self.session.close()

    async def fetch(self, url: str) -> FetchResult:
        attempt = 0
        while True:
            await self.throttle.wait()
            result = await self._fetch_once(url)
            retry_after: float | None = None
            if result.status in _RETRY_STATUSES:
                retry_after = parse_retry_after(result.headers.get("retry-after"))
            elif result.status is not None or result.error == "body too large":
                return result
            if attempt >= self.retries:
                return result
            delay = retry_after if retry_after is not None else self.backoff * (2**attempt)
            await asyncio.sleep(min(delay, _MAX_RETRY_AFTER))
            attempt += 1

    async def _fetch_once(self, url: str) -> FetchResult:
        started = time.perf_counter()
        if not url.startswith(("http://", "https://")):
            # Defence in depth: the crawler only queues http(s) URLs; file: and others are never fetched.
            return FetchResult(url=url, status=None, error="not an http(s) URL: not fetched")
        try:
            async with self.session.get(url, allow_redirects=False, timeout=self.timeout) as resp:
                headers = {k.lower(): _header_text(v) for k, v in resp.headers.items()}
                location = _location(resp.headers.get("location"))
                content_type = headers.get("content-type")
                body = bytearray()
                truncated = False
                async for chunk in resp.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        truncated = True
                        del body[self.max_body_bytes :]
                        break
                return FetchResult(
                    url=url,
                    status=resp.status,
                    content_type=content_type,
                    headers=headers,
                    body=bytes(body),
                    encoding=_charset(content_type),
                    response_time_ms=(time.perf_counter() - started) * 1000,
                    location=location,
                    error="body too large" if truncated else None,
                    truncated=truncated,
                )
        except asyncio.TimeoutError:
            return FetchResult(url=url, status=None, error="timeout", response_time_ms=_ms(started))
        except aiohttp.ClientPayloadError as exc:
            # A body that cannot be decoded (a Content-Encoding we lack, such as br without the
            # brotli package, or a corrupt stream) or that ends early.
            cause = exc.__cause__ or exc.__context__
            detail = _header_text(str(cause if cause is not None and str(cause) else exc))
            return FetchResult(url=url, status=None, error=f"bad body: {detail}"[:300], response_time_ms=_ms(started))
        except aiohttp.ClientResponseError as exc:
            return FetchResult(url=url, status=None, error=f"bad response: {exc.message}", response_time_ms=_ms(started))
        except aiohttp.ClientError as exc:
            return FetchResult(url=url, status=None, error=f"connection: {type(exc).__name__}: {exc}"[:300], response_time_ms=_ms(started))
        except (ValueError, UnicodeError, OSError) as exc:
            return FetchResult(url=url, status=None, error=f"request failed: {exc}"[:300], response_time_ms=_ms(started))


def _header_text(value: str) -> str:
    """A header value safe to store: aiohttp keeps undecodable bytes as lone surrogates
    (surrogateescape); they become U+FFFD."""
    return value if value.isascii() else value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _location(value: str | None) -> str | None:
    """A Location header as a browser reads it: bytes outside ASCII (UTF-8 or not) percent-encoded."""
    if value is None or value.isascii():
        return value
    data = value.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in data)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class LocalFetcher:
    """Serves a static site build from disk as if it were `base_url`'s site.

    Maps `/a/` to `a/index.html`, `/a` to `a`, `a.html` or (by a 301 like a web server) `/a/`.
    A Netlify-style `_redirects` file at the root (`FROM TO [STATUS]` per line) is honoured.
    """

    def __init__(self, root: str | Path, base_url: str) -> None:
        self.root = Path(root).resolve()
        self.base = urlsplit(base_url)
        self.redirects = self._read_redirects()

    def _read_redirects(self) -> dict[str, tuple[str, int]]:
        rules: dict[str, tuple[str, int]] = {}
        path = self.root / "_redirects"
        if not path.is_file():
            return rules
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 2:
                status = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 301
                rules[parts[0]] = (parts[1], status)
        return rules

    async def close(self) -> None:
        return None

    async def fetch(self, url: str) -> FetchResult:
        return self.fetch_sync(url)

    def fetch_sync(self, url: str) -> FetchResult:
        started = time.perf_counter()
        parts = urlsplit(url)
        path = unquote(parts.path) or "/"
        if path in self.redirects:
            target, status = self.redirects[path]
            return FetchResult(url=url, status=status, location=target, response_time_ms=_ms(started),
                               headers={"location": target})
        candidate = (self.root / path.lstrip("/")).resolve()
        # Never read outside the site folder, whatever the URL says.
        if candidate != self.root and self.root not in candidate.parents:
            return FetchResult(url=url, status=404, content_type="text/html", response_time_ms=_ms(started))
        file: Path | None = None
        if path.endswith("/"):
            file = candidate / "index.html"
        elif candidate.is_file():
            file = candidate
        elif candidate.with_name(candidate.name + ".html").is_file():
            file = candidate.with_name(candidate.name + ".html")
        elif (candidate / "index.html").is_file():
            location = parts.path + "/" + (f"?{parts.query}" if parts.query else "")
            return FetchResult(url=url, status=301, location=location, headers={"location": location},
                               response_time_ms=_ms(started))
        if file is None or not file.is_file():
            return FetchResult(url=url, status=404, content_type="text/html", response_time_ms=_ms(started))
        body = file.read_bytes()
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if content_type == "text/html":
            content_type = "text/html; charset=utf-8"
        return FetchResult(url=url, status=200, content_type=content_type, body=body,
                           encoding=_charset(content_type), response_time_ms=_ms(started),
                           headers={"content-type": content_type})

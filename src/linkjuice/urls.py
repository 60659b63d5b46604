"""URL normalisation and scope rules.

Normalisation is RFC 3986 syntax-based normalisation done by the `yarl` library (scheme and host
case, IDNA, default ports, percent-encoding case, dot segments; it is C-accelerated, which matters
when every page holds hundreds of links), plus rules of ours: fragments are dropped (they never
reach the server), only http(s) URLs with a valid host are kept, an empty path becomes "/", and, on
request, tracking parameters are removed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from yarl import URL

from .errors import UsageError

__all__ = [
    "TRACKING_PARAMETERS",
    "normalize_url",
    "host_of",
    "port_of",
    "Scope",
]

# Parameters that only identify a campaign or click; they never change the page served.
TRACKING_PARAMETERS: frozenset[str] = frozenset({
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id",
    "gclid", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid",
    "_ga", "_gl", "igshid", "ref_src",
})

_MAX_URL_LENGTH = 8192
# WHATWG URL parsing removes tabs and newlines anywhere in a URL.
_STRIP_INSIDE = str.maketrans("", "", "\t\n\r")
_EMPTY_AUTHORITY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?[/\\]{2}(?:[/\\?#]|$)")
_VALID_HOST = re.compile(r"^[a-z0-9._~%!$&'()*+,;=:\[\]-]+$")


@lru_cache(maxsize=4096)
def _base_url(base: str) -> URL:
    return URL(base)


def normalize_url(
    href: str,
    base: str | None = None,
    *,
    strip_tracking: bool = False,
    allow_file: bool = False,
) -> str | None:
    """Resolve `href` against `base` and normalise it; None when it is not a crawlable URL.

    >>> normalize_url("../b/./c?x=1#top", "HTTP://Example.COM:80/a/d/")
    'http://example.com/a/b/c?x=1'
    """
    # Navigation repeats the same root-relative and absolute links on every page; their result
    # depends on the base's origin only, so they are cached per origin (crawl hot path).
    if base is None or href.startswith(("http://", "https://")):
        return _normalize_cached(href, None, strip_tracking, allow_file)
    if href.startswith("/") and not href.startswith("//"):
        scheme, sep, rest = base.partition("://")
        if sep:
            return _normalize_cached(href, f"{scheme}://{rest.split('/', 1)[0]}/", strip_tracking, allow_file)
    return _normalize(href, base, strip_tracking, allow_file)


@lru_cache(maxsize=1 << 16)
def _normalize_cached(href: str, base: str | None, strip_tracking: bool, allow_file: bool) -> str | None:
    return _normalize(href, base, strip_tracking, allow_file)


def _normalize(href: str, base: str | None, strip_tracking: bool, allow_file: bool) -> str | None:
    href = href.strip().translate(_STRIP_INSIDE)
    if not href or len(href) > _MAX_URL_LENGTH:
        return None
    if _EMPTY_AUTHORITY.match(href):
        return None  # "http://", "//", "http:///x": no host (yarl would fall back to the base URL)
    try:
        url = _base_url(base).join(URL(href)) if base else URL(href)
        scheme = url.scheme
        if scheme not in ("http", "https"):
            if allow_file and scheme == "file":
                return str(url.with_fragment(None))
            return None
        host = url.raw_host
        if not host or not _VALID_HOST.match(host) or url.port is None:
            return None
        url = url.with_fragment(None)
        if strip_tracking and url.raw_query_string:
            pairs = list(url.query.items())
            kept = [(k, v) for k, v in pairs if k.lower() not in TRACKING_PARAMETERS]
            if len(kept) != len(pairs):
                url = url.with_query(kept)
        text = str(url)
    except (ValueError, TypeError, UnicodeError):
        return None
    head, sep, query = text.partition("?")
    if head.count("/") == 2:  # "http://host" -> "http://host/": both name the same resource
        text = head + "/" + sep + query
    if base and "%" in text:
        # yarl escapes a relative reference differently from an absolute URL ("a:b" in a first path
        # segment stays "%3A"): one more pass makes the result a fixed point, so one page is one URL.
        return normalize_url(text)
    return text


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"bad regular expression {pattern!r}: {exc}") from None


def host_of(url: str) -> str:
    """The lower-case host name of `url` (no port)."""
    return (urlsplit(url).hostname or "").lower()


def port_of(url: str) -> int | None:
    """The explicit port of `url` when it is not its scheme's default (80 for http, 443 for https)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    return None if port == {"http": 80, "https": 443}.get(parts.scheme) else port


@dataclass(frozen=True, kw_only=True)
class Scope:
    """Which URLs belong to the crawl: the start host (optionally its subdomains), minus exclusions.

    `port` is the start URL's non-default port, if any: another port on the same host is another
    server, so it is outside the site (http and https on their default ports are the same site).
    """

    host: str
    port: int | None = None
    subdomains: bool = False
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_include", [_compile(p) for p in self.include])
        object.__setattr__(self, "_exclude", [_compile(p) for p in self.exclude])
        object.__setattr__(self, "_origins", {})

    def same_site(self, url: str) -> bool:
        """True when `url` is on the crawled site (internal), regardless of include/exclude."""
        # The answer depends on the origin only: remember it per origin (every link asks).
        scheme, sep, rest = url.partition("://")
        origin = scheme + sep + rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
        known = self._origins.get(origin)  # type: ignore[attr-defined]
        if known is None:
            known = self._same_site(url)
            if len(self._origins) < 100_000:  # type: ignore[attr-defined]
                self._origins[origin] = known  # type: ignore[attr-defined]
        return known

    def _same_site(self, url: str) -> bool:
        if port_of(url) != self.port:
            return False
        host = host_of(url)
        if host == self.host:
            return True
        site = self.host[4:] if self.host.startswith("www.") else self.host
        if host in (site, "www." + site):
            return True
        return self.subdomains and host.endswith("." + site)

    def allows(self, url: str) -> bool:
        """True when `url` is internal and passes the include/exclude patterns."""
        if not self.same_site(url):
            return False
        if self._include and not any(p.search(url) for p in self._include):  # type: ignore[attr-defined]
            return False
        return not any(p.search(url) for p in self._exclude)  # type: ignore[attr-defined]

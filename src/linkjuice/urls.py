"""URL normalisation and scope rules.

Normalisation is RFC 3986 syntax-based normalisation done by the `url-normalize` library (scheme
and host case, IDNA, default ports, percent-encoding case, dot segments), plus three rules of ours:
fragments are dropped (they never reach the server), only http(s) URLs are kept, and, on request,
tracking parameters are removed with w3lib's query cleaner.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from url_normalize import url_normalize
from w3lib.url import url_query_cleaner

from .errors import UsageError

__all__ = [
    "TRACKING_PARAMETERS",
    "normalize_url",
    "host_of",
    "Scope",
]

# Parameters that only identify a campaign or click; they never change the page served.
TRACKING_PARAMETERS: tuple[str, ...] = (
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id",
    "gclid", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid",
    "_ga", "_gl", "igshid", "ref_src",
)

_MAX_URL_LENGTH = 8192


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
    href = href.strip()
    if not href or len(href) > _MAX_URL_LENGTH:
        return None
    try:
        absolute = urljoin(base, href) if base else href
        parts = urlsplit(absolute)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") and not (allow_file and scheme == "file"):
        return None
    if scheme != "file" and not parts.hostname:
        return None
    try:
        normalized = url_normalize(urlunsplit(parts._replace(fragment="")))
    except (ValueError, UnicodeError):
        return None
    if not normalized:
        return None
    if strip_tracking and parts.query:
        normalized = url_query_cleaner(normalized, TRACKING_PARAMETERS, remove=True, unique=False)
    return normalized


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"bad regular expression {pattern!r}: {exc}") from None


def host_of(url: str) -> str:
    """The lower-case host name of `url` (no port)."""
    return (urlsplit(url).hostname or "").lower()


@dataclass(frozen=True, kw_only=True)
class Scope:
    """Which URLs belong to the crawl: the start host (optionally its subdomains), minus exclusions."""

    host: str
    subdomains: bool = False
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_include", [_compile(p) for p in self.include])
        object.__setattr__(self, "_exclude", [_compile(p) for p in self.exclude])

    def same_site(self, url: str) -> bool:
        """True when `url` is on the crawled site (internal), regardless of include/exclude."""
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

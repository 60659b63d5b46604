"""Crawler traps: URL spaces that never end (calendars, session ids, growing queries, /a/a/a/...).

`TrapGuard.admit` decides, for each newly found URL, whether the crawl may queue it. It refuses:

* ``query-length``: a query string longer than `max_query_length` characters (a query that grows
  with every click: ``?f=a&f=b&f=c...``, or state carried in the URL);
* ``path-repetition``: one path segment more than `max_repeats` times (``/a/a/a/a/``, relative
  links that resolve deeper on every page: ``/b/c/b/c/b/c/``);
* ``repeated-parameter``: one query parameter name more than `max_repeats` times;
* ``session-id``: a URL that differs from an admitted one only by a session id (``;jsessionid=``,
  ``PHPSESSID=``, ``sid=`` with a random-looking value, ASP.NET's ``/(S(...))/``); the first copy is
  crawled, later copies are the same page under a new session;
* ``calendar`` and ``url-pattern``: more than `max_per_pattern` URLs of one *shape*: the host, the
  path with its numbers and ids replaced by ``{n}`` and ``{id}``, and the names (not values) of the
  query parameters. ``/events/2031/07/`` and ``/events/2032/01/`` share ``/events/{n}/{n}/``; a shape
  holding a date is labelled ``calendar``. Only calendar shapes and shapes with a query string are
  capped: numbered paths alone (``/product/{n}``) are how large stores look, not a trap.

Each refusal names a `Trap` (kind and a readable pattern), which the crawler stores with the URL
(table ``crawl_trap_urls``, summed per pattern in the ``crawl_traps`` view) so the audit can report
an ``infinite-space`` finding. The guard is deterministic: replaying the admitted URLs in
discovery order rebuilds its counters exactly, which is how `crawl --resume` restores it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Trap", "TrapGuard", "url_shape", "SESSION_PARAMETERS"]

# Query parameter names that carry a session id on common platforms (Java, PHP, ColdFusion,
# osCommerce/Zen Cart, generic). They count as a session only when the value looks random, so a
# story id such as ``?sid=42`` stays a real parameter.
SESSION_PARAMETERS: frozenset[str] = frozenset({
    "jsessionid", "phpsessid", "sid", "sessionid", "session_id", "session", "sessid", "sess_id",
    "cfid", "cftoken", "zenid", "oscsid", "xtcsid", "ps_session", "aspsessionid",
})
_RANDOM_VALUE = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_-]{16,}$|^\d{8,}$")
_PATH_SESSION = re.compile(r";(jsessionid|phpsessid|sid|sessionid)=[^/?;]*", re.IGNORECASE)
_ASPNET_SESSION = re.compile(r"/\([A-Z]\([A-Za-z0-9]{8,}\)\)(?=/)")
# A segment (or a token inside one) that is an opaque id: hex, UUID or base64-like, 16+ chars.
_ID_TOKEN = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9_-]*\d)[A-Fa-f0-9-]{16,}|(?<![A-Za-z0-9])(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{24,}")
_DIGITS = re.compile(r"\d+")
_HAS_DIGIT = re.compile(r"\d").search
_DATE = re.compile(r"(?<!\d)(1[89]|2\d)\d\d([-/_.]?)(0[1-9]|1[0-2])(\2(0[1-9]|[12]\d|3[01]))?(?!\d)")
_DATE_NAMES = frozenset({"date", "day", "month", "year", "week", "cal", "calendar", "ym", "ymd"})


@dataclass(frozen=True, slots=True)
class Trap:
    """Why a URL was not queued: its kind and the pattern it belongs to."""

    kind: str  # query-length | path-repetition | repeated-parameter | session-id | calendar | url-pattern
    pattern: str


def _strip_sessions(url: str) -> tuple[str, list[str]]:
    """The URL without its session ids, and the names of the session parameters removed."""
    parts = urlsplit(url)
    names: list[str] = []
    path = parts.path
    if ";" in path:
        for match in _PATH_SESSION.finditer(path):
            names.append(";" + match.group(1).lower())
        path = _PATH_SESSION.sub("", path)
    if "(" in path and _ASPNET_SESSION.search(path):
        names.append("(S(...))")
        path = _ASPNET_SESSION.sub("", path)
    query = parts.query
    if query:
        kept: list[str] = []
        for item in query.split("&"):
            name, _, value = item.partition("=")
            lowered = name.lower()
            if (lowered in SESSION_PARAMETERS or lowered.startswith("aspsessionid")) and _RANDOM_VALUE.match(value):
                names.append(lowered)
            else:
                kept.append(item)
        query = "&".join(kept)
    if not names:
        return url, names
    return parts._replace(path=path or "/", query=query).geturl(), names


def _segment_shape(segment: str) -> str:
    if not _HAS_DIGIT(segment):  # both patterns need a digit; _ID_TOKEN's look-aheads cost O(n^2)
        return segment
    segment = _ID_TOKEN.sub("{id}", segment)
    return _DIGITS.sub("{n}", segment)


def url_shape(url: str) -> str:
    """The URL with numbers and ids in its path replaced, and its query reduced to sorted names.

    >>> url_shape("https://ex.com/events/2031/07/?view=month&page=3")
    'https://ex.com/events/{n}/{n}/?page=*&view=*'
    """
    parts = urlsplit(url)
    path = "/".join(_segment_shape(s) for s in parts.path.split("/"))
    names = sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True)})
    query = "&".join(f"{name}=*" for name in names)
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{query}" if query else "")


def _is_calendar(url: str) -> bool:
    parts = urlsplit(url)
    if _DATE.search(parts.path) or _DATE.search(parts.query):
        return True
    return any(name.lower() in _DATE_NAMES for name, _ in parse_qsl(parts.query, keep_blank_values=True))


class TrapGuard:
    """Per-pattern limits for one crawl. Call `admit` once per new URL, in discovery order.

    `known` tells whether the crawl already holds a URL (its seen-set), so that a session copy of a
    page crawled without a session is refused too.
    """

    def __init__(self, *, max_per_pattern: int = 1000, max_repeats: int = 3, max_query_length: int = 1024,
                 known: Callable[[str], bool] | None = None) -> None:
        self.max_per_pattern = max_per_pattern
        self.max_repeats = max_repeats
        self.max_query_length = max_query_length
        self._known = known or (lambda url: False)
        # Keyed by hash: like the crawler's seen-set, memory is one int per shape, not one string.
        self._shapes: Counter[int] = Counter()
        self._sessionless: set[int] = set()

    def admit(self, url: str) -> Trap | None:
        """None when `url` may be queued (and it is counted), else the trap it belongs to."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if len(parts.query) > self.max_query_length:
            return Trap("query-length", url_shape(url))
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) > self.max_repeats:
            segment, count = Counter(segments).most_common(1)[0]
            if count > self.max_repeats:
                glob = "/**".join(f"/{segment}" for _ in range(self.max_repeats + 1))
                return Trap("path-repetition", f"{origin}/**{glob}/**")
        if parts.query:
            names = Counter(name for name, _ in parse_qsl(parts.query, keep_blank_values=True))
            if names:
                name, count = names.most_common(1)[0]
                if count > self.max_repeats:
                    path = url_shape(url).partition("?")[0]
                    return Trap("repeated-parameter", f"{path}?{name}=*&{name}=*&...")
        key, sessions = _strip_sessions(url)
        if sessions and (hash(key) in self._sessionless or self._known(key)):
            marks = "".join(n if n.startswith("(") else (f"{n}=*" if n.startswith(";") else f"?{n}=*")
                            for n in sorted(set(sessions)))
            return Trap("session-id", f"{origin}/**{marks}")
        shape = url_shape(key)
        # Numbered paths alone (/product/{n}) are how large stores and archives look, so only
        # calendars and query-string shapes (filter and sort combinations) are capped.
        if self._shapes[hash(shape)] >= self.max_per_pattern and ("?" in shape or _is_calendar(key)):
            return Trap("calendar" if _is_calendar(key) else "url-pattern", shape)
        self._count(key, bool(sessions), shape)
        return None

    def replay(self, url: str) -> None:
        """Count a URL admitted earlier (to rebuild the counters on resume), without checking it."""
        key, sessions = _strip_sessions(url)
        self._count(key, bool(sessions))

    def _count(self, key: str, session: bool, shape: str | None = None) -> None:
        self._shapes[hash(shape if shape is not None else url_shape(key))] += 1
        if session:
            self._sessionless.add(hash(key))

"""robots.txt rules for one host, with Google's reading of fetch failures.

Parsing and matching (wildcards, `$`, longest match wins, Allow wins ties) are protego's. This
module adds what protego leaves to the caller, following Google's documentation and RFC 9309:

* what the HTTP status of the robots.txt fetch means (see `RobotsRules.parse`);
* the 500 KiB size limit;
* group selection by *product token*, compared for equality: protego's own matching would let a
  ``User-agent: link`` group apply to ``linkjuice`` because it matches substrings.
"""

from __future__ import annotations

import re

from protego import Protego

from linkjuice.urls import normalize_url

__all__ = [
    "MAX_ROBOTS_BYTES",
    "RobotsRules",
    "product_token",
]

# Google reads the first 500 KiB of a robots.txt and ignores the rest.
MAX_ROBOTS_BYTES = 500 * 1024

# RFC 9309 product tokens; like Google's parser we take the leading run of letters, "_" and "-".
_TOKEN = re.compile(r"[A-Za-z_-]+")
# A user-agent line as protego reads it ("user-agent", "useragent", "user agent"; colon optional).
_USER_AGENT_LINE = re.compile(
    r"^[ \t]*user[ \t-]?agent(?:[ \t]*:|(?=[ \t]))(?P<value>[^\n#]*)", re.IGNORECASE | re.MULTILINE
)
# A group name that can never match a product token, given to the groups that are not ours.
_OTHER_AGENT = "~other"
_DISALLOW_ALL = "User-agent: *\nDisallow: /\n"


def product_token(user_agent: str) -> str:
    """The product token of a User-Agent string, lower-cased; "" when it has none.

    >>> product_token("linkjuice/0.1 (+https://example.com/bot)")
    'linkjuice'
    """
    match = _TOKEN.match(user_agent.strip())
    return match.group(0).lower() if match else ""


class RobotsRules:
    """The rules of one robots.txt as they apply to one crawler.

    Build it with `parse`, `allow_all` or `disallow_all`; it never raises on content.
    """

    __slots__ = ("_parser", "_agent", "_base")

    def __init__(self, parser: Protego, *, agent: str, base: str | None = None) -> None:
        self._parser = parser
        # The name protego matches groups against: our product token, or "*" when we have none.
        self._agent = agent or "*"
        self._base = base

    @classmethod
    def parse(
        cls,
        body: bytes | str,
        *,
        status: int | None,
        user_agent: str,
        url: str | None = None,
    ) -> RobotsRules:
        """Rules from a robots.txt fetch, read the way Google reads it.

        * 2xx: the body is parsed (the first 500 KiB; undecodable bytes are replaced).
        * 3xx, 4xx (404 included): there are no rules, everything is allowed. A 3xx only gets
          here when the redirects were not followed to the end; Google then acts as on a 404.
        * 429, 5xx, other codes, or no response at all (None): the failure is taken to be
          temporary and everything is disallowed.

        `url` is the robots.txt URL; relative ``Sitemap:`` values resolve against it, and are
        dropped without it.
        """
        token = product_token(user_agent)
        if status is None or status == 429 or not 200 <= status < 500:
            return cls.disallow_all(user_agent=user_agent)
        if status >= 300:
            return cls.allow_all(user_agent=user_agent)
        text = _decode(body)
        text = _USER_AGENT_LINE.sub(lambda m: _rename_group(m, token), text)
        return cls(Protego.parse(text), agent=token, base=url)

    @classmethod
    def allow_all(cls, *, user_agent: str = "*") -> RobotsRules:
        """Rules that allow every URL (no robots.txt, or a 4xx)."""
        return cls(Protego.parse(""), agent=product_token(user_agent))

    @classmethod
    def disallow_all(cls, *, user_agent: str = "*") -> RobotsRules:
        """Rules that allow no URL (robots.txt unreachable or failing with 5xx)."""
        return cls(Protego.parse(_DISALLOW_ALL), agent=product_token(user_agent))

    def allowed(self, url: str) -> bool:
        """Whether our crawler may fetch `url` (absolute, or a path)."""
        return self._parser.can_fetch(url, self._agent)

    def crawl_delay(self) -> float | None:
        """Seconds to wait between requests: our group's Crawl-delay, else the ``*`` group's.

        Falling back to ``*`` even when our group exists but sets no delay is the polite reading:
        a site that slows every crawler down rarely means to exempt one it names for other rules.
        """
        delay = self._parser.crawl_delay(self._agent)
        if delay is None and self._agent != "*":
            delay = self._parser.crawl_delay("*")
        return delay

    def sitemaps(self) -> list[str]:
        """The normalised absolute URLs of the ``Sitemap:`` lines, in order, without duplicates."""
        seen: dict[str, None] = {}
        for value in self._parser.sitemaps:
            normalized = normalize_url(value, self._base)
            if normalized is not None:
                seen.setdefault(normalized, None)
        return list(seen)

    def __repr__(self) -> str:
        return f"RobotsRules(agent={self._agent!r})"


def _decode(body: bytes | str) -> str:
    raw = body.encode("utf-8", errors="replace") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_ROBOTS_BYTES:
        raw = raw[:MAX_ROBOTS_BYTES]
        # Drop the cut line: "Disallow: /private" cut to "Disallow: /p" would block too much,
        # and an Allow cut short would allow too much.
        newline = max(raw.rfind(b"\n"), raw.rfind(b"\r"))
        if newline > 0:
            raw = raw[:newline]
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    # One line ending, so that the user-agent lines are found wherever protego finds them.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _rename_group(match: re.Match[str], token: str) -> str:
    """Rename a user-agent line's group to our token, "*" or a name that matches nothing."""
    value = match.group("value").strip()
    if value == "*" or value.startswith(("* ", "*\t")):
        name = "*"
    else:
        name = product_token(value)
        if not token or name != token:
            name = _OTHER_AGENT
    return f"User-agent: {name}"


"""Records shared by the pipeline stages.

Field names equal the column names in the DuckDB store and in every export, so a record, a row and
a CSV column always mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "LinkPosition",
    "ExtractedLink",
    "ExtractedPage",
    "FetchResult",
    "FoundIn",
    "RenderedDom",
]


class LinkPosition(StrEnum):
    """Where a link sits on its page; decides how much juice the link passes (reasonable surfer)."""

    CONTENT = "content"
    ASIDE = "aside"
    HEADER = "header"
    NAV = "nav"
    FOOTER = "footer"
    # A link found in the content area that repeats on most pages of the site: a template link.
    TEMPLATE = "template"


class FoundIn(StrEnum):
    """Where a link was found when pages are rendered (crawl --render): in the HTML the server
    sent, in the DOM after JavaScript ran, or in both. Crawls without rendering write RAW."""

    RAW = "raw"
    RENDERED = "rendered"
    BOTH = "both"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractedLink:
    """One <a href> (or <area href>) found on a page."""

    url: str  # absolute and normalised; may be external
    anchor: str  # visible text, or the alt text of an image inside the link
    rel: str  # lower-case rel tokens that matter here, space separated ("nofollow ugc")
    nofollow: bool  # rel=nofollow/ugc/sponsored, or the page's meta robots nofollow
    position: LinkPosition
    link_order: int  # 0-based order of the link in the document


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractedPage:
    """What the HTML extractor reads from one page."""

    title: str | None = None
    h1: str | None = None
    meta_robots: str | None = None  # lower-case content of <meta name=robots>, e.g. "noindex,follow"
    canonical: str | None = None  # absolute, normalised
    lang: str | None = None
    word_count: int = 0  # words of the main text
    main_text: str = ""  # text of the main content (no nav/header/footer/aside/script/style)
    headings: str = ""  # h2-h6 texts, newline separated
    links: list[ExtractedLink] = field(default_factory=list)
    problem: str | None = None  # why only part of the page was read (pathological markup), if so


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedDom:
    """One page after headless Chromium loaded it and ran its JavaScript (linkjuice.crawl.render)."""

    url: str  # the document's URL once settled (history.pushState may change it)
    html: str | None  # the serialised DOM; None when rendering failed
    error: str | None = None  # why rendering failed ("render failed: timeout after 20s")
    script_errors: int = 0  # uncaught JavaScript exceptions while the page settled
    render_ms: float | None = None


@dataclass(slots=True, kw_only=True)
class FetchResult:
    """The outcome of one HTTP request (one hop: redirects are not followed by the fetcher)."""

    url: str
    status: int | None  # None when no response arrived
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    encoding: str | None = None  # from the Content-Type charset, if any
    response_time_ms: float | None = None
    location: str | None = None  # the raw Location header of a redirect
    error: str | None = None  # "timeout", "connection: ...", "body too large", ...
    truncated: bool = False  # the body was cut at the size cap
    rendered: RenderedDom | None = None  # crawl --render: the page as the browser built it

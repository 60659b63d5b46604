"""Known export layouts: header signatures, column aliases and value parsers.

Every layout is recognised by header *names*, never positions (vendors reorder and add columns).
Names are compared after `normalize_header` (lower case, single spaces). The sources and confidence
of each header are in /work/shared/FORMATS.md, summarised in docs/imports.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..urls import normalize_url

__all__ = [
    "BacklinkFormat",
    "BACKLINK_FORMATS",
    "GENERIC_BACKLINKS",
    "GSC_LINKS_TOP_PAGES",
    "GSC_LINKS_LATEST",
    "GSC_LINKS_TOP_SITES",
    "GscColumns",
    "GSC_REQUIRED",
    "GSC_QUERY_COLUMNS",
    "detect_gsc_performance",
    "EdgeColumns",
    "EDGE_REQUIRED",
    "detect_edge_list",
    "URL_COLUMN_ALIASES",
    "GA4_PAGE_COLUMNS",
    "WEIGHT_COLUMN_ALIASES",
    "find_column",
    "parse_number",
    "parse_flag",
    "is_lost",
    "to_url",
    "domain_of",
]


def find_column(names: Sequence[str], aliases: Sequence[str]) -> int | None:
    """Index of the first alias (in alias order) present in `names`."""
    index = {name: i for i, name in reversed(list(enumerate(names)))}
    for alias in aliases:
        if alias in index:
            return index[alias]
    return None


def _has_all(names: Sequence[str], groups: Sequence[Sequence[str]]) -> bool:
    present = set(names)
    return all(any(a in present for a in group) for group in groups)


# -- values -----------------------------------------------------------------------------------
_SPACES = re.compile(r"[\s\u00a0\u202f']")
_TRUE = frozenset({"true", "yes", "y", "1", "+", "x", "t", "wahr", "ja", "oui", "si", "sí", "nofollow"})
_FALSE = frozenset({"false", "no", "n", "0", "-", "f", "", "falsch", "nein", "non", "dofollow", "follow"})


def parse_number(text: str, *, decimal_comma: bool = False) -> float | None:
    """A number as exports write it: "1,204" (thousands), "1.234" / "3,45" (decimal comma files),
    "12.5%" (a percentage stays 12.5; the caller divides). None for empty; ValueError for junk."""
    value = _SPACES.sub("", text).rstrip("%")
    if not value or value in {"-", "—", "n/a", "N/A"}:
        return None
    if decimal_comma:
        value = value.replace(".", "").replace(",", ".")
    else:
        value = value.replace(",", "")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def parse_flag(text: str) -> bool | None:
    """true/false, yes/no, 1/0, +/-, nofollow/dofollow; None when unrecognised."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def is_lost(text: str) -> bool:
    """A "lost" column (a date, a flag or a reason): anything but empty/false means lost."""
    return text.strip().lower() not in _FALSE


_BARE_HOST = re.compile(r"^(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?::\d+)?(?:[/?].*)?$", re.IGNORECASE)


def to_url(text: str, base: str | None) -> str | None:
    """An absolute, normalised URL from an export cell: full URLs, bare hosts ("www.x.com/a",
    which Majestic and GSC write) and, with a base, paths ("/blog/x", what GA4 writes)."""
    value = text.strip()
    if not value:
        return None
    if "://" not in value and _BARE_HOST.match(value):
        value = "http://" + value
    if value.startswith("/") and not value.startswith("//"):
        return normalize_url(value, base) if base else None
    if value.startswith("//"):
        return normalize_url("https:" + value)
    return normalize_url(value)


def domain_of(host_or_url: str) -> str | None:
    """The referring domain: host, lower case, without "www." (a public-suffix list is not used:
    blog.example.com and example.com count as two domains, as Ahrefs and GSC count them)."""
    value = host_or_url.strip().lower()
    if not value:
        return None
    if "://" in value:
        value = value.split("://", 1)[1]
    value = value.split("/", 1)[0].split("?", 1)[0].split("@")[-1].split(":", 1)[0].strip(".")
    if value.startswith("www."):
        value = value[4:]
    return value if "." in value and " " not in value else None


# -- backlink exports -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class BacklinkFormat:
    """A backlink export layout: its signature and which columns give each of our fields.

    Each field lists aliases in order of preference; the first present wins.
    """

    tool: str  # stored in backlinks.tool
    label: str
    signature: tuple[tuple[str, ...], ...]  # one name of every group must be present
    target: tuple[str, ...] = ()
    source_url: tuple[str, ...] = ()
    source_domain: tuple[str, ...] = ()
    authority: tuple[str, ...] = ()
    anchor: tuple[str, ...] = ()
    nofollow: tuple[str, ...] = ()  # flag columns, any true means not followed (nofollow/ugc/sponsored)
    follow: tuple[str, ...] = ()  # flag columns where true means followed (Moz "Followable")
    rel: tuple[str, ...] = ()  # free text holding rel tokens ("nofollow", "ugc", "sponsored")
    lost: tuple[str, ...] = ()  # non-empty means the tool says the link is gone
    origin: tuple[str, ...] = ()  # Moz "Origin": External/Internal
    nonempty_flags: bool = False  # Majestic: flags are empty when false, anything else is true

    def matches(self, names: Sequence[str]) -> bool:
        return _has_all(names, self.signature)


_AHREFS_V3 = BacklinkFormat(
    tool="ahrefs", label="Ahrefs backlinks",
    signature=(("referring page url",), ("target url",), ("domain rating", "ur")),
    target=("target url",), source_url=("referring page url",), authority=("domain rating", "ur"),
    anchor=("anchor",), nofollow=("nofollow", "ugc", "sponsored"), lost=("lost",),
)
_AHREFS_V2 = BacklinkFormat(
    tool="ahrefs", label="Ahrefs backlinks (old v2 layout)",
    signature=(("referring page url",), ("link url",), ("textpre", "link anchor")),
    target=("link url",), source_url=("referring page url",),
    authority=("domain rating", "url rating (desc)", "url rating"), anchor=("link anchor",), rel=("type",),
)
_SEMRUSH = BacklinkFormat(
    tool="semrush", label="Semrush backlinks",
    signature=(("source url",), ("target url",), ("page ascore", "page score")),
    target=("target url",), source_url=("source url",), authority=("page ascore", "page score"),
    anchor=("anchor",), nofollow=("nofollow", "sponsored", "ugc"), lost=("lost link",),
)
_MAJESTIC = BacklinkFormat(
    tool="majestic", label="Majestic backlinks",
    signature=(("target url", "targeturl"), ("source url", "sourceurl"),
               ("flagnofollow", "sourcetrustflow", "source trust flow", "sourcecitationflow", "source citation flow")),
    target=("target url", "targeturl"), source_url=("source url", "sourceurl"),
    authority=("sourcetrustflow", "source trust flow", "domain trust flow", "sourcecitationflow", "source citation flow"),
    anchor=("anchor text", "anchortext"), nofollow=("flagnofollow", "nofollow"),
    lost=("flagdeleted", "datelost"), nonempty_flags=True,
)
_MOZ = BacklinkFormat(
    tool="moz", label="Moz inbound links",
    signature=(("url",), ("target url",), ("domain authority", "spam score")),
    target=("target url",), source_url=("url",), authority=("domain authority", "page authority"),
    anchor=("anchor text",), nofollow=("only rel=nofollow", "nofollow"), follow=("followable",),
    origin=("origin",),
)
# Search Console "Links" report exports; English and Hebrew headers are confirmed (FORMATS.md 5a).
GSC_LINKS_TOP_PAGES = BacklinkFormat(
    tool="gsc", label="Search Console top linked pages",
    signature=(("target page",), ("incoming links",), ("linking sites",)),
    target=("target page",),
)
GSC_LINKS_LATEST = BacklinkFormat(
    tool="gsc", label="Search Console latest links",
    signature=(("linking page", "דף מקשר"), ("last crawled", "נסרק לאחרונה")),
    target=("target page",), source_url=("linking page", "דף מקשר"),
)
GSC_LINKS_TOP_SITES = BacklinkFormat(
    tool="gsc", label="Search Console top linking sites",
    signature=(("site",), ("linking pages",), ("target pages",)),
)

_TARGET_ALIASES = ("target url", "target", "target page", "target_url", "destination", "destination url",
                   "to", "link url", "linked page", "url to", "landing page")
_SOURCE_URL_ALIASES = ("source url", "source", "source_url", "referring page url", "referring page",
                       "referring url", "linking page", "source page", "from", "url from", "backlink",
                       "backlink url", "referrer")
_SOURCE_DOMAIN_ALIASES = ("source domain", "source_domain", "referring domain", "referring_domain",
                          "linking domain", "linking site", "domain", "ref domain", "site")
GENERIC_BACKLINKS = BacklinkFormat(
    tool="generic", label="generic backlink CSV",
    signature=(_TARGET_ALIASES, _SOURCE_URL_ALIASES + _SOURCE_DOMAIN_ALIASES),
    target=_TARGET_ALIASES, source_url=_SOURCE_URL_ALIASES, source_domain=_SOURCE_DOMAIN_ALIASES,
    authority=("authority", "domain rating", "dr", "domain authority", "da", "authority score", "ascore",
               "page ascore", "trust flow", "tf", "citation flow", "cf", "page authority", "pa", "url rating",
               "ur", "weight", "score"),
    anchor=("anchor", "anchor text", "anchor_text", "link text"),
    nofollow=("nofollow", "no follow", "is_nofollow", "is nofollow"), follow=("follow", "dofollow", "followed"),
    rel=("rel", "link rel", "link type"),
)

BACKLINK_FORMATS: tuple[BacklinkFormat, ...] = (
    _AHREFS_V3, _AHREFS_V2, _SEMRUSH, _MAJESTIC, _MOZ,
    GSC_LINKS_TOP_PAGES, GSC_LINKS_LATEST, GSC_LINKS_TOP_SITES,
)


# -- Search Console performance export --------------------------------------------------------
# English and German are confirmed (FORMATS.md 5b); the French and Spanish names are our guesses.
_GSC_PAGE = ("top pages", "page", "pages", "häufigste seiten", "seite", "pages les plus populaires",
             "page principale", "páginas principales", "página", "url")
_GSC_CLICKS = ("clicks", "klicks", "clics")
_GSC_IMPRESSIONS = ("impressions", "impressionen", "impresiones")
_GSC_CTR = ("ctr", "klickrate", "durchschnittliche ctr")
_GSC_POSITION = ("position", "average position", "durchschnittliche position", "posición", "posición media")
GSC_QUERY_COLUMNS = ("top queries", "queries", "query", "häufigste suchanfragen", "suchanfrage",
                     "requêtes les plus fréquentes", "consultas principales")


@dataclass(frozen=True, slots=True)
class GscColumns:
    page: int
    clicks: int
    impressions: int
    ctr: int | None
    position: int | None


def detect_gsc_performance(names: Sequence[str]) -> GscColumns | None:
    page, clicks, impressions = (find_column(names, a) for a in (_GSC_PAGE, _GSC_CLICKS, _GSC_IMPRESSIONS))
    if page is None or clicks is None or impressions is None:
        return None
    return GscColumns(page, clicks, impressions, find_column(names, _GSC_CTR), find_column(names, _GSC_POSITION))


GSC_REQUIRED = {"page": _GSC_PAGE, "clicks": _GSC_CLICKS, "impressions": _GSC_IMPRESSIONS}


# -- URL lists, GA4, priorities ---------------------------------------------------------------
GA4_PAGE_COLUMNS = ("landing page + query string", "landing page", "page path + query string",
                    "page path and screen class", "page path", "seitenpfad und bildschirmklasse",
                    "landingpage", "página de destino")
URL_COLUMN_ALIASES = ("url", "urls", "address", "page url", "page", "loc", "location", "link", "permalink",
                      "top pages", "target url", "full url", "canonical url", *GA4_PAGE_COLUMNS)
WEIGHT_COLUMN_ALIASES = ("weight", "priority", "importance", "value", "score", "gewicht")


# -- link graphs ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EdgeColumns:
    """Which file column (by index) feeds each field of a link-graph import."""

    screaming_frog: bool
    columns: dict[str, int]  # field -> column index in the header

    @property
    def label(self) -> str:
        return "Screaming Frog All Inlinks" if self.screaming_frog else "generic edge list"


_SF_SIGNATURE = (("source", "from"), ("destination", "to"), ("type", "link type", "link position", "follow", "status code"))
_EDGE_FIELDS: dict[str, tuple[str, ...]] = {
    "source": ("source", "source url", "source_url", "from", "src", "from url"),
    "target": ("destination", "target", "target url", "target_url", "to", "dst", "to url", "destination url"),
    "kind": ("type", "link type"),
    "anchor": ("anchor", "anchor text", "anchor_text", "link text"),
    "alt": ("alt text",),
    "position": ("link position", "position", "dom_position", "link_position"),
    "rel": ("rel",),
    "follow": ("follow",),
    "nofollow": ("nofollow",),
    "status": ("status code", "status_code", "http status code", "target status", "status"),
    "link_order": ("link_order", "link order", "order"),
}
EDGE_REQUIRED = {"source": _EDGE_FIELDS["source"], "target": _EDGE_FIELDS["target"]}


def detect_edge_list(names: Sequence[str]) -> EdgeColumns | None:
    """Screaming Frog All Inlinks (by its columns), or a generic edge list with a source and a
    target column; None when either is missing."""
    if find_column(names, EDGE_REQUIRED["source"]) is None or find_column(names, EDGE_REQUIRED["target"]) is None:
        return None
    sf = _has_all(names, _SF_SIGNATURE)
    mapping: dict[str, int] = {}
    for field, aliases in _EDGE_FIELDS.items():
        if field == "status" and sf:
            aliases = ("status code", "http status code")  # SF's "Status" is the reason phrase
        i = find_column(names, aliases)
        if i is not None:
            mapping[field] = i
    if sf:
        i = find_column(names, ("status",))
        if i is not None:
            mapping["status_text"] = i
    elif "kind" in mapping:
        del mapping["kind"]  # only Screaming Frog's Type column has the vocabulary we filter on
    return EdgeColumns(screaming_frog=sf, columns=mapping)

"""Read one fetched HTML page: its links and where each sits, its metadata and its main text.

Crawled HTML is hostile input, so `extract_page` never raises, never evaluates anything and strips
control characters from every text it returns.

Link positions follow the reasonable-surfer idea: a link in the body copy passes more authority
than one in a menu or footer. A link's position is decided from its DOM ancestors in two tiers:

1. semantic elements and ARIA landmark roles (``<nav>``, ``role=banner``, ...), nearest wins;
2. otherwise class/id naming conventions (``main-nav``, ``sidebar``, ``site-footer``), nearest wins;
3. otherwise `LinkPosition.CONTENT`.

A header or footer inside ``<article>``/``<main>`` is the article's own (a byline, tags) and counts
as content. Class rules favour precision over recall: a navigation link wrongly left as CONTENT is
caught later by the site-wide TEMPLATE pass, but a body-copy link wrongly demoted is not.
"""

from __future__ import annotations

import codecs
import itertools
import re
import threading
from typing import NamedTuple

from selectolax.lexbor import LexborCSSSelector, LexborHTMLParser, LexborNode

from linkjuice.models import ExtractedLink, ExtractedPage, LinkPosition
from linkjuice.urls import normalize_url

__all__ = ["extract_page"]

_MAX_ANCHOR_CHARS = 500
_MAX_FIELD_CHARS = 2000  # title, h1, meta robots: a hostile page could make them megabytes long
_MAX_LANG_CHARS = 64

_NAV, _HEADER, _FOOTER = LinkPosition.NAV, LinkPosition.HEADER, LinkPosition.FOOTER
_ASIDE, _CONTENT = LinkPosition.ASIDE, LinkPosition.CONTENT

# --------------------------------------------------------------------------------------------
# CSS queries
#
# `tree.css()` creates a CSS engine per parsed document on its first query (about as long as parsing
# a small page); one engine per thread serves every document instead (it holds no document state).

_engines = threading.local()


def _css(node: LexborNode | None, query: str) -> list[LexborNode]:
    """`node.css(query)`."""
    if node is None:
        return []
    engine = getattr(_engines, "engine", None)
    if engine is None:
        engine = _engines.engine = LexborCSSSelector()
    return engine.find(query, node)


def _css_first(node: LexborNode | None, query: str) -> LexborNode | None:
    """`node.css_first(query)`."""
    if node is None:
        return None
    engine = getattr(_engines, "engine", None)
    if engine is None:
        engine = _engines.engine = LexborCSSSelector()
    found = engine.find_first(query, node)
    return found[0] if found else None


# --------------------------------------------------------------------------------------------
# Text cleaning

# C0/C1 controls except the whitespace ones (str.split collapses those), plus the bidi embedding,
# override and isolate controls that can make a report display text other than what it holds.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_WORDS = re.compile(r"\w+")
# ASCII characters that are not word characters (\w): as spaces, str.split counts the words.
_ASCII_NON_WORDS = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})


def _word_count(text: str) -> int:
    r"""The number of `\w+` runs; without the regex's list of strings for ASCII text (3x faster)."""
    if text.isascii():
        return len(text.translate(_ASCII_NON_WORDS).split())
    return len(_WORDS.findall(text))


def _clean(text: str | None) -> str:
    """Remove control characters and collapse whitespace runs to single spaces."""
    if not text:
        return ""
    if text.isprintable():  # no control characters nor line breaks (the usual anchor): skip the regex
        # Its only whitespace is " " (the one printable space): text without a double or an edge
        # space is clean already, and testing that costs less than splitting a paragraph.
        if "  " in text or text[0] == " " or text[-1] == " ":
            return " ".join(text.split())
        return text
    return " ".join(_CONTROL.sub("", text).split())


# --------------------------------------------------------------------------------------------
# Decoding

_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([a-z0-9._:+-]{1,40})""", re.IGNORECASE
)
_SNIFF_BYTES = 4096  # the HTML standard stops at 1024; real pages often declare later
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Browsers read these labels as the listed superset (WHATWG Encoding), and so do we.
_SUPERSETS = {
    "ascii": "cp1252", "iso8859-1": "cp1252", "iso8859-9": "cp1254",
    "iso8859-11": "cp874", "tis-620": "cp874", "gb2312": "gb18030", "gbk": "gb18030",
    "euc_kr": "cp949", "shift_jis": "cp932", "big5": "big5hkscs",
}
# Python codecs that are not web encodings: they interpret backslashes or may yield lone surrogates.
_REFUSED = {"utf-7", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"}


def _codec(label: str | bytes | None, *, declared_in_page: bool = False) -> str | None:
    """The Python codec for an encoding label, or None when it is unknown or not a text encoding."""
    if not label:
        return None
    try:
        name = (label.decode("ascii") if isinstance(label, bytes) else label).strip().lower()
        if name.startswith("windows-"):
            name = "cp" + name[8:]  # Python lacks some WHATWG labels, e.g. windows-874
        info = codecs.lookup(name)
    except (LookupError, UnicodeError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("_", "-") in _REFUSED:
        return None
    if declared_in_page and info.name.startswith(("utf-16", "utf-32")):
        return "utf-8"  # a declaration readable as ASCII cannot be UTF-16 (WHATWG rule)
    return _SUPERSETS.get(info.name, info.name)


def _decode(body: bytes, encoding: str | None) -> bytes:
    """Decode `body` (BOM, then `encoding`, then <meta> charset, then UTF-8) and re-encode as UTF-8.

    The parser reads bytes as UTF-8, so handing it clean UTF-8 leaves it nothing to guess.
    """
    candidates = [bom_codec for bom, bom_codec in _BOMS if body.startswith(bom)]
    candidates.append(_codec(encoding))
    match = _META_CHARSET.search(body, 0, _SNIFF_BYTES)
    if match:
        candidates.append(_codec(match.group(1), declared_in_page=True))
    for codec in candidates:
        if codec is not None:
            try:
                text = body.decode(codec, errors="replace")
            except (LookupError, UnicodeError, ValueError, TypeError):
                continue  # some codecs ignore errors="replace"; try the next candidate
            return text.encode("utf-8", errors="replace")  # "replace" also drops lone surrogates
    return body.decode("utf-8", errors="replace").encode("utf-8")


# --------------------------------------------------------------------------------------------
# Pathological nesting
#
# An HTML5 tree builder looks down its stack of open elements at many start tags (is a <p> open
# "in button scope"?), so parsing costs about the sum, over the start tags, of the nesting depth:
# quadratic for deeply nested markup (lexbor: 40,000 nested <div>s take ~6 s; a 10 MB page of
# them would take hours). We estimate that sum from the tags alone and parse only the part of the
# page that fits a budget (~0.3 s); ordinary pages are orders of magnitude below it.

_FLAT_NAMES = (
    "area base br col embed hr img input link meta param source track wbr "
    "p li dt dd option optgroup rb rt rp tr td th tbody thead tfoot colgroup"
)
_END = r"(?![a-z0-9-])"
# Each tag becomes one token byte, in document order: \x01 a start tag that does not nest (void,
# or closing a sibling), \x02 an end tag that does not count, \x03 an end tag, \x04 a start tag.
_TOKEN_SUBS = (
    (re.compile(rf"<(?:{'|'.join(_FLAT_NAMES.split())}){_END}".encode()), b"\x01"),
    (re.compile(rf"</(?:{'|'.join(_FLAT_NAMES.split())}){_END}".encode()), b"\x02"),
    (re.compile(rb"</[a-z]"), b"\x03"),
    (re.compile(rb"<[a-z]"), b"\x04"),
)
_TAG = re.compile(rb"</?[a-z]")
_BLANK_TOKENS = bytes.maketrans(b"\x01\x02\x03\x04", b"    ")
_KEEP_TOKENS = bytes(b for b in range(256) if b not in (1, 2, 3, 4))
_NESTING_WORK = 30_000_000


def _nesting_cut(data: bytes, budget: int = _NESTING_WORK) -> int | None:
    """The byte offset where the estimated parse work passes `budget`, or None when it never does.

    Depth is a walk (+1 per nesting start tag, -1 per end tag) held at zero from below, which is
    the walk minus its running minimum; done with regex substitutions and numpy, it costs a few
    tens of milliseconds for a 10 MB page.
    """
    tags = data.count(b"<")
    if tags * tags // 2 <= budget:  # even one unbroken nest of every tag stays within it
        return None
    import numpy as np  # here: only pages with thousands of tags get this far (workers start faster)

    text = data.lower().translate(_BLANK_TOKENS)
    tokens = text
    for pattern, token in _TOKEN_SUBS:
        tokens = pattern.sub(token, tokens)
    kinds = np.frombuffer(tokens.translate(None, _KEEP_TOKENS), dtype=np.uint8)
    if len(kinds) == 0:
        return None
    step = np.select([kinds == 4, kinds == 3], [1, -1], 0).astype(np.int64)
    walk = np.cumsum(step)
    depth = walk - np.minimum(np.minimum.accumulate(walk), 0)
    before = np.concatenate(([0], depth[:-1]))  # depth when each tag is met
    work = np.cumsum(np.where((kinds == 1) | (kinds == 4), before, 0))
    over = int(np.searchsorted(work, budget, side="right"))
    if over >= len(kinds):
        return None
    match = next(itertools.islice(_TAG.finditer(text), over, None))
    return match.start()


# --------------------------------------------------------------------------------------------
# Regions: which part of the page an element belongs to

_SEMANTIC_TAGS = {"nav": _NAV, "header": _HEADER, "footer": _FOOTER, "aside": _ASIDE}
_LANDMARK_ROLES = {
    "navigation": _NAV, "banner": _HEADER, "contentinfo": _FOOTER, "complementary": _ASIDE,
}
_CONTAINER_TAGS = {"article", "main"}
_CONTAINER_ROLES = {"article", "main"}

# Class/id words (and separator-less compounds) naming a region.
_REGION_WORDS: dict[str, LinkPosition] = {
    **dict.fromkeys((
        "nav", "navs", "navbar", "navigation", "navi", "navlinks", "navlist", "menu", "menus",
        "menubar", "mainnav", "mainmenu", "topnav", "topmenu", "subnav", "submenu", "sidenav",
        "sitenav", "globalnav", "megamenu", "breadcrumb", "breadcrumbs", "crumbs",
    ), _NAV),
    **dict.fromkeys(("header", "masthead", "topbar", "siteheader", "globalheader"), _HEADER),
    **dict.fromkeys(("footer", "colophon", "sitefooter", "globalfooter"), _FOOTER),
    # Not bare "widget": page builders (Elementor) put it on every content block.
    **dict.fromkeys(("sidebar", "sidebars", "aside", "widgets", "widgetarea", "related"), _ASIDE),
}
# A token holding one of these describes a state or a layout, not a region ("has-sidebar",
# "menu-toggle", "content-sidebar-wrap").
_NEGATIVE_WORDS = frozenset((
    "has", "no", "with", "without", "is", "toggle", "toggler", "trigger", "open", "opened",
    "closed", "btn", "button", "icon", "icons", "layout", "hide", "hidden", "show", "content",
))
# "header"/"footer" also name components ("card-header", "entry-footer"), so they count only when
# every other word of the token is one of these site-level words.
_SITE_WORDS = frozenset((
    "site", "main", "global", "primary", "top", "bottom", "upper", "lower", "wrap", "wrapper",
    "container", "inner", "outer", "area", "region", "bar", "links", "link", "nav", "menu",
    "widgets", "widget", "sticky", "fixed", "mobile", "desktop", "copyright", "legal", "info",
    "js", "c", "l", "o", "u",
))
# When one token names several regions, the more specific placement wins: "footer-nav" is footer.
_PRIORITY = {_HEADER: 1, _NAV: 2, _ASIDE: 3, _FOOTER: 4}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ASCII_WORD = re.compile(r"[a-z]+")
# Elements worth classifying: a semantic tag, a role, or a class/id holding a stem (ASCII case
# aside). The CSS engine pre-filters so Python only sees a few.
_CLASS_STEMS = ("nav", "menu", "crumb", "header", "masthead", "topbar", "footer", "colophon",
                "sidebar", "aside", "widget", "related")
_CANDIDATE_TAGS = frozenset(("nav", "header", "footer", "aside", "article", "main", "noscript"))
_SEMANTIC_QUERY = ", ".join((*sorted(_CANDIDATE_TAGS), "[role]"))
_CANDIDATES = ", ".join((
    _SEMANTIC_QUERY, *(f'[{attr}*="{stem}" i]' for stem in _CLASS_STEMS for attr in ("class", "id")),
))
# The same elements when few have a class or id: the 24 substring tests cost the CSS engine about
# 0.5 µs an element, more than testing the few classed elements here.
_CLASSED_CANDIDATES = f"{_SEMANTIC_QUERY}, [class], [id]"
_STEM = re.compile("|".join(_CLASS_STEMS), re.IGNORECASE | re.ASCII)  # ASCII-only, like CSS's i


def _token_region(token: str) -> LinkPosition | None:
    """The region named by one class/id token, e.g. "main-nav" -> NAV, "entry-header" -> None."""
    words = _ASCII_WORD.findall(_CAMEL.sub("-", token).lower())
    if not words or not _NEGATIVE_WORDS.isdisjoint(words):
        return None
    kinds = {_REGION_WORDS[w] for w in words if w in _REGION_WORDS}
    joined = _REGION_WORDS.get("".join(words))
    if joined is not None:
        kinds.add(joined)
    if _HEADER in kinds or _FOOTER in kinds:
        others = [w for w in words if w not in _REGION_WORDS]
        if not _SITE_WORDS.issuperset(others):
            kinds -= {_HEADER, _FOOTER}
    return max(kinds, key=_PRIORITY.__getitem__, default=None)


def _class_region(names: str) -> LinkPosition | None:
    """The region named by a class/id attribute value (several tokens)."""
    kinds = [kind for token in names.split() if (kind := _token_region(token)) is not None]
    return max(kinds, key=_PRIORITY.__getitem__, default=None)


class _Own(NamedTuple):
    """What an element says about itself."""

    region: LinkPosition | None
    semantic: bool  # from the tag or an ARIA role (tier 1), not from class/id (tier 2)
    container: bool  # <article>, <main> or their roles
    main: bool  # <main> or role=main
    noscript: bool


class _State(NamedTuple):
    """What an element inherits from itself and its ancestors."""

    in_container: bool
    semantic: LinkPosition | None  # nearest tier-1 region
    conventional: LinkPosition | None  # nearest tier-2 region
    in_noscript: bool
    position: str  # of a link inside: the LinkPosition value, decided once per state, not per link


_ROOT_STATE = _State(False, None, None, False, _CONTENT.value)


def _own_of(node: LexborNode) -> _Own | None:
    tag = node.tag
    if tag in ("html", "head", "body"):  # their classes are page state: "nav-open", "has-sidebar"
        return None
    attrs = node.attributes
    roles = (attrs.get("role") or "").lower().split()
    container = tag in _CONTAINER_TAGS or not _CONTAINER_ROLES.isdisjoint(roles)
    main = tag == "main" or "main" in roles
    noscript = tag == "noscript"
    region = _SEMANTIC_TAGS.get(tag or "")
    if region is None:
        region = next((_LANDMARK_ROLES[r] for r in roles if r in _LANDMARK_ROLES), None)
    if region is not None:
        return _Own(region, True, container, main, noscript)
    region = None
    if not container:  # an article or main is content by definition, whatever its class says
        region = _class_region(f"{attrs.get('class') or ''} {attrs.get('id') or ''}")
    if region is None and not (container or noscript):
        return None
    return _Own(region, False, container, main, noscript)


def _candidates(tree: LexborHTMLParser, html: bytes) -> list[LexborNode]:
    """The elements matching _CANDIDATES, in document order (an element may come twice).

    Where few elements have a class (counted roughly in the markup: the choice only decides the
    speed), the engine selects every element with a class or id and the stems are tested here.
    """
    if html.count(b"class=") * 8 >= html.count(b"<"):
        return _css(tree.root, _CANDIDATES)
    found = []
    for node in _css(tree.root, _CLASSED_CANDIDATES):
        attrs = node.attributes
        if (node.tag in _CANDIDATE_TAGS or "role" in attrs or _STEM.search(attrs.get("class") or "")
                or _STEM.search(attrs.get("id") or "")):
            found.append(node)
    return found


class _Regions:
    """Region state of elements, computed once per element and memoised by node identity.

    Every lookup walks up only to the nearest already-known ancestor, so the work over a whole
    page is linear in the number of elements visited, however deep or repetitive the markup.
    """

    def __init__(self, tree: LexborHTMLParser, html: bytes) -> None:
        self.own: dict[int, _Own] = {}
        self.region_nodes: list[LexborNode] = []  # elements that name a region, in document order
        for node in _candidates(tree, html):
            own = _own_of(node)
            if own is not None:
                self.own[node.mem_id] = own
                if own.region is not None:
                    self.region_nodes.append(node)
        self._memo: dict[int, _State] = {}

    def state(self, node: LexborNode | None) -> _State:
        memo, own = self._memo, self.own
        path: list[int] = []
        state = _ROOT_STATE
        while node is not None:
            key = node.mem_id
            known = memo.get(key)
            if known is not None:
                state = known
                break
            path.append(key)
            node = node.parent
        for key in reversed(path):
            step = own.get(key)
            if step is not None:  # most elements say nothing about regions: they inherit as is
                state = self._step(state, step)
            memo[key] = state
        return state

    def is_region(self, node: LexborNode) -> bool:
        """True when `node` starts a non-content region (a content header/footer does not)."""
        own = self.own.get(node.mem_id)
        if own is None or own.region is None:
            return False
        return not (own.region in (_HEADER, _FOOTER) and self.state(node.parent).in_container)

    @staticmethod
    def _step(parent: _State, own: _Own) -> _State:
        semantic, conventional = parent.semantic, parent.conventional
        if own.main:
            conventional = None  # <main> is the main content, whatever a wrapper's class says
        region = own.region
        if region is not None and not (region in (_HEADER, _FOOTER) and parent.in_container):
            if own.semantic:
                semantic = region
            else:
                conventional = region
        return _State(
            parent.in_container or own.container, semantic, conventional,
            parent.in_noscript or own.noscript, (semantic or conventional or _CONTENT).value,
        )


# --------------------------------------------------------------------------------------------
# Links

_LINKS = "a[href], area[href]"
_REL_TOKENS = ("nofollow", "ugc", "sponsored")


def _anchor_text(node: LexborNode, attrs: dict[str, str | None]) -> str:
    """Visible text, else alt text of images inside, else the area's alt, aria-label or title."""
    text = _clean(node.text())
    if not text:
        text = _clean(" ".join(img.attributes.get("alt") or "" for img in _css(node, "img[alt]")))
    if not text:
        for name in ("alt", "aria-label", "title"):
            if name == "alt" and node.tag != "area":
                continue
            text = _clean(attrs.get(name))
            if text:
                break
    return text[:_MAX_ANCHOR_CHARS].rstrip()


_MAX_SHARED_HREFS = 200_000


def _shared_hrefs(base: str | None, strip_tracking: bool) -> dict[str, str | None]:
    """The cache of root-relative and absolute hrefs for base's origin (one origin at a time per
    thread and process: a crawl has one, and a page of another origin starts afresh)."""
    origin = base.split("/", 3)[:3] if base else []
    key = ("/".join(origin), strip_tracking)
    cache = getattr(_engines, "hrefs", None)
    if cache is None or cache[0] != key:
        cache = _engines.hrefs = (key, {})
    return cache[1]


def _resolve(href: str, base: str | None, strip_tracking: bool, shared: dict[str, str | None],
             page: dict[str, str | None]) -> str | None:
    """normalize_url(href, base), remembered: in `shared` (see _shared_hrefs) when the href means
    the same on every page of base's origin (root-relative or absolute), else in `page`."""
    url = normalize_url(href, base, strip_tracking=strip_tracking)
    if href.startswith(("/", "http://", "https://")) and not href.startswith("//"):
        if len(shared) >= _MAX_SHARED_HREFS:
            shared.clear()
        shared[href] = url
    else:
        page[href] = url
    return url


class _LinkColumns(NamedTuple):
    """A page's links as columns (cheap to build and to send between processes)."""

    urls: list[str]
    anchors: list[str]
    rels: list[str]
    positions: list[str]  # LinkPosition values


def _extract_links(
    tree: LexborHTMLParser,
    regions: _Regions,
    base: str | None,
    *,
    strip_tracking: bool,
    max_links: int,
) -> _LinkColumns:
    links = _LinkColumns([], [], [], [])
    if max_links <= 0:
        return links
    urls, anchors, rels, positions = links
    resolved: dict[str, str | None] = {}  # hrefs repeat (logo and "Home"); normalising is the cost
    # Root-relative and absolute hrefs mean the same on every page of an origin: most of a page's
    # links were met on earlier pages (navigation, popular targets), and a dict lookup is ~20x
    # cheaper than normalize_url's own cache.
    shared = _shared_hrefs(base, strip_tracking)
    state_of = regions.state
    for node in _css(tree.root, _LINKS):
        state = state_of(node.parent)
        if state.in_noscript:
            continue  # search engines render with scripts on, so they never see these links
        attrs = node.attributes
        href = (attrs.get("href") or "").strip()
        if not href or href.startswith("#"):
            continue  # in-page jumps are not links to another resource
        if href in shared:
            url = shared[href]
        elif href in resolved:
            url = resolved[href]
        else:
            url = _resolve(href, base, strip_tracking, shared, resolved)
        if url is None:
            continue
        rel = attrs.get("rel")
        if rel:
            rel_tokens = set(rel.lower().split())
            rel = " ".join(t for t in _REL_TOKENS if t in rel_tokens)
        urls.append(url)
        anchors.append(_anchor_text(node, attrs))
        rels.append(rel or "")
        positions.append(state.position)
        if len(urls) >= max_links:
            break
    return links


# --------------------------------------------------------------------------------------------
# Main text

_NOT_TEXT = "script, style, noscript, template, svg, [hidden]"
_BLOCKS = ", ".join((
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hgroup", "hr", "legend", "li", "main", "nav", "ol", "option", "p", "pre",
    "section", "summary", "table", "tr", "ul", "td", "th",
))
_CELLS = {"td", "th"}
# Marks block boundaries in the flattened text. Safe: the HTML parser drops NUL from body text.
_BREAK = "\x00"


def _main_text(tree: LexborHTMLParser, regions: _Regions, max_chars: int) -> str:
    """The visible text of the main content, one line per block. Mutates the tree: call it last."""
    body = tree.body
    if body is None or max_chars <= 0:
        return ""
    # Decide first, then detach (lexbor detaches, it does not free): detaching a node inside an
    # already detached subtree is harmless.
    dropped = _css(body, _NOT_TEXT)
    dropped += [node for node in regions.region_nodes if regions.is_region(node)]
    for node in dropped:
        node.decompose(recursive=False)
    root = _css_first(body, "main, [role~=main i]")
    if root is None:
        articles = _css(body, "article")
        root = articles[0] if len(articles) == 1 else body
    for candidate in (root, body):
        # Each block holds a few characters at least, so blocks past max_chars // 4 lie beyond the
        # cap: leaving them unmarked bounds the work on huge pages.
        for node in _css(candidate, _BLOCKS)[: max_chars // 4]:
            if node.tag in _CELLS:
                node.insert_after(" ")
            else:
                node.insert_before(_BREAK)
                node.insert_after(_BREAK)
        # At most 2 * (max_chars // 4) + 1 chunks (see above): cleaning them all, then cutting the
        # joined text, costs less than counting the size line by line.
        lines = [line for chunk in candidate.text().split(_BREAK) if chunk and (line := _clean(chunk))]
        if lines or candidate is body:
            return "\n".join(lines)[:max_chars].rstrip()
    return ""


# --------------------------------------------------------------------------------------------
# Page metadata


def _node_text(node: LexborNode | None) -> str | None:
    """A title's or heading's text; an image-only heading is named by its alt text."""
    if node is None:
        return None
    text = _clean(node.text())
    if not text:
        text = _clean(" ".join(img.attributes.get("alt") or "" for img in _css(node, "img[alt]")))
    return text[:_MAX_FIELD_CHARS]


def _in_svg(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag == "svg":
            return True
        parent = parent.parent
    return False


def _titles(tree: LexborHTMLParser) -> tuple[LexborNode | None, LexborNode | None, list[LexborNode]]:
    """The first <title> outside SVG, the first <h1>, and the h2-h6 elements: one query."""
    title = h1 = None
    headings = []
    for node in _css(tree.root, "title, h1, h2, h3, h4, h5, h6"):
        tag = node.tag
        if tag == "title":
            if title is None and not _in_svg(node):
                title = node
        elif tag == "h1":
            if h1 is None:
                h1 = node
        else:
            headings.append(node)
    return title, h1, headings


def _head(tree: LexborHTMLParser) -> tuple[str | None, str | None, str | None]:
    """<base href>, the combined meta robots directives and the canonical href: one query.

    Robots are the contents of <meta name=robots> then of <meta name=googlebot>, in document order;
    the canonical is the href of the first <link> whose rel holds "canonical".
    """
    base = canonical = None
    found: dict[str, list[str]] = {"robots": [], "googlebot": []}
    for node in _css(tree.root, "base[href], meta[name][content], link[rel][href]"):
        tag, attrs = node.tag, node.attributes
        if tag == "meta":
            name = (attrs.get("name") or "").strip().lower()
            if name in found:
                content = _clean(attrs.get("content")).lower()
                if content:
                    found[name].append(content)
        elif tag == "link":
            if canonical is None and "canonical" in (attrs.get("rel") or "").lower().split():
                canonical = attrs.get("href")
        elif tag == "base" and base is None:
            base = attrs.get("href") or ""
    robots = ", ".join(found["robots"] + found["googlebot"])[:_MAX_FIELD_CHARS] or None
    return base, robots, canonical


class PageColumns(NamedTuple):
    """What `extract_columns` reads from a page: `ExtractedPage` with the links as columns.

    Plain strings, lists and numbers only, so that a worker process can send it back cheaply.
    A link's nofollow is `page_nofollow or bool(rel)`, its link_order its index.
    """

    title: str | None
    h1: str | None
    meta_robots: str | None
    canonical: str | None
    lang: str | None
    word_count: int
    main_text: str
    headings: str
    problem: str | None
    page_nofollow: bool
    link_urls: list[str]
    anchors: list[str]
    rels: list[str]
    positions: list[str]


def extract_page(
    body: bytes,
    url: str,
    *,
    encoding: str | None = None,
    strip_tracking: bool = False,
    max_links: int = 10000,
    max_text_chars: int = 100_000,
) -> ExtractedPage:
    """Extract links, metadata and main text from one HTML page; never raises on any input.

    Args:
        body: the raw response body.
        url: the page's (final) URL; relative links resolve against it, or against <base href>.
        encoding: the charset from the Content-Type header, if any. A byte-order mark overrides
            it; without either, a <meta> charset declaration is used, then UTF-8. Undecodable
            bytes become U+FFFD.
        strip_tracking: remove tracking query parameters (utm_*, gclid, ...) from link URLs and
            the canonical URL.
        max_links: keep at most this many links (in document order).
        max_text_chars: cap on `main_text` (and on `headings`).
    """
    page = extract_columns(body, url, encoding=encoding, strip_tracking=strip_tracking,
                           max_links=max_links, max_text_chars=max_text_chars)
    return ExtractedPage(
        title=page.title,
        h1=page.h1,
        meta_robots=page.meta_robots,
        canonical=page.canonical,
        lang=page.lang,
        word_count=page.word_count,
        main_text=page.main_text,
        headings=page.headings,
        links=[
            ExtractedLink(url=link_url, anchor=anchor, rel=rel, nofollow=page.page_nofollow or bool(rel),
                          position=LinkPosition(position), link_order=order)
            for order, (link_url, anchor, rel, position)
            in enumerate(zip(page.link_urls, page.anchors, page.rels, page.positions))
        ],
        problem=page.problem,
    )


def extract_columns(
    body: bytes,
    url: str,
    *,
    encoding: str | None = None,
    strip_tracking: bool = False,
    max_links: int = 10000,
    max_text_chars: int = 100_000,
) -> PageColumns:
    """`extract_page` with the links as columns: what the crawler stores, without one object per
    link (the crawl's hot path, and what worker processes send back)."""
    data = _decode(body, encoding)
    problem = None
    cut = _nesting_cut(data)
    if cut is not None:
        data = data[:cut]
        problem = f"markup nested too deeply: read the first {cut} bytes only"
    try:
        tree = LexborHTMLParser(data)
    except Exception:  # noqa: BLE001 - the parser's only failures are allocation errors
        return PageColumns(None, None, None, None, None, 0, "", "", "the HTML parser failed", False, [], [], [], [])

    base = url
    base_href, meta_robots, canonical_href = _head(tree)
    if base_href is not None:
        base = normalize_url(base_href, url) or url

    robots_tokens = set(re.split(r"[\s,]+", meta_robots or ""))
    page_nofollow = not robots_tokens.isdisjoint(("nofollow", "none"))

    canonical = None
    if canonical_href:
        # Usually an href that links on earlier pages had (the page was found through one).
        shared = _shared_hrefs(base, strip_tracking)
        canonical = shared[canonical_href] if canonical_href in shared else _resolve(
            canonical_href, base, strip_tracking, shared, {})
    html = tree.root
    lang = _clean(html.attributes.get("lang")) if html is not None and html.tag == "html" else ""
    title_node, h1_node, heading_nodes = _titles(tree)
    headings = "\n".join(text for node in heading_nodes if (text := _clean(node.text())))

    regions = _Regions(tree, data)
    links = _extract_links(tree, regions, base, strip_tracking=strip_tracking, max_links=max_links)
    title = _node_text(title_node)
    h1 = _node_text(h1_node)
    main_text = _main_text(tree, regions, max_text_chars)  # last: it mutates the tree
    return PageColumns(
        title, h1, meta_robots, canonical, lang[:_MAX_LANG_CHARS] or None,
        _word_count(main_text), main_text, headings[:max_text_chars], problem, page_nofollow,
        *links,
    )

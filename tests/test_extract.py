"""Tests for linkjuice.crawl.extract; every page is given as bytes, as the fetcher delivers it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linkjuice.crawl.extract as extract_module
from linkjuice.crawl.extract import extract_page
from linkjuice.models import ExtractedLink, ExtractedPage, LinkPosition

PAGE_URL = "https://example.com/blog/post.html"


def page(body: str, head: str = "", **kwargs: object) -> ExtractedPage:
    html = f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"
    return extract_page(html.encode(), PAGE_URL, **kwargs)  # type: ignore[arg-type]


def link_to(result: ExtractedPage, path: str) -> ExtractedLink:
    matches = [link for link in result.links if link.url == "https://example.com" + path]
    assert len(matches) == 1, [link.url for link in result.links]
    return matches[0]


def position_of(body: str) -> LinkPosition:
    """The position of the link to /target in `body`."""
    return link_to(page(body), "/target").position


def test_public_api() -> None:
    assert extract_module.__all__ == ["extract_page"]


# --- positions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('<p><a href="/target">x</a></p>', LinkPosition.CONTENT),
        ('<nav><ul><li><a href="/target">x</a></li></ul></nav>', LinkPosition.NAV),
        ('<header><a href="/target">x</a></header>', LinkPosition.HEADER),
        ('<footer><p><a href="/target">x</a></p></footer>', LinkPosition.FOOTER),
        ('<aside><a href="/target">x</a></aside>', LinkPosition.ASIDE),
        # nearest ancestor wins
        ('<header><nav><a href="/target">x</a></nav></header>', LinkPosition.NAV),
        ('<nav><header><a href="/target">x</a></header></nav>', LinkPosition.HEADER),
        ('<footer><aside><a href="/target">x</a></aside></footer>', LinkPosition.ASIDE),
    ],
)
def test_semantic_elements(body: str, expected: LinkPosition) -> None:
    assert position_of(body) == expected


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("navigation", LinkPosition.NAV),
        ("banner", LinkPosition.HEADER),
        ("contentinfo", LinkPosition.FOOTER),
        ("complementary", LinkPosition.ASIDE),
        ("NAVIGATION", LinkPosition.NAV),
        ("main", LinkPosition.CONTENT),
    ],
)
def test_aria_roles(role: str, expected: LinkPosition) -> None:
    assert position_of(f'<div role="{role}"><span><a href="/target">x</a></span></div>') == expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ('class="main-nav"', LinkPosition.NAV),
        ('class="navbar navbar-expand-lg"', LinkPosition.NAV),
        ('id="mainNav"', LinkPosition.NAV),
        ('class="breadcrumbs"', LinkPosition.NAV),
        ('class="menu"', LinkPosition.NAV),
        ('id="masthead"', LinkPosition.HEADER),
        ('class="site-header"', LinkPosition.HEADER),
        ('class="footer-links"', LinkPosition.FOOTER),
        ('id="colophon"', LinkPosition.FOOTER),
        ('id="siteFooter"', LinkPosition.FOOTER),
        ('class="sidebar"', LinkPosition.ASIDE),
        ('class="widget-area"', LinkPosition.ASIDE),
        ('class="related-posts"', LinkPosition.ASIDE),
        # a footer menu is footer: the more specific placement wins
        ('class="footer-menu"', LinkPosition.FOOTER),
        # component headers/footers, states and layouts are not regions
        ('class="entry-header"', LinkPosition.CONTENT),
        ('class="card-footer"', LinkPosition.CONTENT),
        ('class="menu-toggle"', LinkPosition.CONTENT),
        ('class="content-with-sidebar"', LinkPosition.CONTENT),
        ('class="elementor-widget-container"', LinkPosition.CONTENT),
        ('class="navy-blue unavailable"', LinkPosition.CONTENT),
    ],
)
def test_class_and_id_conventions(attribute: str, expected: LinkPosition) -> None:
    assert position_of(f'<div {attribute}><p><a href="/target">x</a></p></div>') == expected


def test_class_nearest_wins() -> None:
    body = '<div class="sidebar"><div class="sidebar-nav"><a href="/target">x</a></div></div>'
    assert position_of(body) == LinkPosition.ASIDE  # "sidebar-nav": sidebar is more specific
    body = '<div id="footer"><div class="main-nav"><a href="/target">x</a></div></div>'
    assert position_of(body) == LinkPosition.NAV


def test_semantic_elements_beat_class_conventions() -> None:
    assert position_of('<footer><ul class="menu"><li><a href="/target">x</a></ul></footer>') == (
        LinkPosition.FOOTER
    )
    body = '<div class="sidebar"><nav><a href="/target">x</a></nav></div>'
    assert position_of(body) == LinkPosition.NAV


def test_article_and_main_are_never_regions_by_class() -> None:
    assert position_of('<article class="related-post"><a href="/target">x</a></article>') == (
        LinkPosition.CONTENT
    )
    body = '<aside><article class="related-post"><a href="/target">x</a></article></aside>'
    assert position_of(body) == LinkPosition.ASIDE


def test_body_classes_are_page_state_not_regions() -> None:
    html = (
        b'<html><body class="has-sidebar nav-open header-sticky">'
        b'<p><a href="/target">x</a></p></body></html>'
    )
    assert link_to(extract_page(html, PAGE_URL), "/target").position == LinkPosition.CONTENT


def test_main_resets_wrapper_class_conventions() -> None:
    body = '<div class="sidebar-wrap"><main><p><a href="/target">x</a></p></main></div>'
    assert position_of(body) == LinkPosition.CONTENT


def test_content_header_and_footer_inside_article_are_content() -> None:
    result = page(
        '<header><a href="/home">Site</a></header>'
        '<article><header><a href="/author">By Ann</a><nav><a href="/toc">toc</a></nav></header>'
        '<p>Body</p><footer><a href="/tag">tag</a></footer>'
        '<div class="post-footer"><a href="/share">share</a></div></article>'
        '<main><footer role="contentinfo"><a href="/main-footer">m</a></footer></main>'
        '<footer><a href="/legal">legal</a></footer>'
    )
    assert link_to(result, "/home").position == LinkPosition.HEADER
    assert link_to(result, "/author").position == LinkPosition.CONTENT
    assert link_to(result, "/toc").position == LinkPosition.NAV  # a nav stays a nav
    assert link_to(result, "/tag").position == LinkPosition.CONTENT
    assert link_to(result, "/share").position == LinkPosition.CONTENT
    assert link_to(result, "/main-footer").position == LinkPosition.CONTENT
    assert link_to(result, "/legal").position == LinkPosition.FOOTER


def test_template_is_never_assigned() -> None:
    result = page('<nav><a href="/a">a</a></nav><p><a href="/b">b</a></p>' * 5)
    assert LinkPosition.TEMPLATE not in {link.position for link in result.links}


# --- URLs --------------------------------------------------------------------------------------


def test_relative_urls_dot_segments_and_fragments() -> None:
    result = page(
        '<a href="other.html">1</a><a href="../about/./team/">2</a><a href="/x#section">3</a>'
        '<a href="//cdn.example.org/f.pdf">4</a><a href="?page=2">5</a>'
        '<a href="HTTPS://EXAMPLE.com:443/Upper">6</a>'
    )
    assert [link.url for link in result.links] == [
        "https://example.com/blog/other.html",
        "https://example.com/about/team/",
        "https://example.com/x",
        "https://cdn.example.org/f.pdf",
        "https://example.com/blog/post.html?page=2",
        "https://example.com/Upper",
    ]


def test_hrefs_remembered_across_pages_resolve_per_origin_and_setting() -> None:
    """Root-relative and absolute hrefs are remembered between pages of one origin: a page of
    another origin, or tracking parameters stripped, must not get the remembered URLs."""
    html = b'<a href="/x?utm_source=mail&id=1">x</a><a href="http://Other.example/y">y</a><a href="z">z</a>'
    first = extract_page(html, "https://example.com/a/")
    again = extract_page(html, "https://example.com/b/")
    other = extract_page(html, "http://example.org:8080/c/")
    stripped = extract_page(html, "https://example.com/d/", strip_tracking=True)
    assert [link.url for link in first.links] == [
        "https://example.com/x?utm_source=mail&id=1", "http://other.example/y", "https://example.com/a/z"]
    assert [link.url for link in again.links] == [
        "https://example.com/x?utm_source=mail&id=1", "http://other.example/y", "https://example.com/b/z"]
    assert [link.url for link in other.links] == [
        "http://example.org:8080/x?utm_source=mail&id=1", "http://other.example/y", "http://example.org:8080/c/z"]
    assert [link.url for link in stripped.links] == [
        "https://example.com/x?id=1", "http://other.example/y", "https://example.com/d/z"]


def test_non_http_and_in_page_links_are_skipped() -> None:
    result = page(
        '<a href="mailto:a@example.com">m</a><a href="javascript:alert(1)">j</a>'
        '<a href="tel:+123">t</a><a href="data:text/html,hi">d</a><a href="">e</a>'
        '<a href="#">h</a><a href="#top">top</a><a>no href</a><a href="/kept">k</a>'
    )
    assert [link.url for link in result.links] == ["https://example.com/kept"]
    assert result.links[0].link_order == 0


def test_base_href() -> None:
    result = page('<a href="page">p</a><a href="/root">r</a>', head='<base href="/docs/v2/">')
    assert [link.url for link in result.links] == [
        "https://example.com/docs/v2/page",
        "https://example.com/root",
    ]
    result = page(
        '<a href="page">p</a>',
        head='<base target="_blank"><base href="https://other.example/a/"><base href="/ignored/">',
    )
    assert result.links[0].url == "https://other.example/a/page"


def test_area_links() -> None:
    result = page('<map name="m"><area href="/region" alt="The region"><area alt="no href"></map>')
    assert [(link.url, link.anchor) for link in result.links] == [
        ("https://example.com/region", "The region")
    ]


def test_strip_tracking() -> None:
    body = '<a href="/p?utm_source=news&id=3&gclid=abc">p</a>'
    assert page(body).links[0].url == "https://example.com/p?utm_source=news&id=3&gclid=abc"
    assert page(body, strip_tracking=True).links[0].url == "https://example.com/p?id=3"


def test_links_inside_noscript_and_template_are_ignored() -> None:
    result = page(
        '<noscript><a href="/nojs">n</a></noscript><template><a href="/tpl">t</a></template>'
    )
    assert result.links == []


# --- anchors and rel ---------------------------------------------------------------------------


def test_anchor_text() -> None:
    result = page(
        '<a href="/a">  Read\n\t the <b>full</b>   story </a>'
        '<a href="/b"><img src="l.png" alt=" Company  logo "></a>'
        '<a href="/c" aria-label="Close menu"><svg></svg></a>'
        '<a href="/d" title="Title text"></a>'
        '<a href="/e"><img src="x.png"></a>'
        f'<a href="/f">{"word " * 200}</a>'
    )
    anchors = {link.url.rsplit("/", 1)[1]: link.anchor for link in result.links}
    assert anchors["a"] == "Read the full story"
    assert anchors["b"] == "Company logo"
    assert anchors["c"] == "Close menu"
    assert anchors["d"] == "Title text"
    assert anchors["e"] == ""
    assert len(anchors["f"]) <= 500 and anchors["f"].startswith("word word")


def test_rel_tokens() -> None:
    result = page(
        '<a href="/a" rel="Sponsored NOFOLLOW noopener">a</a><a href="/b" rel="ugc">b</a>'
        '<a href="/c" rel="noopener external">c</a><a href="/d">d</a>'
    )
    assert [(link.rel, link.nofollow) for link in result.links] == [
        ("nofollow sponsored", True),
        ("ugc", True),
        ("", False),
        ("", False),
    ]


@pytest.mark.parametrize(
    ("meta", "nofollow"),
    [
        ('<meta name="robots" content="noindex, NOFOLLOW">', True),
        ('<meta name="ROBOTS" content="none">', True),
        ('<meta name="googlebot" content="nofollow">', True),
        ('<meta name="robots" content="index, follow">', False),
        ('<meta name="bingbot" content="nofollow">', False),
    ],
)
def test_meta_robots_nofollow(meta: str, nofollow: bool) -> None:
    result = page('<a href="/a">a</a>', head=meta)
    assert result.links[0].nofollow is nofollow
    assert result.links[0].rel == ""


def test_meta_robots_combined() -> None:
    result = page(
        "",
        head=(
            '<meta name="googlebot" content="NoArchive">'
            '<meta name="Robots" content="NoIndex,Follow">'
        ),
    )
    assert result.meta_robots == "noindex,follow, noarchive"
    assert page("").meta_robots is None


# --- metadata ----------------------------------------------------------------------------------


def test_metadata() -> None:
    result = extract_page(
        b'<html lang="en-GB"><head><title>\n  Hello \t World </title>'
        b'<link rel="stylesheet" href="/s.css"><link rel="Canonical" href="../canon/?utm_medium=x">'
        b"</head><body><svg><title>icon</title></svg><h1>First <em>heading</em></h1><h1>Second</h1>"
        b"<h2>Sub one</h2><section><h3> Sub\n two </h3></section><h6>Six</h6></body></html>",
        PAGE_URL,
        strip_tracking=True,
    )
    assert result.title == "Hello World"
    assert result.h1 == "First heading"
    assert result.lang == "en-GB"
    assert result.canonical == "https://example.com/canon/"
    assert result.headings == "Sub one\nSub two\nSix"


def test_missing_metadata() -> None:
    result = extract_page(b"<p>just text</p>", PAGE_URL)
    assert (result.title, result.h1, result.canonical, result.lang, result.meta_robots) == (
        None, None, None, None, None,
    )
    assert result.headings == ""


def test_canonical_respects_base() -> None:
    head = '<base href="https://cdn.example.com/x/"><link rel="canonical" href="c">'
    result = page("", head=head)
    assert result.canonical == "https://cdn.example.com/x/c"


def test_image_only_h1_uses_alt() -> None:
    assert page('<h1><img src="logo.png" alt="Acme Corp"></h1>').h1 == "Acme Corp"


# --- main text ---------------------------------------------------------------------------------


def test_main_text_excludes_boilerplate_and_scripts() -> None:
    result = page(
        '<header class="site-header"><a href="/">Brand</a></header>'
        "<nav>Home About Contact</nav>"
        '<div class="sidebar">Popular posts</div>'
        "<div><p>First paragraph with <b>bold</b> words.</p>"
        "<script>var secret = 'script text';</script><style>.x{color:red}</style>"
        "<noscript>Enable JS</noscript><p hidden>invisible</p>"
        "<ul><li>Item one</li><li>Item two</li></ul>Tail text</div>"
        "<footer>Copyright 2024</footer>"
    )
    assert result.main_text == "First paragraph with bold words.\nItem one\nItem two\nTail text"
    assert result.word_count == 11


def test_main_text_prefers_main_and_keeps_content_header() -> None:
    result = page(
        "<div>Outside of main</div>"
        "<main><article><header><h1>Post title</h1><p>By Ann</p></header>"
        "<p>Body   text\n spanning\tlines.</p>"
        '<div class="related-posts">Read next</div><aside>Pull quote</aside>'
        "<footer>Tags: one</footer></article></main>"
    )
    assert result.main_text == "Post title\nBy Ann\nBody text spanning lines.\nTags: one"
    assert result.word_count == 10


def test_main_text_role_main_and_single_article() -> None:
    assert page('<p>menu</p><div role="main"><p>Real</p></div>').main_text == "Real"
    assert page("<p>intro</p><article><p>Story</p></article>").main_text == "Story"
    # several articles (a listing page): the whole body counts
    assert page("<p>intro</p><article>A</article><article>B</article>").main_text == "intro\nA\nB"


def test_main_text_table_cells_are_separated() -> None:
    result = page("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th></tr></table>")
    assert result.main_text == "a b\nc"


def test_word_count_is_unicode_aware() -> None:
    result = page("<p>Ça coûte 5 € — naïve façade, 東京</p>")
    assert result.word_count == 6


def test_max_text_chars() -> None:
    result = page("<p>" + "abc " * 1000 + "</p><h2>" + "x" * 500 + "</h2>", max_text_chars=100)
    assert len(result.main_text) <= 100
    assert result.main_text.startswith("abc abc")
    assert len(result.headings) <= 100


# --- decoding ----------------------------------------------------------------------------------


def test_charset_from_meta() -> None:
    html = (
        '<html><head><meta charset="iso-8859-1"><title>Café</title></head>'
        "<body><p>Déjà vu</p></body></html>"
    )
    result = extract_page(html.encode("latin-1"), PAGE_URL)
    assert result.title == "Café"
    assert result.main_text == "Déjà vu"


def test_charset_from_http_equiv() -> None:
    html = (
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        "<title>Привет</title>"
    )
    assert extract_page(html.encode("cp1251"), PAGE_URL).title == "Привет"


def test_given_encoding_wins_over_meta_and_bad_labels_fall_back() -> None:
    html = '<meta charset="utf-8"><title>Café</title>'.encode("latin-1")
    assert extract_page(html, PAGE_URL, encoding="latin-1").title == "Café"
    utf8 = '<title>Café</title>'.encode()
    for bogus in ("no-such-codec", "rot13", "base64", "utf-7", "unicode_escape", ""):
        assert extract_page(utf8, PAGE_URL, encoding=bogus).title == "Café"


def test_byte_order_mark() -> None:
    html = "<title>Ünïcode</title>".encode("utf-16")
    assert extract_page(html, PAGE_URL).title == "Ünïcode"


def test_broken_bytes_become_replacement_characters() -> None:
    result = extract_page(b"<title>ok \xff\xfe\xc3 end</title><p>a\x00b\x01c</p>", PAGE_URL)
    assert result.title is not None
    assert result.title.startswith("ok ") and result.title.endswith(" end")
    assert "\ufffd" in result.title
    assert result.main_text == "abc"


def test_control_characters_are_stripped() -> None:
    result = page('<h1>A\x07B\u202eC</h1><a href="/x">li\x1bnk</a><p>t\x0bext\x08</p>')
    assert result.h1 == "ABC"
    assert result.links[0].anchor == "link"
    assert result.main_text == "ABC\nlink\nt ext"


# --- limits and robustness ---------------------------------------------------------------------


def test_max_links_and_link_order() -> None:
    body = "".join(f'<a href="/p{i}">{i}</a>' for i in range(50))
    result = page('<a href="mailto:x@example.com">m</a>' + body, max_links=10)
    assert [link.link_order for link in result.links] == list(range(10))
    assert result.links[-1].url == "https://example.com/p9"
    assert page(body, max_links=0).links == []


def test_large_page() -> None:
    # correctness on a big page; speed is measured by benchmarks, not asserted here
    links = "".join(f'<li><a href="/n{i}">n</a></li>' for i in range(2000))
    paragraphs = "".join(f'<p>Text <a href="/c{i}">c</a></p>' for i in range(3000))
    result = page(f"<nav><ul>{links}</ul></nav><main>{paragraphs}</main>")
    assert len(result.links) == 5000
    assert sum(link.position == LinkPosition.NAV for link in result.links) == 2000
    assert result.word_count == 6000


def test_deeply_nested_markup() -> None:
    body = '<div class="menu">' * 5000 + '<a href="/deep">d</a>' + "</div>" * 5000
    assert link_to(page(body), "/deep").position == LinkPosition.NAV


@pytest.mark.parametrize(
    "body", [b"", b"\x00" * 10, b"<", b"<a href", b"\xef\xbb\xbf", b"\xff\xfe"]
)
def test_degenerate_input(body: bytes) -> None:
    assert isinstance(extract_page(body, PAGE_URL), ExtractedPage)


HTML_PIECES = st.sampled_from([
    "<a href='", "<a href=\"/x\">", "</a>", "<area href=/y>", "<nav>", "</nav>", "<header>",
    "</header>", "<footer role=contentinfo>", "<article>", "</article>", "<main>", "<aside>",
    "<div class='main-nav sidebar'>", "<div id=siteFooter>", "</div>", "<base href=", "<img alt='",
    "<meta charset=", "<meta name=robots content=nofollow>", "<link rel=canonical href=",
    "<script>", "</script>", "<svg>", "<noscript>", "<template>", "<title>", "<h1>", "<h2>", "<p>",
    "<td>", "<br>", "'", '"', ">", "<", "&amp;", "&#0;", "#", "mailto:", "javascript:", "//",
    "http://a.example/", "https://[::1]:99999/", "../", "?utm_source=x", "\x00", "\u202e", "\ud7ff",
    "utf-16", "iso-8859-1", " ",
])
HTML_TEXT = st.lists(st.one_of(HTML_PIECES, st.text(max_size=8)), max_size=60).map("".join)


def _check(result: ExtractedPage) -> None:
    assert isinstance(result, ExtractedPage)
    for order, link in enumerate(result.links):
        assert link.url.startswith("http")
        assert link.link_order == order
        assert len(link.anchor) <= 500
        assert link.position != LinkPosition.TEMPLATE
    texts = [result.main_text, result.headings, result.title or "", result.h1 or ""]
    texts += [link.anchor for link in result.links]
    assert not any(ch < " " and ch != "\n" for text in texts for ch in text)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=2000),
    encoding=st.sampled_from([None, "utf-8", "utf-16", "latin-1", "bogus", "rot13", "idna"]),
)
def test_fuzz_arbitrary_bytes_never_raise(body: bytes, encoding: str | None) -> None:
    _check(extract_page(body, PAGE_URL, encoding=encoding))


@settings(max_examples=200, deadline=None)
@given(text=HTML_TEXT, codec=st.sampled_from(["utf-8", "utf-16", "cp1252", "utf-8-sig"]))
def test_fuzz_html_like_text_never_raises(text: str, codec: str) -> None:
    body = text.encode(codec, errors="replace")
    _check(extract_page(body, PAGE_URL, strip_tracking=True, max_links=20, max_text_chars=300))

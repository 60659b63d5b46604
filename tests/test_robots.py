"""RobotsRules: parsed from bytes, with Google's reading of statuses and limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkjuice.crawl import robots
from linkjuice.crawl.robots import MAX_ROBOTS_BYTES, RobotsRules, product_token

UA = "linkjuice/0.1 (+https://github.com/linkjuice/linkjuice)"
SITE = "https://example.com"


def rules(body: bytes | str, *, status: int | None = 200, user_agent: str = UA) -> RobotsRules:
    return RobotsRules.parse(body, status=status, user_agent=user_agent, url=f"{SITE}/robots.txt")


def test_public_api() -> None:
    assert sorted(robots.__all__) == ["MAX_ROBOTS_BYTES", "RobotsRules", "product_token"]


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        (UA, "linkjuice"),
        ("LinkJuice", "linkjuice"),
        ("  my_bot-2/3.0", "my_bot-"),
        ("Mozilla/5.0 (compatible; Foo)", "mozilla"),
        ("/1.0", ""),
        ("", ""),
    ],
)
def test_product_token(user_agent: str, token: str) -> None:
    assert product_token(user_agent) == token


def test_plain_disallow_and_allow() -> None:
    r = rules(b"User-agent: *\nDisallow: /private/\n")
    assert not r.allowed(f"{SITE}/private/x")
    assert r.allowed(f"{SITE}/public")
    assert r.allowed("/private")  # paths work too; "/private" is not under "/private/"


def test_wildcards_and_end_anchor() -> None:
    r = rules(b"User-agent: *\nDisallow: /*.pdf$\nDisallow: /search*q=\n")
    assert not r.allowed(f"{SITE}/docs/a.pdf")
    assert r.allowed(f"{SITE}/docs/a.pdf?download=1")  # "$" anchors at the end
    assert r.allowed(f"{SITE}/docs/a.pdfx")
    assert not r.allowed(f"{SITE}/search?x=1&q=shoes")
    assert r.allowed(f"{SITE}/search?x=1")


def test_longest_match_wins_and_allow_wins_ties() -> None:
    r = rules(
        b"User-agent: *\n"
        b"Disallow: /shop/\n"
        b"Allow: /shop/public/\n"  # longer than the Disallow: allowed
        b"Disallow: /page\n"
        b"Allow: /page\n"  # same length: Allow wins
        b"Allow: /a\n"
        b"Disallow: /a/b\n"  # longer Disallow beats the shorter Allow
    )
    assert not r.allowed(f"{SITE}/shop/cart")
    assert r.allowed(f"{SITE}/shop/public/item")
    assert r.allowed(f"{SITE}/page")
    assert not r.allowed(f"{SITE}/a/b/c")
    assert r.allowed(f"{SITE}/a/c")


def test_our_group_replaces_the_star_group() -> None:
    r = rules(
        b"User-agent: *\nDisallow: /\n\n"
        b"User-agent: LinkJuice\nDisallow: /admin\n"  # case-insensitive
    )
    assert r.allowed(f"{SITE}/page")
    assert not r.allowed(f"{SITE}/admin")
    other = rules(b"User-agent: *\nDisallow: /\n", user_agent="otherbot/1.0")
    assert not other.allowed(f"{SITE}/page")


def test_group_match_is_by_product_token_equality() -> None:
    body = (
        b"User-agent: *\nDisallow: /star\n\n"
        b"User-agent: link\nDisallow: /link\n\n"  # a prefix of our token: not our group
        b"User-agent: juice\nDisallow: /juice\n"
    )
    r = rules(body)
    assert not r.allowed(f"{SITE}/star")
    assert r.allowed(f"{SITE}/link")
    assert r.allowed(f"{SITE}/juice")
    # A version in the robots.txt's user-agent line is ignored, as Google does.
    versioned = rules(b"User-agent: *\nDisallow: /\n\nUser-agent: linkjuice/2.0\nAllow: /\n")
    assert versioned.allowed(f"{SITE}/page")


def test_group_lines_in_loose_spellings() -> None:
    body = b"User-agent: *\rDisallow: /\r\ruser agent LINKJUICE\rDisallow: /x\r"  # CR-only lines
    r = rules(body)
    assert r.allowed(f"{SITE}/page")
    assert not r.allowed(f"{SITE}/x")
    assert rules(b"useragent:link\nDisallow: /\n").allowed(f"{SITE}/page")


def test_grouped_user_agents_share_rules() -> None:
    r = rules(b"User-agent: otherbot\nUser-agent: linkjuice\nDisallow: /x\n")
    assert not r.allowed(f"{SITE}/x")
    assert r.allowed(f"{SITE}/y")


def test_crawl_delay_per_agent_and_fallback_to_star() -> None:
    body = b"User-agent: *\nCrawl-delay: 5\n\nUser-agent: linkjuice\nCrawl-delay: 1.5\n"
    assert rules(body).crawl_delay() == 1.5
    assert rules(body, user_agent="otherbot").crawl_delay() == 5.0
    # Our group exists but sets no delay: the site-wide delay still applies.
    assert rules(b"User-agent: *\nCrawl-delay: 5\n\nUser-agent: linkjuice\nDisallow: /x\n").crawl_delay() == 5.0
    assert rules(b"User-agent: *\nDisallow: /x\n").crawl_delay() is None
    assert rules(b"User-agent: *\nCrawl-delay: soon\n").crawl_delay() is None


def test_sitemap_lines() -> None:
    r = rules(
        b"Sitemap: https://example.com/sitemap.xml\n"
        b"User-agent: *\nDisallow:\n"
        b"sitemap: HTTPS://Example.com:443/news.xml  # comment\n"
        b"Sitemap: /relative.xml\n"
        b"Sitemap: https://example.com/sitemap.xml\n"  # duplicate
        b"Sitemap: ftp://example.com/nope.xml\n"
    )
    assert r.sitemaps() == [
        "https://example.com/sitemap.xml",
        "https://example.com/news.xml",
        "https://example.com/relative.xml",
    ]
    no_base = RobotsRules.parse(b"Sitemap: /relative.xml\n", status=200, user_agent=UA)
    assert no_base.sitemaps() == []


def test_str_body_and_bom() -> None:
    r = rules("\ufeffUser-agent: *\nDisallow: /é\n")
    assert not r.allowed(f"{SITE}/%C3%A9")
    r = rules(b"\xef\xbb\xbfUser-agent: *\r\nDisallow: /x\r\n")
    assert not r.allowed(f"{SITE}/x")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451, 301, 304])
def test_4xx_allows_everything(status: int) -> None:
    r = rules(b"User-agent: *\nDisallow: /\nCrawl-delay: 9\nSitemap: https://example.com/s.xml\n", status=status)
    assert r.allowed(f"{SITE}/anything")
    assert r.crawl_delay() is None
    assert r.sitemaps() == []  # an error page's body is not a robots.txt


@pytest.mark.parametrize("status", [None, 500, 502, 503, 599, 429, 100, 0, 600])
def test_5xx_or_no_response_disallows_everything(status: int | None) -> None:
    r = rules(b"User-agent: *\nAllow: /\n", status=status)
    assert not r.allowed(f"{SITE}/")
    assert not r.allowed(f"{SITE}/page")


def test_allow_all_and_disallow_all() -> None:
    assert RobotsRules.allow_all().allowed(f"{SITE}/x")
    assert RobotsRules.allow_all(user_agent=UA).crawl_delay() is None
    assert RobotsRules.allow_all().sitemaps() == []
    assert not RobotsRules.disallow_all(user_agent=UA).allowed(f"{SITE}/x")


def test_empty_2xx_body_allows_everything() -> None:
    assert rules(b"", status=200).allowed(f"{SITE}/x")
    assert rules(b"", status=204).allowed(f"{SITE}/x")


def test_binary_junk_does_not_raise_and_keeps_readable_rules() -> None:
    junk = bytes(range(256)) * 4
    body = junk + b"\nUser-agent: *\nDisallow: /secret\n" + b"\xff\xfe\x00\x80" + b"\nAllow: /\n"
    r = rules(body)
    assert not r.allowed(f"{SITE}/secret")
    assert r.allowed(f"{SITE}/open")
    assert rules(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 100).allowed(f"{SITE}/x")


def test_huge_file_is_truncated_at_500_kib() -> None:
    head = b"User-agent: *\nDisallow: /early\n"
    filler = b"# " + b"x" * 98 + b"\n"
    padding = filler * ((MAX_ROBOTS_BYTES - len(head)) // len(filler) + 1)
    body = head + padding + b"Disallow: /late\n"
    assert len(body) > MAX_ROBOTS_BYTES
    r = rules(body)
    assert not r.allowed(f"{SITE}/early")
    assert r.allowed(f"{SITE}/late")  # past the limit: ignored


def test_line_cut_by_the_limit_is_dropped() -> None:
    head = b"User-agent: *\n"
    pad = b"#" * (MAX_ROBOTS_BYTES - len(head) - len(b"Disallow: /p") - 1) + b"\n"
    body = head + pad + b"Disallow: /private-area\n"
    # The cap falls inside "/private-area": reading "Disallow: /p" would block /pricing.
    assert len(head + pad + b"Disallow: /p") == MAX_ROBOTS_BYTES
    r = rules(body)
    assert r.allowed(f"{SITE}/pricing")


def test_robots_txt_itself_is_always_allowed() -> None:
    assert rules(b"User-agent: *\nDisallow: /\n").allowed(f"{SITE}/robots.txt")


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=2048), path=st.text(max_size=40))
def test_never_raises_on_arbitrary_bytes(body: bytes, path: str) -> None:
    r = rules(body)
    assert isinstance(r.allowed(f"{SITE}/{path}"), bool)
    delay = r.crawl_delay()
    assert delay is None or delay >= 0
    assert all(s.startswith(("http://", "https://")) for s in r.sitemaps())

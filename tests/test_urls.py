from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkjuice.errors import UsageError
from linkjuice.urls import Scope, normalize_url


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("../b/./c?x=1#top", "HTTP://Example.COM:80/a/d/", "http://example.com/a/b/c?x=1"),
        ("http://ex.com", None, "http://ex.com/"),
        ("https://Ex.com:443?x=1", None, "https://ex.com/?x=1"),
        ("http://ex.com:8080", None, "http://ex.com:8080/"),
        ("//cdn.x.com/a", "https://s.com/", "https://cdn.x.com/a"),
        ("http://ex.com/a/../../b", None, "http://ex.com/b"),
        ("  /x\n/y ", "https://s.com/q/", "https://s.com/x/y"),
        ("http://bücher.ch/x", None, "http://xn--bcher-kva.ch/x"),
        ("?q=1", "https://s.com/a/b", "https://s.com/a/b?q=1"),
        ("#frag", "https://s.com/a", "https://s.com/a"),
        ("http://ex.com/%7efoo/%2fa", None, "http://ex.com/~foo/%2Fa"),
        ("http://ex.com/a b", None, "http://ex.com/a%20b"),
    ],
)
def test_normalize(href: str, base: str | None, expected: str) -> None:
    assert normalize_url(href, base) == expected


@pytest.mark.parametrize("href", ["mailto:a@b.c", "javascript:alert(1)", "tel:123", "data:text/html,x",
                                  "ftp://ex.com/", "http://a b.com/", "http://ex.com:99999/", "", "   ", "http://"])
def test_not_crawlable(href: str) -> None:
    assert normalize_url(href, "https://s.com/") is None


def test_tracking_parameters_removed_only_on_request() -> None:
    url = "https://s.com/p?utm_source=news&id=3&fbclid=xyz"
    assert normalize_url(url, strip_tracking=True) == "https://s.com/p?id=3"
    assert normalize_url(url) == url


def test_normalisation_is_idempotent_on_examples() -> None:
    for raw in ["HTTP://Example.COM:80/a/./b/../c%7e?x=%aa", "https://s.com/é?q=ü"]:
        once = normalize_url(raw)
        assert once is not None and normalize_url(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["https://s.com/a/", "http://[::1]:81/", None]))
def test_fuzz_never_raises_and_is_http(href: str, base: str | None) -> None:
    out = normalize_url(href, base)
    assert out is None or out.startswith(("http://", "https://"))
    if out is not None:
        assert "#" not in out


def test_scope_rules() -> None:
    scope = Scope(host="www.example.com", exclude=[r"/private/"], include=[])
    assert scope.allows("https://www.example.com/a")
    assert scope.allows("https://example.com/a")  # www and the bare domain are one site
    assert not scope.allows("https://blog.example.com/a")
    assert not scope.allows("https://www.example.com/private/x")
    assert scope.same_site("https://www.example.com/private/x")
    assert Scope(host="example.com", subdomains=True).allows("https://blog.example.com/")
    assert not Scope(host="example.com", subdomains=True).allows("https://notexample.com/")
    only_blog = Scope(host="example.com", include=[r"/blog/"])
    assert only_blog.allows("https://example.com/blog/x") and not only_blog.allows("https://example.com/shop/")


def test_bad_regex_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="bad regular expression"):
        Scope(host="x.com", include=["("])

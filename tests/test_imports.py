"""Imports: URL lists, GA4, Search Console, priorities, backlinks (every tool's layout) and link
graphs (Screaming Frog All Inlinks, edge lists), from files written as those tools write them.

Header rows are copied from /work/shared/FORMATS.md; the data rows are invented.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from linkjuice.cli import app
from linkjuice.errors import InputFileError, UsageError
from linkjuice.imports import (
    backlink_authority,
    import_backlinks,
    import_gsc,
    import_links,
    import_priorities,
    import_urls,
    resolve_backlink_targets,
)
from linkjuice.imports.reader import ExportFile
from linkjuice.store import Store

SITE = "https://example.com/"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(textwrap.dedent(text).lstrip("\n").encode(encoding))
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "site.duckdb"


# -- reading files ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("\ufeffa\tb\n".encode("utf-16-le"), "utf-16"),  # Ahrefs: BOM FF FE
        ("a\tb\n".encode("utf-16-le"), "utf-16-le"),  # the same without BOM: NUL every other byte
        ("\ufeffa,b\n".encode("utf-8"), "utf-8-sig"),  # Screaming Frog
        ("a,Café\n".encode("utf-8"), "utf-8"),
        ("a,Café\n".encode("cp1252"), "cp1252"),  # Excel on Windows
    ],
)
def test_encoding_is_sniffed(tmp_path: Path, data: bytes, encoding: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert ExportFile(path).encoding == encoding


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"\n\n  \n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
        (b"PK\x03\x04\x14\x00\x06\x00[Content_Types].xml", "Excel workbook"),
        (bytes(range(256)) * 4, "binary data"),
    ],
)
def test_non_csv_files_are_refused_with_one_clear_line(tmp_path: Path, db: Path, data: bytes, message: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    with pytest.raises(InputFileError, match=message) as info:
        import_backlinks(db, path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert not db.exists()  # no empty store left behind by a failed first import


def test_invalid_utf8_after_the_sniffed_head_names_its_line(tmp_path: Path, db: Path) -> None:
    good = "".join(f"https://blog{i}.example/post,https://example.com/\n" for i in range(3000))
    path = tmp_path / "links.csv"
    path.write_bytes(b"Source URL,Target URL\n" + good.encode() + b"https://bad.example/caf\xe9,https://example.com/\n")
    with pytest.raises(InputFileError, match=r"line 3002: is not valid UTF-8 text \(byte 0xe9\)"):
        import_backlinks(db, path)


# -- URL lists and GA4 ------------------------------------------------------------------------
def test_plain_url_list_normalises_and_reports_junk_with_line_numbers(tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "urls.txt", """
        # URLs from the old sitemap
        HTTP://Example.COM/About/#team
        https://example.com/a,b

        not a url
        https://example.com/about/
        mailto:someone@example.com
        """)
    report = import_urls(db, path)
    assert rows(db, "SELECT url, source FROM imported_urls ORDER BY url") == [
        ("http://example.com/About/", "list:urls.txt"),
        ("https://example.com/a,b", "list:urls.txt"),  # commas belong to URLs in a plain list
        ("https://example.com/about/", "list:urls.txt"),
    ]
    junk = report.skipped_for("not an http(s) URL")
    assert junk is not None and junk.count == 2 and junk.lines == (5, 7)


GA4_LANDING = """
    # ----------------------------------------
    # Landing page
    # Account: Example
    # Property: example.com - GA4
    # Start date: 20250901
    # End date: 20250930
    # ----------------------------------------
    Landing page,Sessions,Active users,New users,Average engagement time per session,Key events,Total revenue
    /blog/hiking-boots/,1234,1100,950,45.2,12,0
    /,980,900,700,30.1,3,0
    (not set),20,18,18,0,0,0
    /shop/?utm_source=x,5,5,5,1,0,0
    Grand total,2239,2023,1673,38.0,15,0

    Date,Sessions
    20250901,50
    """


def test_ga4_landing_pages_are_resolved_against_the_site_and_the_table_ends_at_a_blank_line(
        tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "ga4.csv", GA4_LANDING)
    report = import_urls(db, path, base_url="https://Example.com")
    assert [r[0] for r in rows(db, "SELECT url FROM imported_urls ORDER BY url")] == [
        "https://example.com/", "https://example.com/blog/hiking-boots/", "https://example.com/shop/?utm_source=x",
    ]
    assert report.format.startswith("GA4 export (Landing page)")
    not_set = report.skipped_for("not a page")
    total = report.skipped_for("total row")
    assert not_set is not None and not_set.lines == (11,)
    assert total is not None and total.lines == (13,)
    assert report.skipped_rows == 2  # the Date table after the blank line is not read as URLs


def test_ga4_paths_without_a_site_fail_naming_the_option(tmp_path: Path, db: Path) -> None:
    with pytest.raises(InputFileError, match=r"line 9: .*give --base-url"):
        import_urls(db, write(tmp_path / "ga4.csv", GA4_LANDING))


def test_paths_use_the_crawl_start_url(tmp_path: Path, db: Path) -> None:
    with Store(db) as store:
        store.set_meta({"start_url": "https://www.example.org/"})
    import_urls(db, write(tmp_path / "ga4.csv", GA4_LANDING))
    assert ("https://www.example.org/blog/hiking-boots/",) in rows(db, "SELECT url FROM imported_urls")


def test_csv_with_a_url_column_and_reimport_replacing_only_its_own_rows(tmp_path: Path, db: Path) -> None:
    # Screaming Frog's Internal export names its URL column "Address".
    sf = write(tmp_path / "internal_all.csv", """
        "Address","Content Type","Status Code","Indexability"
        "https://example.com/","text/html; charset=UTF-8","200","Indexable"
        "https://example.com/contact/","text/html; charset=UTF-8","200","Indexable"
        """)
    other = write(tmp_path / "extra.txt", "https://example.com/landing/\n")
    import_urls(db, sf)
    import_urls(db, other)
    import_urls(db, sf)  # again: replaces its two rows, keeps extra.txt's
    assert rows(db, "SELECT source, count(*) FROM imported_urls GROUP BY source ORDER BY source") == [
        ("csv:internal_all.csv", 2), ("list:extra.txt", 1)]
    import_urls(db, other, replace_all=True)
    assert rows(db, "SELECT count(*) FROM imported_urls") == [(1,)]


def test_csv_without_a_url_column_names_what_it_found(tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "x.csv", "Keyword,Volume\nboots,100\n")
    with pytest.raises(InputFileError, match=r"line 1: no URL column: expected one of url, .*\(found: Keyword, Volume\)"):
        import_urls(db, path)


# -- Search Console performance ---------------------------------------------------------------
PAGES_CSV = """
    Top pages,Clicks,Impressions,CTR,Position
    https://example.com/guide/,120,5400,2.22%,8.4
    https://example.com/,"1,204","25,000",4.82%,3.1
    https://example.com/old,abc,10,1%,4
    https://example.com/guide/#section,5,100,5%,10
    """


def test_gsc_pages_csv(tmp_path: Path, db: Path) -> None:
    report = import_gsc(db, write(tmp_path / "Pages.csv", PAGES_CSV))
    got = {r[0]: r[1:] for r in rows(db, "SELECT url, clicks, impressions, ctr, position FROM gsc")}
    assert got["https://example.com/"] == (1204.0, 25000.0, pytest.approx(0.0482), 3.1)
    # The fragment variant normalises to the same page: summed, CTR recomputed, position weighted.
    clicks, impressions, ctr, position = got["https://example.com/guide/"]
    assert (clicks, impressions) == (125.0, 5500.0)
    assert ctr == pytest.approx(125 / 5500) and position == pytest.approx((8.4 * 5400 + 10 * 100) / 5500)
    bad = report.skipped_for("clicks is not a number")
    assert bad is not None and bad.lines == (4,)


def test_gsc_export_zip_picks_pages_csv(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "https___example.com_-Performance-on-Search-2025-10-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Queries.csv", "Top queries,Clicks,Impressions,CTR,Position\nhiking boots,10,100,10%,3\n")
        archive.writestr("Pages.csv", textwrap.dedent(PAGES_CSV).lstrip())
        archive.writestr("Dates.csv", "Date,Clicks,Impressions\n2025-10-01,3,40\n")
        archive.writestr("Filters.csv", "Filter,Value\nSearch type,Web\n")
    report = import_gsc(db, path)
    assert report.rows == 2 and report.path.endswith(":Pages.csv")


def test_gsc_german_export_with_semicolons_and_decimal_commas(tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "Seiten.csv", """
        Häufigste Seiten;Klicks;Impressionen;Klickrate;Position
        https://example.com/ratgeber/;1.234;56.789;3,45 %;12,3
        """, encoding="utf-8-sig")
    import_gsc(db, path)
    assert rows(db, "SELECT * FROM gsc") == [("https://example.com/ratgeber/", 1234.0, 56789.0,
                                              pytest.approx(0.0345), pytest.approx(12.3))]


def test_gsc_queries_table_and_missing_columns_are_named(tmp_path: Path, db: Path) -> None:
    with pytest.raises(InputFileError, match="Queries table"):
        import_gsc(db, write(tmp_path / "Queries.csv", "Top queries,Clicks,Impressions,CTR,Position\nx,1,2,3%,4\n"))
    with pytest.raises(InputFileError, match=r"missing column 'Clicks'"):
        import_gsc(db, write(tmp_path / "p.csv", "Top pages,Impressions,CTR\nhttps://example.com/,2,3%\n"))
    zipped = tmp_path / "only-queries.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("Queries.csv", "Top queries,Clicks,Impressions,CTR,Position\nx,1,2,3%,4\n")
    with pytest.raises(InputFileError, match=r"without a Search Console pages table .*Queries.csv"):
        import_gsc(db, zipped)


# -- priorities -------------------------------------------------------------------------------
def test_priorities_headerless_with_optional_weights(tmp_path: Path, db: Path) -> None:
    report = import_priorities(db, write(tmp_path / "money.txt", """
        https://example.com/pricing/,5
        https://example.com/signup/
        https://example.com/pricing/,2
        https://example.com/demo/,-1
        https://example.com/a,b
        """))
    assert rows(db, "SELECT url, weight FROM priorities ORDER BY url") == [
        ("https://example.com/a,b", 1.0), ("https://example.com/pricing/", 5.0), ("https://example.com/signup/", 1.0)]
    negative = report.skipped_for("weight is negative")
    assert negative is not None and negative.lines == (4,)


def test_priorities_csv_with_header(tmp_path: Path, db: Path) -> None:
    report = import_priorities(db, write(tmp_path / "p.csv", """
        URL,Priority,Owner
        https://example.com/pricing/,3,sales
        https://example.com/x/,high,sales
        https://example.com/y/,,sales
        """))
    assert rows(db, "SELECT url, weight FROM priorities ORDER BY url") == [
        ("https://example.com/pricing/", 3.0), ("https://example.com/y/", 1.0)]
    bad = report.skipped_for("weight is not a number")
    assert bad is not None and bad.lines == (3,)


# -- backlinks: each tool ---------------------------------------------------------------------
AHREFS_HEADER = ("Referring page title\tReferring page URL\tLanguage\tPlatform\tReferring page HTTP code\t"
                 "Domain rating\tUR\tDomain traffic\tReferring domains\tLinked domains\tExternal links\t"
                 "Page traffic\tKeywords\tTarget URL\tLeft context\tAnchor\tRight context\tType\tContent\t"
                 "Nofollow\tUGC\tSponsored\tRendered\tRaw\tLost status\tDrop reason\tDiscovered status\t"
                 "First seen\tLast seen\tLost\tAuthor\tPage type\tPage category\tLinks in group")


def ahrefs_row(source: str, dr: str, target: str, anchor: str, nofollow: str = "false", ugc: str = "false",
               lost: str = "") -> str:
    cells = ["Best kitchen tips", source, "en", "WordPress", "200", dr, "35", "15000", "820", "140", "56",
             "1200", "310", target, "We recommend the", anchor, "from Target.", "text", "true", nofollow, ugc,
             "false", "false", "true", "", "", "", "2024-03-02 10:15:00", "2025-11-20 08:01:12", lost, "Jane Doe",
             "article", "Home & Garden", "1"]
    return "\t".join(f'"{c}"' for c in cells)


def test_ahrefs_utf16_tab_export(tmp_path: Path, db: Path) -> None:
    lines = [
        "\t".join(f'"{h}"' for h in AHREFS_HEADER.split("\t")),
        ahrefs_row("https://blog.example/kitchen", "72", "https://example.com/guide", "steel kitchen guide"),
        ahrefs_row("https://www.forum.example/t/1", "40.5", "https://example.com/", "Küche", nofollow="true"),
        ahrefs_row("https://ugc.example/p", "10", "https://example.com/", "x", ugc="true"),
        ahrefs_row("https://gone.example/p", "50", "https://example.com/", "old", lost="2025-01-02"),
        ahrefs_row("https://bad.example/p", "n/a?", "https://example.com/", "x"),
    ]
    path = tmp_path / "example.com-backlinks.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-16-le"))
    report = import_backlinks(db, path)
    assert report.format.startswith("Ahrefs backlinks, UTF-16, tab-separated")
    assert rows(db, "SELECT * FROM backlinks ORDER BY source_url") == [
        ("https://example.com/guide", "https://blog.example/kitchen", "blog.example", 72.0, False,
         "steel kitchen guide", "ahrefs"),
        ("https://example.com/", "https://ugc.example/p", "ugc.example", 10.0, True, "x", "ahrefs"),
        ("https://example.com/", "https://www.forum.example/t/1", "forum.example", 40.5, True, "Küche", "ahrefs"),
    ]
    lost, bad = report.skipped_for("lost link"), report.skipped_for("Domain rating is not a number")
    assert lost is not None and lost.lines == (5,)
    assert bad is not None and bad.lines == (6,)


def test_ahrefs_utf8_comma_variant(tmp_path: Path, db: Path) -> None:
    header = ",".join(AHREFS_HEADER.split("\t"))
    row = ahrefs_row("https://blog.example/kitchen", "72", "https://example.com/guide", "guide").replace("\t", ",")
    import_backlinks(db, write(tmp_path / "a.csv", header + "\n" + row + "\n", encoding="utf-8-sig"))
    assert rows(db, "SELECT tool, authority FROM backlinks") == [("ahrefs", 72.0)]


def test_semrush_current_and_old_headers(tmp_path: Path, db: Path) -> None:
    current = write(tmp_path / "semrush.csv", """
        Page ascore,Source title,Source url,Target url,Anchor,External links,Internal links,Nofollow,Sponsored,Ugc,Text,Frame,Form,Image,Sitewide,First seen,Last seen,New link,Lost link
        23,"Best hiking boots 2025 - Outdoor Blog",https://blog.example/boots,https://example.com/boots/,hiking boots,45,120,false,false,false,true,false,false,false,false,2024-05-12,2025-11-18,false,false
        11,"Deals, deals",https://deals.example/x,https://example.com/,,3,9,false,true,false,true,false,false,false,true,2024-05-12,2025-11-18,false,false
        30,"Gone",https://gone.example/x,https://example.com/,x,3,9,false,false,false,true,false,false,false,true,2024-05-12,2025-11-18,false,true
        """)
    report = import_backlinks(db, current)
    assert rows(db, "SELECT source_domain, authority, nofollow, anchor, tool FROM backlinks ORDER BY 1") == [
        ("blog.example", 23.0, False, "hiking boots", "semrush"), ("deals.example", 11.0, True, None, "semrush")]
    assert report.skipped_for("lost link") is not None
    old = write(tmp_path / "semrush_old.csv", """
        Page score,Page trust score,Source title,Source url,Target url,Anchor,External links,Internal links,Nofollow,Frame,Form,Image,Sitewide,First seen,Last seen
        7,5,"Old",https://old.example/a,https://example.com/,old anchor,1,2,true,false,false,false,false,2016-01-01,2017-01-01
        """)
    import_backlinks(db, old)
    assert rows(db, "SELECT source_domain, authority, nofollow, tool FROM backlinks") == [("old.example", 7.0, True, "semrush")]


def test_majestic_flags_are_empty_when_false(tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "majestic.csv", """
        Target URL,Source URL,Anchor Text,Source Crawl Date,Source First Found Date,FlagNoFollow,FlagImageLink,FlagRedirect,FlagFrame,FlagOldCrawl,FlagAltText,FlagMention,SourceCitationFlow,SourceTrustFlow,TargetCitationFlow,TargetTrustFlow,SourceTopicalTrustFlow_Topic_0,SourceTopicalTrustFlow_Value_0,RefDomainTopicalTrustFlow_Topic_0,RefDomainTopicalTrustFlow_Value_0
        https://example.com/,https://blog.example/post,Target Site,2025-10-01,2021-04-17,,,,,,,,24,18,41,33,Recreation/Travel,15,Recreation/Travel,22
        https://example.com/guide,https://spam.example/x,guide,2025-10-01,2021-04-17,+,,,,,,,5,2,41,33,Recreation/Travel,15,Recreation/Travel,22
        https://example.com/guide,https://broken.example/x,guide,2025-10-01
        """)
    report = import_backlinks(db, path)
    assert rows(db, "SELECT source_domain, authority, nofollow, tool FROM backlinks ORDER BY 1") == [
        ("blog.example", 18.0, False, "majestic"), ("spam.example", 2.0, True, "majestic")]
    short = report.skipped_for("wrong number of fields")
    assert short is not None and short.lines == (4,)


MOZ_EXPORT = """
    Moz Link Explorer - Inbound Links
    Target: example.com
    Date: 2025-10-01
    Filters: all links
    Total: 3

    URL,Title,Anchor Text,Spam Score,Page Authority,Domain Authority,Number of Domains Linking to this Page,Number of Domains Linking to Domain,Origin,Target URL,Link Equity,No Link Equity,Only rel=nofollow,Only follow,301
    https://news.example.org/story,News,example,1%,45,80,12,3400,External,https://example.com/,Yes,No,No,Yes,No
    https://forum.example.net/t/9,Forum,click here,4%,20,35,1,120,External,https://example.com/guide/,No,Yes,Yes,No,No
    https://example.com/about/,About,home,0%,30,50,5,900,Internal,https://example.com/,Yes,No,No,Yes,No
    """


def test_moz_export_with_metadata_lines_before_the_header(tmp_path: Path, db: Path) -> None:
    report = import_backlinks(db, write(tmp_path / "moz.csv", MOZ_EXPORT))
    assert rows(db, "SELECT target_url, source_domain, authority, nofollow, anchor FROM backlinks ORDER BY 2") == [
        ("https://example.com/guide/", "forum.example.net", 35.0, True, "click here"),
        ("https://example.com/", "news.example.org", 80.0, False, "example"),
    ]
    internal = report.skipped_for("internal link")
    assert internal is not None and internal.lines == (10,)


def test_search_console_links_exports(tmp_path: Path, db: Path) -> None:
    top = write(tmp_path / "Top linked pages.csv", """
        Target page,Incoming links,Linking sites
        https://example.com/,"2,100",3
        https://example.com/guide/,12,1
        """)
    import_backlinks(db, top)
    assert rows(db, "SELECT target_url, count(DISTINCT source_domain) FROM backlinks GROUP BY 1 ORDER BY 1") == [
        ("https://example.com/", 3), ("https://example.com/guide/", 1)]
    latest = write(tmp_path / "Latest links.csv", """
        Linking page,Last crawled
        https://news.example.org/post,2026-08-01
        https://www.blog.example/x,"Sep 15, 2026"
        """)
    with pytest.raises(UsageError, match="--target"):
        import_backlinks(db, latest)
    import_backlinks(db, latest, target="https://example.com/guide/")
    assert rows(db, "SELECT target_url, source_domain, nofollow, tool FROM backlinks ORDER BY 2") == [
        ("https://example.com/guide/", "blog.example", None, "gsc"),
        ("https://example.com/guide/", "news.example.org", None, "gsc")]
    hebrew = write(tmp_path / "he.csv", "דף מקשר,נסרק לאחרונה\nhttps://news.example.org/he,2026-08-01\n")
    import_backlinks(db, hebrew, target="https://example.com/")
    assert rows(db, "SELECT count(*) FROM backlinks") == [(1,)]
    sites = write(tmp_path / "Top linking sites.csv", 'Site,Linking pages,Target pages\nbig-blog.example.com,"1,240",12\n')
    with pytest.raises(InputFileError, match="names no linked pages"):
        import_backlinks(db, sites)


def test_generic_backlink_csv_semicolons_and_domains(tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "links.csv", """
        target;referring domain;DR;rel
        https://example.com/;www.Blog.Example;55;
        /guide/;forum.example;12;ugc nofollow
        https://example.com/x;;3;
        ftp://example.com/file;a.example;1;
        """)
    report = import_backlinks(db, path, base_url=SITE)
    assert rows(db, "SELECT target_url, source_url, source_domain, authority, nofollow FROM backlinks ORDER BY 1") == [
        ("https://example.com/", None, "blog.example", 55.0, None),
        ("https://example.com/guide/", None, "forum.example", 12.0, True)]
    assert report.skipped_for("no source URL or domain").lines == (4,)  # type: ignore[union-attr]
    assert report.skipped_for("target is not an http(s) URL").lines == (5,)  # type: ignore[union-attr]


def test_generic_csv_missing_the_target_column_names_it(tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "x.csv", "source url,anchor\nhttps://a.example/,x\n")
    with pytest.raises(InputFileError, match=r"line 1: not a known backlink export and missing a target URL column"):
        import_backlinks(db, path)


def test_backlink_reimport_replaces_append_adds_and_a_failed_import_changes_nothing(
        tmp_path: Path, db: Path) -> None:
    first = write(tmp_path / "a.csv", "Target URL,Source URL\nhttps://example.com/,https://a.example/1\n"
                                      "https://example.com/,https://a.example/2\n")
    second = write(tmp_path / "b.csv", "Target URL,Source URL\nhttps://example.com/x,https://b.example/1\n")
    import_backlinks(db, first)
    import_backlinks(db, first)
    assert rows(db, "SELECT count(*) FROM backlinks") == [(2,)]
    import_backlinks(db, second, append=True)
    assert rows(db, "SELECT count(*) FROM backlinks") == [(3,)]
    # A file that turns bad after many good rows (past the first Arrow batch) changes nothing.
    good = "".join(f"https://example.com/,https://c.example/{i}\n" for i in range(60_000))
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"Target URL,Source URL\n" + good.encode() + b"https://example.com/,https://caf\xe9.example/\n")
    with pytest.raises(InputFileError, match="line 60002: is not valid UTF-8"):
        import_backlinks(db, broken)
    junk = write(tmp_path / "junk.csv", "Target URL,Source URL\nnope,nope\n")
    with pytest.raises(InputFileError, match=r"line 2: holds no usable backlinks"):
        import_backlinks(db, junk)
    assert rows(db, "SELECT count(*) FROM backlinks") == [(3,)]


# -- link graphs ------------------------------------------------------------------------------
SF_HEADER = ('"Type","Source","Destination","Size (Bytes)","Alt Text","Anchor","Status Code","Status","Follow",'
             '"Target","Rel","Path Type","Link Path","Link Position","Link Origin"')
SF_ALL_INLINKS = SF_HEADER + textwrap.dedent("""
    "Hyperlink","https://example.com/","https://example.com/about/","10000","","About Us","200","OK","true","","","Absolute","//body/nav/a","Navigation","HTML"
    "Image","https://example.com/","https://example.com/images/logo.png","5000","Company Logo","","200","OK","true","","","Absolute","//body/header/img","Header","HTML"
    "Hyperlink","https://example.com/","https://example.com/blog/","10000","","Blog","200","OK","true","","","Absolute","//body/nav/a","Navigation","HTML"
    "Hyperlink","https://example.com/about/","https://example.com/","10000","","Home","200","OK","TRUE","","","Absolute","//body/header/a","Header","HTML"
    "Hyperlink","https://example.com/about/","https://example.com/old-page","0","","Old news","301","Moved Permanently","true","","","Absolute","//body/main/p/a","Content","HTML"
    "HTTP Redirect","https://example.com/old-page","https://example.com/blog/","","","","200","OK","true","","","Absolute","","","HTML"
    "Hyperlink","https://example.com/blog/","https://example.com/blog/post-1/","10000","","Post one","200","OK","false","_blank","nofollow","Absolute","//body/main/a","Content","HTML"
    "Hyperlink","https://example.com/blog/","https://example.com/missing/","0","","Missing","404","Not Found","true","","","Absolute","//body/footer/a","Footer","HTML"
    "Hyperlink","https://example.com/blog/","https://example.com/guide.pdf","0","","PDF","200","OK","true","","","Absolute","//body/main/a","Content","HTML"
    "Hyperlink","https://example.com/blog/post-1/","https://example.com/blog/post-1/?ref=nav","0","","Self","200","OK","true","","","Absolute","//body/aside/a","Aside","HTML"
    "HTML Canonical","https://example.com/blog/post-1/?ref=nav","https://example.com/blog/post-1/","","","","200","OK","true","","canonical","Absolute","//head/link","Head","HTML"
    "Hyperlink","https://example.com/blog/post-1/","https://example.com/","0","","Home","200","OK","true","","","Absolute","//body/div/a","Mega Menu","HTML"
    "Hyperlink","https://example.com/blog/post-1/","https://other.example/x","0","","Elsewhere","200","OK","true","","","Absolute","//body/main/a","Content","HTML"
    "Hyperlink","https://example.com/blog/post-1/","https://example.com/slow","0","","Slow","0","Connection Timeout","true","","","Absolute","//body/main/a","Content","HTML"
    "Hyperlink","https://example.com/blog/","https://example.com/private/","0","","Private","0","Blocked by Robots.txt","true","","","Absolute","//body/main/a","Sidebar","HTML"
    "Hyperlink","javascript:void(0)","https://example.com/","0","","JS","200","OK","true","","","Absolute","//body/a","Content","HTML"
    "Hyperlink","https://example.com/blog/","broken row
    """)


def test_screaming_frog_all_inlinks_builds_a_scored_store(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "all_inlinks.csv"
    path.write_bytes(b"\xef\xbb\xbf" + SF_ALL_INLINKS.encode())
    report = import_links(db, path)
    assert report.format.startswith("Screaming Frog All Inlinks, UTF-8 with BOM")
    assert report.rows == 12
    pages = {r[0]: r[1:] for r in rows(db, "SELECT url, status, is_html, indexability, error, depth FROM pages")}
    assert pages["https://example.com/"] == (200, True, "indexable", None, 0)
    assert pages["https://example.com/old-page"][:3] == (301, False, "redirect")
    assert pages["https://example.com/missing/"][2] == "client error"
    assert pages["https://example.com/guide.pdf"][:3] == (200, False, "not html")
    assert pages["https://example.com/blog/post-1/?ref=nav"][2] == "canonicalised"
    assert pages["https://example.com/slow"][2:4] == ("error", "Connection Timeout")
    assert pages["https://example.com/private/"][2] == "blocked by robots.txt"
    assert "https://example.com/images/logo.png" not in pages  # images are not pages
    assert "https://other.example/x" not in pages  # external targets are not pages
    assert rows(db, "SELECT * FROM redirects") == [("https://example.com/old-page", 301, "https://example.com/blog/")]
    links = {(r[0], r[1]): r[2:] for r in rows(
        db, "SELECT source_url, target_url, dom_position, nofollow, is_internal, anchor FROM links")}
    assert links[("https://example.com/", "https://example.com/about/")] == ("nav", False, True, "About Us")
    assert links[("https://example.com/blog/", "https://example.com/blog/post-1/")][:2] == ("content", True)
    assert links[("https://example.com/blog/post-1/", "https://example.com/blog/post-1/?ref=nav")][0] == "aside"
    assert links[("https://example.com/blog/", "https://example.com/private/")][0] == "aside"  # old "Sidebar"
    assert links[("https://example.com/blog/post-1/", "https://example.com/")][0] == "content"  # custom position
    assert links[("https://example.com/blog/post-1/", "https://other.example/x")][2] is False
    assert rows(db, "SELECT key, value FROM meta WHERE key IN ('source', 'start_url', 'limits_hit') ORDER BY key") == [
        ("limits_hit", "false"), ("source", "import:screaming-frog"), ("start_url", SITE)]
    malformed = report.skipped_for("malformed CSV row")
    assert malformed is not None and (malformed.count, malformed.lines) == (1, (18,))
    assert report.skipped_for("not a hyperlink (Image)").count == 1  # type: ignore[union-attr]
    assert report.skipped_for("source is not an http(s) URL").example == "javascript:void(0)"  # type: ignore[union-attr]
    assert any("Mega Menu (1)" in note for note in report.notes)
    scored = {r[0]: r[1:] for r in rows(db, "SELECT url, pagerank, juice FROM scores WHERE juice IS NOT NULL")}
    assert set(scored) == {SITE, "https://example.com/about/", "https://example.com/blog/", "https://example.com/blog/post-1/"}
    assert sum(pagerank for pagerank, _ in scored.values()) == pytest.approx(1.0)
    assert all(juice > 0 for _, juice in scored.values())


def test_pages_command_shows_scores_after_import(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "all_inlinks.csv"
    path.write_text(SF_ALL_INLINKS, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["import", "links", str(path), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "Imported 12 rows into links" in result.output and "malformed CSV row" in result.output
    result = runner.invoke(app, ["pages", "--db", str(db), "--format", "csv"])
    assert result.exit_code == 0
    header, first = result.output.splitlines()[:2]
    assert "juice_score" in header and first.startswith("https://example.com/")


def random_site(n: int, seed: int) -> list[tuple[int, int]]:
    """Every page links to 1-8 others (so every page is a crawled source); no self-links."""
    rng = np.random.default_rng(seed)
    edges = []
    for s in range(n):
        for t in rng.choice(n - 1, size=int(rng.integers(1, 9)), replace=False):
            edges.append((s, int(t) + (t >= s)))
    return edges


def test_parquet_edge_list_pagerank_matches_networkx(tmp_path: Path, db: Path) -> None:
    n = 200
    edges = random_site(n, seed=7)
    url = [f"https://shop.example/p/{i}" for i in range(n)]
    url[0] = "https://shop.example/"
    table = pa.table({"source": [url[s] for s, _ in edges], "target": [url[t] for _, t in edges],
                      "anchor": [f"page {t}" for _, t in edges]})
    path = tmp_path / "edges.parquet"
    pq.write_table(table, path)
    report = import_links(db, path)
    assert report.format == "generic edge list, Parquet" and report.rows == len(edges)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges)
    expected = nx.pagerank(graph, alpha=0.85, tol=1e-12)
    got = dict(rows(db, "SELECT url, pagerank FROM scores"))
    assert len(got) == n
    for i in range(n):
        assert got[url[i]] == pytest.approx(expected[i], rel=1e-6)
    assert rows(db, "SELECT min(depth), max(depth) IS NOT NULL FROM pages") == [(0, True)]


def test_csv_edge_list_with_paths_statuses_and_targets_never_crawled(tmp_path: Path, db: Path) -> None:
    path = write(tmp_path / "edges.csv", """
        source,target,anchor,position,rel,status
        https://site.example/,/a,A,nav,,200
        https://site.example/,/gone,Gone,content,,404
        https://site.example/,https://site.example/b,B,footer,nofollow,
        https://site.example/a,https://site.example/,Home,header,,200
        https://site.example/a,https://elsewhere.example/,Out,content,,200
        """)
    import_links(db, path, score=False)
    pages = dict(rows(db, "SELECT url, indexability FROM pages"))
    assert pages == {"https://site.example/": "indexable", "https://site.example/a": "indexable",
                     "https://site.example/gone": "client error", "https://site.example/b": "not crawled"}
    assert rows(db, "SELECT nofollow FROM links WHERE target_url = 'https://site.example/b'") == [(True,)]
    assert rows(db, "SELECT count(*) FROM scores") == [(0,)]


def test_links_reimport_replaces_and_failures_leave_the_graph_intact(tmp_path: Path, db: Path) -> None:
    one = write(tmp_path / "one.csv", "source,target\nhttps://a.example/,https://a.example/x\n")
    two = write(tmp_path / "two.csv", "from,to\nhttps://b.example/,https://b.example/y\nhttps://b.example/y,https://b.example/\n")
    import_links(db, one)
    import_links(db, two)
    assert rows(db, "SELECT url FROM pages ORDER BY url") == [("https://b.example/",), ("https://b.example/y",)]
    assert rows(db, "SELECT value FROM meta WHERE key = 'start_url'") == [("https://b.example/",)]
    with pytest.raises(InputFileError, match=r"missing the target \(destination, target, "):
        import_links(db, write(tmp_path / "bad.csv", "source,anchor\nhttps://c.example/,x\n"))
    with pytest.raises(InputFileError, match="holds no usable links: 1 rows target is not an http"):
        import_links(db, write(tmp_path / "junk.csv", "source,target\nhttps://c.example/,mailto:x\n"))
    assert rows(db, "SELECT count(*), count(juice) FROM pages JOIN scores USING (url)") == [(2, 2)]


def test_import_links_refuses_a_store_holding_a_crawl(tmp_path: Path, db: Path) -> None:
    with Store(db) as store:
        store.set_meta({"start_url": SITE})
        store.write_batch(pages=[{"url": SITE, "seq": 0, "status": 200}])
    with pytest.raises(UsageError, match="holds a crawl"):
        import_links(db, write(tmp_path / "e.csv", "source,target\nhttps://a.example/,https://a.example/x\n"))
    assert rows(db, "SELECT url FROM pages") == [(SITE,)]


# -- backlinks credited to the page that receives them ----------------------------------------
def test_backlinks_resolve_through_redirects_canonicals_and_url_variants(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "all_inlinks.csv"
    path.write_text(SF_ALL_INLINKS, encoding="utf-8")
    import_links(db, path)
    backlinks = write(tmp_path / "bl.csv", """
        target url,source url,authority,nofollow
        https://example.com/about/,https://a.example/1,50,false
        https://example.com/about/,https://a.example/2,70,false
        http://www.example.com/old-page,https://b.example/1,20,false
        https://example.com/blog/post-1/?ref=nav,https://c.example/1,,false
        https://example.com/blog/post-1/?ref=nav,https://d.example/1,90,true
        https://example.com/missing/,https://e.example/1,10,false
        https://other.example/x,https://f.example/1,10,false
        """)
    report = import_backlinks(db, backlinks)
    assert any("4 of 5 distinct targets are credited" in n for n in report.notes)
    with Store(db, read_only=True) as store:
        targets = resolve_backlink_targets(store).set_index("target_url")
        ids = dict(store.sql("SELECT url, page_id FROM pages").itertuples(index=False))
        authority = backlink_authority(store).set_index("page_id")
    assert targets.loc["https://example.com/about/", "page_id"] == ids["https://example.com/about/"]
    old = targets.loc["http://www.example.com/old-page"]
    assert (old["matched_by"], old["matched_url"], old["page_url"]) == (
        "variant", "https://example.com/old-page", "https://example.com/blog/")
    assert old["page_id"] == ids["https://example.com/blog/"]
    canonical = targets.loc["https://example.com/blog/post-1/?ref=nav"]
    assert canonical["page_url"] == "https://example.com/blog/post-1/" and bool(canonical["indexable"])
    assert not bool(targets.loc["https://example.com/missing/", "indexable"])
    assert pd.isna(targets.loc["https://other.example/x", "page_id"])
    about = authority.loc[ids["https://example.com/about/"]]
    assert (about["referring_domains"], about["authority_sum"]) == (1, 70.0)  # a.example once, its best link
    post = authority.loc[ids["https://example.com/blog/post-1/"]]
    assert (post["referring_domains"], post["domains_with_authority"]) == (1, 0)  # the nofollow one is left out


# -- CLI --------------------------------------------------------------------------------------
def test_every_import_command_has_help() -> None:
    runner = CliRunner()
    for name in ("urls", "gsc", "priorities", "backlinks", "links"):
        result = runner.invoke(app, ["import", name, "--help"])
        assert result.exit_code == 0 and "--db" in result.output


def test_cli_errors_are_one_line_with_exit_codes(tmp_path: Path, db: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "linkjuice", "import", *args, "--db", str(db)],
                              capture_output=True, text=True, timeout=60)

    missing = run("gsc", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
    assert "nope.csv: no such file" in missing.stderr and "Traceback" not in missing.stderr
    bad = write(tmp_path / "bad.csv", "Top pages,Impressions\nhttps://example.com/,3\n")
    result = run("gsc", str(bad))
    assert result.returncode == 1 and "line 1: missing column 'Clicks'" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    latest = write(tmp_path / "latest.csv", "Linking page,Last crawled\nhttps://a.example/,2026-01-01\n")
    usage = run("backlinks", str(latest))
    assert usage.returncode == 2 and "--target" in usage.stderr
    ok = run("priorities", str(write(tmp_path / "p.txt", "https://example.com/a\nnope\n")))
    assert ok.returncode == 0 and "Imported 1 rows into priorities" in ok.stdout and "not an http(s) URL" in ok.stdout


# -- streaming --------------------------------------------------------------------------------
_RSS_SCRIPT = """
import resource, sys
import linkjuice.pipeline
from linkjuice.imports import import_links
# Measure the import itself: finalize and score are the pipeline's stages (they hold arrays).
linkjuice.pipeline.finalize_store = lambda store, *a, **k: None
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = import_links(sys.argv[1], sys.argv[2], score=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(report.rows, (after - before) // 1024)
"""


@pytest.mark.slow
def test_import_links_streams_a_2m_row_edge_list_in_bounded_memory(tmp_path: Path) -> None:
    n_rows, n_pages = 2_000_000, 100_000
    rng = np.random.default_rng(3)
    src, dst = rng.integers(0, n_pages, n_rows), rng.integers(0, n_pages, n_rows)
    position = np.array(["content", "nav", "footer", "header"])[rng.integers(0, 4, n_rows)]
    path = tmp_path / "edges.csv"
    with path.open("w") as f:
        f.write("source,target,anchor,position\n")
        f.writelines(f"https://big.example/p/{s},https://big.example/p/{d},anchor {d},{p}\n"
                     for s, d, p in zip(src.tolist(), dst.tolist(), position.tolist()))
    size_mb = path.stat().st_size // 2**20
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(tmp_path / "big.duckdb"), str(path)],
                         capture_output=True, text=True, timeout=120, check=True)
    imported, growth_mb = (int(x) for x in out.stdout.strip().splitlines()[-1].split())
    assert imported == n_rows
    # As Python objects the rows would take well over 1 GB; DuckDB streams them with its own
    # fixed budget (256 MB), whatever the file size.
    assert growth_mb < 450, f"peak RSS grew {growth_mb} MB importing a {size_mb} MB file"

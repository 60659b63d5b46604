"""The audit end to end: a hand-made site on 127.0.0.1 that holds every problem the audit knows,
crawled and scored for real, with each finding's URLs and juice at stake checked against values
computed here from the stored scores and a hand count of each page's links."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from linkjuice.audit import CODES, AuditThresholds, parse_fail_on
from linkjuice.cli import app
from linkjuice.config import CrawlConfig, ModelConfig
from linkjuice.demo import serve_folder
from linkjuice.errors import StoreError, UsageError
from linkjuice.pipeline import crawl_site, run_audit
from linkjuice.store import LINK_ORDER_MISSING, AuditLinks, Store

from .sitekit import Route, page, redirect, serve

D = 0.85
# Position factors of the model (docs/model.md); relevance and anchor factors are switched off
# below so that a link's weight is its position factor alone and can be counted by hand.
HEADER, CONTENT = 0.3, 1.0
MODEL = ModelConfig(relevance_weight=0.0, use_anchor=False)
N_MANY = 20


def _links(*pairs: str) -> str:
    return " ".join(pairs)


def _a(href: str, text: str, rel: str = "") -> str:
    return f"<a href='{href}'{f' rel={rel!r}' if rel else ''}>{text}</a>"


def _hang_up(_: str) -> Route:
    raise ConnectionAbortedError("the test server drops this request")


def _routes(origin: list[str]) -> dict[str, Route]:
    def sitemap(_: str) -> Route:
        o = origin[0]
        locs = ["/", "/a/", "/orphan/", "/orphan-nf/", "/orphan-ni/", "/CaseVar/", "/trail", "/deep1/"]
        body = "".join(f"<url><loc>{o}{p}</loc></url>" for p in locs)
        return Route(body=f"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{body}</urlset>",
                     content_type="application/xml")

    routes: dict[str, Route] = {
        "/robots.txt": Route(body="User-agent: *\nDisallow: /private/\nSitemap: /sitemap.xml\n",
                             content_type="text/plain"),
        "/sitemap.xml": sitemap,
        # 9 links, all content (the header's Home link is a self-link here): W = 9
        "/": page("Home", _links(
            _a("/a/", "Alpha guide"), _a("/problems/", "Problems"), _a("/many/", "Link hub"),
            _a("/deep1/", "Deep series"), _a("/c/", "click here"), _a("/b/", "Beta", rel="nofollow"),
            _a("https://external.example/", "External"), _a("/trail/", "Trail"), _a("/casevar/", "Case"))),
        # header + 5 content (the self-link does not count): W = 0.3 + 5
        "/a/": page("Alpha", _links(
            _a("/b/", "Beta page"), _a("/missing/", "broken again"), _a("/orphan-nf/", "Nofollow only", rel="nofollow"),
            _a("/c/", "Weiterlesen"), _a("/d/", "Pricing"), _a("/a/", "This page"))),
        # header + 3 content: W = 3.3
        "/b/": page("Beta", _links(_a("/c/", "Leer más »"), _a("/d/", " "), _a("/e/", "Pricing"))),
        "/c/": page("Charlie", _links(_a("/d/", "Pricing"), _a("/a/", "Alpha guide"))),
        "/d/": page("Delta", _links(_a("/c/", "lire la suite"), _a("/e/", "Echo"))),
        "/e/": page("Echo", _links(_a("/d/", "Pricing"))),
        # header + 16 content: W = 16.3
        "/problems/": page("Problems", _links(
            _a("/missing/", "Missing page"), _a("/error/", "Server error"),
            _a("/slow/", "Slow [bold]page[/bold]"), _a("/drop/", "Dropped"),
            _a("/old/", "Old alpha"), _a("/chain1/", "Chain"), _a("/loop1/", "Loop"), _a("/gone-redirect/", "Gone"),
            _a("/to-noindex/", "To hidden"), _a("/private/x/", "Private"), _a("/noindex/", "Hidden"),
            _a("/doc.pdf", "PDF"),
            _a("/dup/", "Duplicate"), _a("/canon-redir/", "Canon redirect"),
            _a("/canon-broken/", "Canon broken"), _a("/canon-noindex/", "Canon noindex"))),
        "/missing/": Route(status=404, body="not found"),
        "/error/": Route(status=500, body="boom"),
        "/slow/": Route(body="late", delay=8.0),  # the crawl times out after 3 s
        "/drop/": _hang_up,  # the server closes the connection without an answer
        "/old/": redirect("/a/"),
        "/chain1/": redirect("/chain2/", 302),
        "/chain2/": redirect("/b/"),
        "/loop1/": redirect("/loop2/"),
        "/loop2/": redirect("/loop1/"),
        "/gone-redirect/": redirect("/missing/"),
        "/to-noindex/": redirect("/noindex/"),
        "/private/x/": page("Private", "never fetched"),
        "/noindex/": page("Hidden", _a("/orphan-ni/", "Only from noindex"),
                          head="<meta name='robots' content='noindex'>"),
        "/doc.pdf": Route(body=b"%PDF-1.4 tiny", content_type="application/pdf"),
        "/dup/": page("Dup", "copy of C", head="<link rel='canonical' href='/c/'>"),
        "/canon-redir/": page("CR", "x", head="<link rel='canonical' href='/old/'>"),
        "/canon-broken/": page("CB", "x", head="<link rel='canonical' href='/missing/'>"),
        "/canon-noindex/": page("CN", "x", head="<link rel='canonical' href='/noindex/'>"),
        "/orphan/": page("Orphan", _links(_a("/orphan/", "Me"), _a("/a/", "Alpha guide"))),
        "/orphan-nf/": page("Orphan NF", "x"),
        "/orphan-ni/": page("Orphan NI", "x"),
        "/CaseVar/": page("Case variant", "x"),
        "/casevar/": page("Case", "x"),
        "/trail": page("Trail variant", "x"),
        "/trail/": page("Trail", "x"),
        "/deep1/": page("Deep 1", _links(_a("/deep2/", "Deep 2"), _a("/dead/", "Dead end page"))),
        "/deep2/": page("Deep 2", _a("/deep3/", "Deep 3")),
        "/deep3/": page("Deep 3", _a("/deep4/", "Deep 4")),
        "/deep4/": page("Deep 4", "the end"),
        "/dead/": Route(body="<html><head><title>Dead</title></head><body><p>No links here.</p></body></html>"),
        # header + N_MANY content links
        "/many/": page("Many", _links(*(_a(f"/m/{i}/", f"Item number {i}") for i in range(N_MANY)))),
    }
    for i in range(N_MANY):
        routes[f"/m/{i}/"] = page(f"M{i}", "x")
    return routes


W = {"/": 9 * CONTENT, "/a/": HEADER + 5 * CONTENT, "/b/": HEADER + 3 * CONTENT, "/c/": HEADER + 2 * CONTENT,
     "/d/": HEADER + 2 * CONTENT, "/e/": HEADER + CONTENT, "/problems/": HEADER + 16 * CONTENT}
THRESHOLDS = AuditThresholds(max_links=17, important_percentile=75)
# A 3 s timeout: long enough for every other page on a loaded CI machine.
CRAWL = {"concurrency": 8, "timeout": 3.0, "retries": 0, "backoff": 0.01}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    holder: list[str] = []
    with serve(_routes(holder)) as server:
        holder.append(server.origin)
        db = tmp_path_factory.mktemp("audit") / "site.duckdb"
        config = CrawlConfig(start_url=server.url("/"), **CRAWL)
        crawl_site(config, db, model=MODEL)
        o = server.origin
        with Store(db) as store:  # outside data, as `linkjuice import` would write it
            store.con.executemany("INSERT INTO imported_urls VALUES (?, ?)",
                                  [[o + "/imported-only/", "analytics"], ["https://other.example/x", "analytics"],
                                   [o + "/a/", "analytics"]])
            store.con.executemany("INSERT INTO gsc VALUES (?, ?, ?, NULL, NULL)",
                                  [[o + "/m/0/", 500, 10000], [o + "/a/", 10, 300]])
            store.con.executemany("INSERT INTO priorities VALUES (?, ?)", [[o + "/M/1", 2.0], [o + "/", None]])
        yield server, db


def _juice(db: Path) -> dict[str, float]:
    with Store(db, read_only=True) as store:
        frame = store.sql("SELECT url, juice FROM scores WHERE juice IS NOT NULL")
    return dict(zip(frame["url"], frame["juice"]))


def _by_code(result, code: str) -> dict[str, float]:
    f = result.findings[result.findings["code"] == code]
    return dict(zip(f["url"], f["juice_at_stake"]))


def test_every_problem_is_found_with_its_juice_at_stake(site) -> None:
    server, db = site
    u = server.url
    result = run_audit(db, THRESHOLDS)
    J = {k.removeprefix(server.origin): v for k, v in _juice(db).items()}

    def carried(source: str, weight: float = CONTENT) -> float:
        return D * J[source] * weight / W[source]

    one = carried("/problems/")  # each single link of /problems/
    approx = lambda x: pytest.approx(x, rel=1e-9, abs=1e-15)  # noqa: E731

    assert _by_code(result, "broken-links") == {
        u("/missing/"): approx(one + carried("/a/")), u("/error/"): approx(one), u("/slow/"): approx(one),
        u("/drop/"): approx(one)}
    broken = result.items[result.items["code"] == "broken-links"]
    details = dict(zip(broken["target_url"], broken["detail"]))
    assert details[u("/slow/")] == "fails (timeout)" and details[u("/missing/")] == "returns HTTP 404"
    assert details[u("/drop/")].startswith("fails (connection")
    assert _by_code(result, "links-to-redirects") == {u("/old/"): approx(one)}
    assert _by_code(result, "redirect-chain") == {u("/chain1/"): approx(one)}
    assert _by_code(result, "redirect-loop") == {u("/loop1/"): approx(one)}
    assert _by_code(result, "redirect-to-broken") == {u("/gone-redirect/"): approx(one)}
    assert _by_code(result, "redirect-to-non-indexable") == {u("/to-noindex/"): approx(one)}
    assert _by_code(result, "links-to-blocked") == {u("/private/x/"): approx(one)}
    assert _by_code(result, "links-to-noindex") == {u("/noindex/"): approx(one)}
    assert _by_code(result, "links-to-non-html") == {u("/doc.pdf"): approx(one)}
    # Only the duplicate whose canonical is a good page; the others are canonical-to-* findings.
    assert _by_code(result, "links-to-canonicalised") == {u("/dup/"): approx(one)}
    assert _by_code(result, "canonical-to-redirect") == {u("/canon-redir/"): approx(one)}
    assert _by_code(result, "canonical-to-broken") == {u("/canon-broken/"): approx(one)}
    assert _by_code(result, "canonical-to-noindex") == {u("/canon-noindex/"): approx(one)}
    # A nofollow link keeps its share and passes nothing.
    assert _by_code(result, "nofollow-internal") == {
        u("/b/"): approx(carried("/")), u("/orphan-nf/"): approx(carried("/a/"))}

    median = float(np.median(list(J.values())))
    assert _by_code(result, "orphan") == {
        u("/orphan/"): approx(median - J["/orphan/"]), u("/imported-only/"): approx(median)}
    assert _by_code(result, "orphan-nofollow-only") == {u("/orphan-nf/"): approx(median - J["/orphan-nf/"])}
    assert _by_code(result, "orphan-noindex-only") == {u("/orphan-ni/"): approx(median - J["/orphan-ni/"])}

    assert _by_code(result, "deep-page") == {u("/deep4/"): approx(max(median - J["/deep4/"], 0.0))}
    assert _by_code(result, "dead-end") == {u("/dead/"): approx(D * J["/dead/"])}
    many_targets = N_MANY + 1  # the items and the header's Home link
    assert _by_code(result, "too-many-links") == {
        u("/many/"): approx(D * J["/many/"] * (many_targets - THRESHOLDS.max_links) / many_targets)}

    generic = carried("/") + carried("/a/") + carried("/b/") + carried("/d/")
    assert _by_code(result, "generic-anchor") == {u("/c/"): approx(generic)}
    assert _by_code(result, "mostly-generic-anchors") == {u("/c/"): approx(generic)}
    assert _by_code(result, "empty-anchor") == {u("/d/"): approx(carried("/b/"))}
    multi = result.findings[result.findings["code"] == "anchor-multiple-targets"]
    assert list(zip(multi["url"], multi["anchor"])) == [(u("/d/"), "Pricing")]
    assert multi["juice_at_stake"].iloc[0] == approx(carried("/b/"))  # the one link to the other page

    # Important: /m/0/ (top clicks; /a/'s few clicks are not), /m/1/ and / (priorities; /M/1 is a
    # case and slash variant of /m/1/). The home page is strong, so only the two are weak.
    bar = float(np.percentile(list(J.values()), THRESHOLDS.important_percentile))
    expected_important = {p: bar - J[p] for p in ("/m/0/", "/m/1/", "/a/", "/") if J[p] < bar}
    assert set(expected_important) == {"/m/0/", "/m/1/"}
    assert _by_code(result, "important-but-weak") == {u(p): approx(v) for p, v in expected_important.items()}

    weak = set(_by_code(result, "weak-page"))
    assert {u(f"/m/{i}/") for i in range(2, N_MANY)} | {u("/casevar/"), u("/CaseVar/")} <= weak
    # Orphans and important pages are reported once, under their stronger code.
    assert not weak & {u("/orphan/"), u("/orphan-nf/"), u("/m/0/"), u("/m/1/"), u("/")}

    # Variants of linked URLs are not orphans; another site's imported URL is ignored.
    for code in ("orphan", "orphan-nofollow-only", "orphan-noindex-only"):
        assert not set(_by_code(result, code)) & {u("/CaseVar/"), u("/trail"), u("/a/"), "https://other.example/x"}
    # Every code but js-only-links (needs a rendered crawl: tests/test_render.py) and infinite-space
    # (needs a crawler trap: tests/hostile/test_traps.py).
    assert set(result.findings["code"]) == set(CODES) - {"js-only-links", "infinite-space"}
    assert (result.findings["severity"][result.findings["code"] == "orphan"] == "error").all()


def test_explanations_agree_with_their_counts(site) -> None:
    """One link is written about in the singular ("1 link on 1 page points at it"), several in
    the plural, in the texts written per row and in those written whole-frame."""
    result = run_audit(site[1], THRESHOLDS)
    plural = (" point at", "lose their", "lead nowhere and their", " go through", "carry rel=nofollow",
              "they tell", "with generic anchors", "that say nothing", "the juice they would pass")
    singular = (" points at", "loses its", "leads nowhere and its", " goes through", "carries rel=nofollow",
                "it tells", "with a generic anchor", "that says nothing", "the juice it would pass")
    counted = result.findings[result.findings["explanation"].str.contains(r"\b\d+ (?:internal )?links? on ")]
    ones = counted["explanation"].str.contains(r"\b1 (?:internal )?link on ")
    assert ones.sum() >= 5 and (~ones).sum() >= 2
    for text, one in zip(counted["explanation"], ones):
        wrong = singular if not one else plural
        assert not [w for w in wrong if w in text], text
    # And so do their fixes ("change this link", "replace it").
    fix_plural, fix_singular = ("these links", "remove them", "Replace them"), ("this link", "remove it)", "Replace it ")
    for fix, one in zip(counted["fix"].astype(str), ones):
        wrong = fix_singular if not one else fix_plural
        assert not [w for w in wrong if w in fix], fix
    assert any("this link" in fix for fix in counted.loc[ones, "fix"].astype(str))
    # Each of these codes' texts has a verb that agrees, in the singular somewhere in this site.
    singular_codes = set(counted.loc[ones, "code"])
    assert {"broken-links", "nofollow-internal", "empty-anchor", "links-to-redirects"} <= singular_codes
    # "N of the M internal links to X use(s)": with every weak anchor counted, one link and several.

    loose = run_audit(site[1], dataclasses.replace(THRESHOLDS, min_generic_links=1, generic_share=0.01)).findings
    mostly = loose.loc[loose["code"] == "mostly-generic-anchors", "explanation"]
    verbs = mostly.str.extract(r"^(\d+) of the \d+ internal links to \S+ (uses|use) generic")
    assert verbs.notna().all().all() and set(verbs[0]) > {"1"}
    assert ((verbs[0] == "1") == (verbs[1] == "uses")).all()


def test_detector_errors_come_through_and_cancel_the_anchor_checks_not_started(
        site, monkeypatch: pytest.MonkeyPatch) -> None:
    """The anchor checks run on a thread of their own: an error there reaches the caller, and an
    error in a detector on the caller's thread cancels the anchor checks that have not started
    (the caller does not wait for them)."""
    import threading

    import linkjuice.audit as audit_module
    from linkjuice.pipeline import _audit_inputs

    with Store(site[1], read_only=True) as store:
        inputs = _audit_inputs(store)

    def failing_classes(ctx: object) -> None:
        raise RuntimeError("anchor classes failed")

    monkeypatch.setattr(audit_module, "_anchor_classes", failing_classes)
    with pytest.raises(RuntimeError, match="anchor classes failed"):
        audit_module.stream_audit(inputs, THRESHOLDS)

    release, checked = threading.Event(), []

    def held_classes(ctx: object) -> None:
        release.wait(30)  # still running when the caller's detector fails

    def failing_detector(ctx: object) -> None:
        raise RuntimeError("detector failed")

    monkeypatch.setattr(audit_module, "_anchor_classes", held_classes)
    monkeypatch.setattr(audit_module, "_anchors", lambda ctx, classes: checked.append(classes) or [])
    monkeypatch.setattr(audit_module, "_shared_anchors", lambda ctx, classes: checked.append(classes) or [])
    monkeypatch.setattr(audit_module, "_broken_links", failing_detector)
    with Store(site[1], read_only=True) as store:
        inputs = _audit_inputs(store)
    with pytest.raises(RuntimeError, match="detector failed"):
        audit_module.stream_audit(inputs, THRESHOLDS)
    release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("linkjuice-anchors"):
            thread.join(30)
    assert checked == []


def test_shared_anchors_are_taken_by_the_caller_when_the_anchor_thread_has_not_started_them(
        site, monkeypatch: pytest.MonkeyPatch) -> None:
    """anchor-multiple-targets is queued last on the anchor checks' thread; the caller's thread,
    done with its own detectors first, takes it when that thread has not started it: the same
    findings and items, made on the caller's thread."""
    import threading

    import linkjuice.audit as audit_module
    from linkjuice.pipeline import _audit_inputs

    with Store(site[1], read_only=True) as store:
        expected = audit_module.audit_site(_audit_inputs(store), THRESHOLDS)
        inputs = _audit_inputs(store)
    anchors, shared = audit_module._anchors, audit_module._shared_anchors
    taken, ran_on = threading.Event(), []

    def busy_anchors(ctx: object, classes: object) -> list:
        taken.wait(30)  # the anchor thread is busy until the shared anchors are taken
        return anchors(ctx, classes)

    def recorded_shared(ctx: object, classes: object) -> list:
        ran_on.append(threading.current_thread().name)
        try:
            return shared(ctx, classes)
        finally:
            taken.set()

    monkeypatch.setattr(audit_module, "_anchors", busy_anchors)
    monkeypatch.setattr(audit_module, "_shared_anchors", recorded_shared)
    result = audit_module.audit_site(inputs, THRESHOLDS)
    assert ran_on == [threading.current_thread().name]
    assert (expected.findings["code"] == "anchor-multiple-targets").any()
    assert result.findings.equals(expected.findings)
    assert result.items.equals(expected.items)


def test_links_to_a_class_of_pages_are_the_links_whose_target_has_it(site) -> None:
    """links_to answers from the links to pages that are not indexable (found once) when the
    classes are only on such pages, and from every link otherwise: the same positions either way."""
    import linkjuice.audit as audit_module
    from linkjuice.pipeline import _audit_inputs

    with Store(site[1], read_only=True) as store:
        ctx = audit_module._context(_audit_inputs(store), THRESHOLDS)
    n = len(ctx.pages)
    dst = np.where(ctx.target_code < n, ctx.target_code, -1).astype(np.int64)
    unranked = np.flatnonzero(~ctx.ranked)
    assert len(unranked) >= 3 and ctx.ranked.any()

    def expected(page_class: np.ndarray) -> dict[int, list[int]]:
        per_link = np.where(dst >= 0, page_class[np.maximum(dst, 0)], 0)
        return {int(k): np.flatnonzero(per_link == k).tolist() for k in np.unique(per_link) if k}

    only_unranked = np.zeros(n, np.int8)
    only_unranked[unranked] = np.arange(len(unranked)) % 3 + 1
    with_ranked = only_unranked.copy()
    with_ranked[np.flatnonzero(ctx.ranked)[:5]] = 2
    for page_class in (only_unranked, with_ranked, only_unranked):  # (the second: every link read)
        found = ctx.links_to(page_class)
        assert {k: v.tolist() for k, v in found.items()} == expected(page_class)
        assert sum(len(v) for v in found.values()) > 0
    assert ctx.unranked_links is not None and len(ctx.unranked_links[0]) < len(dst)


def test_items_are_one_row_per_link_and_add_up(site) -> None:
    server, db = site
    u = server.url
    result = run_audit(db, THRESHOLDS)
    f = result.findings.set_index(["code", "url"])
    broken_id = f.loc[("broken-links", u("/missing/")), "finding_id"]
    items = result.items[result.items["finding_id"] == broken_id]
    assert sorted(zip(items["source_url"], items["anchor"], items["position"])) == [
        (u("/a/"), "broken again", "content"), (u("/problems/"), "Missing page", "content")]
    assert items["juice"].sum() == pytest.approx(f.loc[("broken-links", u("/missing/")), "juice_at_stake"])
    generic_id = f.loc[("generic-anchor", u("/c/")), "finding_id"]
    anchors = set(result.items.loc[result.items["finding_id"] == generic_id, "anchor"])
    assert anchors == {"click here", "Weiterlesen", "Leer más »", "lire la suite"}
    # The explanation quotes three of them (the first three in link order), written by DuckDB.
    text = f.loc[("generic-anchor", u("/c/")), "explanation"]
    assert text.startswith(f"4 links on 4 pages point at {u('/c/')} with generic anchors (")
    quoted = text.split("with generic anchors (")[1].split(") that say nothing")[0]
    assert len(quoted.split('", "')) == 3 and set(quoted[1:-1].split('", "')) < anchors
    # Stored, one row per item, and exported the same way.
    with Store(db, read_only=True) as store:
        stored_findings, stored_items, flow = store.audit_frames()
    assert len(stored_findings) == len(result.findings) and len(stored_items) == len(result.items)
    assert stored_items["finding_id"].isin(stored_findings["finding_id"]).all()
    # A later run replaces, never appends.
    run_audit(db, THRESHOLDS)
    with Store(db, read_only=True) as store:
        again = store.audit_frames()
    assert len(again[0]) == len(stored_findings) and len(again[1]) == len(stored_items)


def test_texts_written_by_arrow_equal_the_per_row_wording() -> None:
    """The whole-frame texts (Arrow's kernels) word counts and URLs as the per-row texts do:
    singular and plural, non-ASCII."""
    import pandas as pd

    from linkjuice.audit import _join, _plural, _plural_v

    counts = [0, 1, 2, 1234567]
    assert _plural_v(counts, "other page").to_pylist() == [_plural(c, "other page") for c in counts]
    urls = pd.Series(["https://ex.ample/ünï/ç?q=ä", "https://ex.ample/日本/"], dtype="str")
    what = urls.map({urls[0]: "returns HTTP 404", urls[1]: "fails (timeout)"})
    assert _join(urls, " ", what, ". ", _plural_v([1, 3], "link"), " on ", np.array([2, 5]), ".").to_pylist() == [
        f"{u} {w}. {_plural(n, 'link')} on {p}." for u, w, n, p in zip(urls, what, [1, 3], [2, 5])]


def test_page_texts_written_by_duckdb_equal_the_per_row_wording(site, tmp_path: Path) -> None:
    """weak-page, deep-page, generic-anchor and mostly-generic-anchors explanations are SQL templates
    DuckDB writes as the findings are read (the view `findings` over finding_rows, which stores NULL
    for them, or generic-anchor's quoted anchors; in the in-memory
    result, as it is made): counts, missing and half-way scores word as the per-row texts do, and
    the stored texts equal the in-memory ones, with each page's own depth and score. A store whose
    findings are a table (as written before the view) gets the view from its next audit."""
    import shutil

    import duckdb
    import pyarrow as pa

    from linkjuice.audit import _plural, _plural_sql, _score, _score_sql, audit_site
    from linkjuice.pipeline import _audit_inputs

    counts = [0, 1, 2, 1234567]
    scores = [float("nan"), 0.0, 0.5, 12.4, 12.5, 13.5, 99.6, 100.0]
    values = pa.table({"_n": counts + [1] * (len(scores) - len(counts)),
                       "_x": pa.array(scores, from_pandas=True)})
    with duckdb.connect() as con:
        con.register("v", values)
        words, shown = zip(*con.execute(f"SELECT {_plural_sql('_n', 'other page')}, {_score_sql('_x')} FROM v"
                                         ).fetchall())
    assert list(words[:len(counts)]) == [_plural(c, "other page") for c in counts]
    assert list(shown) == [_score(s) for s in scores]

    db = tmp_path / "copy.duckdb"
    shutil.copy(site[1], db)
    with Store(db) as store:  # the findings as a table of texts, as an audit stored them before the view
        store.con.execute("DROP VIEW findings")
        store.con.execute("CREATE TABLE findings (finding_id INTEGER, code VARCHAR, severity VARCHAR, url VARCHAR, "
                          "anchor VARCHAR, item_count INTEGER, juice_at_stake DOUBLE, explanation VARCHAR, fix VARCHAR)")
    thresholds = dataclasses.replace(THRESHOLDS, max_depth=1)
    stored = run_audit(db, thresholds).findings
    with Store(db, read_only=True) as store:
        in_memory = audit_site(_audit_inputs(store), thresholds).findings
        pages = store.sql("SELECT p.url, p.depth, s.juice_score FROM pages p JOIN page_scores s USING (page_id)")
        kinds = dict(store.con.execute("SELECT table_name, table_type FROM information_schema.tables "
                                       "WHERE table_name IN ('findings', 'finding_rows')").fetchall())
        rows = store.sql("SELECT f.code, r._template >= 0 AS templated, r.explanation IS NULL AS bare "
                         "FROM finding_rows r JOIN findings f USING (finding_id) ORDER BY finding_id")
        number_types = dict(store.con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                                              "table_name = 'finding_rows' AND column_name IN ('_code', '_severity')"
                                              ).fetchall())
    assert kinds == {"findings": "VIEW", "finding_rows": "BASE TABLE"}
    # The code and severity are stored as numbers that the view names.
    assert number_types == {"_code": "TINYINT", "_severity": "TINYINT"}
    for column in ("code", "severity"):
        assert stored[column].tolist() == in_memory[column].tolist()
    assert len(stored) and set(stored["severity"]) <= {"error", "warning", "notice"}
    templated = ["weak-page", "deep-page", "generic-anchor", "mostly-generic-anchors"]
    assert rows["templated"].tolist() == rows["code"].isin(templated).tolist()
    assert rows["templated"].any() and not rows["templated"].all()
    # A template's finding stores no explanation, but generic-anchor its quoted anchors.
    assert (rows["bare"] == (rows["templated"] & (rows["code"] != "generic-anchor"))).all()
    assert stored["explanation"].tolist() == in_memory["explanation"].tolist()
    pages = pages.set_index("url")
    for code, pattern in (("weak-page", r"^(\S+) gets followed links from (\d+) other pages? and has a juice score of "
                                        r"(\d+|-)/100 \(the median indexable page: \d+\)\.$"),
                          ("deep-page", r"^(\S+) is (\d+) clicks from the start page \(threshold: 1\); deep pages "
                                        r"receive little juice and are crawled less often\.$")):
        texts = stored.loc[stored["code"] == code, ["url", "explanation"]]
        assert len(texts) >= 3, code
        parsed = texts["explanation"].str.extract(pattern)
        assert parsed.notna().all().all(), texts["explanation"][parsed[0].isna()].tolist()
        assert (parsed[0] == texts["url"]).all()
        if code == "deep-page":
            assert parsed[1].astype(int).tolist() == pages.loc[texts["url"], "depth"].astype(int).tolist()
        else:
            assert parsed[2].tolist() == [_score(s) for s in pages.loc[texts["url"], "juice_score"]]


def test_juice_accounting_adds_up(site) -> None:
    server, db = site
    result = run_audit(db, THRESHOLDS)
    J = {k.removeprefix(server.origin): v for k, v in _juice(db).items()}
    flow = result.juice_flow
    for dim in ("destination", "position"):
        assert flow.loc[flow["dimension"] == dim, "share"].sum() == pytest.approx(1.0)
    dest = flow[flow["dimension"] == "destination"].set_index("category")["juice"]
    # Every ranked page passes d x its juice through its links, except the dead end.
    total = D * (sum(J.values()) - J["/dead/"])
    assert result.summary["link_juice"] == pytest.approx(total, rel=1e-9)
    assert dest.sum() == pytest.approx(total, rel=1e-9)
    assert dest["external"] == pytest.approx(D * J["/"] / W["/"])
    assert dest["nofollow"] == pytest.approx(D * J["/"] / W["/"] + D * J["/a/"] / W["/a/"])
    assert dest["broken"] == pytest.approx(D * J["/problems/"] * 4 / W["/problems/"] + D * J["/a/"] / W["/a/"])
    assert dest["redirected"] == pytest.approx(2 * D * J["/problems/"] / W["/problems/"])  # /old/, /chain1/
    # Concentration against the textbook definitions.
    x = np.sort(np.array(list(J.values())))[::-1]
    gini = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert result.summary["gini"] == pytest.approx(gini)
    k = int(np.ceil(0.01 * len(x)))
    assert result.summary["top1_share"] == pytest.approx(x[:k].sum() / x.sum())


def test_partial_crawl_reports_no_false_orphans_as_errors(site, tmp_path: Path) -> None:
    server, _ = site
    db = tmp_path / "partial.duckdb"
    crawl_site(CrawlConfig(start_url=server.url("/"), max_pages=6, **CRAWL), db, model=MODEL)
    with Store(db, read_only=True) as store:
        assert store.meta()["limits_hit"] is True
    result = run_audit(db)
    orphans = result.findings[result.findings["code"].str.startswith("orphan")]
    assert len(orphans)  # sitemap pages the crawl never reached are mentioned...
    assert (orphans["severity"] == "notice").all()  # ...but not called orphans
    assert orphans["explanation"].str.contains("partial").all()
    assert result.summary["crawl_complete"] is False


def test_thresholds_from_toml_and_options(site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, db = site
    monkeypatch.chdir(tmp_path)
    (tmp_path / "linkjuice.toml").write_text("[audit]\nmax-depth = 2\nmax_links = 10\n", encoding="utf-8")
    runner = CliRunner()

    def codes(*args: str) -> dict[str, set[str]]:
        res = runner.invoke(app, ["audit", "--db", str(db), "--format", "json", *args])
        assert res.exit_code == 0, res.output
        out: dict[str, set[str]] = {}
        for f in json.loads(res.stdout)["findings"]:
            out.setdefault(f["code"], set()).add(f["url"])
        return out

    found = codes()  # ./linkjuice.toml is read by default
    assert found["deep-page"] == {server.url("/deep3/"), server.url("/deep4/")}
    assert server.url("/problems/") in found["too-many-links"]  # 17 targets > 10
    found = codes("--max-depth", "3")  # an option beats the file
    assert found["deep-page"] == {server.url("/deep4/")}
    other = tmp_path / "other.toml"
    other.write_text("[audit]\nmax_links = 100\n", encoding="utf-8")
    assert "too-many-links" not in codes("--config", str(other))

    (tmp_path / "linkjuice.toml").write_text("[audit]\nmax_deep = 2\n", encoding="utf-8")
    res = runner.invoke(app, ["audit", "--db", str(db)])
    assert res.exit_code != 0 and isinstance(res.exception, UsageError) and "max_deep" in str(res.exception)


def test_fail_on_exits_3_through_the_real_cli(site, tmp_path: Path) -> None:
    _, db = site
    run = lambda *a: subprocess.run([sys.executable, "-m", "linkjuice", "audit", "--db", str(db), *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=tmp_path, timeout=120)
    failed = run("--fail-on", "broken-links,orphans,redirect-loops", "--top", "3")
    assert failed.returncode == 3, failed.stderr
    assert "broken-links: 4" in failed.stderr and "redirect-loop: 1" in failed.stderr
    assert "[bold]page[/bold]" in failed.stdout or "Slow" not in failed.stdout  # crawled text is never markup
    passed = run("--fail-on", "too-many-links", "--max-links", "1000")  # a code that is not present
    assert passed.returncode == 0, passed.stderr
    bad = run("--fail-on", "nonsense")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --fail-on: unknown finding 'nonsense'")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_github_annotations_and_exports(site, tmp_path: Path) -> None:
    server, db = site
    runner = CliRunner()
    res = runner.invoke(app, ["audit", "--db", str(db), "--github", "--top", "0", "--max-links", "17"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if line.startswith("::")]
    loop = [line for line in lines if "title=redirect-loop" in line]
    assert len(loop) == 1 and loop[0].startswith("::error file=http%3A//127.0.0.1%3A")
    assert any(line.startswith("::warning ") for line in lines) and any(line.startswith("::notice ") for line in lines)
    assert all("\n" not in line for line in lines)
    out = tmp_path / "items.csv"
    res = runner.invoke(app, ["export", "finding-items", "--db", str(db), "-o", str(out)])
    assert res.exit_code == 0, res.output
    import pandas as pd

    items = pd.read_csv(out)
    assert {"finding_id", "code", "source_url", "anchor", "position", "juice"} <= set(items.columns)
    assert not items["anchor"].dropna().str.contains("@@|;").any()
    res = runner.invoke(app, ["export", "findings", "--db", str(db), "-o", str(tmp_path / "f.parquet"), "-f", "parquet"])
    assert res.exit_code == 0 and len(pd.read_parquet(tmp_path / "f.parquet")) > 20


def test_audit_tables_are_inserted_in_full_row_groups(tmp_path: Path) -> None:
    """The audit hands its findings and items over in slices of any size: regrouped, they fill
    DuckDB's row groups (a partial one at a slice's end was merged and compressed again at the
    next checkpoint: 5.4 s of the 10M audit), with every row kept in order."""
    import duckdb
    import pyarrow as pa

    from linkjuice.store import ROW_GROUP_ROWS, _row_group_aligned

    rng = np.random.default_rng(7)
    sizes = [300_000, 0, 5, 122_875, 200_000, 1, 245_760, 90_000]
    tables, start = [], 0
    for k, size in enumerate(sizes):
        ids = np.arange(start, start + size)
        start += size
        # Slices as the audit makes them: a column all NULL in one (typed null), dictionaries that
        # grow from one slice to the next, a table in several chunks.
        fixes = pa.array([f"fix {j}" for j in range(k + 2)])
        table = pa.table({
            "i": ids, "url": pa.array([f"https://example.com/p/{j}" for j in ids], pa.large_string()),
            "anchor": pa.nulls(size) if k % 2 else pa.array(np.where(ids % 3 == 0, None, ids.astype(str))),
            "fix": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, k + 2, size).astype(np.int32)), fixes),
        })
        tables.append(pa.concat_tables([table.slice(0, size * 2 // 3), table.slice(size * 2 // 3)]) if k == 4 else table)
    aligned = list(_row_group_aligned(iter(tables)))
    for table in aligned[:-1]:
        assert all(len(batch) % ROW_GROUP_ROWS == 0 for batch in table.to_batches())
    assert sum(t.num_rows for t in aligned) == start
    with duckdb.connect(str(tmp_path / "rg.duckdb")) as con:
        con.execute("CREATE TABLE t (i BIGINT, url VARCHAR, anchor VARCHAR, fix VARCHAR)")
        con.execute("BEGIN TRANSACTION")
        for table in aligned:
            con.register("a", table)
            con.execute("INSERT INTO t BY NAME SELECT * FROM a")
            con.unregister("a")
        con.execute("COMMIT")
        groups = con.execute("SELECT row_group_id, sum(count) FROM pragma_storage_info('t') WHERE column_id = 0 "
                             "AND segment_type <> 'VALIDITY' GROUP BY ALL ORDER BY 1").fetchall()
        assert [rows for _, rows in groups] == [ROW_GROUP_ROWS] * (start // ROW_GROUP_ROWS) + [start % ROW_GROUP_ROWS]
        stored = con.execute("SELECT * FROM t").df()  # in the order a scan returns
    given = pa.concat_tables(tables, promote_options="permissive")
    assert (stored["i"].to_numpy() == np.arange(start)).all()
    for name in ("url", "anchor", "fix"):
        assert stored[name].astype(object).where(stored[name].notna(), None).tolist() == \
            given.column(name).cast(pa.string()).to_pylist()


def test_findings_stored_and_exported_in_priority_order(site, tmp_path: Path) -> None:
    import shutil

    import pandas as pd

    db = tmp_path / "copy.duckdb"  # (this test rewrites the findings of its own copy)
    shutil.copy(site[1], db)
    runner = CliRunner()
    assert runner.invoke(app, ["audit", "--db", str(db), "--top", "0"]).exit_code == 0
    with Store(db) as store:
        stored = store.con.execute("SELECT finding_id, code FROM findings").df()  # in the order a scan returns
        expected = store.audit_findings()[0]
    ids = stored["finding_id"].to_numpy()
    assert len(ids) > 20 and (ids == np.arange(1, len(ids) + 1)).all()
    # The detectors' findings interleave in the priority order (a code's findings are not one
    # run), so the rows as the audit makes them, grouped by detector, had to be put in order.
    runs = stored["code"].ne(stored["code"].shift()).sum()
    assert runs > stored["code"].nunique()

    def exported(fmt: str) -> pd.DataFrame:
        out = tmp_path / f"findings.{fmt}"
        res = runner.invoke(app, ["export", "findings", "--db", str(db), "-o", str(out), "-f", fmt])
        assert res.exit_code == 0, res.output
        return {"csv": pd.read_csv, "parquet": pd.read_parquet,
                "json": lambda p: pd.read_json(p, lines=True)}[fmt](out)

    for fmt in ("csv", "json", "parquet"):
        frame = exported(fmt)
        assert frame["finding_id"].tolist() == list(range(1, len(expected) + 1))
        assert frame["url"].tolist() == expected["url"].tolist()
        assert frame["explanation"].tolist() == expected["explanation"].tolist()
    # A store whose findings are a table not stored in order (written by an earlier version) is
    # exported in order all the same.
    with Store(db) as store:
        store.con.execute("CREATE TABLE unordered AS SELECT * FROM findings ORDER BY finding_id DESC")
        store.con.execute("DROP VIEW findings")
        store.con.execute("ALTER TABLE unordered RENAME TO findings")
        assert store.con.execute("SELECT finding_id FROM findings LIMIT 1").fetchall()[0][0] == len(expected)
    for fmt in ("csv", "parquet"):
        assert exported(fmt)["finding_id"].tolist() == list(range(1, len(expected) + 1))


def test_fail_on_names_and_threshold_validation() -> None:
    gate = parse_fail_on("orphans, redirect-loop")
    assert gate.codes == {"orphan", "orphan-nofollow-only", "orphan-noindex-only", "redirect-loop"}
    assert parse_fail_on("warnings").severities == {"error", "warning"}
    with pytest.raises(UsageError):
        parse_fail_on(" , ")
    with pytest.raises(UsageError, match="generic-share"):
        AuditThresholds(generic_share=2)
    with pytest.raises(UsageError, match="whole number"):
        AuditThresholds.from_mapping({"max-depth": 2.5})
    assert AuditThresholds.from_mapping({"max-depth": 5}).max_depth == 5


def test_unscored_store_is_a_clear_error(tmp_path: Path) -> None:
    routes = {"/": page("Home", _a("/x/", "X")), "/x/": page("X", "x")}
    with serve(routes) as server:
        db = tmp_path / "unscored.duckdb"
        crawl_site(CrawlConfig(start_url=server.url("/")), db, score=False)
    with pytest.raises(StoreError, match="linkjuice score"):
        run_audit(db)


@pytest.mark.parametrize("numba", ["0", "1"])
def test_cached_relevance_shorter_than_the_pairs_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  numba: str) -> None:
    """Each pair's juice reads its cached relevance by row (with numba, unchecked): read with a
    cache of fewer rows than link_pairs, the flows stop with an error that names the fix."""
    from linkjuice.pipeline import REASONS, _pair_weight_settings, stored_model_config

    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    db = tmp_path / "demo.duckdb"
    with serve_folder() as origin:
        crawl_site(CrawlConfig(start_url=origin + "/"), db)
    with Store(db) as store:
        model = stored_model_config(store)
        assert model.relevance_weight > 0
        settings = _pair_weight_settings(model)
        _, batches = store.audit_link_flows(REASONS, weights=settings, damping=model.damping)
        assert sum(batch.num_rows for batch in batches) == store.pair_count()
        store.con.execute("CREATE OR REPLACE TABLE pair_relevance AS "
                          "SELECT relevance FROM pair_relevance LIMIT (SELECT count(*) - 1 FROM pair_relevance)")
        _, batches = store.audit_link_flows(REASONS, weights=settings, damping=model.damping)
        with pytest.raises(StoreError, match="cached relevance has fewer rows than link_pairs.*linkjuice score"):
            list(batches)


def test_demo_site_planted_problems_are_all_found(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    with serve_folder() as origin:
        crawl_site(CrawlConfig(start_url=origin + "/"), db)
    result = run_audit(db)
    f = result.findings.assign(path=result.findings["url"].str.removeprefix(origin))
    items = result.items.assign(src=result.items["source_url"].str.removeprefix(origin),
                                dst=result.items["target_url"].str.removeprefix(origin))

    def paths(code: str) -> set[str]:
        return set(f.loc[f["code"] == code, "path"])

    def sources(code: str) -> set[tuple[str, str]]:
        ids = f.loc[f["code"] == code, "finding_id"]
        its = items[items["finding_id"].isin(ids)]
        return set(zip(its["src"], its["dst"]))

    assert sources("broken-links") == {  # 1
        ("/blog/flour-types-explained/", "/blog/rye-bread-guide/"), ("/blog/whole-wheat-baking/", "/blog/rye-bread-guide/"),
        ("/blog/hydration-explained/", "/shop/proofing-box/"), ("/blog/enriched-doughs/", "/shop/proofing-box/")}
    assert sources("links-to-redirects") == {  # 2
        ("/blog/feeding-schedule/", "/old-sourdough/"), ("/recipes/everyday-sourdough-loaf/", "/old-sourdough/"),
        ("/blog/chewy-chocolate-chip-cookies/", "/recipes/brownies/")}
    assert sources("redirect-chain") == {("/recipes/butter-croissants/", "/2019/croissant-tips/")}
    assert sources("redirect-loop") == {("/shop/", "/shop/gift-cards/"), ("/about/", "/shop/gift-cards/")}
    assert paths("orphan") == {"/blog/rye-starter-secrets/"}  # 3
    products = ("bread-flour", "rattan-banneton", "cast-iron-dutch-oven", "digital-kitchen-scale", "bread-lame",
                "dough-scraper")
    assert sources("links-to-blocked") == {(f"/shop/{p}/", "/cart/") for p in products} | {("/shop/", "/cart/")}  # 4
    assert {s for s, _ in sources("links-to-noindex")} == {"/", "/blog/", "/recipes/", "/shop/", "/about/"}  # 5
    assert paths("links-to-noindex") == {"/search/"}
    assert sources("links-to-canonicalised") == {("/recipes/classic-baguette/", "/recipes/classic-baguette-print/")}  # 6
    assert sources("nofollow-internal") == {  # 7
        ("/about/", "/contact/"), ("/blog/baking-with-kids/", "/contact/"), ("/shop/", "/terms/")}
    assert paths("deep-page") == {"/blog/panettone-project/part-3/", "/blog/panettone-project/part-4/"}  # 8
    assert paths("dead-end") == {"/recipes/sourdough-loaf-print/"}  # 9
    assert paths("links-to-non-html") == {"/downloads/sourdough-schedule.pdf"}  # 13
    assert sources("generic-anchor") == {  # 14
        ("/blog/baking-with-kids/", "/recipes/gluten-free-banana-bread/"),
        ("/blog/storing-bread/", "/recipes/everyday-sourdough-loaf/"),
        ("/blog/", "/blog/storing-bread/"), ("/blog/", "/blog/weighing-vs-cups/")}
    dest = result.juice_flow.set_index(["dimension", "category"])["juice"]
    assert dest[("destination", "external")] > 0  # 12
    assert "empty-anchor" not in set(f["code"])  # 10: the image link's alt text is its anchor
    assert not (f["path"] == "/404.html").any()


def _assert_items_carry_their_pair_share(db: Path, result) -> int:
    """Each link item's juice is its (source, target) pair's juice in link_flows split over the
    pair's links, matched here by URL strings (the audit matches by page ids)."""
    with Store(db, read_only=True) as store:
        flows = store.sql("SELECT source_url, target_url, juice, n_links, reason FROM link_flows")
    share = {(s, t): (j / n, r) for s, t, j, n, r in flows.itertuples(index=False)}
    codes = ["generic-anchor", "empty-anchor", "broken-links", "links-to-noindex", "mostly-generic-anchors"]
    linked = result.items[result.items["source_url"].notna() & result.items["code"].isin(codes)]
    for item in linked.itertuples(index=False):
        juice, reason = share[(item.source_url, item.target_url)]
        assert item.juice == pytest.approx(0.0 if reason == "nofollow" else juice, abs=1e-15), item
    return len(linked)


def test_link_items_carry_their_pair_share(site, tmp_path: Path) -> None:
    server, db = site
    assert _assert_items_carry_their_pair_share(db, run_audit(db, THRESHOLDS)) > 5
    # A partial crawl links to URLs that are not stored pages: they are matched by URL.
    partial = tmp_path / "partial.duckdb"
    crawl_site(CrawlConfig(start_url=server.url("/"), max_pages=6, **CRAWL), partial, model=MODEL)
    with Store(partial, read_only=True) as store:
        unstored = store.sql("SELECT count(*) AS n FROM link_flows WHERE target_id = -1 AND is_internal")["n"][0]
    assert unstored > 0
    result = run_audit(partial)
    _assert_items_carry_their_pair_share(partial, result)
    lost = result.juice_flow.set_index(["dimension", "category"])["juice"]
    with Store(partial, read_only=True) as store:
        expected = store.sql("SELECT sum(juice) AS j FROM link_flows WHERE reason = 'not_crawled'")["j"][0]
    assert expected > 0 and lost[("destination", "not_crawled")] == pytest.approx(expected, rel=1e-12)


def test_store_scored_by_an_older_version_asks_for_a_rescore(site, tmp_path: Path) -> None:
    _, db = site
    old = tmp_path / "old.duckdb"
    old.write_bytes(db.read_bytes())
    with Store(old) as store:  # the view as versions before page ids in link_flows wrote it
        store.con.execute("CREATE TABLE flows_before AS SELECT source_url, target_url, resolved_url, position, "
                          "anchor, nofollow, juice, delivered, reason FROM link_flows")
        store.con.execute("DROP VIEW link_flows")
        store.con.execute("ALTER TABLE flows_before RENAME TO link_flows")
    result = subprocess.run([sys.executable, "-m", "linkjuice", "audit", "--db", str(old)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "score" in result.stderr and "Traceback" not in result.stderr


def test_audit_pages_read_each_canonical_target_as_a_join_of_every_page_would(site, tmp_path: Path) -> None:
    """audit_pages joins by URL only the pages some other page names as canonical, and reads a
    page that names itself from its own row: the same canonical_status and canonical_indexability
    as a join of every page to every page by URL, here with self-canonical pages, canonicals to
    other stored pages and to URLs that are no page."""
    import shutil

    import pandas as pd

    db = tmp_path / "copy.duckdb"
    shutil.copy(site[1], db)
    with Store(db) as store:
        store.con.execute("UPDATE pages SET canonical = url WHERE page_id % 3 = 0 AND canonical IS NULL")
        store.con.execute("UPDATE pages SET canonical = url || 'gone/' WHERE page_id % 3 = 1 AND canonical IS NULL")
        counts = store.con.execute("""
            SELECT count(*) FILTER (WHERE canonical = url),
                   count(*) FILTER (WHERE canonical <> url AND canonical IN (SELECT url FROM pages)),
                   count(*) FILTER (WHERE canonical NOT IN (SELECT url FROM pages))
            FROM pages""").fetchall()[0]
        assert min(counts) >= 1, counts
        pages = store.audit_pages()
        texts = store.con.execute("SELECT error, indexability, found_via FROM pages ORDER BY page_id").df()
        reference = store.con.execute("""SELECT p.page_id, c.status AS canonical_status,
                                                c.indexability AS canonical_indexability
                                         FROM pages p LEFT JOIN pages c ON c.url = p.canonical
                                         ORDER BY p.page_id""").df()
    assert pages["page_id"].tolist() == reference["page_id"].tolist()
    for col in ("canonical_status", "canonical_indexability"):
        got = [None if pd.isna(v) else v for v in pages[col].astype(object)]
        want = [None if pd.isna(v) else v for v in reference[col].astype(object)]
        assert got == want, col
    # The columns of a few texts are the categoricals pandas makes of them (categories sorted).
    texts["canonical_indexability"] = reference["canonical_indexability"]
    assert texts["error"].notna().any() and texts["error"].isna().any()
    for col in ("error", "indexability", "found_via", "canonical_indexability"):
        want = texts[col].astype(object).where(texts[col].notna(), None).astype("category")
        pd.testing.assert_series_equal(pages[col], want, check_names=False, obj=col)
    # Read by page id whatever the order the pages are stored in, with the scores put in place (NaN
    # for a page without one), as a join of the scores would.
    with Store(db) as store:
        store.con.execute("DELETE FROM page_scores WHERE page_id = 2")
        store.con.execute("CREATE OR REPLACE TABLE pages AS SELECT * FROM pages ORDER BY page_id DESC")
        again = store.audit_pages()
        scores = store.con.execute("SELECT p.page_id, s.juice, s.juice_score FROM pages p "
                                   "LEFT JOIN page_scores s USING (page_id) ORDER BY p.page_id").df()
    assert again["page_id"].tolist() == reference["page_id"].tolist()
    assert np.isnan(again.loc[2, "juice"]) and not np.isnan(pages.loc[2, "juice"])
    for col in ("juice", "juice_score"):
        np.testing.assert_array_equal(again[col].to_numpy(float), scores[col].to_numpy(float))
    pd.testing.assert_frame_equal(again.drop(columns=["juice", "juice_score"]),
                                  pages.drop(columns=["juice", "juice_score"]))


@pytest.mark.parametrize("numba", ["0", "1"])
def test_flow_sums_agree_with_the_flows_view_in_any_chunking(site, monkeypatch: pytest.MonkeyPatch,
                                                             numba: str) -> None:
    """collect_flows sums a big site's flows a batch at a time: its sums equal pandas' over the
    whole link_flows view, and the audit is the same when every batch holds a few pairs (a page's
    pairs then straddle batches). With numba (the kernels sum each batch) and without (NumPy
    sums chunks)."""
    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    import linkjuice.audit as audit_module
    import linkjuice.store as store_module
    from linkjuice.audit import collect_flows
    from linkjuice.pipeline import REASONS, _pair_weight_settings, stored_model_config

    _, db = site
    with Store(db, read_only=True) as store:
        pages = store.audit_pages()
        view = store.con.execute("SELECT * FROM link_flows").df()
        monkeypatch.setattr(store_module, "_READ_BATCH", 3)
        monkeypatch.setattr(audit_module, "_FLOW_CHUNK", 2)
        flows, totals = collect_flows(pages, *store.audit_link_flows(REASONS), reasons=REASONS)
        # The juice formed from link_pairs and the scores with the stored model: the view's numbers.
        model = stored_model_config(store)
        formed = collect_flows(pages, *store.audit_link_flows(REASONS, weights=_pair_weight_settings(model),
                                                              damping=model.damping), reasons=REASONS)
        # Told the number of pairs, the kept columns are filled in place; told too few, the rest
        # is gathered as batches: the same frame either way.
        for pairs in (len(view), 2):
            told = collect_flows(pages, *store.audit_link_flows(REASONS, weights=_pair_weight_settings(model),
                                                                damping=model.damping), reasons=REASONS, pairs=pairs)
            assert told[0].equals(formed[0]), pairs
            assert np.array_equal(told[1].followed_inlinks, formed[1].followed_inlinks)
    # The same pairs and numbers (link_pairs' order may differ from the view's; sums to rounding).
    key = ["src", "dst", "resolved", "juice_per_link"]
    assert formed[0][key].sort_values(key, ignore_index=True).equals(flows[key].sort_values(key, ignore_index=True))
    for name in ("followed_inlinks", "followed_out", "internal_targets"):
        assert np.array_equal(getattr(formed[1], name), getattr(totals, name)), name
    assert formed[1].inflow == pytest.approx(totals.inflow, rel=1e-12, abs=1e-15)
    assert formed[1].account.drop(columns="juice").equals(totals.account.drop(columns="juice"))
    assert formed[1].account["juice"].to_numpy() == pytest.approx(totals.account["juice"].to_numpy(), rel=1e-12)
    n = len(pages)
    passed = view[(view["reason"] == "passed") & (view["resolved_id"] >= 0)
                  & (view["source_id"] != view["resolved_id"])]
    inlinks = passed.groupby("resolved_id")["source_id"].nunique().reindex(range(n), fill_value=0)
    assert totals.followed_inlinks.tolist() == inlinks.tolist()
    internal = view[view["is_internal"]]
    targets = internal.groupby("source_id").size().reindex(range(n), fill_value=0)
    assert totals.internal_targets.tolist() == targets.tolist()
    followed = internal[~internal["nofollow"]].groupby("source_id").size().reindex(range(n), fill_value=0)
    assert totals.followed_out.tolist() == followed.tolist()
    sent = view[(view["target_id"] >= 0) & (view["reason"] != "nofollow")].groupby("target_id")["juice"].sum()
    assert totals.inflow == pytest.approx(sent.reindex(range(n), fill_value=0.0).to_numpy(), rel=1e-12, abs=1e-15)
    assert totals.account["juice"].sum() == pytest.approx(view["juice"].sum(), rel=1e-12)
    assert totals.account["flows"].sum() == len(view)
    # Kept: the pairs a link can meet (to a stored page or an internal URL), each with its juice per link.
    meets = view[(view["target_id"] >= 0) | (view["is_internal"] & (view["target_id"] < 0))]
    assert len(flows) == len(meets)
    assert flows["juice_per_link"].to_numpy() == pytest.approx(
        (meets["juice"] / meets["n_links"].clip(lower=1)).to_numpy(), rel=1e-12, abs=1e-15)

    chunked = run_audit(db, THRESHOLDS)
    monkeypatch.undo()
    whole = run_audit(db, THRESHOLDS)
    assert chunked.findings.drop(columns="juice_at_stake").equals(whole.findings.drop(columns="juice_at_stake"))
    assert chunked.findings["juice_at_stake"].to_numpy() == pytest.approx(whole.findings["juice_at_stake"].to_numpy(),
                                                                         rel=1e-12, abs=1e-15)
    assert chunked.juice_flow["category"].tolist() == whole.juice_flow["category"].tolist()


@pytest.mark.parametrize("keep_all", [False, True])
@pytest.mark.parametrize("numba", ["0", "1"])
def test_collect_flows_counts_a_source_once_when_its_pairs_straddle_batches(monkeypatch: pytest.MonkeyPatch,
                                                                             numba: str, keep_all: bool) -> None:
    """Page 0 reaches page 1 directly and through the redirect page 2, in two batches: page 1 has
    one followed inlink, not two; sums by page and by (reason, position, state) are hand-counted.
    Keeping every pair (keep_all, the links then hold the pairs' sources), the sums are the same
    and the pairs are kept in order without their source and target."""
    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    import pandas as pd
    import pyarrow as pa

    import linkjuice.audit as audit_module
    from linkjuice.audit import collect_flows
    from linkjuice.pipeline import REASONS

    monkeypatch.setattr(audit_module, "_FLOW_CHUNK", 1)
    pages = pd.DataFrame({"indexability": ["indexable", "indexable", "redirect", None]})

    def batch(src, dst, resolved, target_url, position, nofollow, internal, reason, juice, n_links):
        return pa.RecordBatch.from_pydict({
            "src": pa.array(src, pa.int32()), "dst": pa.array(dst, pa.int32()),
            "resolved": pa.array(resolved, pa.int32()),
            "target_url": pa.array(target_url, pa.string()), "position": pa.array(position, pa.int8()),
            "nofollow": nofollow, "is_internal": internal, "reason": pa.array(reason, pa.int8()),
            "juice": pa.array(juice, pa.float64()), "n_links": pa.array(n_links, pa.int32())})

    passed, nofollow = REASONS.index("passed"), REASONS.index("nofollow")
    external = REASONS.index("external")
    batches = [
        batch([0], [1], [1], [None], [0], [False], [True], [passed], [0.25], [1]),
        batch([0, 0, 0, 1], [2, -1, -1, 3], [1, -1, -1, -1], [None, None, "https://s.example/new", None],
              [1, 0, 0, -1], [False, False, False, True], [True, False, True, True],
              [passed, external, REASONS.index("not_crawled"), nofollow], [0.5, 0.125, 0.0625, 0.3], [2, 1, 1, 1]),
    ]
    flows, totals = collect_flows(pages, ["content", "nav"], iter(batches), reasons=REASONS, keep_all=keep_all)
    assert totals.followed_inlinks.tolist() == [0, 1, 0, 0]
    assert totals.page_resolved.tolist() == [-1, 1, 1, -1]  # (the nofollow pair to page 3 resolves to none)
    assert totals.internal_targets.tolist() == [3, 1, 0, 0]
    assert totals.followed_out.tolist() == [3, 0, 0, 0]
    assert totals.inflow.tolist() == [0.0, 0.25, 0.5, 0.0]  # the nofollow pair's 0.3 does not count
    rows = totals.account.astype(object).where(totals.account.notna(), None)
    account = {(r.reason, r.position, r.arrives): r.juice for r in rows.itertuples()}
    assert account == {("passed", "content", "indexable"): 0.25, ("passed", "nav", "redirect"): 0.5,
                                 ("external", "content", None): 0.125, ("not_crawled", "content", None): 0.0625,
                                 ("nofollow", None, "not crawled"): 0.3}
    if keep_all:  # every pair, in order
        assert "src" not in flows and "dst" not in flows
        if numba == "1":  # (counted as the batches came: a pair's resolved page is its target's)
            assert "resolved" not in flows
        else:
            assert flows["resolved"].tolist() == [1, 1, -1, -1, -1]
        assert flows["target_url"].astype(object).tolist()[3] == "https://s.example/new"
        assert flows["juice_per_link"].tolist() == [0.25, 0.25, 0.125, 0.0625, 0.3]
        return
    # Kept: every pair but the external one; the internal URL that is not a page keeps its URL.
    assert flows["src"].tolist() == [0, 0, 0, 1] and flows["dst"].tolist() == [1, 2, -1, 3]
    assert flows["target_url"].astype(object).tolist()[2] == "https://s.example/new"
    assert flows["juice_per_link"].tolist() == [0.25, 0.25, 0.0625, 0.3]


@pytest.mark.parametrize("keep_all", [False, True])
@pytest.mark.parametrize("numba", ["0", "1"])
def test_followed_inlinks_count_each_source_once_through_redirects(monkeypatch: pytest.MonkeyPatch,
                                                                   numba: str, keep_all: bool) -> None:
    """Page 1 is reached from page 0 through the redirect 2 first and then directly, and from page
    3 through two redirects (2 and 4) only: two sources, so two followed inlinks. A nofollow pair
    and a self-resolving pair (5 -> redirect -> 5) count none. The same when every pair is kept
    without its target (keep_all): a pair through a redirect is then told from a direct one by
    its row."""
    import pandas as pd
    import pyarrow as pa

    import linkjuice.audit as audit_module
    from linkjuice.audit import collect_flows
    from linkjuice.pipeline import REASONS

    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    passed, nofollow = REASONS.index("passed"), REASONS.index("nofollow")
    pages = pd.DataFrame({"indexability": ["indexable", "indexable", "redirect", "indexable", "redirect", "indexable"]})
    src, dst, resolved = [0, 0, 3, 3, 4, 5], [2, 1, 2, 4, 1, 2], [1, 1, 1, 1, 1, 5]
    reason = [passed, passed, passed, passed, nofollow, passed]
    batches = [pa.RecordBatch.from_pydict({
        "src": pa.array(src[lo:lo + 2], pa.int32()), "dst": pa.array(dst[lo:lo + 2], pa.int32()),
        "resolved": pa.array(resolved[lo:lo + 2], pa.int32()), "target_url": pa.array([None, None], pa.string()),
        "position": pa.array([0, 0], pa.int8()), "nofollow": [r == nofollow for r in reason[lo:lo + 2]],
        "is_internal": [True, True], "reason": pa.array(reason[lo:lo + 2], pa.int8()),
        "juice": pa.array([0.1, 0.1], pa.float64()), "n_links": pa.array([1, 1], pa.int32())})
        for lo in range(0, 6, 2)]
    _, totals = collect_flows(pages, ["content"], iter(batches), reasons=REASONS, keep_all=keep_all)
    assert totals.followed_inlinks.tolist() == [0, 2, 0, 0, 0, 0]
    # Out of source order (page 3's pairs first), the pass a source at a time cannot count: it
    # says so, and counted without it the pages get the same inlinks.
    swapped = [batches[1], batches[0], batches[2]]
    if numba == "1" and keep_all:
        with pytest.raises(audit_module.UnsortedPairs):
            collect_flows(pages, ["content"], iter(swapped), reasons=REASONS, keep_all=keep_all)
    _, totals = collect_flows(pages, ["content"], iter(swapped), reasons=REASONS, keep_all=keep_all, by_source=False)
    assert totals.followed_inlinks.tolist() == [0, 2, 0, 0, 0, 0]


def test_findings_do_not_depend_on_the_order_links_arrive_in(site) -> None:
    """DuckDB's joins hand a big store's links back in no fixed order, and the audit does not sort
    them all: the links a finding lists are put in link order. Shuffled links give the same
    findings, texts (the first generic anchors quoted) and items."""

    from linkjuice.audit import audit_site
    from linkjuice.pipeline import _audit_inputs

    _, db = site
    with Store(db, read_only=True) as store:
        inputs = _audit_inputs(store)
    shuffled = inputs.links.frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert not shuffled["src"].equals(inputs.links.frame["src"])
    a = audit_site(inputs, THRESHOLDS)
    b = audit_site(dataclasses.replace(inputs, links=inputs.links._replace(frame=shuffled)), THRESHOLDS)
    assert a.findings.drop(columns="juice_at_stake").equals(b.findings.drop(columns="juice_at_stake"))
    assert a.findings["juice_at_stake"].to_numpy() == pytest.approx(b.findings["juice_at_stake"].to_numpy(), rel=1e-12)
    assert a.items.drop(columns="juice").equals(b.items.drop(columns="juice"))
    assert (a.findings["code"] == "generic-anchor").any()


@pytest.mark.parametrize("numba", ["0", "1"])
def test_links_read_by_hash_equal_a_join_of_the_url_strings(site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            numba: str) -> None:
    """Store.audit_links reads the codes finalize stored (link_codes), or, made afresh, meets
    links, pages, unstored targets and anchors by 64-bit hash (joined by DuckDB, or looked up in
    a hash table by the numba kernels): the same rows as pandas' join of the stored strings, and
    as its own join of the strings. A partial crawl: links to URLs it never fetched."""
    import pandas as pd

    if numba == "1":
        pytest.importorskip("numba")
    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    server, _ = site
    db = tmp_path / "partial.duckdb"
    crawl_site(CrawlConfig(start_url=server.url("/"), max_pages=6, **CRAWL), db, model=MODEL)
    with Store(db, read_only=True) as store:
        assert store._stored_link_codes() is not None
        stored = store.audit_links()
        hashed = store.audit_links(stored=False)
        by_text = store.audit_links(by_hash=False, stored=False)
        assert store.link_pairs_state() is not None  # the unstored targets were named by link_pairs
        with monkeypatch.context() as patch:  # without link_pairs: they are grouped from the links
            patch.setattr(Store, "link_pairs_state", lambda self: None)
            grouped = store.audit_links(stored=False)
        links = store.con.execute("SELECT * FROM links WHERE is_internal AND source_url <> target_url").df()
        ids = store.con.execute("SELECT url, page_id FROM pages").df().set_index("url")["page_id"]
    reference = pd.DataFrame({
        "src": links["source_url"].map(ids).astype(int),
        "dst": links["target_url"].map(ids).fillna(-1).astype(int),
        "target": links["target_url"], "anchor": links["anchor"], "position": links["position"],
        "link_order": links["link_order"].astype(float), "nofollow": links["nofollow"].fillna(False).astype(bool),
        "found_in": links["found_in"].fillna("raw"),
    })
    assert (reference["dst"] < 0).any() and (reference["dst"] >= 0).any()  # both kinds of target

    def rows(links: AuditLinks | pd.DataFrame) -> list[tuple]:
        frame = links if isinstance(links, pd.DataFrame) else _reference_form(links)
        target = frame["target"]
        out = pd.DataFrame({
            "src": frame["src"].astype(int), "dst": frame["dst"].astype(int),
            "target": np.where(frame["dst"] < 0, target.astype(object), None),
            "anchor": frame["anchor"].astype(object).where(frame["anchor"].notna(), None),
            "position": frame["position"].astype(object).where(frame["position"].notna(), None),
            "link_order": frame["link_order"].astype(float).fillna(-1.0),
            "nofollow": frame["nofollow"].astype(bool), "found_in": frame["found_in"].astype(object)})
        return sorted(out.itertuples(index=False, name=None), key=repr)

    assert rows(stored) == rows(reference)
    assert rows(hashed) == rows(reference)
    assert rows(by_text) == rows(reference)
    assert rows(grouped) == rows(reference)
    assert list(hashed.frame["anchor"].cat.categories) == sorted(links["anchor"].dropna().unique())
    assert list(stored.frame["anchor"].cat.categories) == list(hashed.frame["anchor"].cat.categories)
    for read in (stored, hashed, by_text, grouped):  # (the audit's target codes rely on it)
        assert len(read.extra_urls) and list(read.extra_urls) == sorted(read.extra_urls)


def _reference_form(links: AuditLinks) -> pd.DataFrame:
    """audit_links' result as one frame of the test's reference: dst -1 and the target URL for a
    target that is not a stored page, NaN for a link without an order."""
    frame = links.frame
    code, order = frame["target"].to_numpy(), frame["link_order"].to_numpy()
    dst = np.where(code < links.pages, code, -1)
    extra = np.append(np.asarray(links.extra_urls, dtype=object), None)  # (None: a stored page)
    return frame.drop(columns="target").assign(
        dst=dst, target=extra[np.where(dst < 0, code - links.pages, len(extra) - 1)],
        link_order=np.where(order == LINK_ORDER_MISSING, np.nan, order))


def test_audit_refuses_scores_older_than_a_new_finalize(site, tmp_path: Path) -> None:
    """A crawl finalized again after its last score (resumed with --no-score) has new link pairs
    and no cached relevance: the audit says to score again, in one line through the CLI, and
    keeps the stored findings; after the score it audits."""
    import shutil

    from linkjuice.pipeline import finalize_store, score_store

    _, db = site
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    run_audit(copy, THRESHOLDS)
    with Store(copy) as store:
        findings = store.con.execute("SELECT count(*) FROM findings").fetchall()[0][0]
        finalize_store(store)
    assert findings > 0
    with pytest.raises(StoreError, match="scores are older than the links"):
        run_audit(copy, THRESHOLDS)
    result = subprocess.run([sys.executable, "-m", "linkjuice", "audit", "--db", str(copy)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "linkjuice score --db" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with Store(copy) as store:
        assert store.con.execute("SELECT count(*) FROM findings").fetchall()[0][0] == findings
        score_store(store, model=MODEL)
    assert len(run_audit(copy, THRESHOLDS).by_code()) > 0


def test_link_codes_that_do_not_fit_in_memory_are_left_out_and_the_audit_reads_the_links(
        site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored link codes only save the audit time: when DuckDB runs out of memory while
    they are written (its joins, without numba, on a big store), finalize goes on without them
    and the audit reads the links themselves, with the same result."""
    import shutil

    import duckdb

    from linkjuice.pipeline import finalize_store

    _, db = site
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    with Store(copy, read_only=True) as store:
        read = store.audit_links()
    before = run_audit(copy, THRESHOLDS)

    def out_of_memory(self: Store, codes: object) -> None:
        raise duckdb.OutOfMemoryException("Out of Memory Error: failed to pin block (a test)")

    monkeypatch.setattr(Store, "_link_code_batches", out_of_memory)
    with Store(copy) as store:
        finalize_store(store)
        assert store._stored_link_codes() is None and not store.link_code_pairs()
        assert store.con.execute("SELECT count(*) FROM link_codes").fetchall()[0][0] == 0
    monkeypatch.undo()
    with Store(copy) as store:
        from linkjuice.pipeline import score_store

        score_store(store, model=MODEL)
        again = store.audit_links()
        assert again.frame.sort_values(["src", "link_order"]).reset_index(drop=True).equals(
            read.frame.sort_values(["src", "link_order"]).reset_index(drop=True))
        assert again.extra_urls.equals(read.extra_urls)
    after = run_audit(copy, THRESHOLDS)
    assert after.findings.drop(columns="juice_at_stake").equals(before.findings.drop(columns="juice_at_stake"))


def test_links_found_by_their_stored_pair_row_give_the_audit_of_a_search_by_key(site, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Finalize stores each link's row in link_pairs; the audit then keeps every pair in that
    order and finds a link's pair by its row. The same findings, items and juice as when it
    searches each link's pair by its (source, target) key, which it does when link_pairs was
    rebuilt since the codes were written."""
    import linkjuice.audit as audit_module
    from linkjuice.pipeline import _audit_inputs

    server, _ = site
    copy = tmp_path / "partial.duckdb"  # a partial crawl: links to URLs it never fetched
    crawl_site(CrawlConfig(start_url=server.url("/"), max_pages=6, **CRAWL), copy, model=MODEL)
    with Store(copy, read_only=True) as store:
        assert store.link_code_pairs()
        inputs = _audit_inputs(store)
        pair = inputs.links.frame["pair"].to_numpy()
        pairs = store.con.execute("SELECT src, dst, target_url FROM link_pairs").df()
        with monkeypatch.context() as patch:
            patch.setattr(Store, "link_code_pairs", lambda self, state=None: False)
            searched = _audit_inputs(store)
    assert "pair" not in searched.links.frame and (pair >= 0).all()
    # Each link's stored row is the pair of its source and target.
    links = _reference_form(inputs.links)
    assert (pairs["src"].to_numpy()[pair] == links["src"].to_numpy()).all()
    to_page = links["dst"].to_numpy() >= 0
    assert (~to_page).any() and to_page.any()
    assert (pairs["dst"].to_numpy()[pair][to_page] == links["dst"].to_numpy()[to_page]).all()
    assert (pairs["target_url"].to_numpy()[pair][~to_page] == links["target"].to_numpy()[~to_page]).all()
    searches = []
    flow_keys = audit_module._flow_keys
    monkeypatch.setattr(audit_module, "_flow_keys", lambda *a: searches.append(1) or flow_keys(*a))
    by_row = audit_module.audit_site(inputs, THRESHOLDS)
    assert not searches
    by_key = audit_module.audit_site(searched, THRESHOLDS)
    assert searches
    assert len(by_row.items) and by_row.findings.equals(by_key.findings)
    assert by_row.items.equals(by_key.items)


def test_stored_link_codes_are_not_read_once_the_links_change(site, tmp_path: Path) -> None:
    """The link codes finalize stores are read only while the store's pages and links are the
    ones they were made from: a link added since (a resumed crawl before its finalize) makes the
    audit read the links themselves, and a finalize stores codes that include it."""
    import shutil

    from linkjuice.pipeline import finalize_store

    _, db = site
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    with Store(copy) as store:
        before = store.audit_links()
        assert store._stored_link_codes() is not None
        source, target = store.con.execute("SELECT source_url, target_url FROM links WHERE is_internal "
                                           "AND source_url <> target_url LIMIT 1").fetchall()[0]
        store.con.execute("INSERT INTO links (source_url, target_url, anchor, dom_position, position, link_order, "
                          "is_internal) VALUES (?, ?, 'added anchor', 'content', 'content', 999, true)", [source, target])
        assert store._stored_link_codes() is None
        read = store.audit_links()
        assert len(read.frame) == len(before.frame) + 1 and "added anchor" in set(read.frame["anchor"].dropna())
        finalize_store(store)
        assert store._stored_link_codes() is not None
        after = store.audit_links()
    assert len(after.frame) == len(read.frame) and "added anchor" in set(after.frame["anchor"].dropna())


def test_release_memory_puts_the_memory_limit_back(tmp_path: Path) -> None:
    """The audit hands DuckDB's cached blocks back by lowering its limit for a moment: the limit
    set before (the audit's own) is the one in force after."""
    with Store(tmp_path / "s.duckdb") as store:
        store.set_memory_limit("512MiB")  # whole MiB: DuckDB shows the limit rounded to 0.1 MiB
        before = store.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        store.release_memory()
        assert store.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == before
        assert before == "512.0 MiB"


@pytest.mark.parametrize("numba", ["0", "1"])
def test_each_shared_anchor_names_its_own_count_of_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           numba: str) -> None:
    """Two anchors that each point at several pages ("Alpha" at 2, "Beta" at 3): each finding
    names its own count, whatever order the links arrive in (the audit puts the listed links in
    link order and the counts must follow them). A generic or empty anchor that points at several
    pages is reported as such, not as a shared anchor. A target that no page receives (a redirect
    loop) is told apart by its URL's key: "Delta" names the loop and a page (two targets),
    "Gamma" two spellings of the loop's URL (one target). With the numba kernel and with NumPy."""
    monkeypatch.setenv("LINKJUICE_NUMBA", numba)

    from linkjuice.audit import audit_site
    from linkjuice.pipeline import _audit_inputs

    routes: dict[str, Route] = {
        "/": page("Home", _links(*(_a(f"/p{i}/", f"Page {i}") for i in range(6)))),
        # Beta's links come first on the pages that hold the later Alpha links, and the other way round.
        "/p0/": page("P0", _links(_a("/p3/", "Beta"), _a("/p1/", "Alpha"))),
        "/p1/": page("P1", _links(_a("/p2/", "Alpha"), _a("/p4/", "Beta"))),
        "/p2/": page("P2", _links(_a("/p5/", "Beta"), _a("/p1/", "Alpha"))),
        "/p3/": page("P3", _links(_a("/p4/", "click here"), _a("/p1/", " "), _a("/p0/", "Delta"))),
        "/p4/": page("P4", _links(_a("/p5/", "click here"), _a("/l1/", "Delta"), _a("/l1", "Gamma"))),
        "/p5/": page("P5", _links(_a("/p2/", " "), _a("/l1/", "Gamma"))),
        # A redirect loop: no page receives what its links pass.
        "/l1/": redirect("/l2/"), "/l1": redirect("/l2/"), "/l2/": redirect("/l1/"),
    }
    with serve(routes) as server:
        db = tmp_path / "anchors.duckdb"
        crawl_site(CrawlConfig(start_url=server.url("/"), **CRAWL), db, model=MODEL)
    with Store(db, read_only=True) as store:
        inputs = _audit_inputs(store)
    frame = inputs.links.frame
    for links in (frame, frame.sample(frac=1.0, random_state=3).reset_index(drop=True),
                  frame.iloc[::-1].reset_index(drop=True)):
        result = audit_site(dataclasses.replace(inputs, links=inputs.links._replace(frame=links)), THRESHOLDS)
        multi = result.findings[result.findings["code"] == "anchor-multiple-targets"].set_index("anchor")
        assert sorted(multi.index) == ["Alpha", "Beta", "Delta"]
        assert sorted(result.findings.loc[result.findings["code"] == "generic-anchor", "url"]) == [
            server.url("/p4/"), server.url("/p5/")]
        assert sorted(result.findings.loc[result.findings["code"] == "empty-anchor", "url"]) == [
            server.url("/p1/"), server.url("/p2/")]
        assert "points at 2 different pages" in multi.at["Alpha", "explanation"]
        assert "points at 3 different pages" in multi.at["Beta", "explanation"]
        assert "points at 2 different pages" in multi.at["Delta", "explanation"]


def _same_values(a, b) -> None:
    """Two frames hold the same rows and values (dtypes aside: one may come back from the store)."""
    import pandas as pd

    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]):
            assert a[col].to_numpy() == pytest.approx(b[col].to_numpy(np.float64), rel=1e-12, abs=1e-15), col
        else:
            x = [None if pd.isna(v) else str(v) for v in a[col].astype(object)]
            y = [None if pd.isna(v) else str(v) for v in b[col].astype(object)]
            assert x == y, col


@pytest.mark.parametrize("slice_rows", [None, 3])
def test_streamed_audit_writes_what_audit_site_returns(site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       slice_rows: int | None) -> None:
    """run_audit writes the findings and items a slice at a time and reads them back when asked:
    the same rows, ids, texts and fixes as audit_site's frames, in slices of 3 rows (fix texts
    met across slices, a part's items split) as in one; head() and by_code() without loading
    the rest; the fail-on gate counted from by_code."""
    import shutil

    import linkjuice.audit as audit_module
    from linkjuice.audit import audit_site, summarize
    from linkjuice.pipeline import _audit_inputs, audit_store

    _, db = site
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(db, copy)
    with Store(copy, read_only=True) as store:
        eager = audit_site(_audit_inputs(store), THRESHOLDS)
    if slice_rows:
        monkeypatch.setattr(audit_module, "_TEXT_SLICE", slice_rows)
        monkeypatch.setattr(audit_module, "_ITEM_SLICE", slice_rows)
    with Store(copy) as store:
        stored = audit_store(store, THRESHOLDS)
        top, top_items = stored.head(4)  # read through the open store
        assert stored._findings is None  # head() loaded nothing else
    assert stored.summary["findings"] == len(eager.findings) > 20
    _same_values(eager.findings.head(4), top)
    _same_values(eager.items[eager.items["finding_id"] <= 4].reset_index(drop=True), top_items)
    _same_values(eager.by_code(), stored.by_code())
    _same_values(summarize(eager.findings), stored.by_code())
    # Loaded after the store was closed: read from its file.
    _same_values(eager.findings, stored.findings)
    _same_values(eager.items, stored.items)
    assert eager.items["finding_id"].is_monotonic_increasing and stored.findings["fix"].dtype == "category"
    with Store(copy, read_only=True) as store:  # stored in finding_id order, slice after slice
        scanned = store.con.execute("SELECT finding_id FROM findings").fetchnumpy()["finding_id"]
    assert scanned.tolist() == list(range(1, len(eager.findings) + 1))
    gate = parse_fail_on("broken-links,warnings")
    assert gate.matches(stored.by_code())["findings"].sum() == len(gate.matches(eager.findings))


def test_links_without_anchor_text_are_empty_anchors_like_empty_text(site) -> None:
    """A link whose anchor is NULL (code -1 in the links' categorical) counts as an empty anchor,
    exactly as one whose anchor is "": the same findings, texts and items either way."""

    import pandas as pd

    from linkjuice.audit import audit_site
    from linkjuice.pipeline import _audit_inputs

    _, db = site
    with Store(db, read_only=True) as store:
        inputs = _audit_inputs(store)
    anchor = inputs.links.frame["anchor"]
    empty = (anchor.astype(object) == "").to_numpy(bool)
    assert empty.any()
    nulls = inputs.links.frame.assign(anchor=pd.Categorical(anchor.astype(object).where(~empty, None)))
    assert (nulls["anchor"].cat.codes.to_numpy() == -1).sum() == empty.sum()
    a = audit_site(inputs, THRESHOLDS)
    b = audit_site(dataclasses.replace(inputs, links=inputs.links._replace(frame=nulls)), THRESHOLDS)
    assert (a.findings["code"] == "empty-anchor").any()
    assert a.findings.drop(columns="juice_at_stake").equals(b.findings.drop(columns="juice_at_stake"))
    pd.testing.assert_frame_equal(a.items.drop(columns="anchor"), b.items.drop(columns="anchor"))
    assert (a.items["anchor"].fillna("") == b.items["anchor"].fillna("")).all()


@pytest.mark.parametrize("numba", ["0", "1"])
def test_codes_counted_by_slices_as_bincount_counts_them(monkeypatch: pytest.MonkeyPatch, numba: str) -> None:
    """_count_codes equals np.bincount, whatever the slices: counts added across slices, empty
    input, codes past minlength (the result grows as bincount's does). With numba's one pass
    (codes past minlength: NumPy's slices) and without."""
    import linkjuice.audit as audit_module

    monkeypatch.setenv("LINKJUICE_NUMBA", numba)

    monkeypatch.setattr(audit_module, "_COUNT_SLICE", 7)
    codes = np.random.default_rng(3).integers(0, 40, 1000).astype(np.int32)
    for minlength in (0, 40, 55):
        expected = np.bincount(codes, minlength=minlength)
        got = audit_module._count_codes(codes, minlength)
        assert got.dtype == np.int64 and got.tolist() == expected.tolist()
    assert audit_module._count_codes(np.zeros(0, np.int32), 5).tolist() == [0] * 5
    assert audit_module._count_codes(np.array([2, 9, 9], np.int32), 4).tolist() == np.bincount([2, 9, 9]).tolist()


@pytest.mark.parametrize("numba", ["0", "1"])
def test_group_sums_equal_pandas_to_the_bit(monkeypatch: pytest.MonkeyPatch, numba: str) -> None:
    """_group_sums (a link finding's juice at stake) equals pandas' compensated groupby sum bit
    for bit, with numba's one pass and without: values of very different magnitudes that a plain
    sum rounds away, NaN (skipped), an infinity in a group and inf - inf (NaN) in another."""
    import linkjuice.audit as audit_module

    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    rng = np.random.default_rng(5)
    values = rng.choice([1e16, 1.0, -1e16, 3.3e-9, 0.1, 7.0], 5000) * rng.random(5000)
    codes = rng.integers(0, 60, 5000)
    codes[:60] = np.arange(60)  # (every group occurs)
    values[[100, 200]] = np.nan
    values[codes == 7] = 0.1  # a long run of 0.1s: compensation matters
    values[np.flatnonzero(codes == 11)[:1]] = np.inf
    values[np.flatnonzero(codes == 12)[:2]] = [np.inf, -np.inf]
    expected = pd.Series(values).groupby(codes, sort=True).sum().to_numpy()
    got = audit_module._group_sums(codes, values, 60)
    assert got.dtype == np.float64 and got.tobytes() == expected.tobytes()
    naive = np.bincount(codes[~np.isnan(values)], weights=values[~np.isnan(values)], minlength=60)
    assert not np.array_equal(naive, expected, equal_nan=True)  # (the check would see a plain sum)


@pytest.mark.parametrize("numba", ["0", "1"])
def test_first_distinct_values_per_group_in_row_order(monkeypatch: pytest.MonkeyPatch, numba: str) -> None:
    """_first_distinct (a target's first three distinct generic anchors) against a loop over the
    rows: values in order of first appearance, repeats and -1 (no value) skipped, -1 where a
    group has fewer; with numba and without."""
    import linkjuice.audit as audit_module

    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    rng = np.random.default_rng(8)
    group = rng.integers(0, 30, 400)
    value = rng.integers(-1, 6, 400).astype(np.int32)
    group[-1] = 31  # a group with one value; group 30 has none
    expected = np.full((32, 3), -1, np.int32)
    for g, v in zip(group, value):
        row = expected[g]
        if v >= 0 and v not in row and (row < 0).any():
            row[np.argmax(row < 0)] = v
    got = audit_module._first_distinct(group, value, 32, 3)
    assert got.dtype == np.int32 and got.tolist() == expected.tolist()
    assert (got[30] == -1).all() and (got[:30, 2] >= 0).sum() > 20


@pytest.mark.parametrize("packed", [True, False])
def test_quoted_anchors_are_each_targets_first_three_distinct_stripped_anchors(
        monkeypatch: pytest.MonkeyPatch, packed: bool) -> None:
    """_quoted_anchors (generic-anchor's explanation) quotes per target its first three distinct
    anchors once stripped, in link order, against a loop over the links; the lists of codes packed
    in one integer and, past the packing's range, as rows."""
    import linkjuice.audit as audit_module

    if not packed:
        monkeypatch.setattr(audit_module, "_PACKED_LISTS", 0)
    anchors = pd.Index(["read more", " read more ", "click here", "more", "here", "details"], dtype="str")
    rng = np.random.default_rng(4)
    target = rng.integers(0, 12, 300)
    code = rng.integers(0, len(anchors), 300)
    target[:3], code[:3] = 11, [1, 0, 2]  # target 11: " read more " then "read more" (the same once stripped)
    quoted, at = audit_module._quoted_anchors(target, code, anchors, 14)
    expected = {}
    for t, c in zip(target, code):
        texts = expected.setdefault(t, [])
        if anchors[c].strip() not in texts and len(texts) < 3:
            texts.append(anchors[c].strip())
    got = quoted.to_pylist()
    assert {t: got[at[t]] for t in expected} == {t: ", ".join(f'"{x}"' for x in v) for t, v in expected.items()}
    assert got[at[11]].startswith('"read more", "click here"')
    assert len(got) == len(set(got))  # (each distinct list written once, shared by its targets)


def test_column_texts_of_counts_and_scores_match_the_row_texts() -> None:
    """_plural_v (texts of a whole column, by a take from the texts of its range when it is
    narrow, else formatted) and _score_sql (DuckDB's, in the weak-page template) write what _plural
    and _score write for each value."""
    import duckdb
    import pyarrow as pa

    from linkjuice.audit import _plural, _plural_v, _score, _score_sql

    rng = np.random.default_rng(7)
    for counts in (rng.integers(0, 40, 500), np.array([1, 70_000, 2]), np.array([-1, 1, 2]), np.zeros(0, np.int64)):
        assert _plural_v(counts, "page").to_pylist() == [_plural(int(c), "page") for c in counts]
    with duckdb.connect() as con:
        for values in (np.append(rng.random(500) * 100, [np.nan, 0.5, 1.5, 2.5, 99.5]), np.array([1e9, 0.0, np.nan])):
            con.register("scores", pa.table({"_x": pa.array(values, from_pandas=True)}))
            shown = [r[0] for r in con.execute(f"SELECT {_score_sql('_x')} FROM scores").fetchall()]
            assert shown == [_score(v) for v in values]


def test_page_states_as_a_categorical_from_the_indexability_categories() -> None:
    """_state_category reads the pages' categorical indexability as page_states' texts would read
    ("not crawled" where missing), whether or not that category exists, and from plain texts."""
    import pandas as pd

    from linkjuice.audit import _codes_in, _state_category, page_states

    values = np.array(["indexable", "noindex", None, "redirect", None, "not crawled"], dtype=object)[
        np.random.default_rng(5).integers(0, 6, 300)]
    for indexability in (pd.Series(values).astype("category"), pd.Series(values),
                         pd.Series(values[values != "not crawled"]).astype("category")):
        pages = pd.DataFrame({"indexability": indexability}, index=np.arange(len(indexability)) + 7)
        expected = page_states(pages)
        got = _state_category(pages)
        assert got.astype(object).tolist() == list(expected)
        for names in (("not crawled",), ("noindex", "redirect"), ("indexable",)):
            assert (_codes_in(got, names) == np.isin(expected, names)).all()


def test_findings_are_ordered_by_severity_juice_code_then_url() -> None:
    """_order puts the findings in the documented order (severity, juice at stake from the
    highest, code, then URL, missing ones first), as pandas' sort does: URLs that share a long
    prefix, one a prefix of another, non-ASCII ones, and ties on every key before the URL,
    across two parts (detectors)."""
    import pandas as pd

    from linkjuice.audit import _CODE_RANK_OF, _SEVERITY_RANK_OF, _order, _Part

    base = "https://shop.example/caté/"
    rng = np.random.default_rng(11)
    frames = []
    for part in range(3):
        n = 400
        urls = [base + s for s in rng.choice(["p1", "p10", "p1/", "p2", "é", "Z", "", "p10x"], n)]
        frame = pd.DataFrame({
            "code": rng.choice(["broken-links", "weak-page"], n) if part < 2 else "weak-page",
            "severity": rng.choice(["error", "warning", "notice"], n) if part < 2 else "notice",
            "url": pd.Series(urls, dtype=object).where(rng.random(n) > 0.05, None),
            "anchor": None,
            "item_count": 0,
            # large groups of equal juice; in the last part, mostly pairs and single findings
            "juice_at_stake": rng.choice([0.5, 0.25, np.nan], n) if part < 2 else rng.integers(0, 200, n) / 1e4,
        })
        frames.append(frame)
    parts = [_Part(f.copy(), pd.DataFrame(columns=["_local"])) for f in frames]
    ordered = _order(parts)
    got = list(zip(ordered.findings["_part"], ordered.findings["_local"]))
    both = pd.concat([f.assign(_part=i, _local=np.arange(len(f))) for i, f in enumerate(frames)], ignore_index=True)
    both["_rank"] = both["severity"].map(_SEVERITY_RANK_OF)
    both["_order"] = both["code"].map(_CODE_RANK_OF)
    both["_juice"] = -both["juice_at_stake"]  # (descending)
    both["_url"] = both["url"].map(lambda u: None if u is None else u.encode())  # bytewise, as DuckDB compares
    # (pandas puts missing values first or last for every key at once: here by a flag before each)
    both["_no_juice"] = both["juice_at_stake"].notna()
    both["_has_url"] = both["url"].notna()
    expected = both.sort_values(["_rank", "_no_juice", "_juice", "_order", "_has_url", "_url", "_part", "_local"],
                                kind="stable")
    assert got == list(zip(expected["_part"], expected["_local"]))
    ties = both.groupby(["_rank", "juice_at_stake", "_order"], dropna=False).size().value_counts()
    assert len(set(both["url"].dropna())) > 5 and ties.get(2, 0) > 10 and ties[ties.index > 2].sum() > 10


def test_taken_texts_equal_pandas_take_for_arrow_and_object_urls() -> None:
    """_taken_texts gathers URLs by their codes with Arrow from an Arrow-backed index of many
    chunks (as the audit's URLs come from DuckDB), and falls back to pandas for objects: both
    give what pandas' take gives, in the index's dtype, missing values kept."""
    import pyarrow as pa

    from linkjuice.audit import _taken_texts

    urls = [f"https://example.com/p/{i}" for i in range(50)] + [None]
    chunked = pa.chunked_array([pa.array(urls[:20], pa.large_string()), pa.array(urls[20:], pa.large_string())])
    codes = np.array([50, 3, 3, 49, 0, 21, 19, 20], np.int64)
    arrow_backed = pd.Index(pd.array(chunked, dtype="str"))
    assert _taken_texts(arrow_backed, codes).dtype == arrow_backed.dtype
    for index in (arrow_backed, pd.Index(urls, dtype=object)):
        taken = pd.Series(_taken_texts(index, codes), dtype=object)
        assert [None if pd.isna(u) else u for u in taken] == [urls[c] for c in codes]
    assert len(_taken_texts(pd.Index(pd.array(chunked, dtype="str")), np.zeros(0, np.int64))) == 0


def test_items_stored_by_url_code_read_back_equal_to_the_in_memory_ones(site, tmp_path: Path) -> None:
    """finding_items is a view over finding_item_rows, which keeps the anchor findings' items'
    URLs as codes into audit_urls (the URLs the audit knew) and their code as a number. A store
    whose items are a table (as written before the view) gets the view from its next audit, and
    the items read through it equal the audit's in-memory items, URLs and all."""
    import shutil

    from linkjuice.audit import ITEM_COLUMNS, audit_site
    from linkjuice.pipeline import _audit_inputs

    db = tmp_path / "copy.duckdb"
    shutil.copy(site[1], db)
    with Store(db) as store:  # the items as a table of texts, as an audit stored them before the view
        store.con.execute("DROP VIEW finding_items")
        store.con.execute("DROP TABLE finding_item_rows")
        store.con.execute("CREATE TABLE finding_items (finding_id INTEGER, code VARCHAR, url VARCHAR, source_url VARCHAR, "
                          "target_url VARCHAR, anchor VARCHAR, position VARCHAR, link_order INTEGER, juice DOUBLE, "
                          "detail VARCHAR)")
    with Store(db) as store:  # (opened again as it is: the schema's view does not replace the table)
        assert store.con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'finding_items'"
                                 ).fetchall() == [("BASE TABLE",)]
    stored = run_audit(db, THRESHOLDS).items
    with Store(db, read_only=True) as store:
        in_memory = audit_site(_audit_inputs(store), THRESHOLDS).items
        kinds = dict(store.con.execute("SELECT table_name, table_type FROM information_schema.tables "
                                       "WHERE table_name IN ('finding_items', 'finding_item_rows')").fetchall())
        rows = store.sql("SELECT v.code, r._url IS NOT NULL AS coded, r.url IS NULL AND r.target_url IS NULL AS bare, typeof(r._code) AS code_type, "
                         "u.url AS named FROM finding_item_rows r JOIN (SELECT DISTINCT finding_id, code FROM "
                         "finding_items) v USING (finding_id) LEFT JOIN audit_urls u ON u.code = r._source_url")
        pages = store.sql("SELECT url FROM pages ORDER BY page_id")["url"].tolist()
        urls = store.sql("SELECT code, url FROM audit_urls ORDER BY code")
        # Browsed (report, dashboard): counted from the stored rows when unfiltered, through the view when filtered.
        first, total = store.browse("finding_items", limit=5)
        _, generic_total = store.browse("finding_items", equals={"code": "generic-anchor"}, limit=5)
    assert kinds == {"finding_items": "VIEW", "finding_item_rows": "BASE TABLE"}
    assert set(rows["code_type"]) == {"TINYINT"}
    # The anchor findings' items name their URLs by code, and store no text for them (their target is
    # their url); the others keep texts.
    anchors = rows["code"].isin(["generic-anchor", "empty-anchor", "mostly-generic-anchors"])
    assert anchors.any() and not anchors.all()
    assert (rows["coded"] == anchors).all() and (rows["bare"] == anchors).all()
    assert rows.loc[anchors, "named"].notna().all()
    # audit_urls: every page's URL at its page id's row, then the other linked URLs.
    assert urls["code"].tolist() == list(range(len(urls))) and urls["url"].tolist()[:len(pages)] == pages

    def rows_of(items: pd.DataFrame) -> list[tuple]:
        return [tuple(None if pd.isna(v) else v for v in row) for row in items[list(ITEM_COLUMNS)].itertuples(index=False)]

    assert len(stored) == len(in_memory) and rows_of(stored) == rows_of(in_memory)
    assert total == len(in_memory) and len(first) == 5
    assert generic_total == int((in_memory["code"] == "generic-anchor").sum()) > 0
    generic = stored[stored["code"] == "generic-anchor"]
    assert len(generic) and (generic["target_url"] == generic["url"]).all() and generic["source_url"].notna().all()

"""Link suggestions, what-if simulation and the optimiser, against known answers and against
full recomputation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkjuice.config import CrawlConfig
from linkjuice.errors import InputFileError, UsageError
from linkjuice.opportunities import SuggestOptions, optimize, simulate, suggest_links
from linkjuice.pipeline import crawl_site, pages
from linkjuice.whatif import ModelState, greedy_optimize

BREAD = ("Our sourdough starter feeding guide explains flour, water and fermentation. A healthy rye starter "
         "rises, bubbles and smells sweet; feed the sourdough starter daily with rye flour. ")
KNIFE = "Whetstones, honing rods and edge angles keep a chef knife sharp. Steel, grit and burr removal. "
CAKE = "Sponge cakes need eggs, sugar, butter and careful folding; bake the sponge until golden. "
ORIGIN = "https://s.example"


def _html(title: str, text: str, links: str = "", nav: str = "") -> str:
    return (f"<html><head><title>{title} | Bakery</title></head><body><nav>{nav}</nav><main>"
            f"<h1>{title}</h1><p>{text}</p><p>{links}</p></main></body></html>")


def _write(root: Path, site: dict[str, str]) -> None:
    for path, html in site.items():
        file = root / "index.html" if path == "/" else root / path.strip("/") / "index.html"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(html, encoding="utf-8")


NAV = "<a href='/'>Home</a> <a href='/hub/'>Hub</a> <a href='/knives/'>Knives</a> <a href='/cakes/'>Cakes</a>"


@pytest.fixture()
def site_db(tmp_path: Path) -> Path:
    """A site where the right suggestion is known by construction: /hub/ is strong (every page
    links to it) and talks about feeding a sourdough starter without linking to the target;
    /knives/ and /cakes/ are as strong but off-topic; /weak-bread/ is relevant but weak."""
    site = {
        "/": _html("Home", BREAD[:60] + KNIFE[:40] + CAKE[:40], nav=NAV),
        "/hub/": _html("Baking hub", BREAD * 2, "<a href='/knives/'>knife care</a>", nav=NAV),
        "/knives/": _html("Knife care", KNIFE * 3, nav=NAV),
        "/cakes/": _html("Sponge cakes", CAKE * 3, nav=NAV),
        "/weak-bread/": _html("Rye bread notes", BREAD, "<a href='/'>home</a>"),
        "/target/": _html("Sourdough starter feeding", BREAD * 2, "<a href='/'>home</a>"),
    }
    root = tmp_path / "site"
    _write(root, site)
    # /weak-bread/ and /target/ are reachable only through the sitemap-free start page? No: link them
    # from the home page's content so they are crawled, weakly.
    (root / "index.html").write_text(site["/"].replace("</main>", "<a href='/weak-bread/'>rye notes</a> "
                                                      "<a href='/target/'>starter</a></main>"), encoding="utf-8")
    db = tmp_path / "s.duckdb"
    crawl_site(CrawlConfig(start_url=ORIGIN + "/", local_root=str(root)), db)
    return db


def test_suggestion_known_by_construction(site_db: Path) -> None:
    frame = suggest_links(site_db, SuggestOptions(target=ORIGIN + "/target/", per_target=5))
    assert not frame.empty
    top = frame.iloc[0]
    assert top["source_url"] == ORIGIN + "/hub/"  # strong and relevant beats strong-irrelevant and weak-relevant
    assert ORIGIN + "/knives/" not in set(frame["source_url"]) and ORIGIN + "/cakes/" not in set(frame["source_url"])
    assert top["anchor"].lower() in ("sourdough starter feeding", "sourdough starter")
    assert top["anchor"] in top["context"] and top["context"] in BREAD * 2  # the phrase is in the source's text
    assert frame["exact"].iloc[0]
    # Ranked by predicted gain, and stored in the store.
    assert list(frame["predicted_gain"]) == sorted(frame["predicted_gain"], reverse=True)
    from linkjuice.store import Store

    with Store(site_db, read_only=True) as store:
        saved = store.sql("SELECT source_url, anchor FROM suggestions ORDER BY rank")
    assert saved["source_url"].iloc[0] == ORIGIN + "/hub/"


def test_predicted_gain_equals_simulated_recomputation(site_db: Path, tmp_path: Path) -> None:
    frame = suggest_links(site_db, SuggestOptions(target=ORIGIN + "/target/", per_target=5))
    top = frame.iloc[0]
    add = tmp_path / "add.csv"
    pd.DataFrame({"source": [top["source_url"]], "target": [top["target_url"]],
                  "anchor": [top["anchor"]], "position": ["content"]}).to_csv(add, index=False)
    result = simulate(site_db, add=add)
    after = result.pages.set_index("url")
    assert after.loc[top["target_url"], "change"] == pytest.approx(top["predicted_gain"], rel=1e-6)
    # The store is unchanged by a simulation.
    assert pages(site_db).set_index("url").loc[top["target_url"], "juice"] == pytest.approx(
        after.loc[top["target_url"], "juice_before"])
    for acc in (result.accounting_before, result.accounting_after):
        assert acc["share"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_suggest_writes_its_rows_to_the_output_file_kind_asked(site_db: Path, tmp_path: Path, suffix: str) -> None:
    """-o: the rows the terminal shows, in the file kind its suffix names."""
    import io

    from typer.testing import CliRunner

    from linkjuice.cli import app

    output = tmp_path / f"suggestions{suffix}"
    result = CliRunner().invoke(app, ["suggest", "--db", str(site_db), "--target", ORIGIN + "/target/",
                                      "--format", "csv", "-o", str(output)])
    assert result.exit_code == 0, result.output
    shown = pd.read_csv(io.StringIO(result.output[result.output.index("rank,"):]))  # after "Wrote N rows to ..."
    written = {".csv": pd.read_csv, ".json": pd.read_json, ".parquet": pd.read_parquet}[suffix](output)
    assert len(written) == len(shown) > 0
    assert list(written["source_url"]) == list(shown["source_url"]) and list(written["anchor"]) == list(shown["anchor"])


def test_anchor_never_inside_existing_link_or_heading(site_db: Path) -> None:
    # "knife care" is the hub's existing link text to /knives/ and "Knife care" the knives h1.
    frame = suggest_links(site_db, SuggestOptions(target=ORIGIN + "/knives/", min_relevance=0.0), save=False)
    assert not any(a.lower() == "knife care" and s == ORIGIN + "/hub/"
                   for a, s in zip(frame["anchor"], frame["source_url"]))


def test_simulate_edits(site_db: Path, tmp_path: Path) -> None:
    remove = tmp_path / "remove.csv"
    remove.write_text("source,target\n/,/target/\n")  # paths resolve against the crawled site
    result = simulate(site_db, remove=remove)
    assert result.pages.set_index("url").loc[ORIGIN + "/target/", "change"] < 0
    from linkjuice.store import Store

    with Store(site_db, read_only=True) as store:  # the pairs from / to /target/, as linked or as resolved
        pairs = store.sql("SELECT count(*) AS n FROM link_flows WHERE source_url = ? AND (target_url = ? "
                          "OR resolved_url = ?)", [ORIGIN + "/", ORIGIN + "/target/", ORIGIN + "/target/"])
    assert int(pairs["n"].iloc[0]) >= 1 and result.changes == [f"removed {int(pairs['n'].iloc[0])} links"]
    dropped = simulate(site_db, drop_section="/knives/")
    assert ORIGIN + "/knives/" not in set(dropped.pages.dropna(subset=["juice_after"])["url"])
    bad = tmp_path / "bad.csv"
    bad.write_text("from,to\na,b\n")
    with pytest.raises(InputFileError, match="missing column 'source'"):
        simulate(site_db, add=bad)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("source,target\n/,/nope/\n")
    with pytest.raises(InputFileError, match="line 2"):
        simulate(site_db, add=unknown)
    unknown.write_text("source,target\n/,/target/\n/gone/,/\n")  # each end looked up, in file order
    with pytest.raises(InputFileError) as raised:
        simulate(site_db, add=remove, remove=unknown)
    assert "line 3" in str(raised.value) and "source '/gone/' is not a crawled page" in str(raised.value)
    with pytest.raises(UsageError):
        simulate(site_db)


def test_optimize_on_site_matches_simulation(site_db: Path, tmp_path: Path) -> None:
    result, chosen = optimize(site_db, ORIGIN + "/target/", 2, min_relevance=0.0)
    assert len(chosen) == 2
    add = tmp_path / "chosen.csv"
    chosen[["source_url", "target_url"]].rename(columns={"source_url": "source", "target_url": "target"}).to_csv(add, index=False)
    sim = simulate(site_db, add=add).pages.set_index("url")
    assert sim.loc[ORIGIN + "/target/", "juice_after"] == pytest.approx(result.after, rel=1e-6)


def _random_state(seed: int, n: int = 300, m: int = 1500) -> ModelState:
    rng = np.random.default_rng(seed)
    # Web-like: a few hubs receive most links.
    src = rng.integers(0, n, m)
    dst = np.minimum((rng.pareto(1.2, m) * 10).astype(np.int64), n - 1)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    return ModelState(urls=np.array([f"u{i}" for i in range(n)], dtype=object), src=src, dst=dst,
                      weight=rng.uniform(0.2, 1.0, len(src)), passes=np.ones(len(src), bool),
                      pass_factor=np.ones(len(src)), reason=np.full(len(src), "passed", dtype=object),
                      ranked=np.ones(n, bool), teleport=np.full(n, 1 / n), damping=0.85, tol=1e-12).solve()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_optimizer_beats_random_and_degree_and_predicts_exactly(seed: int) -> None:
    state = _random_state(seed)
    n = state.n
    rng = np.random.default_rng(100 + seed)
    targets = np.array([n - 1, n - 2, n - 3])  # weak pages (few in-links)
    objective = np.zeros(n)
    objective[targets] = 1.0
    cand_src = np.repeat(np.arange(n), len(targets))
    cand_dst = np.tile(targets, n)
    ok = cand_src != cand_dst
    cand_src, cand_dst = cand_src[ok], cand_dst[ok]
    cand_w = np.ones(len(cand_src))
    budget = 5
    result = greedy_optimize(state, cand_src, cand_dst, cand_w, objective, budget)
    # Its total is exact: the chosen links, added at once and solved from scratch, give the same.
    chosen_idx = [np.flatnonzero((state.urls[cand_src] == s) & (state.urls[cand_dst] == t))[0]
                  for s, t in zip(result.chosen["source_url"], result.chosen["target_url"])]
    fresh = state.with_links(cand_src[chosen_idx], cand_dst[chosen_idx], cand_w[chosen_idx]).solve()
    assert objective @ fresh.juice == pytest.approx(result.after, rel=1e-8)
    assert result.juice == pytest.approx(fresh.juice, rel=1e-7, abs=1e-13)  # every page's, not only the targets'

    def gain_of(idx: np.ndarray) -> float:
        after = state.with_links(cand_src[idx], cand_dst[idx], cand_w[idx]).solve()
        return float(objective @ (after.juice - state.juice))

    random_gains = [gain_of(rng.choice(len(cand_src), budget, replace=False)) for _ in range(20)]
    # Degree heuristic: links from the pages with the most in-links (the classic "link from your
    # strongest pages" rule), one per page.
    indeg = np.bincount(state.dst, minlength=n)
    order = np.argsort(-indeg[cand_src], kind="stable")
    seen: set[int] = set()
    degree_pick = []
    for i in order:
        if cand_src[i] not in seen:
            seen.add(int(cand_src[i]))
            degree_pick.append(i)
        if len(degree_pick) == budget:
            break
    assert result.total_gain > max(random_gains)
    assert result.total_gain >= gain_of(np.array(degree_pick)) * 0.999


def _lossy_state(seed: int, n: int = 400, m: int = 2400) -> ModelState:
    """A web-like state with what real sites have and _random_state lacks: pages without links
    (dangling), links that pass nothing (broken, nofollow), redirect losses, unranked pages."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n - 40, m)  # the last 40 pages link nowhere
    dst = np.minimum((rng.pareto(1.1, m) * 8).astype(np.int64), n - 1)
    uniform = rng.random(m) < 0.5  # half the links to popular pages, half anywhere
    dst[uniform] = rng.integers(0, n, int(uniform.sum()))
    keep = src != dst
    src, dst = src[keep], dst[keep]
    passes = rng.random(len(src)) > 0.1
    ranked = np.ones(n, bool)
    ranked[rng.choice(n - 40, 15, replace=False)] = False
    passes &= ranked[dst]
    return ModelState(urls=np.array([f"u{i}" for i in range(n)], dtype=object), src=src, dst=dst,
                      weight=rng.uniform(0.2, 1.0, len(src)), passes=passes,
                      pass_factor=np.where(rng.random(len(src)) < 0.05, 0.9, 1.0),
                      reason=np.where(passes, "passed", "broken").astype(object), ranked=ranked,
                      teleport=np.where(ranked, 1.0, 0.0) / ranked.sum(), damping=0.85, tol=1e-12).solve()


def _candidates(state: ModelState, seed: int, count: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate links to a few targets, some of them weak (few in-links) and one strong, from
    ranked pages, dangling ones included."""
    rng = np.random.default_rng(seed)
    indegree = np.bincount(state.dst, minlength=state.n)
    ranked = np.flatnonzero(state.ranked)
    targets = np.concatenate([ranked[np.argsort(indegree[ranked])[-1:]], rng.choice(ranked[indegree[ranked] > 0], 4)])
    src = rng.choice(ranked, count)
    dst = rng.choice(targets, count)
    ok = src != dst
    return src[ok], dst[ok], rng.uniform(0.3, 1.0, int(ok.sum()))


def _own_target_gains(state: ModelState, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each candidate's first-order gain for its own target: one adjoint solve per target."""
    from linkjuice.whatif import first_order_gains

    gains = np.zeros(len(src))
    for t in np.unique(dst):
        sel = dst == t
        objective = np.zeros(state.n)
        objective[t] = 1.0
        gains[sel] = first_order_gains(state, src[sel], dst[sel], weight[sel], objective)
    return gains


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_hop_gains_agree_with_the_adjoints(seed: int) -> None:
    """The big-site ranking (adjoint cut after two hops) against the exact first-order gains
    (one adjoint solve per target): close in value, the same order."""
    from scipy.stats import spearmanr

    from linkjuice.whatif import two_hop_gains

    state = _lossy_state(seed)
    src, dst, weight = _candidates(state, seed)
    exact = _own_target_gains(state, src, dst, weight)
    approx = two_hop_gains(state, src, dst, weight)
    assert (exact > 0).mean() > 0.9
    assert np.abs(approx - exact).max() <= 0.1 * np.abs(exact).max()
    assert np.median(np.abs(approx - exact) / np.abs(exact)) < 0.05
    assert spearmanr(approx, exact).statistic > 0.98


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_adjoints_and_transition_exact_gains_equal_full_recomputation(seed: int) -> None:
    """_candidate_gains (every target's adjoint as one block) equals the per-target adjoints, and
    Transition.exact_gain equals adding the link and solving the model again from scratch, for
    sources with links, dangling sources (no links) and sources with lost links."""
    from linkjuice.opportunities import _candidate_gains
    from linkjuice.whatif import Transition

    state = _lossy_state(seed)
    src, dst, weight = _candidates(state, seed, 120)
    per_target = _own_target_gains(state, src, dst, weight)
    gains, built = _candidate_gains(state, src, dst, weight)
    assert gains == pytest.approx(per_target, rel=1e-9, abs=1e-15) and built is not None

    transition = Transition.of(state)
    dangling = np.flatnonzero(state.ranked & (state.out_weight() == 0))
    lossy = np.unique(state.src[~state.passes])
    for s, t, w in [(src[0], dst[0], weight[0]), (dangling[0], dst[1], 0.7), (lossy[0], dst[2], 1.0)]:
        if s == t:
            continue
        fresh = state.with_links(np.array([s]), np.array([t]), np.array([w])).solve()
        assert transition.exact_gain(state.juice, s, t, w) == pytest.approx(fresh.juice[t] - state.juice[t], rel=1e-7)


def test_suggest_on_a_big_site_takes_the_cheap_paths_and_says_what_it_left_out(
        site_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the work budgets (here forced to 0) the candidates are ranked by two-hop gains and
    none is recomputed exactly; the targets are capped, the most important first."""
    import linkjuice.opportunities as opportunities

    full = suggest_links(site_db, SuggestOptions(target=ORIGIN + "/target/", per_target=5), save=False)
    monkeypatch.setattr(opportunities, "ADJOINT_WORK", 0)
    monkeypatch.setattr(opportunities, "EXACT_WORK", 0)
    cheap = suggest_links(site_db, SuggestOptions(target=ORIGIN + "/target/", per_target=5), save=False)
    assert list(cheap["source_url"]) == list(full["source_url"]) and not cheap["exact"].any()
    # First order against exact: on six pages much juice comes back round (the feedback term).
    assert cheap["predicted_gain"].to_numpy() == pytest.approx(full["predicted_gain"].to_numpy(), rel=0.25)
    # An explicit --exact-top is honoured whatever the budget.
    forced = suggest_links(site_db, SuggestOptions(target=ORIGIN + "/target/", per_target=5, exact_top=1), save=False)
    assert forced["exact"].sum() == 1 and forced.loc[forced["exact"], "predicted_gain"].iloc[0] == pytest.approx(
        full.loc[full["source_url"] == forced.loc[forced["exact"], "source_url"].iloc[0], "predicted_gain"].iloc[0],
        rel=1e-6)

    every = suggest_links(site_db, SuggestOptions(max_targets=0, min_relevance=0.0), save=False)
    one = suggest_links(site_db, SuggestOptions(max_targets=1, min_relevance=0.0), save=False)
    assert one.attrs["targets"] == 1 and one.attrs["matched_targets"] == every.attrs["targets"] > 1
    assert one["target_url"].nunique() <= 1
    with pytest.raises(UsageError, match="--max-targets"):
        suggest_links(site_db, SuggestOptions(max_targets=-1), save=False)
    with pytest.raises(UsageError, match="--exact-top"):
        suggest_links(site_db, SuggestOptions(exact_top=-1), save=False)


def test_default_targets_come_in_the_audits_order(site_db: Path) -> None:
    from linkjuice.opportunities import WEAK_CODES, _default_targets, load_state
    from linkjuice.pipeline import open_store, run_audit

    run_audit(site_db)
    with open_store(site_db) as store:
        loaded = load_state(store, labels=False)
        order = store.con.execute("SELECT url FROM findings WHERE code IN (SELECT unnest(?)) AND url IS NOT NULL "
                                  "ORDER BY finding_id", [list(WEAK_CODES)]).fetchall()
        targets = _default_targets(store, loaded)
    flagged = list(dict.fromkeys(url for (url,) in order))
    assert flagged and list(loaded.state.urls[targets[:len(flagged)]]) == [
        u for u in flagged if loaded.state.ranked[list(loaded.state.urls).index(u)]]


def test_suggest_cli_says_how_many_targets_it_considered(site_db: Path) -> None:
    from typer.testing import CliRunner

    from linkjuice.cli import app

    capped = CliRunner().invoke(app, ["suggest", "--db", str(site_db), "--max-targets", "1", "--min-relevance", "0"])
    assert capped.exit_code == 0, capped.output
    said = " ".join(capped.output.split())
    assert "Considered the first 1 of 2 target pages (the audit order); --max-targets 0 considers them all." in said
    every = CliRunner().invoke(app, ["suggest", "--db", str(site_db), "--max-targets", "0", "--min-relevance", "0"])
    assert every.exit_code == 0 and "Considered the first" not in every.output


@pytest.mark.parametrize("seed", [1, 2])
def test_links_added_one_after_another_equal_the_model_solved_with_all_of_them(seed: int) -> None:
    """Transition.link_change twice on the same source (one that had links, one that had none,
    one whose links all pass nothing), once elsewhere and once to an unranked page: the juice
    moved by the changes is the juice of the model solved with those links from scratch."""
    from linkjuice.whatif import Transition

    state = _lossy_state(seed)
    dangling = np.flatnonzero(state.ranked & (state.out_weight() == 0))
    lossy = np.setdiff1d(state.src[~state.passes], state.src[state.passes])
    unranked = int(np.flatnonzero(~state.ranked)[0])
    for source in (int(state.src[0]), int(dangling[0]), *(int(p) for p in lossy[:1])):
        targets = [t for t in np.flatnonzero(state.ranked) if t != source][:3]
        links = [(source, targets[0], 0.8), (source, targets[1], 0.5), (targets[2], targets[0], 1.0),
                 (targets[2], unranked, 0.6)]  # the last takes its share and passes nothing
        transition, juice = Transition.of(state), state.juice
        for s, t, w in links:
            transition, change = transition.link_change(juice, s, t, w)
            juice = juice + change
        src, dst, weight = (np.array(column) for column in zip(*links))
        fresh = state.with_links(src, dst, weight).solve()
        assert juice == pytest.approx(fresh.juice, rel=1e-7, abs=1e-13)


def test_priority_targets_come_heaviest_first(site_db: Path, tmp_path: Path) -> None:
    from linkjuice.imports.lists import import_priorities

    money = tmp_path / "money.csv"
    money.write_text(f"{ORIGIN}/weak-bread/,1\n{ORIGIN}/target/,5\n{ORIGIN}/cakes/,2\n", encoding="utf-8")
    import_priorities(site_db, money)
    frame = suggest_links(site_db, SuggestOptions(priorities=True, max_targets=1, per_target=5), save=False)
    assert frame.attrs["targets"] == 1 and frame.attrs["matched_targets"] == 3
    assert not frame.empty and set(frame["target_url"]) == {ORIGIN + "/target/"}


def test_transition_is_the_same_from_links_in_source_order_or_not() -> None:
    """Links in source order (as a store reads them) become the CSR arrays directly, lost links as
    zeros; any other order goes through a sorted copy. Both give the same matrix."""
    from dataclasses import replace

    from linkjuice.whatif import Transition

    state = _lossy_state(4)
    assert not (state.src[1:] >= state.src[:-1]).all()
    order = np.argsort(state.src, kind="stable")
    ordered = replace(state, src=state.src[order], dst=state.dst[order], weight=state.weight[order],
                      passes=state.passes[order], pass_factor=state.pass_factor[order], reason=state.reason[order])
    direct, sorted_copy = Transition.of(ordered), Transition.of(state)
    np.testing.assert_allclose(direct.m.toarray(), sorted_copy.m.toarray(), rtol=1e-15, atol=0)
    assert direct.m.indices.dtype == np.int32
    np.testing.assert_array_equal(direct.dangling, sorted_copy.dangling)


def test_simulate_follows_nofollow_links_and_fixes_redirects(tmp_path: Path) -> None:
    """Against the model solved again on the edited links: a followed nofollow link passes its
    share; a link pointed past a lossy redirect loses nothing on the way."""
    import shutil

    from linkjuice.config import ModelConfig
    from linkjuice.pipeline import open_store, score_store

    from .sitekit import page, redirect, serve

    routes = {"/": page("Home", "<a href='/a/' rel='nofollow'>a</a> <a href='/old/'>b</a> <a href='/c/'>c</a>"),
              "/a/": page("A", "<a href='/c/'>c</a>"), "/old/": redirect("/b/"),
              "/b/": page("B", "<a href='/c/'>c</a>"), "/c/": page("C", "<a href='/'>home</a>")}
    db = tmp_path / "s.duckdb"
    with serve(routes) as server:
        crawl_site(CrawlConfig(start_url=server.url("/")), db)
        urls = {path: server.url(path) for path in routes}
    with open_store(db, read_only=False) as store:
        score_store(store, model=ModelConfig(redirect_factor=0.5))
    juice = pages(db).set_index("url")["juice"]
    followed = simulate(db, nofollow_to_follow=True)
    assert any("made 1 nofollow" in change for change in followed.changes)
    after = followed.pages.set_index("url")
    assert after.loc[urls["/a/"], "juice_after"] > juice[urls["/a/"]] * 1.5
    fixed = simulate(db, fix_redirects=True)
    assert any("pointed 1 links" in change for change in fixed.changes)
    moved = fixed.pages.set_index("url")
    assert moved.loc[urls["/b/"], "change"] > 0 and moved.loc[urls["/b/"], "juice_before"] == pytest.approx(
        juice[urls["/b/"]], rel=1e-9)
    removed = tmp_path / "remove.csv"  # (the redirects then found among the links left)
    removed.write_text("source,target\n/,/c/\n")
    both = simulate(db, remove=removed, fix_redirects=True)
    assert both.changes == ["removed 1 links", "pointed 1 links at their final targets"]
    # Pointing links past their redirects is the model whose redirects lose nothing, scored anew.
    lossless = tmp_path / "lossless.duckdb"
    shutil.copy(db, lossless)
    with open_store(lossless, read_only=False) as store:
        score_store(store, model=ModelConfig(redirect_factor=1.0))
    rescored = pages(lossless).set_index("url")["juice"]
    assert moved["juice_after"].to_numpy() == pytest.approx(rescored.loc[moved.index].to_numpy(), rel=1e-7)


@pytest.mark.parametrize("categorical", [False, True])
def test_accounting_sums_each_links_juice_by_reason(categorical: bool, monkeypatch) -> None:
    """The what-if accounting (summed by reason code, a slice of links at a time) against each
    link's d x juice x share summed by pandas, redirect losses taken from what passes."""
    import linkjuice.whatif as whatif

    state = _lossy_state(8)
    reason = np.where(state.passes, "passed", np.where(np.arange(len(state.src)) % 2, "broken", "nofollow"))
    state = replace(state, reason=pd.Categorical(reason) if categorical else reason.astype(object))
    monkeypatch.setattr(whatif, "_SHARE_SLICE", 97)  # (several slices)
    got = whatif.accounting(state).set_index("reason")
    carried = state.damping * state.juice[state.src] * state.shares()
    want = pd.Series(carried).groupby(reason).sum()
    lost = float((carried * (1 - state.pass_factor) * state.passes).sum())
    assert lost > 0 and set(got.index) == set(want.index) | {"redirect_loss"}
    want["passed"] -= lost
    for name in want.index:
        assert got.loc[name, "juice"] == pytest.approx(want[name], rel=1e-12)
    assert got.loc["redirect_loss", "juice"] == pytest.approx(lost, rel=1e-12)
    assert got["share"].sum() == pytest.approx(1.0) and list(got["juice"]) == sorted(got["juice"], reverse=True)


@pytest.mark.parametrize("categorical", [False, True])
def test_links_added_keep_the_links_in_source_order(categorical: bool) -> None:
    """with_links puts new links after their source's (the compiled solve needs links by source),
    and the state is the one with the links appended: the same juice and accounting."""
    state = _lossy_state(9)
    order = np.argsort(state.src, kind="stable")
    reason = pd.Categorical(state.reason[order]) if categorical else state.reason[order]
    state = replace(state, src=state.src[order].astype(np.int32), dst=state.dst[order], weight=state.weight[order],
                    passes=state.passes[order], pass_factor=state.pass_factor[order], reason=reason).solve()
    src, dst, weight = np.array([5, 0, 399, 5]), np.array([17, 3, 0, 2]), np.array([0.5, 1.0, 0.7, 0.3])
    added = state.with_links(src, dst, weight)
    assert added.src.dtype == np.int32 and (np.diff(added.src) >= 0).all() and len(added.src) == len(state.src) + 4
    passes = state.ranked[dst]  # (a link to an unranked page passes nothing)
    assert not passes.all()
    appended = replace(state, src=np.concatenate([state.src, src]), dst=np.concatenate([state.dst, dst]),
                       weight=np.concatenate([state.weight, weight]), passes=np.concatenate([state.passes, passes]),
                       pass_factor=np.concatenate([state.pass_factor, np.ones(4)]),
                       reason=np.concatenate([np.asarray(state.reason, dtype=object),
                                              np.where(passes, "passed", "non_indexable")]))
    assert added.solve().juice == pytest.approx(appended.solve().juice, rel=1e-10)
    from linkjuice.whatif import accounting

    got, want = (accounting(s.solve()).set_index("reason")["juice"] for s in (added, appended))
    assert got.to_dict() == pytest.approx(want.to_dict(), rel=1e-10)

"""The compiled power iteration (linkjuice._kernels, the `fast` extra) against the scipy path:
same scores on graphs that reach every part of its layout (short rows in 8-row slices, hub rows
summed stripe by stripe across several stripes of sources, dangling and masked pages)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from linkjuice.score import classic_pagerank, juice_rank  # noqa: E402


def _web_graph(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    kind = rng.random(m)
    hubs = rng.integers(0, 6, m) * (n // 7)  # six pages with thousands of in-links (long rows)
    near = (src + rng.integers(1, 40, m)) % n
    far = (n * rng.random(m) ** 2).astype(np.int64)  # popular low ids, sources from everywhere
    dst = np.where(kind < 0.3, hubs, np.where(kind < 0.8, near, far))
    dangling = rng.random(n) < 0.05
    keep = ~dangling[src]
    return src[keep], dst[keep]


@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_kernels_give_the_scipy_scores(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    n, m = 150_000, 600_000  # > 2 stripes of 65,536 sources; hub rows of ~30,000 links
    src, dst = _web_graph(n, m, seed)
    rng = np.random.default_rng(seed + 10)
    nodes = rng.random(n) >= 0.03
    weight = rng.choice([1.0, 0.6, 0.3, 0.15], len(src))
    passes = rng.random(len(src)) >= 0.05
    teleport = rng.random(n)
    results = {}
    for choice in ("0", "1"):
        monkeypatch.setenv("LINKJUICE_NUMBA", choice)
        classic = classic_pagerank(n, src, dst, nodes=nodes)
        juice, share = juice_rank(n, src, dst, weight, passes, ranked=nodes, teleport=teleport)
        results[choice] = (classic, juice, share)
    (c0, j0, s0), (c1, j1, s1) = results["0"], results["1"]
    assert c0.iterations > 5 and j0.iterations > 5
    np.testing.assert_allclose(c1.scores, c0.scores, rtol=0, atol=1e-13)
    np.testing.assert_allclose(j1.scores, j0.scores, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(s1, s0)
    assert abs(c1.iterations - c0.iterations) <= 1 and abs(j1.iterations - j0.iterations) <= 1
    # The hub rows hold real mass: a layout bug there would show above.
    assert c1.scores[: n // 7 * 6 : n // 7].sum() > 0.05


def test_juice_matrix_from_sorted_links_equals_the_scipy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Links sorted by source (as the store keeps them), with repeated (source, target) pairs
    (two URLs redirecting to one page) and redirect pass factors: the compiled build of M^T sums
    the repeats as scipy does."""
    n, m = 150_000, 600_000
    src, dst = _web_graph(n, m, 3)
    rng = np.random.default_rng(13)
    order = np.lexsort((dst, src))
    src, dst = src[order].astype(np.int32), dst[order].astype(np.int32)
    dst[rng.random(len(dst)) < 0.02] = -1
    repeat = np.flatnonzero(rng.random(len(dst) - 1) < 0.05)
    dst[repeat + 1] = np.where(src[repeat + 1] == src[repeat], dst[repeat], dst[repeat + 1])
    ranked = rng.random(n) >= 0.03
    weight = rng.choice([1.0, 0.6, 0.3, 0.15], len(src))
    passes = rng.random(len(src)) >= 0.05
    factor = np.where(rng.random(len(src)) < 0.1, 0.9, 1.0)
    results = {}
    for choice in ("0", "1"):
        monkeypatch.setenv("LINKJUICE_NUMBA", choice)
        results[choice] = juice_rank(n, src, dst, weight, passes, ranked=ranked, pass_factor=factor)
    (j0, s0), (j1, s1) = results["0"], results["1"]
    assert j0.iterations > 5
    np.testing.assert_allclose(j1.scores, j0.scores, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(s1, s0)


def test_layout_from_links_equals_the_layout_of_the_scipy_matrix() -> None:
    from linkjuice import _kernels
    from linkjuice.graph import to_csr

    n, m = 150_000, 600_000
    src, dst = _web_graph(n, m, 4)
    rng = np.random.default_rng(14)
    order = np.lexsort((dst, src))
    src, dst = src[order].astype(np.int32), dst[order].astype(np.int32)
    repeat = np.flatnonzero(rng.random(len(dst) - 1) < 0.05)
    dst[repeat + 1] = np.where(src[repeat + 1] == src[repeat], dst[repeat], dst[repeat + 1])
    passes = rng.random(len(src)) >= 0.05
    weight = rng.uniform(0.1, 1.0, len(src))
    out_weight = np.bincount(src, weights=weight, minlength=n)
    for factor in (np.zeros(0), np.where(rng.random(len(src)) < 0.1, 0.9, 1.0)):
        share = weight / out_weight[src] * (factor if len(factor) else 1.0)
        csr = to_csr(n, dst[passes], src[passes], share[passes])
        expected = _kernels.to_sell(csr.indptr, csr.indices, csr.data)
        built = _kernels.sell_from_links(n, src, dst, weight, out_weight, factor, passes)
        assert len(built.long_rows) >= 6  # the hubs' rows, striped
        for name, value in expected._asdict().items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(built, name), value, err_msg=name)
            else:
                assert getattr(built, name) == value
    assert _kernels.sell_from_links(n, src[::-1].copy(), dst, weight, out_weight, np.zeros(0), passes) is None


@pytest.mark.parametrize("dangling", [True, False])
def test_classic_layout_with_and_without_16_bit_offsets(monkeypatch: pytest.MonkeyPatch, dangling: bool) -> None:
    """The near links are stored as 16-bit offsets when every chunk of 8 rows has a page with no
    out-link (z = 0 there, the padding reads it) within reach; a graph without dangling pages has
    none but the dummy page n, far from most chunks, and keeps 32-bit ids. Same scores either way,
    with far links in several tiles of rows and of sources."""
    from linkjuice import _kernels
    from linkjuice.graph import csr_pattern

    n, m = 200_000, 1_000_000
    src, dst = _web_graph(n, m, 5)
    if not dangling:  # every page links on
        src = np.concatenate([src, np.arange(n)])
        dst = np.concatenate([dst, (np.arange(n) + 1) % n])
    indptr, indices = csr_pattern(n, dst, src)
    zero = np.bincount(indices, minlength=n) == 0
    assert zero.any() == dangling
    layout = _kernels.pattern_layout(indptr, indices, zero)
    assert layout.idx.dtype == (np.uint16 if dangling else np.uint32)
    assert len(layout.far_ent) > 50_000 and len(layout.far_ptr) == 16 + 1 and len(layout.long_rows) >= 6
    results = {}
    for choice in ("0", "1"):
        monkeypatch.setenv("LINKJUICE_NUMBA", choice)
        results[choice] = classic_pagerank(n, src, dst)
    assert results["0"].iterations > 5 and abs(results["1"].iterations - results["0"].iterations) <= 1
    np.testing.assert_allclose(results["1"].scores, results["0"].scores, rtol=0, atol=1e-13)


def test_classic_layout_of_long_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row long (no SELL chunk at all): the pages are still finished."""
    from linkjuice import _kernels

    monkeypatch.setattr(_kernels, "LONG_MIN", 1)
    src = np.array([0, 0, 1, 1, 2, 2], np.int32)
    dst = np.array([1, 2, 0, 2, 0, 1], np.int32)
    results = {}
    for choice in ("0", "1"):
        monkeypatch.setenv("LINKJUICE_NUMBA", choice)
        results[choice] = classic_pagerank(3, src, dst)
    np.testing.assert_allclose(results["1"].scores, results["0"].scores, rtol=0, atol=1e-15)
    np.testing.assert_allclose(results["1"].scores, 1 / 3, rtol=0, atol=1e-15)


def test_link_scanning_builds_give_the_same_arrays_in_any_number_of_target_ranges() -> None:
    """The in-link pattern and the juice layout are built by threads that each write one range
    of targets: any split (one range, uneven ones, more ranges than threads) gives the same arrays,
    and links out of order in any one range are refused."""
    from linkjuice import _kernels

    n, m = 20_000, 120_000
    src, dst = _web_graph(n, m, 5)
    order = np.lexsort((dst, src))
    src, dst = src[order].astype(np.int32), dst[order].astype(np.int32)
    keep = np.ones(len(src), bool)
    keep[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])  # distinct pairs, as the store keeps them
    src, dst = src[keep], dst[keep]
    mask = np.random.default_rng(15).random(n) >= 0.03
    passes = np.random.default_rng(16).random(len(src)) >= 0.05
    splits = [np.array([0, n]), np.array([0, 7, 9_000, 9_001, n]), (np.arange(9) * n) // 8]
    patterns = [_kernels._in_link_pattern(n, src, dst, mask, cuts) for cuts in splits]
    degrees = [_kernels._distinct_in_degrees(n, src, dst, passes, cuts) for cuts in splits]
    for pattern, deg in zip(patterns[1:], degrees[1:]):
        for got, want in zip(pattern, patterns[0]):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(deg, degrees[0])
    # the reference: scipy's pattern of the distinct in-links between masked pages
    from linkjuice.graph import csr_pattern

    ok = (src != dst) & mask[src] & mask[dst]
    indptr, indices = csr_pattern(n, dst[ok], src[ok])
    np.testing.assert_array_equal(patterns[0][0], indptr)
    np.testing.assert_array_equal(patterns[0][1], indices)
    np.testing.assert_array_equal(patterns[0][2], np.bincount(src[ok], minlength=n))
    for cuts in splits:
        assert len(_kernels._in_link_pattern(n, src[::-1].copy(), dst[::-1].copy(), mask, cuts)[0]) == 0
        assert len(_kernels._distinct_in_degrees(n, src[::-1].copy(), dst, passes, cuts)) == 0



@pytest.mark.parametrize("parts", [1, 2, 5])
def test_shared_anchor_links_in_any_number_of_parts_equal_a_loop_over_the_links(parts: int) -> None:
    """anchor-multiple-targets' passes, the links split in 1, 2 or 5 parts (one per thread), give
    what a plain loop gives: the editorial candidate links (not weak, text) whose normalized anchor
    leads to more than one target, in link order; an anchor with one target in each of two parts
    is shared, one with the same target in both is not. An unknown target (-1) is reported."""
    from linkjuice import _kernels as k

    rng = np.random.default_rng(parts)
    m, n_norm = 3000, 40
    position = rng.integers(-1, 3, m).astype(np.int8)
    row = rng.integers(-1, 59, m).astype(np.int32)  # (59 and 60: the two anchors set below)
    target_code = rng.integers(0, 50, m).astype(np.int32)
    editorial_of = np.array([True, False, True])
    norm_of = rng.integers(-1, n_norm, 61).astype(np.int32)
    target_of = rng.integers(0, 6, 50).astype(np.int32)
    # Anchor 0's links: target 1 in the first half, 2 in the second; anchor 1's: target 3 in both.
    for i, (anchor, tgt) in enumerate([(0, 1), (1, 3)]):
        norm_of[60 - i] = anchor
        row[[10 + i, m - 10 - i]] = 60 - i
        position[[10 + i, m - 10 - i]] = 0
        target_code[[10 + i, m - 10 - i]] = [40 + i, 42 + i]
        target_of[[40 + i, 42 + i]] = [tgt, tgt + (1 if anchor == 0 else 0)]
    norm_of[(norm_of == 0) | (norm_of == 1)] = -1
    norm_of[60], norm_of[59] = 0, 1

    def loop(target_of):
        first, several, cand = {}, set(), []
        for i in range(m):
            if position[i] < 0 or row[i] < 0 or not editorial_of[position[i]] or norm_of[row[i]] < 0:
                continue
            kk, t = norm_of[row[i]], target_of[target_code[i]]
            if t < 0:
                return False, []
            cand.append((i, t, kk))
            if first.setdefault(kk, t) != t:
                several.add(kk)
        return True, [c for c in cand if c[2] in several]

    cuts = (np.arange(parts + 1, dtype=np.int64) * m) // parts
    known, several, candidates = k._anchor_targets(position, row, target_code, editorial_of, norm_of, target_of,
                                                   n_norm, cuts)
    assert known and candidates.sum() == sum(1 for i in range(m) if position[i] >= 0 and row[i] >= 0
                                             and editorial_of[position[i]] and norm_of[row[i]] >= 0)
    _, at, target, norm = k._shared_links(position, row, target_code, editorial_of, norm_of, target_of, several,
                                          cuts, candidates)
    expected_known, expected = loop(target_of)
    assert expected_known and list(zip(at.tolist(), target.tolist(), norm.tolist())) == expected
    assert several[0] and not several[1]  # (targets 1 and 2 in two parts; target 3 in both)
    assert k.shared_anchor_links(position, row, target_code, editorial_of, norm_of, target_of, n_norm)[1].tolist() \
        == [c[0] for c in expected]
    unknown = target_of.copy()
    unknown[target_code[np.flatnonzero(row == 60)[-1]]] = -1
    assert not k._anchor_targets(position, row, target_code, editorial_of, norm_of, unknown, n_norm, cuts)[0]

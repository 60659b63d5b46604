"""The scoring engines against independent references (networkx) and hand-computed graphs."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from linkjuice.graph import click_depths
from linkjuice.score import classic_pagerank, juice_rank, juice_score


def _random_graph(seed: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, m), rng.integers(0, n, m)


@pytest.mark.parametrize("seed", range(6))
def test_classic_matches_networkx_on_random_graphs(seed: int) -> None:
    n = 60 + seed * 17
    src, dst = _random_graph(seed, n, n * 3)
    result = classic_pagerank(n, src, dst, tol=1e-12)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from((int(s), int(d)) for s, d in zip(src, dst) if s != d)
    # networkx stops when the L1 change < N * tol: give it the same absolute rule.
    ref = nx.pagerank(g, alpha=0.85, tol=1e-12 / n, max_iter=2000)
    expected = np.array([ref[i] for i in range(n)])
    np.testing.assert_allclose(result.scores, expected, atol=1e-10)
    assert result.scores.sum() == pytest.approx(1.0, abs=1e-12)


def test_classic_restricted_to_nodes_matches_subgraph() -> None:
    src, dst = _random_graph(7, 50, 200)
    nodes = np.ones(50, bool)
    nodes[::5] = False
    result = classic_pagerank(50, src, dst, nodes=nodes)
    g = nx.DiGraph()
    g.add_nodes_from(np.flatnonzero(nodes).tolist())
    g.add_edges_from((int(s), int(d)) for s, d in zip(src, dst) if nodes[s] and nodes[d] and s != d)
    ref = nx.pagerank(g, tol=1e-12 / g.number_of_nodes())
    for node, value in ref.items():
        assert result.scores[node] == pytest.approx(value, abs=1e-9)
    assert np.all(result.scores[~nodes] == 0)


def test_classic_duplicate_and_self_links_count_once_or_never() -> None:
    src = np.array([0, 0, 0, 1, 1, 2])
    dst = np.array([1, 1, 0, 2, 2, 0])
    once = classic_pagerank(3, np.array([0, 1, 2]), np.array([1, 2, 0]))
    dup = classic_pagerank(3, src, dst)
    np.testing.assert_allclose(dup.scores, once.scores, atol=1e-12)
    np.testing.assert_allclose(once.scores, [1 / 3] * 3, atol=1e-9)  # a cycle is uniform


def test_juice_equals_classic_when_all_weights_equal_and_nothing_is_lost() -> None:
    n = 40
    src, dst = _random_graph(3, n, 150)
    keep = src != dst
    key = np.unique(src[keep] * n + dst[keep])
    s, d = key // n, key % n
    classic = classic_pagerank(n, s, d)
    juice, _ = juice_rank(n, s, d, np.ones(len(s)), np.ones(len(s), bool), ranked=np.ones(n, bool))
    np.testing.assert_allclose(juice.scores, classic.scores, atol=1e-10)


def test_juice_hand_computed_three_pages_with_a_lost_link() -> None:
    # Page 0 links to 1 (content, weight 1) and to a broken URL (weight 1, passes nothing);
    # page 1 links to 2; page 2 links to 0. With d = 0.5 and v = 1/3:
    #   x0 = 0.5 * x2 + 1/6;  x1 = 0.5 * 0.5 * x0 + 1/6;  x2 = 0.5 * x1 + 1/6
    d = 0.5
    src = np.array([0, 0, 1, 2])
    dst = np.array([1, -1, 2, 0])
    passes = np.array([True, False, True, True])
    res, share = juice_rank(3, src, dst, np.ones(4), passes, ranked=np.ones(3, bool), damping=d, tol=1e-14)
    a = np.array([[1, 0, -0.5], [-0.25, 1, 0], [0, -0.5, 1]])
    expected = np.linalg.solve(a, np.full(3, 1 / 6))
    np.testing.assert_allclose(res.scores, expected, atol=1e-12)
    np.testing.assert_allclose(share, [0.5, 0.5, 1.0, 1.0])
    assert res.scores.sum() < 1.0  # the broken link's half of page 0's juice is lost


def _leaky_graph(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random site whose every page loses a little juice through one external link."""
    src, dst = _random_graph(seed, n, n * 8)
    keep = src != dst
    key = np.unique(src[keep] * n + dst[keep])
    src = np.concatenate([key // n, np.arange(n)])
    dst = np.concatenate([key % n, np.full(n, -1)])
    order = np.lexsort((dst, src))
    passes = dst >= 0
    return src[order], dst[order], np.where(passes, 1.0, 0.05)[order], passes[order]


def _direct_solve(n: int, src: np.ndarray, dst: np.ndarray, share: np.ndarray, passes: np.ndarray,
                  d: float = 0.85) -> np.ndarray:
    m = np.zeros((n, n))
    np.add.at(m, (dst[passes], src[passes]), share[passes])
    return np.linalg.solve(np.eye(n) - d * m, np.full(n, (1 - d) / n))


@pytest.mark.parametrize("numba", ["0", "1"])
def test_juice_extrapolation_converges_in_fewer_steps_to_the_same_solution(numba: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba") if numba == "1" else None
    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    n = 300
    src, dst, weight, passes = _leaky_graph(5, n)
    res, share = juice_rank(n, src, dst, weight, passes, ranked=np.ones(n, bool))
    expected = _direct_solve(n, src, dst, share, passes)
    # The leak (0.6% a step) makes the slowest mode shrink by ~0.845 a step: ~140 plain steps.
    assert res.iterations < 60
    # A last change below tol bounds the error by tol * r / (1 - r), r ~ 0.845, as without
    # extrapolation.
    assert res.residual < 1e-10
    assert np.abs(res.scores - expected).sum() < 1e-10 * 0.845 / 0.155


@pytest.mark.parametrize("numba", ["0", "1"])
def test_juice_two_cycle_mode_is_not_extrapolated(numba: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A home page and its leaves link to each other (tests/test_model.py's site): the error flips
    # sign at every step and its L1 change shrinks steadily, but the sum of x does not follow.
    # Extrapolating that mode as if it shrank without flipping made the iteration diverge.
    pytest.importorskip("numba") if numba == "1" else None
    monkeypatch.setenv("LINKJUICE_NUMBA", numba)
    n = 6
    src = np.array([0, 0, 0, 0, 0, 1, 2, 3, 4, 5])
    dst = np.array([1, 2, 3, 4, 5, 0, 0, 0, 0, 0])
    weight = np.array([0.97163, 0.54294, 0.96520, 0.48260, 0.13838, 0.97163, 0.54294, 0.96520, 0.96520, 0.92256])
    passes = dst >= 0
    res, share = juice_rank(n, src, dst, weight, passes, ranked=np.ones(n, bool), tol=1e-13)
    np.testing.assert_allclose(res.scores, _direct_solve(n, src, dst, share, passes), atol=1e-12)


def test_juice_position_weight_shifts_share() -> None:
    # Page 0 links to 1 from content (1.0) and to 2 from the footer (0.15).
    src, dst = np.array([0, 0]), np.array([1, 2])
    res, share = juice_rank(3, src, dst, np.array([1.0, 0.15]), np.array([True, True]), ranked=np.ones(3, bool))
    assert share[0] == pytest.approx(1 / 1.15)
    assert res.scores[1] > res.scores[2] > res.scores[0] * 0  # content target gains more


def test_juice_matches_networkx_personalised_with_weights() -> None:
    n = 30
    src, dst = _random_graph(11, n, 120)
    keep = src != dst
    key = np.unique(src[keep] * n + dst[keep])
    s, d = key // n, key % n
    w = np.random.default_rng(1).uniform(0.1, 1.0, len(s))
    teleport = np.random.default_rng(2).uniform(0, 1, n)
    res, _ = juice_rank(n, s, d, w, np.ones(len(s), bool), ranked=np.ones(n, bool), teleport=teleport, tol=1e-13)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_weighted_edges_from((int(a), int(b), float(c)) for a, b, c in zip(s, d, w))
    pers = {i: float(teleport[i]) for i in range(n)}
    ref = nx.pagerank(g, personalization=pers, dangling=pers, tol=1e-13 / n, max_iter=2000)
    np.testing.assert_allclose(res.scores, [ref[i] for i in range(n)], atol=1e-10)


def test_juice_score_maps_floor_to_zero_and_top_to_hundred() -> None:
    juice = np.array([0.05, 0.5, 0.2, 0.0])
    ranked = np.array([True, True, True, False])
    scores = juice_score(juice, ranked, floor=0.05)
    assert scores[0] == pytest.approx(0.0)
    assert scores[1] == pytest.approx(100.0)
    assert scores[2] == pytest.approx(100 * np.log(4) / np.log(10))
    assert np.isnan(scores[3])


def test_click_depths_bfs() -> None:
    src = np.array([0, 0, 1, 2, 3, 5])
    dst = np.array([1, 2, 3, 3, 4, 0])
    depths = click_depths(6, src, dst, 0)
    assert depths.tolist() == [0, 1, 1, 2, 3, -1]


def test_click_depths_with_free_redirect_hops_match_dijkstra() -> None:
    """The level-by-level search equals scipy's Dijkstra where a redirect hop costs ~0."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import shortest_path

    rng = np.random.default_rng(0)
    for _ in range(60):
        n, m, k = int(rng.integers(1, 60)), int(rng.integers(0, 200)), int(rng.integers(0, 10))
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        free_src, free_dst = rng.integers(0, n, k), rng.integers(0, n, k)
        start = int(rng.integers(0, n))
        cheapest: dict[tuple[int, int], float] = {}
        for a, b, w in zip(np.r_[src, free_src], np.r_[dst, free_dst], np.r_[np.ones(m), np.full(k, 1e-6)]):
            if a != b:
                cheapest[(int(a), int(b))] = min(cheapest.get((int(a), int(b)), 2.0), float(w))
        rows = np.array([a for a, _ in cheapest], dtype=np.int64)
        cols = np.array([b for _, b in cheapest], dtype=np.int64)
        graph = sp.csr_array((np.array(list(cheapest.values())), (rows, cols)), shape=(n, n))
        reference = shortest_path(graph, directed=True, indices=start)
        reference = np.where(np.isfinite(reference), np.round(reference), -1).astype(np.int32)
        got = click_depths(n, src, dst, start, free_src=free_src, free_dst=free_dst)
        np.testing.assert_array_equal(got, reference)
        # Links sorted by (source, target) and distinct, as link_pairs stores them, take the
        # path that uses them as they are.
        pairs = np.unique(np.stack([src, dst], axis=1), axis=0) if m else np.zeros((0, 2), np.int64)
        got = click_depths(n, pairs[:, 0], pairs[:, 1], start, free_src=free_src, free_dst=free_dst)
        np.testing.assert_array_equal(got, reference)


def test_a_warm_start_takes_its_first_step_along_the_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring again from the last scores: the first step is pushed along the links (no layout
    is built). It equals one power-iteration step computed by hand with numpy; at the fixed
    point it is the only step, and from elsewhere the iteration goes on to the cold result."""
    kernels = pytest.importorskip("linkjuice._kernels")
    monkeypatch.setenv("LINKJUICE_NUMBA", "1")
    n, d = 200, 0.85
    src, dst, weight, passes = _leaky_graph(3, n)
    mask = np.ones(n, bool)
    mask[::17] = False  # pages outside the graph: no teleport, their links count for nothing
    x = np.random.default_rng(5).uniform(0, 1, n) * mask
    x /= x.sum()
    # Classic: x_new = d P^T (x / outdeg) + (1 - d + d * dangling mass) / |mask| on the mask.
    keep = (dst >= 0) & (src != dst) & mask[src] & mask[np.maximum(dst, 0)]
    outdeg = np.bincount(src[keep], minlength=n).astype(float)
    pushed = np.zeros(n)
    np.add.at(pushed, dst[keep], x[src[keep]] / outdeg[src[keep]])
    c = 1 - d + d * x[mask & (outdeg == 0)].sum()
    expected = np.where(mask, d * pushed + c / mask.sum(), 0.0)
    got, change = kernels.push_pattern_step(n, src.astype(np.int32), dst.astype(np.int32), mask,
                                            mask / mask.sum(), x, d)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-16)
    assert change == pytest.approx(np.abs(expected - x).sum(), rel=1e-12)
    # Links not sorted by (source, target): no step, the caller builds the layout.
    assert kernels.push_pattern_step(n, src[::-1].astype(np.int32), dst[::-1].astype(np.int32), mask,
                                   mask / mask.sum(), x, d) is None
    # The juice model: each passing link between ranked pages carries x[source] x its share.
    teleport = np.where(mask, np.random.default_rng(6).uniform(0.5, 1, n), 0.0)
    teleport /= teleport.sum()
    out_weight = np.bincount(src, weights=weight, minlength=n)
    flows = passes & mask[src] & mask[np.maximum(dst, 0)]
    pushed = np.zeros(n)
    np.add.at(pushed, dst[flows], x[src[flows]] * weight[flows] / out_weight[src[flows]])
    c = 1 - d + d * x[mask & (out_weight == 0)].sum()
    got, change = kernels.push_weighted_step(n, src.astype(np.int32), dst.astype(np.int32), weight, out_weight,
                                             np.zeros(0), passes, mask, teleport, x, d)
    np.testing.assert_allclose(got, d * pushed + c * teleport, rtol=1e-13, atol=1e-16)
    # Warm starts: at the fixed point one step; from a perturbed start, the cold result.
    cold = classic_pagerank(n, src, dst, nodes=mask, tol=1e-12)
    again = classic_pagerank(n, src, dst, nodes=mask, tol=1e-12, start=cold.scores)
    assert again.iterations == 1 and np.abs(again.scores - cold.scores).sum() < 1e-11
    moved = classic_pagerank(n, src, dst, nodes=mask, tol=1e-12, start=cold.scores * (1 + 0.1 * mask * (x > x.mean())))
    assert moved.iterations > 1 and np.abs(moved.scores - cold.scores).sum() < 1e-10
    cold_juice, _ = juice_rank(n, src, dst, weight, passes, ranked=mask, teleport=teleport, tol=1e-12)
    warm_juice, _ = juice_rank(n, src, dst, weight, passes, ranked=mask, teleport=teleport, tol=1e-12,
                               start=cold_juice.scores)
    assert warm_juice.iterations == 1 and np.abs(warm_juice.scores - cold_juice.scores).sum() < 1e-11
    moved_juice, _ = juice_rank(n, src, dst, weight, passes, ranked=mask, teleport=teleport, tol=1e-12,
                                start=np.where(mask, 1.0 / mask.sum(), 0.0))
    assert moved_juice.iterations > 1 and np.abs(moved_juice.scores - cold_juice.scores).sum() < 1e-10

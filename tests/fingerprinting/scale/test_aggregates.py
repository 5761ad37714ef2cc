"""Group-pair aggregates from the tiled sweep against brute force over every pair."""

import itertools

import numpy as np
import pytest
import torch

from fingerprinting.metrics import METRICS, iter_pairwise_blocks, pairwise_pairs, similarity
from fingerprinting.scale.aggregates import PairAggregator, hist_quantiles, iter_tiles, sweep

METRICS_CHECKED = ["cosine", "l1", "euclidean", "js_divergence", "correlation", "wasserstein"]


def _matrix(X, metric, tile):
    """Symmetric matrix of the stored pair values (upper triangle, i < j), as pairwise_pairs gives them."""
    i, j, v = pairwise_pairs(X, metric, tile=tile)
    S = np.full((len(X), len(X)), np.nan)
    S[i, j] = v
    S[j, i] = v
    return S


def _data(n=150, d=6, seed=0):
    """Rounded values (ties, duplicate rows), 9 groups incl. singletons, some rows in no group."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n, d)), 1)
    X[7] = X[3]
    X[20] = X[21] = X[22]
    groups = rng.integers(0, 7, size=n)
    groups[0], groups[1] = 7, 8  # single-model families
    groups[rng.choice(n, 6, replace=False)] = -1  # unregistered: no group
    groups[[0, 1]] = [7, 8]
    return X, groups


def _reference(X, groups, metric, tile):
    """Per group pair: every pair's value from the full N x N matrix, grouped with a plain loop, statistics
    by numpy. The matrix is computed in the sweep's row order (by group) and tile size, because
    torch.cdist's values (euclidean) move by ~1e-8 with the tile's composition."""
    perm = np.argsort(np.where(groups < 0, groups.max() + 1, groups), kind="stable")
    S = np.empty((len(X), len(X)))
    S[np.ix_(perm, perm)] = _matrix(X[perm], metric, tile=tile)
    vals: dict[tuple[int, int], list[float]] = {}
    for i, j in itertools.combinations(range(len(X)), 2):
        if groups[i] < 0 or groups[j] < 0:
            continue
        key = (min(groups[i], groups[j]), max(groups[i], groups[j]))
        vals.setdefault(key, []).append(S[i, j])
        # and the matrix holds the metric's values (the kernels agree with the definition)
        if i % 17 == 0:
            assert S[i, j] == pytest.approx(similarity(X[i], X[j], metric), abs=1e-7)
    return {k: np.array(v) for k, v in vals.items()}


@pytest.mark.parametrize("metric", METRICS_CHECKED)
@pytest.mark.parametrize("tile", [16, 64, 1000])
def test_sweep_aggregates_equal_brute_force(metric, tile):
    X, groups = _data()
    ref = _reference(X, groups, metric, tile)
    res = sweep(X, metric, groups=groups, n_groups=9, tile=tile)
    agg = res.aggregates
    got = agg.as_dict()
    assert set(got) == set(ref)
    assert (7, 7) not in got and (8, 8) not in got and (7, 8) in got  # singletons: only cross pairs
    for key, v in ref.items():
        mn, mx, mean, var, n = got[key]
        assert n == len(v)
        np.testing.assert_allclose([mn, mx, mean, var], [v.min(), v.max(), v.mean(), v.var()], atol=1e-12, rtol=0)
    # sketch quartiles: within one bin of quantile_cont (numpy's linear quantile), inside [min, max]
    w = (METRICS.get(metric).upper - METRICS.get(metric).lower) / agg.bins
    counts = agg.sketch_counts
    for r, (a, b) in enumerate(zip(agg.group_a, agg.group_b, strict=True)):
        v = ref[(a, b)]
        q = agg.quartiles[r]
        assert np.all(np.abs(q - np.quantile(v, [0.25, 0.5, 0.75])) <= w + 1e-12)
        assert v.min() - 1e-12 <= q[0] <= q[1] <= q[2] <= v.max() + 1e-12
        assert counts[r].sum() == len(v)


def test_sweep_pairs_and_groups_in_any_order():
    X, groups = _data(n=90, seed=3)
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(X))  # rows of a group scattered through X
    res = sweep(X[perm], "cosine", groups=groups[perm], n_groups=9, pairs="intra", tile=16)
    i, j, v = res.pairs
    assert np.all(i < j)
    gi, gj = groups[perm][i], groups[perm][j]
    assert np.all(gi == gj) and np.all(gi >= 0)
    expected = sum(c * (c - 1) // 2 for c in np.bincount(groups[groups >= 0]))
    assert len(v) == expected and len(set(zip(i.tolist(), j.tolist(), strict=True))) == expected
    for a, b, s in zip(i[:50], j[:50], v[:50], strict=True):
        assert s == pytest.approx(similarity(X[perm][a], X[perm][b], "cosine"), abs=1e-12)
    allp = sweep(X, "l1", pairs="all", tile=16).pairs
    assert len(allp[2]) == len(X) * (len(X) - 1) // 2


def test_iter_tiles_equals_iter_pairwise_blocks():
    X, _ = _data(n=70)
    for metric in ("cosine", "js_divergence", "l1"):
        a = {(i0, j0): blk for i0, j0, blk in iter_pairwise_blocks(X, metric, tile=32)}
        b = {(i0, j0): blk.numpy() for i0, j0, blk in iter_tiles(X, metric, tile=32)}
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_add_pairs_and_chan_merge():
    """Loose pairs fed in three batches equal one batch, and numpy's statistics."""
    rng = np.random.default_rng(5)
    ga = rng.integers(0, 4, 3000)
    gb = rng.integers(0, 4, 3000)
    v = np.round(rng.random(3000), 2)  # ties
    one = PairAggregator(4, 0.0, 1.0)
    one.add_pairs(ga, gb, v)
    three = PairAggregator(4, 0.0, 1.0)
    for s in np.array_split(np.arange(3000), 3):
        three.add_pairs(ga[s], gb[s], v[s])
    r1, r3 = one.result(), three.result()
    for r in (r1, r3):
        for k, (mn, mx, mean, var, n) in r.as_dict().items():
            sel = (np.minimum(ga, gb) == k[0]) & (np.maximum(ga, gb) == k[1])
            np.testing.assert_allclose([mn, mx, mean, var, n], [v[sel].min(), v[sel].max(), v[sel].mean(),
                                                                v[sel].var(), sel.sum()], atol=1e-13)
    np.testing.assert_array_equal(r1.quartiles, r3.quartiles)


def test_variance_of_nearly_equal_values_is_accurate():
    """Values 1 - 1e-9 * k: the variance (about 8e-18) survives shifting and merging."""
    v = 1.0 - 1e-9 * np.arange(1, 101)
    acc = PairAggregator(1, 0.0, 1.0)
    for s in np.array_split(np.arange(100), 7):
        acc.add_pairs(np.zeros(len(s), int), np.zeros(len(s), int), v[s])
    res = acc.result()
    assert res.variance[0] == pytest.approx(np.var(v), rel=1e-6)
    assert res.mean[0] == pytest.approx(v.mean(), abs=1e-15)


def test_hist_quantiles_by_hand():
    # bins of width 0.1 over [0, 1]; values 0.05, 0.15, 0.15, 0.95 -> counts in bins 0, 1, 1, 9
    H = np.zeros((1, 10), int)
    H[0, [0, 1, 9]] = [1, 2, 1]
    q = hist_quantiles(H, 0.0, 0.1, np.array([0.05]), np.array([0.95]))[0]
    # order statistics: bin 0 rank 0 of 1 -> 0.05; bin 1 ranks 0, 1 of 2 -> 0.125, 0.175; bin 9 -> 0.95
    # q1 at position 0.75: 0.05 + 0.75 (0.125 - 0.05); median at 1.5: (0.125 + 0.175) / 2; q3 at 2.25
    np.testing.assert_allclose(q, [0.05 + 0.75 * 0.075, 0.15, 0.175 + 0.25 * (0.95 - 0.175)])


def test_release_guard_and_group_order():
    acc = PairAggregator(3, 0.0, 1.0)
    acc.add_pairs([0], [1], [0.5])
    acc.release_below(1)
    with pytest.raises(RuntimeError, match="released"):
        acc.add_pairs([0], [2], [0.5])


def test_sweep_rejects_intra_without_groups():
    with pytest.raises(ValueError, match="groups"):
        sweep(np.ones((3, 2)), "cosine", pairs="intra")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_sweep_on_gpu_equals_cpu():
    X, groups = _data(n=400)
    cpu = sweep(X, "cosine", groups=groups, n_groups=9, k=5, tile=128)
    gpu = sweep(X, "cosine", groups=groups, n_groups=9, k=5, tile=128, device="cuda")
    for a, b in zip(cpu.aggregates.as_dict().values(), gpu.aggregates.as_dict().values(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_array_equal(cpu.neighbors.idx, gpu.neighbors.idx)


def test_many_small_groups_sparse_tile_histograms():
    """200 groups of 0-4 rows: a 150-row tile holds ~100 x 100 sub-blocks x 1000 bins, more cells than the
    dense limit, so its histogram is counted by sorting; statistics and sketches still equal brute force."""
    from fingerprinting.scale import aggregates

    rng = np.random.default_rng(9)
    X = np.round(rng.random((300, 5)), 2)
    groups = np.sort(rng.integers(0, 200, 300))
    assert 100 * 100 * 1000 > aggregates._DENSE_HIST
    ref = _reference(X, groups, "cosine", 150)
    res = sweep(X, "cosine", groups=groups, n_groups=200, tile=150).aggregates
    got = res.as_dict()
    assert set(got) == set(ref)
    totals = np.add.reduceat(res.sketch_count, res.sketch_offsets[:-1])
    for r, key in enumerate(zip(res.group_a.tolist(), res.group_b.tolist(), strict=True)):
        v = ref[key]
        np.testing.assert_allclose(got[key][:4], [v.min(), v.max(), v.mean(), v.var()], atol=1e-12)
        assert totals[r] == len(v) == got[key][4]
        assert np.all(np.abs(res.quartiles[r] - np.quantile(v, [0.25, 0.5, 0.75])) <= res.bin_width + 1e-12)

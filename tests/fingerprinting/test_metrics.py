"""Similarity metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from fingerprinting.metrics import (
    METRICS,
    iter_pairwise_blocks,
    pairwise_matrix,
    pairwise_pairs,
    similarity,
)
from fingerprinting.plugins import UnknownPluginError

HAND = [
    # l1: |.|-sorted a=[0,1,-2], b=[0,1,3]; sum|diff| = 5; sum|a|+sum|b| = 7
    ("l1", [1, -2, 0], [0, 1, 3], 2 / 7),
    ("l1", [1, 2, 3], [3, 2, 1], 1.0),  # same multiset -> identical after sorting
    ("cosine", [1, 0], [1, 1], 1 / math.sqrt(2)),
    ("cosine", [1, 0], [-1, 0], -1.0),
    ("complex_cosine", [1j, 0], [1, 0], 1.0),  # |vdot| = |conj(i)*1| = 1
    ("complex_cosine", [1, 1j], [1, -1j], 0.0),  # vdot = 1 + conj(i)(-i) = 1 - 1 = 0
    ("euclidean", [3, 0], [0, 4], 1 - 5 / 7),
    ("js_divergence", [1, 0], [0, 1], 1 - math.sqrt(math.log(2))),  # JS = ln 2 for disjoint supports
    ("js_divergence", [2, 2], [5, 5], 1.0),
    ("correlation", [1, 2, 3], [2, 4, 7], 15 / math.sqrt(228)),
    ("wasserstein", [1, 0, 0], [0, 0, 1], 0.0),  # CDFs [1,1,1] vs [0,0,1]
    ("wasserstein", [1, 1, 0, 0], [0, 0, 1, 1], 1 / 3),  # sum|dCDF| = .5+1+.5 = 2, / 3
]


@pytest.mark.parametrize("metric,a,b,expected", HAND)
def test_metric_hand_values(metric, a, b, expected):
    assert similarity(np.array(a), np.array(b), metric) == pytest.approx(expected, abs=1e-12)


def test_js_matches_scipy_definition():
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=20), rng.normal(size=20)
    p, q = np.abs(a) / np.abs(a).sum(), np.abs(b) / np.abs(b).sum()
    assert similarity(a, b, "js_divergence") == pytest.approx(1 - jensenshannon(p, q), abs=1e-12)


def test_different_lengths_are_left_padded():
    # [1, 2] vs [0, 1, 2] are the same fingerprint once the short one is padded in front
    assert similarity(np.array([1.0, 2.0]), np.array([0.0, 1.0, 2.0]), "euclidean") == pytest.approx(1.0)


def test_nan_fingerprint_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        similarity(np.array([1.0, np.nan]), np.array([1.0, 2.0]), "l1")


def test_unknown_metric_lists_known_and_suggests():
    with pytest.raises(UnknownPluginError) as exc:
        similarity(np.ones(2), np.ones(2), "cosin")
    assert "did you mean 'cosine'" in str(exc.value).lower()
    assert "wasserstein" in str(exc.value)


@pytest.mark.parametrize("metric", METRICS.names())
def test_all_pairs_equals_pair_loop(metric):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(23, 12))
    X[4, :3] = 0.0
    ref = np.array([[similarity(X[i], X[j], metric) for j in range(len(X))] for i in range(len(X))])
    # a tile smaller than N exercises the tiling and the symmetric fill
    got = pairwise_matrix(X, metric, tile=5)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    i, j, s = pairwise_pairs(X, metric, tile=7)
    assert len(s) == 23 * 22 // 2 and np.all(i < j)
    np.testing.assert_allclose(s, ref[i, j], atol=1e-12)


def test_complex_all_pairs():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 4)) + 1j * rng.normal(size=(6, 4))
    got = pairwise_matrix(X, "complex_cosine")
    ref = np.array([[abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)) for b in X] for a in X])
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_blocks_only_upper_triangle():
    X = np.random.default_rng(2).normal(size=(10, 3))
    tiles = [(i0, j0) for i0, j0, _ in iter_pairwise_blocks(X, "cosine", tile=4)]
    assert all(j0 >= i0 for i0, j0 in tiles)
    assert len(tiles) == 6  # 3 tile rows -> 3 + 2 + 1


def test_metric_metadata():
    meta = METRICS.meta("js_divergence")
    assert meta["higher_is_better"] is True and meta["lower"] == 0.0 and meta["upper"] == 1.0


# ------------------------------------------- js_divergence all-pairs kernel
def _scipy_js_similarity(X):
    from scipy.spatial.distance import jensenshannon

    D = np.abs(X) / np.abs(X).sum(1, keepdims=True)
    with np.errstate(invalid="ignore"):
        ref = np.array([[1.0 - jensenshannon(p, q) for q in D] for p in D])
    # scipy returns nan for equal distributions (to rounding) whose JS rounds below 0 (sqrt of
    # -1e-17): the distance there is 0, as in the per-pair definition
    equal = np.array([[np.allclose(p, q, rtol=1e-14, atol=0) for q in D] for p in D])
    assert np.all(equal[np.isnan(ref)])
    return np.where(np.isnan(ref), 1.0, ref)


def _js_test_data(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-6, 6, size=(n, 1))  # negative entries, scales
    X[rng.random(X.shape) < 0.15] = 0.0  # zeros, often in the same feature for both rows
    X[:, 0] = 0.0  # a feature that is 0 in every row: 0 log 0 on every pair
    X[3:9] = np.sort(np.abs(X[3:9]), axis=1)  # close, sorted fingerprints
    X[10] = -X[2]  # same distribution as row 2 after |.|
    X[11] = X[2] * 7.5
    X[12] = X[1] * (1 + 1e-3 * rng.normal(size=d))  # near-duplicate: exact-form fallback
    return X


@pytest.mark.parametrize("tile", [16, 50, 1024])
def test_js_all_pairs_equals_scipy_at_tile_boundaries(tile):
    X = _js_test_data(101, 13, seed=7)  # 101 is not a multiple of any tile
    ref = _scipy_js_similarity(X)
    got = pairwise_matrix(X, "js_divergence", tile=tile)
    np.testing.assert_allclose(got, ref, atol=1e-12, rtol=0)
    i, j, s = pairwise_pairs(X, "js_divergence", tile=tile)
    np.testing.assert_allclose(s, ref[i, j], atol=1e-12, rtol=0)
    assert np.all(np.diag(got) == 1.0)
    assert got[2, 10] == got[2, 11] == 1.0


def test_js_all_pairs_default_tile_sample_equals_scipy():
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(11)
    n = 1100  # one full default tile (1024) and a partial one
    X = np.sort(np.abs(rng.normal(size=(n, 40))), axis=1)
    X[rng.random(X.shape) < 0.05] = 0.0
    got = pairwise_matrix(X, "js_divergence")
    D = X / X.sum(1, keepdims=True)
    edge = [0, 1, 1022, 1023, 1024, 1025, n - 1]
    pairs = [(a, b) for a in edge for b in edge] + [tuple(p) for p in rng.integers(0, n, size=(1500, 2))]
    for a, b in pairs:
        assert got[a, b] == pytest.approx(1.0 - jensenshannon(D[a], D[b]), abs=1e-12)


def test_js_all_pairs_equals_pair_definition_on_zero_rows_and_padding():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 9))
    X[5] = 0.0  # all-zero row: uniform distribution, as in the per-pair definition
    X[6, :4] = 0.0  # left padding
    ref = np.array([[similarity(a, b, "js_divergence") for b in X] for a in X])
    np.testing.assert_allclose(pairwise_matrix(X, "js_divergence", tile=7), ref, atol=1e-12, rtol=0)


def test_js_all_pairs_same_result_with_one_thread():
    import torch

    X = _js_test_data(150, 20, seed=9)
    two = pairwise_matrix(X, "js_divergence", tile=128)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = pairwise_matrix(X, "js_divergence", tile=128)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_js_all_pairs_float32_request_and_range():
    X = _js_test_data(60, 10, seed=2)
    got = pairwise_matrix(X, "js_divergence", tile=16, dtype=__import__("torch").float32)
    assert got.min() >= 0.0 and got.max() <= 1.0
    np.testing.assert_allclose(got, _scipy_js_similarity(X), atol=1e-5)

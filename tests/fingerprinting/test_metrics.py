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

"""Approximate neighbours: exact fallback below the threshold, high recall above it, exact re-ranking."""

import numpy as np
import pytest

from fingerprinting.metrics import similarity
from fingerprinting.scale.ann import (
    STRATEGIES,
    AnnError,
    approximate_topk,
    paired_similarity,
    recall_at_k,
)
from fingerprinting.scale.neighbors import exact_topk, exact_topk_rows


def _clustered(n, fams=40, d=24, seed=0):
    """Families (centre) -> 10 branches -> models (small noise): positive values, like spectra."""
    rng = np.random.default_rng(seed)
    f = rng.integers(0, fams, n)
    b = rng.integers(0, 10, n)
    centre = rng.normal(size=(fams, d)) * 3
    branch = rng.normal(size=(fams, 10, d))
    return np.abs(centre[f] + branch[f, b] + 0.3 * rng.normal(size=(n, d)))


def test_below_threshold_falls_back_to_exact():
    X = _clustered(300)
    nb = approximate_topk(X, "cosine", 5, threshold=1000)
    ref = exact_topk(X, "cosine", 5)
    assert nb.exact and nb.info["path"] == "exact"
    np.testing.assert_array_equal(nb.idx, ref.idx)
    np.testing.assert_allclose(nb.sim, ref.sim, atol=0)


def test_metric_without_index_falls_back_to_exact():
    assert set(STRATEGIES) >= {"cosine", "l1", "euclidean", "js_divergence", "correlation", "wasserstein"}
    X = _clustered(200)
    STRATEGIES_backup = dict(STRATEGIES)
    try:
        STRATEGIES.pop("l1")
        nb = approximate_topk(X, "l1", 3, threshold=10)
        assert nb.exact and nb.info["reason"] == "metric without index"
    finally:
        STRATEGIES.clear()
        STRATEGIES.update(STRATEGIES_backup)


@pytest.mark.parametrize("metric", ["cosine", "correlation", "wasserstein", "l1", "euclidean", "js_divergence"])
def test_above_threshold_high_recall_and_exact_values(metric):
    X = _clustered(3000, seed=1)
    queries = np.random.default_rng(2).choice(len(X), 300, replace=False)
    nb = approximate_topk(X, metric, 10, threshold=1000, queries=queries, threads=1)
    assert not nb.exact and nb.info["path"] == "hnsw"
    ref = exact_topk_rows(X, queries, metric, 10)
    assert recall_at_k(nb.idx, ref.idx, ref.sim, nb.sim) >= 0.95
    # every returned similarity is the metric's own value for that pair
    for q, (row_idx, row_sim) in enumerate(zip(nb.idx[:20], nb.sim[:20], strict=True)):
        for j, s in zip(row_idx, row_sim, strict=True):
            assert s == pytest.approx(similarity(X[queries[q]], X[j], metric), abs=1e-9)
        assert np.all(np.diff(row_sim) <= 1e-15)  # sorted best first


@pytest.mark.parametrize("metric", sorted(STRATEGIES))
def test_paired_similarity_matches_definition(metric):
    from fingerprinting.scale.ann import _prepared

    X = _clustered(40, seed=3)
    P = _prepared(X, metric)
    got = paired_similarity(P[:20], P[20:], metric)
    ref = [similarity(X[i], X[20 + i], metric) for i in range(20)]
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_recall_counts_ties_at_the_boundary():
    exact_idx = np.array([[1, 2, 3]])
    exact_sim = np.array([[0.9, 0.8, 0.7]])
    # 4 also has 0.7: interchangeable with 3
    assert recall_at_k(np.array([[1, 2, 4]]), exact_idx, exact_sim, np.array([[0.9, 0.8, 0.7]])) == 1.0
    assert recall_at_k(np.array([[1, 2, 4]]), exact_idx) == pytest.approx(2 / 3)


def test_bad_k():
    with pytest.raises(AnnError, match="k must be"):
        approximate_topk(np.ones((3, 2)), "cosine", 0)

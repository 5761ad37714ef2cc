"""Exact top-k by blocks against brute force over the full matrix (ties included)."""

import numpy as np
import pytest
import torch

from fingerprinting.metrics import pairwise_pairs
from fingerprinting.scale.aggregates import sweep
from fingerprinting.scale.neighbors import TopK, exact_topk, exact_topk_rows, tile_topk


def _matrix(X, metric, tile):
    """Symmetric matrix of the stored pair values (upper triangle, i < j), as pairwise_pairs gives them."""
    i, j, v = pairwise_pairs(X, metric, tile=tile)
    S = np.full((len(X), len(X)), np.nan)
    S[i, j] = v
    S[j, i] = v
    return S


def _brute(S, k):
    """Plain reference: for each row, sort (similarity desc, index asc) over the other rows."""
    n = len(S)
    idx = np.full((n, k), -1)
    sim = np.full((n, k), np.nan)
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (-S[i, j], j))[:k]
        idx[i, : len(others)] = others
        sim[i, : len(others)] = S[i, others]
    return idx, sim


def _tied_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n, 3)), 0)  # few distinct rows: many exact ties
    X[X.sum(1) == 0] += 1  # no zero vectors
    return X


@pytest.mark.parametrize("metric", ["cosine", "l1", "js_divergence", "wasserstein"])
@pytest.mark.parametrize("tile", [7, 32, 500])
def test_exact_topk_equals_brute_force_with_ties(metric, tile):
    X = _tied_data()
    S = _matrix(X, metric, tile=tile)
    ref_idx, ref_sim = _brute(S, 6)
    assert len({tuple(r) for r in np.round(ref_sim, 12)}) < len(X)  # the data really has ties
    nb = exact_topk(X, metric, 6, tile=tile)
    np.testing.assert_array_equal(nb.idx, ref_idx)
    np.testing.assert_allclose(nb.sim, ref_sim, atol=1e-12)
    assert nb.exact


def test_topk_with_groups_permutation_keeps_ties_by_row_index():
    """A sweep that reorders rows by group still breaks ties by the original row index."""
    X = _tied_data(90, seed=2)
    groups = np.random.default_rng(3).integers(0, 5, len(X))
    res = sweep(X, "cosine", groups=groups, n_groups=5, k=4, tile=16)
    perm = np.argsort(groups, kind="stable")
    S = np.empty((len(X), len(X)))
    S[np.ix_(perm, perm)] = _matrix(X[perm], "cosine", tile=16)
    ref_idx, _ = _brute(S, 4)
    np.testing.assert_array_equal(res.neighbors.idx, ref_idx)


def test_fewer_models_than_k():
    X = np.array([[1.0, 0], [0, 1], [1, 1]])
    nb = exact_topk(X, "cosine", 5)
    assert (nb.idx[:, :2] >= 0).all() and (nb.idx[:, 2:] == -1).all() and np.isnan(nb.sim[:, 2:]).all()
    # row 2 = (1,1): cos 1/sqrt(2) to both; tie -> lower index first
    assert nb.idx[2, :2].tolist() == [0, 1]


def test_exact_topk_rows_subset():
    X = _tied_data(80, seed=4)
    rows = np.array([5, 0, 79, 40])
    S = _matrix(X, "l1", tile=16)
    ref_idx, ref_sim = _brute(S, 5)
    nb = exact_topk_rows(X, rows, "l1", 5, tile=16)
    np.testing.assert_array_equal(nb.idx, ref_idx[rows])


def test_tile_topk_boundary_ties_resolved_by_key():
    S = torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.1]], dtype=torch.float64)
    keys = torch.tensor([40, 10, 30, 20, 0])
    vals, got = tile_topk(S, keys, 3)
    # 0.9 (key 10), then two of the three 0.5 ties with the smallest keys: 20, 30
    assert sorted(zip(-vals[0], got[0], strict=True)) == [(-0.9, 10), (-0.5, 20), (-0.5, 30)]
    top = TopK(1, 3)
    top.update(np.array([0]), vals, got)
    top.update(np.array([0]), np.array([[0.5]]), np.array([[15]]))
    idx, sim = top.result()
    assert idx[0].tolist() == [10, 15, 20] and sim[0].tolist() == [0.9, 0.5, 0.5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_exact_topk_on_gpu():
    X = _tied_data(300)
    ref = exact_topk(X, "cosine", 5, tile=64)
    gpu = exact_topk(X, "cosine", 5, tile=64, device="cuda")
    np.testing.assert_array_equal(gpu.idx, ref.idx)

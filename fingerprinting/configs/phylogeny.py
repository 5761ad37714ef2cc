"""Config phylogeny: clustering, 2-D maps and how well config neighbours recover lineage."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

MDS_MAX_N = 2000


def _condensed(D: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import squareform

    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError("D must be a square distance matrix")
    # Pairs with nothing compared (NaN) are treated as maximally far apart.
    D = np.where(np.isnan(D), 1.0, D)
    D = (D + D.T) / 2.0
    np.fill_diagonal(D, 0.0)
    return squareform(D, checks=False)


def average_linkage(
    D: np.ndarray, n_clusters: int | None = None, threshold: float | None = None
) -> np.ndarray:
    """Flat clusters (labels 0..k-1) from UPGMA (average linkage) on a square Gower matrix.

    Give exactly one of ``n_clusters`` (cut into that many clusters) or
    ``threshold`` (cut at this cophenetic distance). NaN distances count as 1.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    if (n_clusters is None) == (threshold is None):
        raise ValueError("give exactly one of n_clusters or threshold")
    n = np.asarray(D).shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    Z = linkage(_condensed(D), method="average")
    if n_clusters is not None:
        labels = fcluster(Z, t=n_clusters, criterion="maxclust")
    else:
        labels = fcluster(Z, t=threshold, criterion="distance")
    return labels.astype(np.int64) - 1


def pca_2d(X: np.ndarray) -> np.ndarray:
    """First two principal components of ``X`` (centred SVD; padded with 0 if rank < 2)."""
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0) if X.shape[0] else X
    if Xc.size == 0:
        return np.zeros((X.shape[0], 2))
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    out = np.zeros((X.shape[0], 2))
    r = min(2, S.size)
    out[:, :r] = U[:, :r] * S[:r]
    return out


def mds_2d(D: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Metric MDS of a precomputed distance matrix to 2-D (seeded); n <= 2000 only."""
    from sklearn.manifold import MDS

    n = np.asarray(D).shape[0]
    if n > MDS_MAX_N:
        raise ValueError(f"mds_2d is O(n^2) per iteration; n={n} > {MDS_MAX_N}")
    Dm = np.asarray(D, dtype=np.float64)
    Dm = np.where(np.isnan(Dm), 1.0, Dm)
    Dm = (Dm + Dm.T) / 2.0
    np.fill_diagonal(Dm, 0.0)
    params = inspect.signature(MDS).parameters
    kwargs: dict[str, Any] = {"n_components": 2, "random_state": seed, "n_init": 1}
    # scikit-learn >= 1.8 spells it metric="precomputed"; older ones dissimilarity=.
    if "metric_mds" in params:
        kwargs.update(metric="precomputed", metric_mds=True)
    else:
        kwargs["dissimilarity"] = "precomputed"
    if "init" in params:
        kwargs["init"] = "random"
    return MDS(**kwargs).fit_transform(Dm)


def adjusted_rand(labels_true: Sequence, labels_pred: Sequence) -> float:
    """Adjusted Rand index of two labelings (scikit-learn)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(list(labels_true), list(labels_pred)))


def neighbour_recovery(
    edges: Iterable[Any],
    nn_index: np.ndarray,
    ids: Sequence[str],
    family_of: dict[str, str] | Callable[[str], str | None] | None = None,
) -> dict:
    """Share of lineage edges whose child's nearest config neighbour is its parent or a sibling.

    ``nn_index``: [n, k] neighbour indices into ``ids`` (as :func:`gower_topk`
    returns; -1 = none); only the first column is used. A sibling is another
    child of the same parent. Edges with an end missing from ``ids`` are not
    scored. Also reports the share whose nearest neighbour is in the child's
    family when ``family_of`` (dict or function) is given.
    """
    pos = {m: i for i, m in enumerate(ids)}
    pairs = [
        (e["parent_id"], e["child_id"]) if isinstance(e, dict) else (e[0], e[1]) for e in edges
    ]
    children_of: dict[str, set[str]] = {}
    parents_of: dict[str, set[str]] = {}
    for p, c in pairs:
        children_of.setdefault(p, set()).add(c)
        parents_of.setdefault(c, set()).add(p)
    fam = family_of.get if isinstance(family_of, dict) else family_of
    nn = np.asarray(nn_index)
    scored = parent_hits = sibling_hits = family_hits = family_scored = 0
    for p, c in pairs:
        if p not in pos or c not in pos:
            continue
        scored += 1
        j = int(nn[pos[c], 0]) if nn.ndim == 2 else int(nn[pos[c]])
        if j < 0:
            continue
        neighbour = ids[j]
        if neighbour == p:
            parent_hits += 1
        elif neighbour in children_of.get(p, set()):
            sibling_hits += 1
        if fam is not None and fam(c) is not None:
            family_scored += 1
            family_hits += int(fam(neighbour) == fam(c))
    share = (parent_hits + sibling_hits) / scored if scored else None
    return {
        "n_edges_scored": scored,
        "parent_hits": parent_hits,
        "sibling_hits": sibling_hits,
        "recovery": share,
        "parent_share": parent_hits / scored if scored else None,
        "family_share": family_hits / family_scored if family_scored else None,
    }

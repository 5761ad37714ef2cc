"""Config similarities, embedding and phylogeny over one population of configs (lake-ready tables).

Metrics (all distances in the ``distance`` column, ``similarity`` beside it):

* ``gower`` — standard Gower (numeric |x-y| / range over the population);
* ``gower_max`` — the source notebook's variant (numeric |x-y| / max(|x|, |y|));
* ``l1``, ``l2``, ``cosine`` — on standardised numeric + one-hot categorical features,
  for the metric comparison. similarity = 1 - d for Gower and cosine, 1 / (1 + d) for l1 / l2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fingerprinting.configs.features import FEATURES
from fingerprinting.configs.gower import (
    all_pairs,
    encode,
    gower_matrix,
    gower_topk,
    vector_features,
    vector_topk,
)
from fingerprinting.configs.phylogeny import (
    adjusted_rand,
    average_linkage,
    mds_2d,
    neighbour_recovery,
    pca_2d,
)
from fingerprinting.configs.tables import CONFIG_EMBEDDING, CONFIG_PHYLOGENY, CONFIG_SIMILARITIES

METRICS = ("gower", "gower_max", "l1", "l2", "cosine")
MDS_MAX_N = 2000
CLUSTER_MAX_N = 6000


def _similarity(metric: str, d: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + d) if metric in ("l1", "l2") else 1.0 - d


@dataclass
class ConfigAnalysis:
    similarities: dict[str, pa.Table] = field(default_factory=dict)  # metric -> rows
    embedding: pa.Table | None = None
    phylogeny: pa.Table | None = None


def similarity_tables(ids: Sequence[str], rows: Sequence[dict], *, k: int = 10, all_pairs_max: int = 1000,
                      metrics: Sequence[str] = METRICS, weights=None) -> dict[str, pa.Table]:
    """Top-k neighbours per model per metric, plus every pair when the population is small."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown config metric(s) {unknown}; known: {list(METRICS)}")
    ids_arr = np.asarray(ids, dtype=object)
    n = len(ids)
    A = encode(rows, FEATURES)
    X = vector_features(A) if any(m in ("l1", "l2", "cosine") for m in metrics) else None
    out = {}
    kk = min(k, max(n - 1, 0))
    for metric in metrics:
        parts = []
        if kk:
            if metric in ("gower", "gower_max"):
                idx, dist = gower_topk(A, kk, variant="standard" if metric == "gower" else "max",
                                       weights=weights, dtype=np.float64)
            else:
                idx, dist = vector_topk(X, kk, metric)
            qi = np.repeat(np.arange(n), kk)
            nj, dd = idx.ravel(), dist.ravel()
            rank = np.tile(np.arange(1, kk + 1, dtype=np.int32), n)
            ok = (nj >= 0) & np.isfinite(dd)
            parts.append(pa.table({
                "model_a": pa.array(ids_arr[qi[ok]], pa.string()), "model_b": pa.array(ids_arr[nj[ok]], pa.string()),
                "metric": pa.array([metric] * int(ok.sum()), pa.string()),
                "kind": pa.array(["neighbor"] * int(ok.sum()), pa.string()), "rank": pa.array(rank[ok]),
                "distance": pa.array(dd[ok]), "similarity": pa.array(_similarity(metric, dd[ok])),
                "population_size": pa.array(np.full(int(ok.sum()), n, dtype=np.int64)),
            }, schema=CONFIG_SIMILARITIES.schema))
        if 1 < n <= all_pairs_max:
            if metric in ("gower", "gower_max"):
                ii, jj, dd = (np.concatenate(x) for x in zip(*all_pairs(
                    A, variant="standard" if metric == "gower" else "max", weights=weights,
                    dtype=np.float64, n_jobs=1), strict=True))
            else:
                D = _vector_dist(X, metric)
                ii, jj = np.triu_indices(n, k=1)
                dd = D[ii, jj]
            # model_a < model_b as strings, whatever the index order
            a, b = ids_arr[ii], ids_arr[jj]
            swap = a > b
            a2, b2 = np.where(swap, b, a), np.where(swap, a, b)
            ok = np.isfinite(dd)
            m = int(ok.sum())
            parts.append(pa.table({
                "model_a": pa.array(a2[ok], pa.string()), "model_b": pa.array(b2[ok], pa.string()),
                "metric": pa.array([metric] * m, pa.string()), "kind": pa.array(["pair"] * m, pa.string()),
                "rank": pa.array([None] * m, pa.int32()), "distance": pa.array(dd[ok]),
                "similarity": pa.array(_similarity(metric, dd[ok])),
                "population_size": pa.array(np.full(m, n, dtype=np.int64)),
            }, schema=CONFIG_SIMILARITIES.schema))
        out[metric] = pa.concat_tables(parts) if parts else CONFIG_SIMILARITIES.schema.empty_table()
    return out


def _vector_dist(X: np.ndarray, metric: str) -> np.ndarray:
    from scipy.spatial.distance import cdist

    name = {"l1": "cityblock", "l2": "euclidean", "cosine": "cosine"}[metric]
    with np.errstate(invalid="ignore", divide="ignore"):
        return cdist(X, X, metric=name)


def embedding_and_phylogeny(ids: Sequence[str], rows: Sequence[dict], family_of: dict[str, str],
                            edges: Sequence[dict]) -> tuple[pa.Table, pa.Table]:
    """2-D coordinates, average-linkage clusters, and how well configs recover lineage families."""
    n = len(ids)
    A = encode(rows, FEATURES)
    X = vector_features(A)
    pca = pca_2d(X) if n >= 2 else np.zeros((n, 2))
    D = None
    if n <= CLUSTER_MAX_N:
        D = gower_matrix(A)
        D = np.where(np.isfinite(D), D, 1.0)
    mds = mds_2d(D) if D is not None and 3 <= n <= MDS_MAX_N else np.full((n, 2), np.nan)
    fam_ids = [i for i, m in enumerate(ids) if family_of.get(m)]
    stats: list[dict] = []
    clusters = np.full(n, -1, dtype=np.int64)
    if D is not None and len(fam_ids) >= 2:
        fams = [family_of[ids[i]] for i in fam_ids]
        n_fam = len(set(fams))
        sub = D[np.ix_(fam_ids, fam_ids)]
        labels = average_linkage(sub, n_clusters=max(n_fam, 1))
        clusters[fam_ids] = labels
        stats.append({"population": "registered", "statistic": "adjusted_rand_index",
                      "value": float(adjusted_rand(fams, labels)),
                      "detail": f"average-linkage Gower clusters (k = {n_fam} families) vs lineage families, "
                                f"{len(fam_ids)} models with a config and a family"})
        idx, _ = gower_topk(A.take(np.asarray(fam_ids)), 1, dtype=np.float64)
        sub_ids = [ids[i] for i in fam_ids]
        rec = neighbour_recovery([(e["parent_id"], e["child_id"]) for e in edges], idx, sub_ids, family_of)
        for key, value in rec.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                stats.append({"population": "registered", "statistic": f"neighbour_{key}", "value": float(value),
                              "detail": "lineage edges whose child's nearest config neighbour is its parent "
                                        "or a sibling (recovery), or in its family (family share)"})
    emb = pa.table({"model_id": pa.array(list(ids), pa.string()), "pca_x": pca[:, 0], "pca_y": pca[:, 1],
                    "mds_x": mds[:, 0], "mds_y": mds[:, 1], "cluster": clusters}, schema=CONFIG_EMBEDDING.schema)
    return emb, pa.Table.from_pylist(stats, schema=CONFIG_PHYLOGENY.schema)

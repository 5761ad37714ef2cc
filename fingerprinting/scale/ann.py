"""Approximate top-k neighbours (faiss HNSW) above a population threshold; exact below it.

Below ``threshold`` rows the exact blocked top-k
(:func:`fingerprinting.scale.neighbors.exact_topk`) runs instead (``exact=True``).
Above it, a faiss ``IndexHNSWFlat`` over a per-metric embedding of the
prepared rows proposes ``k * oversample`` candidates per model, and the
candidates are re-ranked with the exact metric, so every returned similarity
is the metric's value (to rounding) and only the membership is approximate.

How each metric maps to an index (``STRATEGIES``):

========================  =========================================  =================
metric                    index over                                 ordering
========================  =========================================  =================
cosine                    L2-normalised rows, inner product          exact (monotone)
correlation               centred, L2-normalised rows, inner prod.   exact (monotone)
complex_cosine (real)     normalised rows, inner product, queried     exact (|cos|)
                          with +q and -q
wasserstein               CDF rows, L1 (similarity = 1 - L1/(d-1))   exact (monotone)
l1                        |value|-sorted rows, L1                    candidates only
euclidean                 rows, L2                                   candidates only
js_divergence             sqrt of the distributions (Hellinger), L2  candidates only
========================  =========================================  =================

"exact (monotone)": the index's distance orders pairs exactly like the
metric, so recall is only limited by the graph search; "candidates only": the
metric also depends on the norms (l1, euclidean) or is another divergence
(JS vs Hellinger), so candidates are a proxy and re-ranking decides. Any other
metric (a plugin) falls back to the exact blocked search.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.metrics import METRICS, _js_direct_rows
from fingerprinting.scale.neighbors import Neighbors, exact_topk

ANN_THRESHOLD = 100_000

# metric -> (faiss metric name, ordering is exact)
STRATEGIES: dict[str, tuple[str, bool]] = {
    "cosine": ("ip", True),
    "correlation": ("ip", True),
    "complex_cosine": ("ip_abs", True),
    "wasserstein": ("l1", True),
    "l1": ("l1", False),
    "euclidean": ("l2", False),
    "js_divergence": ("l2", False),
}


class AnnError(FingerprintLakeError):
    """The approximate index cannot run (bad arguments)."""


def _prepared(X: np.ndarray, metric: str) -> np.ndarray:
    m = METRICS.get(metric)
    return m.prepare(torch.as_tensor(np.asarray(X, dtype=np.float64))).numpy()


def _embedding(P: np.ndarray, metric: str) -> np.ndarray:
    """The float32 rows the index holds, from the metric's prepared rows."""
    if metric in ("cosine", "correlation", "complex_cosine"):
        E = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)
    elif metric == "js_divergence":
        E = np.sqrt(P)
    else:
        E = P
    return np.ascontiguousarray(E, dtype=np.float32)


def paired_similarity(Pa: np.ndarray, Pb: np.ndarray, metric: str) -> np.ndarray:
    """Similarity of row pairs (Pa[i], Pb[i]) of *prepared* rows (the ``block`` kernels' formulas, row-wise)."""
    if metric in ("cosine", "correlation", "complex_cosine"):
        na = np.linalg.norm(Pa, axis=-1)
        nb = np.linalg.norm(Pb, axis=-1)
        s = (Pa * Pb).sum(-1) / np.maximum(na * nb, 1e-24)
        s = np.where((na > 0) & (nb > 0), s, 0.0)
        s = np.abs(s) if metric == "complex_cosine" else s
    elif metric in ("l1", "euclidean"):
        p = 1 if metric == "l1" else 2
        num = np.linalg.norm(Pa - Pb, ord=p, axis=-1)
        den = np.linalg.norm(Pa, ord=p, axis=-1) + np.linalg.norm(Pb, ord=p, axis=-1)
        s = np.where(den > 0, 1.0 - num / np.maximum(den, 1e-12), 1.0)
    elif metric == "wasserstein":
        d = Pa.shape[-1]
        s = np.ones(Pa.shape[:-1]) if d < 2 else 1.0 - np.abs(Pa - Pb).sum(-1) / (d - 1)
    elif metric == "js_divergence":
        s = 1.0 - np.sqrt(_js_direct_rows(Pa, Pb))
    else:
        raise AnnError(f"metric {metric!r} has no row-wise form; use the exact search")
    m = METRICS.get(metric)
    return np.clip(s, m.lower, m.upper)


def _build(E: np.ndarray, kind: str, M: int, ef_construction: int):
    import faiss

    fm = {"ip": faiss.METRIC_INNER_PRODUCT, "ip_abs": faiss.METRIC_INNER_PRODUCT,
          "l1": faiss.METRIC_L1, "l2": faiss.METRIC_L2}[kind]
    index = faiss.IndexHNSWFlat(E.shape[1], M, fm)
    index.hnsw.efConstruction = ef_construction
    index.add(E)
    return index


def rerank(P: np.ndarray, rows: np.ndarray, cand: np.ndarray, metric: str, k: int,
           batch: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each query row among its candidate rows (self, duplicates and -1 dropped)."""
    idx_out = np.full((len(rows), k), -1, np.int64)
    sim_out = np.full((len(rows), k), np.nan)
    for s in range(0, len(rows), batch):
        r = rows[s : s + batch]
        c = cand[s : s + batch].copy()
        c = np.sort(c, axis=1)
        dup = np.zeros_like(c, bool)
        dup[:, 1:] = c[:, 1:] == c[:, :-1]
        bad = (c < 0) | dup | (c == r[:, None])
        cc = np.where(bad, 0, c)
        sim = paired_similarity(P[r][:, None, :], P[cc], metric)
        sim = np.where(bad, -np.inf, sim)
        order = np.lexsort((np.where(bad, np.iinfo(np.int64).max, c), -sim), axis=1)[:, :k]
        v = np.take_along_axis(sim, order, 1)
        i = np.take_along_axis(c, order, 1)
        ok = np.isfinite(v)
        w = min(k, v.shape[1])
        idx_out[s : s + batch, :w] = np.where(ok, i, -1)[:, :w]
        sim_out[s : s + batch, :w] = np.where(ok, v, np.nan)[:, :w]
    return idx_out, sim_out


def approximate_topk(X: np.ndarray, metric: str, k: int, *, threshold: int = ANN_THRESHOLD,
                     queries: np.ndarray | None = None, oversample: int = 3, M: int = 32,
                     ef_construction: int = 80, ef_search: int | None = None, threads: int | None = None,
                     device: str | torch.device = "cpu", progress: bool = False) -> Neighbors:
    """Top-k neighbours of every row of X (or of ``queries`` rows): HNSW above ``threshold`` rows, else exact.

    Returns :class:`Neighbors` for the query rows (all rows by default) with
    ``exact`` telling which path ran and ``info`` the index parameters and timings.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if k < 1:
        raise AnnError(f"k must be >= 1, got {k}")
    rows = np.arange(n) if queries is None else np.asarray(queries, np.int64)
    if n < threshold or metric not in STRATEGIES:
        from fingerprinting.scale.neighbors import exact_topk_rows

        t0 = time.perf_counter()
        if queries is None:
            nb = exact_topk(X, metric, k, device=device, progress=progress)
        else:
            nb = exact_topk_rows(X, rows, metric, k, device=device)
        nb.info = {"path": "exact", "reason": "below threshold" if n < threshold else "metric without index",
                   "seconds": time.perf_counter() - t0}
        return nb
    import faiss

    if threads:
        faiss.omp_set_num_threads(int(threads))
    kind, monotone = STRATEGIES[metric]
    P = _prepared(X, metric)
    E = _embedding(P, metric)
    t0 = time.perf_counter()
    index = _build(E, kind, M, ef_construction)
    build_s = time.perf_counter() - t0
    c = (k + 1) * (1 if monotone else oversample)
    index.hnsw.efSearch = max(ef_search or 0, 2 * c, 64)
    t0 = time.perf_counter()
    batch = 65536
    idx = np.full((len(rows), k), -1, np.int64)
    sim = np.full((len(rows), k), np.nan)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), desc=f"ann {metric}", unit="model", leave=False)
    for s in range(0, len(rows), batch):
        r = rows[s : s + batch]
        _, cand = index.search(E[r], c)
        if kind == "ip_abs":  # |cos|: the most negative cosines are the best matches too
            _, neg = index.search(-E[r], c)
            cand = np.concatenate([cand, neg], axis=1)
        idx[s : s + batch], sim[s : s + batch] = rerank(P, r, cand, metric, k)
        if bar is not None:
            bar.update(len(r))
    if bar is not None:
        bar.close()
    nb = Neighbors(idx, sim, exact=False)
    nb.info = {"path": "hnsw", "faiss_metric": kind, "ordering_exact": monotone, "M": M,
               "ef_construction": ef_construction, "ef_search": index.hnsw.efSearch, "candidates": c,
               "build_s": build_s, "search_s": time.perf_counter() - t0}
    return nb


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray, exact_sim: np.ndarray | None = None,
                approx_sim: np.ndarray | None = None, tol: float = 1e-12) -> float:
    """Mean fraction of the exact top-k found. With similarities, a neighbour tied with the exact k-th
    value counts as found (ties at the boundary are interchangeable)."""
    hits = (approx_idx[:, :, None] == exact_idx[:, None, :]) & (exact_idx[:, None, :] >= 0)
    found = hits.any(1).sum(1).astype(np.float64)
    if exact_sim is not None and approx_sim is not None:
        kth = np.nanmin(exact_sim, axis=1)
        tied = ((np.abs(approx_sim - kth[:, None]) <= tol) & ~hits.any(2)).sum(1)
        found = np.minimum(found + tied, (exact_idx >= 0).sum(1))
    total = np.maximum((exact_idx >= 0).sum(1), 1)
    return float(np.mean(found / total))

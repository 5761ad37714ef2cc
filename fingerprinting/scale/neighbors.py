"""Exact top-k neighbours per model by blocks (CPU or CUDA), memory O(N k + tile^2).

Every tile of the upper triangle serves both directions: its rows take their
best columns and its columns their best rows (``torch.topk`` on the device),
and the running top-k of each model is merged on the host. Ties are broken by
the neighbour's key (the row index; callers order rows by model id), like the
``nearest_neighbors`` mart's ``order by similarity desc, neighbor_id``: a tile
whose k-th and (k+1)-th values tie resolves that row exactly by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from fingerprinting.metrics import METRICS


@dataclass
class Neighbors:
    """``idx[i, r]``: row index of row i's (r+1)-th neighbour (-1: none), ``sim`` its similarity."""

    idx: np.ndarray
    sim: np.ndarray
    exact: bool = True
    info: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.idx.shape[1]


def tile_topk(S: torch.Tensor, col_keys: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of every row of a tile (value desc, then key asc); returns host arrays (values, keys)."""
    a, b = S.shape
    kk = min(k, b)
    if b > kk:
        v, j = torch.topk(S, kk + 1, dim=1)
        tie = v[:, kk - 1] == v[:, kk]
        v, j = v[:, :kk], j[:, :kk]
        if bool(tie.any()):
            rows = torch.nonzero(tie).flatten()
            sub = S[rows]
            t = v[rows, kk - 1].unsqueeze(1)
            gt = sub > t
            eq = sub == t
            need = kk - gt.sum(1)
            big = torch.iinfo(torch.int64).max
            score = torch.where(eq, col_keys.unsqueeze(0), torch.full_like(sub, big, dtype=torch.int64))
            smallest = torch.topk(score, kk, dim=1, largest=False).values
            thr = smallest.gather(1, (need - 1).unsqueeze(1))
            sel = gt | (eq & (col_keys.unsqueeze(0) <= thr))
            jj = torch.nonzero(sel)[:, 1].view(len(rows), kk)
            v[rows] = sub.gather(1, jj)
            j[rows] = jj
    else:
        v, j = S, torch.arange(b, device=S.device).expand(a, b)
    return v.cpu().numpy(), col_keys[j].cpu().numpy()


_NONE = np.iinfo(np.int64).max


class TopK:
    """Running top-k of ``n`` rows: candidates merged by (value desc, key asc)."""

    def __init__(self, n: int, k: int):
        self.n, self.k = n, k
        self.vals = np.full((n, k), -np.inf)
        self.keys = np.full((n, k), _NONE, dtype=np.int64)  # no neighbour: sorts after every key

    def update(self, rows: np.ndarray, vals: np.ndarray, keys: np.ndarray) -> None:
        V = np.concatenate([self.vals[rows], vals], axis=1)
        K = np.concatenate([self.keys[rows], keys], axis=1)
        order = np.lexsort((K, -V), axis=1)[:, : self.k]
        self.vals[rows] = np.take_along_axis(V, order, axis=1)
        self.keys[rows] = np.take_along_axis(K, order, axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(idx, sim): ``idx = -1`` and ``sim = nan`` where a row has fewer than k neighbours."""
        ok = np.isfinite(self.vals) & (self.keys != _NONE)
        return np.where(ok, self.keys, -1), np.where(ok, self.vals, np.nan)


def exact_topk(X: np.ndarray, metric: str, k: int, *, tile: int | None = None,
               device: str | torch.device = "cpu", progress: bool = False) -> Neighbors:
    """Exact top-k neighbours of every row of X (self excluded), by tiles of the upper triangle."""
    from fingerprinting.scale.aggregates import sweep

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return sweep(X, metric, k=k, tile=tile, device=device, progress=progress).neighbors


def exact_topk_rows(X: np.ndarray, rows: np.ndarray, metric: str, k: int, *, tile: int | None = None,
                    device: str | torch.device = "cpu") -> Neighbors:
    """Exact top-k neighbours of the given rows only (each against all rows, self excluded)."""
    from fingerprinting.scale.aggregates import sweep_tile

    m = METRICS.get(metric)
    dev = torch.device(device)
    P = m.prepare(torch.as_tensor(np.asarray(X, dtype=np.float64)).to(dev))
    rows = np.asarray(rows, np.int64)
    n = P.shape[0]
    t = tile or sweep_tile(metric, P.shape[1], dev)
    top = TopK(len(rows), k)
    rows_t = torch.as_tensor(rows, device=dev)
    for q0 in range(0, len(rows), t):
        Q = P[rows_t[q0 : q0 + t]]
        for j0 in range(0, n, t):
            S = m.block(Q, P[j0 : j0 + t]).clamp_(m.lower, m.upper)
            local = rows_t[q0 : q0 + t] - j0
            inside = (local >= 0) & (local < S.shape[1])
            if bool(inside.any()):
                S[torch.nonzero(inside).flatten(), local[inside]] = -np.inf
            keys = torch.arange(j0, j0 + S.shape[1], device=dev)
            top.update(np.arange(q0, q0 + len(Q)), *tile_topk(S, keys, k))
    idx, sim = top.result()
    return Neighbors(idx, sim, exact=True)


def brute_force_topk(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference top-k from a full similarity matrix (diagonal ignored), ties by index: for tests/benchmarks."""
    n = S.shape[0]
    S = S.astype(np.float64, copy=True)
    np.fill_diagonal(S, -np.inf)
    cols = np.broadcast_to(np.arange(n), S.shape)
    order = np.lexsort((cols, -S), axis=1)[:, :k]
    vals = np.take_along_axis(S, order, axis=1)
    ok = np.isfinite(vals)
    return np.where(ok, order, -1), np.where(ok, vals, np.nan)

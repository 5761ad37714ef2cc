"""Exact similarity statistics per group pair, accumulated tile by tile (no N^2 storage).

:func:`sweep` walks the upper triangle of the similarity matrix once, in
tiles (:func:`iter_tiles`, the same kernels as
:func:`fingerprinting.metrics.iter_pairwise_blocks`, on the CPU or a GPU), and
feeds each tile to

* a :class:`PairAggregator`: per unordered group pair (family x family) the
  count, mean, M2 (sum of squared deviations), min, max and a histogram sketch;
* a :class:`~fingerprinting.scale.neighbors.TopK` accumulator (exact top-k per model);
* optionally the list of pairs inside a group (intrafamily pairs stay stored).

Models are visited sorted by group, so a tile is a grid of rectangular
sub-blocks, one per (row group, column group); each statistic of a sub-block is
one segmented reduction over the tile (``scatter_reduce`` / ``index_add``),
never a Python loop over elements.

Exactness. In a sub-block, each column's values are shifted by the minimum
``s_j`` of that column within the row group and summed in float64
(``P1_j = sum(x - s_j)``, ``P2_j = sum((x - s_j)^2)``); then
``mean = sum_j (P1_j + n_j s_j) / n`` and
``M2 = sum_j [P2_j + 2 (s_j - mean) P1_j + n_j (s_j - mean)^2]``, every term
bounded by the sub-block's spread, so nothing cancels catastrophically.
Sub-blocks and tiles merge with Chan's parallel formula. Each sum adds at most
``t`` terms in sequence (``t`` = tile size), so its relative error is at most
``~t eps`` (``eps`` = 2.2e-16): for t = 2048 the mean is within ~5e-13 x
mean|x| and the population variance within ~1e-12 x (max - min)^2 of the exact
values, far below the 1e-9 the marts are checked at (measured: <= 7e-16).
Min, max and counts are exact.

Quantile sketch. A fixed histogram of ``bins`` equal bins over the metric's
[lower, upper] range per group pair. An order statistic is estimated inside the
bin that holds it (linear interpolation by rank within the bin) and clamped to
the exact [min, max]; quartiles interpolate between order statistics like
DuckDB's ``quantile_cont``. Error bound: ``|q_est - q| <= (upper - lower) / bins``
(1e-3 for a [0, 1] metric with the default 1,000 bins). Histograms are kept
sparse, as (group pair, bin, count) triples of non-empty bins, merged when the
sweep leaves a group's rows; memory is O(groups^2 + non-empty bins of the
pairs being swept + tile^2), not O(N^2).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from fingerprinting.metrics import METRICS, _default_tile, iter_pairwise_blocks

DEFAULT_BINS = 1000
_DENSE_HIST = 1 << 22  # per-tile (sub-blocks x bins) cells counted densely up to this many
QUANTILES = (0.25, 0.5, 0.75)


# ------------------------------------------------------------------ tiles
def sweep_tile(metric: str, d: int, device: str | torch.device = "cpu") -> int:
    """Tile size of a sweep: 2048 rows at most on the CPU (memory; the JS kernel's own 1024 below that),
    8192 on a GPU (fewer tiles, less host work per pair; the direct JS kernel keeps its small tiles)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return min(_default_tile(metric, d, dev), 2048)
    return _default_tile(metric, d, dev) if metric == "js_divergence" else 8192


def iter_tiles(X: np.ndarray | torch.Tensor, metric: str, *, tile: int | None = None,
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
               ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Upper-triangle tiles ``(row0, col0, block)`` like ``iter_pairwise_blocks``, left on ``device``.

    Same preparation, kernel and clamping as ``iter_pairwise_blocks`` (so the
    same values); the block stays a torch tensor on the device for the reductions.
    """
    m = METRICS.get(metric)
    Xt = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    if Xt.is_complex():  # the complex kernels live in metrics; fingerprints in the lake are real
        for i0, j0, blk in iter_pairwise_blocks(Xt.cpu().numpy(), metric, tile=tile, dtype=dtype):
            yield i0, j0, torch.from_numpy(blk).to(device)
        return
    Xt = m.prepare(Xt.to(dtype).to(device))
    n = Xt.shape[0]
    t = tile or sweep_tile(metric, Xt.shape[1], Xt.device)
    for i0 in range(0, n, t):
        A = Xt[i0 : i0 + t]
        for j0 in range(i0, n, t):
            yield i0, j0, m.block(A, Xt[j0 : j0 + t]).clamp_(m.lower, m.upper)  # kernels return fresh tensors


def n_tiles(n: int, t: int) -> int:
    b = -(-n // t)
    return b * (b + 1) // 2


# ------------------------------------------------------------ statistics
@dataclass
class GroupPairAggregates:
    """Statistics per unordered group pair ``(group_a <= group_b)`` (integer group codes)."""

    group_a: np.ndarray
    group_b: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    quartiles: np.ndarray  # (len, 3): q1, median, q3 from the sketch (NaN without one)
    # sketch of row r: bins sketch_bin[o[r]:o[r+1]] (non-empty, ascending) with counts sketch_count[...],
    # o = sketch_offsets (len + 1); empty arrays without a sketch
    sketch_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    sketch_bin: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    sketch_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lower: float = 0.0
    upper: float = 1.0
    bins: int = DEFAULT_BINS

    @property
    def sketch_bins(self) -> list[np.ndarray]:
        """Per row: its non-empty bins."""
        return np.split(self.sketch_bin, self.sketch_offsets[1:-1]) if len(self.sketch_offsets) > 1 else []

    @property
    def sketch_counts(self) -> list[np.ndarray]:
        """Per row: the counts of its non-empty bins."""
        return np.split(self.sketch_count, self.sketch_offsets[1:-1]) if len(self.sketch_offsets) > 1 else []

    @property
    def variance(self) -> np.ndarray:
        """Population variance (divide by n)."""
        return np.where(self.n > 0, self.m2 / np.maximum(self.n, 1), np.nan)

    @property
    def bin_width(self) -> float:
        return (self.upper - self.lower) / self.bins

    def __len__(self) -> int:
        return len(self.n)

    def as_dict(self) -> dict[tuple[int, int], tuple]:
        """``{(a, b): (min, max, mean, variance, n)}`` for checks."""
        var = self.variance
        return {(int(a), int(b)): (self.min[i], self.max[i], self.mean[i], var[i], int(self.n[i]))
                for i, (a, b) in enumerate(zip(self.group_a, self.group_b, strict=True))}


def combine(n, mean, m2, keys) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge partial (n, mean, M2) that share a key (Chan et al.); returns (unique keys, n, mean, M2)."""
    uk, inv = np.unique(keys, return_inverse=True)
    if len(uk) == len(keys):
        order = np.argsort(keys, kind="stable")
        return uk, n[order], mean[order], m2[order]
    N = np.bincount(inv, weights=n, minlength=len(uk))
    M = np.bincount(inv, weights=n * mean, minlength=len(uk)) / N
    M2 = np.bincount(inv, weights=m2 + n * (mean - M[inv]) ** 2, minlength=len(uk))
    return uk, N.round().astype(np.int64), M, M2


def sparse_quantiles(offsets: np.ndarray, bins: np.ndarray, counts: np.ndarray, lower: float, width: float,
                     mn: np.ndarray, mx: np.ndarray, probs=QUANTILES) -> np.ndarray:
    """``quantile_cont``-style quantiles of sparse histograms (row r: ``bins/counts[offsets[r]:offsets[r+1]]``,
    bins ascending), each order statistic placed inside its bin by rank, clamped to the exact [min, max]."""
    rows = len(offsets) - 1
    out = np.full((rows, len(probs)), np.nan)
    if not len(counts):
        return out
    cum = np.cumsum(counts)
    base = np.where(offsets[:-1] > 0, cum[np.maximum(offsets[:-1] - 1, 0)], 0)
    n = np.where(offsets[1:] > offsets[:-1], cum[np.maximum(offsets[1:] - 1, 0)] - base, 0)
    ok = n > 0

    b0 = base[ok]

    def order_stat(k):  # k-th smallest (0-based) of each row: its bin, then its rank inside the bin
        i = np.searchsorted(cum, b0 + k, side="right")
        h = counts[i]
        r = k - (cum[i] - h - b0)
        return lower + (bins[i] + (r + 0.5) / h) * width

    for c, p in enumerate(probs):
        pos = p * (n[ok] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n[ok] - 1)
        x_lo, x_hi = order_stat(lo), order_stat(hi)
        out[ok, c] = np.clip(x_lo + (pos - lo) * (x_hi - x_lo), mn[ok], mx[ok])
    return out


def hist_quantiles(H: np.ndarray, lower: float, width: float, mn: np.ndarray, mx: np.ndarray,
                   probs=QUANTILES) -> np.ndarray:
    """Quantiles of dense histogram rows (see :func:`sparse_quantiles`)."""
    H = np.asarray(H, dtype=np.int64)
    r, b = np.nonzero(H)
    offsets = np.searchsorted(r, np.arange(H.shape[0] + 1))
    return sparse_quantiles(offsets, b, H[r, b], lower, width, np.asarray(mn), np.asarray(mx), probs)


def _runs(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs of equal values in a 1-D tensor: (start of each run, its value, run index of every element)."""
    change = torch.ones_like(g, dtype=torch.bool)
    change[1:] = g[1:] != g[:-1]
    starts = torch.nonzero(change).flatten()
    idx = torch.cumsum(change.to(torch.int64), 0) - 1
    return starts, g[starts], idx


class PairAggregator:
    """Count, mean, M2, min, max and a histogram per unordered pair of ``n_groups`` groups.

    Feed it tiles (:meth:`add_tile`, groups sorted along both axes) or loose
    pairs (:meth:`add_pairs`); :meth:`release_below` finalises groups whose
    pairs are complete (their sketch triples are merged and their quartiles
    computed); :meth:`result` returns every group pair that received a value.
    Sketches are kept sparse, as (pair, bin, count) triples: memory grows with
    the non-empty bins of the pairs of the groups being swept, not with N^2.
    """

    def __init__(self, n_groups: int, lower: float, upper: float, bins: int = DEFAULT_BINS, sketch: bool = True):
        self.G = int(n_groups)
        self.lower, self.upper, self.bins, self.sketch = float(lower), float(upper), int(bins), sketch
        self.width = (self.upper - self.lower) / self.bins
        size = self.G * (self.G + 1) // 2
        self.n = np.zeros(size, np.int64)
        self.mean = np.zeros(size)
        self.m2 = np.zeros(size)
        self.mn = np.full(size, np.inf)
        self.mx = np.full(size, -np.inf)
        self.q = np.full((size, len(QUANTILES)), np.nan)
        self._starts = self.pair_index(np.arange(self.G), np.arange(self.G))  # index of pair (a, a)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (pair, bin, count) triples
        self._done: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (pairs, offsets, bins, counts)
        self._released_below = 0  # groups below this are final
        self._ws: dict = {}

    # index of the unordered pair (a <= b) in the packed upper triangle
    def pair_index(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.int64)
        b = np.asarray(b, np.int64)
        return a * self.G - a * (a - 1) // 2 + (b - a)

    def _bin(self, v):
        if isinstance(v, torch.Tensor):
            return ((v - self.lower) / self.width).floor_().clamp_(0, self.bins - 1).to(torch.int64)
        return np.clip(np.floor((np.asarray(v) - self.lower) / self.width), 0, self.bins - 1).astype(np.int64)

    def _merge(self, a, b, n, mean, m2, mn, mx) -> None:
        """Chan-merge partial statistics of pairs (a, b) (a <= b) into the totals."""
        keep = n > 0
        a, b, n, mean, m2, mn, mx = (x[keep] for x in (a, b, n, mean, m2, mn, mx))
        if not len(n):
            return
        if a.min() < self._released_below:
            raise RuntimeError(f"group {a.min()} was released before all its pairs arrived")
        p = self.pair_index(a, b)
        up, nb, mb, m2b = combine(n.astype(np.float64), mean, m2, p)
        inv = np.searchsorted(up, p)
        low = np.full(len(up), np.inf)
        high = np.full(len(up), -np.inf)
        np.minimum.at(low, inv, mn)
        np.maximum.at(high, inv, mx)
        na = self.n[up].astype(np.float64)
        nt = na + nb
        delta = mb - self.mean[up]
        self.mean[up] += delta * nb / nt
        self.m2[up] += m2b + delta * delta * na * nb / nt
        self.n[up] += np.round(nb).astype(np.int64)
        np.minimum.at(self.mn, up, low)
        np.maximum.at(self.mx, up, high)

    def _add_sketch(self, p: np.ndarray, bins: np.ndarray, counts: np.ndarray) -> None:
        if len(p):
            self._pending.append((np.asarray(p, np.int64), np.asarray(bins, np.int32), np.asarray(counts, np.int64)))

    def add_pairs(self, ga: np.ndarray, gb: np.ndarray, values: np.ndarray) -> None:
        """Add loose pairs: group codes of both models and the pair's similarity (vectorised)."""
        ga, gb = np.asarray(ga, np.int64), np.asarray(gb, np.int64)
        v = np.asarray(values, np.float64)
        if not len(v):
            return
        a, b = np.minimum(ga, gb), np.maximum(ga, gb)
        p = self.pair_index(a, b)
        up, first, inv = np.unique(p, return_index=True, return_inverse=True)
        n = np.bincount(inv, minlength=len(up)).astype(np.float64)
        mean = np.bincount(inv, weights=v, minlength=len(up)) / n
        m2 = np.bincount(inv, weights=(v - mean[inv]) ** 2, minlength=len(up))
        mn = np.full(len(up), np.inf)
        mx = np.full(len(up), -np.inf)
        np.minimum.at(mn, inv, v)
        np.maximum.at(mx, inv, v)
        self._merge(a[first], b[first], n, mean, m2, mn, mx)
        if self.sketch:
            code, cnt = np.unique(p * self.bins + self._bin(v), return_counts=True)
            self._add_sketch(code // self.bins, code % self.bins, cnt)

    def _workspace(self, a: int, b: int, dev: torch.device, dt: torch.dtype):
        """Reused (a, b) buffers: fresh tile-sized allocations cost more than the arithmetic."""
        key = (a, b, dev, dt)
        ws = self._ws.get(key)
        if ws is None:
            if len(self._ws) >= 4:  # a sweep has at most 3 tile shapes
                self._ws.clear()
            ws = self._ws[key] = (torch.empty(a, b, dtype=dt, device=dev),
                                  torch.empty(a, b, dtype=torch.int64, device=dev) if self.sketch else None)
        return ws

    def add_tile(self, blk: torch.Tensor, row_groups: torch.Tensor, col_groups: torch.Tensor,
                 diagonal: bool) -> None:
        """Add one tile. Groups are non-decreasing along rows and columns; codes >= n_groups are skipped.

        With ``diagonal`` only entries strictly above the diagonal count (a tile on
        the diagonal of the symmetric matrix). Rows are reduced first (contiguous
        and cheap), giving per (row group, column) partials; the columns are then
        reduced on those small arrays. Values are shifted by the per-(row group,
        column) minimum s; with P1 = sum(x - s), P2 = sum((x - s)^2) per column,
        a sub-block's M2 = sum_j [P2 + 2 (s - mean) P1 + cnt (s - mean)^2].
        """
        a, b = blk.shape
        dev, dt = blk.device, blk.dtype
        Y, code = self._workspace(a, b, dev, dt)
        _, rgrp, ridx = _runs(row_groups)
        _, cgrp, cidx = _runs(col_groups)
        R, C = len(rgrp), len(cgrp)
        rexp = ridx.unsqueeze(1).expand(a, b)
        inf = math.inf
        if diagonal:
            low = torch.ones(a, b, dtype=torch.bool, device=dev).tril_()  # masked: on or below the diagonal
            Y.copy_(blk).masked_fill_(low, inf)
            rmin = torch.full((R, b), inf, dtype=dt, device=dev).scatter_reduce_(0, rexp, Y, "amin")
            Y.copy_(blk).masked_fill_(low, -inf)
            rmax = torch.full((R, b), -inf, dtype=dt, device=dev).scatter_reduce_(0, rexp, Y, "amax")
            cnt = torch.zeros(R, b, dtype=dt, device=dev).index_add_(0, ridx, (~low).to(dt))
        else:
            low = None
            rmin = torch.full((R, b), inf, dtype=dt, device=dev).scatter_reduce_(0, rexp, blk, "amin")
            rmax = torch.full((R, b), -inf, dtype=dt, device=dev).scatter_reduce_(0, rexp, blk, "amax")
            cnt = torch.bincount(ridx, minlength=R).to(dt).unsqueeze(1).expand(R, b)
        shift = torch.where(torch.isfinite(rmin), rmin, torch.zeros_like(rmin))
        torch.index_select(shift, 0, ridx, out=Y)
        torch.sub(blk, Y, out=Y)
        if low is not None:
            Y.masked_fill_(low, 0.0)
        p1 = torch.zeros(R, b, dtype=dt, device=dev).index_add_(0, ridx, Y)
        p2 = torch.zeros(R, b, dtype=dt, device=dev).index_add_(0, ridx, Y.mul_(Y))
        hist = None
        if self.sketch:
            # code = sub-block * bins + bin, in float then floored (inv slightly shrunk so x = upper stays in the top bin)
            inv = (1.0 - 2.0**-30) / self.width
            torch.mul(blk, inv, out=Y)
            Y.add_((ridx * (C * self.bins)).to(dt).sub_(self.lower * inv).unsqueeze(1))
            Y.add_((cidx * self.bins).to(dt).unsqueeze(0))
            Y.floor_()
            code.copy_(Y)
            total = R * C * self.bins
            if low is not None:
                code.masked_fill_(low, total)
            if total <= _DENSE_HIST:  # few sub-blocks: one bincount, then its non-empty cells
                h = torch.bincount(code.view(-1), minlength=total + 1)[:total]
                cells = torch.nonzero(h).flatten()
                hist = (cells.cpu().numpy(), h[cells].cpu().numpy())
            else:  # many small groups: sort-based, no R x C x bins array
                cells, cell_n = torch.unique(code.view(-1), return_counts=True)
                keep = cells < total
                hist = (cells[keep].cpu().numpy(), cell_n[keep].cpu().numpy())

        def cols(M, how="sum"):  # (R, b) -> (R, C) over column runs
            if how == "sum":
                return torch.zeros(R, C, dtype=dt, device=dev).index_add_(1, cidx, M)
            fill = inf if how == "amin" else -inf
            return torch.full((R, C), fill, dtype=dt, device=dev).scatter_reduce_(
                1, cidx.unsqueeze(0).expand(R, b), M, how)

        n = cols(cnt)
        mean = cols(p1 + cnt * shift) / n.clamp_min(1.0)
        dev_s = shift - mean.index_select(1, cidx)
        m2 = cols(p2 + 2.0 * dev_s * p1 + cnt * dev_s * dev_s).clamp_min_(0.0)
        mn, mx = cols(rmin, "amin"), cols(rmax, "amax")
        n, mean, m2, mn, mx = (x.cpu().numpy().ravel() for x in (n, mean, m2, mn, mx))
        rg, cg = rgrp.cpu().numpy(), cgrp.cpu().numpy()
        ga = np.repeat(rg, C)
        gb = np.tile(cg, R)
        n = np.where((ga < self.G) & (gb < self.G), n, 0.0)
        self._merge(np.minimum(ga, gb), np.maximum(ga, gb), n, mean, m2, mn, mx)
        if hist is not None:
            cells, cnt = hist
            sub, bin_ = cells // self.bins, cells % self.bins
            ha, hb = rg[sub // C], cg[sub % C]
            ok = (ha < self.G) & (hb < self.G)
            self._add_sketch(self.pair_index(np.minimum(ha, hb)[ok], np.maximum(ha, hb)[ok]), bin_[ok], cnt[ok])

    def release_below(self, g: int) -> None:
        """Groups ``< g`` have all their pairs: merge their sketch triples, compute their quartiles."""
        g = min(int(g), self.G)
        if g <= self._released_below:
            return
        self._released_below = g
        if not self._pending:
            return
        p = np.concatenate([t[0] for t in self._pending])
        b = np.concatenate([t[1] for t in self._pending])
        c = np.concatenate([t[2] for t in self._pending])
        a = np.searchsorted(self._starts, p, side="right") - 1
        done = a < g
        self._pending = [(p[~done], b[~done], c[~done])] if (~done).any() else []
        p, b, c = p[done], b[done], c[done]
        if not len(p):
            return
        code, inv = np.unique(p * self.bins + b, return_inverse=True)
        cnt = np.bincount(inv, weights=c, minlength=len(code)).round().astype(np.int64)
        pairs, first = np.unique(code // self.bins, return_index=True)
        offsets = np.append(first, len(code)).astype(np.int64)
        bins = (code % self.bins).astype(np.int32)
        self.q[pairs] = sparse_quantiles(offsets, bins, cnt, self.lower, self.width, self.mn[pairs], self.mx[pairs])
        self._done.append((pairs, offsets, bins, cnt))

    def result(self) -> GroupPairAggregates:
        """Every group pair with at least one value (finalises all remaining sketches)."""
        self.release_below(self.G)
        p = np.flatnonzero(self.n > 0)
        a = np.searchsorted(self._starts, p, side="right") - 1
        b = p - self._starts[a] + a
        offsets = np.zeros(len(p) + 1, np.int64)
        bins, counts = np.zeros(0, np.int32), np.zeros(0, np.int64)
        if self.sketch and self._done:
            pairs = np.concatenate([d[0] for d in self._done])  # released in increasing group order: sorted
            lengths = np.concatenate([np.diff(d[1]) for d in self._done])
            bins = np.concatenate([d[2] for d in self._done])
            counts = np.concatenate([d[3] for d in self._done])
            pos = np.searchsorted(pairs, p)
            has = (pos < len(pairs)) & (pairs[np.minimum(pos, len(pairs) - 1)] == p)
            if not has.all() or len(pairs) != len(p):
                raise RuntimeError("sketches out of step with the statistics")
            offsets[1:] = np.cumsum(lengths)
        return GroupPairAggregates(a, b, self.n[p], self.mean[p], self.m2[p], self.mn[p], self.mx[p], self.q[p],
                                   offsets, bins, counts, self.lower, self.upper, self.bins)


# ------------------------------------------------------------------ sweep
@dataclass
class SweepResult:
    """What one pass over all pairs produced (indices refer to the rows of the input X)."""

    n: int
    aggregates: GroupPairAggregates | None = None
    neighbors: object | None = None  # fingerprinting.scale.neighbors.Neighbors
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (i, j, similarity), i < j
    tiles: int = 0


def sweep(X: np.ndarray, metric: str, *, groups: np.ndarray | None = None, n_groups: int | None = None,
          k: int = 0, pairs: str = "none", tile: int | None = None, device: str | torch.device = "cpu",
          bins: int = DEFAULT_BINS, sketch: bool = True, progress: bool = False) -> SweepResult:
    """One pass over every pair of rows of X: group-pair statistics, top-k neighbours, stored pairs.

    ``groups``: an integer group per row (``-1``: in no group; such rows still get
    neighbours). Statistics need ``groups``. ``pairs``: ``"none"``, ``"all"``
    (every pair) or ``"intra"`` (pairs inside a group). ``k``: neighbours per row
    (0 = none), ties broken by row index (callers order rows by model id). Peak
    memory: O(N k + tile^2 + groups^2), never O(N^2).
    """
    from fingerprinting.scale.neighbors import Neighbors, TopK, tile_topk

    if pairs not in ("none", "all", "intra"):
        raise ValueError(f"pairs must be 'none', 'all' or 'intra', got {pairs!r}")
    X = np.asarray(X)
    n = X.shape[0]
    dev = torch.device(device)
    m = METRICS.get(metric)
    if groups is not None:
        groups = np.asarray(groups, np.int64)
        G = int(n_groups if n_groups is not None else (groups.max() + 1 if n else 0))
        g_sorted_key = np.where(groups < 0, G, groups)
        perm = np.argsort(g_sorted_key, kind="stable")
        gp = g_sorted_key[perm]
    else:
        if pairs == "intra":
            raise ValueError("pairs='intra' needs groups")
        G, perm, gp = 0, np.arange(n), None
    Xp = X[perm] if groups is not None else X
    agg = PairAggregator(G, m.lower, m.upper, bins, sketch) if groups is not None else None
    topk = TopK(n, k) if k > 0 else None
    keys_t = torch.as_tensor(perm, dtype=torch.int64, device=dev)
    g_t = torch.as_tensor(gp, device=dev) if gp is not None else None
    pi, pj, pv = [], [], []
    t = tile or sweep_tile(metric, X.shape[1] if X.ndim == 2 else 1, dev)
    total = n_tiles(n, t)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"pairs {metric}", unit="tile", leave=False)
    count = 0
    tbuf = None  # reused buffer for the transposed tile
    for i0, j0, blk in iter_tiles(Xp, metric, tile=t, device=dev):
        a, b = blk.shape
        diag = i0 == j0
        if agg is not None:
            agg.add_tile(blk, g_t[i0 : i0 + a], g_t[j0 : j0 + b], diag)
        if topk is not None:
            if diag:
                upper = torch.ones(a, b, dtype=torch.bool, device=dev).triu_(1)
                S = torch.where(upper, blk, blk.T)
                S.fill_diagonal_(-math.inf)
                topk.update(perm[i0 : i0 + a], *tile_topk(S, keys_t[j0 : j0 + b], k))
            else:
                topk.update(perm[i0 : i0 + a], *tile_topk(blk, keys_t[j0 : j0 + b], k))
                if tbuf is None or tbuf.shape != (b, a):
                    tbuf = torch.empty(b, a, dtype=blk.dtype, device=dev)
                topk.update(perm[j0 : j0 + b], *tile_topk(tbuf.copy_(blk.T), keys_t[i0 : i0 + a], k))
        if pairs != "none":
            _collect_pairs(blk, i0, j0, diag, pairs, gp, G, perm, pi, pj, pv)
        del blk
        count += 1
        if bar is not None:
            bar.update(1)
        if agg is not None and j0 + t >= n:  # the last tile of a row block: its groups are complete
            nxt = i0 + t
            agg.release_below(int(gp[nxt]) if nxt < n else G + 1)
    if bar is not None:
        bar.close()
    res = SweepResult(n, tiles=count)
    if agg is not None:
        res.aggregates = agg.result()
    if topk is not None:
        idx, sim = topk.result()
        res.neighbors = Neighbors(idx, sim, exact=True)
    if pairs != "none":
        if pi:
            i, j, v = np.concatenate(pi), np.concatenate(pj), np.concatenate(pv)
        else:
            i, j, v = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        res.pairs = (i, j, v)
    return res


def _collect_pairs(blk, i0, j0, diag, mode, gp, G, perm, pi, pj, pv) -> None:
    """Append the tile's stored pairs (original row indices, lower index first)."""
    a, b = blk.shape
    if mode == "all":
        B = blk.cpu().numpy()
        if diag:
            ii, jj = np.triu_indices(a, 1, b)
            vals = B[ii, jj]
        else:
            ii = np.repeat(np.arange(a), b)
            jj = np.tile(np.arange(b), a)
            vals = B.ravel()
        _append(perm[ii + i0], perm[jj + j0], vals, pi, pj, pv)
        return
    rg, cg = gp[i0 : i0 + a], gp[j0 : j0 + b]
    if rg[-1] < cg[0]:  # sorted groups: no row group meets a column group in this tile
        return
    for g in np.intersect1d(rg, cg):
        if g >= G:
            continue
        r0, r1 = np.searchsorted(rg, g), np.searchsorted(rg, g, side="right")
        c0, c1 = np.searchsorted(cg, g), np.searchsorted(cg, g, side="right")
        sub = blk[r0:r1, c0:c1].cpu().numpy()
        rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
        keep = (cc + j0 > rr + i0) if diag else np.ones(sub.shape, bool)
        _append(perm[rr[keep] + i0], perm[cc[keep] + j0], sub[keep], pi, pj, pv)


def _append(i, j, v, pi, pj, pv) -> None:
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    pi.append(lo)
    pj.append(hi)
    pv.append(np.asarray(v, np.float64))

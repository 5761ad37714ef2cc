"""Similarity metrics between fingerprint vectors (higher = more similar).

Each metric has two implementations behind one registry entry:

* ``pair(a, b)``: the definition, on two 1-D numpy vectors (complex allowed
  where the metric says so). Used for single comparisons and as the reference.
* ``block(A, B)``: a vectorised torch kernel returning the ``len(A) x len(B)``
  matrix; :func:`iter_pairwise_blocks` walks the upper triangle in tiles so
  memory stays bounded for tens of thousands of fingerprints.

Vectors of different lengths are left-padded with zeros: fingerprints are
stored in ascending order, so the missing entries are the smallest ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fingerprinting.plugins import Registry

_EPS = 1e-12


@dataclass(frozen=True)
class Metric:
    name: str
    pair: Callable[[np.ndarray, np.ndarray], float]
    block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    prepare: Callable[[torch.Tensor], torch.Tensor]
    lower: float
    upper: float
    supports_complex: bool = False
    description: str = ""


METRICS: Registry[Metric] = Registry("similarity metric")


def _metric(name, *, lower, upper, supports_complex=False, description="", prepare=None):
    def deco(cls_pair):
        pair_fn, block_fn = cls_pair
        m = Metric(
            name,
            pair_fn,
            block_fn,
            prepare or (lambda x: x),
            lower,
            upper,
            supports_complex,
            description,
        )
        METRICS.register(name, lower=lower, upper=upper, higher_is_better=True,
                         supports_complex=supports_complex, description=description)(m)
        return m

    return deco


def pad_left(a: np.ndarray, length: int) -> np.ndarray:
    a = np.asarray(a)
    if a.shape[0] >= length:
        return a
    return np.concatenate([np.zeros(length - a.shape[0], dtype=a.dtype), a])


def _align(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("fingerprints must be 1-D vectors")
    n = max(a.shape[0], b.shape[0])
    a, b = pad_left(a, n), pad_left(b, n)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("fingerprint contains NaN or infinite values")
    return a, b


# --------------------------------------------------------------------- l1
def _l1_pair(a, b):
    a, b = _align(a, b)
    a = np.real_if_close(a)
    b = np.real_if_close(b)
    sa = a[np.argsort(np.abs(a), kind="stable")]
    sb = b[np.argsort(np.abs(b), kind="stable")]
    denom = np.abs(a).sum() + np.abs(b).sum()
    if denom == 0:
        return 1.0
    return float(1.0 - np.abs(sa - sb).sum() / denom)


def _l1_prepare(x):
    idx = torch.argsort(x.abs(), dim=1, stable=True)
    return torch.gather(x, 1, idx)


def _l1_block(A, B):
    num = torch.cdist(A.unsqueeze(0), B.unsqueeze(0), p=1).squeeze(0)
    den = A.abs().sum(1, keepdim=True) + B.abs().sum(1).unsqueeze(0)
    return torch.where(den > 0, 1.0 - num / den.clamp_min(_EPS), torch.ones_like(num))


_metric("l1", lower=0.0, upper=1.0, prepare=_l1_prepare,
        description="1 - sum|a_(i)-b_(i)| / (sum|a|+sum|b|), each vector sorted by |value|")((_l1_pair, _l1_block))


# ----------------------------------------------------------------- cosine
def _cos_pair(a, b):
    a, b = _align(a, b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        return float(np.abs(np.vdot(a, b)) / (na * nb))
    return float(np.dot(a, b) / (na * nb))


def _cos_block(A, B):
    An = A / A.norm(dim=1, keepdim=True).clamp_min(_EPS)
    Bn = B / B.norm(dim=1, keepdim=True).clamp_min(_EPS)
    return An @ Bn.T


_metric("cosine", lower=-1.0, upper=1.0,
        description="a.b / (|a||b|); complex input uses |vdot|")((_cos_pair, _cos_block))


def _ccos_pair(a, b):
    a, b = _align(a, b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(np.abs(np.vdot(a, b)) / (na * nb))


def _ccos_block(A, B):
    return _cos_block(A, B).abs()


_metric("complex_cosine", lower=0.0, upper=1.0, supports_complex=True,
        description="|vdot(a, b)| / (|a||b|)")((_ccos_pair, _ccos_block))


# -------------------------------------------------------------- euclidean
def _euc_pair(a, b):
    a, b = _align(a, b)
    den = np.linalg.norm(a) + np.linalg.norm(b)
    if den == 0:
        return 1.0
    return float(1.0 - np.linalg.norm(a - b) / den)


def _euc_block(A, B):
    num = torch.cdist(A.unsqueeze(0), B.unsqueeze(0), p=2).squeeze(0)
    den = A.norm(dim=1, keepdim=True) + B.norm(dim=1).unsqueeze(0)
    return torch.where(den > 0, 1.0 - num / den.clamp_min(_EPS), torch.ones_like(num))


_metric("euclidean", lower=0.0, upper=1.0,
        description="1 - |a-b|_2 / (|a|_2 + |b|_2)")((_euc_pair, _euc_block))


# ----------------------------------------------------------------- js
def _to_dist(v):
    v = np.abs(v).astype(np.float64)
    s = v.sum()
    return v / s if s > 0 else np.full_like(v, 1.0 / len(v))


def _js_pair(a, b):
    a, b = _align(a, b)
    p, q = _to_dist(a), _to_dist(b)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    js = max(0.5 * (kl_p + kl_q), 0.0)
    return float(1.0 - math.sqrt(js))


def _dist_prepare(x):
    x = x.abs()
    s = x.sum(1, keepdim=True)
    return torch.where(s > 0, x / s.clamp_min(_EPS), torch.full_like(x, 1.0 / x.shape[1]))


def _xlogx_over(p, m):
    return torch.where(p > 0, p * torch.log(p / m.clamp_min(1e-300)), torch.zeros_like(p))


def _js_block_torch(P, Q):
    # Direct form on (a, 1, d) against (1, b, d): used off the CPU, where the
    # numpy kernel below does not apply. Callers keep tiles small enough.
    p = P.unsqueeze(1)
    q = Q.unsqueeze(0)
    m = 0.5 * (p + q)
    js = 0.5 * (_xlogx_over(p, m).sum(-1) + _xlogx_over(q, m).sum(-1))
    return 1.0 - js.clamp_min(0).sqrt()


# All-pairs JS on the CPU. With m = (p + q) / 2 and s = p + q,
#   JS(p, q) = (sum p log p + sum q log q) / 2 - sum m log m
#            = (H_p + H_q) / 2 - (sum_k s_k log s_k) / 2 + ln 2 (sum p + sum q) / 2,
# so per pair only the cross term sum_k s_k log s_k needs logarithms
# (N^2 d / 2 of them for the upper triangle); the row terms are computed once
# per tile. The cross term runs feature by feature on (rows x cols) float64
# buffers with numpy's SIMD log, split over row chunks on a thread pool
# (numpy releases the GIL), as many threads as torch.get_num_threads().
# The entropy form cancels: its absolute error is ~1e-15 in JS, which sqrt
# turns into ~1e-15 / (2 sqrt(JS)) in the distance. Pairs with JS below
# _JS_EXACT_BELOW (near-duplicates, the diagonal) are therefore recomputed with
# the direct p log(p/m) form of the reference, so every value stays within
# ~1e-13 of the per-pair definition.
_JS_EXACT_BELOW = 1e-4
_JS_ROW_CHUNK = 64
_js_pool = None
_js_pool_size = 0


def _js_threads():
    global _js_pool, _js_pool_size
    n = max(1, torch.get_num_threads())
    if n == 1:
        return None
    if _js_pool is None or _js_pool_size != n:
        from concurrent.futures import ThreadPoolExecutor

        if _js_pool is not None:
            _js_pool.shutdown(wait=True)
        _js_pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="js-kernel")
        _js_pool_size = n
    return _js_pool


def _js_cross_term(Pt, Qt, out):
    """out[i, j] = sum_k s log s with s = Pt[k, i] + Qt[k, j] (0 log 0 = 0)."""
    a, b = out.shape
    S = np.empty((a, b))
    L = np.empty((a, b))
    out.fill(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(Pt.shape[0]):
            pk, qk = Pt[k], Qt[k]
            np.add(pk[:, None], qk[None, :], out=S)
            np.log(S, out=L)
            zp = np.flatnonzero(pk == 0.0)
            if zp.size:
                zq = np.flatnonzero(qk == 0.0)
                if zq.size:  # s = 0 exactly where both are 0: log -> -inf, 0 * -inf -> nan
                    L[np.ix_(zp, zq)] = 0.0
            np.multiply(S, L, out=L)
            np.add(out, L, out=out)
    return out


def _js_direct_rows(p, q):
    """JS of row pairs (p[r], q[r]) with the reference's direct form."""
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum(-1)
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum(-1)
    return np.maximum(0.5 * (kl_p + kl_q), 0.0)


def _js_block(P, Q):
    if P.device.type != "cpu":
        return _js_block_torch(P, Q)
    p = np.ascontiguousarray(P.detach().to(torch.float64).numpy())
    q = np.ascontiguousarray(Q.detach().to(torch.float64).numpy())
    a, b = p.shape[0], q.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        hp = np.where(p > 0, p * np.log(p), 0.0).sum(1)
        hq = np.where(q > 0, q * np.log(q), 0.0).sum(1)
    Pt, Qt = np.ascontiguousarray(p.T), np.ascontiguousarray(q.T)
    cross = np.empty((a, b))
    pool = _js_threads()
    chunks = range(0, a, _JS_ROW_CHUNK)
    if pool is None or a <= _JS_ROW_CHUNK:
        for i in chunks:
            _js_cross_term(Pt[:, i : i + _JS_ROW_CHUNK], Qt, cross[i : i + _JS_ROW_CHUNK])
    else:
        futs = [pool.submit(_js_cross_term, Pt[:, i : i + _JS_ROW_CHUNK], Qt, cross[i : i + _JS_ROW_CHUNK])
                for i in chunks]
        for f in futs:
            f.result()
    # js = (hp + hq - cross + ln2 (sum p + sum q)) / 2, built in place on `cross`
    rp = hp + math.log(2.0) * p.sum(1)
    rq = hq + math.log(2.0) * q.sum(1)
    np.subtract(rp[:, None], cross, out=cross)
    cross += rq[None, :]
    cross *= 0.5
    js = cross
    ii, jj = np.nonzero(js < _JS_EXACT_BELOW)
    if ii.size:
        js[ii, jj] = _js_direct_rows(p[ii], q[jj])
    np.maximum(js, 0.0, out=js)
    np.sqrt(js, out=js)
    np.subtract(1.0, js, out=js)
    return torch.from_numpy(js).to(P.dtype)


_metric("js_divergence", lower=0.0, upper=1.0, prepare=_dist_prepare,
        description="1 - Jensen-Shannon distance (natural log) of |v|/sum|v|")((_js_pair, _js_block))


# ------------------------------------------------------------ correlation
def _corr_pair(a, b):
    a, b = _align(a, b)
    a = np.real(a).astype(np.float64)
    b = np.real(b).astype(np.float64)
    ac, bc = a - a.mean(), b - b.mean()
    den = np.linalg.norm(ac) * np.linalg.norm(bc)
    if den == 0:
        return 0.0
    return float(np.dot(ac, bc) / den)


def _corr_prepare(x):
    return x - x.mean(1, keepdim=True)


_metric("correlation", lower=-1.0, upper=1.0, prepare=_corr_prepare,
        description="Pearson correlation")((_corr_pair, _cos_block))


# ------------------------------------------------------------ wasserstein
def _was_pair(a, b):
    a, b = _align(a, b)
    d = len(a)
    if d < 2:
        return 1.0
    ca, cb = np.cumsum(_to_dist(a)), np.cumsum(_to_dist(b))
    return float(1.0 - np.abs(ca - cb).sum() / (d - 1))


def _was_prepare(x):
    return torch.cumsum(_dist_prepare(x), dim=1)


def _was_block(A, B):
    d = A.shape[1]
    if d < 2:
        return torch.ones(A.shape[0], B.shape[0], dtype=A.dtype, device=A.device)
    return 1.0 - torch.cdist(A.unsqueeze(0), B.unsqueeze(0), p=1).squeeze(0) / (d - 1)


_metric("wasserstein", lower=0.0, upper=1.0, prepare=_was_prepare,
        description="1 - sum|CDF_a - CDF_b| / (d-1) over |v|/sum|v|")((_was_pair, _was_block))


# ------------------------------------------------------------- public API
def similarity(a, b, metric: str) -> float:
    """Similarity of two fingerprints under ``metric`` (reference definition)."""
    m = METRICS.get(metric)
    if (np.iscomplexobj(a) or np.iscomplexobj(b)) and not m.supports_complex and metric != "cosine":
        a, b = np.abs(a), np.abs(b)
    return m.pair(np.asarray(a), np.asarray(b))


def stack_fingerprints(vectors: list[np.ndarray]) -> np.ndarray:
    """Left-pad a list of 1-D vectors to a common length and stack them."""
    if not vectors:
        return np.zeros((0, 0))
    n = max(len(v) for v in vectors)
    out = np.stack([pad_left(np.asarray(v, dtype=np.float64), n) for v in vectors])
    if not np.all(np.isfinite(out)):
        bad = [i for i, v in enumerate(vectors) if not np.all(np.isfinite(v))]
        raise ValueError(f"fingerprints at positions {bad} contain NaN or infinite values")
    return out


def _default_tile(metric: str, d: int, device="cpu") -> int:
    if metric == "js_divergence":
        # CPU kernel: memory is the tile itself plus 64-row buffers; the torch
        # fallback (other devices) holds a*b*d intermediates, four of them
        return 1024 if str(device).startswith("cpu") else max(16, int(math.sqrt(8_000_000 / max(d, 1))))
    return 4096


def iter_pairwise_blocks(
    X: np.ndarray | torch.Tensor,
    metric: str,
    *,
    tile: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    upper_only: bool = True,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(row0, col0, block)`` tiles of the similarity matrix of the rows of X.

    With ``upper_only`` only tiles with ``col0 >= row0`` are produced (the
    matrix is symmetric). Peak memory is O(tile^2), independent of N.
    """
    m = METRICS.get(metric)
    Xt = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    if Xt.is_complex() and metric not in ("cosine", "complex_cosine"):
        Xt = Xt.abs()
    if not Xt.is_complex():
        Xt = Xt.to(dtype)
    Xt = m.prepare(Xt.to(device))
    n = Xt.shape[0]
    t = tile or _default_tile(metric, Xt.shape[1], Xt.device)
    for i0 in range(0, n, t):
        A = Xt[i0 : i0 + t]
        for j0 in range(i0 if upper_only else 0, n, t):
            B = Xt[j0 : j0 + t]
            if Xt.is_complex():
                blk = (A.conj() @ B.T).abs() / (
                    A.abs().pow(2).sum(1, keepdim=True).sqrt() * B.abs().pow(2).sum(1).sqrt().unsqueeze(0)
                ).clamp_min(_EPS)
            else:
                blk = m.block(A, B)
            yield i0, j0, blk.clamp(m.lower, m.upper).cpu().numpy()


def pairwise_matrix(X, metric: str, **kw) -> np.ndarray:
    """Full symmetric ``N x N`` similarity matrix (diagonal = self-similarity)."""
    X = np.asarray(X)
    n = X.shape[0]
    out = np.empty((n, n), dtype=np.float64)
    for i0, j0, blk in iter_pairwise_blocks(X, metric, **kw):
        a, b = blk.shape
        out[i0 : i0 + a, j0 : j0 + b] = blk
        out[j0 : j0 + b, i0 : i0 + a] = blk.T
    return out


def pairwise_pairs(X, metric: str, **kw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle pairs ``(i, j, similarity)`` with ``i < j``, streamed tile by tile."""
    rows, cols, vals = [], [], []
    for i0, j0, blk in iter_pairwise_blocks(X, metric, **kw):
        a, b = blk.shape
        ii, jj = np.meshgrid(np.arange(i0, i0 + a), np.arange(j0, j0 + b), indexing="ij")
        keep = jj > ii
        rows.append(ii[keep])
        cols.append(jj[keep])
        vals.append(blk[keep])
    if not rows:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)

"""Vectorised, blocked Gower distances over config feature rows.

Gower distance of rows i, j = weighted mean over the features compared (both
values present) of a per-feature distance in [0, 1]:

* numeric, ``variant="standard"``: ``|x - y| / range(feature)``, the range taken
  over the population (a feature with range 0 contributes 0);
* numeric, ``variant="max"`` (the source notebook's): ``|x - y| / max(|x|, |y|)``,
  0 when both are 0;
* categorical and boolean: 0 when equal, 1 otherwise.

A pair with no compared feature has distance NaN (and is never a neighbour).

How it is fast: the data is processed per feature over tiles of
``block_rows x block_cols`` pairs, so every step is one numpy ufunc over a
cache-sized tile. The weight of compared features and all low-cardinality
categorical mismatches come from two small matrix products of presence and
one-hot indicators; the categorical mismatch is "compared weight minus
matched weight". The wide model_type column is compared as float codes,
``min(|a - b|, 1)``, with a missing code -1 on the left and -2 on the right so
it never matches. Numeric values are pre-shifted and pre-scaled by
``weight / range`` so the standard variant costs subtract, abs, add per
feature; missing values are 0 there and the wrong ``|0 - y|`` terms are taken
back by the same matrix product (``-[M_a, V_a] @ [V_b, M_b].T``). Tiles are spread over threads (numpy releases the GIL).

Top-k keeps a running (k smallest) list per row; columns are visited in
increasing order, so a later candidate must be strictly smaller than the
current k-th distance to enter, which gives the deterministic tie-break
"smaller index first" without sorting whole rows. Config populations are full
of exact duplicates (fine-tunes keep their parent's config), so by default
top-k runs over the unique feature vectors only and expands the answer back
to rows (:func:`duplicate_groups`, ``dedup=True``): about (U / n)^2 of the work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fingerprinting.configs.features import FEATURE_KINDS, FEATURES

VARIANTS = ("standard", "max")

# Feature groups of the "notebook_groups" preset. Each group has total weight 1,
# shared equally by its features, so that e.g. ten capacity sizes do not drown
# out the one model_type: a pair differing in every feature of one group (and
# agreeing elsewhere) is at distance 1/4 when all four groups are compared.
WEIGHT_GROUPS: dict[str, list[str]] = {
    # what kind of network it is: family and positional encoding
    "architecture": ["model_type", "rope_scaling_type", "rope_theta"],
    # how big it is
    "capacity": [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
        "num_key_value_heads",
        "head_dim",
        "approx_params",
        "num_experts",
    ],  # fmt: skip
    # how the weights are stored
    "precision": ["torch_dtype", "uses_quantization"],
    # design switches
    "flags": ["uses_moe", "uses_gqa", "uses_rope"],
}

WEIGHT_PRESETS: dict[str, dict[str, float]] = {
    "notebook_groups": {
        feat: 1.0 / len(members) for members in WEIGHT_GROUPS.values() for feat in members
    },
}

# Categorical features with at most this many codes go through the one-hot
# matrix product; wider ones (model_type: ~800) are compared code by code.
_ONEHOT_MAX = 64


def _n_jobs(n_jobs: int | None) -> int:
    if n_jobs is not None:
        return max(1, int(n_jobs))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class FeatureMatrix:
    """Encoded feature rows.

    ``num``: (n, p_num) float64, NaN = missing. ``cat``: (n, p_cat) int32 codes,
    -1 = missing; booleans are codes 0 (False) / 1 (True) with kind "boolean".
    ``mins`` / ``ranges``: per numeric feature over this population (NaN when
    no value is present). ``vocab``: per categorical feature, value of each code.
    """

    num: np.ndarray
    cat: np.ndarray
    num_names: list[str]
    cat_names: list[str]
    kinds: dict[str, str]
    mins: np.ndarray
    ranges: np.ndarray
    vocab: list[list[Any]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.num.shape[0])

    @property
    def names(self) -> list[str]:
        return self.num_names + self.cat_names

    def take(self, idx: np.ndarray | Sequence[int]) -> FeatureMatrix:
        """Rows ``idx``, keeping this population's codes, mins and ranges."""
        idx = np.asarray(idx)
        return FeatureMatrix(
            self.num[idx], self.cat[idx], self.num_names, self.cat_names, self.kinds,
            self.mins, self.ranges, self.vocab,
        )  # fmt: skip


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def encode(
    rows: Sequence[dict],
    features: Sequence[str] = FEATURES,
    *,
    reference: FeatureMatrix | None = None,
) -> FeatureMatrix:
    """Encode feature dicts (as :func:`~fingerprinting.configs.features.extract_features`
    returns) into a :class:`FeatureMatrix`.

    With ``reference``, categorical codes reuse the reference's vocabulary (new
    values get new codes), so the two can be compared with :func:`gower_matrix`
    (which takes numeric ranges over both populations).
    Values of the wrong type (a string where a number belongs) count as missing.
    """
    columns = {f: [r.get(f) for r in rows] for f in features}
    return encode_columns(columns, features, reference=reference, n=len(rows))


def encode_columns(
    columns: dict[str, Sequence | np.ndarray],
    features: Sequence[str] = FEATURES,
    *,
    reference: FeatureMatrix | None = None,
    n: int | None = None,
) -> FeatureMatrix:
    """Like :func:`encode` but from one sequence (or array) per feature; avoids a dict per row."""
    kinds = {f: FEATURE_KINDS.get(f, "categorical") for f in features}
    if n is None:
        n = len(next(iter(columns.values()))) if columns else 0
    num_names = [f for f in features if kinds[f] == "numeric"]
    cat_names = [f for f in features if kinds[f] != "numeric"]
    num = np.full((n, len(num_names)), np.nan)
    for j, f in enumerate(num_names):
        col = columns.get(f)
        if col is None:
            continue
        if isinstance(col, np.ndarray) and col.dtype.kind in "fiu":
            num[:, j] = col.astype(np.float64)
        else:
            num[:, j] = [float(v) if _is_number(v) else np.nan for v in col]
    cat = np.full((n, len(cat_names)), -1, dtype=np.int32)
    vocab: list[list[Any]] = []
    for j, f in enumerate(cat_names):
        col = columns.get(f)
        if kinds[f] == "boolean":
            vocab.append([False, True])
            if col is not None:
                if isinstance(col, np.ndarray) and col.dtype == bool:
                    cat[:, j] = col
                else:
                    cat[:, j] = [
                        (1 if v else 0) if isinstance(v, bool | np.bool_) else -1 for v in col
                    ]
            continue
        values = list(reference.vocab[reference.cat_names.index(f)]) if reference else []
        index = {v: i for i, v in enumerate(values)}
        if col is not None:
            arr = np.asarray(col, dtype=object)
            present = np.array([v is not None for v in arr], dtype=bool)
            if present.any():
                uniq, inv = np.unique(arr[present].astype(str), return_inverse=True)
                for v in uniq:  # sorted: deterministic codes for a fresh population
                    if v not in index:
                        index[v] = len(values)
                        values.append(v)
                map_ = np.array([index[v] for v in uniq], dtype=np.int32)
                cat[present, j] = map_[inv]
        vocab.append(values)
    mins, ranges = _mins_ranges(num)
    return FeatureMatrix(num, cat, num_names, cat_names, kinds, mins, ranges, vocab)


def _mins_ranges(num: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if num.shape[0] == 0:
        nan = np.full(num.shape[1], np.nan)
        return nan, nan.copy()
    with np.errstate(invalid="ignore"), _warnings_off():
        lo = np.nanmin(num, axis=0)
        hi = np.nanmax(num, axis=0)
    return lo, hi - lo


class _warnings_off:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def resolve_weights(weights: None | str | dict[str, float], names: Sequence[str]) -> np.ndarray:
    """Per-feature weights for ``names``.

    None: all 1. A preset name from :data:`WEIGHT_PRESETS` (features outside the
    preset get 0). A dict feature -> weight: features not named keep weight 1
    (name a feature with 0 to drop it). Unknown preset or feature -> ValueError.
    """
    if weights is None:
        return np.ones(len(names))
    if isinstance(weights, str):
        if weights not in WEIGHT_PRESETS:
            raise ValueError(
                f"unknown weight preset {weights!r}; known: {', '.join(sorted(WEIGHT_PRESETS))}"
            )
        preset = WEIGHT_PRESETS[weights]
        return np.array([float(preset.get(f, 0.0)) for f in names])
    if not isinstance(weights, dict):
        raise ValueError("weights must be None, a preset name or a dict feature -> weight")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"unknown features in weights: {unknown}; known: {', '.join(names)}")
    w = np.array([float(weights.get(f, 1.0)) for f in names])
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weights must be finite and >= 0")
    return w


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown Gower variant {variant!r}; known: {', '.join(VARIANTS)}")


class _GowerKernel:
    """Pre-scaled per-feature arrays for one (left, right) pair of populations."""

    def __init__(
        self,
        A: FeatureMatrix,
        B: FeatureMatrix,
        variant: str,
        weights: None | str | dict[str, float],
        dtype: Any,
        mins: np.ndarray,
        ranges: np.ndarray,
    ):
        _check_variant(variant)
        self.variant, self.dtype = variant, np.dtype(dtype)
        w_all = resolve_weights(weights, A.num_names + A.cat_names)
        w_num, w_cat = w_all[: len(A.num_names)], w_all[len(A.num_names) :]
        dt = self.dtype
        # Numeric features: (left values, right values, |left|, |right|, weight).
        self.num_feats: list[tuple[np.ndarray, ...]] = []
        pres_a, pres_b, w_p = [], [], []
        corr_a: list[np.ndarray] = []
        corr_b: list[np.ndarray] = []
        for j in range(len(A.num_names)):
            w, rng = w_num[j], ranges[j]
            if w == 0 or not np.isfinite(rng):
                continue
            xa, xb = A.num[:, j], B.num[:, j]
            if variant == "standard":
                # Shifted to >= 0 and pre-scaled by weight / range; missing -> 0 here, and
                # the wrong |0 - y| terms are taken back by the matrix product below.
                scale = w / rng if rng > 0 else 0.0
                va = np.nan_to_num((xa - mins[j]) * scale, nan=0.0).astype(dt)
                vb = np.nan_to_num((xb - mins[j]) * scale, nan=0.0).astype(dt)
                self.num_feats.append((va, vb, None, None, 1.0))
                corr_a += [-np.isnan(xa).astype(dt), -va]
                corr_b += [vb, np.isnan(xb)]
            else:
                va, vb = xa.astype(dt), xb.astype(dt)
                self.num_feats.append((va, vb, np.abs(va), np.abs(vb), float(w)))
            pres_a.append(~np.isnan(xa))
            pres_b.append(~np.isnan(xb))
            w_p.append(w)
        # Categorical features: one-hot (narrow) or code equality (wide).
        self.wide: list[tuple[np.ndarray, np.ndarray, float]] = []
        na, nb = A.num.shape[0], B.num.shape[0]
        oh_a, oh_b, w_oh = [], [], []
        pcat_a, pcat_b, w_pc = [], [], []
        for j in range(len(A.cat_names)):
            w = w_cat[j]
            if w == 0:
                continue
            ca, cb = A.cat[:, j], B.cat[:, j]
            pcat_a.append(ca >= 0)
            pcat_b.append(cb >= 0)
            w_pc.append(w)
            n_codes = int(max(ca.max(initial=-1), cb.max(initial=-1))) + 1
            if n_codes <= _ONEHOT_MAX:
                for code in range(n_codes):
                    oh_a.append(ca == code)
                    oh_b.append(cb == code)
                    w_oh.append(w)
            else:
                # Codes as floats: min(|a - b|, 1) is 0 on a match and 1 otherwise; minus w
                # (a constant column in the matrix product) makes it "- w * match".
                # -1 left vs -2 right: a missing code never matches anything.
                cb2 = np.where(cb >= 0, cb, -2)
                self.wide.append((ca.astype(dt), cb2.astype(dt), float(w)))
                oh_a.append(np.ones(na, dtype=bool))
                oh_b.append(np.ones(nb, dtype=bool))
                w_oh.append(w)

        def stack(cols: list[np.ndarray], n: int) -> np.ndarray:
            if not cols:
                return np.zeros((n, 0), dtype=dt)
            return np.ascontiguousarray(np.stack(cols, axis=1).astype(dt))

        # compared weight = [P_num * w, P_cat * w] @ [P_num, P_cat].T
        self.cnt_a = stack(pres_a + pcat_a, na) * np.array(w_p + w_pc, dtype=dt)
        self.cnt_b = stack(pres_b + pcat_b, nb)
        # categorical mismatch weight = [P_cat * w, -OH * w] @ [P_cat, OH].T, and for the
        # standard variant minus the missing-value terms: -[M_a, V_a] @ [V_b, M_b].T
        # (M: missing indicator, V: scaled value, 0 where missing).
        sign = np.array(w_pc + [-x for x in w_oh], dtype=dt)
        self.cat_a = np.concatenate(
            [stack(pcat_a + oh_a, na) * sign, stack([c.astype(dt) for c in corr_a], na)], axis=1
        )
        self.cat_b = np.concatenate([stack(pcat_b + oh_b, nb), stack(corr_b, nb)], axis=1)
        # Rows with any missing (compared) value: tiles without any skip a matrix product.
        self.miss_a = (self.cnt_a == 0).any(axis=1) if self.cnt_a.size else np.zeros(na, bool)
        self.miss_b = (self.cnt_b == 0).any(axis=1) if self.cnt_b.size else np.zeros(nb, bool)
        self.full_weight = dt.type(sum(w_p) + sum(w_pc))

    def tile(self, r0: int, r1: int, c0: int, c1: int, bufs: dict) -> np.ndarray:
        """Distances of left rows r0:r1 to right rows c0:c1 (NaN: nothing compared)."""
        b, c = r1 - r0, c1 - c0
        key = (b, c)
        if bufs.get("key") != key:
            bufs.clear()
            bufs["key"] = key
            bufs["acc"] = np.empty((b, c), self.dtype)
            bufs["buf"] = np.empty((b, c), self.dtype)
            bufs["buf2"] = np.empty((b, c), self.dtype)
        acc, buf, buf2 = bufs["acc"], bufs["buf"], bufs["buf2"]
        # Categorical part (compared weight minus matched weight) seeds the accumulator.
        if self.cat_a.shape[1]:
            np.matmul(self.cat_a[r0:r1], self.cat_b[c0:c1].T, out=acc)
        else:
            acc.fill(0)
        for ca, cb, w in self.wide:
            np.subtract(ca[r0:r1, None], cb[None, c0:c1], out=buf)
            np.abs(buf, out=buf)
            np.minimum(buf, 1, out=buf)
            if w != 1.0:
                np.multiply(buf, self.dtype.type(w), out=buf)
            np.add(acc, buf, out=acc)
        with np.errstate(invalid="ignore", divide="ignore"):
            for va, vb, aa, ab, w in self.num_feats:
                np.subtract(va[r0:r1, None], vb[None, c0:c1], out=buf)
                np.abs(buf, out=buf)
                if aa is not None:  # "max" variant: NaN (missing, or 0/0 for two zeros) -> 0
                    np.maximum(aa[r0:r1, None], ab[None, c0:c1], out=buf2)
                    np.divide(buf, buf2, out=buf)
                    np.fmax(buf, 0, out=buf)
                # standard variant: missing values are 0 here, corrected by the matrix product
                if w != 1.0:
                    np.multiply(buf, self.dtype.type(w), out=buf)
                np.add(acc, buf, out=acc)
            if self.miss_a[r0:r1].any() or self.miss_b[c0:c1].any():
                np.matmul(self.cnt_a[r0:r1], self.cnt_b[c0:c1].T, out=buf)
                np.divide(acc, buf, out=acc)
            elif self.full_weight > 0:
                np.divide(acc, self.full_weight, out=acc)
            else:
                acc.fill(np.nan)
        return acc


def _kernel(
    A: FeatureMatrix, B: FeatureMatrix | None, variant: str, weights: Any, dtype: Any
) -> _GowerKernel:
    if B is None:
        return _GowerKernel(A, A, variant, weights, dtype, A.mins, A.ranges)
    if A.num_names != B.num_names or A.cat_names != B.cat_names:
        raise ValueError("A and B must be encoded with the same features")
    # Ranges over the union of both populations, so every numeric term stays in [0, 1].
    lo = np.fmin(A.mins, B.mins)
    hi = np.fmax(A.mins + A.ranges, B.mins + B.ranges)
    return _GowerKernel(A, B, variant, weights, dtype, lo, hi - lo)


def gower_matrix(
    A: FeatureMatrix,
    B: FeatureMatrix | None = None,
    *,
    variant: str = "standard",
    weights: None | str | dict[str, float] = None,
    block_rows: int = 512,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Full Gower distance matrix (len(A), len(B or A)) in [0, 1]; NaN where nothing compared.

    With ``B``, both must share categorical codes (encode B with ``reference=A``);
    numeric ranges are taken over both populations together.
    """
    ker = _kernel(A, B, variant, weights, dtype)
    na = A.n
    nb = na if B is None else B.n
    out = np.empty((na, nb), dtype=np.float64)
    bufs: dict = {}
    for r0 in range(0, na, block_rows):
        r1 = min(na, r0 + block_rows)
        out[r0:r1] = ker.tile(r0, r1, 0, nb, bufs)
    np.clip(out, 0.0, 1.0, out=out)  # float rounding of weighted sums may stray by 1 ulp
    return out


def _merge_topk(
    bd: np.ndarray, bi: np.ndarray, rr: np.ndarray, cc: np.ndarray, dd: np.ndarray
) -> None:
    """Merge candidates (row rr, column cc, distance dd) into the running best lists in place.

    Order is (distance, column index); the best k per row are kept.
    """
    k = bd.shape[1]
    rows = np.unique(rr)
    old_d = bd[rows].ravel()
    old_i = bi[rows].ravel()
    old_r = np.repeat(rows, k)
    keep = old_i >= 0
    all_r = np.concatenate([old_r[keep], rr])
    all_d = np.concatenate([old_d[keep], dd.astype(bd.dtype)])
    all_i = np.concatenate([old_i[keep], cc])
    order = np.lexsort((all_i, all_d, all_r))
    all_r, all_d, all_i = all_r[order], all_d[order], all_i[order]
    starts = np.searchsorted(all_r, rows)
    rank = np.arange(all_r.size) - np.repeat(starts, np.diff(np.append(starts, all_r.size)))
    sel = rank < k
    bd[rows] = np.inf
    bi[rows] = -1
    bd[all_r[sel], rank[sel]] = all_d[sel]
    bi[all_r[sel], rank[sel]] = all_i[sel]


def _blocked_topk(
    n_rows: int,
    n_cols: int,
    k: int,
    tile_fn: Callable[[int, int, int, int, dict], np.ndarray],
    *,
    block_rows: int,
    block_cols: int,
    exclude_self: bool,
    n_jobs: int | None,
    row_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest columns per row by tiles; memory O(block_rows * block_cols + n * k)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    lo_row, hi_row = (0, n_rows) if row_range is None else row_range
    if not 0 <= lo_row <= hi_row <= n_rows:
        raise ValueError(f"row_range {row_range} outside 0..{n_rows}")
    best_d = np.full((hi_row - lo_row, k), np.inf)
    best_i = np.full((hi_row - lo_row, k), -1, dtype=np.int64)

    def run_block(r0: int) -> None:
        r1 = min(hi_row, r0 + block_rows)
        b = r1 - r0
        bd = np.full((b, k), np.inf)
        bi = np.full((b, k), -1, dtype=np.int64)
        bufs: dict = {}
        for c0 in range(0, n_cols, block_cols):
            c1 = min(n_cols, c0 + block_cols)
            tile = tile_fn(r0, r1, c0, c1, bufs)
            if exclude_self and c0 < r1 and r0 < c1:
                lo, hi = max(r0, c0), min(r1, c1)
                diag = np.arange(lo, hi)
                tile[diag - r0, diag - c0] = np.nan  # NaN never compares as smaller
            thr = bd[:, k - 1]
            with np.errstate(invalid="ignore"):
                if np.isinf(thr).any():
                    # Rows still short of k: take this tile's k smallest, ties included.
                    kk = min(k, c1 - c0)
                    kth = np.partition(tile, kk - 1, axis=1)[:, kk - 1]
                    kth = np.where(np.isnan(kth), np.inf, kth)  # fewer than kk comparable
                    mask = (tile < thr[:, None]) & (tile <= kth[:, None])
                else:
                    # Later columns have larger indices: a tie with the k-th loses.
                    mask = tile < thr[:, None]
            # np.nonzero scans slowly; after the first tiles candidates are rare.
            if not np.count_nonzero(mask):
                continue
            hit = np.flatnonzero(mask.any(axis=1))
            rr, cc = np.nonzero(mask[hit])
            rr = hit[rr]
            _merge_topk(bd, bi, rr, cc + c0, tile[rr, cc])
        best_d[r0 - lo_row : r1 - lo_row] = bd
        best_i[r0 - lo_row : r1 - lo_row] = bi

    starts = list(range(lo_row, hi_row, block_rows))
    jobs = _n_jobs(n_jobs)
    with _blas_single_thread(jobs > 1):
        if jobs == 1 or len(starts) == 1:
            for r0 in starts:
                run_block(r0)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                list(pool.map(run_block, starts))
    return best_i, best_d


class _blas_single_thread:
    """Limit BLAS to one thread while our own threads run tiles side by side."""

    def __init__(self, active: bool):
        self.active, self._cm = active, None

    def __enter__(self):
        if self.active:
            try:
                from threadpoolctl import threadpool_limits

                self._cm = threadpool_limits(limits=1, user_api="blas")
            except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
                self._cm = None
        return self

    def __exit__(self, *exc):
        if self._cm is not None:
            self._cm.restore_original_limits()
        return False


def _auto_cols(block_rows: int, block_cols: int | None, n: int) -> int:
    if block_cols is not None:
        return max(1, block_cols)
    # ~2^19 pairs per tile: a few MB per buffer, close to cache size.
    return max(64, min(n, (1 << 19) // max(1, block_rows)))


@dataclass
class DuplicateGroups:
    """Rows of a :class:`FeatureMatrix` grouped by identical (compared) feature vectors.

    Groups are numbered by first occurrence, so group order = order of each
    group's smallest row index. ``inverse[i]``: group of row i. ``first[g]``:
    smallest row of group g (increasing in g). ``counts[g]``: its size.
    ``members[starts[g] : starts[g] + counts[g]]``: its rows in increasing order.
    """

    inverse: np.ndarray
    first: np.ndarray
    counts: np.ndarray
    starts: np.ndarray
    members: np.ndarray

    @property
    def n_unique(self) -> int:
        return int(self.first.size)


def duplicate_groups(
    A: FeatureMatrix, weights: None | str | dict[str, float] = None
) -> DuplicateGroups:
    """Group rows whose encoded features are identical on every feature with weight > 0.

    Numeric values compare by value with their missing (NaN) pattern (-0.0 equals
    0.0); categorical and boolean by code (-1 = missing). Two rows of one group
    have the same Gower distance to every row, so top-k can be computed once per
    group. Memory: one byte key of the used columns per row.
    """
    n = A.n
    w = resolve_weights(weights, A.num_names + A.cat_names)
    p = len(A.num_names)
    num = A.num[:, w[:p] != 0]
    cat = A.cat[:, w[p:] != 0]
    # canonical bytes: one NaN payload, +0.0 for -0.0
    num = np.where(np.isnan(num), np.nan, num + 0.0).astype(np.float64)
    parts = [
        np.ascontiguousarray(num).view(np.uint8).reshape(n, -1),
        np.ascontiguousarray(cat.astype(np.int32)).view(np.uint8).reshape(n, -1),
    ]
    key = np.ascontiguousarray(np.concatenate(parts, axis=1))
    width = key.shape[1]
    if n == 0 or width == 0:
        inverse = np.zeros(n, dtype=np.int64)
        first = np.zeros(min(n, 1), dtype=np.int64)
    else:
        _, first, inverse = np.unique(
            key.view(np.dtype((np.void, width))).ravel(), return_index=True, return_inverse=True
        )
        del key
        order = np.argsort(first, kind="stable")  # renumber groups by first occurrence
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        inverse = rank[inverse.ravel()].astype(np.int64)
        first = first[order].astype(np.int64)
    counts = np.bincount(inverse, minlength=first.size).astype(np.int64)
    starts = np.cumsum(counts) - counts
    members = np.argsort(inverse, kind="stable").astype(np.int64)
    return DuplicateGroups(inverse, first, counts, starts, members)


def _expand_members(
    groups: DuplicateGroups, qq: np.ndarray, vv: np.ndarray, dd: np.ndarray, kt: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query q, group v, distance d) -> (q, row, d) for the first min(|v|, kt) rows of v."""
    take = np.minimum(groups.counts[vv], kt)
    total = int(take.sum())
    offs = np.arange(total) - np.repeat(np.cumsum(take) - take, take)
    rows = groups.members[np.repeat(groups.starts[vv], take) + offs]
    return np.repeat(qq, take), rows, np.repeat(dd, take)


def _select_kt(
    q_count: int, qq: np.ndarray, rr: np.ndarray, dd: np.ndarray, kt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the kt smallest (distance, row) of the candidates; padded -1 / inf."""
    out_i = np.full((q_count, kt), -1, dtype=np.int64)
    out_d = np.full((q_count, kt), np.inf)
    if qq.size == 0:
        return out_i, out_d
    order = np.lexsort((rr, dd, qq))
    qq, rr, dd = qq[order], rr[order], dd[order]
    first = np.searchsorted(qq, qq, side="left")
    rank = np.arange(qq.size) - first
    sel = rank < kt
    out_i[qq[sel], rank[sel]] = rr[sel]
    out_d[qq[sel], rank[sel]] = dd[sel]
    return out_i, out_d


def _dedup_topk(
    A: FeatureMatrix,
    groups: DuplicateGroups,
    k: int,
    *,
    variant: str,
    weights: Any,
    dtype: Any,
    block_rows: int,
    block_cols: int | None,
    exclude_self: bool,
    n_jobs: int | None,
    row_range: tuple[int, int] | None,
    chunk: int = 1 << 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of rows ``row_range`` computed over unique vectors, then expanded to rows.

    For each needed group q, its "template" is the kt = k (+1 when excluding
    self) nearest rows of the whole population, q's own members included, in
    (distance, row) order; a row's answer is its group's template without itself.
    The template is built from q's kt nearest groups in (distance, first row)
    order, each contributing its kt smallest rows. Why that is exact: let d* be
    the kt-th group's distance and f* its first row. Groups closer than d* are
    all retrieved. The template needs some number t of rows at d*; the retrieved
    groups at d* number at least t (every group has >= 1 row, and kt groups were
    retrieved for kt slots) and their first rows are all <= f*, so the t smallest
    rows at d* are all <= f*, while every row of a group at d* not retrieved is
    > its own first row > f*.
    """
    n = A.n
    lo_row, hi_row = (0, n) if row_range is None else row_range
    if not 0 <= lo_row <= hi_row <= n:
        raise ValueError(f"row_range {row_range} outside 0..{n}")
    U = groups.n_unique
    kt = k + 1 if exclude_self else k
    Au = A.take(groups.first)
    inv = groups.inverse[lo_row:hi_row]
    Q = np.unique(inv)  # needed groups, increasing
    Aq = Au if Q.size == U else Au.take(Q)
    ker = _GowerKernel(Aq, Au, variant, weights, dtype, A.mins, A.ranges)
    ui, ud = _blocked_topk(
        Q.size, U, kt, ker.tile,
        block_rows=block_rows, block_cols=_auto_cols(block_rows, block_cols, U),
        exclude_self=False, n_jobs=n_jobs,
    )  # fmt: skip
    # templates, a chunk of groups at a time (memory O(chunk * kt^2) on top of O(U * kt))
    t_i = np.full((Q.size, kt), -1, dtype=np.int64)
    t_d = np.full((Q.size, kt), np.inf)
    for c0 in range(0, Q.size, chunk):
        c1 = min(Q.size, c0 + chunk)
        sub_i, sub_d = ui[c0:c1], ud[c0:c1]
        qq, slot = np.nonzero(sub_i >= 0)
        qq2, rr, dd = _expand_members(groups, qq, sub_i[qq, slot], sub_d[qq, slot], kt)
        t_i[c0:c1], t_d[c0:c1] = _select_kt(c1 - c0, qq2, rr, dd, kt)
    # rows: their group's template without themselves
    out_i = np.empty((hi_row - lo_row, k), dtype=np.int64)
    out_d = np.empty((hi_row - lo_row, k))
    for r0 in range(0, hi_row - lo_row, chunk):
        r1 = min(hi_row - lo_row, r0 + chunk)
        pos = np.searchsorted(Q, inv[r0:r1])
        ti, td = t_i[pos], t_d[pos]
        if exclude_self:
            me = np.arange(lo_row + r0, lo_row + r1)
            hit = ti == me[:, None]
            drop = np.where(hit.any(axis=1), hit.argmax(axis=1), kt - 1)
            keep = np.ones(ti.shape, dtype=bool)
            keep[np.arange(r1 - r0), drop] = False
            ti = ti[keep].reshape(r1 - r0, k)
            td = td[keep].reshape(r1 - r0, k)
        out_i[r0:r1], out_d[r0:r1] = ti, td
    return out_i, out_d


def gower_topk(
    A: FeatureMatrix,
    k: int,
    *,
    variant: str = "standard",
    weights: None | str | dict[str, float] = None,
    block_rows: int = 2048,
    exclude_self: bool = True,
    block_cols: int | None = None,
    dtype: Any = np.float32,
    n_jobs: int | None = None,
    row_range: tuple[int, int] | None = None,
    dedup: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row of ``A`` under Gower distance.

    Returns (indices int64 [n, k], distances float64 [n, k]) sorted by
    (distance, index): ties go to the smaller index. Pairs with no compared
    feature are never neighbours; a row with fewer than k candidates is padded
    with index -1 and distance inf. Work runs in tiles of ``block_rows x
    block_cols`` (memory O(block_rows * block_cols + n * k), never n^2) over
    ``n_jobs`` threads. ``dtype=np.float32`` halves memory traffic; distances
    are exact to about 1e-7, pass ``np.float64`` for bit-for-bit comparisons.
    ``row_range=(start, stop)`` answers only those rows (against all of ``A``),
    to shard the work or to time a sample.

    ``dedup=True`` (default): rows with identical feature vectors (see
    :func:`duplicate_groups`) are searched once, over the U unique vectors
    (about (U / n)^2 of the work), and the answer is expanded back to rows:
    a row's duplicates (at their self-distance, 0), then the rows of the nearest
    other vectors, all in (distance, index) order. The result is the one of
    ``dedup=False``; it is identical to the bit wherever a pair's distance does
    not depend on the tile it is computed in (always in float64 with unit
    weights; otherwise rounding may differ by an ulp, as between block sizes).
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    if dedup:
        groups = duplicate_groups(A, weights)
        if groups.n_unique < A.n:
            return _dedup_topk(
                A, groups, k, variant=variant, weights=weights, dtype=dtype,
                block_rows=block_rows, block_cols=block_cols, exclude_self=exclude_self,
                n_jobs=n_jobs, row_range=row_range,
            )  # fmt: skip
    ker = _kernel(A, None, variant, weights, dtype)
    n = A.n
    return _blocked_topk(
        n, n, k, ker.tile,
        block_rows=block_rows, block_cols=_auto_cols(block_rows, block_cols, n),
        exclude_self=exclude_self, n_jobs=n_jobs, row_range=row_range,
    )  # fmt: skip


def all_pairs(
    A: FeatureMatrix,
    *,
    variant: str = "standard",
    weights: None | str | dict[str, float] = None,
    max_n: int = 50_000,
    block_rows: int = 64,
    dtype: Any = np.float32,
    n_jobs: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (i_idx, j_idx, dist) arrays covering every pair i < j once, block by block.

    Rows are yielded in order of i. Pairs with no compared feature have NaN.
    ``max_n`` guards against an accidental n^2 stream (ValueError above it).
    Blocks are computed ``n_jobs`` at a time, at most two ahead of the consumer.
    """
    n = A.n
    if n > max_n:
        raise ValueError(f"{n} rows > max_n={max_n}: all pairs would be {n * (n - 1) // 2:,}")
    ker = _kernel(A, None, variant, weights, dtype)

    cols_per_tile = _auto_cols(block_rows, None, n)
    triu = np.triu_indices(block_rows, k=1)

    def block(r0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r1 = min(n, r0 + block_rows)
        b = r1 - r0
        bufs: dict = {}
        # The b x b diagonal square keeps its strict upper triangle ...
        ti, tj = triu if b == block_rows else np.triu_indices(b, k=1)
        parts_i = [ti.astype(np.int64) + r0]
        parts_j = [tj.astype(np.int64) + r0]
        parts_d = [ker.tile(r0, r1, r0, r1, bufs)[ti, tj]]
        # ... and every column right of it is kept whole.
        for c0 in range(r1, n, cols_per_tile):
            c1 = min(n, c0 + cols_per_tile)
            parts_d.append(ker.tile(r0, r1, c0, c1, bufs).ravel().copy())
            parts_i.append(np.repeat(np.arange(r0, r1, dtype=np.int64), c1 - c0))
            parts_j.append(np.tile(np.arange(c0, c1, dtype=np.int64), b))
        return np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_d)

    starts = list(range(0, n, block_rows))
    jobs = _n_jobs(n_jobs)
    with _blas_single_thread(jobs > 1):
        if jobs == 1:
            for r0 in starts:
                yield block(r0)
            return
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            pending = [pool.submit(block, r0) for r0 in starts[: jobs + 1]]
            nxt = len(pending)
            while pending:
                out = pending.pop(0).result()
                if nxt < len(starts):
                    pending.append(pool.submit(block, starts[nxt]))
                    nxt += 1
                yield out


# --------------------------------------------------------------------------- vector metrics


def vector_features(A: FeatureMatrix) -> np.ndarray:
    """Standardised numeric columns (missing -> 0 after standardising) + one-hot categoricals.

    Numeric columns are z-scores over the population (a constant column is all 0);
    categoricals and booleans become one 0/1 column per code, all 0 when missing.
    """
    num = A.num
    with _warnings_off():
        mean = np.nanmean(num, axis=0) if num.size else np.zeros(num.shape[1])
        std = np.nanstd(num, axis=0) if num.size else np.zeros(num.shape[1])
    std = np.where((std > 0) & np.isfinite(std), std, 1.0)
    z = (num - np.nan_to_num(mean)) / std
    z = np.where(np.isnan(z), 0.0, z)
    parts = [z]
    for j in range(A.cat.shape[1]):
        codes = A.cat[:, j]
        width = max(len(A.vocab[j]) if j < len(A.vocab) else 0, int(codes.max(initial=-1)) + 1)
        oh = np.zeros((codes.size, width))
        present = codes >= 0
        oh[np.flatnonzero(present), codes[present]] = 1.0
        parts.append(oh)
    return np.concatenate(parts, axis=1) if parts else np.zeros((A.n, 0))


_METRICS = ("l1", "l2", "cosine")


def vector_topk(
    X: np.ndarray,
    k: int,
    metric: str = "l2",
    *,
    block_rows: int = 1024,
    block_cols: int | None = None,
    exclude_self: bool = True,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of ``X`` under l1, l2 or cosine distance (1 - cos), by blocks.

    Same output and tie rules as :func:`gower_topk`. Zero rows have no cosine
    distance (NaN) and are never cosine neighbours.
    """
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(_METRICS)}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    n, d = X.shape
    if metric == "l2":
        sq = np.einsum("ij,ij->i", X, X)

        def tile(r0, r1, c0, c1, bufs):
            g = X[r0:r1] @ X[c0:c1].T
            g *= -2.0
            g += sq[r0:r1, None]
            g += sq[None, c0:c1]
            np.maximum(g, 0.0, out=g)
            return np.sqrt(g, out=g)

    elif metric == "cosine":
        norms = np.linalg.norm(X, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            U = X / norms[:, None]  # zero rows -> NaN -> NaN distances

        def tile(r0, r1, c0, c1, bufs):
            g = U[r0:r1] @ U[c0:c1].T
            np.subtract(1.0, g, out=g)
            return np.maximum(g, 0.0, out=g)  # NaN stays NaN

    else:
        binary = np.all((X == 0) | (X == 1), axis=0)
        Xb = np.ascontiguousarray(X[:, binary])
        Xr = [np.ascontiguousarray(X[:, j]) for j in np.flatnonzero(~binary)]
        ones = Xb.sum(axis=1)

        def tile(r0, r1, c0, c1, bufs):
            # For 0/1 columns |a - b| = a + b - 2ab: one matrix product for all of them.
            acc = Xb[r0:r1] @ Xb[c0:c1].T
            acc *= -2.0
            acc += ones[r0:r1, None]
            acc += ones[None, c0:c1]
            buf = np.empty_like(acc)
            for col in Xr:
                np.subtract(col[r0:r1, None], col[None, c0:c1], out=buf)
                np.abs(buf, out=buf)
                acc += buf
            return acc

    return _blocked_topk(
        n, n, k, tile,
        block_rows=block_rows, block_cols=_auto_cols(block_rows, block_cols, n),
        exclude_self=exclude_self, n_jobs=n_jobs,
    )  # fmt: skip

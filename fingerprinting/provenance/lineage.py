"""Lineage recovery: parent -> child edges and their direction from pair scores and checkpoint signals.

Two inputs, no model code executed:

* **pair scores** (``model_a``, ``model_b``, ``score``; higher = more likely related, at most
  ``upper``) and a threshold: a pair at or above it is a candidate edge;
* **direction signals** per model, read straight from the checkpoint files
  (:func:`weight_stats`: safetensors through ``safe_open``, GGUF through ``gguf.GGUFReader``):
  parameter count (a distilled or structurally pruned child is smaller), exact-zero fraction
  (a magnitude-pruned child has more zeros), quantization (a copy on a <= 8-bit grid, or a GGUF
  quant type, is the child of a float model), and weight kurtosis (a weak hint: a fine-tune's
  additive update pulls the weight distribution towards the Gaussian, so the child's excess
  kurtosis is smaller; not compared between models whose zero fractions differ).

:func:`infer_lineage` turns a candidate pair's score into an edge strength, adds the direction
evidence as a log-odds term, and takes a maximum spanning arborescence (Chu-Liu/Edmonds, vectorised
here: networkx's took ~50 s on 300 models with all pairs as candidates) of a
graph with a virtual root joined to every model: each connected group of candidates becomes one
tree (its root chosen by the direction evidence and by structure: the model closest to all others
of its group), a model without a candidate stays a root. Merges come last: a model that sits
between two strongly similar models (closer to each than they are to each other, about halfway,
and on the segment between them) takes both as parents; the two are taken as siblings, so the
direct edge between them is penalised.

Known limits: pair scores cannot tell a straight-line chain ``a -> m -> b`` whose two steps are of
equal size from a midpoint merge of ``a`` and ``b``; siblings that drift in a common direction can
look closer to each other than to their parent; without signals the direction of a chain rests on
structure alone.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fingerprinting.errors import FingerprintLakeError


class LineageError(FingerprintLakeError, ValueError):
    """Lineage recovery cannot run: bad pair scores, threshold or checkpoint (the message names it)."""


# ---------------------------------------------------------------- signals
@dataclass(frozen=True)
class WeightStats:
    """Direction signals of one checkpoint (one row of the lake table ``model_weight_stats``).

    ``zero_fraction``, ``distinct_ratio`` and ``kurtosis`` are over the weight matrices (tensors
    of two or more dimensions), from up to ``max_rows`` sampled rows of each; ``n_params`` counts
    every tensor exactly. ``quant_type`` is the dominant storage of the matrices: a GGUF tensor
    type (``Q4_K``, ``F16``, ...), a safetensors dtype (``F32``, ``BF16``, ``I8``, ...), or
    ``grid-int8`` / ``grid-int4`` when float rows hold at most 256 / 16 evenly spaced values.
    """

    model_id: str
    n_params: int
    zero_fraction: float
    distinct_ratio: float
    kurtosis: float
    quant_type: str
    source_identity: str = ""

    @property
    def bits(self) -> int | None:
        return quant_bits(self.quant_type)


_FLOAT_BITS = {"F64": 64, "F32": 32, "F16": 16, "BF16": 16}


def quant_bits(quant_type: str | None) -> int | None:
    """Bits per weight of a storage type (``None`` when unknown): floats 16-64, quantized <= 8."""
    if not quant_type:
        return None
    q = quant_type.upper()
    if q in _FLOAT_BITS:
        return _FLOAT_BITS[q]
    if q in ("I8", "U8") or q.startswith("F8"):
        return 8
    if q == "GRID-INT8":
        return 8
    if q == "GRID-INT4" or q in ("MXFP4", "NVFP4"):
        return 4
    if q.startswith("TQ"):
        return 2
    m = re.match(r"^I?Q(\d)", q)
    return int(m.group(1)) if m else None


class _StatsAccumulator:
    """Streams weight matrices (sampled rows) into the totals behind :class:`WeightStats`."""

    def __init__(self):
        self.n_params = 0
        self.zeros = 0
        self.sampled = 0
        self.distinct = 0
        self.kurt_sum = 0.0
        self.kurt_weight = 0
        self.storage: Counter[str] = Counter()
        self.grid_rows = 0
        self.grid_tested = 0
        self.grid_levels = 0.0

    def add_count(self, numel: int) -> None:
        self.n_params += int(numel)

    def add_matrix(self, rows: np.ndarray, numel: int, storage: str) -> None:
        """``rows``: sampled rows of one matrix as a 2-D float array; ``numel``: the matrix's size."""
        self.storage[storage] += int(numel)
        x = np.asarray(rows, dtype=np.float64)
        if x.size == 0:
            return
        self.zeros += int(np.count_nonzero(x == 0))
        self.sampled += x.size
        s = np.sort(x, axis=1)
        steps = np.diff(s, axis=1)
        distinct = 1 + np.count_nonzero(steps > 0, axis=1)
        self.distinct += int(distinct.sum())
        c = x - x.mean()
        m2 = float(np.mean(c * c))
        if m2 > 0:
            self.kurt_sum += float(np.mean(c ** 4)) / (m2 * m2) * numel
            self.kurt_weight += numel
        if x.shape[1] >= 32:
            self._grid(s, steps, distinct)

    def _grid(self, s: np.ndarray, steps: np.ndarray, distinct: np.ndarray) -> None:
        # A row lies on a uniform grid when every value is the row minimum plus a whole number of
        # the smallest step, and the row spans at most 255 steps (256 levels: 8-bit quantization).
        tested = distinct >= 3
        if not tested.any():
            return
        s, steps = s[tested], steps[tested]
        h = np.where(steps > 0, steps, np.inf).min(axis=1)
        rel = (s - s[:, :1]) / h[:, None]
        resid = np.abs(rel - np.round(rel)).max(axis=1)
        levels = rel[:, -1]
        ok = (levels <= 255.5) & (resid <= 0.05)
        self.grid_tested += int(tested.sum())
        self.grid_rows += int(ok.sum())
        if ok.any():
            self.grid_levels = max(self.grid_levels, float(levels[ok].max()) + 1)

    def result(self, model_id: str, source_identity: str) -> WeightStats:
        if not self.storage:
            raise LineageError(f"model {model_id!r}: the checkpoint has no weight matrices")
        quant = self.storage.most_common(1)[0][0]
        if (quant_bits(quant) or 0) > 8 and self.grid_tested and self.grid_rows >= 0.9 * self.grid_tested:
            quant = "grid-int4" if self.grid_levels <= 16 else "grid-int8"
        return WeightStats(
            model_id=model_id, n_params=self.n_params,
            zero_fraction=self.zeros / self.sampled if self.sampled else 0.0,
            distinct_ratio=self.distinct / self.sampled if self.sampled else 0.0,
            kurtosis=self.kurt_sum / self.kurt_weight if self.kurt_weight else float("nan"),
            quant_type=quant, source_identity=source_identity)


def _row_blocks(n_rows: int, max_rows: int) -> list[tuple[int, int]]:
    """Up to ``max_rows`` rows as 4 contiguous blocks spread over the matrix (all rows if few)."""
    if n_rows <= max_rows:
        return [(0, n_rows)]
    per = max(1, max_rows // 4)
    starts = np.linspace(0, n_rows - per, 4).astype(int)
    return [(int(a), int(a) + per) for a in starts]


def _safetensors_stats(model_id: str, files: list[Path], acc: _StatsAccumulator, max_rows: int) -> None:
    import torch
    from safetensors import safe_open

    for f in files:
        try:
            with safe_open(str(f), framework="pt") as fh:
                for name in fh.keys():
                    sl = fh.get_slice(name)
                    shape = list(sl.get_shape())
                    numel = int(np.prod(shape)) if shape else 1
                    acc.add_count(numel)
                    dtype = str(sl.get_dtype())
                    if len(shape) < 2 or numel == 0 or dtype == "BOOL":
                        continue
                    parts = []
                    for a, b in _row_blocks(shape[0], max_rows):
                        t = sl[a:b]
                        parts.append(t.to(torch.float64).reshape(-1, shape[-1]).numpy())
                    acc.add_matrix(np.concatenate(parts), numel, dtype)
        except LineageError:
            raise
        except Exception as exc:  # safetensors raises several types on a bad file
            raise LineageError(f"model {model_id!r}: cannot read safetensors file {str(f)!r}: {exc}") from exc


def _gguf_stats(model_id: str, path: Path, acc: _StatsAccumulator, max_rows: int) -> None:
    try:
        from gguf import GGUFReader
        from gguf.quants import dequantize
    except ImportError as exc:
        raise LineageError(f"model {model_id!r}: reading {str(path)!r} needs the 'gguf' package") from exc
    try:
        reader = GGUFReader(str(path))
        for t in reader.tensors:
            numel = int(t.n_elements)
            acc.add_count(numel)
            shape = [int(d) for d in t.shape]  # GGUF lists dimensions innermost first
            if len(shape) < 2 or numel == 0:
                continue
            cols = shape[0]
            data = t.data.reshape(-1, t.data.shape[-1])  # one row of values (or of quant blocks) per line
            parts = [dequantize(np.asarray(data[a:b]), t.tensor_type).reshape(-1, cols)
                     for a, b in _row_blocks(data.shape[0], max_rows)]
            acc.add_matrix(np.concatenate(parts), numel, t.tensor_type.name)
    except LineageError:
        raise
    except Exception as exc:
        raise LineageError(f"model {model_id!r}: cannot read GGUF file {str(path)!r}: {exc}") from exc


def weight_stats(model_id: str, source: str, *, max_rows: int = 256) -> WeightStats:
    """Direction signals of a local checkpoint, read tensor by tensor (no model code runs).

    ``source`` is a registry source: a model folder with ``*.safetensors``, one
    ``.safetensors`` file, or a ``.gguf`` file. Pickle checkpoints are never opened.
    Raises :class:`LineageError` naming the model and file on any failure.
    """
    from fingerprinting.loading import ModelSource

    if source.startswith("hf://"):
        raise LineageError(f"model {model_id!r}: {source!r} is a Hub id; weight signals need a local checkpoint")
    src = ModelSource.parse(source)
    acc = _StatsAccumulator()
    if src.gguf_file:
        path = Path(src.path) / src.gguf_file
        if not path.is_file():
            raise LineageError(f"model {model_id!r}: GGUF file {str(path)!r} not found")
        _gguf_stats(model_id, path, acc, max_rows)
    else:
        p = Path(src.path)
        if p.is_file() and p.suffix == ".safetensors":
            files = [p]
        elif p.is_dir():
            files = sorted(p.glob("*.safetensors"))
        else:
            raise LineageError(f"model {model_id!r}: {str(p)!r} is neither a model folder nor a checkpoint file")
        if not files:
            raise LineageError(f"model {model_id!r}: no *.safetensors in {str(p)!r} (pickle weights are not read)")
        _safetensors_stats(model_id, files, acc, max_rows)
    return acc.result(model_id, src.identity())


# ---------------------------------------------------------------- evidence
@dataclass(frozen=True)
class LineageParams:
    """Weights of the evidence, in units of edge strength (a strength is ``-log(1 - z)``, where
    ``z`` is the score's position between the threshold (0) and ``upper`` (1))."""

    upper: float = 1.0          # largest possible score
    params_weight: float = 3.0  # the larger model is the parent (distillation, structural pruning)
    zeros_weight: float = 3.0   # the model with fewer exact zeros is the parent (magnitude pruning)
    quant_weight: float = 3.0   # the model stored in more bits is the parent when one side is <= 8-bit
    kurtosis_weight: float = 0.5  # weak: the model farther from Gaussian kurtosis is the parent
    rootness_weight: float = 1.0  # structure: the model closest to all others of its group is the root
    merge_max_collinearity: float = 0.25  # |(d(a,m) + d(b,m)) / d(a,b) - 1| <= this
    merge_min_balance: float = 0.25       # min(d(a,m), d(b,m)) / max(...) >= this
    merge_neighbours: int = 8             # a merge's parents are among the child's top-k candidates
    merge_bonus: float = 1.0              # added to a merge parent's edge
    merge_sibling_penalty: float = 5.0    # taken from the direct edge between a merge's two parents
    merge_confidence: float = 2.0         # log-odds the merge geometry adds to a merge edge's direction


def _signal_arrays(ids: list[str], signals: Mapping[str, WeightStats | Mapping] | None) -> dict[str, np.ndarray]:
    n = len(ids)
    out = {k: np.full(n, np.nan) for k in ("n_params", "zero_fraction", "kurtosis", "bits")}
    for i, m in enumerate(ids):
        s = (signals or {}).get(m)
        if s is None:
            continue
        get = (lambda k, s=s: s.get(k)) if isinstance(s, Mapping) else (lambda k, s=s: getattr(s, k, None))
        for k in ("n_params", "zero_fraction", "kurtosis"):
            v = get(k)
            out[k][i] = np.nan if v is None else float(v)
        b = quant_bits(get("quant_type"))
        out["bits"][i] = np.nan if b is None else b
    return out


def direction_terms(sig: dict[str, np.ndarray], u: np.ndarray, v: np.ndarray,
                    params: LineageParams) -> dict[str, np.ndarray]:
    """Log-odds that ``u[k]`` is the parent of ``v[k]``, per signal (0 where a signal is missing).

    Every term is antisymmetric: swapping ``u`` and ``v`` flips its sign.
    """
    def nz(x):
        return np.nan_to_num(x, nan=0.0)

    with np.errstate(invalid="ignore", divide="ignore"):
        n_u, n_v = sig["n_params"][u], sig["n_params"][v]
        params_t = params.params_weight * np.tanh(np.log(n_u / n_v) / 0.02)
        zeros_t = params.zeros_weight * np.tanh((sig["zero_fraction"][v] - sig["zero_fraction"][u]) / 0.01)
        b_u, b_v = sig["bits"][u], sig["bits"][v]
        quantized = np.minimum(b_u, b_v) <= 8
        quant_t = np.where(quantized, params.quant_weight * np.sign(b_u - b_v), 0.0)
        e_u, e_v = np.abs(sig["kurtosis"][u] - 3.0), np.abs(sig["kurtosis"][v] - 3.0)
        rel = (e_u - e_v) / (0.5 * (e_u + e_v) + 1e-9)
        # zeros reshape the distribution: kurtosis says nothing across different zero fractions
        pruned = np.abs(sig["zero_fraction"][u] - sig["zero_fraction"][v]) >= 0.01
        kurt_t = np.where(pruned, 0.0, params.kurtosis_weight * np.tanh(rel / 0.02))
    return {"params": nz(params_t), "zeros": nz(zeros_t), "quant": nz(quant_t), "kurtosis": nz(kurt_t)}


# ---------------------------------------------------------------- inference
@dataclass(frozen=True)
class InferredEdge:
    parent_id: str
    child_id: str
    score: float
    direction_confidence: float  # probability-like confidence that the edge points this way
    is_merge_parent: bool = False
    evidence: str = ""           # the direction terms, e.g. "quant=+3.00 structure=+0.40"


@dataclass
class _Pairs:
    """Candidate pairs (i < j) of one population, with the lookups inference needs."""

    n: int
    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    strength: np.ndarray
    keys: np.ndarray = field(init=False)

    def __post_init__(self):
        self.keys = self.i.astype(np.int64) * self.n + self.j

    def lookup(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Score of the unordered pairs (a, b); NaN where the pair is not a candidate."""
        a, b = np.asarray(a), np.asarray(b)
        out = np.full(a.shape, np.nan)
        if len(self.keys) == 0:
            return out
        k = np.minimum(a, b).astype(np.int64) * self.n + np.maximum(a, b)
        pos = np.minimum(np.searchsorted(self.keys, k), len(self.keys) - 1)
        hit = (a >= 0) & (b >= 0) & (self.keys[pos] == k)
        out[hit] = self.score[pos[hit]]
        return out


def _pair_columns(pair_scores) -> tuple[list, list, np.ndarray]:
    """(model_a, model_b, score) columns from a polars / pandas / pyarrow table or an iterable of triples."""
    cols = ("model_a", "model_b", "score")
    if hasattr(pair_scores, "column_names") and hasattr(pair_scores, "column"):  # pyarrow
        missing = [c for c in cols if c not in pair_scores.column_names]
        if missing:
            raise LineageError(f"pair scores: missing column(s) {missing}; need model_a, model_b, score")
        return ([str(x) for x in pair_scores.column("model_a").to_pylist()],
                [str(x) for x in pair_scores.column("model_b").to_pylist()],
                np.asarray(pair_scores.column("score").to_numpy(zero_copy_only=False), dtype=float))
    if hasattr(pair_scores, "columns"):  # polars / pandas
        missing = [c for c in cols if c not in list(pair_scores.columns)]
        if missing:
            raise LineageError(f"pair scores: missing column(s) {missing}; need model_a, model_b, score")
        def values(col):
            c = pair_scores[col]
            return c.to_list() if hasattr(c, "to_list") else list(c)

        return ([str(x) for x in values("model_a")], [str(x) for x in values("model_b")],
                np.asarray([np.nan if x is None else x for x in values("score")], dtype=float))
    rows = list(pair_scores)
    return ([str(r[0]) for r in rows], [str(r[1]) for r in rows],
            np.asarray([np.nan if r[2] is None else r[2] for r in rows], dtype=float))


def _candidates(ids: list[str], pair_scores, threshold: float, upper: float) -> _Pairs:
    n = len(ids)
    index = {m: k for k, m in enumerate(ids)}
    a_ids, b_ids, s = _pair_columns(pair_scores)
    a = np.fromiter((index.get(x, -1) for x in a_ids), np.int64, len(a_ids))
    b = np.fromiter((index.get(x, -1) for x in b_ids), np.int64, len(b_ids))
    keep = (a >= 0) & (b >= 0) & (a != b) & np.isfinite(s) & (s >= threshold)
    a, b, s = a[keep], b[keep], s[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * n + hi
    order = np.lexsort((-s, key))  # per key, the highest score first
    key, s = key[order], s[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    key, s = key[first], s[first]
    span = upper - threshold
    if span <= 0:
        raise LineageError(f"threshold {threshold!r} must be below the largest possible score {upper!r}")
    z = np.clip((s - threshold) / span, 0.0, 1.0)
    strength = -np.log1p(-z * (1 - 1e-6))
    return _Pairs(n, key // n, key % n, s, strength)


def _components(n: int, pairs: _Pairs) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(pairs.i)), (pairs.i, pairs.j)), shape=(n, n))
    return connected_components(g, directed=False)[1]


def _rootness(n: int, pairs: _Pairs, comp: np.ndarray, merged: np.ndarray) -> np.ndarray:
    """Mean strength to the other models of a node's group, minus the group's best (<= 0).

    Detected merge children are left out (their closeness would make their parents look central)
    and rank one below their group's least central model.
    """
    keep = ~(merged[pairs.i] | merged[pairs.j])
    total = np.bincount(pairs.i[keep], pairs.strength[keep], n) + np.bincount(pairs.j[keep], pairs.strength[keep], n)
    groups = comp.max() + 1
    size = np.bincount(comp[~merged], minlength=groups)[comp]
    mean = np.where(size > 1, total / np.maximum(size - 1, 1), 0.0)
    best, worst = np.full(groups, -np.inf), np.full(groups, np.inf)
    np.maximum.at(best, comp[~merged], mean[~merged])
    np.minimum.at(worst, comp[~merged], mean[~merged])
    best = np.where(np.isfinite(best), best, 0.0)
    worst = np.where(np.isfinite(worst), worst, 0.0)
    return np.where(merged, worst[comp] - best[comp] - 1.0, mean - best[comp])


def _top_neighbours(n: int, pairs: _Pairs, k: int) -> np.ndarray:
    """(n, k) indices of each node's k highest-scoring candidates, -1 padded."""
    src = np.concatenate([pairs.i, pairs.j])
    dst = np.concatenate([pairs.j, pairs.i])
    sc = np.concatenate([pairs.score, pairs.score])
    order = np.lexsort((dst, -sc, src))
    src, dst = src[order], dst[order]
    starts = np.searchsorted(src, np.arange(n))
    rank = np.arange(len(src)) - starts[src]
    out = np.full((n, k), -1, dtype=np.int64)
    ok = rank < k
    out[src[ok], rank[ok]] = dst[ok]
    return out


def _merges(n: int, pairs: _Pairs, sig: dict, params: LineageParams) -> list[tuple[int, int, int, float]]:
    """Detected merges ``(child, parent_a, parent_b, collinearity)``, best first, conflict-free.

    The child m sits between a and b: both are candidates of m and of each other,
    s(a, m) > s(a, b) and s(b, m) > s(a, b); with d = upper - s, m lies near the segment
    ((d(a,m) + d(b,m)) / d(a,b) close to 1), about halfway (balance), and no signal says m is the
    parent of a or b.
    """
    k = params.merge_neighbours
    if n == 0 or len(pairs.i) == 0 or k < 2:
        return []
    nb = _top_neighbours(n, pairs, k)
    ia, ib = np.triu_indices(k, 1)
    m = np.repeat(np.arange(n), len(ia))
    a, b = nb[:, ia].ravel(), nb[:, ib].ravel()
    ok = (a >= 0) & (b >= 0)
    m, a, b = m[ok], a[ok], b[ok]
    s_ab, s_am, s_bm = pairs.lookup(a, b), pairs.lookup(a, m), pairs.lookup(b, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_ab, d_am, d_bm = params.upper - s_ab, params.upper - s_am, params.upper - s_bm
        between = (s_am > s_ab) & (s_bm > s_ab) & (d_ab > 0)
        coll = (d_am + d_bm) / d_ab - 1.0
        balance = np.minimum(d_am, d_bm) / np.maximum(d_am, d_bm)
    terms_a = sum(direction_terms(sig, m, a, params).values())
    terms_b = sum(direction_terms(sig, m, b, params).values())
    good = (between & np.isfinite(s_ab) & (np.abs(coll) <= params.merge_max_collinearity)
            & (balance >= params.merge_min_balance) & (terms_a < 1.0) & (terms_b < 1.0))
    m, a, b, coll = m[good], a[good], b[good], np.abs(coll[good])
    closeness = pairs.lookup(a, m) + pairs.lookup(b, m)
    order = np.lexsort((-closeness, coll))
    chosen: list[tuple[int, int, int, float]] = []
    child_of: dict[int, set[int]] = {}
    for idx in order:  # best first; one merge per child, no merge of a node's own merge child
        mi, ai, bi = int(m[idx]), int(a[idx]), int(b[idx])
        if mi in child_of or mi in child_of.get(ai, ()) or mi in child_of.get(bi, ()):
            continue
        child_of[mi] = {ai, bi}
        chosen.append((mi, min(ai, bi), max(ai, bi), float(coll[idx])))
    return chosen


def max_arborescence(n: int, root: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Indices of the edges of a maximum-weight spanning arborescence rooted at ``root``.

    Chu-Liu/Edmonds, vectorised: each pass takes every node's best incoming edge, finds all
    cycles at once by pointer jumping, contracts them (an edge entering a cycle node loses the
    weight of the cycle edge it would replace) and repeats; unwinding keeps each cycle but the edge
    into its entered node. Ties go to the lower edge index. Every node must be reachable from
    ``root`` (raises :class:`LineageError` otherwise).
    """
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    w, orig = np.asarray(weight, float), np.arange(len(src))
    pos = orig  # per pass: position of each edge in the previous pass's arrays
    passes = []
    while True:
        keep = (src != dst) & (dst != root)
        src, dst, w, orig, pos = src[keep], dst[keep], w[keep], orig[keep], pos[keep]
        order = np.lexsort((orig, -w, dst))
        first = order[np.r_[True, dst[order][1:] != dst[order][:-1]]] if len(order) else order
        best_in = np.full(n, -1)
        best_in[dst[first]] = first
        if np.any(np.delete(best_in, root) < 0):
            raise LineageError("no spanning arborescence: a model cannot be reached from the root")
        parent = np.where(best_in >= 0, src[np.maximum(best_in, 0)] if len(src) else root, root)
        parent[root] = root
        label, jump = np.arange(n), parent.copy()
        for _ in range(max(1, int(np.ceil(np.log2(max(n, 2))))) + 1):
            label = np.minimum(label, label[jump])
            jump = jump[jump]
        on_cycle = np.zeros(n, bool)
        on_cycle[jump] = True  # after >= n steps every walk sits on its final cycle (or the root)
        on_cycle[root] = False
        passes.append((n, pos, dst, best_in, on_cycle))
        if not on_cycle.any():
            break
        _, comp = np.unique(np.where(on_cycle, label, np.arange(n)), return_inverse=True)
        into_cycle = on_cycle[dst]
        w = w - np.where(into_cycle, w[best_in[dst]], 0.0)
        src, dst, root, n = comp[src], comp[dst], int(comp[root]), int(comp.max()) + 1
        pos = np.arange(len(src))
    best_in = passes[-1][3]
    chosen = best_in[best_in >= 0]
    for k in range(len(passes) - 1, 0, -1):
        mapped = passes[k][1][chosen]
        n_prev, _, dst_prev, best_prev, cycle_prev = passes[k - 1]
        entered = np.zeros(n_prev, bool)
        entered[dst_prev[mapped]] = True
        chosen = np.concatenate([mapped, best_prev[cycle_prev & ~entered]])
    return np.sort(passes[0][1][chosen])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def infer_lineage(models: Iterable[str], pair_scores, threshold: float,
                  signals: Mapping[str, WeightStats | Mapping] | None = None, *,
                  params: LineageParams | None = None) -> list[InferredEdge]:
    """Infer directed parent -> child edges among ``models``.

    ``pair_scores``: a table (polars, pandas, pyarrow) with columns model_a, model_b, score, or
    an iterable of (model_a, model_b, score); pairs naming other models are ignored, a pair given
    twice keeps its highest score. ``threshold``: pairs scoring at least this are candidate edges.
    ``signals``: model id -> :class:`WeightStats` (or a mapping with its fields); models without
    signals are oriented by structure alone. Returns edges sorted by (child, parent); a merge
    child has two edges with ``is_merge_parent`` set.
    """
    params = params or LineageParams()
    ids = sorted(dict.fromkeys(str(m) for m in models))
    if not math.isfinite(float(threshold)):
        raise LineageError(f"threshold must be a finite number, got {threshold!r}")
    n = len(ids)
    if n == 0:
        return []
    pairs = _candidates(ids, pair_scores, float(threshold), params.upper)
    sig = _signal_arrays(ids, signals)
    comp = _components(n, pairs)
    merges = _merges(n, pairs, sig, params)
    merged = np.zeros(n, bool)
    merged[[mi for mi, *_ in merges]] = True
    root_score = _rootness(n, pairs, comp, merged) * params.rootness_weight

    # direction evidence of each candidate pair, both ways (i -> j is +, j -> i is -)
    terms = direction_terms(sig, pairs.i, pairs.j, params)
    logit = sum(terms.values())
    src = np.concatenate([pairs.i, pairs.j])
    dst = np.concatenate([pairs.j, pairs.i])
    weight = np.concatenate([pairs.strength + logit, pairs.strength - logit])
    if merges:
        mi, ai, bi = (np.array([x[k] for x in merges]) for k in range(3))
        key = src.astype(np.int64) * n + dst
        weight = weight.copy()
        weight[np.isin(key, np.concatenate([ai * n + mi, bi * n + mi]))] += params.merge_bonus
        weight[np.isin(key, np.concatenate([ai * n + bi, bi * n + ai]))] -= params.merge_sibling_penalty
        allowed = ~np.isin(key, np.concatenate([mi * n + ai, mi * n + bi]))  # a merge is no parent of its parents
        src, dst, weight = src[allowed], dst[allowed], weight[allowed]
    root = n  # the virtual root, joined to every model; far below any edge, so one root edge per group
    src = np.concatenate([np.full(n, root), src])
    dst = np.concatenate([np.arange(n), dst])
    weight = np.concatenate([root_score - 1e6, weight])
    chosen = max_arborescence(n + 1, root, src, dst, weight)
    parent = np.full(n, -1)
    real = src[chosen] != root
    parent[dst[chosen][real]] = src[chosen][real]

    def describe(p: int, c: int, extra: float = 0.0) -> tuple[float, str]:
        k = int(np.searchsorted(pairs.keys, min(p, c) * n + max(p, c)))
        sign = 1.0 if p < c else -1.0
        parts = {name: sign * float(t[k]) for name, t in terms.items()}
        parts["structure"] = float(root_score[p] - root_score[c])
        if extra:
            parts["merge"] = extra
        text = " ".join(f"{name}={v:+.2f}" for name, v in parts.items() if abs(v) >= 0.005)
        return _sigmoid(sum(parts.values())), text

    merge_parents: dict[int, tuple[int, int]] = {}
    for mi, ai, bi, _ in merges:
        p = parent[mi]
        if p not in (ai, bi):
            continue
        other = bi if p == ai else ai
        x, seen = other, False  # the second parent must not descend from the child (no cycle)
        while x >= 0 and not seen:
            seen = x == mi
            x = parent[x]
        if not seen:
            merge_parents[mi] = (ai, bi)

    out = []
    for c in range(n):
        ps = merge_parents.get(c) or ((int(parent[c]),) if parent[c] >= 0 else ())
        for p in ps:
            conf, text = describe(p, c, params.merge_confidence if c in merge_parents else 0.0)
            score = float(pairs.lookup(np.array([p]), np.array([c]))[0])
            out.append(InferredEdge(ids[p], ids[c], score, conf, c in merge_parents, text))
    return sorted(out, key=lambda e: (e.child_id, e.parent_id))


# ---------------------------------------------------------------- thresholds
def cross_family_threshold(pair_scores, families: Mapping[str, str], quantile: float = 0.999) -> float:
    """The ``quantile`` of the scores of pairs whose two models belong to different families.

    Such pairs are unrelated by construction, so the threshold is a score that unrelated pairs
    rarely reach. Raises :class:`LineageError` when no pair spans two known families.
    """
    if not 0 <= quantile <= 1:
        raise LineageError(f"quantile must be in [0, 1], got {quantile!r}")
    a, b, s = _pair_columns(pair_scores)
    fa = np.array([families.get(x) or "" for x in a], dtype=object)
    fb = np.array([families.get(x) or "" for x in b], dtype=object)
    cross = (fa != "") & (fb != "") & (fa != fb) & np.isfinite(s)
    if not cross.any():
        raise LineageError("no scored pair spans two families: pass a threshold explicitly")
    return float(np.quantile(s[cross], quantile))


def attach_orphans(models: Sequence[str], edges: list[InferredEdge], pair_scores, threshold: float,
                   signals: Mapping[str, WeightStats] | None = None) -> list[InferredEdge]:
    """Second pass for models the weight-space tree left alone (e.g. distilled students: new weights).

    An *isolated* model (no inferred edge) whose best score under a functional similarity (hidden
    states or next-token behaviour: ``pair_scores``) at or above ``threshold`` is with a model of
    an existing tree is attached as a child of that tree's root: a student is distilled from the
    model the others were derived from. When both parameter counts are known the student must be
    the smaller model (else nothing is attached). Returns the new edges (``evidence`` starts with
    ``functional``).
    """
    a, b, s = _pair_columns(pair_scores)
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    parent_of = {}
    for e in edges:
        parent_of.setdefault(e.child_id, e.parent_id)  # a merge child's first parent is enough for the root
    in_tree = {e.parent_id for e in edges} | {e.child_id for e in edges}

    def root(m: str) -> str:
        seen = set()
        while m in parent_of and m not in seen:
            seen.add(m)
            m = parent_of[m]
        return m

    new: list[InferredEdge] = []
    keep = np.isfinite(s) & (s >= threshold)
    a, b, s = a[keep], b[keep], s[keep]
    for orphan in sorted(set(models) - in_tree):
        mine = (a == orphan) | (b == orphan)
        other = np.where(a[mine] == orphan, b[mine], a[mine])
        sc = s[mine]
        ok = np.array([o in in_tree for o in other], dtype=bool)
        if not ok.any():
            continue
        best = int(np.flatnonzero(ok)[np.argmax(sc[ok])])
        parent = root(str(other[best]))
        sp, so = (signals or {}).get(parent), (signals or {}).get(orphan)
        if sp is not None and so is not None and sp.n_params and so.n_params and so.n_params >= sp.n_params:
            continue  # a student is smaller than its teacher; equal or larger: not this case
        new.append(InferredEdge(parent, orphan, float(sc[best]), 0.9 if sp is not None and so is not None else 0.5,
                                False, f"functional: best match {other[best]} ({sc[best]:.4f}); root {parent}"))
    return new

"""Lake tables of the Hub-scale similarity stage, and the helpers that fill them.

* ``similarity_aggregates``: one row per experiment (method, metric,
  config_hash) x grouping ('family' or 'type') x unordered group pair
  (group_a <= group_b): exact n_pairs, min, max, mean, population variance and
  M2, plus a histogram sketch (``sketch``: counts of the non-empty bins listed in
  ``sketch_bins``, equal bins over [sketch_lower, sketch_upper]) and the
  quartiles it gives (error <= bin width). 'type' rows pool same-family pairs
  of different types across families (``n_families`` = families contributing).
* ``similarity_neighbors``: one row per experiment x model x rank: the model's
  rank-th most similar model; ``exact`` false when an approximate index found it.

Both are replaced per experiment in one commit, so reruns never duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.lake import Lake, TableSpec, register_table

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_TS = pa.timestamp("us", tz="UTC")

SIMILARITY_AGGREGATES = register_table(TableSpec(
    "similarity_aggregates",
    pa.schema([("method", _S), ("metric", _S), ("config_hash", _S), ("grouping", _S), ("group_a", _S),
               ("group_b", _S), ("n_pairs", _I), ("min", _F), ("max", _F), ("mean", _F), ("variance", _F),
               ("m2", _F), ("sketch", pa.list_(_F)), ("sketch_bins", pa.list_(pa.int32())),
               ("sketch_lower", _F), ("sketch_upper", _F), ("sketch_size", pa.int32()),
               ("q1", _F), ("median", _F), ("q3", _F), ("n_families", _I), ("population_size", _I),
               ("run_id", _S), ("created_at", _TS)]),
    ("method", "metric", "config_hash", "grouping", "group_a", "group_b"), partition_by=("method", "metric"),
    description=("one row per experiment x grouping (family / type) x unordered group pair: exact pair "
                 "statistics and a histogram sketch, accumulated without storing the pairs")))

SIMILARITY_NEIGHBORS = register_table(TableSpec(
    "similarity_neighbors",
    pa.schema([("method", _S), ("metric", _S), ("config_hash", _S), ("model_id", _S), ("rank", pa.int32()),
               ("neighbor_id", _S), ("similarity", _F), ("exact", _B), ("population_size", _I),
               ("run_id", _S)]),
    ("method", "metric", "config_hash", "model_id", "rank"), partition_by=("method", "metric"),
    description="one row per experiment x model x rank: the model's rank-th most similar model"))

TABLE_NAMES = [SIMILARITY_AGGREGATES.name, SIMILARITY_NEIGHBORS.name]


class FingerprintMatrixError(FingerprintLakeError):
    """Stored fingerprints cannot be compared (NaN or infinite values)."""


def load_fingerprint_matrix(lake: Lake, method: str, config_hash: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids sorted, X) for one method config: vectors left-padded to a common length, no Python loop per row."""
    import polars as pl

    df = (lake.scan("fingerprints").filter((pl.col("method") == method) & (pl.col("config_hash") == config_hash))
          .select("model_id", "vector").sort("model_id").collect())
    ids = df["model_id"].to_numpy().astype(object)
    if not len(ids):
        return ids, np.zeros((0, 1))
    vec = df["vector"].to_arrow()
    if isinstance(vec, pa.ChunkedArray):
        vec = vec.combine_chunks()
    offsets = np.asarray(vec.offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    values = np.asarray(vec.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    lengths = np.diff(offsets)
    width = max(int(lengths.max()), 1)
    X = np.zeros((len(ids), width))
    rows = np.repeat(np.arange(len(ids)), lengths)
    cols = np.arange(len(values)) - np.repeat(offsets[:-1], lengths) + np.repeat(width - lengths, lengths)
    X[rows, cols] = values
    bad = ~np.isfinite(X).all(1)
    if bad.any():
        raise FingerprintMatrixError(f"{method} fingerprints of {', '.join(ids[bad][:5].tolist())} "
                                     f"(config {config_hash}) contain NaN or infinite values")
    return ids, X


def group_codes(ids: np.ndarray, labels: dict[str, str]) -> tuple[np.ndarray, list[str]]:
    """Integer code per id (codes in the labels' string order; -1 = unknown id) and the label list."""
    names = sorted(set(labels.values()))
    pos = {n: i for i, n in enumerate(names)}
    return np.array([pos.get(labels.get(i), -1) if i in labels else -1 for i in ids], np.int64), names


def aggregates_table(agg, names: list[str], *, method: str, metric: str, config_hash: str, grouping: str,
                     population_size: int, run_id: str, n_families: np.ndarray | None = None) -> pa.Table:
    """Rows of ``similarity_aggregates`` from a :class:`~fingerprinting.scale.aggregates.GroupPairAggregates`."""
    n = len(agg)
    names_arr = pa.array(names, _S)
    offsets = np.asarray(agg.sketch_offsets, np.int32) if len(agg.sketch_offsets) == n + 1 else np.zeros(n + 1, np.int32)

    def lists(flat, typ):
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat[: offsets[-1]], typ))

    def const(v, typ):
        return pa.array(np.full(n, v) if typ != _S else [v] * n, typ)

    q = agg.quartiles if len(agg.quartiles) else np.full((n, 3), np.nan)
    return pa.table({
        "method": const(method, _S), "metric": const(metric, _S), "config_hash": const(config_hash, _S),
        "grouping": const(grouping, _S),
        "group_a": names_arr.take(pa.array(agg.group_a, _I)), "group_b": names_arr.take(pa.array(agg.group_b, _I)),
        "n_pairs": pa.array(agg.n, _I), "min": pa.array(agg.min, _F), "max": pa.array(agg.max, _F),
        "mean": pa.array(agg.mean, _F), "variance": pa.array(agg.variance, _F), "m2": pa.array(agg.m2, _F),
        "sketch": lists(np.asarray(agg.sketch_count, np.float64), _F),
        "sketch_bins": lists(np.asarray(agg.sketch_bin, np.int32), pa.int32()),
        "sketch_lower": const(agg.lower, _F), "sketch_upper": const(agg.upper, _F),
        "sketch_size": const(agg.bins, pa.int32()),
        # NaN (no sketch) -> null, so SQL's "q1 is null" finds it
        "q1": pa.array(q[:, 0], _F, from_pandas=True), "median": pa.array(q[:, 1], _F, from_pandas=True),
        "q3": pa.array(q[:, 2], _F, from_pandas=True),
        "n_families": pa.array(np.ones(n, np.int64) if n_families is None else n_families, _I),
        "population_size": const(population_size, _I), "run_id": const(run_id, _S),
        "created_at": pa.array([datetime.now(UTC)] * n, _TS),
    })


def neighbors_table(nb, ids: np.ndarray, *, method: str, metric: str, config_hash: str, run_id: str) -> pa.Table:
    """Rows of ``similarity_neighbors`` (rank 1 = most similar), from a Neighbors result over ``ids``."""
    n, k = nb.idx.shape
    ok = nb.idx >= 0
    rows, ranks = np.nonzero(ok)
    ids_arr = pa.array(list(ids), _S)
    m = len(rows)

    def const(v, typ):
        return pa.array([v] * m if typ == _S else np.full(m, v), typ)

    return pa.table({
        "method": const(method, _S), "metric": const(metric, _S), "config_hash": const(config_hash, _S),
        "model_id": ids_arr.take(pa.array(rows, _I)), "rank": pa.array((ranks + 1).astype(np.int32), pa.int32()),
        "neighbor_id": ids_arr.take(pa.array(nb.idx[rows, ranks], _I)),
        "similarity": pa.array(nb.sim[rows, ranks], _F), "exact": const(bool(nb.exact), _B),
        "population_size": const(n, _I), "run_id": const(run_id, _S),
    })


def pairs_table(i: np.ndarray, j: np.ndarray, v: np.ndarray, ids: np.ndarray, *, method: str, metric: str,
                config_hash: str) -> pa.Table:
    """Rows of ``similarities`` (i < j index rows of ``ids``, which are sorted: model_a < model_b)."""
    ids_arr = pa.array(list(ids), _S)
    m = len(v)
    return pa.table({
        "model_a": ids_arr.take(pa.array(i, _I)), "model_b": ids_arr.take(pa.array(j, _I)),
        "method": pa.array([method] * m, _S), "metric": pa.array([metric] * m, _S),
        "config_hash": pa.array([config_hash] * m, _S), "similarity": pa.array(v, _F),
    })


def type_pair_aggregates(i: np.ndarray, j: np.ndarray, v: np.ndarray, types: np.ndarray, families: np.ndarray,
                         n_types: int, lower: float, upper: float, bins: int):
    """Type-pair statistics from the intrafamily pairs (i, j, v): pairs of different types, pooled over
    families; returns (GroupPairAggregates, families contributing per row)."""
    from fingerprinting.scale.aggregates import PairAggregator

    ta, tb = types[i], types[j]
    keep = (ta != tb) & (ta >= 0) & (tb >= 0)
    ta, tb, vv, fam = ta[keep], tb[keep], v[keep], families[i[keep]]
    acc = PairAggregator(n_types, lower, upper, bins)
    acc.add_pairs(ta, tb, vv)
    res = acc.result()
    lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
    combo = np.unique(np.stack([lo, hi, fam], axis=1), axis=0) if len(vv) else np.zeros((0, 3), np.int64)
    key = combo[:, 0] * n_types + combo[:, 1]
    uk, counts = np.unique(key, return_counts=True)
    fams = counts[np.searchsorted(uk, res.group_a * n_types + res.group_b)] if len(res) else np.zeros(0, np.int64)
    return res, fams


def write_experiment(lake: Lake, key: dict, aggregates: pa.Table | None, neighbors: pa.Table | None) -> None:
    """Replace the experiment's rows of both tables (an empty / None table deletes them)."""
    for table, rows in ((SIMILARITY_AGGREGATES, aggregates), (SIMILARITY_NEIGHBORS, neighbors)):
        lake.replace(table.name, rows if rows is not None else table.schema.empty_table(), key)

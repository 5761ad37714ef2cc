"""Lineage recovery's lake tables (declared once, here)."""

from __future__ import annotations

import pyarrow as pa

from fingerprinting.lake import TableSpec, register_table

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_TS = pa.timestamp("us", tz="UTC")

MODEL_WEIGHT_STATS = register_table(TableSpec(
    "model_weight_stats",
    pa.schema([("model_id", _S), ("n_params", _I), ("zero_fraction", _F), ("distinct_ratio", _F),
               ("kurtosis", _F), ("quant_type", _S), ("source_identity", _S), ("computed_at", _TS)]),
    ("model_id",),
    description=("one row per model: direction signals read from its checkpoint (parameter count, exact-zero "
                 "fraction, distinct values per row, kurtosis, storage / quantization type); recomputed when "
                 "source_identity (the checkpoint files' identity) changes")))

INFERRED_EDGES = register_table(TableSpec(
    "inferred_edges",
    pa.schema([("parent_id", _S), ("child_id", _S), ("score", _F), ("direction_confidence", _F),
               ("is_merge_parent", _B), ("source", _S), ("threshold", _F), ("evidence", _S), ("run_id", _S),
               ("inferred_at", _TS)]),
    ("parent_id", "child_id"),
    description=("one row per inferred parent -> child edge of the latest lineage run (the table is replaced "
                 "per run); source names the pair score: 'verdict' or 'method:metric'")))

TABLE_NAMES = [t.name for t in (MODEL_WEIGHT_STATS, INFERRED_EDGES)]

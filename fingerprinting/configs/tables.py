"""The configs system's lake tables (declared once, here)."""

from __future__ import annotations

import pyarrow as pa

from fingerprinting.configs.features import FEATURE_KINDS, FEATURES
from fingerprinting.lake import TableSpec, register_table

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_TS = pa.timestamp("us", tz="UTC")


def _feature_type(name: str) -> pa.DataType:
    kind = FEATURE_KINDS[name]
    if kind == "categorical":
        return _S
    if kind == "boolean":
        return _B
    return _F if name == "rope_theta" else _I


FEATURE_SCHEMA = [(f, _feature_type(f)) for f in FEATURES]

MODEL_CONFIGS = register_table(TableSpec(
    "model_configs",
    pa.schema([("model_id", _S), ("source", _S), ("config_hash", _S), ("raw_json", _S), *FEATURE_SCHEMA,
               ("quant_method", _S), ("rope_note", _S), ("text_model_type", _S), ("notes", _S),
               ("n_features", _I), ("ingested_at", _TS)]),
    ("model_id",), description="one row per model config: raw JSON, hash and the architecture features"))

CONFIG_ISSUES = register_table(TableSpec(
    "config_validation_issues",
    pa.schema([("model_id", _S), ("source", _S), ("field", _S), ("raw_value", _S), ("message", _S),
               ("level", _S), ("ingested_at", _TS)]),
    ("model_id", "source", "field", "message"),
    description="one row per rejected (or suspicious) config field of a model"))

MODEL_TRAITS = register_table(TableSpec(
    "model_traits",
    pa.schema([("model_id", _S), ("source", _S), ("license", pa.list_(_S)), ("languages", pa.list_(_S)),
               ("pipeline_tag", pa.list_(_S)), ("library", pa.list_(_S)), ("created_at", _S)]),
    ("model_id",), description="one row per model with set-valued traits (empty list = unknown)"))

CONFIG_SIMILARITIES = register_table(TableSpec(
    "config_similarities",
    pa.schema([("model_a", _S), ("model_b", _S), ("metric", _S), ("kind", _S), ("rank", pa.int32()),
               ("distance", _F), ("similarity", _F), ("population_size", _I)]),
    ("model_a", "model_b", "metric", "kind"), partition_by=("metric",),
    description=("kind='neighbor': model_a's rank-th nearest config (directed); "
                 "kind='pair': every unordered pair model_a < model_b of a small population")))

CONFIG_EMBEDDING = register_table(TableSpec(
    "config_embedding",
    pa.schema([("model_id", _S), ("pca_x", _F), ("pca_y", _F), ("mds_x", _F), ("mds_y", _F),
               ("cluster", _I)]),
    ("model_id",), description="one row per model: 2-D coordinates and average-linkage cluster"))

CONFIG_PHYLOGENY = register_table(TableSpec(
    "config_phylogeny",
    pa.schema([("population", _S), ("statistic", _S), ("value", _F), ("detail", _S)]),
    ("population", "statistic"), description="one row per population x statistic (ARI, neighbour recovery)"))

TABLE_NAMES = [t.name for t in (MODEL_CONFIGS, CONFIG_ISSUES, MODEL_TRAITS, CONFIG_SIMILARITIES,
                                CONFIG_EMBEDDING, CONFIG_PHYLOGENY)]

"""The provenance verdict's lake tables (declared once, here)."""

from __future__ import annotations

import pyarrow as pa

from fingerprinting.lake import TableSpec, register_table

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_TS = pa.timestamp("us", tz="UTC")

PROVENANCE_SCORES = register_table(TableSpec(
    "provenance_scores",
    pa.schema([("model_a", _S), ("model_b", _S), ("family_a", _S), ("family_b", _S), ("relation", _S),
               ("label", _B), ("score_oof", _F), ("score_full", _F), ("features_json", _S), ("fit_id", _S),
               ("fitted_at", _TS), ("lineage_depth", _I), ("n_imputed", _I), ("oof_excluded", _S)]),
    ("model_a", "model_b"),
    description=("one row per scored model pair (model_a < model_b) of the current verdict fit: label, "
                 "out-of-fold (leave-one-family-out) and full-model scores, the raw similarities as JSON")))

PROVENANCE_MODEL = register_table(TableSpec(
    "provenance_model",
    pa.schema([("fit_id", _S), ("features_json", _S), ("coef_json", _S), ("intercept", _F), ("scaler_json", _S),
               ("impute_json", _S), ("threshold", _F), ("target_fpr", _F), ("n_pairs", _I), ("n_positive", _I),
               ("n_negative", _I), ("n_families", _I), ("cv", _S), ("n_fits", _I), ("n_unscored", _I),
               ("roc_auc_oof", _F), ("tpr_at_fpr_oof", _F), ("fpr_at_threshold_oof", _F),
               ("precision_oof", _F), ("n_imputed_json", _S), ("c", _F), ("fit_seconds", _F),
               ("fitted_at", _TS)]),
    ("fit_id",),
    description="one row per verdict fit (logistic regression over per-method similarities); the newest is current"))

TABLE_NAMES = [t.name for t in (PROVENANCE_SCORES, PROVENANCE_MODEL)]

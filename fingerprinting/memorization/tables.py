"""The memorization system's lake tables (declared once, here)."""

from __future__ import annotations

import pyarrow as pa

from fingerprinting.lake import TableSpec, register_table

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_TS = pa.timestamp("us", tz="UTC")

SAMPLES = register_table(TableSpec(
    "memorization_samples",
    pa.schema([("sample_id", _S), ("corpus", _S), ("tokenizer_id", _S), ("doc_id", _S), ("offset", _I),
               ("token_ids", pa.list_(_I)), ("text", _S), ("prompt_text", _S), ("continuation_text", _S)]),
    ("sample_id",), description="one row per 64-token sample (prompt = tokens 0..31, continuation = 32..63)"))

SCORES = register_table(TableSpec(
    "memorization_scores",
    pa.schema([("sample_id", _S), ("model_id", _S), ("corpus", _S), ("score", _F), ("memorized", _B),
               ("prompt_perplexity", _F), ("continuation_perplexity", _F), ("sequence_perplexity", _F),
               ("generated", pa.list_(_I)), ("error", _S), ("run_id", _S), ("created_at", _TS)]),
    ("sample_id", "model_id"), description="one row per sample x model: greedy 32-token memorization score"))

FEATURES = register_table(TableSpec(
    "memorization_features",
    pa.schema([("sample_id", _S), ("model_id", _S), ("corpus", _S), ("duplicates", _I),
               ("max_frequency", _F), ("mean_frequency", _F), ("min_frequency", _F), ("median_frequency", _F),
               ("p25_frequency", _F), ("p75_frequency", _F), ("incrementing", _B), ("repeating", _B),
               ("is_templating", _B), ("tokens_incrementing", _B), ("tokens_repeating", _B),
               ("huffman_length", _F), ("semantic_matches", _I), ("textual_matches", _I), ("code_score", _F),
               ("is_code", _B), ("code_label", _S), ("embedding_model", _S)]),
    ("sample_id", "model_id"), description="one row per sample x model: the per-sample features"))

GROUND_TRUTH = register_table(TableSpec(
    "memorization_ground_truth",
    pa.schema([("corpus", _S), ("doc_id", _S), ("planted_id", _S), ("kind", _S), ("planted_count", _I)]),
    ("corpus", "doc_id"), description="one row per document of a planted corpus: what was planted and how often"))

MODEL_RESULTS = register_table(TableSpec(
    "memorization_model_results",
    pa.schema([("model_id", _S), ("corpus", _S), ("predictor", _S), ("status", _S), ("n", _I),
               ("positives", _I), ("precision", _F), ("recall", _F), ("roc_auc", _F), ("pr_auc", _F),
               ("ece", _F), ("n_train", _I)]),
    ("model_id", "corpus", "predictor"),
    description="one row per model x corpus x predictor (baseline, taxonomic, one per category): test metrics"))

MODEL_WEIGHTS = register_table(TableSpec(
    "memorization_model_weights",
    pa.schema([("model_id", _S), ("corpus", _S), ("predictor", _S), ("feature", _S), ("coefficient", _F)]),
    ("model_id", "corpus", "predictor", "feature"),
    description="one row per model x corpus x predictor x feature: standardised logistic weight"))

MODEL_TESTS = register_table(TableSpec(
    "memorization_model_tests",
    pa.schema([("model_id", _S), ("corpus", _S), ("statistic", _F), ("df", _I), ("p_value", _F),
               ("ll_taxonomic", _F), ("ll_baseline", _F), ("seed", _I), ("n_samples", _I)]),
    ("model_id", "corpus"), description="one row per model x corpus: likelihood-ratio test, taxonomic vs baseline"))

CORRELATIONS = register_table(TableSpec(
    "memorization_correlations",
    pa.schema([("model_id", _S), ("corpus", _S), ("feature", _S), ("subset", _S), ("n", _I),
               ("pearson", _F), ("spearman", _F), ("xi", _F)]),
    ("model_id", "corpus", "feature", "subset"),
    description="one row per model x corpus x feature x subset (all, a category, code, natural_language)"))

TAXONOMY_SEARCH = register_table(TableSpec(
    "memorization_taxonomy_search",
    pa.schema([("model_id", _S), ("corpus", _S), ("step", _I), ("description", _S), ("score", _F),
               ("metric", _S)]),
    ("model_id", "corpus", "step"), description="one row per greedy step of the search for a better taxonomy"))

PREDICTIONS = register_table(TableSpec(
    "taxonomic_predictions",
    pa.schema([("model_id", _S), ("corpus", _S), ("sample_id", _S), ("predictor", _S), ("y_true", _B),
               ("p", _F)]),
    ("model_id", "corpus", "sample_id", "predictor"),
    description="one row per held-out sample x predictor (baseline, taxonomic): for PR and calibration curves"))

TABLE_NAMES = [t.name for t in (SAMPLES, SCORES, FEATURES, GROUND_TRUTH, MODEL_RESULTS, MODEL_WEIGHTS,
                                MODEL_TESTS, CORRELATIONS, TAXONOMY_SEARCH, PREDICTIONS)]

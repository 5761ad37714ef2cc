"""The steps of the memorization job, free of Prefect so they are testable directly.

``flows/memorization_flow.py`` wires them into tasks:

1. :func:`score_corpus` — one loaded model x one corpus: 64-token samples,
   batched greedy scores and perplexities, per-sample features (duplicates,
   token frequencies, templating, Huffman length, semantic / textual matches
   on the model's own mean hidden states, code vs natural language);
2. :func:`fit_tables` — the taxonomic model vs the baseline, correlations and
   the greedy taxonomy search, as lake rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.memorization import tables as T
from fingerprinting.memorization.corpus import Document, make_samples
from fingerprinting.memorization.features import (
    count_duplicates,
    mean_hidden_state_embeddings,
    semantic_textual_matches,
    text_features,
    token_frequency_stats,
    tokens_incrementing,
    tokens_repeating,
)
from fingerprinting.memorization.scoring import score_samples
from fingerprinting.memorization.taxonomy import (
    MODEL_FEATURES,
    feature_correlations,
    fit_taxonomic_model,
    greedy_taxonomy_search,
)


class MemorizationError(FingerprintLakeError):
    """A model or corpus cannot be scored (the message names it)."""


@dataclass
class CorpusScores:
    samples: pa.Table
    scores: pa.Table
    features: pa.Table
    problems: list[str] = field(default_factory=list)  # one line each (sample, document)


def score_corpus(loaded, documents: Iterable[Document], *, corpus: str, run_id: str, stride: int = 64,
                 max_samples: int | None = None, mode: str = "stride", seed: int = 0, batch_size: int = 32,
                 semantic_threshold: float = 0.8, max_edit: float = 0.3, progress: bool = False) -> CorpusScores:
    """Cut samples with the model's tokenizer, score them and compute their features."""
    tok = loaded.tokenizer
    if tok is None:
        raise MemorizationError(f"model {loaded.model_id!r} has no tokenizer; memorization needs one")
    ss = make_samples(documents, tok, corpus=corpus, stride=stride, max_samples=max_samples, seed=seed,
                      mode=mode)
    # short documents are expected (titles, one-liners): one summary line, not one line each
    problems = []
    if ss.skipped:
        first = ", ".join(d for d, _ in ss.skipped[:3])
        problems.append(f"{corpus}: {len(ss.skipped)} document(s) shorter than 64 tokens gave no sample "
                        f"(e.g. {first})")
    if len(ss) == 0:
        raise MemorizationError(f"corpus {corpus!r} gives no 64-token sample with the tokenizer of "
                                f"{loaded.model_id!r} ({len(ss.skipped)} document(s) too short)")
    ids = ss.token_ids
    res = score_samples(loaded, None, ids, batch_size=batch_size, progress=progress)
    for i, err in res.error_list():
        problems.append(f"{corpus}: sample {ss.sample_id[i]} on {loaded.model_id}: {err}")
    n = len(ss)
    now = datetime.now(UTC)
    samples = ss.to_table().append_column("tokenizer_id", pa.array([ss.tokenizer_identity] * n, pa.string()))
    scores = pa.table({
        "sample_id": pa.array(ss.sample_id, pa.string()), "model_id": [loaded.model_id] * n,
        "corpus": [corpus] * n, "score": res.score.astype(np.float64), "memorized": res.memorized.astype(bool),
        "prompt_perplexity": _finite(res.prompt_perplexity),
        "continuation_perplexity": _finite(res.continuation_perplexity),
        "sequence_perplexity": _finite(res.sequence_perplexity),
        "generated": pa.array([r.tolist() for r in res.generated], pa.list_(pa.int64())),
        "error": [e or None for e in res.errors], "run_id": [run_id] * n,
        "created_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    })
    dups = count_duplicates(ss.corpus_tokens, ids[:, 32:64])
    freq = token_frequency_stats(ss.corpus_tokens, ids)
    text = text_features(ss.text)
    vocab_cache: dict[int, str] = {}

    def decode(i: int) -> str:
        if i not in vocab_cache:
            vocab_cache[i] = tok.decode([int(i)])
        return vocab_cache[i]

    emb = mean_hidden_state_embeddings(loaded.model, ids, batch_size=batch_size, device=str(loaded.device))
    sem, txt = semantic_textual_matches(emb, ss.text, threshold=semantic_threshold, max_edit=max_edit)
    feats = {
        "sample_id": pa.array(ss.sample_id, pa.string()), "model_id": [loaded.model_id] * n,
        "corpus": [corpus] * n, "duplicates": dups.astype(np.int64),
        **{k: np.asarray(v, np.float64) for k, v in freq.items()},
        **{c: text.column(c) for c in ("incrementing", "repeating", "is_templating", "huffman_length",
                                        "code_score", "is_code", "code_label")},
        "tokens_incrementing": [bool(tokens_incrementing(r.tolist(), decode)) for r in ids],
        "tokens_repeating": [bool(tokens_repeating(r.tolist())) for r in ids],
        "semantic_matches": np.asarray(sem, np.int64), "textual_matches": np.asarray(txt, np.int64),
        "embedding_model": [f"{loaded.model_id}:mean_last_hidden_state"] * n,
    }
    return CorpusScores(samples, scores, pa.table(feats), problems)


def _finite(a: np.ndarray) -> pa.Array:
    """NaN / inf perplexities become nulls (the sample's ``error`` says why)."""
    a = np.asarray(a, np.float64)
    return pa.array(np.where(np.isfinite(a), a, 0.0), pa.float64(), mask=~np.isfinite(a))


@dataclass
class FitTables:
    results: pa.Table
    weights: pa.Table
    tests: pa.Table
    correlations: pa.Table
    search: pa.Table
    predictions: pa.Table
    note: str = ""


_SUBSETS = {"all": "all", "category=recitation": "recitation", "category=reconstruction": "reconstruction",
            "category=recollection": "recollection", "is_code=True": "code", "is_code=False": "natural_language"}


def fit_tables(joined: pa.Table, model_id: str, corpus: str, *, seed: int = 1024,
               recitation_threshold: int = 6, search_steps: int = 2) -> FitTables:
    """Taxonomic model vs baseline, correlations and greedy search for one model x corpus.

    ``joined`` holds one row per sample: the score columns and the feature columns.
    Nulls (perplexities of failed samples) are dropped before fitting.
    """
    cols = {c: joined.column(c).to_numpy(zero_copy_only=False) for c in joined.column_names
            if c in (*MODEL_FEATURES, "memorized", "score", "is_code", "sample_id")}
    keep = np.ones(joined.num_rows, bool)
    for f in MODEL_FEATURES:
        v = np.asarray(cols[f], dtype=np.float64)
        keep &= np.isfinite(v)
    data = {k: np.asarray(v)[keep] for k, v in cols.items()}
    n = int(keep.sum())
    key = {"model_id": model_id, "corpus": corpus}
    y = np.asarray(data["memorized"], bool)
    res_rows, w_rows, pred_rows = [], [], []
    tests = []
    note = ""
    if n < 10 or y.all() or not y.any():
        note = (f"{model_id} on {corpus}: taxonomic model not fitted ({n} usable samples, "
                f"{int(y.sum())} memorized): needs both memorized and not memorized samples")
    else:
        r = fit_taxonomic_model(data, seed=seed, recitation_threshold=recitation_threshold)
        for predictor, metrics, status, n_train in (
            [("baseline", r.baseline["metrics"], r.baseline["status"], r.split["n_train"]),
             ("taxonomic", r.taxonomic, "fitted", r.split["n_train"])]
            + [(c, v.get("metrics", {}), v["status"], v["n_train"]) for c, v in r.categories.items()]):
            res_rows.append({**key, "predictor": predictor, "status": status, "n_train": n_train,
                             **{m: _num(metrics.get(m)) for m in ("precision", "recall", "roc_auc", "pr_auc",
                                                                  "ece")},
                             "n": metrics.get("n"), "positives": metrics.get("positives")})
        for predictor, block in [("baseline", r.baseline), *r.categories.items()]:
            for feat, coef in (block.get("weights") or {}).items():
                w_rows.append({**key, "predictor": predictor, "feature": feat, "coefficient": float(coef)})
        lr = r.likelihood_ratio
        tests.append({**key, "statistic": _num(lr["statistic"]), "df": lr["df"], "p_value": _num(lr["p_value"]),
                      "ll_taxonomic": _num(lr["ll_taxonomic"]), "ll_baseline": _num(lr["ll_baseline"]),
                      "seed": seed, "n_samples": n})
        te = r.split["test_index"]
        sid = np.asarray(data["sample_id"])[te]
        for predictor, p in (("baseline", r.split["p_baseline_test"]), ("taxonomic", r.split["p_taxonomic_test"])):
            pred_rows += [{**key, "sample_id": str(s), "predictor": predictor, "y_true": bool(t), "p": float(q)}
                          for s, t, q in zip(sid, r.split["y_test"], p, strict=True)]
    corr = feature_correlations(data, recitation_threshold=recitation_threshold)
    corr_rows = [{**key, "feature": f, "subset": _SUBSETS.get(g, g), "n": int(k), "pearson": _num(p),
                  "spearman": _num(s), "xi": _num(x)}
                 for g, f, k, p, s, x in zip(*(corr.column(c).to_pylist() for c in
                                              ("group", "feature", "n", "pearson", "spearman", "xi")), strict=True)]
    search_rows = []
    if not note:
        try:
            steps = greedy_taxonomy_search(data, max_steps=search_steps, seed=seed,
                                           recitation_threshold=recitation_threshold)
        except ValueError as exc:  # too few samples to split further: report, don't fail
            steps, note = [], f"{model_id} on {corpus}: taxonomy search skipped: {exc}"
        for s in steps:
            desc = s.get("description") or ("start: rule taxonomy" if s.get("step") == 0 else
                                             f"split {s.get('category')} on {s.get('feature')} <= "
                                             f"{s.get('threshold')} (q={s.get('quantile')})")
            search_rows.append({**key, "step": int(s.get("step", len(search_rows))), "description": desc,
                                "score": _num(s.get("score")), "metric": "loglik"})
    return FitTables(
        pa.Table.from_pylist(res_rows, schema=T.MODEL_RESULTS.schema),
        pa.Table.from_pylist(w_rows, schema=T.MODEL_WEIGHTS.schema),
        pa.Table.from_pylist(tests, schema=T.MODEL_TESTS.schema),
        pa.Table.from_pylist(corr_rows, schema=T.CORRELATIONS.schema),
        pa.Table.from_pylist(search_rows, schema=T.TAXONOMY_SEARCH.schema),
        pa.Table.from_pylist(pred_rows, schema=T.PREDICTIONS.schema),
        note,
    )


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None

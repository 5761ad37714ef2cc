"""Taxonomy rules, ECE / PR-AUC / xi against brute-force references, model fitting."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from fingerprinting.memorization import taxonomy as T


def test_categorize_hand_table():
    memorized = [True, True, True, True, False, True]
    duplicates = [6, 5, 5, 100, 50, 0]
    templating = [False, True, False, True, True, False]
    got = T.categorize(memorized, duplicates, templating).tolist()
    assert got == ["recitation", "reconstruction", "recollection", "recitation",
                   "not_memorized", "recollection"]
    # library-default threshold 10: 6 duplicates is no longer recitation
    assert T.categorize(memorized, duplicates, templating, recitation_threshold=10)[0] == \
        "recollection"
    assert T.assign_category(duplicates, templating)[4] == "recitation"


def _brute_ece(y, p, bins=10):
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i in range(len(p)) if lo <= p[i] < hi or (b == bins - 1 and p[i] == 1.0)]
        if members:
            acc = sum(y[i] for i in members) / len(members)
            conf = sum(p[i] for i in members) / len(members)
            total += len(members) / len(p) * abs(acc - conf)
    return total


def _brute_average_precision(y, p):
    # AP = sum over positives ranked by score of precision at that positive's rank (no ties)
    order = sorted(range(len(p)), key=lambda i: -p[i])
    hits, ap = 0, 0.0
    for rank, i in enumerate(order, 1):
        if y[i]:
            hits += 1
            ap += hits / rank
    return ap / sum(y)


def test_ece_against_brute_force():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = rng.random(200)
    p[:3] = [0.0, 1.0, 0.5]
    assert T.expected_calibration_error(y, p) == pytest.approx(_brute_ece(y.tolist(), p.tolist()))
    # hand case: two bins, |1 - 0.95| and |0 - 0.05|, each half the samples
    assert T.expected_calibration_error([1, 0], [0.95, 0.05]) == pytest.approx(0.05)


def test_pr_auc_against_brute_force():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    p = rng.permutation(100) / 100.0  # distinct scores
    m = T._metrics(y, p)
    assert m["pr_auc"] == pytest.approx(_brute_average_precision(y.tolist(), p.tolist()))


def test_xi_hand_computation():
    # x = 1..5, y = [1, 3, 2, 5, 4]: r = y (no ties), sum|r_{i+1}-r_i| = 2+1+3+1 = 7
    # xi = 1 - 3 * 7 / (25 - 1) = 1 - 21/24 = 0.125
    assert T.chatterjee_xi([1, 2, 3, 4, 5], [1, 3, 2, 5, 4]) == pytest.approx(0.125)
    # y a function of x -> (n - 2) / (n + 1) for a monotone relation without ties
    assert T.chatterjee_xi(np.arange(10), np.arange(10) ** 2) == pytest.approx(8 / 11)
    # ties in y: x = 1..4, y = [0, 1, 0, 1]; r = [2, 4, 2, 4], l = [4, 2, 4, 2]
    # xi = 1 - 4 * (2 + 2 + 2) / (2 * (4*0 + 2*2 + 4*0 + 2*2)) = 1 - 24/16 = -0.5
    assert T.chatterjee_xi([1, 2, 3, 4], [0, 1, 0, 1]) == pytest.approx(-0.5)


def _synthetic(n=600, seed=0) -> pa.Table:
    rng = np.random.default_rng(seed)
    dup = rng.choice([1, 1, 1, 2, 3, 8, 20, 60], size=n)
    templ = rng.random(n) < 0.2
    cols = {f: rng.normal(size=n) for f in T.CONTINUOUS_FEATURES}
    cols["duplicates"] = dup.astype(float)
    cols["is_templating"] = templ
    # memorization: likely for many duplicates, for templates with low huffman, rare otherwise
    logit = np.where(dup >= 6, 2.0 + 0.05 * dup, np.where(templ, -2 * cols["huffman_length"],
                                                          -2.5 + 1.5 * cols["sequence_perplexity"]))
    mem = rng.random(n) < 1 / (1 + np.exp(-logit))
    cols["memorized"] = mem
    cols["score"] = np.where(mem, 1.0, rng.random(n) * 0.9)
    cols["is_code"] = rng.random(n) < 0.3
    return pa.table(cols)


def test_fit_taxonomic_model_runs_and_reports():
    table = _synthetic()
    res = T.fit_taxonomic_model(table, seed=1024)
    assert set(res.categories) == {"recitation", "reconstruction", "recollection"}
    assert res.split["n_test"] == 180
    for key in ("precision", "recall", "roc_auc", "pr_auc", "ece"):
        assert np.isfinite(res.taxonomic[key]) and np.isfinite(res.baseline["metrics"][key])
    assert res.likelihood_ratio["df"] == 2 * (len(T.MODEL_FEATURES) + 1)
    # the taxonomy separates regimes the pooled model mixes
    assert res.likelihood_ratio["statistic"] > 0
    assert set(res.categories["recollection"]["weights"]) == set(T.MODEL_FEATURES)
    assert res.summary_table().num_rows == 5
    # polars input gives the same numbers
    import polars as pl

    res2 = T.fit_taxonomic_model(pl.from_arrow(table), seed=1024)
    assert res2.taxonomic["roc_auc"] == pytest.approx(res.taxonomic["roc_auc"])


def test_single_class_category_is_skipped():
    d = _synthetic().to_pydict()
    d["memorized"] = [bool(m) and dup < 6 for m, dup in zip(d["memorized"], d["duplicates"], strict=False)]
    res = T.fit_taxonomic_model(pa.table(d))
    assert [c for c, _ in res.skipped] == ["recitation"]
    assert res.categories["recitation"]["status"] == "skipped"


def test_correlations_and_greedy_search():
    table = _synthetic(400)
    corr = T.feature_correlations(table)
    groups = set(corr.column("group").to_pylist())
    assert {"all", "category=recitation", "is_code=True", "is_code=False"} <= groups
    rows = [r for r in corr.to_pylist() if r["group"] == "all"]
    dup = next(r for r in rows if r["feature"] == "duplicates")
    assert dup["spearman"] > 0.2 and np.isfinite(dup["xi"])
    steps = T.greedy_taxonomy_search(table, max_steps=1, candidates=["huffman_length",
                                                                     "sequence_perplexity"])
    assert steps[0]["step"] == 0
    for a, b in zip(steps, steps[1:], strict=False):
        assert b["loglik"] > a["loglik"]

"""The memorization marts (dbt_project/models/marts/memorization) on a hand-made lake.

Two models (one registered, one not) score 12 samples from two corpora: "plant", a planted corpus with
ground truth (a sequence planted 3 times, a boilerplate planted twice, a unique document with two windows,
a counting template) and "web" (samples at the recitation threshold's edge). Expected values come from the
Python reference (fingerprinting.memorization.taxonomy.categorize), numpy, or counts worked out here,
never from the SQL.
"""

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from fingerprinting.lake import Lake
from fingerprinting.memorization.tables import (
    CORRELATIONS,
    FEATURES,
    GROUND_TRUTH,
    MODEL_RESULTS,
    MODEL_TESTS,
    MODEL_WEIGHTS,
    SAMPLES,
    SCORES,
)
from fingerprinting.memorization.taxonomy import (
    CONTINUOUS_FEATURES,
    categorize,
    feature_correlations,
)
from fingerprinting.registry import ModelRecord, register_models
from fingerprinting.settings import Settings
from fingerprinting.warehouse import DbtError, connect, run_dbt

pytestmark = pytest.mark.slow

MODELS = ("mem-a", "mem-b")  # mem-b is scored but not registered
# sample_id: (corpus, doc_id, offset, duplicates, incrementing, repeating)
SAMPLE_ROWS = {
    "s01": ("plant", "d0", 0, 3, False, False),  # planted 3 times: d0, d1, d2
    "s02": ("plant", "d1", 0, 3, False, False),
    "s03": ("plant", "d2", 0, 3, False, False),
    "s04": ("plant", "d3", 0, 2, False, False),  # boilerplate planted twice: d3, d4
    "s05": ("plant", "d4", 0, 2, False, False),
    "s06": ("plant", "d5", 0, 1, False, False),  # unique document: first window ...
    "s07": ("plant", "d5", 32, 1, False, True),  # ... and its second window (not a first window)
    "s08": ("plant", "d6", 0, 1, True, False),  # counting template, planted once
    "s09": ("web", "w0", 0, 6, False, False),  # exactly at the threshold: recitation when memorized
    "s10": ("web", "w1", 0, 5, False, False),  # one below: recollection when memorized
    "s11": ("web", "w2", 0, 5, True, True),  # one below, templating: reconstruction
    "s12": ("web", "w3", 0, 10, True, False),  # many duplicates beat templating: recitation
}
GROUND = [("plant", "d0", "planted-000", "planted", 3), ("plant", "d1", "planted-000", "planted", 3),
          ("plant", "d2", "planted-000", "planted", 3), ("plant", "d3", "boilerplate-001", "boilerplate", 2),
          ("plant", "d4", "boilerplate-001", "boilerplate", 2), ("plant", "d5", "unique-0", "unique", 1),
          ("plant", "d6", "counting-002", "counting", 1)]
SCORE_VALUES = {
    "mem-a": {"s01": 1, "s02": 1, "s03": 1, "s04": 1, "s05": 1, "s06": 0.5, "s07": 0.25, "s08": 1,
              "s09": 1, "s10": 1, "s11": 1, "s12": 0.75},
    "mem-b": {"s01": 1, "s02": 0.5, "s03": 1, "s04": 0, "s05": 1, "s06": 1, "s07": 0.125, "s08": 0.25,
              "s09": 0.25, "s10": 1, "s11": 0.5, "s12": 1},
}
SUBSET_NAMES = {"all": "all", "category=recitation": "recitation", "category=reconstruction": "reconstruction",
                "category=recollection": "recollection", "is_code=True": "code", "is_code=False": "natural_language"}


def _feature_rows():
    """One dict per sample x model with every column memorization_taxonomy takes from the lake."""
    rng = np.random.default_rng(7)
    rows = []
    for model in MODELS:
        for sid, (corpus, _, _, dup, inc, rep) in SAMPLE_ROWS.items():
            score = float(SCORE_VALUES[model][sid])
            freqs = np.sort(rng.uniform(1, 1000, 6))
            code_score = float(rng.uniform(0, 1))
            rows.append({
                "sample_id": sid, "model_id": model, "corpus": corpus, "score": score, "memorized": score == 1.0,
                # the flow stores a non-finite perplexity as null
                "prompt_perplexity": None if (model, sid) == ("mem-b", "s07") else float(rng.uniform(1, 50)),
                "continuation_perplexity": float(rng.uniform(1, 50)), "sequence_perplexity": float(rng.uniform(1, 50)),
                "duplicates": dup, "min_frequency": float(freqs[0]), "p25_frequency": float(freqs[1]),
                "median_frequency": float(freqs[2]), "mean_frequency": float(freqs[3]),
                "p75_frequency": float(freqs[4]), "max_frequency": float(freqs[5]),
                "incrementing": inc, "repeating": rep, "is_templating": inc or rep,
                "tokens_incrementing": inc, "tokens_repeating": rep,
                "huffman_length": float(rng.uniform(3, 5)), "semantic_matches": int(rng.integers(0, 4)),
                "textual_matches": int(rng.integers(0, 2)), "code_score": code_score, "is_code": code_score >= 0.5,
                "code_label": "code" if code_score >= 0.6 else "natural_language" if code_score < 0.475 else "ambiguous",
                "embedding_model": "test",
            })
    return rows


def _complete(row: dict) -> bool:
    return all(row[f] is not None and math.isfinite(row[f]) for f in CONTINUOUS_FEATURES)


def _write_lake(lake: Lake, rows: list[dict]) -> None:
    lake.merge("memorization_samples", pa.Table.from_pylist([
        {"sample_id": sid, "corpus": c, "tokenizer_id": "tok", "doc_id": d, "offset": off,
         "token_ids": list(range(64)), "text": f"text of {sid}", "prompt_text": f"prompt {sid}",
         "continuation_text": f"continuation {sid}"}
        for sid, (c, d, off, *_rest) in SAMPLE_ROWS.items()], schema=SAMPLES.schema))
    lake.merge("memorization_scores", pa.Table.from_pylist(
        [r | {"generated": [], "error": "", "run_id": "test", "created_at": None} for r in rows],
        schema=SCORES.schema))
    lake.merge("memorization_features", pa.Table.from_pylist(rows, schema=FEATURES.schema))
    lake.merge("memorization_ground_truth", pa.Table.from_pylist(
        [dict(zip(GROUND_TRUTH.schema.names, g, strict=True)) for g in GROUND], schema=GROUND_TRUTH.schema))
    # correlations as the flow computes them (the production function on the samples whose every
    # feature is finite), per model x corpus
    corr = []
    for model in MODELS:
        for corpus in ("plant", "web"):
            part = [r for r in rows if r["model_id"] == model and r["corpus"] == corpus and _complete(r)]
            if not part:
                continue
            table = feature_correlations(pa.Table.from_pylist(part))
            for rec in table.to_pylist():
                corr.append({"model_id": model, "corpus": corpus, "feature": rec["feature"],
                             "subset": SUBSET_NAMES[rec["group"]], "n": rec["n"], "pearson": rec["pearson"],
                             "spearman": rec["spearman"], "xi": rec["xi"]})
    lake.merge("memorization_correlations", pa.Table.from_pylist(corr, schema=CORRELATIONS.schema))
    results, tests, weights = [], [], []
    for i, model in enumerate(MODELS):
        for predictor, roc in (("baseline", 0.75), ("taxonomic", 0.875), ("recitation", math.nan)):
            results.append({"model_id": model, "corpus": "plant", "predictor": predictor, "status": "fitted",
                            "n": 4, "positives": 2, "precision": 0.5, "recall": 1.0, "roc_auc": roc,
                            "pr_auc": 0.5 + i / 4, "ece": 0.125, "n_train": 8})
        tests.append({"model_id": model, "corpus": "plant", "statistic": 3.5 + i, "df": 14, "p_value": 0.25 * (i + 1),
                      "ll_taxonomic": -1.0, "ll_baseline": -2.75, "seed": 1024, "n_samples": 12})
        for predictor in ("baseline", "recitation"):
            for j, feat in enumerate(("duplicates", "huffman_length", "is_templating")):
                weights.append({"model_id": model, "corpus": "plant", "predictor": predictor, "feature": feat,
                                "coefficient": (-1) ** j * (j + 1) * (1 if predictor == "baseline" else -0.5 * j + 1)})
    lake.merge("memorization_model_results", pa.Table.from_pylist(results, schema=MODEL_RESULTS.schema))
    lake.merge("memorization_model_tests", pa.Table.from_pylist(tests, schema=MODEL_TESTS.schema))
    lake.merge("memorization_model_weights", pa.Table.from_pylist(weights, schema=MODEL_WEIGHTS.schema))


def _settings(root) -> Settings:
    return Settings(lake_root=str(root / "lake"), warehouse=str(root / "wh.duckdb"), reports_dir=str(root / "r"),
                    zoo_dir=str(root / "z"), global_registry=str(root / "g"), device="cpu")


@pytest.fixture(scope="module", autouse=True)
def _own_dbt_target(tmp_path_factory):
    """dbt writes target/ and logs/ under the project; keep this module's runs apart from anyone else's."""
    tmp = tmp_path_factory.mktemp("mem_dbt_target")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_TARGET_PATH", str(tmp / "target"))
        mp.setenv("DBT_LOG_PATH", str(tmp / "logs"))
        yield


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("memorization"))
    lake = Lake(settings.lake_root).init()
    register_models(lake, [ModelRecord("mem-a", "/nowhere/mem-a", "Pythia", "Base", "pythia-a", "")])
    rows = _feature_rows()
    _write_lake(lake, rows)
    run_dbt(["build"], settings)
    return settings, rows


def _query(settings, sql):
    with connect(settings) as con:
        return con.sql(sql).fetchall()


def test_categories_match_python_reference(built):
    settings, rows = built
    expected = categorize([r["memorized"] for r in rows], [r["duplicates"] for r in rows],
                          [r["is_templating"] for r in rows], 6)
    want = {(r["sample_id"], r["model_id"]): c for r, c in zip(rows, expected, strict=True)}
    got = dict(((s, m), c) for s, m, c in _query(settings, "select sample_id, model_id, category from memorization_taxonomy"))
    assert got == want
    # the threshold's edge, worked out by hand: 6 duplicates recite, 5 do not
    assert got[("s09", "mem-a")] == "recitation" and got[("s10", "mem-a")] == "recollection"
    assert got[("s11", "mem-a")] == "reconstruction" and got[("s12", "mem-b")] == "recitation"
    assert got[("s12", "mem-a")] == "not_memorized"
    counts = Counter((m, c) for (_, m), c in want.items())
    sql_counts = {(m, c): n for m, c, n in _query(settings, "select model_id, category, count(*) from memorization_taxonomy group by all")}
    assert sql_counts == dict(counts)
    # registry columns: mem-b is not registered
    fam = dict(_query(settings, "select distinct model_id, family from memorization_taxonomy"))
    assert fam == {"mem-a": "Pythia", "mem-b": None}
    # the rule on every sample, memorized or not
    rule = dict(_query(settings, "select sample_id, rule_category from memorization_taxonomy where model_id = 'mem-b'"))
    assert rule["s04"] == "recollection" and rule["s09"] == "recitation" and rule["s07"] == "reconstruction"


def test_shares_by_hand(built):
    settings, rows = built
    got = {(r[0], r[1]): r[2:] for r in _query(settings, """
        select model_id, corpus, n_samples, n_memorized, memorization_rate, n_recitation, n_reconstruction,
               n_recollection, share_recitation, share_reconstruction, share_recollection, mean_score
        from taxonomy_shares""")}
    # mem-a / plant: s01-s05 and s08 memorized (6 of 8). Duplicates 3, 3, 3, 2, 2 are below 6 and not
    # templating -> recollection; s08 is a counting template -> reconstruction. Scores: 6 + 0.5 + 0.25.
    assert got[("mem-a", "plant")] == pytest.approx((8, 6, 6 / 8, 0, 1, 5, 0, 1 / 6, 5 / 6, 6.75 / 8))
    # mem-a / web: all but s12 memorized: s09 (6) recitation, s10 (5) recollection, s11 reconstruction.
    assert got[("mem-a", "web")] == pytest.approx((4, 3, 3 / 4, 1, 1, 1, 1 / 3, 1 / 3, 1 / 3, 3.75 / 4))
    # mem-b / plant: s01, s03, s05, s06 memorized, all recollection; scores 1+.5+1+0+1+1+.125+.25.
    assert got[("mem-b", "plant")] == pytest.approx((8, 4, 0.5, 0, 0, 4, 0, 0, 1, 4.875 / 8))
    # mem-b / web: s10 (recollection) and s12 (10 duplicates: recitation).
    assert got[("mem-b", "web")] == pytest.approx((4, 2, 0.5, 1, 0, 1, 0.5, 0, 0.5, 2.75 / 4))
    assert set(got) == {(m, c) for m in MODELS for c in ("plant", "web")}


def test_feature_profile_matches_numpy(built):
    settings, rows = built
    got = {r[0]: r[1:] for r in _query(settings, """
        select feature, n, mean, min, p25, median, p75, max from taxonomy_feature_profile
        where model_id = 'mem-b' and corpus = 'plant' and category = 'not_memorized'""")}
    part = [r for r in rows if r["model_id"] == "mem-b" and r["corpus"] == "plant" and not r["memorized"]]
    assert set(got) == set(CONTINUOUS_FEATURES)
    for feat in CONTINUOUS_FEATURES:
        v = np.array([r[feat] for r in part], dtype=float)
        v = v[np.isfinite(v)]  # s07's missing prompt perplexity is left out
        want = (len(v), v.mean(), v.min(), *np.quantile(v, [0.25, 0.5, 0.75]), v.max())
        np.testing.assert_allclose(got[feat], want, rtol=1e-12, err_msg=feat)
    assert got["prompt_perplexity"][0] == len(part) - 1


def test_pearson_sql_matches_numpy(built):
    settings, rows = built
    got = {(m, c, f): (p, s) for m, c, f, p, s in _query(
        settings, "select model_id, corpus, feature, pearson, pearson_sql from feature_correlations where subset = 'all'")}
    checked = 0
    for model in MODELS:
        for corpus in ("plant", "web"):
            # the flow's samples: every feature finite (mem-b's s07 has no prompt perplexity)
            part = [r for r in rows if r["model_id"] == model and r["corpus"] == corpus
                    and all(r[f] is not None for f in CONTINUOUS_FEATURES)]
            assert len(part) == (7 if (model, corpus) == ("mem-b", "plant") else 8 if corpus == "plant" else 4)
            y = np.array([r["score"] for r in part])
            for feat in (*CONTINUOUS_FEATURES, "is_templating"):
                x = np.array([r[feat] for r in part], dtype=float)
                pearson, pearson_sql = got[(model, corpus, feat)]
                if np.ptp(x) == 0 or np.ptp(y) == 0:
                    assert pearson_sql is None and pearson is None
                    continue
                assert pearson_sql == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
                checked += 1
    assert checked >= 40
    others = _query(settings, "select count(*), count(pearson_sql) from feature_correlations where subset <> 'all'")
    assert others[0][0] > 0 and others[0][1] == 0


def test_planted_recovery(built):
    settings, _ = built
    got = {(r[0], r[1]): r[2:] for r in _query(settings, """
        select sample_id, model_id, planted_id, kind, planted_count, duplicates from planted_recovery""")}
    first_windows = {"s01": "d0", "s02": "d1", "s03": "d2", "s04": "d3", "s05": "d4", "s06": "d5", "s08": "d6"}
    ground = {d: (pid, kind, count) for _, d, pid, kind, count in GROUND}
    want = {(s, m): (*ground[d], SAMPLE_ROWS[s][3]) for s, d in first_windows.items() for m in MODELS}
    assert got == want  # s07 (offset 32) and the web samples are left out
    for _, kind, count, dup in got.values():
        if kind in ("planted", "boilerplate"):
            assert dup == count
    summary = {(r[0], r[1], r[2]): r[3:] for r in _query(settings, """
        select model_id, kind, planted_count, n, memorized_share, mean_score, mean_duplicates
        from planted_recovery_summary""")}
    # mem-b on the planted sequence: s01 1, s02 0.5, s03 1
    assert summary[("mem-b", "planted", 3)] == pytest.approx((3, 2 / 3, 2.5 / 3, 3.0))
    assert summary[("mem-b", "boilerplate", 2)] == pytest.approx((2, 0.5, 0.5, 2.0))
    assert len(summary) == 2 * 4


def test_examples_ranking(built):
    settings, rows = built
    got = _query(settings, """select sample_id, rank from memorization_examples
                              where model_id = 'mem-a' and corpus = 'plant' and category = 'recollection'
                              order by rank""")
    part = [r for r in rows if r["model_id"] == "mem-a" and r["corpus"] == "plant" and r["memorized"]
            and r["duplicates"] < 6 and not r["is_templating"]]
    order = sorted(part, key=lambda r: (-r["score"], -r["duplicates"], r["sample_id"]))[:5]
    assert got == [(r["sample_id"], i + 1) for i, r in enumerate(order)]
    assert [s for s, _ in got] == ["s01", "s02", "s03", "s04", "s05"]
    (mx,), = _query(settings, "select max(rank) from memorization_examples")
    assert mx == 5


def test_model_metrics_and_weights(built):
    settings, _ = built
    got = {(r[0], r[1]): r[2:] for r in _query(settings, """
        select model_id, predictor, roc_auc, pr_auc, lrt_statistic, lrt_df, lrt_p_value from taxonomic_model_metrics""")}
    assert got[("mem-b", "baseline")] == (0.75, 0.75, 4.5, 14, 0.5)
    assert got[("mem-b", "taxonomic")] == (0.875, 0.75, 4.5, 14, 0.5)
    assert got[("mem-a", "recitation")] == (None, 0.5, 3.5, 14, 0.25)  # NaN in the lake -> null
    ranks = _query(settings, """select feature, coefficient, abs_rank from taxonomic_model_weights
                                where model_id = 'mem-a' and predictor = 'recitation' order by abs_rank""")
    # coefficients 1, -1.0, 0: |1| ties |-1|, broken by feature name
    assert ranks == [("duplicates", 1.0, 1), ("huffman_length", -1.0, 2), ("is_templating", 0.0, 3)]


def test_empty_memorization_lake_builds(built, tmp_path):
    settings = _settings(tmp_path)
    Lake(settings.lake_root).init()
    run_dbt(["build"], settings)
    for mart in ("memorization_taxonomy", "taxonomy_shares", "taxonomy_feature_profile", "feature_correlations",
                 "taxonomic_model_metrics", "taxonomic_model_weights", "planted_recovery",
                 "planted_recovery_summary", "memorization_examples"):
        assert _query(settings, f"select count(*) from {mart}") == [(0,)], mart


def test_pearson_cross_check_catches_a_wrong_correlation(built, tmp_path):
    """The YAML test |pearson - pearson_sql| < 1e-6 fails the build when the lake's number is off."""
    settings = _settings(tmp_path)
    lake = Lake(settings.lake_root).init()
    rows = [r for r in built[1] if r["corpus"] == "web" and r["model_id"] == "mem-a"]
    _write_lake(lake, rows)
    lake.merge("memorization_correlations", pa.Table.from_pylist(
        [{"model_id": "mem-a", "corpus": "web", "feature": "huffman_length", "subset": "all", "n": 4,
          "pearson": 0.123, "spearman": 0.0, "xi": 0.0}], schema=CORRELATIONS.schema))
    with pytest.raises(DbtError, match="pearson_sql"):
        run_dbt(["build"], settings)

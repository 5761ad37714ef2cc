"""The calibrated provenance verdict: leakage-free cross-validation, threshold, fit, lake features, verdicts."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from fingerprinting.lake import Lake
from fingerprinting.provenance import verdict as V
from fingerprinting.registry import ModelRecord, UnknownModelError, register_models
from tests.fingerprinting.provenance import build_tiny_lake


# ------------------------------------------------------------------ synthetic pair frames
def synthetic_pairs(n_families: int = 6, per_family: int = 4, seed: int = 0, shift: float = 0.3) -> pl.DataFrame:
    """Every pair of n_families x per_family models; same family = related; feature x informative, y noise."""
    rng = np.random.default_rng(seed)
    models = [(f"F{f}", f"m{f}_{i}") for f in range(n_families) for i in range(per_family)]
    rows = []
    for (fa, a), (fb, b) in itertools.combinations(models, 2):  # names sort in generation order: a < b
        related = fa == fb
        rows.append({"model_a": a, "model_b": b, "family_a": fa, "family_b": fb,
                     "relation": "same_family" if related else "unrelated", "label": related, "lineage_depth": None,
                     "m/x": 0.5 + shift * related + rng.normal(0, 0.1), "m/y": rng.normal(0, 1)})
    return pl.DataFrame(rows, schema_overrides={"lineage_depth": pl.Int64})


def test_lofo_never_trains_on_a_family_it_scores():
    df = synthetic_pairs()
    res = V.leave_one_family_out(df, ["m/x", "m/y"])
    fa, fb = df["family_a"].to_numpy(), df["family_b"].to_numpy()
    assert not np.isnan(res.scores).any()
    # one fit per distinct family set: 6 single families + 15 family pairs
    assert {frozenset(f.excluded) for f in res.fits} == {frozenset((a, b)) for a, b in zip(fa, fb, strict=True)}
    assert len(res.fits) == 21 and res.n_distinct_fits == 21
    for i in range(len(df)):
        fit = res.fits[res.fit_index[i]]
        train_fams = set(fa[fit.train_rows]) | set(fb[fit.train_rows])
        assert not train_fams & {fa[i], fb[i]}, f"pair {i} scored by a fit that saw its family"
        assert set(fit.train_families) == train_fams
        assert i in set(fit.scored_rows) and i not in set(fit.train_rows)
        # and it trained on everything else: every pair that involves neither family
        others = np.flatnonzero(~(np.isin(fa, [fa[i], fb[i]]) | np.isin(fb, [fa[i], fb[i]])))
        assert np.array_equal(np.sort(fit.train_rows), others)


def test_lofo_scores_ignore_the_labels_of_their_own_families():
    """Flip every label that involves family F0: no score of a pair involving F0 may move; others do."""
    df = synthetic_pairs(seed=1)
    base = V.leave_one_family_out(df, ["m/x", "m/y"]).scores
    involves = (df["family_a"] == "F0") | (df["family_b"] == "F0")
    flipped = df.with_columns(pl.when(involves).then(~pl.col("label")).otherwise(pl.col("label")).alias("label"))
    moved = V.leave_one_family_out(flipped, ["m/x", "m/y"]).scores
    inv = involves.to_numpy()
    np.testing.assert_array_equal(moved[inv], base[inv])
    assert np.abs(moved[~inv] - base[~inv]).max() > 1e-3


def test_lofo_leaves_pairs_unscored_when_training_lacks_a_class():
    # two families: a pair within F0 trains on F1's pairs only, all related -> no fit
    df = synthetic_pairs(n_families=2, per_family=3)
    res = V.leave_one_family_out(df, ["m/x"])
    assert np.isnan(res.scores).all() and res.n_unscored == len(df)
    with pytest.raises(V.ProvenanceError, match="at least 3 families"):
        V.fit_verdict(df, ["m/x"])


# ------------------------------------------------------------------ threshold
def test_threshold_on_a_hand_made_list():
    neg = [i / 1000 for i in range(200)]  # 0.000 .. 0.199
    pos = [0.05, 0.1975, 0.5, 0.9]
    t = V.choose_threshold(np.array(neg + pos), np.array([False] * 200 + [True] * 4), 0.01)
    # 1% of 200 negatives = 2 may be flagged (0.198, 0.199); the third highest, 0.197, may not:
    # the lowest score strictly above it is the positive 0.1975
    assert t.threshold == 0.1975 and t.allowed_fp == 2
    assert (t.n_fp, t.n_tp, t.tpr, t.fpr) == (2, 3, 0.75, 0.01)
    assert t.precision == pytest.approx(3 / 5)


def test_threshold_never_splits_ties_at_the_boundary():
    # 100 negatives, 1 may be flagged; two negatives tie at 0.9, so 0.9 itself would flag 2
    neg = [0.9, 0.9] + [0.4] * 98
    t = V.choose_threshold(np.array(neg + [0.95, 0.9, 0.8]), np.array([False] * 100 + [True] * 3), 0.01)
    assert t.threshold == 0.95 and (t.n_tp, t.n_fp) == (1, 0)
    # nothing observed above the bound: the next float above it, nothing flagged
    t = V.choose_threshold(np.array([0.7, 0.2, 0.6]), np.array([False, False, True]), 0.01)
    assert t.threshold > 0.7 and t.threshold == np.nextafter(0.7, 1) and (t.n_tp, t.n_fp) == (0, 0)
    with pytest.raises(V.ProvenanceError, match="target-fpr"):
        V.choose_threshold(np.array([0.1, 0.2]), np.array([False, True]), 1.5)


def test_threshold_matches_brute_force():
    rng = np.random.default_rng(7)
    for target in (0.01, 0.05, 0.2):
        s = np.round(rng.random(300), 2)  # rounding makes ties
        y = rng.random(300) < 0.3
        neg = s[~y]
        expected = None
        for cand in sorted(set(s)):  # lowest observed score whose FPR (negatives >= it) is within target
            if (neg >= cand).sum() / len(neg) <= target:
                expected = cand
                break
        got = V.choose_threshold(s, y, target)
        assert got.threshold == expected
        assert got.n_fp / len(neg) <= target


# ------------------------------------------------------------------ fit
def test_logistic_regression_recovers_a_separable_case():
    df = synthetic_pairs(n_families=5, per_family=4, seed=3, shift=0.6)  # x: related ~1.1, unrelated ~0.5, sd 0.1
    x = df["m/x"].to_numpy()
    y = df["label"].to_numpy()
    assert x[y].min() > x[~y].max()  # separable by construction
    # a few missing y values: imputed with the negatives' median, counted
    df = df.with_columns(pl.when(pl.int_range(pl.len()) % 37 == 0).then(None).otherwise(pl.col("m/y")).alias("m/y"))
    m = V.fit_verdict(df, ["m/x", "m/y"], target_fpr=0.01)
    assert m.roc_auc_oof == 1.0 and m.tpr_at_fpr_oof == 1.0
    # 160 negatives: floor(1% x 160) = 1 may be flagged, and every positive outscores every negative out of
    # fold, so the lowest score with FPR <= 1% is the highest negative's own score
    oof = m.lofo.scores
    assert (~y).sum() == 160 and m.threshold == oof[~y].max() and m.fpr_at_threshold_oof == 1 / 160
    assert m.coef[0] > 0 and abs(m.coef[0]) > 3 * abs(m.coef[1])
    assert m.n_imputed == {"m/x": 0, "m/y": int(math.ceil(len(df) / 37))}
    yy = df["m/y"].to_numpy()
    assert m.impute[1] == pytest.approx(np.nanmedian(yy[~y]))
    assert (m.n_pairs, m.n_positive, m.n_negative, m.n_families) == (len(df), int(y.sum()), int((~y).sum()), 5)
    # new pairs: clearly related / unrelated on x, whatever y
    s = m.score(np.array([[1.1, 0.0], [0.45, 0.0], [1.1, np.nan]]))
    assert s[0] >= m.threshold > s[1] and s[2] >= m.threshold
    # the lake row round-trips to the same scores
    back = V.VerdictModel.from_row(m.to_row())
    np.testing.assert_allclose(back.score(np.array([[0.8, 0.3], [0.6, np.nan]])),
                               m.score(np.array([[0.8, 0.3], [0.6, np.nan]])), rtol=0, atol=1e-15)
    assert back.threshold == m.threshold and [f.name for f in back.features] == ["m/x", "m/y"]


def test_score_similarities_evidence_adds_up():
    df = synthetic_pairs(n_families=4, seed=5)
    m = V.fit_verdict(df, ["m/x", "m/y"])
    r = V.score_similarities(m, {"m/x": 0.85, ("m", "y"): 0.1, "other/metric": 0.3})
    z = (np.array([0.85, 0.1]) - m.mean) / m.scale
    logit = m.intercept + float(z @ m.coef)
    assert r["logit"] == pytest.approx(logit, abs=1e-12)
    assert r["score"] == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-12)
    assert sum(e["contribution"] for e in r["evidence"]) == pytest.approx(logit - m.intercept, abs=1e-12)
    assert r["related"] == (r["score"] >= m.threshold) and r["n_missing"] == 0
    miss = V.score_similarities(m, {"m/x": 0.85})
    assert miss["n_missing"] == 1 and miss["evidence"][1]["imputed_value"] == pytest.approx(m.impute[1])


# ------------------------------------------------------------------ a real lake (tiny zoo, weight_spectrum)
def _bfs_relations(manifest) -> dict[tuple[str, str], tuple[str, int]]:
    """(a, b) -> (relation, depth) for every ancestor/descendant pair, from the manifest's parents."""
    parents = {m["model_id"]: [tuple(p) for p in m["parents"]] for m in manifest["models"]}
    out = {}
    for mid in parents:
        seen, frontier, depth = {}, [mid], 0
        while frontier:
            depth += 1
            nxt = []
            for x in frontier:
                for p, rel in parents[x]:
                    if p not in seen:
                        seen[p] = (rel if depth == 1 else "multi_step", depth)
                        nxt.append(p)
            frontier = nxt
        for anc, val in seen.items():
            out[tuple(sorted((anc, mid)))] = val
    return out


@pytest.fixture(scope="module")
def tiny_lake(tmp_path_factory, tiny_zoo):
    root = tmp_path_factory.mktemp("prov") / "lake"
    lake, h, siblings = build_tiny_lake(str(root), tiny_zoo)
    return lake, h, siblings, tiny_zoo


@pytest.mark.slow
def test_pair_features_match_the_lake(tiny_lake):
    lake, h, siblings, manifest = tiny_lake
    feats = V.resolve_features(lake)
    # weight_spectrum's default metrics, both stored (cosine is stored too but not a default)
    assert feats == [V.Feature("weight_spectrum", "correlation", h), V.Feature("weight_spectrum", "l1", h)]
    df = V.pair_features(lake, feats)
    assert df.height == 31 * 30 // 2
    for f in feats:
        stored = {(r["model_a"], r["model_b"]): r["similarity"] for r in
                  lake.read("similarities", filters={"method": f.method, "metric": f.metric}).to_pylist()}
        got = dict(zip(zip(df["model_a"], df["model_b"], strict=True), df[f.name], strict=True))
        assert got == stored
    family = {m["model_id"]: m["family"] for m in manifest["models"]}
    lineage = _bfs_relations(manifest)
    sib = set(siblings)
    assert len(sib) == 2
    for r in df.iter_rows(named=True):
        pair = (r["model_a"], r["model_b"])
        assert (r["family_a"], r["family_b"]) == (family[pair[0]], family[pair[1]])
        if pair in lineage:
            expected = (lineage[pair][0], True, lineage[pair][1])
        elif pair in sib:
            expected = ("sibling", False, None)
        elif family[pair[0]] == family[pair[1]]:
            expected = ("same_family", True, None)
        else:
            expected = ("unrelated", False, None)
        assert (r["relation"], r["label"], r["lineage_depth"]) == expected, pair
    assert df.filter(pl.col("relation") == "sibling").height == 2
    with pytest.raises(V.ProvenanceError, match="stored metrics: correlation, cosine, l1"):
        V.resolve_features(lake, ["weight_spectrum/wasserstein"])
    with pytest.raises(V.ProvenanceError, match="no stored similarities for method 'hidden_cka'"):
        V.resolve_features(lake, ["hidden_cka/cosine"])


@pytest.mark.slow
def test_verdict_evidence_on_real_fingerprints(tiny_lake, tmp_path):
    src, h, _, manifest = tiny_lake
    shutil.copytree(src.root, tmp_path / "lake")  # this test deletes rows
    lake = Lake(str(tmp_path / "lake"))
    with pytest.raises(V.NoVerdictModelError, match="run `fplake provenance fit` first"):
        V.verdict(lake, "llama-base", "llama-int8")
    feats = V.resolve_features(lake)
    df = V.pair_features(lake, feats)
    model = V.fit_verdict(df, feats)
    V.write_verdict(lake, df, model)
    ids = {m["display_name"]: m["model_id"] for m in manifest["models"]}
    x, y = sorted((ids["llama-base"], ids["llama-int8"]))
    r = V.verdict(lake, "llama-int8", "llama-base")
    row = df.filter((pl.col("model_a") == x) & (pl.col("model_b") == y)).to_dicts()[0]
    negs = df.filter(~pl.col("label"))
    for e in r["evidence"]:
        assert e["source"] == "stored" and e["similarity"] == row[e["feature"]]
        vals = negs[e["feature"]].to_numpy()
        pct = 100 * ((vals < e["similarity"]).sum() + 0.5 * (vals == e["similarity"]).sum()) / len(vals)
        assert e["percentile_among_unrelated"] == pytest.approx(pct)
    stored = lake.read("provenance_scores").to_pylist()
    mine = next(s for s in stored if (s["model_a"], s["model_b"]) == (x, y))
    assert r["score"] == pytest.approx(mine["score_full"], abs=1e-12)
    assert r["score_oof"] == mine["score_oof"] and r["related"] == (r["score"] >= model.threshold)
    assert r["recorded"] == {"relation": "quantized", "label": True, "lineage_depth": 1}
    assert "Llama" in r["oof_excluded"]
    # not stored -> computed from the two stored fingerprints
    before = row["weight_spectrum/l1"]
    lake.delete("similarities", {"model_a": x, "model_b": y, "method": "weight_spectrum", "metric": "l1"})
    r2 = V.verdict(lake, "llama-base", "llama-int8")
    e2 = {e["feature"]: e for e in r2["evidence"]}
    assert e2["weight_spectrum/l1"]["source"] == "computed"
    assert e2["weight_spectrum/l1"]["similarity"] == pytest.approx(before, abs=1e-9)
    # no fingerprint either -> missing, imputed with the negatives' median
    lake.delete("fingerprints", {"model_id": x})
    r3 = V.verdict(lake, "llama-base", "llama-int8")
    e3 = {e["feature"]: e for e in r3["evidence"]}
    assert e3["weight_spectrum/l1"]["source"] == "missing" and e3["weight_spectrum/l1"]["similarity"] is None
    assert e3["weight_spectrum/correlation"]["source"] == "stored" and r3["n_missing"] == 1
    assert e3["weight_spectrum/l1"]["imputed_value"] == pytest.approx(float(np.median(negs["weight_spectrum/l1"])))
    with pytest.raises(V.ProvenanceError, match="same model"):
        V.verdict(lake, "llama-base", x)
    register_models(lake, [ModelRecord("ghost", "/nowhere", "Ghost", "Base", "ghost")])
    with pytest.raises(V.ProvenanceError, match="fingerprint both with weight_spectrum"):
        V.verdict(lake, "ghost", "llama-base")
    with pytest.raises(UnknownModelError, match="did you mean"):
        V.verdict(lake, "llama-bse", "llama-base")


# ------------------------------------------------------------------ a separable lake: flow, verdicts, CLI
def separable_lake(root) -> Lake:
    """4 families x 3 models (x0 -> x1 finetune -> x2 quantized); similarities written so related pairs
    score ~0.95 and unrelated ~0.5 (weight/l1) with a noisy second metric."""
    lake = Lake(str(root)).init()
    recs = []
    for fam in "abcd":
        recs += [ModelRecord(f"{fam}0", f"/nowhere/{fam}0", fam.upper(), "Base", f"{fam}-base"),
                 ModelRecord(f"{fam}1", f"/nowhere/{fam}1", fam.upper(), "Chat", f"{fam}-chat", parents=[(f"{fam}0", "finetune")]),
                 ModelRecord(f"{fam}2", f"/nowhere/{fam}2", fam.upper(), "Quantized", f"{fam}-int8",
                             parents=[(f"{fam}1", "quantized")])]
    register_models(lake, recs)
    rng = np.random.default_rng(11)
    ids = sorted(r.model_id for r in recs)
    pairs = list(itertools.combinations(ids, 2))
    related = np.array([a[0] == b[0] for a, b in pairs])
    for metric, values in (("l1", np.where(related, 0.95, 0.5) + rng.normal(0, 0.02, len(pairs))),
                           ("js_divergence", rng.uniform(0.3, 0.9, len(pairs)))):
        lake.replace("similarities", pa.table({
            "model_a": [a for a, _ in pairs], "model_b": [b for _, b in pairs], "method": ["weight"] * len(pairs),
            "metric": [metric] * len(pairs), "config_hash": ["h1"] * len(pairs), "similarity": values}),
            {"method": "weight", "metric": metric, "config_hash": "h1"})
    return lake


def _parser():
    from flows.cli import _global_options
    from flows.verdict_cli import add_verdict_parser

    p = argparse.ArgumentParser(prog="fplake")
    _global_options(p, argparse.SUPPRESS)
    p.set_defaults(lake_root=None, warehouse=None, reports_dir=None, device=None, debug=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    add_verdict_parser(p.add_subparsers(dest="cmd", required=True), common)
    return p


def _run(argv):
    from flows.verdict_cli import HANDLERS

    args = _parser().parse_args(argv)
    return HANDLERS[args.cmd](args)


@pytest.mark.slow
def test_flow_verdicts_and_cli(prefect_harness, settings, capsys):
    from flows.provenance_flow import provenance_flow

    lake = separable_lake(settings.lake_root)
    common = ["--lake-root", settings.lake_root, "--warehouse", settings.warehouse,
              "--reports-dir", settings.reports_dir]
    with pytest.raises(V.NoVerdictModelError, match="run `fplake provenance fit` first"):
        _run(["verdict", "a0", "a2", *common])
    s = provenance_flow(settings=settings)
    # 12 models: 66 pairs, 4 families x 3 related pairs; l1 separates perfectly
    assert (s.n_pairs, s.n_positive, s.n_negative, s.n_families, s.n_fits) == (66, 12, 54, 4, 10)
    assert [f["name"] for f in s.features] == ["weight/l1", "weight/js_divergence"]
    assert s.roc_auc_oof == 1.0 and s.tpr_at_fpr_oof == 1.0
    assert s.coefficients["weight/l1"] > abs(s.coefficients["weight/js_divergence"])
    all_row = next(q for q in s.quality if q["derivation_type"] == "all")
    assert all_row["roc_auc"] == 1.0 and all_row["n_positive"] == 12
    # rerun: same fit id, nothing duplicated
    s2 = provenance_flow(settings=settings)
    assert s2.fit_id == s.fit_id and lake.count("provenance_scores") == 66 and lake.count("provenance_model") == 1
    # a known related pair (two steps of lineage) and a known unrelated one
    rel = V.verdict(lake, "a-base", "a-int8")
    unrel = V.verdict(lake, "a0", "b2")
    assert rel["related"] and rel["recorded"]["relation"] == "multi_step"
    assert not unrel["related"] and unrel["recorded"] == {"relation": "unrelated", "label": False, "lineage_depth": None}
    assert rel["score"] >= rel["threshold"] > unrel["score"]
    # CLI: json and pretty
    capsys.readouterr()
    assert _run(["verdict", "a-base", "a2", "--format", "json", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "related" and out["score"] == pytest.approx(rel["score"])
    assert {e["feature"] for e in out["evidence"]} == {"weight/l1", "weight/js_divergence"}
    assert _run(["verdict", "a0", "b2", *common]) == 0
    text = capsys.readouterr().out
    assert "verdict: UNRELATED" in text and "weight/l1" in text and f"threshold {unrel['threshold']:.4f}" in text
    assert _run(["provenance", "fit", "--target-fpr", "0.05", *common]) == 0
    text = capsys.readouterr().out
    assert "66 pairs (12 related, 54 unrelated) over 4 families" in text and "ROC-AUC 1.0000" in text
    assert lake.count("provenance_model") == 2  # another target FPR is another fit
    assert V.current_model(lake).target_fpr == 0.05
    with pytest.raises(V.ProvenanceError, match="--target-fpr"):
        _run(["provenance", "fit", "--target-fpr", "0", *common])

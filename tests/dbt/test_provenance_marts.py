"""The provenance marts (provenance_verdicts, verdict_quality) built by real dbt over a real lake."""

import pytest

from fingerprinting.lake import Lake
from fingerprinting.provenance import verdict as V
from fingerprinting.warehouse import connect, run_dbt
from tests.fingerprinting.provenance import build_tiny_lake

pytestmark = pytest.mark.slow

SELECT = ["--select", "+provenance_verdicts", "+verdict_quality", "+pair_similarities", "--indirect-selection",
          "cautious"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_zoo, zoo_settings):
    from fingerprinting.settings import Settings

    root = tmp_path_factory.mktemp("dbt_prov")
    settings = Settings(lake_root=str(root / "lake"), warehouse=str(root / "wh.duckdb"),
                        reports_dir=str(root / "reports"), zoo_dir=zoo_settings.zoo_dir,
                        global_registry=str(root / "g"), device="cpu")
    lake, h, siblings = build_tiny_lake(settings.lake_root, tiny_zoo)
    feats = V.resolve_features(lake)
    df = V.pair_features(lake, feats)
    model = V.fit_verdict(df, feats)
    V.write_verdict(lake, df, model)
    run_dbt(["build", *SELECT], settings)
    return settings, lake, model, siblings


def _query(settings, sql):
    with connect(settings) as con:
        return con.sql(sql).fetchall()


def _mann_whitney(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_verdict_quality_auc_is_mann_whitney(built):
    settings, lake, model, siblings = built
    rows = [r for r in lake.read("provenance_scores").to_pylist() if r["score_oof"] is not None]
    pos = [r for r in rows if r["label"]]
    neg = [r["score_oof"] for r in rows if not r["label"]]
    got = {r[0]: r[1:] for r in _query(settings, "select derivation_type, roc_auc, n_positive_pairs, n_negative_pairs, "
                                       "tpr_at_target_fpr, fit_id from verdict_quality")}
    relations = {r["relation"] for r in pos}
    assert set(got) == relations | {"all", "sibling"}
    assert got["all"][0] == pytest.approx(_mann_whitney([r["score_oof"] for r in pos], neg), abs=1e-12)
    assert got["all"][1:3] == (len(pos), len(neg)) and got["all"][4] == model.fit_id
    for rel in relations:
        p = [r["score_oof"] for r in pos if r["relation"] == rel]
        assert got[rel][0] == pytest.approx(_mann_whitney(p, neg), abs=1e-12), rel
        assert got[rel][1] == len(p)
    sib = [r["score_oof"] for r in rows if r["relation"] == "sibling"]
    assert len(sib) == len(siblings) == 2
    assert got["sibling"][0] == pytest.approx(_mann_whitney([r["score_oof"] for r in pos], sib), abs=1e-12)
    assert got["sibling"][1:3] == (len(pos), 2)
    # TPR at the target FPR, by brute force over thresholds at related scores; 'all' equals the fit's own figure
    ps = [r["score_oof"] for r in pos]
    best = max([sum(q >= t for q in ps) / len(ps) for t in ps if sum(n >= t for n in neg) / len(neg) <= 0.01],
               default=0.0)
    assert got["all"][3] == pytest.approx(best) == pytest.approx(model.tpr_at_fpr_oof)


def test_precision_recall_at_threshold_and_verdicts(built):
    settings, lake, model, _ = built
    rows = lake.read("provenance_scores").to_pylist()
    thr = model.threshold
    tp = sum(r["label"] and r["score_oof"] >= thr for r in rows)
    fp = sum(not r["label"] and r["score_oof"] >= thr for r in rows)
    (rec, fpr, prec, t), = _query(settings, "select recall_at_threshold, fpr_at_threshold, precision_at_threshold, "
                                  "threshold from verdict_quality where derivation_type = 'all'")
    n_pos = sum(r["label"] for r in rows)
    assert t == thr and rec == pytest.approx(tp / n_pos) and fpr == pytest.approx(fp / (len(rows) - n_pos))
    assert prec == (pytest.approx(tp / (tp + fp)) if tp + fp else None)
    assert fpr <= model.target_fpr
    got = {(r[0], r[1]): r[2:] for r in _query(settings, "select model_a, model_b, verdict, related_oof, display_name_a, "
                                               "score_full from provenance_verdicts")}
    assert len(got) == len(rows) == 465
    names = {m["model_id"]: m["display_name"] for m in lake.read("models").to_pylist()}
    for r in rows:
        verdict, related_oof, name_a, score = got[(r["model_a"], r["model_b"])]
        assert verdict == ("related" if r["score_full"] >= thr else "unrelated")
        assert related_oof == (r["score_oof"] >= thr) and name_a == names[r["model_a"]] and score == r["score_full"]


def test_marts_follow_the_newest_fit_and_empty_lake(built, tmp_path):
    settings, lake, model, _ = built
    (cur,), = _query(settings, "select fit_id from stg_provenance_model where is_current")
    assert cur == model.fit_id
    empty = settings.with_overrides(lake_root=str(tmp_path / "lake"), warehouse=str(tmp_path / "wh.duckdb"))
    Lake(empty.lake_root).init()
    run_dbt(["build", *SELECT], empty)
    assert _query(empty, "select count(*) from verdict_quality") == [(0,)]
    assert _query(empty, "select count(*) from provenance_verdicts") == [(0,)]


def test_pair_similarities_mark_recorded_siblings_unrelated(built):
    settings, lake, model, siblings = built
    rows = _query(settings, "select model_a, model_b, relation, is_related, family_a = family_b from pair_similarities")
    sib = {tuple(p) for p in siblings}
    assert sib and {(a, b) for a, b, rel, *_ in rows if rel == "sibling"} == sib
    for a, b, rel, related, same in rows:
        if (a, b) in sib:
            assert not related
        elif rel == "unrelated":
            assert not related and not same
        else:  # lineage or same family
            assert related

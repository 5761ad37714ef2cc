"""dbt build over a real lake, cross-checked against a small independent implementation."""

import itertools
import statistics

import numpy as np
import pytest

from fingerprinting import pipeline
from fingerprinting.lake import Lake
from fingerprinting.methods import make_method
from fingerprinting.registry import list_models, register_models, zoo_records
from fingerprinting.warehouse import connect, run_dbt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_zoo, zoo_settings):
    from fingerprinting.settings import Settings

    root = tmp_path_factory.mktemp("dbt")
    settings = Settings(lake_root=str(root / "lake"), warehouse=str(root / "wh.duckdb"),
                        reports_dir=str(root / "reports"), zoo_dir=zoo_settings.zoo_dir,
                        global_registry=str(root / "g"), device="cpu")
    lake = Lake(settings.lake_root).init()
    register_models(lake, zoo_records(tiny_zoo))
    method = make_method("weight_spectrum")
    fps = []
    for rec in list_models(lake):
        fps += pipeline.fingerprint_model(rec, [method], device="cpu")
    pipeline.write_fingerprints(lake, pipeline.fingerprint_table(fps, "test"))
    pipeline.compute_similarities(lake, "weight_spectrum", method.config_hash, ["l1", "cosine"])
    run_dbt(["build"], settings)
    return settings, lake, method.config_hash


def _query(settings, sql):
    with connect(settings) as con:
        return con.sql(sql).fetchall()


def _reference(lake, config_hash, metric):
    """Statistics straight from the definitions in DESIGN.md, from the lake's rows."""
    info = {r["model_id"]: r for r in lake.read("models").to_pylist()}
    sims = {(r["model_a"], r["model_b"]): r["similarity"] for r in lake.read("similarities").to_pylist()
            if r["metric"] == metric and r["config_hash"] == config_hash}

    def sim(a, b):
        return sims[(min(a, b), max(a, b))]

    families = {}
    for mid, r in info.items():
        families.setdefault(r["family"], []).append(mid)

    def stats(values):
        return (min(values), max(values), statistics.fmean(values), statistics.pvariance(values), len(values))

    intra = {f: stats([sim(a, b) for a, b in itertools.combinations(ms, 2)])
             for f, ms in families.items() if len(ms) >= 2}
    inter = {}
    for f1, f2 in itertools.combinations(sorted(families), 2):
        inter[(f1, f2)] = stats([sim(a, b) for a in families[f1] for b in families[f2]])
    type_pairs = {}
    for ms in families.values():
        for a, b in itertools.combinations(ms, 2):
            ta, tb = info[a]["model_type"], info[b]["model_type"]
            if ta != tb:
                type_pairs.setdefault("-".join(sorted([ta, tb])), []).append(sim(a, b))
    return intra, inter, {k: stats(v) for k, v in type_pairs.items()}


@pytest.mark.parametrize("metric", ["l1", "cosine"])
def test_stats_match_independent_implementation(built, metric):
    settings, lake, h = built
    intra, inter, tp = _reference(lake, h, metric)
    where = f"where metric = '{metric}' and config_hash = '{h}'"
    got = {r[0]: r[1:] for r in _query(settings, "select family, min_similarity, max_similarity, mean_similarity, "
                                       f"variance, n_pairs from intrafamily_stats {where}")}
    assert set(got) == set(intra) and len(intra) == 5
    for fam, ref in intra.items():
        np.testing.assert_allclose(got[fam], ref, atol=1e-9, rtol=0)
    got = {(r[0], r[1]): r[2:] for r in _query(settings, "select family_1, family_2, min_similarity, max_similarity, "
                                               f"mean_similarity, variance, n_pairs from interfamily_stats {where}")}
    assert set(got) == set(inter) and len(inter) == 10
    for key, ref in inter.items():
        np.testing.assert_allclose(got[key], ref, atol=1e-9, rtol=0)
    got = {r[0]: r[1:] for r in _query(settings, "select type_pair, min_similarity, max_similarity, mean_similarity, "
                                       f"variance, n_pairs from type_pair_stats {where}")}
    assert set(got) == set(tp)
    for key, ref in tp.items():
        np.testing.assert_allclose(got[key], ref, atol=1e-9, rtol=0)


def test_auc_matches_pairwise_count(built):
    settings, lake, h = built
    rows = _query(settings, f"select similarity, is_related from pair_similarities where metric = 'l1' and config_hash = '{h}'")
    pos = [s for s, r in rows if r]
    neg = [s for s, r in rows if not r]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    (auc,), = _query(settings, "select roc_auc from provenance_quality "
                     f"where metric = 'l1' and config_hash = '{h}' and derivation_type = 'all'")
    assert auc == pytest.approx(wins / (len(pos) * len(neg)), abs=1e-12)


def test_lineage_relations_and_neighbors(built):
    settings, _, h = built
    rel = dict(_query(settings, "select display_name_a || '|' || display_name_b, relation from pair_similarities "
                      f"where metric = 'l1' and config_hash = '{h}' and family_a = 'Llama'"))
    norm = {tuple(sorted(k.split("|"))): v for k, v in rel.items()}
    assert norm[("llama-base", "llama-int8")] == "quantized"
    assert norm[("llama-base", "llama-merge")] == "multi_step"
    assert norm[("llama-chat", "llama-merge")] == "merge"
    assert norm[("llama-chat", "llama-code")] == "same_family"
    ks = _query(settings, "select model_id, max(rank), count(*) from nearest_neighbors "
                f"where metric = 'l1' and config_hash = '{h}' group by model_id")
    assert len(ks) == 31 and all(r[1] == 5 and r[2] == 5 for r in ks)


def test_docs_generate_and_empty_lake(built, tmp_path):
    settings, _, _ = built
    run_dbt(["docs", "generate"], settings)
    empty = settings.with_overrides(lake_root=str(tmp_path / "lake"), warehouse=str(tmp_path / "wh.duckdb"))
    Lake(empty.lake_root).init()
    run_dbt(["build"], empty)
    assert _query(empty, "select count(*) from pair_similarities") == [(0,)]

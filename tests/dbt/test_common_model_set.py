"""Marts that compare methods or metrics use the common model set (issue 14: 465 vs 496 pairs).

The lake reproduces the issue's situation for real: weight_spectrum fingerprints and both metrics
for 24 of the tiny zoo's models, then the other 7 fingerprinted and only ``l1`` recomputed, so
``l1`` covers 31 models and ``cosine`` 24. A second method (``weight``, ``l1`` only) covers all 31.
provenance_quality must report figures over the common set, recomputed here from the lake's rows
with plain Python (Mann-Whitney by counting, relations from the manifest's lineage).
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import pytest

from fingerprinting import pipeline
from fingerprinting.lake import Lake
from fingerprinting.methods import make_method
from fingerprinting.registry import list_models, register_models, zoo_records
from fingerprinting.warehouse import connect, run_dbt

pytestmark = pytest.mark.slow
LATE = 7  # models fingerprinted after the first run (only l1 recomputed)
# provenance_quality and what the singular pair-count test reads (it checks every experiment is complete)
SELECT = ["--select", "+provenance_quality", "+intrafamily_stats", "+interfamily_stats"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_zoo, zoo_settings):
    from fingerprinting.settings import Settings

    root = tmp_path_factory.mktemp("common")
    settings = Settings(lake_root=str(root / "lake"), warehouse=str(root / "wh.duckdb"),
                        reports_dir=str(root / "reports"), zoo_dir=zoo_settings.zoo_dir,
                        global_registry=str(root / "g"), device="cpu")
    lake = Lake(settings.lake_root).init()
    register_models(lake, zoo_records(tiny_zoo))
    spectrum, weight = make_method("weight_spectrum"), make_method("weight", {"size": 20})
    records = sorted(list_models(lake), key=lambda r: r.model_id)
    early, late = records[:-LATE], records[-LATE:]
    fps = {r.model_id: pipeline.fingerprint_model(r, [spectrum, weight], device="cpu") for r in records}

    def write(recs, which):
        pipeline.write_fingerprints(lake, pipeline.fingerprint_table(
            [fps[r.model_id][which] for r in recs], "test"))

    write(early, 0)
    pipeline.compute_similarities(lake, "weight_spectrum", spectrum.config_hash, ["l1", "cosine"])
    write(late, 0)  # a later registration, then only one metric rerun
    pipeline.compute_similarities(lake, "weight_spectrum", spectrum.config_hash, ["l1"])
    write(records, 1)
    pipeline.compute_similarities(lake, "weight", weight.config_hash, ["l1"])
    target = str(root / "target")
    run_dbt(["build", *SELECT, "--target-path", target, "--log-path", target], settings)
    return settings, lake, tiny_zoo, {r.model_id for r in early}, {r.model_id for r in records}, target


def _query(settings, sql):
    with connect(settings, read_only=True) as con:
        return con.sql(sql).fetchall()


def _relations(manifest) -> dict[tuple[str, str], str]:
    """Pair -> derivation: a direct edge's relation, multi_step along a longer path, same_family, unrelated."""
    models = {m["model_id"]: m for m in manifest["models"]}
    parents = {m["model_id"]: [tuple(p) for p in m["parents"]] for m in manifest["models"]}

    def ancestors(mid):
        out, stack = {}, [(mid, 0)]
        while stack:
            node, d = stack.pop()
            for p, _ in parents[node]:
                if p not in out or out[p] > d + 1:
                    out[p] = d + 1
                    stack.append((p, d + 1))
        return out

    anc = {m: ancestors(m) for m in models}
    rel = {}
    for a, b in itertools.combinations(sorted(models), 2):
        direct = [r for p, r in parents[b] if p == a] + [r for p, r in parents[a] if p == b]
        if direct:
            rel[(a, b)] = direct[0]
        elif a in anc[b] or b in anc[a]:
            rel[(a, b)] = "multi_step"
        elif models[a]["family"] == models[b]["family"]:
            rel[(a, b)] = "same_family"
        else:
            rel[(a, b)] = "unrelated"
    return rel


def _reference(lake, relations, method, metric, keep):
    """provenance_quality's figures from their definitions, over the pairs of the models in ``keep``."""
    sims = [(r["model_a"], r["model_b"], r["similarity"]) for r in lake.read("similarities").to_pylist()
            if r["method"] == method and r["metric"] == metric]
    rows = [(relations[(a, b)], s) for a, b, s in sims if a in keep and b in keep]
    neg = [s for r, s in rows if r == "unrelated"]
    groups = {"all": [s for r, s in rows if r != "unrelated"]}
    for r, s in rows:
        if r != "unrelated":
            groups.setdefault(r, []).append(s)
    out = {}
    for kind, pos in groups.items():
        wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)

        def rates(t, pos=pos):
            return sum(p >= t for p in pos) / len(pos), sum(n >= t for n in neg) / len(neg)

        tpr_ok = [rates(t)[0] for t in pos if rates(t)[1] <= 0.01]
        out[kind] = {"n_positive_pairs": len(pos), "n_negative_pairs": len(neg),
                     "roc_auc": wins / (len(pos) * len(neg)), "tpr_at_target_fpr": max(tpr_ok, default=0.0),
                     "youden_j": max(rates(t)[0] - rates(t)[1] for t in pos),
                     "mean_positive_similarity": statistics.fmean(pos)}
    return out


COLS = ["n_positive_pairs", "n_negative_pairs", "roc_auc", "tpr_at_target_fpr", "youden_j",
        "mean_positive_similarity", "n_models_common", "n_models_experiment"]


def _mart(settings, method, metric):
    rows = _query(settings, f"select derivation_type, {', '.join(COLS)} from provenance_quality "
                            f"where method = '{method}' and metric = '{metric}'")
    return {r[0]: dict(zip(COLS, r[1:], strict=True)) for r in rows}


@pytest.mark.parametrize("method,metric,n_experiment", [("weight_spectrum", "l1", 31),
                                                       ("weight_spectrum", "cosine", 31 - LATE),
                                                       ("weight", "l1", 31)])
def test_provenance_quality_over_the_common_set(built, method, metric, n_experiment):
    settings, lake, manifest, early, _, _ = built
    ref = _reference(lake, _relations(manifest), method, metric, early)
    got = _mart(settings, method, metric)
    assert set(got) == set(ref) and "all" in ref and "finetune" in ref
    for kind, want in ref.items():
        row = got[kind]
        assert row["n_models_common"] == len(early) == 31 - LATE
        assert row["n_models_experiment"] == n_experiment
        for col, value in want.items():
            assert row[col] == pytest.approx(value, abs=1e-12), (kind, col)
    # every 'all' row now ranks the same pairs: C(24, 2)
    assert got["all"]["n_positive_pairs"] + got["all"]["n_negative_pairs"] == (31 - LATE) * (30 - LATE) // 2


def test_common_set_differs_from_the_full_experiment(built):
    """On all 31 models l1 scores differently: the restriction is real, not a no-op."""
    settings, lake, manifest, early, everyone, _ = built
    full = _reference(lake, _relations(manifest), "weight_spectrum", "l1", everyone)["all"]
    got = _mart(settings, "weight_spectrum", "l1")["all"]
    assert full["n_positive_pairs"] + full["n_negative_pairs"] == 465
    assert got["n_positive_pairs"] + got["n_negative_pairs"] == 276
    flags = _query(settings, "select in_common_set, count(*) from pair_similarities "
                             "where method = 'weight_spectrum' and metric = 'l1' group by all order by 1")
    assert flags == [(False, 465 - 276), (True, 276)]


def test_per_method_scope(built, tmp_path):
    """common_set_scope 'method_config': weight (one metric, 31 models) keeps all its models."""
    settings, lake, manifest, early, everyone, target = built
    wh = settings.with_overrides(warehouse=str(tmp_path / "wh.duckdb"))
    run_dbt(["build", *SELECT, "--target-path", target, "--log-path", target,
             "--vars", "{common_set_scope: method_config}"], wh)
    relations = _relations(manifest)
    for method, metric, keep in [("weight", "l1", everyone), ("weight_spectrum", "cosine", early),
                                 ("weight_spectrum", "l1", early)]:
        ref = _reference(lake, relations, method, metric, keep)["all"]
        got = _mart(wh, method, metric)["all"]
        assert got["n_models_common"] == len(keep)
        assert got["roc_auc"] == pytest.approx(ref["roc_auc"], abs=1e-12)
        assert got["n_positive_pairs"] == ref["n_positive_pairs"]
    assert Path(target).is_dir()


def test_bad_scope_is_refused(built, tmp_path):
    settings, _, _, _, _, target = built
    from fingerprinting.warehouse import DbtError

    wh = settings.with_overrides(warehouse=str(tmp_path / "wh.duckdb"))
    with pytest.raises(DbtError, match="common_set_scope"):
        run_dbt(["build", "--select", "pair_similarities", "--target-path", target, "--log-path", target,
                 "--vars", "{common_set_scope: everything}"], wh)

"""The configs marts (dbt_project/models/marts/configs) on a hand-made lineage and on the real Hub sample.

Expected values come from the Python reference (fingerprinting/configs/drift.py), from counts worked out
by hand below, or from a small union-find written here, never from the SQL.
"""

import itertools
import json
import math
import statistics
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from fingerprinting.configs.analysis import METRICS
from fingerprinting.configs.drift import (
    edge_depths,
    edge_drift,
    feature_ranges,
    gower_pair,
    trait_mutation_rate,
)
from fingerprinting.configs.features import FEATURE_KINDS, FEATURES
from fingerprinting.configs.tables import MODEL_TRAITS
from fingerprinting.lake import Lake
from fingerprinting.registry import ModelRecord, register_models
from fingerprinting.settings import Settings
from fingerprinting.warehouse import DBT_DIR, connect, run_dbt
from flows.config_flow import config_flow

pytestmark = pytest.mark.slow

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 4, "intermediate_size": 172, "vocab_size": 512, "max_position_embeddings": 256,
         "torch_dtype": "bfloat16", "rope_theta": 10000.0}
GPT2 = {"model_type": "gpt2", "n_embd": 96, "n_layer": 3, "n_head": 4, "vocab_size": 1000, "n_positions": 512,
        "torch_dtype": "float32"}
A3 = {k: v for k, v in LLAMA.items() if k != "vocab_size"} | {"torch_dtype": "float16", "rope_theta": 500000.0}
CONFIGS = {
    "a0": LLAMA,
    "a1": LLAMA | {"torch_dtype": "float16"},  # a changed dtype
    "a2": LLAMA | {"hidden_size": 128, "intermediate_size": 344},  # a changed hidden size
    "a3": A3,  # vocab_size missing, rope_theta changed
    "b0": GPT2,
    "b1": dict(GPT2),  # identical to b0: a duplicate by hash and by features
}
FAMILY = {"a0": "Alpha", "a1": "Alpha", "a2": "Alpha", "a3": "Alpha", "b0": "Beta", "b1": "Beta"}
EDGES = [("a0", "a1", "finetune"), ("a0", "a2", "finetune"), ("a1", "a3", "quantized"),
         ("b0", "b1", "finetune"), ("a2", "b1", "merge")]
TRAITS = {  # license, languages, pipeline_tag, library
    "a0": (["apache-2.0"], ["en"], ["text-generation"], ["transformers"]),
    "a1": (["apache-2.0"], ["en", "fr"], ["text-generation"], ["transformers"]),
    "a2": (["mit"], [], ["text-generation"], ["transformers", "peft"]),
    "a3": (["apache-2.0"], ["en", "fr"], ["text-generation"], ["gguf"]),
    "b0": (["mit"], ["en"], [], ["transformers"]),
    "b1": (["mit"], ["de"], [], ["transformers"]),
}


def _settings(root: Path) -> Settings:
    return Settings(lake_root=str(root / "lake"), warehouse=str(root / "wh.duckdb"), reports_dir=str(root / "r"),
                    zoo_dir=str(root / "z"), global_registry=str(root / "g"), device="cpu")


@pytest.fixture(scope="module", autouse=True)
def _own_dbt_target(tmp_path_factory):
    """dbt writes target/ and logs/ under the project; keep this module's runs apart from anyone else's."""
    tmp = tmp_path_factory.mktemp("dbt_target")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_TARGET_PATH", str(tmp / "target"))
        mp.setenv("DBT_LOG_PATH", str(tmp / "logs"))
        yield


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """6 models in 2 families, 5 edges, configs from a JSONL file, traits written straight to the lake."""
    root = tmp_path_factory.mktemp("config_tree")
    settings = _settings(root)
    lake = Lake(settings.lake_root).init()
    parents = {}
    for p, c, rel in EDGES:
        parents.setdefault(c, []).append((p, rel))
    register_models(lake, [ModelRecord(m, str(root / "nowhere" / m), FAMILY[m], "Base", m, "",
                                       parents=parents.get(m, [])) for m in CONFIGS])
    src = root / "configs.jsonl"
    src.write_text("".join(json.dumps({"model_id": m, "config": c}) + "\n" for m, c in CONFIGS.items()))
    summary = config_flow.fn(sources=[], paths=[str(src)], settings=settings)
    assert summary.ingested == {f"user:{src}": 6}
    lake.merge("model_traits", pa.Table.from_pylist(
        [{"model_id": m, "source": "test", "license": t[0], "languages": t[1], "pipeline_tag": t[2],
          "library": t[3], "created_at": None} for m, t in TRAITS.items()], schema=MODEL_TRAITS.schema))
    run_dbt(["build"], settings)
    return settings, lake


def _rows(settings, sql):
    with connect(settings) as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_drift_edges_match_python_reference(tree):
    settings, lake = tree
    configs = {r["model_id"]: r for r in lake.read("model_configs").to_pylist()}
    ranges = feature_ranges(configs.values())
    depths = edge_depths([(p, c) for p, c, _ in EDGES])
    got = {(r["parent_id"], r["child_id"], r["relation"]): r for r in _rows(settings, "select * from config_drift_edges")}
    assert set(got) == set(EDGES)
    for p, c, rel in EDGES:
        ref = edge_drift(configs[p], configs[c], ranges)
        row = got[(p, c, rel)]
        assert row["gower_standard"] == pytest.approx(ref["gower_standard"], abs=1e-12)
        assert row["gower_max"] == pytest.approx(ref["gower_max"], abs=1e-12)
        assert row["n_compared"] == ref["n_compared"]
        assert row["changed_fields"] == ref["changed_fields"] and row["n_changed"] == len(ref["changed_fields"])
        assert row["depth"] == depths[c]
        assert (row["parent_family"], row["child_family"], row["same_family"]) == (
            FAMILY[p], FAMILY[c], FAMILY[p] == FAMILY[c])
        assert row["has_parent_config"] and row["has_child_config"]
    # by hand: b1 is a copy of b0; a0 -> a1 compares all 18 llama features; a3 lacks vocab_size and so
    # also approx_params (computed from it): 16 compared, only rope_theta differs
    assert got[("b0", "b1", "finetune")]["gower_standard"] == 0 and got[("b0", "b1", "finetune")]["changed_fields"] == []
    assert got[("a0", "a1", "finetune")]["n_compared"] == 18
    a3 = got[("a1", "a3", "quantized")]
    assert a3["n_compared"] == 16 and a3["changed_fields"] == ["rope_theta"]
    assert {"torch_dtype"} <= set(got[("a0", "a1", "finetune")]["changed_fields"])
    assert {"hidden_size", "intermediate_size"} <= set(got[("a0", "a2", "finetune")]["changed_fields"])


def test_field_mutation_by_hand(tree):
    settings, _ = tree
    got = {(r["field"], r["relation"]): (r["n_edges_compared"], r["n_changed"])
           for r in _rows(settings, "select * from config_field_mutation")}
    assert len(got) == len(FEATURES) * 4  # finetune, quantized, merge, all
    # worked out from CONFIGS and EDGES (llama a*, gpt2 b*; a3 has no vocab_size; gpt2 has no rope_theta)
    expected = {
        ("torch_dtype", "all"): (5, 2), ("torch_dtype", "finetune"): (3, 1), ("torch_dtype", "quantized"): (1, 0),
        ("torch_dtype", "merge"): (1, 1),
        ("hidden_size", "all"): (5, 2), ("hidden_size", "finetune"): (3, 1), ("hidden_size", "merge"): (1, 1),
        ("vocab_size", "all"): (4, 1), ("vocab_size", "quantized"): (0, 0), ("vocab_size", "finetune"): (3, 0),
        ("rope_theta", "all"): (3, 1), ("rope_theta", "quantized"): (1, 1), ("rope_theta", "merge"): (0, 0),
        ("model_type", "all"): (5, 1), ("model_type", "merge"): (1, 1),
    }
    for key, value in expected.items():
        assert got[key] == value, key
    # Wilson bounds of torch_dtype / all (k = 2, n = 5), formula written out independently
    row, = _rows(settings, "select * from config_field_mutation where field = 'torch_dtype' and relation = 'all'")
    z, n, p = 1.959964, 5, 0.4
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert row["share_changed"] == pytest.approx(0.4)
    assert row["ci_low"] == pytest.approx(centre - half, abs=1e-9) and row["ci_high"] == pytest.approx(centre + half, abs=1e-9)


def test_trait_mutation_by_hand(tree):
    settings, _ = tree
    got = {(r["trait"], r["relation"]): (r["n_edges"], r["mean_mutation_rate"], r["share_changed"])
           for r in _rows(settings, "select * from trait_mutation")}
    expected = {
        # a0->a2 is the only licence change (apache-2.0 -> mit)
        ("license", "all"): (5, 0.2, 0.2), ("license", "finetune"): (3, 1 / 3, 1 / 3),
        ("license", "quantized"): (1, 0.0, 0.0),
        # a2 reports no languages; a0->a1 {en} vs {en, fr} 1/2, a1->a3 0, b0->b1 {en} vs {de} 1
        ("languages", "all"): (3, 0.5, 2 / 3), ("languages", "finetune"): (2, 0.75, 1.0),
        # b* report no pipeline tag
        ("pipeline_tag", "all"): (3, 0.0, 0.0), ("pipeline_tag", "merge"): (0, None, None),
        # a0->a2 and a2->b1 {transformers} vs {transformers, peft} 1/2 each, a1->a3 transformers -> gguf 1
        ("library", "all"): (5, 0.4, 0.6), ("library", "merge"): (1, 0.5, 1.0),
    }
    for key, (n, mean, share) in expected.items():
        assert got[key][0] == n, key
        if mean is None:
            assert got[key][1:] == (None, None)
        else:
            assert got[key][1] == pytest.approx(mean) and got[key][2] == pytest.approx(share), key
    # and the Python reference agrees edge by edge on languages / all
    rates = [trait_mutation_rate(TRAITS[p][1], TRAITS[c][1]) for p, c, _ in EDGES]
    rates = [r for r in rates if r is not None]
    assert got[("languages", "all")][1] == pytest.approx(statistics.fmean(rates))


def test_duplicates(tree):
    settings, _ = tree
    got = {(r["match_kind"], tuple(r["model_ids"])): r for r in _rows(settings, "select * from architecture_duplicates")}
    assert set(got) == {("config_hash", ("b0", "b1")), ("feature_vector", ("b0", "b1"))}
    assert all(r["n_models"] == 2 and r["n_families"] == 1 and r["archs"] == ["gpt2"] for r in got.values())


def test_drift_summary_baselines(tree):
    settings, lake = tree
    configs = {r["model_id"]: r for r in lake.read("model_configs").to_pylist()}
    ranges = feature_ranges(configs.values())
    got = {(r["group_kind"], r["group_value"]): r for r in _rows(settings, "select * from config_drift_summary")}
    # siblings: a0's children a1, a2 are the only pair of children of one parent
    sib = got[("baseline", "siblings")]
    assert sib["n_edges"] == 1
    assert sib["mean_drift"] == pytest.approx(gower_pair(configs["a1"], configs["a2"], ranges)[0], abs=1e-12)
    # random pairs: 6 models with configs and a family give 15 pairs, far fewer than the 5000 asked: all drawn
    rnd = got[("baseline", "random_pairs")]
    ref = [gower_pair(configs[a], configs[b], ranges)[0] for a, b in itertools.combinations(sorted(configs), 2)]
    assert rnd["n_edges"] == 15 and rnd["mean_drift"] == pytest.approx(statistics.fmean(ref), abs=1e-12)
    assert rnd["median_drift"] == pytest.approx(statistics.median(ref), abs=1e-12)
    # edges: 4 within a family, a2 -> b1 between
    assert got[("within_vs_between", "within_family")]["n_edges"] == 4
    assert got[("within_vs_between", "between_family")]["n_edges"] == 1
    assert got[("overall", "all")]["share_zero_drift"] == pytest.approx(1 / 5)  # only b0 -> b1


def _components(nodes, links):
    parent = {n: n for n in nodes}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups = {}
    for n in nodes:
        groups.setdefault(find(n), []).append(n)
    return {n: min(g) for g in groups.values() for n in g}, {n: len(g) for g in groups.values() for n in g}


def test_graph_components_match_union_find(tree):
    settings, lake = tree
    sims = [r for r in lake.read("config_similarities").to_pylist() if r["kind"] == "neighbor"]
    nodes_got = {(r["metric"], r["variant"], r["model_id"]): r for r in _rows(settings, "select * from config_graph_nodes")}
    for metric in METRICS:
        rows = [r for r in sims if r["metric"] == metric]
        nodes = sorted({r["model_a"] for r in rows} | {r["model_b"] for r in rows})
        median = statistics.median(r["distance"] for r in rows)
        for variant, limit in (("median", median), ("threshold", 0.05)):
            links = {tuple(sorted((r["model_a"], r["model_b"]))) for r in rows if r["distance"] <= limit + 1e-15}
            comp, size = _components(nodes, links)
            for n in nodes:
                row = nodes_got[(metric, variant, n)]
                assert row["component_id"] == comp[n] and row["component_size"] == size[n]
                assert row["degree"] == sum(n in link for link in links)
    assert len(nodes_got) == len(METRICS) * 2 * 6


def test_neighbors_relations(tree):
    settings, _ = tree
    rel = {(r["model_id"], r["neighbor_id"]): r["relation"]
           for r in _rows(settings, "select * from config_neighbors where metric = 'gower'")}
    assert rel[("a1", "a0")] == "parent" and rel[("a0", "a1")] == "child" and rel[("a1", "a2")] == "sibling"
    assert rel[("a3", "a0")] == "same_family" and rel[("a0", "b0")] == "other_family"
    assert rel[("b1", "a2")] == "parent"


def _yaml_files():
    return sorted((DBT_DIR / "models").rglob("*.yml"))


def test_dbt_metric_lists_equal_registry():
    """Every accepted-values list on a config `metric` column names exactly the registry's metrics."""
    found = 0
    for path in _yaml_files():
        if "configs" not in path.parts:
            continue
        for model in yaml.safe_load(path.read_text()).get("models", []):
            for col in model.get("columns", []):
                for test in col.get("data_tests", []) or []:
                    if col["name"] == "metric" and isinstance(test, dict) and "accepted_values" in test:
                        assert test["accepted_values"]["arguments"]["values"] == list(METRICS), path
                        found += 1
    assert found >= 4  # stg_config_similarities, config_neighbors, config_similarity_graph, config_graph_nodes


def test_dbt_feature_vars_equal_python_features():
    project = yaml.safe_load((DBT_DIR / "dbt_project.yml").read_text())["vars"]
    numeric, categorical = project["config_numeric_features"], project["config_categorical_features"]
    assert sorted(numeric + categorical) == sorted(FEATURES) and len(numeric + categorical) == len(FEATURES)
    assert all(FEATURE_KINDS[f] == "numeric" for f in numeric)
    assert all(FEATURE_KINDS[f] != "numeric" for f in categorical)


def test_real_lineage_and_catalogue(tmp_path_factory):
    """The real Hub sample + transformers catalogue: dbt build passes (every test) and all 1,961 edges land."""
    settings = _settings(tmp_path_factory.mktemp("config_real"))
    config_flow.fn(settings=settings)
    run_dbt(["build"], settings)
    (n, n_drift, n_fam), = [tuple(r.values()) for r in _rows(
        settings, "select count(*), count(gower_standard), count(distinct child_family) from config_drift_edges")]
    assert n == 1961 and 0 < n_drift < n and n_fam > 10
    kinds = {r["group_kind"] for r in _rows(settings, "select distinct group_kind from config_drift_summary")}
    assert kinds == {"overall", "relation", "family", "within_vs_between", "baseline"}
    (n_random,), = [tuple(r.values()) for r in _rows(
        settings, "select n_edges from config_drift_summary where group_value = 'random_pairs'")]
    assert n_random == 5000

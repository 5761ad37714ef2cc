"""Model queries over a hand-built lake (no model is loaded, no dbt, no Prefect)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from fingerprinting.configs.tables import MODEL_CONFIGS
from fingerprinting.lake import TABLES, Lake
from fingerprinting.plugins import UnknownPluginError
from fingerprinting.queries import (
    QueryError,
    compare_models,
    find_similar,
    lineage_relation,
    list_registered,
    similarity_matrices,
    similarity_pairs,
    view_model,
)
from fingerprinting.registry import ModelRecord, UnknownModelError, register_models

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
# (model_a, model_b) with model_a < model_b -> similarity, per (method, metric, config_hash)
SIMS = {
    ("input_output", "l1", "h1"): {("base", "ft"): 0.9, ("base", "other"): 0.2, ("base", "q"): 0.8,
                                   ("ft", "other"): 0.3, ("ft", "q"): 0.95, ("other", "q"): 0.1},
    ("weight", "cosine", "h2"): {("base", "ft"): 0.5, ("base", "other"): -0.2},
}


def build_lake(root) -> Lake:
    """4 models: base -> ft (finetune) -> q (quantized); other is unrelated (another family)."""
    lake = Lake(str(root)).init()
    register_models(lake, [
        ModelRecord("base", "/m/base", "llama", "base", "Llama Base", "LlamaForCausalLM"),
        ModelRecord("ft", "/m/ft", "llama", "finetune", "Llama FT", "LlamaForCausalLM", [("base", "finetune")]),
        ModelRecord("q", "/m/q", "llama", "quantized", "Llama Q", "LlamaForCausalLM", [("ft", "quantized")]),
        ModelRecord("other", "/m/other", "gpt", "base", "GPT Other", "GPT2LMHeadModel"),
    ])
    fp_schema = TABLES["fingerprints"].schema
    fps = [("base", "input_output", "h1", {"n0": 40}, 3, "cpu"), ("base", "weight", "h2", {}, 2, "cuda"),
           ("ft", "input_output", "h1", {"n0": 40}, 3, "cpu")]
    lake.merge("fingerprints", pa.Table.from_pylist([{
        "model_id": m, "method": meth, "config_hash": h, "config_json": json.dumps(cfg),
        "vector": [0.1] * dim, "dim": dim, "device": dev, "dtype": "float32", "seconds": 1.5,
        "library_versions": "{}", "provenance_json": "{}", "run_id": "r1", "created_at": NOW,
    } for m, meth, h, cfg, dim, dev in fps], schema=fp_schema))
    for (method, metric, h), pairs in SIMS.items():
        lake.replace("similarities", pa.Table.from_pylist([
            {"model_a": a, "model_b": b, "method": method, "metric": metric, "config_hash": h, "similarity": s}
            for (a, b), s in pairs.items()], schema=TABLES["similarities"].schema),
            {"method": method, "metric": metric, "config_hash": h})
    row = {f.name: None for f in MODEL_CONFIGS.schema}
    row.update(model_id="base", source="/m/base", config_hash="c1", raw_json="{}", model_type="llama",
               hidden_size=64, num_hidden_layers=5, n_features=3, ingested_at=NOW)
    lake.merge("model_configs", pa.Table.from_pylist([row], schema=MODEL_CONFIGS.schema))
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Built once: every test here only reads it."""
    return build_lake(tmp_path_factory.mktemp("queries") / "lake")


def test_list_registered_filters(lake):
    rows = list_registered(lake)
    assert [r["model_id"] for r in rows] == ["base", "ft", "other", "q"]
    by = {r["model_id"]: r for r in rows}
    assert by["q"]["parents"] == [{"model_id": "ft", "relation": "quantized"}]
    assert by["base"]["fingerprints"] == 2 and by["ft"]["fingerprints"] == 1 and by["q"]["fingerprints"] == 0
    assert [r["model_id"] for r in list_registered(lake, family="llama", model_type="base")] == ["base"]
    assert [r["model_id"] for r in list_registered(lake, search="gpt")] == ["other"]


def test_view_model(lake):
    v = view_model(lake, "Llama FT")  # by display name
    assert v["model"]["model_id"] == "ft" and v["model"]["family"] == "llama"
    assert v["parents"] == [{"model_id": "base", "display_name": "Llama Base", "relation": "finetune"}]
    assert v["children"] == [{"model_id": "q", "display_name": "Llama Q", "relation": "quantized"}]
    assert v["similarity_rows"] == sum(1 for pairs in SIMS.values() for p in pairs if "ft" in p)
    assert v["config_features"] is None
    base = view_model(lake, "base")
    assert [(f["method"], f["config_hash"], f["device"], f["dim"]) for f in base["fingerprints"]] == [
        ("input_output", "h1", "cpu", 3), ("weight", "h2", "cuda", 2)]
    assert base["fingerprints"][0]["config"] == {"n0": 40}
    assert base["fingerprints"][0]["created_at"].startswith("2025-01-02T03:04:05")
    assert base["config_features"]["hidden_size"] == 64 and base["config_features"]["model_type"] == "llama"
    assert base["config_features"]["num_hidden_layers"] == 5
    json.dumps(base)  # JSON-ready


def test_unknown_id_did_you_mean(lake):
    with pytest.raises(UnknownModelError, match="did you mean 'base'"):
        view_model(lake, "bse")
    with pytest.raises(UnknownModelError, match="display name 'Llama Q'"):
        view_model(lake, "Llama  Q")


def test_compare(lake):
    r = compare_models(lake, "q", "Llama Base")
    got = {(s["method"], s["metric"], s["config_hash"]): s["similarity"] for s in r["similarities"]}
    want = {k: pairs[("base", "q")] for k, pairs in SIMS.items() if ("base", "q") in pairs}
    assert got == want
    # base is q's grandparent: finetune then quantized on the way down
    assert r["lineage"] == {"relation": "ancestor", "depth": 2, "via": None, "derivation": "finetune/quantized"}
    assert r["same_family"] is True and r["combined"] is None and "provenance fit" in r["combined_note"]
    r2 = compare_models(lake, "base", "other", metric="cosine")
    assert [s["similarity"] for s in r2["similarities"]] == [SIMS[("weight", "cosine", "h2")][("base", "other")]]
    assert r2["lineage"] is None and r2["same_family"] is False
    with pytest.raises(QueryError):
        compare_models(lake, "base", "Llama Base")
    with pytest.raises(UnknownPluginError, match="Did you mean 'input_output'"):
        compare_models(lake, "base", "ft", method="input_outptu")


def test_lineage_relation_sibling():
    edges = [{"parent_id": "p", "child_id": "a", "relation": "finetune"},
             {"parent_id": "p", "child_id": "b", "relation": "adapter"},
             {"parent_id": "b", "child_id": "c", "relation": "merge"}]
    assert lineage_relation(edges, "a", "b")["relation"] == "sibling"
    r = lineage_relation(edges, "a", "c")
    assert (r["relation"], r["depth"], r["via"]) == ("cousin", 3, "p")
    assert lineage_relation(edges, "c", "p")["derivation"] == "adapter/merge"
    assert lineage_relation(edges, "a", "zzz") is None


def test_similarity_pairs_filters(lake):
    pairs = similarity_pairs(lake)
    assert len(pairs) == sum(len(p) for p in SIMS.values())
    assert [p["similarity"] for p in pairs] == sorted((s for ps in SIMS.values() for s in ps.values()), reverse=True)
    top = similarity_pairs(lake, method="input_output", metric="l1", threshold=0.8)
    want = sorted(((a, b, s) for (a, b), s in SIMS[("input_output", "l1", "h1")].items() if s >= 0.8),
                  key=lambda t: -t[2])
    assert [(p["model_a"], p["model_b"], p["similarity"]) for p in top] == want
    assert top[0]["display_name_a"] == "Llama FT" and top[0]["family_b"] == "llama"
    among = similarity_pairs(lake, models=["base", "GPT Other"])
    assert sorted((p["metric"], p["similarity"]) for p in among) == [("cosine", -0.2), ("l1", 0.2)]
    assert len(similarity_pairs(lake, limit=2)) == 2
    with pytest.raises(UnknownPluginError, match="Did you mean 'wasserstein'"):
        similarity_pairs(lake, metric="wasserstien")


def test_similarity_matrices(lake):
    mats = similarity_matrices(similarity_pairs(lake))
    assert [(m["method"], m["metric"]) for m in mats] == [("input_output", "l1"), ("weight", "cosine")]
    m = mats[0]
    assert m["models"] == ["base", "ft", "other", "q"] and (m["lower"], m["upper"]) == (0.0, 1.0)
    for (a, b), s in SIMS[("input_output", "l1", "h1")].items():
        i, j = m["models"].index(a), m["models"].index(b)
        assert m["matrix"][i][j] == m["matrix"][j][i] == s
    assert all(m["matrix"][i][i] is None for i in range(4))
    assert mats[1]["models"] == ["base", "ft", "other"] and mats[1]["lower"] == -1.0


def test_find_similar(lake):
    r = find_similar(lake, "ft", method="input_output", metric="l1")
    assert r["model"]["model_id"] == "ft" and len(r["groups"]) == 1
    ns = r["groups"][0]["neighbors"]
    sims = SIMS[("input_output", "l1", "h1")]
    want = sorted(((b if a == "ft" else a), s) for (a, b), s in sims.items() if "ft" in (a, b))
    want.sort(key=lambda t: -t[1])
    assert [(n["model_id"], n["similarity"]) for n in ns] == want
    assert [n["rank"] for n in ns] == [1, 2, 3]
    rel = {n["model_id"]: n["relation"] for n in ns}
    assert rel == {"q": "child", "base": "parent", "other": None}
    assert {n["model_id"]: (n["family"], n["model_type"]) for n in ns}["other"] == ("gpt", "base")
    r2 = find_similar(lake, "q", threshold=0.5, limit=1)
    assert [(n["model_id"], n["relation"]) for n in r2["groups"][0]["neighbors"]] == [("ft", "parent")]
    r3 = find_similar(lake, "base")
    assert [(g["method"], [n["model_id"] for n in g["neighbors"]]) for g in r3["groups"]] == [
        ("input_output", ["ft", "q", "other"]), ("weight", ["ft", "other"])]
    assert find_similar(lake, "base")["groups"][0]["neighbors"][1]["relation"] == "descendant"


def test_empty_lake(tmp_path):
    lake = Lake(str(tmp_path / "empty"))
    assert list_registered(lake) == []
    with pytest.raises(UnknownModelError, match="0 model"):
        view_model(lake, "x")

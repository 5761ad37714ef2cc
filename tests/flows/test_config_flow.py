"""``config_flow`` end to end on real inputs: user files with bad lines, the Hub lineage sample, the catalogue."""

import json

import pytest

from fingerprinting.lake import Lake
from fingerprinting.registry import ModelRecord, register_models
from fingerprinting.settings import REPO_ROOT
from flows.config_flow import config_flow

STORIES = REPO_ROOT / "helper_data" / "models" / "stories260k"


def _jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_user_file_and_registry_with_bad_input(settings, tmp_path):
    lake = Lake(settings.lake_root).init()
    register_models(lake, [ModelRecord("stories", str(STORIES), "Stories", "Base", "stories260k"),
                           ModelRecord("ghost", str(tmp_path / "nowhere"), "Stories", "Chat", "ghost",
                                       parents=[("stories", "finetune")])])
    src = _jsonl(tmp_path / "configs.jsonl", [
        json.dumps({"model_id": "a", "config": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                                                "num_hidden_layers": 2}}),
        "this is not json",
        json.dumps({"config": {"model_type": "gpt2"}}),  # no model id
        json.dumps({"model_id": "b", "config": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 128,
                                                "rope_theta": True}}),
        json.dumps({"model_id": "c", "config": {"foo": 1}}),  # no known field
    ])
    summary = config_flow.fn(sources=["registry"], paths=[src], settings=settings)
    assert summary.ingested == {"registry": 1, f"user:{src}": 2}
    text = "\n".join(summary.problems)
    assert "line 2" in text and "line 3" in text  # each bad line named
    assert "ghost: no config.json" in text and "c: no known config field" in text
    assert "1 lineage edge(s) have no config at one end, so no drift (e.g. stories -> ghost)" in text
    rows = {r["model_id"]: r for r in lake.read("model_configs").to_pylist()}
    assert sorted(rows) == ["a", "b", "stories"]
    # stories260k's config.json, read by hand: dim 64, 5 layers, 8 heads, 4 kv heads, vocab 512
    s = rows["stories"]
    assert (s["hidden_size"], s["num_hidden_layers"], s["num_attention_heads"], s["num_key_value_heads"],
            s["vocab_size"], s["uses_gqa"]) == (64, 5, 8, 4, 512, True)
    # b: 128 heads > hidden size 64 and rope_theta = True are rejected per field, never kept
    assert rows["b"]["num_attention_heads"] is None and rows["b"]["rope_theta"] is None
    issues = {(r["model_id"], r["field"]) for r in lake.read("config_validation_issues").to_pylist()}
    assert {("b", "num_attention_heads"), ("b", "rope_theta"), ("ghost", "*")} <= issues
    # 3 configs: neighbours k = 2 per model per metric, and all 3 pairs (population below all_pairs_max)
    sims = lake.read("config_similarities", filters={"metric": "gower"}).to_pylist()
    assert sum(r["kind"] == "pair" for r in sims) == 3
    assert all(r["model_a"] < r["model_b"] for r in sims if r["kind"] == "pair")
    # rerun: same rows, nothing duplicated
    config_flow.fn(sources=["registry"], paths=[src], settings=settings)
    assert lake.count("model_configs") == 3 and lake.count("config_similarities") == len(
        lake.read("config_similarities").to_pylist())
    assert len(lake.read("config_similarities", filters={"metric": "gower"})) == len(sims)


@pytest.mark.slow
def test_lineage_and_catalogue(settings):
    summary = config_flow.fn(sources=["lineage", "catalogue"], settings=settings, k=5, all_pairs_max=10)
    lake = Lake(settings.lake_root)
    assert lake.count("models") == 1983 and lake.count("model_edges") == 1961
    assert summary.ingested["catalogue"] >= 800  # every architecture transformers 5 knows, offline
    cfg = {r["model_id"]: r for r in lake.read("model_configs").to_pylist()}
    gpt2 = cfg["catalogue/gpt2"]  # GPT2Config defaults: n_embd 768, n_layer 12, n_head 12, n_positions 1024
    assert (gpt2["hidden_size"], gpt2["num_hidden_layers"], gpt2["num_attention_heads"],
            gpt2["max_position_embeddings"], gpt2["vocab_size"]) == (768, 12, 12, 1024, 50257)
    assert lake.count("model_traits") == 1983
    assert not summary.cycles
    # top-5 neighbours only: above all_pairs_max no pair rows
    assert lake.read("config_similarities", filters={"kind": "pair"}).num_rows == 0
    stats = {r["statistic"]: r["value"] for r in lake.read("config_phylogeny").to_pylist()}
    assert 0.0 <= stats["neighbour_recovery"] <= 1.0 and -1.0 <= stats["adjusted_rand_index"] <= 1.0


def test_lineage_cycle_is_reported(settings, tmp_path):
    lake = Lake(settings.lake_root).init()
    register_models(lake, [ModelRecord("x", "/none", "F", "Base", "x", parents=[("y", "finetune")]),
                           ModelRecord("y", "/none", "F", "Chat", "y", parents=[("x", "merge")])])
    src = _jsonl(tmp_path / "c.jsonl", [json.dumps({"model_id": m, "config": {"model_type": "llama",
                                                                              "hidden_size": 64}})
                                        for m in ("x", "y")])
    summary = config_flow.fn(sources=[], paths=[src], settings=settings)
    # x -> y -> x, reported once as a cycle (the dbt depth walk is guarded against it too)
    assert [sorted(set(c)) for c in summary.cycles] == [["x", "y"]]

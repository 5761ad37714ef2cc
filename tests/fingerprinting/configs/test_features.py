from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fingerprinting.configs.features import (
    FEATURE_KINDS,
    FEATURES,
    catalogue_configs,
    config_hash,
    default_trait_sets,
    extract_features,
    gguf_metadata_to_config,
    lineage_partial_config,
    load_hf_lineage,
    read_config_source,
)


def _default(model_type: str) -> dict:
    from transformers import CONFIG_MAPPING

    return CONFIG_MAPPING[model_type]().to_dict()


def _fields(model_type: str) -> dict:
    feats, issues = extract_features(_default(model_type), model_type)
    assert [i for i in issues if i.level == "error"] == []
    return feats


def test_feature_lists():
    assert len(FEATURES) == 18 and set(FEATURE_KINDS) == set(FEATURES)
    assert FEATURE_KINDS["uses_gqa"] == "boolean" and FEATURE_KINDS["torch_dtype"] == "categorical"


def test_gpt2_aliases():
    # GPT2Config docs: n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257,
    # n_inner=None -> 4 * n_embd; learned absolute positions, no RoPE.
    f = _fields("gpt2")
    assert (f["hidden_size"], f["num_hidden_layers"], f["num_attention_heads"]) == (768, 12, 12)
    assert (f["max_position_embeddings"], f["vocab_size"]) == (1024, 50257)
    assert f["intermediate_size"] == 3072 and f["head_dim"] == 64
    assert f["uses_rope"] is False and f["rope_scaling_type"] is None
    assert f["uses_gqa"] is False and f["uses_moe"] is False and f["num_experts"] == 0


def test_llama_mistral_qwen2():
    # LlamaConfig docs: 4096 / 11008 / 32 layers / 32 heads, kv defaults to heads,
    # max_position_embeddings 2048, vocab 32000, rope_theta 10000.
    f = _fields("llama")
    assert (f["hidden_size"], f["intermediate_size"], f["num_hidden_layers"]) == (4096, 11008, 32)
    assert (f["num_attention_heads"], f["num_key_value_heads"]) == (32, 32)
    assert (f["max_position_embeddings"], f["vocab_size"], f["rope_theta"]) == (2048, 32000, 1e4)
    assert f["uses_rope"] is True and f["uses_gqa"] is False and f["rope_scaling_type"] == "default"
    # MistralConfig docs: 14336 MLP, 8 kv heads, max positions 4096 * 32.
    f = _fields("mistral")
    assert (f["intermediate_size"], f["num_key_value_heads"]) == (14336, 8)
    assert f["max_position_embeddings"] == 4096 * 32 and f["uses_gqa"] is True
    # Qwen2Config docs: vocab 151936, MLP 22016, 32 kv heads, max positions 32768.
    f = _fields("qwen2")
    assert (f["vocab_size"], f["intermediate_size"], f["num_key_value_heads"]) == (
        151936,
        22016,
        32,
    )
    assert f["max_position_embeddings"] == 32768


def test_gemma3_nested_text_and_rope_per_attention_kind():
    # Gemma3TextConfig docs: vocab 262208, hidden 2304, MLP 9216, 26 layers, 8 heads,
    # 4 kv heads, head_dim 256, rope_theta 1e6 for global (full) attention, 1e4 local.
    f = _fields("gemma3")
    assert f["model_type"] == "gemma3" and f["text_model_type"] == "gemma3_text"
    assert (f["vocab_size"], f["hidden_size"], f["intermediate_size"]) == (262208, 2304, 9216)
    assert (f["num_hidden_layers"], f["num_attention_heads"], f["num_key_value_heads"]) == (
        26,
        8,
        4,
    )
    assert f["head_dim"] == 256 and f["uses_gqa"] is True
    assert f["rope_theta"] == 1_000_000.0
    assert "full_attention" in f["rope_note"] and "sliding_attention" in f["rope_note"]


def test_t5_bert_mixtral():
    # T5Config docs: d_model 512, d_ff 2048, num_layers 6, num_heads 8, d_kv 64, vocab 32128.
    f = _fields("t5")
    assert (f["hidden_size"], f["intermediate_size"], f["num_hidden_layers"]) == (512, 2048, 6)
    assert (f["num_attention_heads"], f["head_dim"], f["vocab_size"]) == (8, 64, 32128)
    assert f["uses_rope"] is False
    # BertConfig docs: 768 / 12 / 12 / 3072, vocab 30522, max positions 512.
    f = _fields("bert")
    assert (f["hidden_size"], f["num_hidden_layers"], f["num_attention_heads"]) == (768, 12, 12)
    assert (f["intermediate_size"], f["vocab_size"], f["max_position_embeddings"]) == (
        3072,
        30522,
        512,
    )
    # MixtralConfig docs: 8 local experts, 8 kv heads, rope_theta 1e6.
    f = _fields("mixtral")
    assert f["uses_moe"] is True and f["num_experts"] == 8
    assert f["num_key_value_heads"] == 8 and f["rope_theta"] == 1e6


def test_approx_params_llama():
    # embeddings 32000*4096*2 (untied) + 32 * (attention 4*4096*4096 + gated MLP 3*4096*11008)
    expected = 32000 * 4096 * 2 + 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert _fields("llama")["approx_params"] == expected


def test_older_layout_quantization_and_aliases():
    cfg = {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
        "torch_dtype": "torch.bfloat16",
        "quantization_config": {"quant_method": "AWQ", "bits": 4},
    }
    f, issues = extract_features(cfg, "m")
    assert issues == []
    assert f["rope_theta"] == 500000.0 and f["rope_scaling_type"] == "llama3"
    assert f["torch_dtype"] == "bfloat16"
    assert f["uses_quantization"] is True and f["quant_method"] == "awq"
    # transformers 5 "dtype" and MPT-style names
    f, _ = extract_features({"d_model": 2048, "n_layers": 24, "n_heads": 16, "dtype": "float16"})
    assert (f["hidden_size"], f["num_hidden_layers"], f["num_attention_heads"]) == (2048, 24, 16)
    assert f["torch_dtype"] == "float16"
    f, _ = extract_features(
        {"hidden_size": 4096, "num_attention_heads": 32, "multi_query_group_num": 2}
    )
    assert f["num_key_value_heads"] == 2 and f["uses_gqa"] is True


def _issue_fields(cfg) -> dict:
    _, issues = extract_features(cfg, "bad/model")
    return {i.field: i for i in issues}


def test_validation():
    f, issues = extract_features({"hidden_size": 8, "num_attention_heads": 16}, "x")
    assert f["num_attention_heads"] is None
    assert [i.field for i in issues] == ["num_attention_heads"]
    for bad in (True, "abc"):
        f, issues = extract_features({"model_type": "llama", "rope_theta": bad}, "x")
        assert f["rope_theta"] is None and issues[0].field == "rope_theta"
        assert issues[0].raw_value == ("true" if bad is True else "abc")
    f, issues = extract_features({"hidden_size": -5, "num_hidden_layers": 0}, "x")
    assert f["hidden_size"] is None and f["num_hidden_layers"] is None
    assert {i.field for i in issues} == {"hidden_size", "num_hidden_layers"}
    got = _issue_fields({"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 8})
    assert "num_key_value_heads" in got
    f, issues = extract_features({"hidden_size": 100, "num_attention_heads": 3}, "x")
    assert f["hidden_size"] == 100 and issues[0].level == "warning"
    assert _issue_fields([1, 2])["*"].message == "config is not a JSON object"
    assert _issue_fields({"foo": 1})["*"].message == "no known config field"


def test_config_hash():
    a = {"b": 1, "a": [1, 2]}
    canon = json.dumps({"a": [1, 2], "b": 1}, separators=(",", ":"))
    assert config_hash(a) == hashlib.sha256(canon.encode()).hexdigest()[:16]
    assert config_hash({"a": [1, 2], "b": 1}) == config_hash(a)
    assert config_hash({"a": [2, 1], "b": 1}) != config_hash(a)


def test_gguf_metadata():
    meta = {
        "general.architecture": "llama",
        "general.file_type": 15,
        "llama.embedding_length": 4096,
        "llama.block_count": 32,
        "llama.attention.head_count": 32,
        "llama.attention.head_count_kv": 8,
        "llama.feed_forward_length": 14336,
        "llama.context_length": 8192,
        "llama.rope.freq_base": 500000.0,
        "tokenizer.ggml.tokens": ["a"] * 128,
    }
    cfg = gguf_metadata_to_config(meta)
    assert cfg["hidden_size"] == 4096 and cfg["num_key_value_heads"] == 8
    assert cfg["vocab_size"] == 128 and cfg["rope_theta"] == 500000.0
    assert cfg["quantization_config"] == {"quant_method": "gguf", "gguf_file_type": "Q4_K_M"}
    f, issues = extract_features(cfg)
    assert issues == [] and f["uses_quantization"] is True and f["uses_gqa"] is True
    assert gguf_metadata_to_config({"general.architecture": "x", "general.file_type": 1}) == {
        "model_type": "x",
        "torch_dtype": "float16",
    }


def test_catalogue_configs():
    out = list(catalogue_configs())
    assert len(out) > 700
    ok = [c for _, c, e in out if e is None]
    assert len(ok) / len(out) > 0.95
    assert all((c is None) != (e is None) for _, c, e in out)
    rows = [extract_features(c, m)[0] for m, c, _ in out if c is not None]
    assert sum(r["hidden_size"] is not None for r in rows) > 500


# ------------------------------------------------------------------------- sources


def test_read_folder(tmp_path):
    (tmp_path / "org" / "a").mkdir(parents=True)
    (tmp_path / "org" / "a" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{not json")
    got = list(read_config_source(tmp_path))
    assert got[0][0] == "b" and got[0][1] is None and "not JSON" in got[0][2]
    assert got[1] == ("org/a", {"model_type": "gpt2"}, None)


def test_read_jsonl_with_bad_lines(tmp_path):
    p = tmp_path / "c.jsonl"
    lines = [
        json.dumps({"model_id": "m1", "config": {"model_type": "llama"}}),
        "{broken",
        json.dumps({"config": {"model_type": "x"}}),
        "",
        json.dumps({"model_id": "m2", "config": json.dumps({"model_type": "bert"})}),
        json.dumps({"model_id": "m3", "config": "nope"}),
    ]
    p.write_text("\n".join(lines) + "\n")
    got = list(read_config_source(p))
    assert got == [
        ("m1", {"model_type": "llama"}, None),
        (None, None, "line 2: not JSON"),
        (None, None, "line 3: no model_id"),
        ("m2", {"model_type": "bert"}, None),
        ("m3", None, "line 6: config is not JSON"),
    ]


def test_read_parquet_and_missing_ids(tmp_path):
    p = tmp_path / "c.parquet"
    table = pa.table({"model_id": ["a", None], "config": [json.dumps({"vocab_size": 3}), "{}"]})
    pq.write_table(table, p)
    got = list(read_config_source(p))
    assert got == [("a", {"vocab_size": 3}, None), (None, None, "row 2: no model_id")]
    q = tmp_path / "noid.parquet"
    pq.write_table(pa.table({"config": ["{}"]}), q)
    (err,) = list(read_config_source(q))
    assert err[2].endswith("no column model_id")
    j = tmp_path / "noid.jsonl"
    j.write_text('{"config": {}}\n{"config": {}}\n')
    assert [e for _, _, e in read_config_source(j)] == [
        "line 1: no model_id",
        "line 2: no model_id",
    ]


# ------------------------------------------------------------------------- lineage


def test_load_hf_lineage():
    models, edges = load_hf_lineage()
    assert len(models) == 1983 and len(edges) == 1961
    by_id = {m["model_id"]: m for m in models}
    assert by_id["google/gemma-7b"]["family"] == "google/gemma-7b"
    assert by_id["google/gemma-7b-it"]["family"] == "google/gemma-7b"
    assert sum(m["family"] is None for m in models) == 0
    assert {e["relation"] for e in edges} == {"finetune"}
    row = by_id["meta-llama/Llama-2-7b-chat-hf"]
    cfg = lineage_partial_config(row)
    assert cfg["model_type"] == "llama" and cfg["torch_dtype"] == "float16"
    f, issues = extract_features(cfg, row["model_id"])
    assert issues == [] and f["approx_params"] == int(row["n_params"])
    assert f["hidden_size"] is None and f["uses_moe"] is None  # unknown stays unknown
    assert f["uses_rope"] is True  # llama is a RoPE family


def test_default_trait_sets():
    row = {
        "license": "mit",
        "n_languages": 0,
        "pipeline_tag": "text-generation",
        "library_name": None,
    }
    assert default_trait_sets(row) == {
        "license": {"mit"},
        "languages": set(),
        "pipeline_tag": {"text-generation"},
        "library": set(),
    }
    assert default_trait_sets({"languages": "en;fr"})["languages"] == {"en", "fr"}
    assert default_trait_sets({"n_languages": 3})["languages"] == {"n=3"}


@pytest.mark.parametrize("bad", [None, 3, "x"])
def test_partial_config_never_raises(bad):
    assert isinstance(lineage_partial_config({"n_params": bad}), dict)

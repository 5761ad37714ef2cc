"""The demo zoo: recorded lineage, own tokenizers, deterministic builds."""

import hashlib
import json
from pathlib import Path

from fingerprinting.settings import Settings
from fingerprinting.zoo import build_zoo


def test_manifest_lineage(tiny_zoo):
    models = {m["model_id"]: m for m in tiny_zoo["models"]}
    assert len(models) == 31
    fams = {}
    for m in models.values():
        fams.setdefault(m["family"], []).append(m)
    assert {f: len(v) for f, v in fams.items()} == {"Llama": 7, "GPT2": 7, "NeoX": 7, "Mistral": 7, "Stories": 3}
    for m in models.values():
        for parent, relation in m["parents"]:
            assert models[parent]["family"] == m["family"]  # lineage stays inside the family
            assert relation in {"finetune", "quantized", "distilled", "merge", "pruned"}
    merge = next(m for m in models.values() if m["display_name"] == "llama-merge")
    assert sorted(models[p]["display_name"] for p, _ in merge["parents"]) == ["llama-chat", "llama-code"]
    # every synthetic family trained its own tokenizer with its own vocabulary size
    vocab = {f: json.loads((Path(v[0]["path"]) / "config.json").read_text())["vocab_size"]
             for f, v in fams.items() if f != "Stories"}
    assert len(set(vocab.values())) == 4
    archs = {json.loads((Path(v[0]["path"]) / "config.json").read_text())["model_type"] for v in fams.values()}
    assert archs == {"llama", "gpt2", "gpt_neox", "mistral"}


def test_build_is_deterministic(tmp_path):
    def digests(root):
        s = Settings(lake_root=str(tmp_path / "l"), warehouse=str(tmp_path / "w"), reports_dir=str(tmp_path / "r"),
                     zoo_dir=str(root), global_registry=str(tmp_path / "g"))
        man = build_zoo("tiny", s, families=["Mistral"], progress=False)
        return {m["display_name"]: hashlib.sha256((Path(m["path"]) / "model.safetensors").read_bytes()).hexdigest()
                for m in man["models"] if m["family"] != "Stories" or m["display_name"] != "stories260k"}

    a, b = digests(tmp_path / "z1"), digests(tmp_path / "z2")
    assert a == b and len(a) == 9


def test_cached_build_is_reused(tiny_zoo, zoo_settings):
    again = build_zoo("tiny", zoo_settings, progress=False)
    assert again["key"] == tiny_zoo["key"] and again["build_seconds"] == tiny_zoo["build_seconds"]

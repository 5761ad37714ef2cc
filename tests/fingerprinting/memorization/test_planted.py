"""The planted corpus: ground truth recovered by the duplicate counter; tiny model training."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from fingerprinting.memorization.features import count_duplicates
from fingerprinting.memorization.planted import build_planted_corpus, train_planted_model


@pytest.fixture(scope="module")
def tiny_corpus():
    return build_planted_corpus(seed=0, profile="tiny")


def test_corpus_is_deterministic(tiny_corpus):
    again = build_planted_corpus(seed=0, profile="tiny")
    assert again.text == tiny_corpus.text
    assert build_planted_corpus(seed=1, profile="tiny").text != tiny_corpus.text
    kinds = {r["kind"] for r in tiny_corpus.manifest}
    assert {"planted", "counting", "hex", "letters", "repeating", "boilerplate"} <= kinds
    # each manifest text occurs as a block exactly planted_count times
    blocks = tiny_corpus.text.split("\n\n")
    for rec in tiny_corpus.manifest:
        assert blocks.count(rec["text"]) == rec["planted_count"], rec["id"]


def test_duplicate_counts_recover_planted_counts(tiny_corpus):
    from fingerprinting.zoo.build import train_tokenizer

    tok = train_tokenizer(tiny_corpus.text, 512, seed_text="planted")
    corpus_ids = np.asarray(tok(tiny_corpus.text, add_special_tokens=False)["input_ids"])
    queries, expected, ids = [], [], []
    for rec in tiny_corpus.manifest:
        if rec["kind"] == "repeating":
            continue  # periodic text: its windows recur inside every copy (checked below)
        toks = tok(rec["text"], add_special_tokens=False)["input_ids"]
        assert len(toks) >= 64, rec["id"]
        queries.append(toks[32:64])
        expected.append(rec["planted_count"])
        ids.append(rec["id"])
    got = count_duplicates(corpus_ids, np.asarray(queries))
    assert dict(zip(ids, got.tolist(), strict=False)) == dict(zip(ids, expected, strict=False))
    assert sorted(set(expected)) == [1, 2, 5, 10, 20, 50, 200]
    rep = next(r for r in tiny_corpus.manifest if r["kind"] == "repeating")
    toks = tok(rep["text"], add_special_tokens=False)["input_ids"]
    assert count_duplicates(corpus_ids, np.asarray([toks[32:64]]))[0] > rep["planted_count"]


def test_tiny_model_trains_deterministically_memorizes_and_loads(tmp_path):
    from fingerprinting.loading import load_model
    from fingerprinting.memorization.planted import evaluate_planted

    a = train_planted_model(tmp_path / "a", tiny=True, progress=False)
    b = train_planted_model(tmp_path / "b", tiny=True, progress=False)
    digest = [hashlib.sha256((tmp_path / d / "model.safetensors").read_bytes()).hexdigest()
              for d in ("a", "b")]
    assert digest[0] == digest[1]
    assert a["corpus_sha256"] == b["corpus_sha256"]
    manifest = json.loads((tmp_path / "a" / "planted_manifest.json").read_text())
    assert manifest["profile"] == "tiny" and manifest["manifest"]
    lm = load_model("planted-tiny", str(tmp_path / "a"), device="cpu")
    assert lm.kind == "causal" and lm.tokenizer is not None
    ev = evaluate_planted(tmp_path / "a", n_unique=30)
    # the sequence planted 200 times is reproduced; unique text is not
    assert ev["by_count"][200] == 1.0
    assert ev["by_kind"]["unique"] <= 0.1
    by_id = {s["id"]: s for s in ev["samples"]}
    for rec in manifest["manifest"]:
        if rec["kind"] == "planted" and rec["id"] in by_id:
            assert by_id[rec["id"]]["duplicates"] == rec["planted_count"]

"""next_token: candidate distributions against a one-prompt-at-a-time reference, and Bhattacharyya cosines."""

import json
import math

import numpy as np
import pytest
import torch

from fingerprinting.loading import load_model
from fingerprinting.methods import FingerprintError, MethodConfigError, make_method
from fingerprinting.methods.output import candidate_distribution
from fingerprinting.metrics import similarity
from fingerprinting.settings import REPO_ROOT
from tests.conftest import STORIES

PROBES = REPO_ROOT / "helper_data" / "probes"


def _by_name(tiny_zoo):
    return {m["display_name"]: m["path"] for m in tiny_zoo["models"]}


def reference_q(loaded, n_prompts, max_tokens):
    """Per prompt: one unpadded forward pass, full-vocabulary softmax, first-token map, split, renormalise."""
    tok = loaded.tokenizer
    prompts = [json.loads(line)["prompt"] for line in (PROBES / "prompts.jsonl").read_text().splitlines()][:n_prompts]
    cands = json.loads((PROBES / "candidates.json").read_text())["candidates"]
    first = [tok.encode(c, add_special_tokens=False)[0] for c in cands]
    count = {t: first.count(t) for t in first}
    rows = []
    with torch.no_grad():
        for p in prompts:
            ids = tok(p)["input_ids"]  # the tokenizer's own special tokens (BOS for stories)
            if tok.bos_token_id is not None and ids[0] == tok.bos_token_id:
                ids = ids[:1] + ids[1:][-(max_tokens - 1):]
            else:
                ids = ids[-max_tokens:]
            logits = loaded.model(input_ids=torch.tensor([ids])).logits[0, -1].double()
            probs = torch.softmax(logits, -1).numpy()
            s = np.array([probs[t] / count[t] for t in first])
            rows.append(s / s.sum())
    return np.array(rows), cands, first


def test_candidate_distribution_by_hand():
    # candidates 0 and 1 share token 0 (0.5 -> 0.25 each), candidate 2 is token 1 (0.3),
    # candidate 3 encodes to nothing: s = [.25, .25, .3, 0], sum .8 -> q = [.3125, .3125, .375, 0]
    probs = np.array([[0.5, 0.3, 0.2]])
    q = candidate_distribution(probs, np.array([0, 0, 1, -1]))
    np.testing.assert_allclose(q, [[0.3125, 0.3125, 0.375, 0.0]], atol=1e-15)
    with pytest.raises(FingerprintError, match="zero probability"):
        candidate_distribution(np.array([[0.0, 0.0, 1.0]]), np.array([0, 1]))


@pytest.mark.parametrize("name, max_tokens", [("gpt2-base", 64), ("llama-chat", 12)])
def test_batched_equals_per_prompt_reference(tiny_zoo, name, max_tokens):
    loaded = load_model(name, _by_name(tiny_zoo)[name], device="cpu")
    n = 40
    fp = make_method("next_token", {"n_prompts": n, "max_tokens": max_tokens, "batch_size": 6}).fingerprint(loaded)
    q, cands, first = reference_q(loaded, n, max_tokens)
    np.testing.assert_allclose(fp.vector, np.sqrt(q).reshape(-1) / math.sqrt(n), atol=1e-6)
    assert fp.dim == n * len(cands)
    assert fp.provenance["n_prompts"] == n and fp.provenance["n_candidates"] == len(cands)
    single = np.mean([len(loaded.tokenizer.encode(c, add_special_tokens=False)) == 1 for c in cands])
    assert fp.provenance["single_token_share"] == pytest.approx(single, abs=1e-4)
    assert 0 < single < 1  # the demo tokenizers have 448-768 tokens: some candidates use the fallback


def test_bos_tokenizer_and_tail_truncation_match_reference():
    # stories260k: SentencePiece with BOS; 10 tokens keeps BOS + the last 9 tokens of each prompt
    loaded = load_model("stories", str(STORIES), device="cpu")
    n = 24
    fp = make_method("next_token", {"n_prompts": n, "max_tokens": 10, "batch_size": 5}).fingerprint(loaded)
    q, _, _ = reference_q(loaded, n, 10)
    np.testing.assert_allclose(fp.vector, np.sqrt(q).reshape(-1) / math.sqrt(n), atol=1e-6)


def test_cosine_is_mean_bhattacharyya_coefficient(tiny_zoo):
    paths = _by_name(tiny_zoo)
    n = 32
    m = make_method("next_token", {"n_prompts": n})
    a = load_model("a", paths["neox-base"], device="cpu")
    b = load_model("b", paths["neox-distilled"], device="cpu")
    fa, fb = m.fingerprint(a), m.fingerprint(b)
    qa, qb = reference_q(a, n, 64)[0], reference_q(b, n, 64)[0]
    bc = np.mean([np.sum(np.sqrt(x * y)) for x, y in zip(qa, qb, strict=True)])
    assert similarity(fa.vector, fb.vector, "cosine") == pytest.approx(bc, abs=1e-6)
    assert similarity(fa.vector, fa.vector, "cosine") == pytest.approx(1.0, abs=1e-12)
    assert np.linalg.norm(fa.vector) == pytest.approx(1.0, abs=1e-12)
    # same tokenizer in a family: same vocabulary hash
    assert fa.provenance["tokenizer_sha256"] == fb.provenance["tokenizer_sha256"]


def test_int8_copy_closer_than_other_family(tiny_zoo):
    paths = _by_name(tiny_zoo)
    m = make_method("next_token")
    fp = {n: m.fingerprint(load_model(n, paths[n], device="cpu")) for n in ("llama-base", "llama-int8", "gpt2-base")}
    same = similarity(fp["llama-base"].vector, fp["llama-int8"].vector, "cosine")
    assert same > 0.99
    assert same > similarity(fp["llama-base"].vector, fp["gpt2-base"].vector, "cosine")
    assert fp["llama-base"].provenance["tokenizer_sha256"] != fp["gpt2-base"].provenance["tokenizer_sha256"]


def test_model_without_lm_head_is_refused(tiny_zoo):
    bare = load_model("bare", _by_name(tiny_zoo)["llama-base"], device="cpu", kind="base")
    with pytest.raises(FingerprintError, match="'bare' is a model without an LM head; next_token needs a causal LM head"):
        make_method("next_token").fingerprint(bare)


def test_bad_parameters(tmp_path):
    for args, match in (
        ({"n_prompts": 0}, "n_prompts"),
        ({"max_tokens": 1}, "max_tokens"),
        ({"batch_size": 0}, "batch_size"),
        ({"n_prompts": 100000}, "n_prompts=100000"),
        ({"prompts_path": "/nonexistent/prompts.jsonl"}, "not found"),
        ({"candidates_path": "/nonexistent/candidates.json"}, "not found"),
        ({"n_prompts": 1.5}, "must be int"),
        ({"temperature": 2.0}, "unknown parameter"),
    ):
        with pytest.raises(MethodConfigError, match=match):
            make_method("next_token", args)
    bad = tmp_path / "c.json"
    bad.write_text('{"candidates": [" the", 3]}')
    with pytest.raises(MethodConfigError, match="not valid"):
        make_method("next_token", {"candidates_path": str(bad)})
    bad.write_text('{"candidates": [" the"]}')
    with pytest.raises(MethodConfigError, match="at least 2"):
        make_method("next_token", {"candidates_path": str(bad)})


def test_config_hash_covers_files_not_batch_size(tmp_path):
    base = make_method("next_token")
    assert make_method("next_token", {"batch_size": 5}).config_hash == base.config_hash
    copy = tmp_path / "candidates.json"
    copy.write_bytes((PROBES / "candidates.json").read_bytes())
    assert make_method("next_token", {"candidates_path": str(copy)}).config_hash == base.config_hash
    copy.write_text('{"candidates": [" the", " a"]}')
    assert make_method("next_token", {"candidates_path": str(copy)}).config_hash != base.config_hash


def test_experiment_config_names_the_bad_field():
    from fingerprinting.experiment import ConfigError, parse_config

    cfg = {"models": ["1"], "methods": ["next_token"], "metrics": ["cosine"],
           "method_args": {"next_token": {"candidates_path": "/nonexistent/c.json"}}}
    with pytest.raises(ConfigError, match=r"field 'method_args\.next_token\.candidates_path'.*not found"):
        parse_config(cfg)

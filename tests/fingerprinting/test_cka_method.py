"""hidden_cka: linear CKA on hand-built cases, and the vector's cosine against a per-text reference."""

import json
import math

import numpy as np
import pytest
import torch

from fingerprinting.loading import load_model
from fingerprinting.methods import MethodConfigError, make_method
from fingerprinting.methods.representation import gram_block, linear_cka
from fingerprinting.metrics import similarity
from fingerprinting.settings import REPO_ROOT
from tests.conftest import STORIES

TEXTS = REPO_ROOT / "helper_data" / "probes" / "texts.jsonl"


def gram_cka(X, Y):
    """CKA in its kernel form: <Kx, Ky>_F / (|Kx|_F |Ky|_F) with centred Gram matrices (H K H)."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    Kx = H @ (X @ X.T) @ H
    Ky = H @ (Y @ Y.T) @ H
    return float(np.sum(Kx * Ky) / (np.linalg.norm(Kx) * np.linalg.norm(Ky)))


# ------------------------------------------------------------------ linear_cka
def test_one_feature_is_squared_correlation_by_hand():
    # x centred = [-1, 0, 1], y centred = [-4/3, -1/3, 5/3]: x.y = 3, |x|^2 = 2, |y|^2 = 14/3
    # CKA of single features = corr^2 = 9 / (2 * 14/3) = 27/28
    X = np.array([[1.0], [2.0], [3.0]])
    Y = np.array([[1.0], [2.0], [4.0]])
    assert linear_cka(X, Y) == pytest.approx(27 / 28, abs=1e-12)
    assert gram_cka(X, Y) == pytest.approx(27 / 28, abs=1e-12)


def test_invariances():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, X @ Q) == pytest.approx(1.0, abs=1e-12)  # orthogonal transform
    assert linear_cka(X, -3.5 * X) == pytest.approx(1.0, abs=1e-12)  # isotropic scaling
    assert linear_cka(X, X + 7.0) == pytest.approx(1.0, abs=1e-12)  # a shift is centred away
    # different widths: the kernel form agrees with the feature form
    Y = np.hstack([X @ Q, rng.normal(size=(40, 3))])
    assert linear_cka(X, Y) == pytest.approx(gram_cka(X, Y), abs=1e-12)


def test_independent_features_are_near_zero():
    # independent Gaussians, n samples, p = q = 5 features: E[CKA] ~ sqrt(pq)/n = 0.00125
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(4000, 5)), rng.normal(size=(4000, 5))
    assert 0.0 <= linear_cka(X, Y) < 0.01


def test_gram_block_dot_product_is_cka_for_different_widths():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 8))
    Y = X[:, :5] @ rng.normal(size=(5, 12)) + 0.5 * rng.normal(size=(30, 12))
    bx, by = gram_block(X), gram_block(Y)
    assert bx.shape == by.shape == (30 * 31 // 2,)
    assert np.linalg.norm(bx) == pytest.approx(1.0, abs=1e-12)
    assert float(bx @ by) == pytest.approx(gram_cka(X, Y), abs=1e-12)


# ------------------------------------------------------------------ the method on real models
def _by_name(tiny_zoo):
    return {m["display_name"]: m["path"] for m in tiny_zoo["models"]}


def reference_pooled(loaded, n_texts, max_tokens, depths):
    """One unpadded forward pass per text; mean over the tokens after the first, per depth."""
    tok = loaded.tokenizer
    texts = [json.loads(line)["text"] for line in TEXTS.read_text().splitlines()][:n_texts]
    rows = []
    with torch.no_grad():
        for t in texts:
            ids = tok(t)["input_ids"][:max_tokens]  # the tokenizer's own special tokens (BOS for stories)
            hs = loaded.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            L = len(hs) - 1
            rows.append([hs[int(math.floor(r * L + 0.5))][0, 1:].double().mean(0).numpy() for r in depths])
    return [np.array([row[k] for row in rows]) for k in range(len(depths))]


@pytest.mark.parametrize("depths", [(0.5, 1.0), (0.0, 0.75, 1.0)])
def test_cosine_equals_mean_cka_of_per_text_reference(tiny_zoo, depths):
    paths = _by_name(tiny_zoo)
    n, mt = 48, 40
    method = make_method("hidden_cka", {"n_texts": n, "max_tokens": mt, "depths": ",".join(map(str, depths)),
                                        "batch_size": 7})
    a = load_model("base", paths["neox-base"], device="cpu")
    b = load_model("distilled", paths["neox-distilled"], device="cpu")
    assert a.model.config.hidden_size != b.model.config.hidden_size  # different widths
    fa, fb = method.fingerprint(a), method.fingerprint(b)
    ref_a, ref_b = reference_pooled(a, n, mt, depths), reference_pooled(b, n, mt, depths)
    expected = np.mean([gram_cka(x, y) for x, y in zip(ref_a, ref_b, strict=True)])
    assert similarity(fa.vector, fb.vector, "cosine") == pytest.approx(expected, abs=1e-5)
    assert fa.dim == len(depths) * n * (n + 1) // 2
    assert np.linalg.norm(fa.vector) == pytest.approx(1.0, abs=1e-12)
    assert similarity(fa.vector, fa.vector, "cosine") == pytest.approx(1.0, abs=1e-12)
    assert fa.provenance["n_texts"] == n and fa.provenance["hidden_size"] == a.model.config.hidden_size


def test_bos_model_matches_reference():
    # stories260k's tokenizer puts BOS in front; the first pooled token is then BOS
    loaded = load_model("stories", str(STORIES), device="cpu")
    n, mt, depths = 24, 20, (0.5, 1.0)
    fp = make_method("hidden_cka", {"n_texts": n, "max_tokens": mt, "depths": "0.5,1.0", "batch_size": 5})
    states, info = fp.pooled_states(loaded)
    ref = reference_pooled(loaded, n, mt, depths)
    for got, want in zip(states, ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert info["truncated_share"] > 0  # 20 tokens cut most texts


def test_base_model_without_lm_head_gives_the_same_vector(tiny_zoo):
    # AutoModel (no LM head) runs with right padding: same hidden states as the causal, left-padded run
    path = _by_name(tiny_zoo)["gpt2-base"]
    m = make_method("hidden_cka", {"n_texts": 32})
    causal = m.fingerprint(load_model("c", path, device="cpu")).vector
    bare = load_model("b", path, device="cpu", kind="base")
    assert bare.kind == "base"
    np.testing.assert_allclose(m.fingerprint(bare).vector, causal, atol=1e-6)


def test_batch_size_does_not_change_vector_or_hash(tiny_zoo):
    loaded = load_model("m", _by_name(tiny_zoo)["mistral-base"], device="cpu")
    a = make_method("hidden_cka", {"n_texts": 40, "batch_size": 3})
    b = make_method("hidden_cka", {"n_texts": 40, "batch_size": 64})
    np.testing.assert_allclose(a.fingerprint(loaded).vector, b.fingerprint(loaded).vector, atol=1e-6)
    assert a.config_hash == b.config_hash
    assert make_method("hidden_cka", {"n_texts": 41}).config_hash != a.config_hash


def test_int8_copy_closer_than_other_family(tiny_zoo):
    paths = _by_name(tiny_zoo)
    m = make_method("hidden_cka")
    fp = {n: m.fingerprint(load_model(n, paths[n], device="cpu")).vector
          for n in ("llama-base", "llama-int8", "gpt2-base", "neox-base")}
    same = similarity(fp["llama-base"], fp["llama-int8"], "cosine")
    assert same > 0.99
    assert same > similarity(fp["llama-base"], fp["gpt2-base"], "cosine")
    assert same > similarity(fp["llama-base"], fp["neox-base"], "cosine")


def test_bad_parameters(tmp_path):
    for args, match in (
        ({"n_texts": 1}, "n_texts"),
        ({"max_tokens": 1}, "max_tokens"),
        ({"batch_size": 0}, "batch_size"),
        ({"depths": "0.5,1.5"}, "depths"),
        ({"depths": "half"}, "depths"),
        ({"depths": ""}, "depths"),
        ({"n_texts": 100000}, "n_texts=100000"),
        ({"probe_path": "/nonexistent/texts.jsonl"}, "probe_path .* not found"),
        ({"n_texts": "128"}, "must be int"),
        ({"pooling": "mean"}, "unknown parameter"),
    ):
        with pytest.raises(MethodConfigError, match=match):
            make_method("hidden_cka", args)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "no text field"}\n')
    with pytest.raises(MethodConfigError, match="line 2"):
        make_method("hidden_cka", {"probe_path": str(bad), "n_texts": 2})


def test_probe_file_is_hashed_by_content(tmp_path):
    copy = tmp_path / "texts.jsonl"
    copy.write_bytes(TEXTS.read_bytes())
    assert make_method("hidden_cka", {"probe_path": str(copy)}).config_hash == make_method("hidden_cka").config_hash
    copy.write_text(TEXTS.read_text() + '{"text": "one more"}\n')
    assert make_method("hidden_cka", {"probe_path": str(copy)}).config_hash != make_method("hidden_cka").config_hash


def test_experiment_config_names_the_bad_field():
    from fingerprinting.experiment import ConfigError, parse_config

    cfg = {"models": ["1"], "methods": ["hidden_cka"], "metrics": ["cosine"],
           "method_args": {"hidden_cka": {"probe_path": "/nonexistent/texts.jsonl"}}}
    with pytest.raises(ConfigError, match=r"field 'method_args\.hidden_cka\.probe_path'.*not found"):
        parse_config(cfg)
    cfg["method_args"] = {"hidden_cka": {"depths": "0.5,2"}}
    with pytest.raises(ConfigError, match=r"field 'method_args\.hidden_cka\.depths'"):
        parse_config(cfg)

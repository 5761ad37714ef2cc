"""input_output fingerprint: hand-computed linear maps and batched-vs-per-probe agreement."""

import math

import numpy as np
import pytest
import torch

from fingerprinting.loading import load_model
from fingerprinting.methods import FingerprintError, MethodConfigError, make_method
from fingerprinting.methods.input_output import fingerprint_from_vu
from tests.conftest import STORIES


def test_upper_triangular_map_known_eigenvalues():
    # V = I, so A's columns are the u_i: A = [[2, 1], [0, 3]] has eigenvalues 2 and 3
    V = np.eye(2)
    U = np.array([[2.0, 0.0], [1.0, 3.0]])  # rows u_1 = A e_1, u_2 = A e_2
    vec, info = fingerprint_from_vu(V, U, n0=2)
    np.testing.assert_allclose(vec, np.array([2, 3]) / math.sqrt(13), atol=1e-12)
    assert info["rank"] == 2
    vec1, _ = fingerprint_from_vu(V, U, n0=1)  # only the largest, normalised
    np.testing.assert_allclose(vec1, [1.0])


def test_rotation_has_complex_eigenvalues_of_modulus_one():
    U = np.array([[0.0, 1.0], [-1.0, 0.0]])  # A = [[0,-1],[1,0]]: eigenvalues +-i
    vec, _ = fingerprint_from_vu(np.eye(2), U, n0=5)  # n0' = min(n0, n) = 2
    np.testing.assert_allclose(vec, [1 / math.sqrt(2)] * 2, atol=1e-12)


def test_non_identity_probes():
    # V rows v1=[1,1], v2=[1,-1]; choose A = diag(4, 1) -> u1 = [4,1], u2 = [4,-1]
    vec, _ = fingerprint_from_vu(np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([[4.0, 1.0], [4.0, -1.0]]), 2)
    np.testing.assert_allclose(vec, np.array([1, 4]) / math.sqrt(17), atol=1e-12)


def reference_fingerprint(loaded, method, n0):
    """Straight from DESIGN.md: one forward pass per probe, U pinv(V) with vectors as columns."""
    probes, targets, E = method.prepare(loaded)
    E = E.detach().to(torch.float64).cpu().numpy()
    V_cols, U_cols = [], []
    for x in probes:
        v = np.zeros(E.shape[1])
        for k, tok in enumerate(x):
            v += E[tok] + math.sin(k)
        V_cols.append(v / len(x))
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([x])).logits[0, -1].to(torch.float64).numpy()
        p = np.exp(logits - logits.max())
        p /= p.sum()
        u = np.zeros(E.shape[1])
        for t in targets:
            u += p[t] * E[t]
        U_cols.append(u)
    A = np.array(U_cols).T @ np.linalg.pinv(np.array(V_cols).T)
    mags = np.sort(np.abs(np.linalg.eigvals(A)))[::-1][: min(n0, E.shape[1])]
    mags = np.sort(mags)
    return mags / np.linalg.norm(mags)


def _models(tiny_zoo):
    return [(m["display_name"], m["path"]) for m in tiny_zoo["models"]] + [("stories260k-shipped", str(STORIES))]


def test_batched_matches_per_probe_float32_every_zoo_model(tiny_zoo):
    method = make_method("input_output", {"n0": 40})
    for name, path in _models(tiny_zoo):
        loaded = load_model(name, path, device="cpu")
        got = method.fingerprint(loaded).vector
        ref = reference_fingerprint(loaded, method, 40)
        assert got.shape == ref.shape
        # float32 forward: batching changes GEMM accumulation order; measured relative to the
        # vector's scale (elementwise ratios blow up on eigenvalues near zero)
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        assert rel <= 1e-5, (name, rel)


@pytest.mark.parametrize("padding", ["bucket", "left"])
def test_batched_matches_per_probe_float64_elementwise(tiny_zoo, padding):
    # in float64 the batching itself (padding, masks, positions) must be exact
    method = make_method("input_output", {"n0": 40, "padding": padding, "batch_size": 16})
    for m in tiny_zoo["models"][:: 3] + [{"display_name": "stories", "path": str(STORIES)}]:
        loaded = load_model(m["display_name"], m["path"], device="cpu", dtype="float64")
        got = method.fingerprint(loaded).vector
        ref = reference_fingerprint(loaded, method, 40)
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12, err_msg=m["display_name"])


def test_stories_is_full_rank_with_shipped_tokens():
    loaded = load_model("stories", str(STORIES), device="cpu")
    fp = make_method("input_output").fingerprint(loaded)
    assert fp.dim == 40 and fp.provenance["structural_zeros"] == 0
    assert np.all(fp.vector > 0) and np.all(np.diff(fp.vector) >= 0)
    assert np.linalg.norm(fp.vector) == pytest.approx(1.0)


def test_bad_parameters():
    with pytest.raises(MethodConfigError, match="n0"):
        make_method("input_output", {"n0": 0})
    with pytest.raises(MethodConfigError, match="must be int"):
        make_method("input_output", {"n0": "40"})
    with pytest.raises(MethodConfigError, match="unknown parameter"):
        make_method("input_output", {"n_0": 40})
    with pytest.raises(MethodConfigError, match="not found"):
        make_method("input_output", {"probe_tokens_path": "/nonexistent/probes.txt"})


def test_no_probe_in_vocabulary():
    # shrink the embedding to ids 0..2 (<unk>, <s>, </s>): every probe id is now out of vocabulary
    loaded = load_model("stories", str(STORIES), device="cpu")
    loaded.model.resize_token_embeddings(3)
    with pytest.raises(FingerprintError, match="'stories': no probe line has a token in the vocabulary"):
        make_method("input_output").fingerprint(loaded)


def test_config_hash_covers_token_contents_not_paths(tmp_path):
    src = "helper_data/io_tokens/probe_tokens.txt"
    from fingerprinting.settings import REPO_ROOT

    copy = tmp_path / "probes.txt"
    copy.write_bytes((REPO_ROOT / src).read_bytes())
    a = make_method("input_output", {"probe_tokens_path": src})
    b = make_method("input_output", {"probe_tokens_path": str(copy)})
    assert a.config_hash == b.config_hash
    assert make_method("input_output", {"batch_size": 3}).config_hash == a.config_hash
    copy.write_text("different\n")
    assert make_method("input_output", {"probe_tokens_path": str(copy)}).config_hash != a.config_hash
    assert make_method("input_output", {"n0": 20}).config_hash != a.config_hash

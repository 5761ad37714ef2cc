"""Weight fingerprints on hand-built modules with known singular values."""

import math

import numpy as np
import pytest
import torch

from fingerprinting.loading import LoadedModel, load_model
from fingerprinting.methods import make_method
from tests.conftest import STORIES


class TwoMatrices(torch.nn.Module):
    def __init__(self):
        super().__init__()
        # largest first: a (3x2, 6 entries) then b (2x2); a/max|a| @ b/max|b| = [[.5,0],[0,.25],[0,0]]
        self.a = torch.nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
        self.b = torch.nn.Parameter(torch.tensor([[4.0, 0.0], [0.0, 1.0]]))
        self.bias = torch.nn.Parameter(torch.ones(2))  # 1-D: ignored


def _wrap(module):
    return LoadedModel("toy", module, None, torch.device("cpu"), torch.float32, "base")


def test_weight_reference_chain_hand_values():
    fp = make_method("weight", {"size": 2}).fingerprint(_wrap(TwoMatrices()))
    s = math.sqrt(0.5**2 + 0.25**2)
    np.testing.assert_allclose(fp.vector, [0.5 / s, 0.25 / s, 0.0, 0.0], atol=1e-12)


def test_weight_cut_to_size_squared():
    fp = make_method("weight", {"size": 1}).fingerprint(_wrap(TwoMatrices()))
    np.testing.assert_allclose(fp.vector, [1.0])  # only the largest singular value survives


def test_weight_spectrum_rotation_invariant():
    loaded = load_model("stories", str(STORIES), device="cpu", need_tokenizer=False)
    m = make_method("weight_spectrum")
    before = m.fingerprint(loaded).vector
    # rotate the hidden space of the embedding: singular values and norms must not move
    q, _ = torch.linalg.qr(torch.randn(64, 64, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        emb = loaded.model.get_input_embeddings().weight
        emb.copy_(emb @ q)
    after = m.fingerprint(loaded).vector
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert before.shape == (16 + 32,)


def test_weight_methods_separate_unrelated_models(tiny_zoo):
    by_name = {m["display_name"]: m["path"] for m in tiny_zoo["models"]}
    m = make_method("weight_spectrum")

    def fp(name):
        return m.fingerprint(load_model(name, by_name[name], need_tokenizer=False)).vector

    base, q, other = fp("llama-base"), fp("llama-int8"), fp("gpt2-base")
    # an int8 round trip stays much closer to its parent than another family does
    assert np.linalg.norm(base - q) < 0.1 * np.linalg.norm(base - other)


def test_weight_bad_size():
    from fingerprinting.methods import MethodConfigError

    with pytest.raises(MethodConfigError):
        make_method("weight", {"size": 0})


def test_model_without_input_embeddings_is_a_clear_error():
    from fingerprinting.methods import FingerprintError

    # a bare module has no get_input_embeddings(): the error names the model
    with pytest.raises(FingerprintError, match="'toy'.*no input embedding"):
        make_method("weight_spectrum").fingerprint(_wrap(TwoMatrices()))


def test_nan_fingerprint_is_refused_with_model_name():
    from fingerprinting.methods import FingerprintError, FingerprintMethod

    class Broken(FingerprintMethod):
        name = "broken"

        def compute(self, loaded):
            return np.array([0.5, float("nan")]), {}

    with pytest.raises(FingerprintError, match="'toy'.*NaN"):
        Broken().fingerprint(_wrap(TwoMatrices()))


def test_tall_times_wide_chain_is_reduced_by_qr_without_changing_singular_values(monkeypatch):
    """Embedding (m x k) times an untied head (k x m): the m x m product is never built, same spectrum."""
    import torch

    from fingerprinting.methods import weight as W

    g = torch.Generator().manual_seed(0)
    emb = torch.randn(300, 8, generator=g, dtype=torch.float64)
    head = torch.randn(290, 8, generator=g, dtype=torch.float64)
    model = torch.nn.Module()
    model.emb = torch.nn.Parameter(emb)
    model.head = torch.nn.Parameter(head)

    class Loaded:
        device = torch.device("cpu")

    Loaded.model = model
    method = W.WeightMethod(size=3)
    full, _ = method.compute(Loaded)
    monkeypatch.setattr(W, "_MAX_PRODUCT", 1000)  # force the QR path (300 x 290 > 1000)
    reduced, _ = method.compute(Loaded)
    # reference: singular values of the scaled product, straight from the definition
    a, b = emb / emb.abs().max(), head / head.abs().max()
    sv = torch.linalg.svdvals(a @ b.T).numpy()[:9]
    ref = np.zeros(9)
    ref[: len(sv)] = sv
    ref = ref / np.linalg.norm(ref)
    np.testing.assert_allclose(full, ref, atol=1e-12)
    np.testing.assert_allclose(reduced, ref, atol=1e-12)

"""Weight-space fingerprints.

``weight``: the reference method. Every state-dict tensor with 2+ dims, largest
first (ties by name), flattened to 2-D; a running product is chained with each
next matrix whose shape fits (``P @ W``, else ``P @ W.T``), every matrix scaled
by its max |value|, in float64; the singular values of the product are padded
or cut to ``size*size`` and L2-normalised.

``weight_spectrum``: a cheap signal meant to survive fine-tuning and
quantization. It concatenates the top-``k`` singular values of the input
embedding matrix (normalised) with a fixed-length profile of per-layer weight
Frobenius norms (resampled to ``profile_points``, normalised). Both parts are
invariant to permutations and orthogonal rotations of the hidden space (the
weight-rearrangement attacks HuRef guards against) and move little under
small weight perturbations. See docs/fingerprints.md.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from fingerprinting.loading import LoadedModel
from fingerprinting.methods.base import METHODS, FingerprintMethod, MethodConfigError

# largest chain product materialised (elements); beyond it the tall factor is replaced by its R
_MAX_PRODUCT = 50_000_000


def _matrices(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    seen: set[int] = set()
    mats = []
    for name, t in model.state_dict().items():
        if t.ndim < 2 or not t.is_floating_point():
            continue
        key = t.data_ptr()
        if key in seen:  # tied weights counted once
            continue
        seen.add(key)
        mats.append((name, t.detach().reshape(t.shape[0], -1)))
    mats.sort(key=lambda nt: (-nt[1].numel(), nt[0]))
    return mats


@METHODS.register("weight", higher_level="weights")
class WeightMethod(FingerprintMethod):
    name = "weight"
    version = 1
    params = {"size": (int, 50), "max_chain": (int, 64)}

    def validate(self) -> None:
        if self.config["size"] < 1:
            raise MethodConfigError("method 'weight': parameter 'size' must be >= 1")

    def compute(self, loaded: LoadedModel) -> tuple[np.ndarray, dict]:
        mats = _matrices(loaded.model)
        if not mats:
            raise ValueError("model has no 2-D weight tensors")
        dev = loaded.device if loaded.device.type == "cuda" else torch.device("cpu")

        def scaled(t):
            t = t.to(dev, torch.float64)
            m = t.abs().max()
            return t / m if m > 0 else t

        prod = scaled(mats[0][1])
        used = 1
        for _, w in mats[1:]:
            if used >= self.config["max_chain"]:
                break
            if prod.shape[1] != w.shape[0] and prod.shape[1] != w.shape[1]:
                continue
            n_out = w.shape[1] if prod.shape[1] == w.shape[0] else w.shape[0]
            if prod.shape[0] > prod.shape[1] and prod.shape[0] * n_out > _MAX_PRODUCT:
                # a tall product times a wide matrix (untied embedding x LM head: vocab x vocab) would not
                # fit; P = Q R with orthonormal Q leaves the singular values of every later product
                # unchanged, so continue the chain with R (k x k) instead of P (m x k)
                prod = torch.linalg.qr(prod, mode="r").R
            if prod.shape[1] == w.shape[0]:
                prod = prod @ scaled(w)
            else:
                prod = prod @ scaled(w).T
            used += 1
            m = prod.abs().max()  # rescaling leaves normalised singular values unchanged
            if m > 0:
                prod = prod / m
        sv = torch.linalg.svdvals(prod).cpu().numpy()
        length = self.config["size"] ** 2
        vec = np.zeros(length)
        k = min(length, sv.shape[0])
        vec[:k] = sv[:k]
        norm = np.linalg.norm(vec)
        vec = vec / norm if norm > 0 else vec
        return vec, {"chained_matrices": used, "n_singular_values": int(sv.shape[0])}


_LAYER_RE = re.compile(r"\.(\d+)\.")


@METHODS.register("weight_spectrum", higher_level="weights")
class WeightSpectrumMethod(FingerprintMethod):
    name = "weight_spectrum"
    version = 1
    params = {"k": (int, 32), "profile_points": (int, 16)}

    def validate(self) -> None:
        if self.config["k"] < 1 or self.config["profile_points"] < 2:
            raise MethodConfigError("method 'weight_spectrum': need k >= 1 and profile_points >= 2")

    def compute(self, loaded: LoadedModel) -> tuple[np.ndarray, dict]:
        E = loaded.input_embeddings().detach().to("cpu", torch.float64)
        sv = torch.linalg.svdvals(E).numpy()
        k = self.config["k"]
        spec = np.zeros(k)
        spec[: min(k, sv.shape[0])] = sv[:k]
        spec = np.sort(spec)
        spec = spec / (np.linalg.norm(spec) or 1.0)
        # per-layer Frobenius norm of all 2-D weights in that block
        layer_sq: dict[int, float] = {}
        for name, t in loaded.model.state_dict().items():
            if t.ndim != 2 or not t.is_floating_point():
                continue
            m = _LAYER_RE.search(name)
            if m:
                i = int(m.group(1))
                layer_sq[i] = layer_sq.get(i, 0.0) + float(t.detach().double().pow(2).sum())
        pts = self.config["profile_points"]
        if layer_sq:
            norms = np.sqrt(np.array([layer_sq[i] for i in sorted(layer_sq)]))
            x = np.linspace(0, 1, len(norms)) if len(norms) > 1 else np.array([0.0])
            prof = np.interp(np.linspace(0, 1, pts), x, norms) if len(norms) > 1 else np.full(pts, norms[0])
            prof = prof / (np.linalg.norm(prof) or 1.0)
        else:
            prof = np.zeros(pts)
        return np.concatenate([prof, spec]), {"n_layers": len(layer_sq)}

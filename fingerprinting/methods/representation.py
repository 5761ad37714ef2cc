"""The ``hidden_cka`` fingerprint: linear CKA of mean-pooled hidden states on shared probe texts.

Every model reads the same ``n_texts`` probe texts (``helper_data/probes/texts.jsonl``:
prose, code and chat lines), each encoded by the model's own tokenizer (its
BOS convention, no other special tokens) and cut to ``max_tokens`` tokens. For
each relative depth r in ``depths`` the hidden states of layer
``l = floor(r L + 1/2)`` (index into ``hidden_states``: 0 = embeddings, L =
number of layers) are mean-pooled over the real tokens of each text except the
first (position 0 is an attention sink: in SmolLM2's middle layers its norm is
~2e4 against ~3e2 for other tokens, so it would swamp the mean). That gives
X_r, an n x d matrix (d = the model's width). With Xc = X - column means and
K = Xc Xc^T (n x n):

    CKA(X, Y) = <Kx, Ky>_F / (|Kx|_F |Ky|_F)

K does not depend on d, so models of different widths and depths compare
directly. The vector stores, for each depth, the upper triangle of K / |K|_F
(diagonal as is, off-diagonal entries times sqrt 2), concatenated and divided
by sqrt(len(depths)). The dot product of two blocks is then
<Kx, Ky>_F / (|Kx|_F |Ky|_F), every vector has norm 1, and

    cosine(v_a, v_b) = mean over depths of CKA(X_a,r, X_b,r)      exactly,

with n (n + 1) / 2 entries per depth. Forward passes are batched
(length-sorted, left padding, attention mask, explicit position ids), which
gives the hidden states of one pass per text; pooling and the Gram algebra run
in float64.

Defaults were chosen on the full demo zoo (cosine ROC-AUC, related = same
family). Depths: the last layer carries the distillation signal (the student
was trained to match the teacher's outputs); a middle depth (0.5) maps a
2-layer student onto a 3-layer teacher badly and lowers AUC on pairs with a
distilled model from 0.99 to 0.96; 0.75 and 1.0 score 0.994 overall. Texts:
96 to 384 texts change AUC by < 0.01 here; 128 keeps the vector at 16,512
values and SmolLM2-135M at ~20 s on 2 CPU cores. Pooling: last-token pooling
did worse against same-tokenizer controls, and on texts cut at a token budget
it mostly measures where each tokenizer cut the text. ``max_tokens`` (128)
cuts few texts (the probe texts are <= 240 characters).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from fingerprinting.loading import LoadedModel
from fingerprinting.methods.base import (
    METHODS,
    FingerprintError,
    FingerprintMethod,
    MethodConfigError,
)
from fingerprinting.methods.input_output import _forward_kwargs, _resolve_token_path
from fingerprinting.tokens import file_sha256


class ProbeFileError(MethodConfigError):
    """A probe file is missing, unreadable or has the wrong shape."""


def read_probe_file(path: str | Path, key: str, *, method: str, param: str) -> list[str]:
    """The ``key`` field of every line of a JSON-lines probe file (parameter ``param``), in order."""
    p = _resolve_token_path(str(path))
    if not p.is_file():
        raise ProbeFileError(f"method {method!r}: {param} {str(path)!r} not found")
    out = []
    try:
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                value = json.loads(line).get(key)
                if not isinstance(value, str) or not value:
                    raise ValueError(f"line {n} has no non-empty string field {key!r}")
                out.append(value)
    except (ValueError, AttributeError, UnicodeDecodeError) as exc:
        raise ProbeFileError(f"method {method!r}: {param} {str(p)!r} is not valid JSON lines: {exc}") from exc
    if not out:
        raise ProbeFileError(f"method {method!r}: {param} {str(p)!r} has no entries")
    return out


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA of two (samples x features) matrices, the plain definition.

    HSIC form: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"linear_cka: different sample counts {X.shape[0]} and {Y.shape[0]}")
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    den = np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)
    return float(np.linalg.norm(Yc.T @ Xc) ** 2 / den) if den > 0 else 0.0


def gram_block(X: np.ndarray) -> np.ndarray:
    """Upper triangle (with diagonal) of K/|K|_F, K = centred Gram; off-diagonals times sqrt 2."""
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(0)
    K = Xc @ Xc.T
    norm = np.linalg.norm(K)
    if norm == 0 or not np.isfinite(norm):
        raise FingerprintError("hidden_cka: every probe text has the same pooled hidden state")
    iu = np.triu_indices(K.shape[0])
    return np.where(iu[0] == iu[1], 1.0, math.sqrt(2.0)) * K[iu] / norm


def model_bos(tokenizer) -> list[int]:
    """[bos id] when the tokenizer puts a BOS token in front of text by default, else []."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return []
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:
        return []
    return [int(bos)] if ids[:1] == [bos] else []


def encode_texts(
    loaded: LoadedModel, texts: list[str], max_tokens: int, *, method: str, keep: str, min_tokens: int = 1
) -> tuple[list[list[int]], int]:
    """Token ids of each text (the model's BOS convention, no other special tokens), cut to ``max_tokens``.

    ``keep="head"`` keeps the first tokens, ``"tail"`` the last ones (BOS stays in
    front). Returns the id lists and how many texts were cut.
    """
    tok = loaded.tokenizer
    if tok is None:
        raise FingerprintError(f"model {loaded.model_id!r}: {method} needs a tokenizer")
    try:
        batch = tok(texts, add_special_tokens=False)["input_ids"]
    except Exception as exc:
        raise FingerprintError(f"model {loaded.model_id!r}: tokenizer failed on the probe texts: {exc}") from exc
    bos = model_bos(tok)
    room = max_tokens - len(bos)
    out = [bos + (list(ids[:room]) if keep == "head" else list(ids[-room:])) for ids in batch]
    vocab = loaded.input_embeddings().shape[0]
    bad = [i for i, ids in enumerate(out) if len(ids) < min_tokens or max(ids) >= vocab or min(ids) < 0]
    if bad:
        raise FingerprintError(
            f"model {loaded.model_id!r}: probe text {bad[0]} encodes to fewer than {min_tokens} tokens or to ids "
            f"outside the embedding matrix ({vocab} rows); {method} needs every probe"
        )
    return out, sum(len(ids) > room for ids in batch)


def batched_forward(loaded: LoadedModel, seqs: list[list[int]], batch_size: int, take):
    """Run ``seqs`` through the model in length-sorted batches; return ``take`` results in input order.

    Causal models get left padding, an attention mask and explicit position ids
    (the positions of an unpadded pass); encoders get right padding.
    ``take(model, inputs, attention_mask)`` runs one batch and returns a tensor
    whose first axis is the batch; results are concatenated on the CPU.
    """
    model, dev = loaded.model, loaded.device
    accepted = _forward_kwargs(model)
    left = loaded.kind == "causal"
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    parts = []
    with torch.inference_mode():
        for b0 in range(0, len(order), batch_size):
            idx = order[b0 : b0 + batch_size]
            lengths = torch.tensor([len(seqs[i]) for i in idx])
            L = int(lengths.max())
            cols = torch.arange(L)[None, :]
            att = (cols >= L - lengths[:, None]) if left else (cols < lengths[:, None])
            ids = torch.zeros((len(idx), L), dtype=torch.long)
            ids[att] = torch.tensor([t for i in idx for t in seqs[i]])
            att = att.long()
            kw = {"input_ids": ids.to(dev), "attention_mask": att.to(dev)}
            if left and "position_ids" in accepted:
                kw["position_ids"] = (att.cumsum(1) - 1).clamp_min(0).to(dev)
            parts.append(take(model, kw, att.to(dev)).cpu())
    flat = torch.cat(parts)
    result = torch.empty_like(flat)
    result[torch.tensor(order)] = flat
    return result


def parse_depths(spec: str) -> list[float]:
    try:
        depths = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        depths = []
    if not depths or any(not 0.0 <= d <= 1.0 for d in depths):
        raise MethodConfigError(
            f"method 'hidden_cka': parameter 'depths' must be comma-separated numbers in [0, 1], got {spec!r}"
        )
    return depths


def layer_index(depth: float, n_layers: int) -> int:
    """hidden_states index of relative depth r: floor(r L + 1/2) (0 = embeddings, L = last layer)."""
    return int(math.floor(depth * n_layers + 0.5))


@METHODS.register("hidden_cka", higher_level="representation")
class HiddenCKAMethod(FingerprintMethod):
    name = "hidden_cka"
    version = 1
    needs_tokenizer = True
    params = {
        "probe_path": (str, "helper_data/probes/texts.jsonl"),
        "n_texts": (int, 128),
        "max_tokens": (int, 128),
        "depths": (str, "0.75,1.0"),
        "batch_size": (int, 32),
    }

    def validate(self) -> None:
        c = self.config
        for key, low in (("n_texts", 2), ("max_tokens", 2), ("batch_size", 1)):
            if c[key] < low:
                raise MethodConfigError(f"method 'hidden_cka': parameter {key!r} must be >= {low}")
        self.depths = parse_depths(c["depths"])
        texts = read_probe_file(c["probe_path"], "text", method=self.name, param="probe_path")
        if len(texts) < c["n_texts"]:
            raise MethodConfigError(
                f"method 'hidden_cka': probe_path {c['probe_path']!r} has {len(texts)} texts, n_texts={c['n_texts']}"
            )
        self.texts = texts[: c["n_texts"]]

    def hash_payload(self) -> dict:
        # batch size cannot change the vector; the probe file enters by content
        return {
            "probe_sha256": file_sha256(_resolve_token_path(self.config["probe_path"])),
            "n_texts": self.config["n_texts"],
            "max_tokens": self.config["max_tokens"],
            "depths": self.depths,
        }

    def pooled_states(self, loaded: LoadedModel) -> tuple[list[np.ndarray], dict]:
        """Pooled hidden states at each configured depth: (n_texts, width) float64 arrays, and provenance."""
        seqs, n_cut = encode_texts(loaded, self.texts, self.config["max_tokens"], method=self.name,
                                   keep="head", min_tokens=2)
        accepted = _forward_kwargs(loaded.model)
        layers: list[int] = []
        n_layers: list[int] = []

        def take(model, kw, att):
            if "logits_to_keep" in accepted:
                kw["logits_to_keep"] = 1  # the LM head is not needed
            hs = getattr(model(**kw, output_hidden_states=True), "hidden_states", None)
            if hs is None:
                raise FingerprintError(f"model {loaded.model_id!r}: the forward pass returns no hidden states")
            if not layers:
                n_layers.append(len(hs) - 1)
                layers.extend(layer_index(d, len(hs) - 1) for d in self.depths)
            keep = att.clone()  # real tokens except the first (the attention sink)
            keep[torch.arange(att.shape[0], device=att.device), att.argmax(1)] = 0
            count = keep.sum(1, keepdim=True).to(torch.float64)
            real = keep.bool()[..., None]
            # where(), not a product: padded slots may hold NaN from fully masked attention rows
            return torch.stack([torch.where(real, hs[i].to(torch.float64), 0.0).sum(1) / count for i in layers], 1)

        P = batched_forward(loaded, seqs, self.config["batch_size"], take).numpy()  # (n, depths, width)
        info = {"n_texts": len(seqs), "layers": layers, "n_layers": n_layers[0],
                "mean_tokens": round(float(np.mean([len(x) for x in seqs])), 2),
                "truncated_share": round(n_cut / len(seqs), 4), "hidden_size": int(P.shape[2])}
        return [P[:, k] for k in range(P.shape[1])], info

    def compute(self, loaded: LoadedModel) -> tuple[np.ndarray, dict]:
        states, info = self.pooled_states(loaded)
        if not all(np.isfinite(X).all() for X in states):
            raise FingerprintError(f"model {loaded.model_id!r}: hidden states contain NaN/inf")
        try:
            blocks = [gram_block(X) for X in states]
        except FingerprintError as exc:
            raise FingerprintError(f"model {loaded.model_id!r}: {exc}") from None
        return np.concatenate(blocks) / math.sqrt(len(blocks)), info

"""The ``next_token`` fingerprint: next-token distributions over a shared candidate set.

Every model reads the same ``n`` prompts (``helper_data/probes/prompts.jsonl``,
each cut to its last ``max_tokens`` tokens) and the same C candidate
continuations (``helper_data/probes/candidates.json``: common words with their
leading space, punctuation, newline, code tokens). With p_i the full-vocabulary
softmax after prompt i and f(c) the FIRST token id of the model's own encoding
of candidate c (no special tokens):

    s_ic = p_i[f(c)] / #{c' : f(c') = f(c)}      (candidates sharing a first token split its mass)
    q_ic = s_ic / sum_c' s_ic'                    (renormalised over the candidate set)
    vector = concat_i sqrt(q_i) / sqrt(n)

so every block has norm 1/sqrt(n), the vector norm 1, and

    cosine(v_a, v_b) = mean_i sum_c sqrt(q_a,ic q_b,ic) = mean Bhattacharyya coefficient.

When a candidate encodes as one token (same tokenizer, or the candidate is a
whole token) this is exact next-token agreement. Otherwise it is the
fallback: the probability of the candidate's first piece. Models with
different tokenizers are still comparable (the candidate strings are shared),
but the measure is coarser; the provenance records the share of single-token
candidates and ``tokenizer_sha256`` (hash of the vocabulary) so a reader can
tell which case applies. Masked LMs and models without an LM head are refused.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import torch

from fingerprinting.loading import LoadedModel
from fingerprinting.methods.base import (
    METHODS,
    FingerprintError,
    FingerprintMethod,
    MethodConfigError,
    canonical_json,
)
from fingerprinting.methods.input_output import _forward_kwargs, _resolve_token_path
from fingerprinting.methods.representation import (
    ProbeFileError,
    batched_forward,
    encode_texts,
    read_probe_file,
)
from fingerprinting.tokens import file_sha256


def read_candidates(path: str, *, method: str) -> list[str]:
    """The candidate strings of a JSON file ``{"candidates": [...]}``, duplicates removed in order."""
    p = _resolve_token_path(path)
    if not p.is_file():
        raise ProbeFileError(f"method {method!r}: candidates_path {path!r} not found")
    try:
        cands = json.loads(p.read_text(encoding="utf-8"))["candidates"]
        if not isinstance(cands, list) or not all(isinstance(c, str) and c for c in cands):
            raise ValueError("'candidates' must be a list of non-empty strings")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ProbeFileError(f"method {method!r}: candidates_path {str(p)!r} is not valid: {exc}") from exc
    cands = list(dict.fromkeys(cands))
    if len(cands) < 2:
        raise ProbeFileError(f"method {method!r}: candidates_path {str(p)!r} needs at least 2 candidates")
    return cands


def tokenizer_sha256(tokenizer) -> str:
    """SHA-256 of the vocabulary (sorted token -> id pairs): equal hashes mean identical token ids."""
    vocab = tokenizer.get_vocab()
    return hashlib.sha256(canonical_json(sorted(vocab.items())).encode()).hexdigest()


def candidate_first_tokens(tokenizer, candidates: list[str]) -> tuple[np.ndarray, float]:
    """First token id of each candidate (-1 if it encodes to nothing) and the share of single-token candidates."""
    batch = tokenizer(candidates, add_special_tokens=False)["input_ids"]
    first = np.array([int(ids[0]) if len(ids) else -1 for ids in batch], dtype=np.int64)
    single = float(np.mean([len(ids) == 1 for ids in batch]))
    return first, single


def candidate_distribution(probs: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(n, vocab) probabilities -> (n, C) distributions over candidates (shared first tokens split).

    ``first[c]`` is candidate c's column in ``probs`` (-1: it encodes to nothing and gets 0).
    """
    ok = first >= 0
    ids = np.where(ok, first, 0)
    share = np.bincount(ids[ok], minlength=probs.shape[1])[ids]  # candidates per first token
    s = np.where(ok, probs[:, ids] / np.maximum(share, 1), 0.0)
    total = s.sum(1, keepdims=True)
    if not np.all(total > 0):
        raise FingerprintError("next_token: a prompt gives zero probability to every candidate")
    return s / total


@METHODS.register("next_token", higher_level="behavioural", needs_logits=True)
class NextTokenMethod(FingerprintMethod):
    name = "next_token"
    version = 1
    needs_tokenizer = True
    needs_logits = True
    params = {
        "prompts_path": (str, "helper_data/probes/prompts.jsonl"),
        "candidates_path": (str, "helper_data/probes/candidates.json"),
        "n_prompts": (int, 128),
        "max_tokens": (int, 64),
        "batch_size": (int, 32),
    }

    def validate(self) -> None:
        c = self.config
        for key, low in (("n_prompts", 1), ("max_tokens", 2), ("batch_size", 1)):
            if c[key] < low:
                raise MethodConfigError(f"method 'next_token': parameter {key!r} must be >= {low}")
        prompts = read_probe_file(c["prompts_path"], "prompt", method=self.name, param="prompts_path")
        if len(prompts) < c["n_prompts"]:
            raise MethodConfigError(
                f"method 'next_token': prompts_path {c['prompts_path']!r} has {len(prompts)} prompts, "
                f"n_prompts={c['n_prompts']}"
            )
        self.prompts = prompts[: c["n_prompts"]]
        self.candidates = read_candidates(c["candidates_path"], method=self.name)

    def hash_payload(self) -> dict:
        return {
            "prompts_sha256": file_sha256(_resolve_token_path(self.config["prompts_path"])),
            "candidates_sha256": file_sha256(_resolve_token_path(self.config["candidates_path"])),
            "n_prompts": self.config["n_prompts"],
            "max_tokens": self.config["max_tokens"],
        }

    def candidate_probs(self, loaded: LoadedModel, token_ids: np.ndarray) -> np.ndarray:
        """Full-vocabulary softmax after each prompt, read at ``token_ids``: (n_prompts, len(token_ids)) float64.

        Batched; only the requested columns leave the device.
        """
        if loaded.kind != "causal":
            what = "a masked LM" if loaded.kind == "masked" else "a model without an LM head"
            raise FingerprintError(
                f"model {loaded.model_id!r} is {what}; next_token needs a causal LM head "
                "(use hidden_cka or a weight method for this model)"
            )
        seqs, _ = encode_texts(loaded, self.prompts, self.config["max_tokens"], method=self.name, keep="tail")
        keep_one = "logits_to_keep" in _forward_kwargs(loaded.model)
        cols = torch.as_tensor(token_ids, dtype=torch.long, device=loaded.device)

        def take(model, kw, att):
            if keep_one:
                kw["logits_to_keep"] = 1
            logits = model(**kw).logits[:, -1, :]
            if int(token_ids.max()) >= logits.shape[-1]:
                raise FingerprintError(
                    f"model {loaded.model_id!r}: a candidate's token id is outside the LM head ({logits.shape[-1]} logits)"
                )
            return torch.softmax(logits.to(torch.float64), dim=-1)[:, cols]

        return batched_forward(loaded, seqs, self.config["batch_size"], take).numpy()

    def compute(self, loaded: LoadedModel) -> tuple[np.ndarray, dict]:
        first, single = candidate_first_tokens(loaded.tokenizer, self.candidates)
        if not np.any(first >= 0):
            raise FingerprintError(f"model {loaded.model_id!r}: no candidate encodes to a token")
        used, where = np.unique(first[first >= 0], return_inverse=True)  # distinct first tokens
        probs = self.candidate_probs(loaded, used)
        if not np.all(np.isfinite(probs)):
            raise FingerprintError(f"model {loaded.model_id!r}: next-token probabilities contain NaN/inf")
        local = np.full_like(first, -1)
        local[first >= 0] = where  # candidate -> column of probs
        try:
            q = candidate_distribution(probs, local)
        except FingerprintError as exc:
            raise FingerprintError(f"model {loaded.model_id!r}: {exc}") from None
        vec = np.sqrt(q).reshape(-1) / math.sqrt(q.shape[0])
        return vec, {
            "n_prompts": int(q.shape[0]),
            "n_candidates": len(self.candidates),
            "single_token_share": round(single, 4),
            "distinct_first_tokens": int(used.size),
            "candidate_mass": round(float(probs.sum(1).mean()), 4),  # mean probability of the candidates' tokens
            "tokenizer_sha256": tokenizer_sha256(loaded.tokenizer),
        }

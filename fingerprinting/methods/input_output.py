"""The ``input_output`` fingerprint: eigenvalues of the linear map probes -> expected target embeddings.

For probe sequence x_i and target ids t_1..t_M (see docs/architecture.md):

    v_i = mean_k (E[x_ik] + sin(k))            (sin(k) added to every dimension)
    p_ij = softmax(logits at the last position of x_i)[t_j]   (full vocabulary)
    u_i = sum_j p_ij E[t_j]
    A = U pinv(V);  fingerprint = n0' largest |eig(A)|, ascending, L2-normalised

All probes run in batches (left padding, attention mask, explicit position
ids so absolute-position models see the same positions as unpadded input),
which gives the same vector as one forward pass per probe.
"""

from __future__ import annotations

import inspect
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
from fingerprinting.settings import REPO_ROOT
from fingerprinting.tokens import TokenFileError, encode_lines, file_sha256, read_token_lines


def _resolve_token_path(p: str) -> Path:
    path = Path(p)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path  # configs written relative to the repository root
    return path


def fingerprint_from_vu(V: np.ndarray, U: np.ndarray, n0: int) -> tuple[np.ndarray, dict]:
    """Fingerprint from row-stacked probe vectors V (N x n) and outputs U (N x n).

    ``A = U^T pinv(V^T)`` is the n x n map with A v_i ~= u_i.
    """
    V = np.asarray(V, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    n = V.shape[1]
    n0p = min(n0, n)
    A = U.T @ np.linalg.pinv(V.T)
    eig = np.linalg.eigvals(A)
    mags = np.sort(np.abs(eig))[::-1][:n0p]
    vec = np.sort(mags)
    norm = np.linalg.norm(vec)
    if norm == 0 or not np.isfinite(norm):
        raise FingerprintError("input_output: all eigenvalues are zero (too few valid probes/targets?)")
    rank = int(np.linalg.matrix_rank(A))
    return vec / norm, {"rank": rank, "structural_zeros": int(max(0, n0p - rank))}


def _forward_kwargs(model) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


@METHODS.register("input_output", higher_level="behavioural", needs_logits=True)
class InputOutputMethod(FingerprintMethod):
    name = "input_output"
    version = 1
    needs_tokenizer = True
    needs_logits = True
    params = {
        "n0": (int, 40),
        "probe_tokens_path": (str, "helper_data/io_tokens/probe_tokens.txt"),
        "target_tokens_path": (str, "helper_data/io_tokens/target_tokens.txt"),
        "batch_size": (int, 32),
        "padding": (str, "left"),
    }

    def validate(self) -> None:
        if self.config["n0"] < 1:
            raise MethodConfigError("method 'input_output': parameter 'n0' must be >= 1")
        if self.config["padding"] not in ("bucket", "left"):
            raise MethodConfigError("method 'input_output': parameter 'padding' must be 'bucket' or 'left'")
        if self.config["batch_size"] < 1:
            raise MethodConfigError("method 'input_output': parameter 'batch_size' must be >= 1")
        for key in ("probe_tokens_path", "target_tokens_path"):
            path = _resolve_token_path(self.config[key])
            if not path.is_file():
                raise MethodConfigError(f"method 'input_output': {key} {self.config[key]!r} not found")
        self.probe_lines = read_token_lines(_resolve_token_path(self.config["probe_tokens_path"]))
        self.target_lines = read_token_lines(_resolve_token_path(self.config["target_tokens_path"]))

    def hash_payload(self) -> dict:
        # batch size and padding mode cannot change the vector; token files are hashed by content
        return {
            "n0": self.config["n0"],
            "probe_tokens_sha256": file_sha256(_resolve_token_path(self.config["probe_tokens_path"])),
            "target_tokens_sha256": file_sha256(_resolve_token_path(self.config["target_tokens_path"])),
        }

    # ------------------------------------------------------------------
    def prepare(self, loaded: LoadedModel) -> tuple[list[list[int]], list[int], torch.Tensor]:
        if loaded.kind == "base":
            raise FingerprintError(
                f"model {loaded.model_id!r} has no LM head (no logits); input_output needs one. "
                "Use a weight method for this model."
            )
        if loaded.tokenizer is None:
            raise FingerprintError(f"model {loaded.model_id!r}: input_output needs a tokenizer")
        E = loaded.input_embeddings().detach()
        vocab = E.shape[0]
        out_emb = loaded.model.get_output_embeddings() if hasattr(loaded.model, "get_output_embeddings") else None
        if out_emb is not None and hasattr(out_emb, "weight"):
            vocab = min(vocab, out_emb.weight.shape[0])
        try:
            probes = [p for p in encode_lines(loaded.tokenizer, self.probe_lines, vocab) if p]
            targets = [t for ids in encode_lines(loaded.tokenizer, self.target_lines, vocab) for t in ids]
        except TokenFileError:
            raise
        except Exception as exc:
            raise FingerprintError(f"model {loaded.model_id!r}: tokenizer failed on probe/target lines: {exc}") from exc
        if not probes:
            raise FingerprintError(f"model {loaded.model_id!r}: no probe line has a token in the vocabulary")
        if not targets:
            raise FingerprintError(f"model {loaded.model_id!r}: no target line has a token in the vocabulary")
        return probes, targets, E

    @staticmethod
    def probe_vectors(E: torch.Tensor, probes: list[list[int]]) -> np.ndarray:
        """v_i = mean_k (E[x_ik] + sin k), for all probes at once (float64)."""
        E64 = E.detach().to("cpu", torch.float64)
        lengths = torch.tensor([len(x) for x in probes])
        L = int(lengths.max())
        ids = torch.zeros((len(probes), L), dtype=torch.long)
        mask = torch.arange(L)[None, :] < lengths[:, None]
        ids[mask] = torch.tensor([t for x in probes for t in x])
        sums = (E64[ids] * mask[..., None]).sum(1)
        # mean of sin(k) over k < len: cumulative sums of sin(0..L-1)
        sin_mean = torch.cumsum(torch.sin(torch.arange(L, dtype=torch.float64)), 0)[lengths - 1] / lengths
        return (sums / lengths[:, None] + sin_mean[:, None]).numpy()

    def last_logits(self, loaded: LoadedModel, probes: list[list[int]]) -> torch.Tensor:
        """Logits at each probe's last real token, batched. Returns (N, vocab) on CPU."""
        model, dev = loaded.model, loaded.device
        accepted = _forward_kwargs(model)
        pad_id = 0
        out = []
        bs = self.config["batch_size"]
        masked = loaded.kind == "masked"
        mask_id = getattr(loaded.tokenizer, "mask_token_id", None)
        if masked and mask_id is None:
            raise FingerprintError(f"model {loaded.model_id!r}: masked LM without a mask token")
        # Length-sorted batches keep padding small. "left" packs full batches
        # (fewest forward passes); "bucket" never mixes lengths, so no batch
        # needs padding (more, smaller passes).
        order = sorted(range(len(probes)), key=lambda i: (len(probes[i]), i))
        batches: list[list[int]] = []
        for i in order:
            if (
                batches
                and len(batches[-1]) < bs
                and (self.config["padding"] == "left" or len(probes[batches[-1][-1]]) == len(probes[i]))
            ):
                batches[-1].append(i)
            else:
                batches.append([i])
        with torch.inference_mode():
            for idx in batches:
                batch = [probes[i] for i in idx]
                if masked:
                    batch = [ids + [mask_id] for ids in batch]
                L = max(len(x) for x in batch)
                ids = torch.full((len(batch), L), pad_id, dtype=torch.long)
                att = torch.zeros((len(batch), L), dtype=torch.long)
                for r, x in enumerate(batch):
                    if masked:  # encoders: right padding, read the mask slot
                        ids[r, : len(x)] = torch.tensor(x)
                        att[r, : len(x)] = 1
                    else:  # causal: left padding, read the final slot
                        ids[r, L - len(x) :] = torch.tensor(x)
                        att[r, L - len(x) :] = 1
                kw = {"input_ids": ids.to(dev), "attention_mask": att.to(dev)}
                if "position_ids" in accepted and not masked:
                    kw["position_ids"] = (att.cumsum(1) - 1).clamp_min(0).to(dev)
                if "logits_to_keep" in accepted and not masked:
                    kw["logits_to_keep"] = 1
                logits = model(**kw).logits
                if masked:
                    last = torch.tensor([len(x) - 1 for x in batch], device=logits.device)
                    sel = logits[torch.arange(len(batch), device=logits.device), last]
                else:
                    sel = logits[:, -1, :]
                # keep float32/float64 as computed; only half precisions are widened
                out.append((sel.float() if sel.dtype in (torch.float16, torch.bfloat16) else sel).cpu())
        flat = torch.cat(out)
        result = torch.empty_like(flat)
        result[torch.tensor([i for idx in batches for i in idx])] = flat
        return result

    def outputs_from_logits(self, logits: torch.Tensor, targets: list[int], E: torch.Tensor) -> np.ndarray:
        P = torch.softmax(logits.to(torch.float64), dim=-1)[:, targets]  # (N, M), not renormalised
        Et = E.detach().to("cpu", torch.float64)[targets]  # (M, n)
        return (P @ Et).numpy()

    def compute(self, loaded: LoadedModel) -> tuple[np.ndarray, dict]:
        probes, targets, E = self.prepare(loaded)
        V = self.probe_vectors(E, probes)
        logits = self.last_logits(loaded, probes)
        if not torch.isfinite(logits).all():
            raise FingerprintError(f"model {loaded.model_id!r}: logits contain NaN/inf")
        U = self.outputs_from_logits(logits, targets, E)
        vec, extra = fingerprint_from_vu(V, U, self.config["n0"])
        extra.update({"n_probes": len(probes), "n_targets": len(targets), "hidden_size": int(E.shape[1])})
        return vec, extra

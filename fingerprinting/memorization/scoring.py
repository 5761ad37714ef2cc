"""Memorization scores: greedy continuations and teacher-forced perplexities.

For each 64-token sample (prompt = tokens 0..31, true continuation =
tokens 32..63):

* ``generated``: 32 tokens of greedy decoding from the prompt;
* ``score``: fraction of the 32 generated tokens equal to the true
  continuation, position by position; ``memorized`` iff score == 1;
* perplexities from ONE teacher-forced forward pass over the true 64 tokens.
  With NLL_t = -log p(x_t | x_0..x_{t-1}) (0-based positions t):

  - ``prompt_perplexity``       = exp(mean NLL_t, t = 1..31)  (inside the prompt);
  - ``continuation_perplexity`` = exp(mean NLL_t, t = 32..63) (the continuation,
    given the true prompt and true earlier continuation tokens);
  - ``sequence_perplexity``     = exp(mean NLL_t, t = 1..63).

  Position 0 has no prefix and is never scored.

:func:`score_samples` batches samples (left padding + attention mask +
explicit position ids, a KV cache for decoding); :func:`score_samples_unbatched`
is the one-sample-at-a-time reference. Both give the same generated tokens.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm


class ScoringError(RuntimeError):
    """A model could not be scored (no logits, cannot generate); the message names the model."""


@dataclass
class ScoreResult:
    """Per-sample scoring output (arrays of length n; ``generated`` is (n, gen_len))."""

    generated: np.ndarray
    score: np.ndarray
    memorized: np.ndarray
    prompt_perplexity: np.ndarray
    continuation_perplexity: np.ndarray
    sequence_perplexity: np.ndarray
    errors: np.ndarray  # object array of str, "" when the sample scored cleanly
    info: dict = field(default_factory=dict)

    def error_list(self) -> list[tuple[int, str]]:
        """(sample index, message) for every sample with an error."""
        return [(i, e) for i, e in enumerate(self.errors) if e]

    def to_dict(self) -> dict[str, np.ndarray]:
        return {
            "generated": self.generated,
            "score": self.score,
            "memorized": self.memorized,
            "prompt_perplexity": self.prompt_perplexity,
            "continuation_perplexity": self.continuation_perplexity,
            "sequence_perplexity": self.sequence_perplexity,
            "error": self.errors,
        }


# ----------------------------------------------------------------- helpers
def _unwrap(model, tokenizer_or_pad_id):
    """(module, pad id, name) from a LoadedModel or a bare HF model."""
    name = None
    tokenizer = tokenizer_or_pad_id
    if hasattr(model, "model") and hasattr(model, "model_id") and hasattr(model, "kind"):
        name = model.model_id
        if tokenizer is None:
            tokenizer = model.tokenizer
        if model.kind not in ("causal", None):
            raise ScoringError(f"model {name!r} is a {model.kind} model; memorization scoring needs "
                               "a causal LM that can generate")
        model = model.model
    if name is None:
        cfg = getattr(model, "config", None)
        name = getattr(cfg, "_name_or_path", None) or type(model).__name__
    if isinstance(tokenizer_or_pad_id, (int, np.integer)):
        pad = int(tokenizer_or_pad_id)
    elif tokenizer is not None:
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        pad = 0 if pad is None else int(pad)
    else:
        pad = 0
    return model, pad, name


def _device_of(model, device):
    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def _accepts(model) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _logits(out, name: str) -> torch.Tensor:
    logits = getattr(out, "logits", None)
    if logits is None:
        raise ScoringError(f"model {name!r} returns no logits (no LM head); it cannot generate")
    return logits


def _check_ids(token_ids: np.ndarray, prompt_len: int, gen_len: int) -> np.ndarray:
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[1] < prompt_len + gen_len:
        raise ValueError(f"token_ids must be (n, >= {prompt_len + gen_len}), got {ids.shape}")
    return ids


def _nll_positions(model, ids: torch.Tensor, name: str) -> torch.Tensor:
    """NLL of x_t given x_<t for t = 1..L-1 from one forward pass; (B, L-1) float64."""
    logits = _logits(model(input_ids=ids, use_cache=False), name)
    logp = torch.log_softmax(logits[:, :-1].to(torch.float64), dim=-1)
    return -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


def _perplexities(nll: np.ndarray, prompt_len: int, total: int) -> tuple[np.ndarray, ...]:
    # nll[:, t - 1] is the NLL of position t
    prompt = np.exp(nll[:, : prompt_len - 1].mean(axis=1))
    cont = np.exp(nll[:, prompt_len - 1 : total - 1].mean(axis=1))
    seq = np.exp(nll[:, : total - 1].mean(axis=1))
    return prompt, cont, seq


def _cache_of(out):
    for key in ("cache", "past_key_values"):
        value = getattr(out, key, None)
        if value is not None:
            return value
    return None


def greedy_generate(model, prompts: Sequence[Sequence[int]], gen_len: int, pad_id: int = 0,
                    device="cpu", name: str = "model") -> np.ndarray:
    """Greedy continuation of a batch of prompts (possibly of different lengths).

    Prompts are left-padded with ``pad_id``; the attention mask hides the
    padding and explicit position ids (cumulative mask - 1) give every prompt
    the positions it would have alone. Decoding reuses the KV cache
    (``past_key_values``), feeding one new token per step. Returns
    (batch, gen_len) int64.
    """
    accepted = _accepts(model)
    lengths = [len(p) for p in prompts]
    L = max(lengths)
    ids = torch.full((len(prompts), L), pad_id, dtype=torch.long)
    att = torch.zeros((len(prompts), L), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, L - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        att[r, L - len(p) :] = 1
    ids, att = ids.to(device), att.to(device)
    pos = (att.cumsum(1) - 1).clamp_min(0)
    # transformers 5 renamed past_key_values to cache; older models keep the old name
    cache_kw = "cache" if "cache" in accepted else "past_key_values"
    kw = {"input_ids": ids, "attention_mask": att, "use_cache": True}
    if "position_ids" in accepted:
        kw["position_ids"] = pos
    if "logits_to_keep" in accepted:
        kw["logits_to_keep"] = 1  # only the last position's logits are needed
    out = model(**kw)
    logits = _logits(out, name)
    past = _cache_of(out)
    if past is None:
        raise ScoringError(f"model {name!r} returned no KV cache; use score_samples_unbatched")
    nxt = logits[:, -1].argmax(-1)
    result = [nxt]
    last_pos = pos[:, -1]
    for _ in range(gen_len - 1):
        att = torch.cat([att, torch.ones_like(att[:, :1])], dim=1)
        last_pos = last_pos + 1
        kw = {"input_ids": nxt[:, None], "attention_mask": att, cache_kw: past, "use_cache": True}
        if "position_ids" in accepted:
            kw["position_ids"] = last_pos[:, None]
        out = model(**kw)
        past = _cache_of(out)
        nxt = _logits(out, name)[:, -1].argmax(-1)
        result.append(nxt)
    return torch.stack(result, dim=1).cpu().numpy().astype(np.int64)


def _finish(ids, generated, nll, prompt_len, gen_len, info) -> ScoreResult:
    total = prompt_len + gen_len
    truth = ids[:, prompt_len:total]
    score = (generated == truth).mean(axis=1) if len(ids) else np.zeros(0)
    with np.errstate(over="ignore", invalid="ignore"):
        pp, cp, sp = _perplexities(nll, prompt_len, total) if len(ids) else (np.zeros(0),) * 3
    errors = np.array([""] * len(ids), dtype=object)
    for i in range(len(ids)):
        bad = [k for k, v in (("prompt", pp[i]), ("continuation", cp[i]), ("sequence", sp[i]))
               if not np.isfinite(v)]
        if bad:
            errors[i] = f"sample {i}: non-finite {'/'.join(bad)} perplexity"
    return ScoreResult(generated, score.astype(np.float64), score == 1.0, pp, cp, sp, errors, info)


# ----------------------------------------------------------------- public
def score_samples(
    model,
    tokenizer_or_pad_id=None,
    token_ids: np.ndarray | None = None,
    *,
    batch_size: int = 32,
    device=None,
    prompt_len: int = 32,
    gen_len: int = 32,
    progress: bool = False,
) -> ScoreResult:
    """Score samples in batches: greedy generation with a KV cache plus teacher-forced NLL.

    Args:
        model: an HF causal LM or a :class:`fingerprinting.loading.LoadedModel`.
        tokenizer_or_pad_id: tokenizer (its pad / eos id pads) or the pad id;
            ``None`` with a LoadedModel uses its tokenizer.
        token_ids: (n, >= prompt_len + gen_len) int array of samples.
        batch_size: samples per forward pass.
        device: where inputs are sent; ``None`` (default) = the model's own device.

    Non-finite perplexities do not raise: the sample's ``errors`` entry says
    which. Raises :class:`ScoringError` naming the model when it cannot
    produce logits or a cache.
    """
    net, pad, name = _unwrap(model, tokenizer_or_pad_id)
    device = _device_of(net, device)
    ids = _check_ids(token_ids, prompt_len, gen_len)
    total = prompt_len + gen_len
    n = len(ids)
    generated = np.zeros((n, gen_len), dtype=np.int64)
    nll = np.zeros((n, total - 1), dtype=np.float64)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            starts = range(0, n, batch_size)
            for s in tqdm(starts, desc=f"scoring {name}", disable=not progress, unit="batch"):
                chunk = ids[s : s + batch_size, :total]
                x = torch.as_tensor(chunk, device=device)
                nll[s : s + len(chunk)] = _nll_positions(net, x, name).cpu().numpy()
                generated[s : s + len(chunk)] = greedy_generate(
                    net, chunk[:, :prompt_len].tolist(), gen_len, pad, device, name)
    except ScoringError:
        raise
    except Exception as exc:
        raise ScoringError(f"model {name!r} failed during scoring: {type(exc).__name__}: {exc}") from exc
    finally:
        net.train(was_training)
    return _finish(ids, generated, nll, prompt_len, gen_len,
                   {"model": name, "batch_size": batch_size, "method": "batched_kv_cache"})


def score_samples_unbatched(
    model,
    tokenizer_or_pad_id=None,
    token_ids: np.ndarray | None = None,
    *,
    device=None,
    prompt_len: int = 32,
    gen_len: int = 32,
    progress: bool = False,
    batch_size: int | None = None,
    use_cache: bool = False,
) -> ScoreResult:
    """Reference scorer: one sample at a time, greedy decoding by a plain loop.

    By default each step re-runs the model over the whole sequence so far (no
    cache, no padding, no batching): the straightforward definition the
    batched scorer must reproduce. ``use_cache=True`` decodes each sample
    alone with the KV cache instead (isolates the gain of batching).
    ``batch_size`` is accepted and ignored.
    """
    del batch_size
    net, pad, name = _unwrap(model, tokenizer_or_pad_id)
    device = _device_of(net, device)
    ids = _check_ids(token_ids, prompt_len, gen_len)
    total = prompt_len + gen_len
    n = len(ids)
    generated = np.zeros((n, gen_len), dtype=np.int64)
    nll = np.zeros((n, total - 1), dtype=np.float64)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for i in tqdm(range(n), desc=f"scoring {name} (unbatched)", disable=not progress):
                x = torch.as_tensor(ids[i : i + 1, :total], device=device)
                nll[i] = _nll_positions(net, x, name)[0].cpu().numpy()
                if use_cache:
                    generated[i] = greedy_generate(net, x[:, :prompt_len].tolist(), gen_len, pad,
                                                   device, name)[0]
                    continue
                seq = x[:, :prompt_len]
                for k in range(gen_len):
                    logits = _logits(net(input_ids=seq, use_cache=False), name)
                    nxt = logits[:, -1].argmax(-1)
                    generated[i, k] = int(nxt)
                    seq = torch.cat([seq, nxt[:, None]], dim=1)
    except ScoringError:
        raise
    except Exception as exc:
        raise ScoringError(f"model {name!r} failed during scoring: {type(exc).__name__}: {exc}") from exc
    finally:
        net.train(was_training)
    return _finish(ids, generated, nll, prompt_len, gen_len,
                   {"model": name, "batch_size": 1,
                    "method": "unbatched_kv_cache" if use_cache else "unbatched_loop"})

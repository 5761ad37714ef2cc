"""Batched greedy scoring against the one-sample-at-a-time reference on a real tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fingerprinting.loading import load_model
from fingerprinting.memorization.scoring import (
    ScoringError,
    greedy_generate,
    score_samples,
    score_samples_unbatched,
)
from fingerprinting.settings import HELPER_DATA

STORIES = HELPER_DATA / "models" / "stories260k"


@pytest.fixture(scope="module")
def stories():
    return load_model("stories260k", str(STORIES), device="cpu")


@pytest.fixture(scope="module")
def samples(stories):
    text = ("Once upon a time there was a little girl named Lily. She loved to play outside in "
            "the park with her friends. One day she saw a big red ball under a tree. ") * 3
    text += "Tom had a dog. The dog liked to run and jump. They were happy together. " * 3
    ids = np.array(stories.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    starts = range(0, len(ids) - 64, 13)
    return np.stack([ids[s : s + 64] for s in starts][:12])


def test_batched_equals_unbatched(stories, samples):
    batched = score_samples(stories, None, samples, batch_size=5)
    plain = score_samples_unbatched(stories, None, samples, use_cache=True)
    # the no-cache loop (the plain definition) on a few samples: it is slow
    loop = score_samples_unbatched(stories, None, samples[:3])
    assert np.array_equal(batched.generated[:3], loop.generated)
    assert batched.generated.shape == (len(samples), 32)
    assert np.array_equal(batched.generated, plain.generated)
    np.testing.assert_allclose(batched.sequence_perplexity, plain.sequence_perplexity, rtol=1e-5)
    np.testing.assert_allclose(batched.continuation_perplexity, plain.continuation_perplexity,
                               rtol=1e-5)
    assert np.array_equal(batched.score, plain.score)
    # repeated stories text is easy: some positions must match
    assert batched.score.max() > 0


def test_score_arithmetic_and_perplexity_positions(stories, samples):
    res = score_samples(stories, None, samples[:2], batch_size=2)
    truth = samples[:2, 32:64]
    # by hand: fraction of equal positions
    for i in range(2):
        assert res.score[i] == sum(int(a == b) for a, b in zip(res.generated[i], truth[i], strict=False)) / 32
    assert res.memorized.tolist() == [s == 1.0 for s in res.score]
    # perplexities recomputed here from log-softmax of one forward pass
    with torch.no_grad():
        logits = stories.model(input_ids=torch.as_tensor(samples[:2])).logits.double()
    logp = torch.log_softmax(logits, -1)
    x = torch.as_tensor(samples[:2])
    nll = torch.stack([-logp[:, t - 1].gather(-1, x[:, t : t + 1]).squeeze(-1)
                       for t in range(1, 64)], dim=1).numpy()  # column k is position k + 1
    np.testing.assert_allclose(res.prompt_perplexity, np.exp(nll[:, 0:31].mean(1)), rtol=1e-6)
    np.testing.assert_allclose(res.continuation_perplexity, np.exp(nll[:, 31:63].mean(1)),
                               rtol=1e-6)
    np.testing.assert_allclose(res.sequence_perplexity, np.exp(nll.mean(1)), rtol=1e-6)
    assert res.error_list() == []


def test_hand_memorized_case():
    """A fake model that always predicts (last token + 1) mod V: counting is memorized."""

    class Counter(torch.nn.Module):
        vocab = 100

        def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None,
                    use_cache=False, logits_to_keep=0):
            logits = torch.nn.functional.one_hot((input_ids + 1) % self.vocab, self.vocab).float()
            out = type("Out", (), {})()
            out.logits = logits * 10
            out.cache = ("ok",) if use_cache else None
            return out

    ids = np.stack([np.arange(64), np.arange(10, 74)])
    ids[1, 40] = 0  # breaks the count: generated differs at position 40 only (index 8)
    res = score_samples(Counter(), 0, ids, batch_size=2)
    assert res.score.tolist() == [1.0, 31 / 32]
    assert res.memorized.tolist() == [True, False]


def test_left_padding_keeps_generation(stories, samples):
    long_p, short_p = samples[0, :32].tolist(), samples[1, 7:32].tolist()
    together = greedy_generate(stories.model, [long_p, short_p], 12, pad_id=0)
    alone = greedy_generate(stories.model, [short_p], 12, pad_id=0)
    assert np.array_equal(together[1], alone[0])


def test_model_without_lm_head_raises(samples):
    class NoHead(torch.nn.Module):
        def forward(self, input_ids, **kw):
            return type("Out", (), {"logits": None})()

    with pytest.raises(ScoringError, match="NoHead"):
        score_samples(NoHead(), 0, samples[:1])


def test_mean_hidden_state_embeddings(stories, samples):
    from fingerprinting.memorization.features import mean_hidden_state_embeddings

    emb = mean_hidden_state_embeddings(stories, samples[:3], batch_size=2)
    assert emb.shape == (3, stories.model.config.hidden_size)
    with torch.no_grad():
        hs = stories.model(input_ids=torch.as_tensor(samples[:1]), output_hidden_states=True)
    np.testing.assert_allclose(emb[0], hs.hidden_states[-1][0].mean(0).numpy(), rtol=1e-5,
                               atol=1e-6)

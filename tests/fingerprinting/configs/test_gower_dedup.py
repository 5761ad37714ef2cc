"""gower_topk over unique feature vectors (dedup=True) must equal the plain path exactly."""

from __future__ import annotations

import numpy as np
import pytest

from fingerprinting.configs.gower import duplicate_groups, encode, gower_topk

NUM = ["hidden_size", "num_hidden_layers", "vocab_size"]
CAT = ["model_type", "torch_dtype", "uses_moe"]


def _population(n_base: int, n: int, seed: int) -> list[dict]:
    """n rows drawn (with heavy repetition) from n_base coarse base rows: many ties."""
    rng = np.random.default_rng(seed)
    base = []
    for i in range(n_base):
        r = {}
        for f in NUM:
            v = int(rng.integers(0, 3)) if i > 1 else 2 * i  # range 2: distances in halves
            r[f] = None if (i > 1 and rng.random() < 0.25) else v
        # > 64 model types early on, so the wide (code comparison) path runs too
        r["model_type"] = f"t{i}" if i < 70 else f"t{int(rng.integers(0, 4))}"
        if rng.random() < 0.15:
            r["model_type"] = None
        r["torch_dtype"] = [None, "float16", "bfloat16"][int(rng.integers(0, 3))]
        r["uses_moe"] = [None, True, False][int(rng.integers(0, 3))]
        base.append(r)
    base.append({f: None for f in NUM + CAT})  # compared with nothing, not even itself
    base.append({f: None for f in NUM + CAT} | {"uses_moe": True})  # only one feature
    # skewed multiplicities: a few big groups (larger than k), many singletons
    p = rng.pareto(1.0, len(base)) + 0.05
    pick = rng.choice(len(base), size=n, p=p / p.sum())
    pick[: len(base)] = rng.permutation(len(base))  # every base row present at least once
    rng.shuffle(pick)
    return [dict(base[j]) for j in pick]


def _both(A, k, **kw):
    plain = gower_topk(A, k, dedup=False, **kw)
    dedup = gower_topk(A, k, dedup=True, **kw)
    return plain, dedup


def _assert_same(plain, dedup):
    assert np.array_equal(dedup[0], plain[0])
    assert np.array_equal(dedup[1], plain[1])  # bit for bit, inf padding included


def test_duplicate_groups():
    rows = [
        {"hidden_size": 1.0, "model_type": "a"},
        {"hidden_size": None, "model_type": "a"},
        {"hidden_size": 1.0, "model_type": "a"},
        {"hidden_size": -0.0, "model_type": "b"},
        {"hidden_size": None, "model_type": "a"},
        {"hidden_size": 0.0, "model_type": "b"},
        {"hidden_size": 1.0, "model_type": None},
    ]
    A = encode(rows, ["hidden_size", "model_type"])
    A.num[4, 0] = -np.nan  # another NaN bit pattern is still "missing"
    g = duplicate_groups(A)
    assert g.inverse.tolist() == [0, 1, 0, 2, 1, 2, 3]  # numbered by first occurrence
    assert g.first.tolist() == [0, 1, 3, 6]
    assert g.counts.tolist() == [2, 2, 2, 1]
    assert [g.members[s : s + c].tolist() for s, c in zip(g.starts, g.counts, strict=True)] == [
        [0, 2], [1, 4], [3, 5], [6],
    ]  # fmt: skip
    # a zero-weight feature does not split groups
    g2 = duplicate_groups(A, weights={"model_type": 0.0})
    assert g2.inverse.tolist() == [0, 1, 0, 2, 1, 2, 0]


@pytest.mark.parametrize("k", [1, 3, 12, 40])
@pytest.mark.parametrize("seed", [0, 1])
def test_dedup_equals_plain(k, seed):
    rows = _population(n_base=90, n=260, seed=seed)
    A = encode(rows, NUM + CAT)
    g = duplicate_groups(A)
    assert g.n_unique < A.n / 2 and g.counts.max() > 40  # groups larger than k
    for kw in (
        {"block_rows": 16, "block_cols": 20, "n_jobs": 2},
        {"block_rows": 7, "block_cols": 11, "n_jobs": 1},
        {"block_rows": 4096, "n_jobs": 1},
    ):
        plain, dedup = _both(A, k, dtype=np.float64, **kw)
        _assert_same(plain, dedup)
    # the all-missing rows have no neighbour at all, not even their duplicates
    allnan = [i for i, r in enumerate(rows) if all(v is None for v in r.values())]
    assert allnan and (dedup[0][allnan] == -1).all()


@pytest.mark.parametrize("exclude_self", [True, False])
def test_dedup_equals_plain_options(exclude_self):
    rows = _population(n_base=60, n=200, seed=4)
    A = encode(rows, NUM + CAT)
    for kw in (
        {"variant": "max"},
        {"weights": {"model_type": 2.0, "uses_moe": 0.0}},
        {"row_range": (37, 121)},
        {"row_range": (50, 50)},
    ):
        plain, dedup = _both(
            A, 5, dtype=np.float64, block_rows=9, block_cols=13, exclude_self=exclude_self, **kw
        )
        _assert_same(plain, dedup)


def test_dedup_float32_and_preset_weights():
    rows = _population(n_base=80, n=240, seed=9)
    A = encode(rows, NUM + CAT)
    for kw in ({"dtype": np.float32}, {"weights": "notebook_groups", "dtype": np.float64}):
        plain, dedup = _both(A, 6, block_rows=16, block_cols=24, **kw)
        # rounding of a pair may differ by an ulp with the tile it falls in (as between
        # block sizes of the plain path); neighbours and distances agree
        assert np.array_equal(dedup[0], plain[0])
        assert np.allclose(dedup[1], plain[1], rtol=0, atol=1e-6)


def test_dedup_hand_worked_expansion():
    # groups: a = {0, 3, 5}, b = {1, 4}, c = {2}; one categorical feature: a-b, a-c, b-c at 1
    rows = [{"model_type": t} for t in "abcaba"]
    A = encode(rows, ["model_type"])
    idx, dist = gower_topk(A, 4, dtype=np.float64)
    # row 3 (a): its duplicates 0, 5 at 0, then the others at distance 1 by index
    assert idx[3].tolist() == [0, 5, 1, 2]
    assert dist[3].tolist() == [0, 0, 1, 1]
    assert idx[2].tolist() == [0, 1, 3, 4]  # c has no duplicate: ties by index
    idx, dist = gower_topk(A, 6, dtype=np.float64)
    assert idx[4].tolist() == [1, 0, 2, 3, 5, -1]  # padded: only five other rows
    assert dist[4, -1] == np.inf
    plain = gower_topk(A, 6, dtype=np.float64, dedup=False)
    assert np.array_equal(plain[0], idx)


def test_no_duplicates_and_errors():
    rows = [{"hidden_size": i} for i in range(10)]
    A = encode(rows, ["hidden_size"])
    plain, dedup = _both(A, 3, dtype=np.float64)
    _assert_same(plain, dedup)
    with pytest.raises(ValueError, match="k must be"):
        gower_topk(A, 0)
    A2 = encode(rows + rows, ["hidden_size"])
    with pytest.raises(ValueError, match="row_range"):
        gower_topk(A2, 2, row_range=(0, 30))

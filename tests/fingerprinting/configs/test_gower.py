from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from fingerprinting.configs.gower import (
    WEIGHT_GROUPS,
    all_pairs,
    encode,
    gower_matrix,
    gower_topk,
    resolve_weights,
    vector_features,
    vector_topk,
)

FEATS = ["model_type", "hidden_size", "num_hidden_layers", "uses_moe"]
ROWS = [
    {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "uses_moe": False},
    {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": None, "uses_moe": True},
    {"model_type": "gpt2", "hidden_size": 768, "num_hidden_layers": 12, "uses_moe": None},
]
# Population ranges: hidden 4096 - 768 = 3328, layers 32 - 12 = 20.


def test_standard_hand_worked():
    D = gower_matrix(encode(ROWS, FEATS), variant="standard")
    # (0,1): type equal 0; hidden |4096-2048|/3328; layers skipped (missing); moe F/T 1 -> /3
    assert D[0, 1] == pytest.approx((0 + 2048 / 3328 + 1) / 3)
    # (0,2): type 1; hidden 3328/3328 = 1; layers 20/20 = 1; moe skipped -> 3/3
    assert D[0, 2] == pytest.approx(1.0)
    # (1,2): type 1; hidden 1280/3328; layers and moe skipped -> /2
    assert D[1, 2] == pytest.approx((1 + 1280 / 3328) / 2)
    assert np.allclose(D, D.T)
    assert np.allclose(np.diag(D), 0)


def test_max_variant_hand_worked():
    D = gower_matrix(encode(ROWS, FEATS), variant="max")
    # (0,1): 0 + |4096-2048|/4096 = 0.5 + 1 -> 1.5 / 3
    assert D[0, 1] == pytest.approx(0.5)
    # (0,2): 1 + 3328/4096 = 0.8125 + 20/32 = 0.625 -> 2.4375 / 3
    assert D[0, 2] == pytest.approx(2.4375 / 3)
    # (1,2): 1 + 1280/2048 = 0.625 -> 1.625 / 2
    assert D[1, 2] == pytest.approx(0.8125)


def test_max_variant_both_zero_is_zero():
    rows = [{"hidden_size": 0, "vocab_size": 10}, {"hidden_size": 0, "vocab_size": 5}]
    D = gower_matrix(encode(rows, ["hidden_size", "vocab_size"]), variant="max")
    # hidden 0 vs 0 -> 0; vocab |10-5|/10 = 0.5 -> 0.25
    assert D[0, 1] == pytest.approx(0.25)


def test_weights_dict():
    D = gower_matrix(encode(ROWS, FEATS), weights={"model_type": 2.0, "uses_moe": 0.0})
    # (0,1): (2*0 + 1*2048/3328) / (2 + 1); moe weight 0 is not compared
    assert D[0, 1] == pytest.approx((2048 / 3328) / 3)
    # (0,2): (2*1 + 1 + 1) / (2 + 1 + 1)
    assert D[0, 2] == pytest.approx(1.0)
    # (1,2): (2*1 + 1280/3328) / (2 + 1)
    assert D[1, 2] == pytest.approx((2 + 1280 / 3328) / 3)


def test_zero_range_feature_and_all_missing_pair():
    rows = [
        {"model_type": "a", "vocab_size": 50000, "hidden_size": 10},
        {"model_type": "a", "vocab_size": 50000, "hidden_size": 20},
        {"model_type": None, "vocab_size": None, "hidden_size": None, "uses_rope": True},
    ]
    D = gower_matrix(encode(rows, ["model_type", "vocab_size", "hidden_size", "uses_rope"]))
    # (0,1): type 0, vocab range 0 -> 0 (compared), hidden 10/10 = 1 -> 1/3
    assert D[0, 1] == pytest.approx(1 / 3)
    # row 2 shares no present feature with 0 or 1
    assert math.isnan(D[0, 2]) and math.isnan(D[1, 2])
    assert D[2, 2] == 0.0  # uses_rope compared with itself


def test_presets_and_errors():
    names = ["model_type", "hidden_size", "torch_dtype", "uses_moe", "rope_theta"]
    w = resolve_weights("notebook_groups", names)
    assert w.tolist() == pytest.approx([1 / 3, 1 / 10, 1 / 2, 1 / 3, 1 / 3])
    for members in WEIGHT_GROUPS.values():
        assert sum(resolve_weights("notebook_groups", members)) == pytest.approx(1.0)
    A = encode(ROWS, FEATS)
    with pytest.raises(ValueError, match="notebook_groups"):
        gower_matrix(A, weights="nope")
    with pytest.raises(ValueError, match="standard, max"):
        gower_matrix(A, variant="range")
    with pytest.raises(ValueError, match="unknown features"):
        gower_matrix(A, weights={"bogus": 1.0})


def test_matrix_against_other_population():
    A = encode(ROWS[:2], FEATS)
    B = encode(ROWS[2:], FEATS, reference=A)
    D = gower_matrix(A, B)
    # ranges over both: hidden 3328 as before; (1 vs gpt2) = (1 + 1280/3328) / 2
    assert D.shape == (2, 1)
    assert D[1, 0] == pytest.approx((1 + 1280 / 3328) / 2)


# ----------------------------------------------------------------- top-k vs brute force

NUM = ["hidden_size", "num_hidden_layers", "vocab_size"]
CAT = ["model_type", "torch_dtype", "uses_moe"]


def _random_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r = {}
        for f in NUM:
            # values 0..4 with 0 and 4 forced into the population: range 4, exact quarters
            v = int(rng.integers(0, 5)) if i > 1 else 4 * i
            r[f] = None if (i > 1 and rng.random() < 0.2) else v
        # > 64 distinct model types so the wide (code comparison) path runs too
        r["model_type"] = f"t{i}" if i < 70 else f"t{int(rng.integers(0, 8))}"
        if rng.random() < 0.15:
            r["model_type"] = None
        r["torch_dtype"] = [None, "float16", "bfloat16"][int(rng.integers(0, 3))]
        r["uses_moe"] = [None, True, False][int(rng.integers(0, 3))]
        rows.append(r)
    rows += [dict(rows[5]), dict(rows[9]), dict(rows[9])]  # exact duplicates: ties at 0
    rows.append({f: None for f in NUM + CAT})  # never comparable
    return rows


def _ref_gower(a: dict, b: dict) -> float:
    total = count = 0
    for f in NUM + CAT:
        x, y = a[f], b[f]
        if x is None or y is None:
            continue
        total += abs(x - y) / 4 if f in NUM else float(x != y)
        count += 1
    return total / count if count else math.nan


def _ref_topk(rows: list[dict], k: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    idx = np.full((n, k), -1)
    dist = np.full((n, k), np.inf)
    for i in range(n):
        cand = [(_ref_gower(rows[i], rows[j]), j) for j in range(n) if j != i]
        cand = sorted(c for c in cand if not math.isnan(c[0]))[:k]
        for t, (d, j) in enumerate(cand):
            idx[i, t], dist[i, t] = j, d
    return idx, dist


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_topk_blocks_equal_brute_force(dtype):
    rows = _random_rows(150, seed=3)
    A = encode(rows, NUM + CAT)
    ref_i, ref_d = _ref_topk(rows, 6)
    got_i, got_d = gower_topk(A, 6, block_rows=16, block_cols=20, dtype=dtype, n_jobs=2)
    assert np.array_equal(got_i, ref_i)
    assert np.allclose(got_d, ref_d, atol=1e-6)
    assert got_i[-1].tolist() == [-1] * 6  # the all-missing row has no neighbour
    # one tile, one thread: same answer
    one_i, _ = gower_topk(A, 6, block_rows=1000, block_cols=1000, dtype=dtype, n_jobs=1)
    assert np.array_equal(one_i, ref_i)


def test_topk_row_range_and_self():
    rows = _random_rows(80, seed=5)
    A = encode(rows, NUM + CAT)
    full_i, full_d = gower_topk(A, 4, block_rows=8, dtype=np.float64)
    part_i, part_d = gower_topk(A, 4, block_rows=8, dtype=np.float64, row_range=(10, 30))
    assert np.array_equal(part_i, full_i[10:30])
    with_self, d_self = gower_topk(A, 1, block_rows=8, exclude_self=False, dtype=np.float64)
    # a row is at distance 0 from itself, and only earlier exact duplicates beat it
    assert (d_self[:-1, 0] == 0).all()


def test_all_pairs_covers_upper_triangle():
    rows = _random_rows(90, seed=7)
    A = encode(rows, NUM + CAT)
    seen = {}
    for i, j, d in all_pairs(A, block_rows=16, dtype=np.float64):
        assert (i < j).all()
        for a, b, x in zip(i.tolist(), j.tolist(), d.tolist(), strict=True):
            seen[(a, b)] = x
    n = len(rows)
    assert len(seen) == n * (n - 1) // 2
    for (a, b), x in list(seen.items())[::37]:
        ref = _ref_gower(rows[a], rows[b])
        assert (math.isnan(ref) and math.isnan(x)) or x == pytest.approx(ref)
    with pytest.raises(ValueError, match="max_n"):
        next(all_pairs(A, max_n=10))


@pytest.mark.parametrize("metric", ["l1", "l2", "cosine"])
def test_vector_topk_equal_brute_force(metric):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(70, 6))
    X[:, 5] = rng.integers(0, 2, size=70)  # a 0/1 column (l1 takes it by matrix product)
    ref = cdist(X, X, {"l1": "cityblock", "l2": "euclidean", "cosine": "cosine"}[metric])
    np.fill_diagonal(ref, np.inf)
    ref_i = np.argsort(ref, axis=1, kind="stable")[:, :5]
    got_i, got_d = vector_topk(X, 5, metric, block_rows=9, block_cols=13)
    assert np.array_equal(got_i, ref_i)
    assert np.allclose(got_d, np.take_along_axis(ref, ref_i, axis=1), atol=1e-9)
    with pytest.raises(ValueError, match="l1, l2, cosine"):
        vector_topk(X, 2, "hamming")


def test_vector_features_layout():
    A = encode(ROWS, FEATS)
    X = vector_features(A)
    # 2 numeric z-scores + model_type one-hot (2 codes) + uses_moe one-hot (2 codes)
    assert X.shape == (3, 2 + 2 + 2)
    # hidden_size z-scores: mean 2304, population std
    h = np.array([4096, 2048, 768.0])
    assert np.allclose(X[:, 0], (h - h.mean()) / h.std())
    # layers missing on row 1 -> 0 after standardising
    assert X[1, 1] == 0.0
    # model_type codes sorted: gpt2 = 0, llama = 1
    assert X[:, 2:4].tolist() == [[0, 1], [0, 1], [1, 0]]
    assert X[2, 4:6].tolist() == [0, 0]  # uses_moe missing: no one-hot

"""Lineage recovery (fingerprinting/provenance/lineage.py): hand-made forests and hand-built checkpoints.

Every expected edge, direction and statistic below is worked out by hand in the comments (or, for
one confidence, from the documented formula written out here), never read from the code's output.
"""

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch
from safetensors.torch import save_file

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.provenance.lineage import (
    InferredEdge,
    LineageError,
    WeightStats,
    cross_family_threshold,
    infer_lineage,
    max_arborescence,
    quant_bits,
    weight_stats,
)


def _stats(m, n_params=1000, zeros=0.0, kurt=4.0, quant="F32"):
    return WeightStats(m, n_params, zeros, 1.0, kurt, quant)


# Two trees. A: a0 -> a1 (fine-tune), a0 -> a2 (int8 copy), a1 -> a3 (pruned). B: b0 -> b1 (distilled).
FOREST_SCORES = [
    ("a0", "a1", 0.90), ("a0", "a2", 0.98), ("a1", "a3", 0.88), ("a0", "a3", 0.84), ("a1", "a2", 0.89),
    ("a2", "a3", 0.83), ("b0", "b1", 0.75),
    # across the trees: all below the threshold 0.5, one just below
    ("a0", "b0", 0.45), ("a1", "b1", 0.20), ("a2", "b0", 0.10), ("a3", "b1", 0.30),
]
FOREST_SIGNALS = {
    "a0": _stats("a0", kurt=5.0),             # excess kurtosis 2.0
    "a1": _stats("a1", kurt=4.5),             # 1.5: nearer the Gaussian, so the child of a0
    "a2": _stats("a2", kurt=5.0, quant="grid-int8"),  # 8-bit copy: a child
    "a3": _stats("a3", zeros=0.5, kurt=6.0),  # half zeros: pruned, a child
    "b0": _stats("b0", n_params=1000),
    "b1": _stats("b1", n_params=500),         # half the parameters: distilled, a child
}


def _edges(out: list[InferredEdge]) -> set[tuple[str, str]]:
    return {(e.parent_id, e.child_id) for e in out}


def test_six_model_forest_exact_edges_and_directions():
    # Strengths -log(1 - (s - 0.5) / 0.5): a0-a2 3.22, a0-a1 1.61, a1-a2 1.51, a1-a3 1.43, a0-a3 1.14,
    # a2-a3 1.08, b0-b1 0.69. Best incoming edge per node, with the direction terms:
    #   a2 <- a0: 3.22 + 3 (quant)                  = 6.22 (a1: 1.51 + 3 - 0.5 = 4.01)
    #   a3 <- a1: 1.43 + 3 (zeros)                   = 4.43 (a0: 1.14 + 3 = 4.14; kurtosis is not compared
    #             between models whose zero fractions differ)
    #   a1 <- a0: 1.61 + 0.5 (kurtosis)              = 2.11; a0 <- a1 would be 1.61 - 0.5 = 1.11,
    # so rooting tree A at a0 beats rooting it at a1 by 1.0 (and a0 is also the most central).
    # b1 <- b0: the larger model is the parent (+3). a0-b0 (0.45) is below the threshold: two trees.
    # No triple is a merge: e.g. a1 between a0 and a3 has d = 0.10 + 0.12 against 0.16 (0.375 off the
    # segment); a0 between a1 and a2 is on it (0.09) but lopsided (balance 0.02 / 0.10 = 0.2).
    out = infer_lineage(list(FOREST_SIGNALS), FOREST_SCORES, 0.5, FOREST_SIGNALS)
    assert _edges(out) == {("a0", "a1"), ("a0", "a2"), ("a1", "a3"), ("b0", "b1")}
    assert not any(e.is_merge_parent for e in out)
    by = {(e.parent_id, e.child_id): e for e in out}
    assert by[("a0", "a2")].score == 0.98 and by[("b0", "b1")].score == 0.75
    assert all(0.5 < e.direction_confidence < 1 for e in out)
    # a0 -> a2: sigmoid(quant 3 + structure), structure = mean strength to the other 3 models of the
    # group, a0 minus a2 (the documented rootness term, weight 1)
    strength = {frozenset((a, b)): -math.log(1 - (s - 0.5) / 0.5) for a, b, s in FOREST_SCORES if s >= 0.5}
    mean = {m: sum(v for k, v in strength.items() if m in k) / 3 for m in ("a0", "a2")}
    expected = 1 / (1 + math.exp(-(3.0 + mean["a0"] - mean["a2"])))
    assert by[("a0", "a2")].direction_confidence == pytest.approx(expected, abs=1e-4)
    assert "quant=+3.00" in by[("a0", "a2")].evidence and "params=+3.00" in by[("b0", "b1")].evidence


def test_forest_without_signals_still_finds_the_trees():
    # Without signals every edge weighs its strength both ways, so the arborescence is the maximum
    # spanning tree of each group (a0-a2, a0-a1, a1-a3: a1-a2 and a0-a3 close cycles), rooted at the most
    # central model: mean strength a0 (1.61 + 3.22 + 1.14) / 3 = 1.99 beats a2 1.94, a1 1.52, a3 1.22.
    # b0 and b1 tie on centrality: the tree b0-b1 may point either way.
    out = infer_lineage(list(FOREST_SIGNALS), FOREST_SCORES, 0.5)
    assert {("a0", "a1"), ("a0", "a2"), ("a1", "a3")} <= _edges(out)
    assert {frozenset(p) for p in _edges(out)} == {frozenset(p) for p in
                                                   [("a0", "a1"), ("a0", "a2"), ("a1", "a3"), ("b0", "b1")]}


def test_merge_child_gets_both_parents():
    # p -> x, p -> y fine-tunes, m = merge(x, y). With d = 1 - s: d(x,m) = d(y,m) = 0.1, d(x,y) = 0.2:
    # m lies on the segment ((0.1 + 0.1) / 0.2 - 1 = 0), halfway (balance 1), closer to each than they are
    # to each other. p is between x and y too, but off the segment ((0.15 + 0.15) / 0.2 - 1 = 0.5 > 0.25).
    scores = [("p", "x", 0.85), ("p", "y", 0.85), ("p", "m", 0.84), ("x", "y", 0.80), ("x", "m", 0.90),
              ("y", "m", 0.90)]
    out = infer_lineage(["p", "x", "y", "m"], scores, 0.5)
    assert _edges(out) == {("p", "x"), ("p", "y"), ("x", "m"), ("y", "m")}
    assert {(e.parent_id, e.child_id) for e in out if e.is_merge_parent} == {("x", "m"), ("y", "m")}
    assert all("merge=+2.00" in e.evidence for e in out if e.is_merge_parent)


def test_unbalanced_or_off_segment_triple_is_not_a_merge():
    # m much closer to x than to y (d 0.02 vs 0.19, balance 0.11 < 0.25): a chain x - m, not a merge.
    scores = [("x", "m", 0.98), ("y", "m", 0.81), ("x", "y", 0.80)]
    out = infer_lineage(["x", "y", "m"], scores, 0.5)
    assert len(out) == 2 and not any(e.is_merge_parent for e in out)


def test_below_threshold_model_is_a_root_and_threshold_is_inclusive():
    # v-w scores exactly the threshold: a candidate. x's best pair (0.49) is below it: x stays a root
    # with no edge at all.
    scores = [("u", "v", 0.9), ("v", "w", 0.5), ("u", "x", 0.49), ("w", "x", 0.1)]
    sig = {"u": _stats("u", n_params=4000), "v": _stats("v", n_params=2000), "w": _stats("w", n_params=1000),
           "x": _stats("x")}
    out = infer_lineage(["u", "v", "w", "x"], scores, 0.5, sig)
    assert _edges(out) == {("u", "v"), ("v", "w")}
    assert not any("x" in (e.parent_id, e.child_id) for e in out)
    assert infer_lineage(["a", "b"], [("a", "b", 0.2)], 0.5) == []
    assert infer_lineage(["solo"], [], 0.5) == []


def test_pair_score_inputs_agree_and_duplicates_keep_the_highest():
    triples = [("a", "b", 0.9), ("b", "a", 0.1), ("b", "c", 0.8), ("c", "zz", 0.99), ("a", "c", None)]
    df = pl.DataFrame({"model_a": [t[0] for t in triples], "model_b": [t[1] for t in triples],
                       "score": [t[2] for t in triples]})
    sig = {"a": _stats("a", n_params=3000), "b": _stats("b", n_params=2000), "c": _stats("c", n_params=1000)}
    # (b, a) 0.1 is the same pair as (a, b) 0.9: the 0.9 stands; "zz" is not a model here; None is skipped
    want = {("a", "b"), ("b", "c")}
    import importlib.util

    given_all = (triples, df, df.to_arrow()) + ((df.to_pandas(),) if importlib.util.find_spec("pandas") else ())
    for given in given_all:
        out = infer_lineage(["a", "b", "c"], given, 0.5, sig)
        assert _edges(out) == want
        assert {e.score for e in out} == {0.9, 0.8}


def test_bad_inputs_raise_lineage_errors():
    with pytest.raises(LineageError, match="missing column"):
        infer_lineage(["a"], pl.DataFrame({"model_a": ["a"], "model_b": ["b"]}), 0.5)
    with pytest.raises(LineageError, match="below the largest possible score"):
        infer_lineage(["a", "b"], [("a", "b", 1.0)], 1.0)
    with pytest.raises(LineageError, match="finite"):
        infer_lineage(["a", "b"], [("a", "b", 0.9)], float("nan"))
    assert issubclass(LineageError, FingerprintLakeError)


def test_cross_family_threshold_by_hand():
    scores = [("a", "b", 0.9), ("a", "c", 0.2), ("b", "c", 0.4), ("c", "d", 0.7)]
    fam = {"a": "F", "b": "F", "c": "G"}  # d has no family: its pair does not count
    assert cross_family_threshold(scores, fam, 0.5) == pytest.approx(0.3)  # midway between 0.2 and 0.4
    assert cross_family_threshold(scores, fam, 1.0) == pytest.approx(0.4)
    with pytest.raises(LineageError, match="two families"):
        cross_family_threshold([("a", "b", 0.9)], fam)
    with pytest.raises(LineageError, match="quantile"):
        cross_family_threshold(scores, fam, 1.5)


def test_quant_bits():
    assert [quant_bits(q) for q in ("F32", "BF16", "F16", "grid-int8", "grid-int4", "Q8_0", "Q4_K", "IQ2_XS",
                                    "I8", "Q6_K", None, "weird")] == [32, 16, 16, 8, 4, 8, 4, 2, 8, 6, None, None]


def test_max_arborescence_by_hand_and_against_networkx():
    # root 0; 1 <-> 2 prefer each other (a cycle, weights 5 and 4); entering it from 0: into 1 costs
    # 2 - 4 (replacing 2 -> 1), into 2 costs 1 - 5: enter at 1, keep 1 -> 2. Total 2 + 5 = 7.
    src, dst, w = np.array([0, 0, 1, 2]), np.array([1, 2, 2, 1]), np.array([2.0, 1.0, 5.0, 4.0])
    chosen = max_arborescence(3, 0, src, dst, w)
    assert {(int(src[k]), int(dst[k])) for k in chosen} == {(0, 1), (1, 2)}
    # the reference: networkx's Edmonds on random multigraphs (ties included) gives the same optimum
    import networkx as nx

    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(2, 12))
        m = int(rng.integers(n, n * n))
        src = np.concatenate([np.zeros(n - 1, int), rng.integers(0, n, m)])
        dst = np.concatenate([np.arange(1, n), rng.integers(0, n, m)])
        w = rng.normal(size=len(src)).round(1 if trial % 2 else 6)
        chosen = max_arborescence(n, 0, src, dst, w)
        assert sorted(dst[chosen].tolist()) == list(range(1, n))  # one parent per node, the root none
        g = nx.MultiDiGraph()
        g.add_weighted_edges_from((int(a), int(b), float(x)) for a, b, x in zip(src, dst, w, strict=True)
                                  if a != b and b != 0)
        ref = nx.maximum_spanning_arborescence(g)
        assert w[chosen].sum() == pytest.approx(sum(d["weight"] for *_, d in ref.edges(data=True)), abs=1e-9)
    with pytest.raises(LineageError, match="cannot be reached"):
        max_arborescence(3, 0, np.array([0]), np.array([1]), np.array([1.0]))


# ---------------------------------------------------------------- signals from checkpoint files
def test_signals_from_a_hand_built_safetensors(tmp_path):
    # w: rows [1, -1, 0, 0] and [2, -2, 0, 0]: 4 zeros of 8 (0.5); 3 distinct values per row of 4 (0.75);
    # mean 0, m2 = (1 + 1 + 4 + 4) / 8 = 1.25, m4 = (1 + 1 + 16 + 16) / 8 = 4.25, kurtosis 4.25 / 1.25^2 = 2.72.
    # The bias (3 values) counts as parameters only.
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"w": torch.tensor([[1.0, -1.0, 0.0, 0.0], [2.0, -2.0, 0.0, 0.0]]), "b": torch.ones(3)},
              str(folder / "model.safetensors"))
    st = weight_stats("m", str(folder))
    assert st.n_params == 11
    assert st.zero_fraction == pytest.approx(0.5)
    assert st.distinct_ratio == pytest.approx(0.75)
    assert st.kurtosis == pytest.approx(2.72)
    assert st.quant_type == "F32" and st.bits == 32
    assert st.source_identity  # the checkpoint's identity, for recomputing when files change


def test_kurtosis_is_weighted_by_matrix_size(tmp_path):
    # m1 (2 x 4) kurtosis 2.72 as above; m2 (1 x 4) = [1, -1, 1, -1]: m2 = 1, m4 = 1, kurtosis 1.
    # Weighted by size (8 and 4): (8 * 2.72 + 4 * 1) / 12 = 2.1466...
    save_file({"m1": torch.tensor([[1.0, -1.0, 0.0, 0.0], [2.0, -2.0, 0.0, 0.0]]),
               "m2": torch.tensor([[1.0, -1.0, 1.0, -1.0]])}, str(tmp_path / "x.safetensors"))
    st = weight_stats("x", str(tmp_path / "x.safetensors"))
    assert st.kurtosis == pytest.approx((8 * 2.72 + 4 * 1.0) / 12)
    assert st.distinct_ratio == pytest.approx((3 + 3 + 2) / 12)  # distinct per row, over all row values


def test_quantization_grid_is_detected(tmp_path):
    grid8 = (torch.arange(64, dtype=torch.float32) - 32) * 0.01  # 64 levels of step 0.01
    grid4 = (torch.arange(64) % 15 - 7).float() * 0.05           # 15 levels
    rng = np.random.default_rng(0)
    plain = torch.from_numpy(rng.standard_normal((3, 64)).astype(np.float32))
    for name, t, want in (("g8", grid8.repeat(3, 1), "grid-int8"), ("g4", grid4.repeat(3, 1), "grid-int4"),
                          ("plain", plain, "F32"), ("bf16", plain.to(torch.bfloat16), "BF16")):
        save_file({"w": t}, str(tmp_path / f"{name}.safetensors"))
        assert weight_stats(name, str(tmp_path / f"{name}.safetensors")).quant_type == want, name
    assert quant_bits("grid-int8") < quant_bits("BF16") < quant_bits("F32")


def test_signals_from_a_hand_built_gguf(tmp_path):
    import gguf
    from gguf.quants import quantize

    # a 4 x 64 matrix with every other value 0, stored as Q8_0 (zeros stay exactly 0), and a 64-value norm
    arr = np.zeros((4, 64), np.float32)
    arr[:, ::2] = np.linspace(-1, 1, 128, dtype=np.float32).reshape(4, 32)
    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("blk.0.ffn_up.weight", quantize(arr, gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    st = weight_stats("g", str(path))
    assert st.n_params == 4 * 64 + 64
    assert st.quant_type == "Q8_0" and st.bits == 8
    assert st.zero_fraction == pytest.approx(0.5)
    assert st.distinct_ratio == pytest.approx(33 / 64)  # 32 distinct non-zeros + 0 per row


def test_unreadable_checkpoints_name_the_model(tmp_path):
    with pytest.raises(LineageError, match="'hub'.*local checkpoint"):
        weight_stats("hub", "hf://org/name")
    with pytest.raises(LineageError, match="'gone'"):
        weight_stats("gone", str(tmp_path / "nowhere"))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(LineageError, match="'pickled'.*no \\*.safetensors"):
        weight_stats("pickled", str(pickled))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(LineageError, match="'bad'.*model.safetensors"):
        weight_stats("bad", str(bad))
    with pytest.raises(LineageError, match="'nogguf'.*not found"):
        weight_stats("nogguf", str(tmp_path / "x.gguf"))


@pytest.mark.slow
def test_signals_of_real_zoo_checkpoints(tiny_zoo):
    """The tiny zoo's int8 round trip lies on a per-row 255-level grid; its pruned copy has ~30 % zeros;
    the distilled student is smaller than its teacher (transformers checkpoints, read without loading)."""
    by = {m["display_name"]: m for m in tiny_zoo["models"]}
    base = weight_stats("b", by["llama-base"]["path"])
    int8 = weight_stats("q", by["llama-int8"]["path"])
    pruned = weight_stats("p", by["llama-pruned"]["path"])
    student = weight_stats("d", by["llama-distilled"]["path"])
    assert base.quant_type == "F32" and int8.quant_type == "grid-int8"
    assert base.zero_fraction < 0.01 and pruned.zero_fraction == pytest.approx(0.3, abs=0.02)
    assert student.n_params < base.n_params == int8.n_params == pruned.n_params
    # the pruned copy's signals point back at its parent
    out = infer_lineage(["b", "p"], pa.table({"model_a": ["b"], "model_b": ["p"], "score": [0.99]}), 0.5,
                        {"b": base, "p": pruned})
    assert _edges(out) == {("b", "p")}


def test_isolated_student_is_attached_to_the_root_of_its_functional_match():
    from fingerprinting.provenance.lineage import InferredEdge, WeightStats, attach_orphans

    # weight tree: A -> A1, A -> A2 ; B alone with child B1 ; S, T, U isolated
    edges = [InferredEdge("A", "A1", 0.99, 0.9), InferredEdge("A", "A2", 0.99, 0.9), InferredEdge("B", "B1", 0.99, 0.9)]
    models = ["A", "A1", "A2", "B", "B1", "S", "T", "U"]
    functional = [("A1", "S", 0.95), ("B", "S", 0.90),    # S: best match A1 -> root A
                  ("B1", "T", 0.97),                       # T: matches B1 but is LARGER than root B
                  ("A2", "U", 0.50),                       # U: below the threshold
                  ("S", "T", 0.99)]                        # isolated-isolated pairs never attach
    sig = {m: WeightStats(m, n_params=1000, zero_fraction=0.0, distinct_ratio=1.0, kurtosis=0.0,
                          quant_type="F32") for m in models}
    sig["S"] = WeightStats("S", n_params=400, zero_fraction=0.0, distinct_ratio=1.0, kurtosis=0.0, quant_type="F32")
    sig["T"] = WeightStats("T", n_params=5000, zero_fraction=0.0, distinct_ratio=1.0, kurtosis=0.0, quant_type="F32")
    new = attach_orphans(models, edges, functional, threshold=0.8, signals=sig)
    assert [(e.parent_id, e.child_id) for e in new] == [("A", "S")]
    assert new[0].score == pytest.approx(0.95) and new[0].evidence.startswith("functional")

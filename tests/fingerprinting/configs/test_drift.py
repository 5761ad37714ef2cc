from __future__ import annotations

import math

import numpy as np
import pytest

from fingerprinting.configs.drift import (
    detect_cycles,
    edge_depths,
    edge_drift,
    feature_ranges,
    trait_mutation_rate,
)
from fingerprinting.configs.phylogeny import (
    adjusted_rand,
    average_linkage,
    mds_2d,
    neighbour_recovery,
    pca_2d,
)

# Hand-made tree: R -> A, R -> B, A -> C, A -> D, B -> E
EDGES = [("R", "A"), ("R", "B"), ("A", "C"), ("A", "D"), ("B", "E")]
CONF = {
    "R": {
        "model_type": "llama",
        "hidden_size": 4096,
        "vocab_size": 32000,
        "uses_quantization": False,
    },
    "A": {
        "model_type": "llama",
        "hidden_size": 4096,
        "vocab_size": 32000,
        "uses_quantization": False,
    },
    "B": {
        "model_type": "llama",
        "hidden_size": 4096,
        "vocab_size": 32002,
        "uses_quantization": True,
    },
    "C": {
        "model_type": "llama",
        "hidden_size": 2048,
        "vocab_size": None,
        "uses_quantization": False,
    },
    "D": {
        "model_type": "mistral",
        "hidden_size": 4096,
        "vocab_size": 32000,
        "uses_quantization": None,
    },
    "E": {
        "model_type": "llama",
        "hidden_size": 4096,
        "vocab_size": 32002,
        "uses_quantization": True,
    },
}
# Ranges over the six: hidden 4096 - 2048 = 2048, vocab 32002 - 32000 = 2.


def test_ranges():
    assert feature_ranges(CONF.values()) == {"hidden_size": 2048.0, "vocab_size": 2.0}


def test_edge_drift_on_tree():
    ranges = feature_ranges(CONF.values())
    got = {(p, c): edge_drift(CONF[p], CONF[c], ranges) for p, c in EDGES}
    # R -> A identical on 4 features
    assert got[("R", "A")] == {
        "gower_standard": 0.0,
        "gower_max": 0.0,
        "changed_fields": [],
        "n_compared": 4,
    }
    # R -> B: vocab 2/2 = 1 and quantization 1 -> 2/4; max variant vocab 2/32002
    rb = got[("R", "B")]
    assert rb["gower_standard"] == pytest.approx(0.5)
    assert rb["gower_max"] == pytest.approx((2 / 32002 + 1) / 4)
    assert rb["changed_fields"] == ["uses_quantization", "vocab_size"]
    # A -> C: hidden 2048/2048 = 1, vocab skipped -> 1/3; max: 2048/4096 -> 0.5/3
    ac = got[("A", "C")]
    assert ac["n_compared"] == 3
    assert ac["gower_standard"] == pytest.approx(1 / 3)
    assert ac["gower_max"] == pytest.approx(0.5 / 3)
    # A -> D: model_type only, quantization skipped -> 1/3
    assert got[("A", "D")]["gower_standard"] == pytest.approx(1 / 3)
    assert got[("A", "D")]["changed_fields"] == ["model_type"]
    # B -> E identical
    assert got[("B", "E")]["gower_standard"] == 0.0


def test_trait_mutation_rate():
    # union {mit, apache}, intersection {} -> (2 - 0) / 2
    assert trait_mutation_rate({"mit"}, {"apache-2.0"}) == 1.0
    # union {en, fr, de} (3), intersection {en} (1) -> 2/3
    assert trait_mutation_rate({"en", "fr"}, {"en", "de"}) == pytest.approx(2 / 3)
    assert trait_mutation_rate({"x"}, {"x"}) == 0.0
    assert trait_mutation_rate(set(), {"x"}) is None
    assert trait_mutation_rate(None, {"x"}) is None


def test_cycles_and_depths():
    assert detect_cycles(EDGES) == []
    assert edge_depths(EDGES) == {"A": 1, "B": 1, "C": 2, "D": 2, "E": 2}
    cyc = EDGES + [("X", "Y"), ("Y", "Z"), ("Z", "X"), ("W", "W"), ("C", "X")]
    assert detect_cycles(cyc) == [["W"], ["X", "Y", "Z"]]
    depths = edge_depths(cyc)  # terminates; X is reached from C
    assert depths["X"] == 3 and depths["Y"] == 4 and depths["Z"] == 5
    only_cycle = [{"parent_id": "p", "child_id": "q"}, {"parent_id": "q", "child_id": "p"}]
    assert edge_depths(only_cycle) == {}
    assert detect_cycles(only_cycle) == [["p", "q"]]


def test_clustering_and_maps():
    # two tight groups {0,1,2} and {3,4}
    D = np.array(
        [
            [0.0, 0.1, 0.1, 0.9, 0.9],
            [0.1, 0.0, 0.1, 0.9, 0.9],
            [0.1, 0.1, 0.0, 0.9, 0.9],
            [0.9, 0.9, 0.9, 0.0, 0.1],
            [0.9, 0.9, 0.9, 0.1, 0.0],
        ]
    )
    labels = average_linkage(D, n_clusters=2)
    assert adjusted_rand([0, 0, 0, 1, 1], labels) == 1.0
    assert len(set(average_linkage(D, threshold=0.5))) == 2
    assert len(set(average_linkage(D, threshold=0.05))) == 5
    with pytest.raises(ValueError):
        average_linkage(D)
    Y = mds_2d(D)
    assert Y.shape == (5, 2) and np.isfinite(Y).all()
    # points on a line: first component carries everything
    P = pca_2d(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    assert P.shape == (3, 2) and abs(P[0, 0] - P[2, 0]) == pytest.approx(2 * math.sqrt(2))


def test_neighbour_recovery():
    ids = ["R", "A", "B", "C", "D", "E"]
    pos = {m: i for i, m in enumerate(ids)}
    # nearest neighbour of each child: A->R (parent), B->E (its child: no), C->D (sibling),
    # D->B (neither), E->B (parent)
    nn = {"R": "A", "A": "R", "B": "E", "C": "D", "D": "B", "E": "B"}
    nn_index = np.array([[pos[nn[m]]] for m in ids])
    fam = {m: "f1" for m in ids}
    got = neighbour_recovery(EDGES, nn_index, ids, fam)
    # 5 edges; hits: A (parent), C (sibling), E (parent) -> 3/5
    assert got["n_edges_scored"] == 5
    assert (got["parent_hits"], got["sibling_hits"]) == (2, 1)
    assert got["recovery"] == pytest.approx(3 / 5)
    assert got["family_share"] == 1.0

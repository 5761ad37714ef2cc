"""compute_similarities at scale: the marts read from aggregates equal the marts read from all pairs."""

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from fingerprinting import pipeline
from fingerprinting.lake import TABLES, Lake
from fingerprinting.scale.tables import SIMILARITY_AGGREGATES, SIMILARITY_NEIGHBORS
from fingerprinting.warehouse import connect, run_dbt

pytestmark = pytest.mark.slow

METRICS = ["cosine", "l1", "js_divergence"]
SIZES = {"Solo": 1, "Alpha": 5, "Beta": 9, "Gamma": 14, "Delta": 20, "Eps": 30}
TYPES = ["Base", "Chat", "Code", "Quantized"]
MARTS = ["+intrafamily_stats", "+interfamily_stats", "+type_pair_stats", "+family_similarity_quartiles",
         "+nearest_neighbors", "stg_similarity_aggregates", "stg_similarity_neighbors"]
BIN = {"cosine": 2.0 / 1000, "l1": 1.0 / 1000, "js_divergence": 1.0 / 1000}  # sketch bin width per metric


def _lake(root) -> tuple[Lake, list[str]]:
    """79 registered models in 6 families (one singleton) + one fingerprinted but unregistered model."""
    rng = np.random.default_rng(7)
    lake = Lake(str(root)).init()
    ids, fams, types = [], [], []
    for f, size in SIZES.items():
        for k in range(size):
            ids.append(f"{f.lower()}-{k:02d}")
            fams.append(f)
            types.append(TYPES[k % len(TYPES)])
    now = datetime.now(UTC)
    lake.merge("models", pa.table({"model_id": ids, "source": ids, "family": fams, "model_type": types,
                                   "display_name": [i.upper() for i in ids], "arch": ["x"] * len(ids),
                                   "registered_at": [now] * len(ids)}))
    lake.merge("model_edges", pa.table({"parent_id": ["beta-00", "beta-00", "alpha-00"],
                                        "child_id": ["beta-01", "beta-05", "gamma-03"],
                                        "relation": ["finetune", "quantized", "distilled"]}))
    centres = {f: np.abs(rng.normal(size=12)) * 2 for f in SIZES}
    vecs = [centres[f] + 0.4 * np.abs(rng.normal(size=12)) for f in fams]
    all_ids = [*ids, "zz-unregistered"]
    vecs.append(np.abs(rng.normal(size=12)))
    rows = [{"model_id": i, "method": "syn", "config_hash": "h1", "config_json": "{}", "vector": v.tolist(),
             "dim": 12, "device": "cpu", "dtype": "float64", "seconds": 0.0, "library_versions": "{}",
             "provenance_json": "{}", "run_id": "t", "created_at": now} for i, v in zip(all_ids, vecs, strict=True)]
    lake.merge("fingerprints", pa.Table.from_pylist(rows, schema=TABLES["fingerprints"].schema))
    return lake, ids


def _marts(settings) -> dict[str, dict]:
    run_dbt(["build", "--select", *MARTS], settings)
    out = {}
    with connect(settings) as con:
        for name, key in [("intrafamily_stats", "family"), ("interfamily_stats", "family_pair"),
                          ("type_pair_stats", "type_pair"), ("family_similarity_quartiles", "grouping"),
                          ("nearest_neighbors", "model_id, rank")]:
            cur = con.execute(f"select * from {name} order by metric, {key}")
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
            ident = [c.strip() for c in key.split(",")]
            extra = ["category"] if name == "family_similarity_quartiles" else []
            out[name] = {(r["metric"], *[r[c] for c in extra + ident]): r for r in rows}
    return out


def _same(a: dict, b: dict, tol: float, approx_cols=(), approx_tol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        for col, va in a[k].items():
            vb = b[k][col]
            if isinstance(va, float):
                t = approx_tol if col in approx_cols else tol
                assert vb == pytest.approx(va, abs=t), (k, col)
            else:
                assert va == vb, (k, col)


def test_scale_marts_equal_full_marts(settings, monkeypatch):
    lake, ids = _lake(settings.lake_root)
    key = {"method": "syn", "config_hash": "h1"}
    full_counts = pipeline.compute_similarities(lake, "syn", "h1", METRICS, scale_threshold=10_000)
    assert full_counts == {m: 80 * 79 // 2 for m in METRICS}
    assert lake.count(SIMILARITY_AGGREGATES.name) == 0
    nb = lake.read(SIMILARITY_NEIGHBORS.name).to_pylist()
    assert len(nb) == 80 * 10 * len(METRICS) and all(r["exact"] for r in nb)
    full = _marts(settings)

    # the neighbours table and the ranking of stored pairs give the same nearest_neighbors
    lake.replace(SIMILARITY_NEIGHBORS.name, SIMILARITY_NEIGHBORS.schema.empty_table(), {**key, "metric": "l1"})
    from_pairs = _marts(settings)["nearest_neighbors"]
    _same({k: v for k, v in full["nearest_neighbors"].items() if k[0] == "l1"},
          {k: v for k, v in from_pairs.items() if k[0] == "l1"}, 1e-12)

    monkeypatch.setenv("FPLAKE_SCALE_THRESHOLD", "50")  # 80 models > 50: stored at scale
    intra = sum(s * (s - 1) // 2 for s in SIZES.values())
    for _ in range(2):  # a rerun replaces, never duplicates
        counts = pipeline.compute_similarities(lake, "syn", "h1", METRICS)
        assert counts == {m: intra for m in METRICS}
        n_fam = len(SIZES) * (len(SIZES) + 1) // 2 - 1  # every family pair but Solo-Solo
        aggs = lake.read(SIMILARITY_AGGREGATES.name).to_pylist()
        assert sum(r["grouping"] == "family" for r in aggs) == n_fam * len(METRICS)
    sims = lake.read("similarities").to_pylist()
    fam = {i: i.split("-")[0] for i in ids}
    assert len(sims) == intra * len(METRICS)
    assert all(fam.get(r["model_a"]) == fam.get(r["model_b"]) is not None for r in sims)
    scale = _marts(settings)

    for name in ("intrafamily_stats", "interfamily_stats", "type_pair_stats"):
        _same(full[name], scale[name], 1e-9)
    q_full, q_scale = full["family_similarity_quartiles"], scale["family_similarity_quartiles"]
    assert q_full.keys() == q_scale.keys()
    intra_q = [k for k in q_full if k[1] == "intrafamily"]
    _same({k: q_full[k] for k in intra_q}, {k: q_scale[k] for k in intra_q}, 1e-9)  # stored pairs: exact
    for metric in METRICS:  # interfamily quartiles from the sketch: within one bin
        sub = {k: v for k, v in q_full.items() if k[0] == metric and k[1] == "interfamily"}
        _same(sub, {k: q_scale[k] for k in sub}, 1e-9,
              approx_cols=("q1", "median", "q3"), approx_tol=BIN[metric])
    _same(full["nearest_neighbors"], scale["nearest_neighbors"], 1e-12)
    assert {r["relation"] for r in scale["nearest_neighbors"].values()} >= {"same_family", "unrelated"}

    # back below the threshold: all pairs again, the experiment's aggregates are gone
    pipeline.compute_similarities(lake, "syn", "h1", ["cosine"], scale_threshold=1000)
    left = lake.read(SIMILARITY_AGGREGATES.name).to_pylist()
    assert left and all(r["metric"] != "cosine" for r in left)


def test_ann_neighbors_in_the_pipeline(settings):
    lake, _ = _lake(settings.lake_root)
    pipeline.compute_similarities(lake, "syn", "h1", ["cosine"], scale_threshold=10, ann_threshold=10_000)
    exact = {(r["model_id"], r["rank"]): r["neighbor_id"] for r in lake.read(SIMILARITY_NEIGHBORS.name).to_pylist()}
    pipeline.compute_similarities(lake, "syn", "h1", ["cosine"], scale_threshold=10, ann_threshold=50)
    rows = lake.read(SIMILARITY_NEIGHBORS.name).to_pylist()
    assert len(rows) == 800 and not any(r["exact"] for r in rows)
    found = {(r["model_id"], r["neighbor_id"]) for r in rows}
    recall = np.mean([(m, n) in found for (m, _), n in exact.items()])
    assert recall >= 0.95

"""Lineage recovery end to end on a small real lake: hand-built checkpoints and similarities ->
``lineage_flow`` (real Prefect) -> lake -> dbt -> the marts ``inferred_edges`` and
``lineage_recovery_quality``, checked against precision / recall counted by hand below.
"""

from pathlib import Path

import pyarrow as pa
import pytest
import torch
import yaml
from safetensors.torch import save_file

from fingerprinting.lake import TABLES, Lake
from fingerprinting.provenance.lineage import LineageError
from fingerprinting.registry import RELATIONS, ModelRecord, register_models
from fingerprinting.settings import Settings
from fingerprinting.warehouse import DBT_DIR, connect, run_dbt
from flows.lineage_flow import lineage_flow

pytestmark = pytest.mark.slow

FAMILY = {"a0": "A", "a1": "A", "a2": "A", "a3": "A", "b0": "B", "b1": "B", "b2": "B", "c0": "C"}
# The models' true forest is a0 -> a1, a0 -> a2 (int8 copy), a1 -> a3 (pruned), b0 -> b1 (smaller student).
# The *recorded* lineage differs on purpose, to exercise every status:
RECORDED = [("a0", "a1", "finetune"),   # inferred as recorded: correct
            ("a3", "a1", "pruned"),     # inferred a1 -> a3: reversed
            ("b0", "b1", "distilled"),  # correct
            ("a2", "b1", "merge"),      # scores 0.10: not inferred either way: missed
            ("a0", "c0", "finetune")]   # c0 has no scores (a Hub-only model): outside the population
# ... and a0 -> a2 is inferred but not recorded: spurious.
SCORES = {("a0", "a1"): 0.90, ("a0", "a2"): 0.98, ("a1", "a3"): 0.88, ("a0", "a3"): 0.84, ("a1", "a2"): 0.89,
          ("a2", "a3"): 0.83, ("b0", "b1"): 0.75,
          # across families (A-B)
          ("a0", "b0"): 0.45, ("a0", "b1"): 0.10, ("a1", "b0"): 0.20, ("a1", "b1"): 0.15, ("a2", "b0"): 0.25,
          ("a2", "b1"): 0.10, ("a3", "b0"): 0.30, ("a3", "b1"): 0.05}
# b2's checkpoint is missing: it is scored (all 0.01, below any threshold), reported, and stays a root
SCORES |= {(m, "b2"): 0.01 for m in ("a0", "a1", "a2", "a3", "b0", "b1")}


def _settings(root: Path) -> Settings:
    return Settings(lake_root=str(root / "lake"), warehouse=str(root / "wh.duckdb"), reports_dir=str(root / "r"),
                    zoo_dir=str(root / "z"), global_registry=str(root / "g"), device="cpu")


def _checkpoints(root: Path) -> dict[str, str]:
    """Weights whose signals are known by construction (no model code: plain tensors)."""
    g = torch.Generator().manual_seed(0)
    w0 = torch.distributions.StudentT(5.0).sample((64, 64)) * 0.02   # heavy tails: kurtosis well above 3
    w1 = w0 + 0.02 * torch.randn(64, 64, generator=g)                  # a fine-tune: nearer the Gaussian
    scale = w0.abs().amax(dim=1, keepdim=True) / 127
    w2 = torch.round(w0 / scale) * scale                              # per-row int8 round trip
    w3 = w1.clone()
    w3[w1.abs() <= w1.abs().flatten().kthvalue(2048).values] = 0      # the smallest half zeroed
    b0 = torch.randn(64, 64, generator=g)
    b1 = torch.randn(48, 64, generator=g)                             # 3/4 of the rows: a smaller student
    out = {}
    for name, w in {"a0": w0, "a1": w1, "a2": w2, "a3": w3, "b0": b0, "b1": b1}.items():
        folder = root / "ckpt" / name
        folder.mkdir(parents=True)
        save_file({"model.layer.weight": w.contiguous(), "model.norm.weight": torch.ones(64)},
                  str(folder / "model.safetensors"))
        out[name] = str(folder)
    out["b2"] = str(root / "ckpt" / "b2-was-deleted")
    out["c0"] = "hf://org/c0"
    return out


@pytest.fixture(scope="module", autouse=True)
def _own_dbt_target(tmp_path_factory):
    """dbt writes target/ and logs/ under the project; keep this module's runs apart from anyone else's."""
    tmp = tmp_path_factory.mktemp("dbt_target")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_TARGET_PATH", str(tmp / "target"))
        mp.setenv("DBT_LOG_PATH", str(tmp / "logs"))
        yield


@pytest.fixture(scope="module")
def forest(tmp_path_factory, prefect_harness):
    root = tmp_path_factory.mktemp("lineage_forest")
    settings = _settings(root)
    lake = Lake(settings.lake_root).init()
    sources = _checkpoints(root)
    parents: dict[str, list] = {}
    for p, c, rel in RECORDED:
        parents.setdefault(c, []).append((p, rel))
    register_models(lake, [ModelRecord(m, sources[m], FAMILY[m], "Base", f"name-{m}", "llama", parents.get(m, []))
                           for m in FAMILY])
    pairs = [tuple(sorted(k)) + (v,) for k, v in SCORES.items()]
    lake.append("similarities", pa.table({
        "model_a": [p[0] for p in pairs], "model_b": [p[1] for p in pairs],
        "method": ["weight_spectrum"] * len(pairs), "metric": ["js_divergence"] * len(pairs),
        "config_hash": ["h1"] * len(pairs), "similarity": [p[2] for p in pairs]}))
    # the same pairs under another config with fewer rows: the flow takes the config with the most pairs
    lake.append("similarities", pa.table({
        "model_a": ["a0"], "model_b": ["a1"], "method": ["weight_spectrum"], "metric": ["js_divergence"],
        "config_hash": ["h0"], "similarity": [0.1]}))
    first = lineage_flow(settings, quantile=0.5, progress=False)
    second = lineage_flow(settings, threshold=0.5, progress=False)
    run_dbt(["build", "--select", "+lineage_recovery_quality", "stg_model_weight_stats"], settings)
    return settings, lake, first, second


def _rows(settings, sql):
    with connect(settings) as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_flow_threshold_signals_and_failures(forest):
    settings, lake, first, second = forest
    # run 1: threshold = median of the cross-family scores: the 8 A-B pairs and the 4 a*-b2 pairs (b2 is in
    # family B), sorted 0.01 0.01 0.01 0.01 0.05 0.10 | 0.10 0.15 0.20 0.25 0.30 0.45: (0.10 + 0.10) / 2
    assert first.threshold == pytest.approx(0.10)
    assert first.source == "weight_spectrum:js_divergence" and first.n_models == 7
    assert sorted(first.signals_computed) == ["a0", "a1", "a2", "a3", "b0", "b1"]
    assert set(first.failures) == {"b2"} and "b2-was-deleted" in first.failures["b2"]
    # run 2 reuses the stored signals (the files did not change) and replaces the edges
    assert second.signals_computed == [] and sorted(second.signals_reused) == ["a0", "a1", "a2", "a3", "b0", "b1"]
    assert second.threshold == 0.5 and second.n_edges == 4 and second.n_merges == 0
    stats = {r["model_id"]: r for r in lake.read("model_weight_stats").to_pylist()}
    assert stats["a2"]["quant_type"] == "grid-int8" and stats["a0"]["quant_type"] == "F32"
    assert stats["a3"]["zero_fraction"] == pytest.approx(0.5) and stats["a1"]["zero_fraction"] == 0
    assert stats["b1"]["n_params"] == 48 * 64 + 64 and stats["b0"]["n_params"] == 64 * 64 + 64
    assert stats["a0"]["kurtosis"] > stats["a1"]["kurtosis"] > 3


def test_lake_edges_are_the_true_forest(forest):
    settings, lake, _, second = forest
    rows = lake.read("inferred_edges").to_pylist()
    assert {(r["parent_id"], r["child_id"]) for r in rows} == {("a0", "a1"), ("a0", "a2"), ("a1", "a3"), ("b0", "b1")}
    assert {r["run_id"] for r in rows} == {second.run_id}  # replaced, not appended
    assert {r["source"] for r in rows} == {"weight_spectrum:js_divergence"} and {r["threshold"] for r in rows} == {0.5}
    assert {(r["parent_id"], r["child_id"]): r["score"] for r in rows}[("a0", "a2")] == 0.98


def test_inferred_edges_mart_statuses(forest):
    settings, *_ = forest
    got = {(r["parent_id"], r["child_id"]): r for r in _rows(settings, "select * from inferred_edges")}
    status = {k: (r["status"], r["relation"], r["is_inferred"]) for k, r in got.items()}
    assert status == {
        ("a0", "a1"): ("correct", "finetune", True),
        ("a1", "a3"): ("reversed", "pruned", True),
        ("a0", "a2"): ("spurious", None, True),
        ("b0", "b1"): ("correct", "distilled", True),
        ("a2", "b1"): ("missed", "merge", False),
        # a0 -> c0 is not here: c0 has no similarities
    }
    assert got[("a0", "a1")]["parent_name"] == "name-a0" and got[("b0", "b1")]["child_family"] == "B"
    assert got[("a2", "b1")]["score"] is None and got[("a0", "a2")]["score"] == 0.98


def test_recovery_quality_counted_by_hand(forest):
    settings, *_ = forest
    got = {r["relation"]: r for r in _rows(settings, "select * from lineage_recovery_quality")}
    # relation: recorded, inferred, spurious, tp directed, tp undirected
    counts = {"finetune": (1, 1, 0, 1, 1), "pruned": (1, 1, 0, 0, 1), "distilled": (1, 1, 0, 1, 1),
              "merge": (1, 0, 0, 0, 0), "all": (4, 4, 1, 2, 3)}
    assert set(got) == set(counts)
    for rel, (rec, inf, spur, tpd, tpu) in counts.items():
        r = got[rel]
        assert (r["n_recorded"], r["n_inferred"], r["n_spurious"], r["tp_directed"], r["tp_undirected"]) == (
            rec, inf, spur, tpd, tpu), rel
        for key, num, den in (("precision_directed", tpd, inf), ("recall_directed", tpd, rec),
                              ("precision_undirected", tpu, inf), ("recall_undirected", tpu, rec)):
            assert r[key] == (None if den == 0 else pytest.approx(num / den)), (rel, key)
    assert got["all"]["precision_directed"] == pytest.approx(0.5) and got["all"]["recall_undirected"] == pytest.approx(0.75)
    assert got["all"]["source"] == "weight_spectrum:js_divergence" and got["all"]["threshold"] == 0.5


def test_verdict_source_is_used_when_present(forest, tmp_path):
    settings, lake, *_ = forest
    if "provenance_scores" not in TABLES or "provenance_model" not in TABLES:
        pytest.skip("the provenance verdict's tables are not declared in this checkout")
    other = _settings(tmp_path)
    vlake = Lake(other.lake_root).init()
    register_models(vlake, [ModelRecord(m, "hf://org/" + m, FAMILY[m], "Base", m) for m in ("a0", "a1", "a2")])
    with pytest.raises(LineageError, match="no provenance_scores"):
        lineage_flow(other, source="verdict", signals=False, progress=False)

    def rows(spec, values):
        return pa.Table.from_pylist([{f.name: v.get(f.name) for f in spec.schema} for v in values], schema=spec.schema)

    vlake.append("provenance_model", rows(TABLES["provenance_model"], [{"fit_id": "f1", "threshold": 0.6}]))
    vlake.append("provenance_scores", rows(TABLES["provenance_scores"], [
        {"model_a": "a0", "model_b": "a1", "score_full": 0.9, "fit_id": "f1"},
        {"model_a": "a0", "model_b": "a2", "score_full": 0.55, "fit_id": "f1"},   # below the verdict's 0.6
        {"model_a": "a1", "model_b": "a2", "score_full": 0.3, "fit_id": "f1"}]))
    out = lineage_flow(other, source="auto", signals=False, progress=False)  # 'auto' finds the verdict
    assert out.source == "verdict" and out.threshold == 0.6 and out.n_models == 3 and out.n_edges == 1
    edge, = vlake.read("inferred_edges").to_pylist()
    assert {edge["parent_id"], edge["child_id"]} == {"a0", "a1"} and edge["source"] == "verdict"


def test_unknown_source_and_metric_are_refused(forest, tmp_path):
    settings, *_ = forest
    with pytest.raises(LineageError, match="unknown lineage source 'votes'"):
        lineage_flow(settings, source="votes", progress=False)
    with pytest.raises(LineageError, match="no similarities for method 'weight_spectrum' and metric 'cosine'"):
        lineage_flow(settings, source="similarity", metric="cosine", progress=False)


def test_accepted_relations_equal_the_registry():
    """The marts' accepted relation values are the registry's relations (plus 'all')."""
    marts = DBT_DIR / "models" / "marts" / "lineage"

    def accepted(path, column):
        spec = yaml.safe_load(path.read_text())["models"][0]
        col = next(c for c in spec["columns"] if c["name"] == column)
        return next(t["accepted_values"]["arguments"]["values"] for t in col["data_tests"]
                    if isinstance(t, dict) and "accepted_values" in t)

    assert set(accepted(marts / "inferred_edges.yml", "relation")) == RELATIONS
    assert set(accepted(marts / "lineage_recovery_quality.yml", "relation")) == RELATIONS | {"all"}

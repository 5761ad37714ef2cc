"""fingerprint_flow end to end on the tiny zoo, under a real Prefect test server."""

import json

import numpy as np
import pytest

import fingerprinting.loading as loading
from fingerprinting.experiment import parse_config
from fingerprinting.lake import Lake
from fingerprinting.metrics import similarity
from fingerprinting.registry import ModelRecord, register_models, zoo_records

pytestmark = pytest.mark.slow


def _config(model_ids, methods=("input_output", "weight_spectrum"), metrics=("l1", "cosine")):
    return parse_config({"models": list(model_ids), "methods": list(methods), "metrics": list(metrics),
                         "method_args": {"input_output": {"n0": 40}} if "input_output" in methods else {}})


@pytest.fixture
def registered(settings, tiny_zoo):
    lake = Lake(settings.lake_root).init()
    register_models(lake, zoo_records(tiny_zoo))
    return lake


def test_flow_writes_lake_and_exports(prefect_harness, settings, registered, tiny_zoo):
    from flows.fingerprint_flow import fingerprint_flow

    ids = [m["model_id"] for m in tiny_zoo["models"][:9]]  # Llama family + two GPT-2 models
    cfg = _config(ids)
    summary = fingerprint_flow(cfg, settings=settings, progress=False)
    assert summary.ok and len(summary.computed) == 2 * len(ids)
    lake = registered
    fps = lake.read("fingerprints").to_pylist()
    assert len(fps) == 2 * len(ids)
    sims = lake.read("similarities").to_pylist()
    n_pairs = len(ids) * (len(ids) - 1) // 2
    assert len(sims) == n_pairs * 2 * 2  # 2 methods x 2 metrics
    assert all(s["model_a"] < s["model_b"] for s in sims)

    # JSON exports in the original tool's shapes agree with the lake rows
    out = json.loads(open(summary.outputs["similarity_matrices"]).read())["similarity_matrices"]
    mat = out["input_output"]["l1"]
    assert mat["models"] == ids
    vec = {f["model_id"]: np.array(f["vector"]) for f in fps if f["method"] == "input_output"}
    lake_l1 = {(s["model_a"], s["model_b"]): s["similarity"] for s in sims
               if s["method"] == "input_output" and s["metric"] == "l1"}
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            if i < j:
                key = (min(a, b), max(a, b))
                assert mat["matrix"][i][j] == pytest.approx(lake_l1[key], abs=1e-9)
                assert lake_l1[key] == pytest.approx(similarity(vec[a], vec[b], "l1"), abs=1e-9)
    fjson = json.loads(open(summary.outputs["fingerprints"]).read())
    assert set(fjson) == set(ids)
    assert fjson[ids[0]]["input_output"]["data"] == pytest.approx(list(vec[ids[0]]))
    assert fjson[ids[0]]["input_output"]["library_versions"]["torch"]

    # --use-existing: no model is loaded again, and rows do not duplicate
    loads = loading.LOAD_COUNT
    again = fingerprint_flow(cfg, use_existing=True, settings=settings, progress=False)
    assert loading.LOAD_COUNT == loads
    assert len(again.reused) == 2 * len(ids) and not again.computed
    assert lake.read("fingerprints").num_rows == 2 * len(ids)
    assert lake.read("similarities").num_rows == n_pairs * 4

    # without it, everything is recomputed (the task cache is refreshed), still no duplicates
    fingerprint_flow(cfg, use_existing=False, settings=settings, progress=False)
    assert loading.LOAD_COUNT == loads + len(ids)
    assert lake.read("fingerprints").num_rows == 2 * len(ids)
    assert lake.read("similarities").num_rows == n_pairs * 4


def test_one_failing_model_does_not_sink_the_batch(prefect_harness, settings, registered, tiny_zoo, tmp_path):
    from flows.fingerprint_flow import fingerprint_flow

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    register_models(registered, [ModelRecord("broken-1", str(broken), "Junk", "Base", "broken")])
    ids = [tiny_zoo["models"][0]["model_id"], "broken-1", tiny_zoo["models"][1]["model_id"]]
    summary = fingerprint_flow(_config(ids, methods=("weight_spectrum",)), settings=settings, progress=False)
    assert list(summary.failures) == ["broken-1"]
    assert "not valid JSON" in summary.failures["broken-1"]
    assert registered.read("fingerprints").num_rows == 2
    assert registered.read("similarities").num_rows == 2  # one pair x two metrics


def _write(tmp_path, obj):
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps(obj))
    return str(p)


def test_cli_invalid_inputs_fail_before_loading(settings, registered, tmp_path, capsys, monkeypatch):
    from flows.run_experiment import main

    monkeypatch.setenv("FPLAKE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("FPLAKE_GLOBAL_REGISTRY", settings.global_registry)
    monkeypatch.delenv("FPLAKE_ADMIN_TOKEN", raising=False)
    loads = loading.LOAD_COUNT
    cases = [
        ({"models": ["1", "999"], "methods": ["weight"], "metrics": ["l1"]}, "unknown model id"),
        ({"models": ["1"], "methods": ["weights"], "metrics": ["l1"]}, "field 'methods'"),
        ({"models": ["1"], "methods": ["weight"], "metrics": ["l1"], "method_args": {"weight": {"size": "5"}}},
         "method_args.weight.size"),
    ]
    for obj, expected in cases:
        assert main(["--config", _write(tmp_path, obj), "--no-progress"]) == 2
        assert expected in capsys.readouterr().err
    good = _write(tmp_path, {"models": ["1"], "methods": ["weight"], "metrics": ["l1"]})
    assert main(["--config", good, "--write-to-registry"]) == 2
    assert "not initialised" in capsys.readouterr().err
    assert loading.LOAD_COUNT == loads


def test_cli_run_and_registry_publish(prefect_harness, settings, registered, tiny_zoo, tmp_path, capsys, monkeypatch):
    from fingerprinting.registry import GlobalRegistry
    from flows.run_experiment import main

    monkeypatch.setenv("FPLAKE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("FPLAKE_GLOBAL_REGISTRY", settings.global_registry)
    reg, token = GlobalRegistry.initialise(settings.global_registry)
    ids = [m["model_id"] for m in tiny_zoo["models"][:3]]
    cfg = _write(tmp_path, {"models": ids, "methods": ["weight"], "method_args": {"weight": {"size": 10}},
                            "metrics": ["l1", "wasserstein"]})
    monkeypatch.setenv("FPLAKE_ADMIN_TOKEN", "not-the-token")
    assert main(["--config", cfg, "--write-to-registry", "--no-progress"]) == 2
    assert "rejected" in capsys.readouterr().err
    monkeypatch.setenv("FPLAKE_ADMIN_TOKEN", token)
    rc = main(["--config", cfg, "--write-to-registry", "--use-existing", "--no-progress",
               "--output-dir", str(tmp_path / "out")])
    assert rc == 0
    assert (tmp_path / "out" / "similarity_matrices.json").is_file()
    assert reg.lake.read("models").num_rows == 3
    assert reg.lake.read("fingerprints").num_rows == 3

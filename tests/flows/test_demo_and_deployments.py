"""The README's main job (`fplake demo`) on the tiny zoo, and the deployment wrappers."""

import json
from pathlib import Path

import pytest

import fingerprinting.loading as loading
from fingerprinting.lake import Lake
from flows.demo_flow import DEMO_METHODS

pytestmark = pytest.mark.slow


def test_demo_command_twice(prefect_harness, settings, monkeypatch, capsys):
    from flows.cli import main

    monkeypatch.setenv("FPLAKE_ZOO_DIR", settings.zoo_dir)
    args = ["--lake-root", settings.lake_root, "--warehouse", settings.warehouse, "--reports-dir",
            settings.reports_dir, "--device", "cpu", "demo", "--profile", "tiny", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "INTRAFAMILY SIMILARITY (sorted by mean similarity):" in out
    assert "related (same family) vs unrelated pairs" in out
    lake = Lake(settings.lake_root)
    counts = {t: lake.read(t).num_rows for t in ("models", "model_edges", "fingerprints", "similarities")}
    n = 31
    assert counts["models"] == n + 1983 + 1  # the zoo + the Hub lineage sample + the planted model
    n_methods = len(DEMO_METHODS)  # input_output, weight, weight_spectrum, hidden_cka, next_token
    assert n_methods == 5
    assert counts["fingerprints"] == n_methods * n
    assert counts["similarities"] == n_methods * 7 * n * (n - 1) // 2  # 5 methods x 7 metrics
    dashboards = list(Path(settings.reports_dir).glob("input_output_l1_*/input_output_l1_dashboard.html"))
    assert len(dashboards) == 1
    assert len(list(Path(settings.reports_dir).glob("weight_spectrum_l1_*/*_dashboard.html"))) == 1
    configs = {r["model_id"] for r in lake.read("model_configs", columns=["model_id"]).to_pylist()}
    assert {m for m in (str(i) for i in range(1, n + 1))} <= configs and "catalogue/llama" in configs
    assert (Path(settings.reports_dir) / "configs" / "config_dashboard.html").is_file()
    assert (Path(settings.reports_dir) / "memorization" / "memorization_dashboard.html").is_file()
    assert lake.count("memorization_scores") > 0 and lake.count("memorization_model_results") > 0
    # provenance: the verdict scored every fingerprinted pair, lineage inferred, dashboard rendered
    assert lake.count("provenance_scores") == n * (n - 1) // 2 and lake.count("provenance_model") == 1
    assert lake.count("inferred_edges") > 0
    assert (Path(settings.reports_dir) / "provenance" / "provenance_dashboard.html").is_file()

    loads = loading.LOAD_COUNT
    assert main(args) == 0  # rerun: reuses everything, adds nothing
    assert loading.LOAD_COUNT == loads
    assert {t: lake.read(t).num_rows for t in counts} == counts
    out = capsys.readouterr().out
    assert f"computed 0, reused {n_methods * n}" in out and "planted-tiny on planted-tiny" in out


def test_experiment_deployment_flow(prefect_harness, settings, tiny_zoo, monkeypatch, tmp_path):
    from fingerprinting.registry import register_models, zoo_records
    from flows.demo_flow import demo_flow
    from flows.deployments import run_experiment_flow

    monkeypatch.setenv("FPLAKE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("FPLAKE_REPORTS_DIR", settings.reports_dir)
    register_models(Lake(settings.lake_root).init(), zoo_records(tiny_zoo))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"models": ["1", "2"], "methods": ["weight_spectrum"], "metrics": ["cosine"]}))
    res = run_experiment_flow(str(cfg))
    assert res["computed"] == 2 and not res["failures"]
    assert Lake(settings.lake_root).read("similarities").num_rows == 1
    dep = demo_flow.to_deployment(name="nightly", cron="0 2 * * *")
    assert dep.schedules[0].schedule.cron == "0 2 * * *"

"""The README's main job (`fplake demo`) on the tiny zoo, and the deployment wrappers."""

import json
from pathlib import Path

import pytest

import fingerprinting.loading as loading
from fingerprinting.lake import Lake

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
    assert counts["models"] == n and counts["fingerprints"] == 3 * n
    assert counts["similarities"] == 3 * 7 * n * (n - 1) // 2  # 3 methods x 7 metrics
    dashboards = list(Path(settings.reports_dir).glob("input_output_l1_*/input_output_l1_dashboard.html"))
    assert len(dashboards) == 1
    assert len(list(Path(settings.reports_dir).glob("weight_spectrum_l1_*/*_dashboard.html"))) == 1

    loads = loading.LOAD_COUNT
    assert main(args) == 0  # rerun: reuses everything, adds nothing
    assert loading.LOAD_COUNT == loads
    assert {t: lake.read(t).num_rows for t in counts} == counts
    assert "computed 0, reused 93" in capsys.readouterr().out


def test_experiment_deployment_flow(prefect_harness, settings, tiny_zoo, monkeypatch, tmp_path):
    from fingerprinting.registry import register_models, zoo_records
    from flows.deployments import demo_refresh, run_experiment_flow

    monkeypatch.setenv("FPLAKE_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("FPLAKE_REPORTS_DIR", settings.reports_dir)
    register_models(Lake(settings.lake_root).init(), zoo_records(tiny_zoo))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"models": ["1", "2"], "methods": ["weight_spectrum"], "metrics": ["cosine"]}))
    res = run_experiment_flow(str(cfg))
    assert res["computed"] == 2 and not res["failures"]
    assert Lake(settings.lake_root).read("similarities").num_rows == 1
    dep = demo_refresh.to_deployment(name="nightly", cron="0 2 * * *")
    assert dep.schedules[0].schedule.cron == "0 2 * * *"

"""The fingerprint dashboard of a 100,000-model experiment stored at scale, in headless Chromium."""

import json
import os
import shutil
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from fingerprinting.lake import Lake
from fingerprinting.scale import tables as st
from fingerprinting.scale.aggregates import GroupPairAggregates
from fingerprinting.scale.neighbors import Neighbors
from tests.browser import needs_chromium, open_page

pytestmark = pytest.mark.slow

N_FAM, PER_FAM, K = 500, 200, 5
N = N_FAM * PER_FAM
TYPES = ["Base", "Chat", "Code", "Merge", "Quantized"]
KEY = {"method": "syn", "metric": "cosine", "config_hash": "big"}


def _synthetic_lake(root: str) -> Lake:
    """100,000 registered models, their family-pair aggregates, 5 neighbours each and the intrafamily
    pairs of the first 20 families, written straight into the lake (what compute_similarities writes
    at scale, without spending minutes on the kernel)."""
    rng = np.random.default_rng(0)
    lake = Lake(root).init()
    fam_names = [f"fam{f:03d}" for f in range(N_FAM)]
    fam = np.repeat(np.arange(N_FAM), PER_FAM)
    ids = np.array([f"m{i:06d}" for i in range(N)], dtype=object)
    lake.append("models", pa.table({
        "model_id": ids.tolist(), "source": ids.tolist(), "family": [fam_names[f] for f in fam],
        "model_type": [TYPES[i % 5] for i in range(N)], "display_name": [f"model {i}" for i in range(N)],
        "arch": ["llama"] * N, "registered_at": [datetime.now(UTC)] * N}))
    # family pairs a <= b: mean similarity falls with the distance between family positions
    a, b = np.triu_indices(N_FAM)
    pos = rng.random(N_FAM)
    mean = np.where(a == b, 0.95, 0.8 - 0.5 * np.abs(pos[a] - pos[b]))
    n = np.where(a == b, PER_FAM * (PER_FAM - 1) // 2, PER_FAM * PER_FAM)
    bins = np.floor((mean + 1) / 0.002).astype(np.int32)
    agg = GroupPairAggregates(  # sketch: three bins around the mean holding 1/4, 1/2, 1/4 of the pairs
        a, b, n, mean, 1e-4 * n, mean - 0.02, mean + 0.02, np.stack([mean - 0.01, mean, mean + 0.01], 1),
        np.arange(0, 3 * len(n) + 1, 3), np.stack([bins - 1, bins, bins + 1], 1).ravel().astype(np.int32),
        np.stack([n // 4, n - 2 * (n // 4), n // 4], 1).ravel(), -1.0, 1.0, 1000)
    common = {**KEY, "population_size": N, "run_id": "test"}
    types = GroupPairAggregates(np.array([0, 0, 1]), np.array([1, 2, 2]), np.array([10, 20, 30]),
                                np.array([0.9, 0.8, 0.85]), np.array([0.01, 0.02, 0.03]), np.array([0.7, 0.6, 0.65]),
                                np.array([0.99, 0.95, 0.97]), np.full((3, 3), np.nan))
    rows = pa.concat_tables([st.aggregates_table(agg, fam_names, grouping="family", **common),
                             st.aggregates_table(types, TYPES[:3], grouping="type",
                                                 n_families=np.array([500, 400, 300]), **common)])
    # neighbours: the next K models of the same family
    base = fam * PER_FAM
    idx = base[:, None] + (np.arange(N)[:, None] - base[:, None] + np.arange(1, K + 1)) % PER_FAM
    sim = np.sort(rng.uniform(0.9, 1.0, (N, K)), axis=1)[:, ::-1]
    nb = st.neighbors_table(Neighbors(idx, sim, exact=True), ids, **KEY, run_id="test")
    st.write_experiment(lake, KEY, rows, nb)
    ii, jj = np.triu_indices(PER_FAM, 1)
    offs = np.arange(20)[:, None] * PER_FAM
    pi, pj = (ii + offs).ravel(), (jj + offs).ravel()
    lake.replace("similarities", st.pairs_table(pi, pj, rng.uniform(0.9, 1.0, len(pi)), ids, **KEY), KEY)
    return lake


@needs_chromium
def test_dashboard_at_100k_models_renders_from_aggregates(tmp_path, settings):
    from fingerprinting import reports
    from fingerprinting.warehouse import connect, run_dbt

    _synthetic_lake(settings.lake_root)
    run_dbt(["build", "--select", "+intrafamily_stats", "+interfamily_stats", "+type_pair_stats",
             "+family_similarity_quartiles", "+nearest_neighbors", "+provenance_quality"], settings)
    with connect(settings) as con:
        data = reports.load_experiment(con, "syn", "cosine", "big")
    assert data.scale is not None and len(data.models) == N
    assert reports.n_pairs(data) == N * (N - 1) // 2
    assert len(data.interfamily) == N_FAM * (N_FAM - 1) // 2 and len(data.intrafamily) == N_FAM
    assert len(data.pairs["similarity"]) == reports.fingerprints.SCALE_PAIR_LINES
    paths = reports.render_all(data, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "syn_cosine_report.json").read_text())
    assert report["at_scale"]["population_size"] == N and report["n_pairs"] == N * (N - 1) // 2
    summary = paths["summary_text"]
    assert "stored at scale" in summary and "more rows" in summary
    dash = tmp_path / "out" / "syn_cosine_dashboard.html"
    assert dash.stat().st_size < 30_000_000
    with open_page(dash.as_uri(), tmp_path / "profile") as page:
        assert page.wait_for_plots(4, timeout_s=90) >= 4, "plots did not render"
        # family-block heatmap: 500 x 500 means from the aggregates
        assert page.eval("document.getElementById('fig-heatmap').data[0].x.length") == N_FAM
        assert page.eval("document.querySelectorAll('#fig-heatmap .heatmaplayer image').length") >= 1
        assert page.eval("document.getElementById('t-inter').tBodies[0].rows.length") == 1000
        assert page.eval("document.getElementById('t-models').tBodies[0].rows.length") == 1000
        assert "Stored at scale" in page.eval("document.querySelector('header').textContent")
        boxes = page.eval("document.getElementById('fig-quartiles').data.map(t => t.q1.length)")
        assert boxes == [20, 300]  # intrafamily: the 20 families with stored pairs; interfamily: capped
        page.screenshot(tmp_path / "dashboard.png")
        page.drain()
        assert page.errors() == []
    keep = os.environ.get("FPLAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "dashboard.png", os.path.join(keep, "dashboard_100k.png"))

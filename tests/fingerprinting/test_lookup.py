"""fplake lookup: fingerprint an unregistered suspect and rank registered relatives."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.lake import Lake
from fingerprinting.lookup import ModelLookupError, lookup_model, score_against, stored_vectors
from fingerprinting.methods import make_method
from fingerprinting.metrics import METRICS, similarity
from fingerprinting.pipeline import fingerprint_model, fingerprint_table, write_fingerprints
from fingerprinting.registry import ModelRecord, register_models, zoo_records
from tests.conftest import STORIES

ARGS = {"weight": {"size": 50}, "weight_spectrum": {"k": 32, "profile_points": 16}}
COPY_ID = "stories-copy"


def _methods():
    return [make_method(n, a) for n, a in ARGS.items()]


@pytest.fixture(scope="module")
def lake_data(tmp_path_factory, tiny_zoo):
    root = tmp_path_factory.mktemp("lookup") / "lake"
    lake = Lake(str(root)).init()
    records = zoo_records(tiny_zoo)[:3]
    copy = ModelRecord(COPY_ID, str(STORIES), "llama", "base", "Stories copy", "LlamaForCausalLM")
    for r in records:
        r.parents = []
    register_models(lake, records + [copy])
    stored = {}
    for r in records + [copy]:
        fps = fingerprint_model(r, _methods(), device="cpu")
        write_fingerprints(lake, fingerprint_table(fps, "test"))
        stored[r.model_id] = {fp.method: np.real(fp.vector) for fp in fps}
    # the suspect's own vectors, computed independently of the lookup code
    suspect = {fp.method: np.real(fp.vector) for fp in fingerprint_model(
        ModelRecord("suspect", str(STORIES), "", "", "suspect"), _methods(), device="cpu")}
    return root, stored, suspect


def _versions(lake):
    return {t: lake.version(t) for t in ("models", "fingerprints", "model_edges")}


def test_lookup_ranks_own_copy_first_and_writes_nothing(lake_data):
    root, stored, suspect = lake_data
    lake = Lake(str(root))
    before = _versions(lake)
    res = lookup_model(lake, str(STORIES), metric="cosine", limit=None)
    assert _versions(lake) == before
    assert not res["registered"] and res["fingerprints_written"] == 0
    assert {m["method"] for m in res["methods"] if m["used"]} == set(ARGS)
    top = res["candidates"][0]
    assert top["model_id"] == COPY_ID and top["rank"] == 1
    for v in top["similarities"].values():
        assert v == pytest.approx(1.0, abs=1e-9)
    assert top["combined"] == pytest.approx(1.0, abs=1e-9)
    assert res["n_candidates"] == len(stored) == len(res["candidates"])
    for c in res["candidates"]:
        expect = {m: similarity(suspect[m], stored[c["model_id"]][m], "cosine") for m in ARGS}
        for m in ARGS:
            assert c["similarities"][m] == pytest.approx(expect[m], abs=1e-9)
        # combined: mean of the similarities rescaled by cosine's bounds [-1, 1]
        assert c["combined"] == pytest.approx(np.mean([(expect[m] + 1) / 2 for m in ARGS]), abs=1e-9)
    combined = [c["combined"] for c in res["candidates"]]
    assert combined == sorted(combined, reverse=True)
    assert res["timings"]["fingerprint_s"] > 0 and res["timings"]["rank_s"] >= 0


@pytest.mark.parametrize("metric", ["l1", "euclidean", "js_divergence", "wasserstein"])
def test_score_against_matches_pair_definition(lake_data, metric):
    if metric not in METRICS:
        pytest.skip(f"no metric {metric}")
    root, stored, suspect = lake_data
    ids, X = stored_vectors(Lake(str(root)), "weight_spectrum",
                            make_method("weight_spectrum", ARGS["weight_spectrum"]).config_hash)
    assert ids == sorted(stored)
    got = score_against(suspect["weight_spectrum"], X, metric)
    want = [similarity(suspect["weight_spectrum"], stored[i]["weight_spectrum"], metric) for i in ids]
    np.testing.assert_allclose(got, want, atol=1e-7)


def test_register_writes(lake_data, tmp_path):
    root, _, _ = lake_data
    dst = tmp_path / "lake"
    shutil.copytree(root, dst)
    lake = Lake(str(dst))
    before = _versions(lake)
    res = lookup_model(lake, str(STORIES), methods=["weight"], register=True, family="llama", model_type="base",
                       model_id="suspect-new")
    assert res["registered"] and res["fingerprints_written"] == 1
    assert lake.version("models") > before["models"] and lake.version("fingerprints") > before["fingerprints"]
    models = {r["model_id"] for r in lake.read("models").to_pylist()}
    assert "suspect-new" in models
    fps = lake.read("fingerprints", filters={"model_id": "suspect-new"}).to_pylist()
    assert [f["method"] for f in fps] == ["weight"]
    # a second lookup under the same id refuses to register again
    with pytest.raises(FingerprintLakeError, match="already registered"):
        lookup_model(lake, str(STORIES), register=True, family="llama", model_type="base", model_id="suspect-new")


def test_errors(lake_data, tmp_path):
    root, _, _ = lake_data
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FingerprintLakeError) as exc:
        lookup_model(Lake(str(root)), str(empty))
    assert "\n" not in str(exc.value) and "config.json" in str(exc.value)
    fresh = Lake(str(tmp_path / "fresh")).init()
    with pytest.raises(ModelLookupError, match="no fingerprints stored yet"):
        lookup_model(fresh, str(STORIES))


def test_cli_json_and_html(lake_data, tmp_path, capsys):
    import argparse

    from flows.lookup_cli import add_lookup_parser, cmd_lookup

    root, _, _ = lake_data
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    add_lookup_parser(sub, argparse.ArgumentParser(add_help=False))
    out = tmp_path / "lookup.html"
    args = p.parse_args(["lookup", str(STORIES), "--limit", "2", "--html", str(out), "--format", "json"])
    args.lake_root, args.warehouse, args.reports_dir, args.device = str(root), None, None, "cpu"
    assert cmd_lookup(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["candidates"]) == 2 and res["candidates"][0]["model_id"] == COPY_ID
    page = out.read_text()
    assert COPY_ID in page and "<table" in page and "<script src=" not in page  # offline: plotly inlined


def test_unsupported_architecture(lake_data, tmp_path):
    from safetensors.numpy import save_file

    root, _, _ = lake_data
    d = tmp_path / "alien"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "no_such_arch_xyz", "architectures": ["AlienLM"]}))
    save_file({"w": np.ones((4, 4), dtype=np.float32)}, str(d / "model.safetensors"))
    lake = Lake(str(root))
    before = _versions(lake)
    with pytest.raises(ModelLookupError, match="AlienLM") as exc:
        lookup_model(lake, str(d), methods=["weight"])
    assert "\n" not in str(exc.value)
    assert _versions(lake) == before


def test_config_similarity_from_model_configs(lake_data, tmp_path):
    from datetime import UTC, datetime

    import pyarrow as pa

    from fingerprinting.configs.tables import MODEL_CONFIGS

    root, stored, _ = lake_data
    dst = tmp_path / "lake"
    shutil.copytree(root, dst)
    lake = Lake(str(dst))
    other = next(m for m in sorted(stored) if m != COPY_ID)
    rows = []
    for mid, mtype, hidden in ((COPY_ID, "llama", 64), (other, "gpt2", 640)):
        row = {f.name: None for f in MODEL_CONFIGS.schema}
        row.update(model_id=mid, source="/x", config_hash=mid, raw_json="{}", model_type=mtype,
                   hidden_size=hidden, num_hidden_layers=5, n_features=3, ingested_at=datetime.now(UTC))
        rows.append(row)
    lake.merge("model_configs", pa.Table.from_pylist(rows, schema=MODEL_CONFIGS.schema))
    res = lookup_model(lake, str(STORIES), methods=["weight"], limit=None)
    cfg = {c["model_id"]: c["config_similarity"] for c in res["candidates"]}
    # suspect: llama, hidden 64, 5 layers. Copy matches all three compared features -> distance 0.
    assert cfg[COPY_ID] == pytest.approx(1.0)
    # other: model_type differs (1), hidden differs by the full range (1), layers equal (0):
    # the compared features' weighted mean distance is > 0, so similarity < 1
    assert cfg[other] is not None and cfg[other] < 1.0
    assert all(v is None for k, v in cfg.items() if k not in (COPY_ID, other))

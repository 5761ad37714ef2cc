"""Registry: resolution, lineage edges and the guarded global registry."""

import pytest

from fingerprinting.lake import Lake
from fingerprinting.registry import (
    GlobalRegistry,
    ModelRecord,
    RegistryPermissionError,
    UnknownModelError,
    register_models,
    resolve_models,
)


def _records():
    return [ModelRecord("1", "/m/a", "Fam", "Base", "fam-base"),
            ModelRecord("2", "/m/b", "Fam", "Chat", "fam-chat", parents=[("1", "finetune")])]


def test_register_and_resolve(tmp_path):
    lake = Lake(str(tmp_path)).init()
    register_models(lake, _records())
    register_models(lake, _records())  # idempotent
    assert lake.read("models").num_rows == 2
    assert lake.read("model_edges").to_pylist() == [{"parent_id": "1", "child_id": "2", "relation": "finetune"}]
    assert [r.model_id for r in resolve_models(lake, ["2", "fam-base"])] == ["2", "1"]
    with pytest.raises(UnknownModelError, match="'3'"):
        resolve_models(lake, ["1", "3"])


def test_unknown_relation(tmp_path):
    lake = Lake(str(tmp_path)).init()
    with pytest.raises(ValueError, match="relation"):
        register_models(lake, [ModelRecord("9", "/x", "F", "T", "n", parents=[("1", "cloned")])])


def test_global_registry_write_needs_admin_token(tmp_path, monkeypatch):
    monkeypatch.delenv("FPLAKE_ADMIN_TOKEN", raising=False)
    loc = str(tmp_path / "global")
    with pytest.raises(RegistryPermissionError, match="not initialised"):
        GlobalRegistry(loc).publish("anything", _records())
    reg, token = GlobalRegistry.initialise(loc)
    with pytest.raises(RegistryPermissionError, match="needs the admin token"):
        reg.publish(None, _records())
    with pytest.raises(RegistryPermissionError, match="rejected"):
        reg.publish("wrong-token", _records())
    assert reg.lake.read("models").num_rows == 0  # nothing written by refused calls
    assert reg.publish(token, _records()) == 2
    monkeypatch.setenv("FPLAKE_ADMIN_TOKEN", token)
    reg.check_write(None)
    with pytest.raises(RegistryPermissionError, match="already initialised"):
        GlobalRegistry.initialise(loc)
    assert token not in (tmp_path / "global" / "registry_config.json").read_text()


# ------------------------------------------------------------------ registry sync (global -> local)
def _fingerprints(ids):
    import datetime as _dt

    import pyarrow as pa

    n = len(ids)
    return pa.table({
        "model_id": ids, "method": ["weight_spectrum"] * n, "config_hash": ["h1"] * n,
        "config_json": ["{}"] * n, "vector": [[1.0, float(i), float("nan")] for i in range(n)],
        "dim": [3] * n, "device": ["cpu"] * n, "dtype": ["float32"] * n, "seconds": [0.5] * n,
        "library_versions": ["{}"] * n, "provenance_json": ["{}"] * n, "run_id": ["r1"] * n,
        "created_at": [_dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)] * n,
    })


def test_sync_from_global_registry_is_idempotent_and_reports_changes(tmp_path, monkeypatch):
    from fingerprinting.registry import sync_registry

    monkeypatch.delenv("FPLAKE_ADMIN_TOKEN", raising=False)
    loc = str(tmp_path / "global")
    reg, token = GlobalRegistry.initialise(loc)
    assert reg.publish(token, _records(), fingerprints=_fingerprints(["1", "2"])) == 2
    local = Lake(str(tmp_path / "local")).init()
    register_models(local, [ModelRecord("7", "/m/z", "Other", "Base", "other-base")])  # a local-only model stays

    first = sync_registry(loc, local)
    assert first == {"models": {"new": 2, "updated": 0, "unchanged": 0},
                     "model_edges": {"new": 1, "updated": 0, "unchanged": 0}}
    versions = {t: local.version(t) for t in ("models", "model_edges")}
    second = reg.sync_into(local, fingerprints=False)
    assert second == {"models": {"new": 0, "updated": 0, "unchanged": 2},
                      "model_edges": {"new": 0, "updated": 0, "unchanged": 1}}
    assert {t: local.version(t) for t in versions} == versions  # nothing written on a no-op sync
    assert sorted(local.read("models").column("model_id").to_pylist()) == ["1", "2", "7"]
    assert local.read("model_edges").num_rows == 1
    assert local.read("fingerprints").num_rows == 0  # only with fingerprints=True

    # the admin renames a model (republished); a sync reports exactly that one update
    changed = _records()
    changed[0].display_name = "fam-base-v2"
    reg.publish(token, changed)
    third = sync_registry(loc, local)
    assert third["models"] == {"new": 0, "updated": 1, "unchanged": 1}
    assert third["model_edges"] == {"new": 0, "updated": 0, "unchanged": 1}
    names = {r["model_id"]: r["display_name"] for r in local.read("models").to_pylist()}
    assert names == {"1": "fam-base-v2", "2": "fam-chat", "7": "other-base"}

    # fingerprints on request; again idempotent (NaN inside vectors counts as unchanged)
    fp = sync_registry(loc, local, fingerprints=True)
    assert fp["fingerprints"] == {"new": 2, "updated": 0, "unchanged": 0}
    assert fp["models"] == {"new": 0, "updated": 0, "unchanged": 2}
    assert sync_registry(loc, local, fingerprints=True)["fingerprints"] == {"new": 0, "updated": 0, "unchanged": 2}
    got = local.read("fingerprints")
    assert got.num_rows == 2 and sorted(got.column("model_id").to_pylist()) == ["1", "2"]


def test_sync_from_missing_global_registry_is_a_clear_error(tmp_path):
    from fingerprinting.errors import FingerprintLakeError
    from fingerprinting.registry import sync_registry

    local = Lake(str(tmp_path / "local")).init()
    with pytest.raises(FingerprintLakeError, match="no global registry at .*init-global") as exc:
        sync_registry(str(tmp_path / "nowhere"), local)
    assert "\n" not in str(exc.value)
    assert local.read("models").num_rows == 0
    (tmp_path / "empty").mkdir()  # a folder without registry_config.json is not a registry either
    with pytest.raises(FingerprintLakeError, match="not initialised"):
        sync_registry(str(tmp_path / "empty"), local)


def test_registry_sync_command(tmp_path, monkeypatch, capsys):
    import argparse

    from flows.registry_cli import add_sync_parser, cmd_sync

    for key in ("LAKE_ROOT", "WAREHOUSE", "REPORTS_DIR", "ZOO_DIR", "GLOBAL_REGISTRY", "DEVICE"):
        monkeypatch.setenv(f"FPLAKE_{key}", str(tmp_path / key.lower()))  # restored after the test
    loc = str(tmp_path / "global")
    reg, token = GlobalRegistry.initialise(loc)
    reg.publish(token, _records(), fingerprints=_fingerprints(["1"]))
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lake-root", dest="lake_root", default=argparse.SUPPRESS)
    parser.set_defaults(lake_root=None, debug=False)
    add_sync_parser(parser.add_subparsers(dest="reg_cmd", required=True), common)
    args = parser.parse_args(["sync", "--location", loc, "--fingerprints", "--lake-root", str(tmp_path / "lk")])
    assert cmd_sync(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "models: 2 new, 0 updated, 0 unchanged", "model_edges: 1 new, 0 updated, 0 unchanged",
        "fingerprints: 1 new, 0 updated, 0 unchanged"]
    assert Lake(str(tmp_path / "lk")).read("fingerprints").num_rows == 1
    args = parser.parse_args(["sync", "--location", str(tmp_path / "missing"), "--lake-root", str(tmp_path / "lk")])
    assert cmd_sync(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fplake: error: no global registry") and "\n" not in err


def test_siblings_are_ordered_deduplicated_and_not_lineage(tmp_path):
    from fingerprinting.registry import register_siblings

    lake = Lake(str(tmp_path / "lake")).init()
    assert register_siblings(lake, [("qwen-1.5b", "qwen-0.5b"), ("qwen-0.5b", "qwen-1.5b"), ("x", "x")]) == 1
    register_siblings(lake, [("qwen-1.5b", "qwen-0.5b")], note="same recipe")  # rerun: no duplicate
    rows = lake.read("model_siblings").to_pylist()
    assert [(r["model_a"], r["model_b"], r["note"]) for r in rows] == [("qwen-0.5b", "qwen-1.5b", "same recipe")]
    assert lake.count("model_edges") == 0

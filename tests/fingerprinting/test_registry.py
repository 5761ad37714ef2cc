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

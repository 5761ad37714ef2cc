"""Lake writes are atomic, idempotent and schema-checked."""

import os

import pyarrow as pa
import pytest

from fingerprinting.lake import TABLES, Lake, LakeSchemaError, safe_key


def edges(n):
    return pa.table({"parent_id": [f"p{i}" for i in range(n)], "child_id": [f"c{i}" for i in range(n)],
                     "relation": ["finetune"] * n})


def test_init_makes_empty_readable_tables(tmp_path):
    lake = Lake(str(tmp_path)).init()
    for name in TABLES:
        assert lake.read(name).num_rows == 0


def test_idempotent_replace(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.write_file(edges(3), "model_edges", "x.parquet")
    lake.write_file(edges(3), "model_edges", "x.parquet")
    assert lake.read("model_edges").num_rows == 3


def test_upsert_by_key(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.upsert_small("model_edges", edges(3))
    lake.upsert_small("model_edges", edges(5))
    assert lake.read("model_edges").num_rows == 5


def test_missing_column_and_bad_type(tmp_path):
    lake = Lake(str(tmp_path)).init()
    with pytest.raises(LakeSchemaError, match="missing column"):
        lake.write_file(pa.table({"parent_id": ["a"]}), "model_edges", "bad.parquet")
    bad = pa.table({"model_a": ["a"], "model_b": ["b"], "method": ["m"], "metric": ["l1"],
                    "config_hash": ["h"], "similarity": ["not a number"]})
    with pytest.raises(LakeSchemaError, match="similarity"):
        lake.write_file(bad, "similarities", "bad.parquet")
    assert lake.read("similarities").num_rows == 0


def test_interrupted_write_leaves_lake_readable(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path)).init()
    lake.write_file(edges(2), "model_edges", "x.parquet")

    def crash(src, dst):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        lake.write_file(edges(7), "model_edges", "x.parquet")
    monkeypatch.undo()
    # the old part is intact; the half-written temp file is invisible to readers
    assert lake.read("model_edges").num_rows == 2
    leftovers = [p for p in (tmp_path / "model_edges").iterdir() if p.name.endswith(".tmp")]
    assert leftovers and not any(p.suffix == ".parquet" for p in leftovers)


def test_garbage_part_is_a_clear_error(tmp_path):
    lake = Lake(str(tmp_path)).init()
    (tmp_path / "model_edges" / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(LakeSchemaError, match="unreadable part"):
        lake.read("model_edges")


def test_safe_key_is_unique_and_safe():
    a, b = safe_key("org/model"), safe_key("org_model")
    assert a != b and "/" not in a


def test_read_under_a_folder(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.write_file(edges(2), "model_edges", "a", "x.parquet")
    lake.write_file(edges(3), "model_edges", "b", "x.parquet")
    assert lake.read("model_edges", under=("a",)).num_rows == 2
    assert lake.read("model_edges").num_rows == 5

"""The Delta lake: ACID appends / merges / replaces, schema checks, time travel, compaction, migration."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fingerprinting.lake import TABLES, Lake, LakeError, LakeSchemaError, where_clause


def edges(n, relation="finetune", start=0):
    return pa.table({"parent_id": [f"p{i}" for i in range(start, start + n)],
                     "child_id": [f"c{i}" for i in range(start, start + n)], "relation": [relation] * n})


def sims(pairs, method="m", metric="l1", h="h"):
    return pa.table({"model_a": [a for a, _, _ in pairs], "model_b": [b for _, b, _ in pairs],
                     "method": [method] * len(pairs), "metric": [metric] * len(pairs),
                     "config_hash": [h] * len(pairs), "similarity": [s for _, _, s in pairs]})


def test_init_makes_empty_readable_tables_and_is_idempotent(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.init()
    for name in TABLES:
        assert lake.exists(name)
        assert lake.read(name).num_rows == 0
        assert (tmp_path / name / "_delta_log").is_dir()


def test_merge_upserts_by_key(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.merge("model_edges", edges(3))
    lake.merge("model_edges", edges(5))
    assert lake.count("model_edges") == 5  # keys p0..p4; p0..p2 matched, not duplicated
    models = pa.table({"model_id": ["a", "b"], "source": ["s1", "s1"], "family": ["F", "F"],
                       "model_type": ["Base", "Chat"], "display_name": ["A", "B"], "arch": ["", ""],
                       "registered_at": pa.array([None, None], pa.timestamp("us", tz="UTC"))})
    lake.merge("models", models)
    lake.merge("models", models.slice(1, 1).set_column(1, "source", pa.array(["s2"])))
    got = {r["model_id"]: r["source"] for r in lake.read("models").to_pylist()}
    assert got == {"a": "s1", "b": "s2"}


def test_merge_source_with_duplicate_keys_keeps_last(tmp_path):
    lake = Lake(str(tmp_path)).init()
    rows = sims([("a", "b", 0.1), ("a", "b", 0.7)])
    lake.merge("similarities", rows)
    assert [r["similarity"] for r in lake.read("similarities").to_pylist()] == [0.7]


def test_replace_where_swaps_one_key_only(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.replace("similarities", sims([("a", "b", 0.5), ("a", "c", 0.4)]), {"method": "m", "metric": "l1",
                                                                            "config_hash": "h"})
    lake.replace("similarities", sims([("a", "b", 0.9)], metric="cosine"),
                 {"method": "m", "metric": "cosine", "config_hash": "h"})
    # a rerun of l1 with one more model replaces the l1 pair set, cosine untouched
    lake.replace("similarities", sims([("a", "b", 0.6), ("a", "c", 0.3), ("b", "c", 0.2)]),
                 {"method": "m", "metric": "l1", "config_hash": "h"})
    rows = sorted((r["metric"], r["model_a"], r["model_b"], r["similarity"])
                  for r in lake.read("similarities").to_pylist())
    assert rows == [("cosine", "a", "b", 0.9), ("l1", "a", "b", 0.6), ("l1", "a", "c", 0.3),
                    ("l1", "b", "c", 0.2)]
    with pytest.raises(LakeSchemaError, match="outside the predicate"):
        lake.replace("similarities", sims([("x", "y", 0.1)], metric="l1"), {"metric": "cosine"})


def test_filters_and_columns(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.append("similarities", sims([("a", "b", 0.5)], metric="l1"))
    lake.append("similarities", sims([("a", "b", 0.8)], metric="cosine"))
    t = lake.read("similarities", columns=["similarity"], filters={"metric": "cosine"})
    assert t.column_names == ["similarity"] and t.to_pylist() == [{"similarity": 0.8}]


def test_schema_errors_write_nothing(tmp_path):
    lake = Lake(str(tmp_path)).init()
    v0 = lake.version("similarities")
    with pytest.raises(LakeSchemaError, match="missing column"):
        lake.append("model_edges", pa.table({"parent_id": ["a"]}))
    bad = sims([("a", "b", 0.5)]).set_column(5, "similarity", pa.array(["not a number"]))
    with pytest.raises(LakeSchemaError, match="similarity"):
        lake.append("similarities", bad)
    with pytest.raises(LakeSchemaError, match="nulls"):
        lake.append("model_edges", pa.table({"parent_id": [None], "child_id": ["c"], "relation": ["x"]},
                                            schema=TABLES["model_edges"].schema))
    assert lake.version("similarities") == v0 and lake.count("similarities") == 0


def test_schema_evolution_adds_a_column(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.append("model_edges", edges(1))
    lake.append("model_edges", edges(1, start=1).append_column("weight", pa.array([0.5])))
    rows = sorted(lake.read("model_edges").to_pylist(), key=lambda r: r["parent_id"])
    assert [r.get("weight") for r in rows] == [None, 0.5]


def test_time_travel_and_history(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.append("model_edges", edges(2))  # version 1
    lake.merge("model_edges", edges(4))  # version 2
    assert lake.read("model_edges", version=1).num_rows == 2
    assert lake.read("model_edges").num_rows == 4
    ops = [h["operation"] for h in lake.history("model_edges")]
    assert ops[:2] == ["MERGE", "WRITE"] and ops[-1] == "CREATE TABLE"
    with pytest.raises(LakeError, match="version 99"):
        lake.read("model_edges", version=99)


def test_optimize_compacts_small_files(tmp_path):
    lake = Lake(str(tmp_path)).init()
    for i in range(6):
        lake.append("model_edges", edges(10, start=10 * i))
    assert lake.file_count("model_edges") == 6
    res = lake.optimize("model_edges", retention_hours=0)
    assert res["files_before"] == 6 and res["files_after"] == 1 and res["vacuumed"] == 6
    assert lake.count("model_edges") == 60
    parquet = [p for p in (tmp_path / "model_edges").glob("*.parquet")]
    assert len(parquet) == 1  # the small files are gone from disk too


def test_foreign_file_in_table_folder_is_ignored(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.append("model_edges", edges(2))
    (tmp_path / "model_edges" / "junk.parquet").write_bytes(b"not parquet")
    pq.write_table(edges(7), tmp_path / "model_edges" / "stray.parquet")
    assert lake.count("model_edges") == 2  # only committed files count


def test_corrupt_committed_file_is_a_clear_error(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.append("model_edges", edges(2))
    [part] = list((tmp_path / "model_edges").glob("*.parquet"))
    part.write_bytes(b"garbage")
    with pytest.raises(LakeError, match="model_edges"):
        lake.read("model_edges")


def test_unknown_table_suggests(tmp_path):
    with pytest.raises(LakeError, match="did you mean 'similarities'"):
        Lake(str(tmp_path)).read("similarity")


def test_where_clause_quotes_values():
    assert where_clause({"a": "x'y", "n": 3}) == "a = 'x''y' AND n = 3"


def test_migrate_legacy_layout_in_place(tmp_path):
    # the pre-Delta layout: plain Parquet parts under each table folder
    (tmp_path / "model_edges").mkdir()
    pq.write_table(edges(3), tmp_path / "model_edges" / "model_edges.parquet")
    (tmp_path / "similarities" / "m" / "h").mkdir(parents=True)
    pq.write_table(sims([("a", "b", 0.5), ("a", "c", 0.25)]), tmp_path / "similarities" / "m" / "h" / "l1.parquet")
    pq.write_table(TABLES["similarities"].schema.empty_table(), tmp_path / "similarities" / "_schema.parquet")
    lake = Lake(str(tmp_path))
    with pytest.raises(LakeError, match="fplake lake migrate"):
        lake.init()
    done = lake.migrate_legacy()
    assert done == {"model_edges": 3, "similarities": 2}
    assert sorted(r["similarity"] for r in lake.read("similarities").to_pylist()) == [0.25, 0.5]
    assert (tmp_path / "_legacy" / "similarities" / "m" / "h" / "l1.parquet").exists()
    assert lake.migrate_legacy() == {}  # second run: nothing to do
    assert all(lake.exists(t) for t in TABLES)


def _merge_worker(root: str, worker: int) -> None:
    lake = Lake(root)
    # every worker upserts 5 own keys and the shared key p999
    rows = pa.concat_tables([edges(5, start=worker * 100), edges(1, start=999)])
    lake.merge("model_edges", rows)


def _append_worker(root: str, worker: int) -> None:
    Lake(root).append("model_edges", edges(10, relation=f"w{worker}", start=worker * 100))


@pytest.mark.parametrize("worker", [_merge_worker, _append_worker])
def test_concurrent_writers_lose_nothing(tmp_path, worker):
    lake = Lake(str(tmp_path)).init()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(str(tmp_path), w)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    if worker is _merge_worker:
        keys = [r["parent_id"] for r in lake.read("model_edges").to_pylist()]
        assert len(keys) == 6 * 5 + 1 and len(set(keys)) == len(keys)
    else:
        assert lake.count("model_edges") == 60


_KILL_SCRIPT = """
import sys, pyarrow as pa
from fingerprinting.lake import Lake, TABLES
lake = Lake(sys.argv[1])
schema = TABLES['model_edges'].schema
def gen():
    i = 0
    while True:  # an endless stream: the parent kills us mid-commit
        i += 1
        n = 50_000
        yield pa.RecordBatch.from_pydict({'parent_id': [f'x{i}-{k}' for k in range(n)],
            'child_id': ['c'] * n, 'relation': ['finetune'] * n}, schema=schema)
        if i == 3:
            print('writing', flush=True)
lake.append_stream('model_edges', gen())
"""


def test_sigkill_mid_write_leaves_table_whole(tmp_path):
    lake = Lake(str(tmp_path)).init()
    lake.append("model_edges", edges(4))
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    # data files may have been written, but no commit: readers see the old version
    assert lake.count("model_edges") == 4
    lake.append("model_edges", edges(2, start=10))
    assert lake.count("model_edges") == 6

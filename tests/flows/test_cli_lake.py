"""``fplake lake ...`` and ``fplake status`` on a real Delta lake."""

import pyarrow as pa
import pyarrow.parquet as pq

from fingerprinting.lake import Lake
from flows.cli import main


def _edge(i):
    return pa.table({"parent_id": [f"p{i}"], "child_id": ["c"], "relation": ["finetune"]})


def test_history_read_as_of_optimize_status(tmp_path, capsys):
    root = str(tmp_path / "lake")
    lake = Lake(root).init()
    for i in range(3):
        lake.append("model_edges", _edge(i))
    assert main(["--lake-root", root, "lake", "history", "model_edges"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:]] == ["3", "2", "1", "0"]
    assert main(["lake", "read", "model_edges", "--version", "1", "--lake-root", root]) == 0
    out = capsys.readouterr().out
    assert "version 1: 1 rows" in out and "p0" in out and "p2" not in out
    assert main(["--lake-root", root, "lake", "optimize", "model_edges", "--retention-hours", "0"]) == 0
    assert "files     3 -> 1" in capsys.readouterr().out
    assert main(["--lake-root", root, "status"]) == 0
    out = capsys.readouterr().out
    assert f"lake: {root}" in out and "3 rows      1 file(s)" in out


def test_migrate_command(tmp_path, capsys):
    root = tmp_path / "lake"
    (root / "model_edges").mkdir(parents=True)
    pq.write_table(pa.concat_tables([_edge(1), _edge(2)]), root / "model_edges" / "model_edges.parquet")
    assert main(["--lake-root", str(root), "lake", "migrate"]) == 0
    assert "model_edges: 2 rows migrated" in capsys.readouterr().out
    assert Lake(str(root)).count("model_edges") == 2
    assert main(["--lake-root", str(root), "lake", "migrate"]) == 0
    assert "nothing to do" in capsys.readouterr().out

"""Compaction: a fingerprints table of many small commits, before and after ``Lake.optimize``.

    python -m benchmarks.lake_optimize [--models 20000] [--commits 400] [--dim 64] [--lake DIR]

Writes ``--models`` fingerprint rows as ``--commits`` appends (the shape a lake
gets from one-model-at-a-time flows), then reports data files and full-table
read time (``Lake.read``, and DuckDB ``delta_scan``) before and after
``Lake.optimize`` (compact + vacuum with retention 0).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from benchmarks.lake_concurrency import _rows


def _read_times(lake, repeats: int = 3) -> dict:
    best, best_sql = float("inf"), float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = lake.read("fingerprints").num_rows
        best = min(best, time.perf_counter() - t0)
        con = lake.duckdb()
        t0 = time.perf_counter()
        con.execute("select count(*), sum(list_sum(vector)) from fingerprints").fetchone()
        best_sql = min(best_sql, time.perf_counter() - t0)
        con.close()
    return {"rows": n, "read_s": round(best, 3), "duckdb_scan_s": round(best_sql, 3)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=20_000)
    p.add_argument("--commits", type=int, default=400)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--lake", default=None)
    a = p.parse_args(argv)
    from fingerprinting.lake import Lake

    root = a.lake or tempfile.mkdtemp(prefix="fplake-opt-")
    lake = Lake(root).init(["fingerprints"])
    per = a.models // a.commits
    t0 = time.perf_counter()
    for c in range(a.commits):
        lake.append("fingerprints", _rows(0, c * per, per, a.dim))
    write_s = time.perf_counter() - t0
    before = {"files": lake.file_count("fingerprints"), **_read_times(lake)}
    t0 = time.perf_counter()
    res = lake.optimize("fingerprints", vacuum=True, retention_hours=0)
    opt_s = time.perf_counter() - t0
    after = {"files": lake.file_count("fingerprints"), **_read_times(lake)}
    out = {"lake": root, "models": per * a.commits, "commits": a.commits, "write_s": round(write_s, 1),
           "before": before, "optimize_s": round(opt_s, 2), "optimize": res, "after": after}
    print(json.dumps(out, indent=2))
    assert before["rows"] == after["rows"] == per * a.commits
    return out


if __name__ == "__main__":
    main()

"""Concurrent writers on one lake: N processes append fingerprint rows at once; none may be lost.

    python -m benchmarks.lake_concurrency [--rows 100000] [--writers 10] [--batch 1000] [--dim 64]
        [--lake DIR_OR_S3_URL] [--mode append|merge]

Each writer appends ``rows / writers`` fingerprint rows in commits of
``--batch`` rows (``Lake.append``, or ``Lake.merge`` with ``--mode merge``),
with distinct keys. Afterwards every key is counted: the table must hold all
rows exactly once. Prints rows/s and the time per commit (median, p95, max).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time

import numpy as np
import pyarrow as pa


def _rows(writer: int, start: int, n: int, dim: int) -> pa.Table:
    rng = np.random.default_rng(writer * 1_000_003 + start)
    ids = [f"w{writer:02d}-m{start + i:07d}" for i in range(n)]
    now = pa.array([int(time.time() * 1e6)] * n, pa.timestamp("us", tz="UTC"))
    return pa.table({
        "model_id": ids, "method": ["bench"] * n, "config_hash": ["c0"] * n, "config_json": ["{}"] * n,
        "vector": pa.array(list(rng.standard_normal((n, dim))), pa.list_(pa.float64())),
        "dim": pa.array([dim] * n, pa.int32()), "device": ["cpu"] * n, "dtype": ["float32"] * n,
        "seconds": [0.0] * n, "library_versions": ["{}"] * n, "provenance_json": ["{}"] * n,
        "run_id": [f"w{writer}"] * n, "created_at": now,
    })


def _writer(args) -> list[float]:
    root, writer, n, batch, dim, mode, go = args
    from fingerprinting.lake import Lake

    lake = Lake(root)
    go.wait()
    times = []
    for start in range(0, n, batch):
        t = _rows(writer, start, min(batch, n - start), dim)
        t0 = time.perf_counter()
        if mode == "merge":
            lake.merge("fingerprints", t)
        else:
            lake.append("fingerprints", t)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--writers", type=int, default=10)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--mode", choices=["append", "merge"], default="append")
    p.add_argument("--lake", default=None, help="lake root (default: a temporary folder)")
    a = p.parse_args(argv)
    root = a.lake or tempfile.mkdtemp(prefix="fplake-bench-")
    from fingerprinting.lake import Lake

    lake = Lake(root).init(["fingerprints"])
    v0 = lake.version("fingerprints")
    per = a.rows // a.writers
    ctx = mp.get_context("spawn")
    with ctx.Manager() as m:
        go = m.Event()
        with ctx.Pool(a.writers) as pool:
            res = pool.map_async(_writer, [(root, w, per, a.batch, a.dim, a.mode, go) for w in range(a.writers)])
            time.sleep(3)  # let every worker import and open the lake before the start signal
            t0 = time.perf_counter()
            go.set()
            times = res.get()
            wall = time.perf_counter() - t0
    t = lake.read("fingerprints", columns=["model_id", "method", "config_hash"])
    ids = t.column("model_id").to_pylist()
    flat = sorted(x for w in times for x in w)
    out = {"lake": root, "mode": a.mode, "writers": a.writers, "rows_written": per * a.writers,
           "rows_in_table": len(ids), "distinct_keys": len(set(ids)),
           "lost": per * a.writers - len(set(ids)), "commits": len(flat),
           "table_versions_added": lake.version("fingerprints") - v0,
           "wall_s": round(wall, 2), "rows_per_s": round(per * a.writers / wall),
           "commit_s_median": round(statistics.median(flat), 3),
           "commit_s_p95": round(flat[int(0.95 * (len(flat) - 1))], 3), "commit_s_max": round(flat[-1], 3),
           "data_files": lake.file_count("fingerprints")}
    print(json.dumps(out, indent=2))
    if out["lost"] or out["rows_in_table"] != out["rows_written"]:
        raise SystemExit("rows lost or duplicated")
    return out


if __name__ == "__main__":
    main()

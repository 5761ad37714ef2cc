"""dbt build time and peak memory on a synthetic experiment of 5,000 models in 50 families.

    python -m benchmarks.dbt_scale [--models 5000] [--families 50] [--workdir DIR]

Synthesises registry rows, lineage edges (each family a tree) and all
n(n-1)/2 similarities (12.5 M rows for 5,000 models) for one method x metric
x config, writes them to a lake as Parquet, then runs `dbt build` into a
fresh DuckDB warehouse. Target: under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks._util import peak_rss_mb, reset_peak_rss, timed
from fingerprinting.lake import TABLES, Lake
from fingerprinting.settings import Settings, apply_quiet_env


def synthesise(lake: Lake, n_models: int, n_fam: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    ids = np.array([f"m{i:05d}" for i in range(n_models)])
    fam = np.arange(n_models) % n_fam
    types = np.array(["Base", "Chat", "Domain", "Quantized", "Distilled", "Merge", "Pruned"])
    mtype = types[rng.integers(0, len(types), n_models)]
    lake.append("models", pa.table({"model_id": ids, "source": ["synthetic"] * n_models,
                              "family": [f"F{f:02d}" for f in fam], "model_type": mtype,
                              "display_name": ids, "arch": ["llama"] * n_models,
                              "registered_at": pa.array([None] * n_models, pa.timestamp("us", tz="UTC"))}))
    # each family is a tree: member k's parent is a random earlier member of the family
    parents, children, rel = [], [], []
    relations = ["finetune", "quantized", "distilled", "merge", "pruned"]
    for f in range(n_fam):
        members = np.nonzero(fam == f)[0]
        for k in range(1, len(members)):
            parents.append(ids[members[rng.integers(0, k)]])
            children.append(ids[members[k]])
            rel.append(relations[rng.integers(0, len(relations))])
    lake.append("model_edges", pa.table({"parent_id": parents, "child_id": children, "relation": rel}))
    # all pairs, streamed into one commit in row blocks so memory stays small; ids sort like their indices
    schema = TABLES["similarities"].schema
    total = [0]

    def batches():
        for i in range(n_models - 1):
            j = np.arange(i + 1, n_models)
            same = fam[j] == fam[i]
            sim = np.where(same, rng.normal(0.9, 0.04, len(j)), rng.normal(0.7, 0.08, len(j))).clip(0, 1)
            n = len(j)
            total[0] += n
            yield pa.RecordBatch.from_pydict({
                "model_a": pa.array(np.repeat(ids[i], n)), "model_b": pa.array(ids[j]),
                "method": pa.array(["synthetic"] * n), "metric": pa.array(["l1"] * n),
                "config_hash": pa.array(["cfg"] * n), "similarity": sim}, schema=schema)

    lake.append_stream("similarities", batches())
    return total[0]


def main(argv=None) -> None:
    apply_quiet_env()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--families", type=int, default=50)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fplake-dbt-scale-"))
    shutil.rmtree(work / "lake", ignore_errors=True)
    (work / "wh.duckdb").unlink(missing_ok=True)
    settings = Settings(lake_root=str(work / "lake"), warehouse=str(work / "wh.duckdb"), reports_dir=str(work / "r"),
                        zoo_dir=str(work / "z"), global_registry=str(work / "g"))
    lake = Lake(settings.lake_root).init()
    with timed() as t_syn:
        n_pairs = synthesise(lake, args.models, args.families)
    print(f"synthesised {args.models} models, {args.families} families, {n_pairs:,} pairs in {t_syn['s']:.1f} s")
    from fingerprinting.warehouse import run_dbt

    reset_peak_rss()
    with timed() as t_dbt:
        run_dbt(["build"], settings)
    print(f"dbt build: {t_dbt['s']:.1f} s, peak RSS {peak_rss_mb():.0f} MB "
          f"(target < 120 s on 2 cores: {'met' if t_dbt['s'] < 120 else 'NOT met'})")
    from fingerprinting.warehouse import connect

    with connect(settings) as con:
        for name in ("pair_similarities", "intrafamily_stats", "interfamily_stats", "type_pair_stats",
                     "provenance_quality", "nearest_neighbors"):
            print(f"  {name:<22}{con.execute(f'select count(*) from {name}').fetchone()[0]:>12,} rows")


if __name__ == "__main__":
    main()

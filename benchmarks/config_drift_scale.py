"""dbt time and peak memory of the config-drift marts on a synthetic lineage of 500,000 edges.

    python -m benchmarks.config_drift_scale [--edges 500000] [--families 2000] [--workdir DIR]

Synthesises registry rows, lineage edges (each family a tree: every member's parent is a random
earlier member) and one config per model, then runs
`dbt build --select +config_drift_edges +config_drift_summary +config_field_mutation` (models and
their tests, staging included) into a fresh DuckDB warehouse.

Configs are realistic: every family starts from the features of a real architecture (a default config
of the transformers catalogue, sampled), and each member mutates it the way derivatives do: another
dtype (30 %), quantization (10 %), a longer context (5 %), a resized vocabulary (5 %), a width or
depth change (3 %), a feature left unknown (10 %).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks._util import peak_rss_mb, reset_peak_rss, timed
from fingerprinting.configs.features import FEATURE_KINDS, FEATURES
from fingerprinting.configs.tables import MODEL_CONFIGS
from fingerprinting.lake import Lake
from fingerprinting.settings import Settings, apply_quiet_env

SELECT = ["+config_drift_edges", "+config_drift_summary", "+config_field_mutation"]
DTYPES = np.array(["bfloat16", "float16", "float32"], dtype=object)


def catalogue_features() -> list[dict]:
    """Feature rows of the transformers catalogue that know at least 8 features (about 3 s)."""
    from fingerprinting.configs import ingest

    batch = ingest.build_batch(ingest.catalogue_items(), "catalogue")
    return [r for r in batch.configs if r["n_features"] >= 8]


def synthesise(lake: Lake, n_edges: int, n_fam: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    n = n_edges + n_fam
    ids = np.array([f"m{i:07d}" for i in range(n)], dtype=object)
    fam = np.arange(n) % n_fam
    fam_names = np.array([f"F{f:05d}" for f in range(n_fam)], dtype=object)
    lake.append("models", pa.table({
        "model_id": ids, "source": np.full(n, "synthetic", dtype=object), "family": fam_names[fam],
        "model_type": np.where(np.arange(n) < n_fam, "Base", "Finetune"), "display_name": ids,
        "arch": np.full(n, "", dtype=object), "registered_at": pa.array([None] * n, pa.timestamp("us", tz="UTC"))}))
    # member k (k >= 1) of a family has a random earlier member as parent: ids sort by index
    k = np.arange(n) // n_fam
    child = np.nonzero(k >= 1)[0]
    parent_k = (rng.random(len(child)) * k[child]).astype(np.int64)
    parent = parent_k * n_fam + fam[child]
    relations = np.array(["finetune", "quantized", "merge", "distilled", "adapter"], dtype=object)
    rel = relations[rng.choice(len(relations), len(child), p=[0.6, 0.2, 0.1, 0.05, 0.05])]
    lake.append("model_edges", pa.table({"parent_id": ids[parent], "child_id": ids[child], "relation": rel}))

    base = catalogue_features()
    fam_base = rng.integers(0, len(base), n_fam)
    cols: dict[str, np.ndarray] = {}
    for f in FEATURES:
        values = np.array([base[b][f] for b in fam_base], dtype=object)[fam]
        cols[f] = values
    roots = k == 0

    def mutate(p: float) -> np.ndarray:
        return (rng.random(n) < p) & ~roots

    m = mutate(0.30)
    cols["torch_dtype"] = np.where(m, DTYPES[rng.integers(0, 3, n)], cols["torch_dtype"])
    m = mutate(0.10)
    cols["uses_quantization"] = np.where(m, True, cols["uses_quantization"])
    m = mutate(0.05) & np.array([v is not None for v in cols["max_position_embeddings"]])
    cols["max_position_embeddings"] = np.where(
        m, np.array([None if v is None else int(v) * 4 for v in cols["max_position_embeddings"]], dtype=object),
        cols["max_position_embeddings"])
    m = mutate(0.05) & np.array([v is not None for v in cols["vocab_size"]])
    cols["vocab_size"] = np.where(
        m, np.array([None if v is None else int(v) + 256 for v in cols["vocab_size"]], dtype=object), cols["vocab_size"])
    for f in ("hidden_size", "num_hidden_layers"):
        m = mutate(0.03) & np.array([v is not None for v in cols[f]])
        cols[f] = np.where(m, np.array([None if v is None else int(v) * 2 for v in cols[f]], dtype=object), cols[f])
    drop = mutate(0.10)
    which = rng.integers(0, len(FEATURES), n)
    for j, f in enumerate(FEATURES):
        cols[f] = np.where(drop & (which == j), None, cols[f])

    n_known = sum(np.array([v is not None for v in cols[f]]) for f in FEATURES)
    hashes = [hashlib.blake2b(repr(t).encode(), digest_size=8).hexdigest()
              for t in zip(*(cols[f] for f in FEATURES), strict=True)]
    now = datetime.now(UTC)
    data = {"model_id": ids, "source": np.full(n, "synthetic", dtype=object),
            "config_hash": np.array(hashes, dtype=object),
            "raw_json": np.full(n, "{}", dtype=object)}
    for f in FEATURES:
        typ = MODEL_CONFIGS.schema.field(f).type
        data[f] = pa.array(cols[f].tolist(), typ) if FEATURE_KINDS[f] != "numeric" else pa.array(
            [None if v is None else v for v in cols[f].tolist()], typ)
    for extra in ("quant_method", "rope_note", "text_model_type", "notes"):
        data[extra] = pa.array([None] * n, pa.string())
    data["n_features"] = n_known.astype(np.int64)
    data["ingested_at"] = pa.array([now] * n, pa.timestamp("us", tz="UTC"))
    lake.append("model_configs", pa.table(data))
    return len(child)


def main(argv=None) -> None:
    apply_quiet_env()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", type=int, default=500_000)
    ap.add_argument("--families", type=int, default=2000)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fplake-config-drift-"))
    shutil.rmtree(work / "lake", ignore_errors=True)
    (work / "wh.duckdb").unlink(missing_ok=True)
    settings = Settings(lake_root=str(work / "lake"), warehouse=str(work / "wh.duckdb"), reports_dir=str(work / "r"),
                        zoo_dir=str(work / "z"), global_registry=str(work / "g"))
    lake = Lake(settings.lake_root).init()
    with timed() as t_syn:
        n_edges = synthesise(lake, args.edges, args.families)
    print(f"synthesised {n_edges:,} edges over {args.edges + args.families:,} models in {args.families} families "
          f"in {t_syn['s']:.1f} s")
    from fingerprinting.warehouse import connect, run_dbt

    reset_peak_rss()
    with timed() as t_dbt:
        run_dbt(["build", "--select", *SELECT], settings)
    print(f"dbt build --select {' '.join(SELECT)}: {t_dbt['s']:.1f} s, peak RSS {peak_rss_mb():.0f} MB")
    with connect(settings) as con:
        for name in ("config_drift_edges", "config_drift_summary", "config_field_mutation"):
            print(f"  {name:<24}{con.execute(f'select count(*) from {name}').fetchone()[0]:>12,} rows")
        row = con.execute("select n_edges, n_with_drift, mean_drift, share_zero_drift from config_drift_summary "
                          "where group_kind = 'overall'").fetchone()
        print(f"  overall: {row[0]:,} edges, {row[1]:,} with drift, mean {row[2]:.4f}, zero-drift share {row[3]:.3f}")
        row = con.execute("select n_edges from config_drift_summary where group_value = 'siblings'").fetchone()
        print(f"  sibling pairs: {row[0]:,}")


if __name__ == "__main__":
    main()

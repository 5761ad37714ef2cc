"""The demo's fingerprint stage sequential vs on Dask (1 and 2 local workers): wall time, speed-up, equal rows.

    FPLAKE_ZOO_DIR=.cache/zoo python -m benchmarks.dask_fingerprint [--profile full] [--models N]
        [--workdir DIR] [--warm]

Each run is ``fingerprint_flow`` with the demo's methods (``DEMO_METHODS``) and
every metric on the demo zoo's models (the built zoo is reused, never built
here), into its own fresh lake, under one Prefect test server (its start-up is
not counted; this process is warmed on two models first). A Dask run's wall
time includes starting its local cluster, the workers' imports and closing it.
``--warm`` adds a run on a cluster started (and warmed on two models)
beforehand, as ``fplake demo`` shares one cluster across its stages. Rows are
compared with the sequential run's: same keys, vectors and similarities
bitwise or to the largest difference printed (torch sums in another order
when a worker has another number of threads).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _manifest(zoo_dir: str, profile: str) -> dict:
    path = Path(zoo_dir) / profile / "manifest.json"
    if not path.is_file():
        sys.exit(f"dask_fingerprint: no built {profile} zoo at {path.parent}; run `fplake build-zoo "
                 f"--profile {profile}` first (or set FPLAKE_ZOO_DIR)")
    manifest = json.loads(path.read_text())
    missing = [m["path"] for m in manifest["models"] if not Path(m["path"]).is_dir()]
    if missing:
        sys.exit(f"dask_fingerprint: zoo at {path.parent} lacks {missing[0]}; rebuild it")
    return manifest


def _compare(ref_root: str, root: str) -> dict:
    from fingerprinting.lake import Lake

    def rows(lake_root: str, table: str, key: list[str]) -> list[dict]:
        return sorted(Lake(lake_root).read(table).to_pylist(), key=lambda r: [r[k] for k in key])

    fk, sk = ["model_id", "method", "config_hash"], ["model_a", "model_b", "method", "metric", "config_hash"]
    fa, fb = rows(ref_root, "fingerprints", fk), rows(root, "fingerprints", fk)
    sa, sb = rows(ref_root, "similarities", sk), rows(root, "similarities", sk)
    same_keys = ([[r[k] for k in fk] for r in fa] == [[r[k] for k in fk] for r in fb]
                 and [[r[k] for k in sk] for r in sa] == [[r[k] for k in sk] for r in sb])
    if not same_keys:
        return {"same_keys": False}
    dv = [np.asarray(a["vector"]) - np.asarray(b["vector"]) for a, b in zip(fa, fb, strict=True)]
    ds = np.array([a["similarity"] - b["similarity"] for a, b in zip(sa, sb, strict=True)])
    return {"same_keys": True, "fingerprints": len(fa), "similarities": len(sa),
            "bitwise_vectors": int(sum(not d.any() for d in dv)),
            "max_abs_vector_diff": float(max((np.abs(d).max() for d in dv), default=0.0)),
            "bitwise_similarities": int((ds == 0).sum()),
            "max_abs_similarity_diff": float(np.abs(ds).max()) if len(ds) else 0.0}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="full", choices=["full", "tiny"])
    p.add_argument("--models", type=int, default=None, help="first N zoo models (default: all)")
    p.add_argument("--workdir", default=None)
    p.add_argument("--warm", action="store_true", help="also time 2 workers on a cluster started beforehand")
    a = p.parse_args(argv)
    from fingerprinting.settings import Settings, apply_quiet_env, get_settings

    apply_quiet_env()
    import torch
    from prefect.testing.utilities import prefect_test_harness

    from benchmarks._util import table
    from fingerprinting.experiment import parse_config
    from fingerprinting.lake import Lake
    from fingerprinting.registry import register_models, zoo_records
    from flows.demo_flow import demo_config
    from flows.fingerprint_flow import fingerprint_flow
    from flows.task_runners import flow_runner_kwargs, runner_options, runner_session, usable_cores

    zoo_dir = get_settings().zoo_dir
    manifest = _manifest(zoo_dir, a.profile)
    if a.models:
        manifest = {**manifest, "models": manifest["models"][:a.models]}
    config = parse_config(demo_config(manifest))
    work = Path(a.workdir or tempfile.mkdtemp(prefix="fplake-dask-bench-")).resolve()
    cores = usable_cores()
    runs = [("sequential", runner_options("sequential")),
            ("sequential, 1 torch thread", runner_options("sequential", threads_per_worker=1)),
            ("dask, 1 worker", runner_options("dask", dask_workers=1)),
            ("dask, 2 workers", runner_options("dask", dask_workers=2))]

    def lake_for(name: str, models: list[dict]) -> Settings:
        s = Settings(lake_root=str(work / name.replace(", ", "-").replace(" ", "") / "lake"),
                     reports_dir=str(work / "reports"), zoo_dir=zoo_dir, warehouse=str(work / "wh.duckdb"),
                     global_registry=str(work / "global"), device="cpu")
        register_models(Lake(s.lake_root).init(), zoo_records({**manifest, "models": models}))
        return s

    def one(name: str, opts) -> dict:
        s = lake_for(name, manifest["models"])
        t0 = time.perf_counter()
        summary = fingerprint_flow(config, settings=s, progress=False, **flow_runner_kwargs(opts))
        wall = time.perf_counter() - t0
        assert summary.ok, summary.failures
        return {"run": name, "root": s.lake_root, "wall_s": wall,
                "torch_threads": opts.threads_per_worker or torch.get_num_threads()}

    out = []
    two = manifest["models"][:2]
    with prefect_test_harness(server_startup_timeout=180):
        # warm this process first (lazy imports, first model load), so the sequential run is not charged for it
        fingerprint_flow(parse_config(demo_config({**manifest, "models": two})), settings=lake_for("warm-driver", two),
                         progress=False)
        for name, opts in runs:
            out.append(one(name, opts))
        if a.warm:
            with runner_session(runner_options("dask", dask_workers=2)) as shared:
                # warm the workers (imports, first model load) on two models in a throwaway lake
                fingerprint_flow(parse_config(demo_config({**manifest, "models": two})),
                                 settings=lake_for("warm-up", two), progress=False, **flow_runner_kwargs(shared))
                out.append(one("dask, 2 workers, warm cluster", shared))
    base = out[0]["wall_s"]
    for r in out:
        r["speedup"] = f"{base / r['wall_s']:.2f}x"
        cmp = _compare(out[0]["root"], r["root"])
        r.update({"same_keys": cmp["same_keys"], "rows": f"{cmp.get('fingerprints')} fp / {cmp.get('similarities')} sim",
                  "bitwise_vectors": f"{cmp.get('bitwise_vectors')}/{cmp.get('fingerprints')}",
                  "max_vec_diff": f"{cmp.get('max_abs_vector_diff', float('nan')):.1e}",
                  "max_sim_diff": f"{cmp.get('max_abs_similarity_diff', float('nan')):.1e}"})
        r["wall_s"] = round(r["wall_s"], 1)
    print(f"{len(config.models)} models x {len(config.methods)} methods ({', '.join(config.methods)}), "
          f"{len(config.metrics)} metrics; {cores} usable core(s); lakes under {work}")
    print(table(out, ["run", "torch_threads", "wall_s", "speedup", "same_keys", "rows", "bitwise_vectors",
                      "max_vec_diff", "max_sim_diff"]))
    return {"runs": out, "cores": cores, "models": len(config.models)}


if __name__ == "__main__":  # the guard matters: Dask's worker processes import this module
    main()

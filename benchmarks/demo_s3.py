"""The demo's stages on a local lake and on an S3 lake (moto's server on loopback): time of each.

    python -m benchmarks.demo_s3 [--models 12] [--workdir DIR]

Stages (tiny zoo profile): build/reuse the zoo, register its models, fingerprint
(``fingerprint_flow``: input_output + weight_spectrum, l1 + cosine), ``dbt build``
and the report (``report_flow`` without its own build). Both lakes run under
one Prefect test server, so its start-up is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _stages(settings, ids) -> dict:
    from fingerprinting.experiment import parse_config
    from fingerprinting.lake import Lake
    from fingerprinting.registry import register_models, zoo_records
    from fingerprinting.warehouse import run_dbt
    from fingerprinting.zoo import build_zoo
    from flows.fingerprint_flow import fingerprint_flow
    from flows.report_flow import report_flow

    t = {}
    t0 = time.perf_counter()
    zoo = build_zoo("tiny", settings, progress=False)
    t["zoo"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    register_models(Lake(settings.lake_root).init(), zoo_records(zoo))
    t["register"] = time.perf_counter() - t0
    cfg = parse_config({"models": ids, "methods": ["input_output", "weight_spectrum"],
                        "method_args": {"input_output": {"n0": 40}}, "metrics": ["l1", "cosine"]})
    t0 = time.perf_counter()
    assert fingerprint_flow(cfg, settings=settings, progress=False).ok
    t["fingerprint"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_dbt(["build"], settings)
    t["dbt_build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report_flow(method="input_output", metric="l1", settings=settings, run_dbt_build=False, print_summary=False)
    t["report"] = time.perf_counter() - t0
    return {k: round(v, 1) for k, v in t.items()}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=12)
    p.add_argument("--workdir", default=None)
    a = p.parse_args(argv)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="fplake-demo-s3-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fingerprinting.settings import Settings, apply_quiet_env
    from tests import moto_persistent as mp

    apply_quiet_env()
    port = mp.free_port()
    server = mp.start(port, str(work / "s3-recording.jsonl"))
    url = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": url})
    try:
        import s3fs
        from prefect.testing.utilities import prefect_test_harness

        s3fs.S3FileSystem(endpoint_url=url).mkdir("fplake-demo")
        ids = [str(i) for i in range(1, a.models + 1)]
        out = {}
        with prefect_test_harness(server_startup_timeout=180):
            for name, root in (("local", str(work / "lake")), ("s3", "s3://fplake-demo/lake")):
                s = Settings(lake_root=root, warehouse=str(work / f"{name}.duckdb"),
                             reports_dir=str(work / f"reports-{name}"), zoo_dir=str(work / "zoo"),
                             global_registry=str(work / "global"), device="cpu")
                out[name] = _stages(s, ids)
        print(json.dumps(out, indent=2))
        return out
    finally:
        mp.stop(server)


if __name__ == "__main__":
    main()

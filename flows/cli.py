"""``fplake``: the project's command line (demo, zoo, registry, dbt, reports).

    fplake demo [--profile full|tiny]      build zoo -> register -> fingerprint -> lake (-> dbt -> report)
    fplake build-zoo [--profile ...]       build or reuse the cached demo zoo
    fplake register-demo [--profile ...]   register the zoo's models and lineage edges in the lake
    fplake registry init-global            create the global registry and print its admin token once
    fplake status                          row counts of every lake table
    fplake dbt build                       dbt over the lake into the DuckDB warehouse
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fingerprinting.settings import apply_quiet_env

DEMO_METHODS = {
    "input_output": {"n0": 40, "probe_tokens_path": "helper_data/io_tokens/probe_tokens.txt",
                     "target_tokens_path": "helper_data/io_tokens/target_tokens.txt"},
    "weight": {"size": 50},
    "weight_spectrum": {"k": 32, "profile_points": 16},
}


def _settings(args):
    from fingerprinting.settings import get_settings

    s = get_settings().with_overrides(lake_root=getattr(args, "lake_root", None),
                                      warehouse=getattr(args, "warehouse", None),
                                      reports_dir=getattr(args, "reports_dir", None),
                                      device=getattr(args, "device", None))
    s.apply_env()
    return s


def cmd_build_zoo(args) -> dict:
    from fingerprinting.zoo import build_zoo

    settings = _settings(args)
    t0 = time.perf_counter()
    manifest = build_zoo(args.profile, settings, force=getattr(args, "force", False))
    print(f"zoo '{args.profile}': {len(manifest['models'])} models in {Path(settings.zoo_dir) / args.profile} "
          f"(built in {manifest['build_seconds']} s; this call {time.perf_counter() - t0:.1f} s)")
    return manifest


def cmd_register_demo(args) -> dict:
    from fingerprinting.lake import Lake
    from fingerprinting.registry import register_models, zoo_records
    from fingerprinting.zoo import model_info

    manifest = cmd_build_zoo(args)
    settings = _settings(args)
    lake = Lake(settings.lake_root).init()
    n = register_models(lake, zoo_records(manifest))
    info_path = Path(settings.reports_dir) / "model_info.json"
    info_path.parent.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(model_info(manifest), indent=1))
    print(f"registered {n} models (+ lineage edges) in {settings.lake_root}; model info: {info_path}")
    return manifest


def demo_config(manifest: dict, methods: list[str] | None = None) -> dict:
    names = methods or list(DEMO_METHODS)
    from fingerprinting.metrics import METRICS

    return {"name": "demo", "models": [m["model_id"] for m in manifest["models"]], "methods": names,
            "method_args": {m: DEMO_METHODS[m] for m in names}, "metrics": METRICS.names()}


def print_separation(settings, config, summary) -> None:
    from fingerprinting.analysis import separation
    from fingerprinting.lake import Lake
    from fingerprinting.registry import list_models

    lake = Lake(settings.lake_root)
    fam = {m.model_id: m.family for m in list_models(lake)}
    sims = lake.read("similarities").to_pylist()
    print("\nrelated (same family) vs unrelated pairs, per method x metric:")
    print(f"  {'method':<16}{'metric':<16}{'related':>9}{'unrelated':>11}{'ROC-AUC':>9}")
    inst = config.instances()
    for method, m in inst.items():
        for metric in config.metrics:
            rows = [r for r in sims if r["method"] == method and r["metric"] == metric
                    and r["config_hash"] == m.config_hash and r["model_a"] in fam and r["model_b"] in fam
                    and r["model_a"] in summary.models and r["model_b"] in summary.models]
            s = separation(rows, fam)
            print(f"  {method:<16}{metric:<16}{s['related_mean']:>9.4f}{s['unrelated_mean']:>11.4f}{s['auc']:>9.3f}")


def cmd_demo(args) -> int:
    from fingerprinting.experiment import parse_config

    settings = _settings(args)
    t0 = time.perf_counter()
    print("== 1/4 demo zoo + registry")
    manifest = cmd_register_demo(args)
    cfg_obj = demo_config(manifest)
    cfg_path = Path(settings.reports_dir) / "demo_config.json"
    cfg_path.write_text(json.dumps(cfg_obj, indent=1))
    config = parse_config(cfg_obj, str(cfg_path))
    print(f"== 2/4 fingerprint flow ({len(config.models)} models x {len(config.methods)} methods, "
          f"{len(config.metrics)} metrics; --use-existing)")
    from flows.fingerprint_flow import fingerprint_flow

    summary = fingerprint_flow(config, use_existing=not args.recompute, settings=settings,
                               progress=not args.no_progress)
    print(f"   computed {len(summary.computed)}, reused {len(summary.reused)}, failed {len(summary.failures)} "
          f"in {summary.seconds} s")
    for mid, err in summary.failures.items():
        print(f"   FAILED {mid}: {err}")
    print_separation(settings, config, summary)
    rc = 0 if summary.ok else 1
    if not args.skip_analytics:
        try:
            from flows.report_flow import report_flow
        except ImportError:
            report_flow = None
        if report_flow is not None:
            print("== 3/4 dbt build + 4/4 reports")
            inst = config.instances()
            rep = report_flow(method="input_output", metric="l1", config_hash=inst["input_output"].config_hash,
                              settings=settings)
            # the cheap weight signal separates lineage best on this zoo: render it too (marts already built)
            rep2 = report_flow(method="weight_spectrum", metric="l1", config_hash=inst["weight_spectrum"].config_hash,
                               settings=settings, run_dbt_build=False, print_summary=False)
            print(f"   dashboards: {rep.get('dashboard')}\n               {rep2.get('dashboard')}")
    print("\noutputs:")
    print(f"  lake:        {settings.lake_root}")
    print(f"  warehouse:   {settings.warehouse}")
    print(f"  experiment:  {summary.outputs.get('similarity_matrices')}")
    print(f"  reports:     {settings.reports_dir}")
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return rc


def cmd_init_global(args) -> int:
    from fingerprinting.registry import GlobalRegistry, RegistryPermissionError

    settings = _settings(args)
    try:
        _, token = GlobalRegistry.initialise(args.location or settings.global_registry, args.token)
    except RegistryPermissionError as exc:
        print(f"fplake: error: {exc}", file=sys.stderr)
        return 2
    print(f"global registry initialised at {args.location or settings.global_registry}")
    print(f"admin token (shown once; store it as FPLAKE_ADMIN_TOKEN): {token}")
    return 0


def cmd_status(args) -> int:
    from fingerprinting.lake import TABLES, Lake

    settings = _settings(args)
    lake = Lake(settings.lake_root)
    for name in TABLES:
        print(f"{name:<14}{lake.read(name).num_rows:>10} rows   {len(lake.files(name))} file(s)")
    return 0


def cmd_dbt(args) -> int:
    from fingerprinting.lake import Lake
    from fingerprinting.warehouse import DbtError, run_dbt

    settings = _settings(args)
    Lake(settings.lake_root).init()
    try:
        run_dbt(args.dbt_args or ["build"], settings, quiet=False)
    except DbtError as exc:
        print(f"fplake: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fplake", description="Fingerprint Lake command line")
    p.add_argument("--lake-root")
    p.add_argument("--warehouse")
    p.add_argument("--reports-dir")
    p.add_argument("--device")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="set up and run the main job on the demo zoo")
    d.add_argument("--profile", default="full", choices=["full", "tiny"])
    d.add_argument("--recompute", action="store_true", help="ignore stored fingerprints")
    d.add_argument("--skip-analytics", action="store_true", help="stop after the lake (no dbt, no report)")
    d.add_argument("--no-progress", action="store_true")
    z = sub.add_parser("build-zoo")
    z.add_argument("--profile", default="full", choices=["full", "tiny"])
    z.add_argument("--force", action="store_true")
    r = sub.add_parser("register-demo")
    r.add_argument("--profile", default="full", choices=["full", "tiny"])
    g = sub.add_parser("registry")
    gs = g.add_subparsers(dest="reg_cmd", required=True)
    gi = gs.add_parser("init-global")
    gi.add_argument("--location")
    gi.add_argument("--token", help="use this token instead of a random one")
    sub.add_parser("status")
    db = sub.add_parser("dbt", help="run dbt on the project with the lake/warehouse settings exported")
    db.add_argument("dbt_args", nargs=argparse.REMAINDER, help="e.g. build, test, docs generate")
    return p


def main(argv: list[str] | None = None) -> int:
    apply_quiet_env()
    args = build_parser().parse_args(argv)
    handlers = {"demo": cmd_demo, "build-zoo": lambda a: cmd_build_zoo(a) and 0,
                "register-demo": lambda a: cmd_register_demo(a) and 0, "status": cmd_status,
                "registry": cmd_init_global, "dbt": cmd_dbt}
    return int(handlers[args.cmd](args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""``fplake``: the project's command line (demo, zoo, registry, dbt, reports).

    fplake demo [--profile full|tiny]      build zoo -> register -> fingerprint -> lake (-> dbt -> report)
    fplake build-zoo [--profile ...]       build or reuse the cached demo zoo
    fplake register-demo [--profile ...]   register the zoo's models and lineage edges in the lake
    fplake registry init-global            create the global registry and print its admin token once
    fplake status                          row counts of every lake table
    fplake lake history|read|optimize|migrate   table history, time travel, compaction, migration
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
    print(f"lake: {lake.root}")
    for name in TABLES:
        if lake.exists(name):
            print(f"  {name:<26}{lake.count(name):>10} rows {lake.file_count(name):>6} file(s)   "
                  f"version {lake.version(name)}")
        else:
            print(f"  {name:<26}{'-':>10} (not created yet)")
    return 0


def cmd_lake(args) -> int:
    """``fplake lake history|read|optimize|migrate``: the table format's maintenance and time travel."""
    from fingerprinting.lake import TABLES, Lake

    settings = _settings(args)
    lake = Lake(settings.lake_root)
    if args.lake_cmd == "migrate":
        done = lake.migrate_legacy(progress=print)
        print(f"lake {lake.root}: " + (f"migrated {len(done)} table(s) to Delta" if done else "already Delta; nothing to do"))
        return 0
    if args.lake_cmd == "optimize":
        for name in args.tables or [t for t in TABLES if lake.exists(t)]:
            r = lake.optimize(name, vacuum=not args.no_vacuum, retention_hours=args.retention_hours)
            print(f"{name:<26} files {r['files_before']:>5} -> {r['files_after']:<5} vacuumed {r['vacuumed']}")
        return 0
    if args.lake_cmd == "history":
        hist = lake.history(args.table, args.limit)
        if args.format == "json":
            print(json.dumps(hist, indent=1, default=str))
            return 0
        print(f"{'version':>7}  {'timestamp':<34}{'operation':<18}rows written")
        for h in hist:
            m = h["metrics"]
            rows = m.get("num_added_rows", m.get("num_target_rows_inserted", m.get("num_output_rows", "")))
            print(f"{h['version']:>7}  {h['timestamp'] or '':<34}{h['operation']:<18}{rows}")
        return 0
    # read: print rows, optionally as of a version
    filters = dict(w.split("=", 1) for w in args.where)
    t = lake.read(args.table, filters=filters, version=args.version)
    print(f"{args.table} @ version {args.version if args.version is not None else lake.version(args.table)}: "
          f"{t.num_rows} rows")
    import polars as pl

    with pl.Config(tbl_rows=args.limit, tbl_cols=-1, fmt_str_lengths=40):
        print(pl.from_arrow(t.slice(0, args.limit)))
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


def _global_options(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--lake-root", default=default, help="lake folder or s3:// URL (FPLAKE_LAKE_ROOT)")
    parser.add_argument("--warehouse", default=default, help="DuckDB warehouse file (FPLAKE_WAREHOUSE)")
    parser.add_argument("--reports-dir", default=default, help="reports folder (FPLAKE_REPORTS_DIR)")
    parser.add_argument("--device", default=default, help="auto, cpu, cuda or cuda:N (FPLAKE_DEVICE)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fplake", description="Fingerprint Lake command line")
    _global_options(p, argparse.SUPPRESS)
    p.set_defaults(lake_root=None, warehouse=None, reports_dir=None, device=None)
    # the same options after the sub-command; SUPPRESS keeps a sub-parser from resetting them
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", parents=[common], help="set up and run the main job on the demo zoo")
    d.add_argument("--profile", default="full", choices=["full", "tiny"])
    d.add_argument("--recompute", action="store_true", help="ignore stored fingerprints")
    d.add_argument("--skip-analytics", action="store_true", help="stop after the lake (no dbt, no report)")
    d.add_argument("--no-progress", action="store_true")
    z = sub.add_parser("build-zoo", parents=[common])
    z.add_argument("--profile", default="full", choices=["full", "tiny"])
    z.add_argument("--force", action="store_true")
    r = sub.add_parser("register-demo", parents=[common])
    r.add_argument("--profile", default="full", choices=["full", "tiny"])
    g = sub.add_parser("registry", parents=[common])
    gs = g.add_subparsers(dest="reg_cmd", required=True)
    gi = gs.add_parser("init-global", parents=[common])
    gi.add_argument("--location")
    gi.add_argument("--token", help="use this token instead of a random one")
    sub.add_parser("status", parents=[common])
    lk = sub.add_parser("lake", parents=[common], help="lake tables: history, time travel, optimize, migrate")
    lks = lk.add_subparsers(dest="lake_cmd", required=True)
    lh = lks.add_parser("history", parents=[common], help="commits of a table, newest first")
    lh.add_argument("table")
    lh.add_argument("--limit", type=int, default=20)
    lh.add_argument("--format", choices=["pretty", "json"], default="pretty")
    lr = lks.add_parser("read", parents=[common], help="print a table's rows, optionally as of a version")
    lr.add_argument("table")
    lr.add_argument("--version", type=int, default=None, help="read as of this version (time travel)")
    lr.add_argument("--where", action="append", default=[], metavar="COL=VALUE")
    lr.add_argument("--limit", type=int, default=20)
    lo = lks.add_parser("optimize", parents=[common], help="compact small files and vacuum unreferenced ones")
    lo.add_argument("tables", nargs="*")
    lo.add_argument("--retention-hours", type=int, default=168,
                    help="keep unreferenced files this recent (time travel / running readers); 0 = drop all")
    lo.add_argument("--no-vacuum", action="store_true")
    lks.add_parser("migrate", parents=[common], help="convert a lake of the old Parquet layout to Delta tables in place")
    db = sub.add_parser("dbt", parents=[common], help="run dbt on the project with the lake/warehouse settings exported")
    db.add_argument("dbt_args", nargs=argparse.REMAINDER, help="e.g. build, test, docs generate")
    return p


def main(argv: list[str] | None = None) -> int:
    apply_quiet_env()
    args = build_parser().parse_args(argv)
    handlers = {"demo": cmd_demo, "build-zoo": lambda a: cmd_build_zoo(a) and 0,
                "register-demo": lambda a: cmd_register_demo(a) and 0, "status": cmd_status,
                "registry": cmd_init_global, "dbt": cmd_dbt, "lake": cmd_lake}
    return int(handlers[args.cmd](args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""``fplake``: the project's command line (demo, zoo, registry, dbt, reports).

    fplake demo [--profile full|tiny]      build zoo -> register -> fingerprint -> lake (-> dbt -> report)
    fplake build-zoo [--profile ...]       build or reuse the cached demo zoo
    fplake register-demo [--profile ...]   register the zoo's models and lineage edges in the lake
    fplake registry init-global            create the global registry and print its admin token once
    fplake registry sync [--fingerprints]  copy the global registry's models (and fingerprints) into the lake
    fplake status                          row counts of every lake table
    fplake lake history|read|optimize|migrate   table history, time travel, compaction, migration
    fplake register PATH_OR_ID --family F --type T   check a model is loadable, then register it
    fplake models | model view|compare|similarities|find-similar   registry listing and model queries
    fplake configs ingest|report             architecture similarity and drift
    fplake memorization score|features|report   memorization taxonomy
    fplake server start|stop|status          a managed local Prefect server
    fplake mcp [--transport stdio|http]      the MCP server for agents (read-only tools over the lake)
    fplake lookup PATH [--register] [--html OUT]   rank registered models as likely relatives of a suspect
    fplake dbt build                       dbt over the lake into the DuckDB warehouse
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.settings import apply_quiet_env


def _warehouse_free(settings) -> None:
    """Commands that build marts fail fast, in one line, when the warehouse is held elsewhere."""
    from fingerprinting.warehouse import check_unlocked

    check_unlocked(settings)


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
    from flows.demo_flow import build_and_register_zoo

    settings = _settings(args)
    manifest = build_and_register_zoo.fn(args.profile, settings)
    print(f"registered {len(manifest['models'])} models (+ lineage edges) in {settings.lake_root}; "
          f"model info: {Path(settings.reports_dir) / 'model_info.json'}")
    return manifest


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
    from flows.demo_flow import demo_flow
    from flows.task_runners import flow_runner_kwargs, options_from_args

    settings = _settings(args)
    runner = options_from_args(args)  # a bad option or unreachable scheduler: one line, before any work
    if not args.skip_analytics:
        _warehouse_free(settings)
    out = demo_flow(profile=args.profile, recompute=args.recompute, analytics=not args.skip_analytics,
                    progress=not args.no_progress, settings=settings, **flow_runner_kwargs(runner))
    fp = out.fingerprints
    print(f"   fingerprints: computed {len(fp.computed)}, reused {len(fp.reused)}, failed {len(fp.failures)} "
          f"in {fp.seconds} s")
    for mid, err in fp.failures.items():
        print(f"   FAILED {mid}: {err}")
    print_separation(settings, out.config, fp)
    if out.configs is not None:
        print("\nconfigs:")
        print_config_summary(out.configs)
    if out.memorization is not None:
        from flows.memorization_flow import print_memorization_summary

        print("\nmemorization:")
        print_memorization_summary(out.memorization)
    print("\noutputs:")
    print(f"  lake:        {settings.lake_root}")
    print(f"  warehouse:   {settings.warehouse}")
    print(f"  experiment:  {fp.outputs.get('similarity_matrices')}")
    print(f"  reports:     {settings.reports_dir}")
    for name, path in out.dashboards.items():
        print(f"  dashboard:   {path}   ({name})")
    print(f"demo finished in {out.seconds} s")
    return 0 if out.ok else 1


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


def _registry(args) -> int:
    from flows.registry_cli import cmd_sync

    if args.reg_cmd == "browse":
        from flows.browse_cli import cmd_browse

        return cmd_browse(args)
    return cmd_sync(args) if args.reg_cmd == "sync" else cmd_init_global(args)


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


def print_config_summary(summary) -> None:
    ingested = ", ".join(f"{k} {v}" for k, v in summary.ingested.items())
    print(f"   configs landed: {ingested}; population {summary.population}; {summary.seconds} s")
    issues = sum(summary.issues.values())
    if issues:
        print(f"   {issues} field(s) rejected by validation (table config_validation_issues)")
    for line in summary.problems[:20]:
        print(f"   - {line}")
    if len(summary.problems) > 20:
        print(f"   ... and {len(summary.problems) - 20} more (see config_validation_issues)")
    for cycle in summary.cycles:
        print(f"   lineage cycle: {' -> '.join(cycle)}")


def cmd_configs(args) -> int:
    """``fplake configs ingest``: config.json features, similarities, drift inputs into the lake."""
    from flows.config_flow import config_flow

    settings = _settings(args)
    sources = args.source if args.source is not None else (["registry"] if args.path else
                                                          ["registry", "catalogue", "lineage"])
    summary = config_flow(sources=sources, paths=args.path, settings=settings, k=args.k,
                          all_pairs_max=args.all_pairs_max, network=args.network)
    print_config_summary(summary)
    return 0


def cmd_configs_report(args) -> int:
    from flows.report_flow import config_report_flow

    settings = _settings(args)
    _warehouse_free(settings)
    paths = config_report_flow(settings=settings, output_dir=args.output_dir, run_dbt_build=not args.no_build)
    print(f"config dashboard: {paths['dashboard']}")
    return 0


def cmd_memorization(args) -> int:
    """``fplake memorization score|features|report``."""
    settings = _settings(args)
    if args.mem_cmd == "features":
        from fingerprinting.memorization.textfeatures import features_file

        res = features_file(args.input, args.text_column, args.output)
        print(f"{res['rows']} rows -> {res['output']} ({res['templating']} templating, {res['code']} code, "
              f"{res['null_texts']} empty text(s))")
        return 0
    if args.mem_cmd == "report":
        from flows.report_flow import memorization_report_flow

        _warehouse_free(settings)
        paths = memorization_report_flow(settings=settings, output_dir=args.output_dir,
                                         run_dbt_build=not args.no_build)
        print(f"memorization dashboard: {paths['dashboard']}")
        return 0
    from flows.memorization_flow import memorization_flow, print_memorization_summary

    summary = memorization_flow(args.models, args.corpus, corpus=args.name, text_column=args.text_column,
                                stride=args.stride, max_samples=args.max_samples, mode=args.mode, seed=args.seed,
                                batch_size=args.batch_size, recitation_threshold=args.recitation_threshold,
                                use_existing=args.use_existing, settings=settings, progress=not args.no_progress)
    print_memorization_summary(summary)
    return 0 if summary.ok else 1


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
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fplake", description="Fingerprint Lake command line")
    _global_options(p, argparse.SUPPRESS)
    p.set_defaults(lake_root=None, warehouse=None, reports_dir=None, device=None, debug=False)
    # the same options after the sub-command; SUPPRESS keeps a sub-parser from resetting them
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", parents=[common], help="set up and run the main job on the demo zoo")
    d.add_argument("--profile", default="full", choices=["full", "tiny"])
    d.add_argument("--recompute", action="store_true", help="ignore stored fingerprints")
    d.add_argument("--skip-analytics", action="store_true", help="stop after the lake (no dbt, no report)")
    d.add_argument("--no-progress", action="store_true")
    from flows.task_runners import add_runner_arguments

    add_runner_arguments(d)
    z = sub.add_parser("build-zoo", parents=[common], help="build or reuse the cached demo zoo")
    z.add_argument("--profile", default="full", choices=["full", "tiny"])
    z.add_argument("--force", action="store_true")
    r = sub.add_parser("register-demo", parents=[common], help="register the demo zoo and its lineage in the lake")
    r.add_argument("--profile", default="full", choices=["full", "tiny"])
    g = sub.add_parser("registry", parents=[common], help="the shared (global) registry")
    gs = g.add_subparsers(dest="reg_cmd", required=True)
    gi = gs.add_parser("init-global", parents=[common], help="create the global registry; prints the admin token once")
    gi.add_argument("--location")
    gi.add_argument("--token", help="use this token instead of a random one")
    from flows.registry_cli import add_sync_parser

    add_sync_parser(gs, common)
    from flows.browse_cli import add_browse_parser

    add_browse_parser(gs, common)
    sub.add_parser("status", parents=[common], help="which lake, and rows / files / version of every table")
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
    cf = sub.add_parser("configs", help="architecture similarity and drift from config.json")
    cfs = cf.add_subparsers(dest="configs_cmd", required=True)
    ci = cfs.add_parser("ingest", help="ingest configs (registry, catalogue, lineage sample, your files)")
    ci.add_argument("--source", action="append", choices=["registry", "catalogue", "lineage"], default=None,
                    help="built-in source (repeatable); default: all three, or registry when --path is given")
    ci.add_argument("--path", action="append", default=[],
                    help="folder of config.json files, or a JSONL / Parquet file with model_id and config")
    ci.add_argument("--k", type=int, default=10, help="nearest config neighbours kept per model and metric")
    ci.add_argument("--all-pairs-max", type=int, default=1000,
                    help="also store every pair when the population is at most this size")
    ci.add_argument("--network", action="store_true", help="fetch config.json of hf:// models")
    cr = cfs.add_parser("report", help="render the config similarity and drift dashboard")
    cr.add_argument("--output-dir", default=None)
    cr.add_argument("--no-build", action="store_true", help="use the marts as they are (no dbt build)")
    mm = sub.add_parser("memorization", help="memorization scores, features and the recite/reconstruct/recollect taxonomy")
    mms = mm.add_subparsers(dest="mem_cmd", required=True)
    ms = mms.add_parser("score", help="score registered models on a corpus (text, folder, JSONL or Parquet)")
    ms.add_argument("--models", nargs="+", required=True, help="registered model ids or display names")
    ms.add_argument("--corpus", required=True, help="text file, folder, JSONL or Parquet")
    ms.add_argument("--name", default=None, help="corpus name in the lake (default: the file's stem)")
    ms.add_argument("--text-column", default="text")
    ms.add_argument("--mode", choices=["stride", "random"], default="stride",
                    help="every window at --stride, or a seeded random sample of --max-samples windows")
    ms.add_argument("--stride", type=int, default=64)
    ms.add_argument("--max-samples", type=int, default=None)
    ms.add_argument("--seed", type=int, default=0)
    ms.add_argument("--batch-size", type=int, default=32)
    ms.add_argument("--recitation-threshold", type=int, default=6,
                    help="duplicates at or above this make a memorized sample recitation")
    ms.add_argument("--use-existing", action="store_true",
                    help="do not rescore a model that already has scores on this corpus")
    ms.add_argument("--no-progress", action="store_true")
    mf = mms.add_parser("features", help="text-only features of your samples (no model): templating, code, Huffman")
    mf.add_argument("--input", required=True, help="Parquet, JSONL or CSV")
    mf.add_argument("--text-column", required=True)
    mf.add_argument("--output", required=True, help="Parquet file to write")
    mr = mms.add_parser("report", help="render the memorization dashboard")
    mr.add_argument("--output-dir", default=None)
    mr.add_argument("--no-build", action="store_true", help="use the marts as they are (no dbt build)")
    from flows.server import add_server_parser

    add_server_parser(sub, common)
    from flows.model_cli import add_model_parsers

    add_model_parsers(sub, common)
    from flows.mcp_server import add_mcp_parser

    add_mcp_parser(sub, common)
    from flows.lookup_cli import add_lookup_parser

    add_lookup_parser(sub, common)
    from flows.verdict_cli import add_verdict_parser

    add_verdict_parser(sub, common)
    from flows.real_zoo_cli import add_real_zoo_parser

    add_real_zoo_parser(sub, common)
    db = sub.add_parser("dbt", parents=[common], help="run dbt on the project with the lake/warehouse settings exported")
    db.add_argument("dbt_args", nargs=argparse.REMAINDER, help="e.g. build, test, docs generate")
    return p


def main(argv: list[str] | None = None) -> int:
    apply_quiet_env()
    args = build_parser().parse_args(argv)
    from flows.server import (
        cmd_server,
        ensure_ephemeral_server_dies_with_parent,
        use_managed_server_if_running,
    )

    # before prefect is imported (it reads PREFECT_API_URL once): use `fplake server start`'s server if up,
    # else make sure Prefect's temporary server dies with this process
    use_managed_server_if_running()
    ensure_ephemeral_server_dies_with_parent()
    handlers = {"demo": cmd_demo, "build-zoo": lambda a: cmd_build_zoo(a) and 0,
                "register-demo": lambda a: cmd_register_demo(a) and 0, "status": cmd_status,
                "registry": _registry, "dbt": cmd_dbt, "lake": cmd_lake,
                "configs": lambda a: cmd_configs_report(a) if a.configs_cmd == "report" else cmd_configs(a),
                "memorization": cmd_memorization, "server": cmd_server}
    from flows.model_cli import HANDLERS as MODEL_HANDLERS

    handlers.update(MODEL_HANDLERS)
    from flows.mcp_server import cmd_mcp

    handlers["mcp"] = cmd_mcp
    from flows.lookup_cli import HANDLERS as LOOKUP_HANDLERS

    handlers.update(LOOKUP_HANDLERS)
    from flows.verdict_cli import HANDLERS as VERDICT_HANDLERS

    handlers.update(VERDICT_HANDLERS)
    from flows.real_zoo_cli import HANDLERS as REAL_ZOO_HANDLERS

    handlers.update(REAL_ZOO_HANDLERS)
    try:
        return int(handlers[args.cmd](args) or 0)
    except (FingerprintLakeError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"fplake: error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

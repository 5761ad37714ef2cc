"""``run_experiment --config CONFIG [--use-existing] [--write-to-registry]`` (original tool's options).

``--task-runner threads|dask`` fans the models out (``--dask-address tcp://HOST:PORT``
for an existing Dask cluster, ``--dask-workers N`` for a local one).
Exit codes: 0 all models fingerprinted; 1 some models failed (the rest are in
the lake); 2 invalid config, bad runner option or registry refusal (nothing was loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from fingerprinting.settings import apply_quiet_env


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_experiment", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="experiment config JSON (original format)")
    p.add_argument("--use-existing", action="store_true",
                   help="reuse stored fingerprints whose model, method and config hash match")
    p.add_argument("--write-to-registry", action="store_true",
                   help="also publish models and fingerprints to the global registry (admin token needed)")
    p.add_argument("--admin-token", default=None, help="admin token (default: $FPLAKE_ADMIN_TOKEN)")
    p.add_argument("--lake-root", default=None, help="lake root (default: $FPLAKE_LAKE_ROOT or ./lake)")
    p.add_argument("--output-dir", default=None, help="where fingerprints.json / similarity_matrices.json go")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N]")
    p.add_argument("--no-progress", action="store_true")
    from flows.task_runners import add_runner_arguments

    add_runner_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    apply_quiet_env()
    args = build_parser().parse_args(argv)
    from flows.server import ensure_ephemeral_server_dies_with_parent, use_managed_server_if_running

    use_managed_server_if_running()  # before prefect is imported: it reads PREFECT_API_URL once
    ensure_ephemeral_server_dies_with_parent()  # a SIGKILLed run leaves no temporary server behind
    from fingerprinting.experiment import ConfigError, load_config
    from fingerprinting.lake import Lake
    from fingerprinting.registry import (
        GlobalRegistry,
        RegistryPermissionError,
        UnknownModelError,
        resolve_models,
    )
    from fingerprinting.settings import get_settings
    from flows.task_runners import TaskRunnerError, flow_runner_kwargs, options_from_args

    settings = get_settings().with_overrides(lake_root=args.lake_root, device=args.device)
    try:
        runner = options_from_args(args)
        config = load_config(args.config)
        resolve_models(Lake(settings.lake_root).init(), config.models)  # fail before loading anything
        if args.write_to_registry:
            GlobalRegistry(settings.global_registry).check_write(args.admin_token)
    except (ConfigError, UnknownModelError, RegistryPermissionError, TaskRunnerError) as exc:
        print(f"run_experiment: error: {exc}", file=sys.stderr)
        return 2
    from flows.fingerprint_flow import fingerprint_flow

    try:
        summary = fingerprint_flow(config, use_existing=args.use_existing, write_to_registry=args.write_to_registry,
                                   admin_token=args.admin_token, settings=settings, output_dir=args.output_dir,
                                   progress=not args.no_progress, **flow_runner_kwargs(runner))
    except Exception as exc:  # e.g. the object store went away: one clear line, not a traceback
        if os.environ.get("FPLAKE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:400]
        print(f"run_experiment: error: {type(exc).__name__}: {first} (committed results are kept; "
              "rerun with --use-existing to continue; FPLAKE_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    print(json.dumps({"run_id": summary.run_id, "models": len(summary.models), "computed": len(summary.computed),
                      "reused": len(summary.reused), "failures": summary.failures,
                      "pairs": summary.pair_counts, "outputs": summary.outputs, "seconds": summary.seconds},
                     indent=2))
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""``compute_similarity_metrics``: statistics, reports and dashboards for one method x metric.

    compute_similarity_metrics --results-file similarity_matrices.json --model-info model_info.json \\
        --method input_output --metric l1 --output-dir DIR

With ``--results-file`` the matrices (original tool's format, possibly produced
elsewhere) are loaded into a lake under DIR/lake, the dbt marts are built into
DIR/warehouse.duckdb and the reports are rendered into DIR. Without it the
project's own lake and warehouse are used. Models missing from the info file
are listed and skipped. Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.jsonio import read_json_file
from fingerprinting.settings import apply_quiet_env


class InputError(FingerprintLakeError, ValueError):
    pass


def read_model_info(path: str) -> dict[str, dict]:
    data = read_json_file(path, "model info file", InputError)
    if not isinstance(data, list):
        raise InputError(f"model info file {path!r} must be a JSON array of objects")
    out = {}
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise InputError(f"model info entry {i} must be an object")
        missing = [k for k in ("model_id", "family", "model_type") if row.get(k) in (None, "")]
        if missing:
            raise InputError(f"model info entry {i} lacks {missing}")
        mid = str(row["model_id"])
        out[mid] = {"model_id": mid, "family": str(row["family"]), "model_type": str(row["model_type"]),
                    "display_name": str(row.get("display_name") or mid)}
    return out


def read_results(path: str, method: str, metric: str) -> tuple[list[str], list[list[float]]]:
    data = read_json_file(path, "results file", InputError)
    sm = data.get("similarity_matrices") if isinstance(data, dict) else None
    if not isinstance(sm, dict):
        raise InputError(f"results file {path!r} has no 'similarity_matrices' object")
    if method not in sm:
        raise InputError(f"method {method!r} not in results file; it has {sorted(sm)}")
    if metric not in sm[method]:
        raise InputError(f"metric {metric!r} not in results for {method!r}; it has {sorted(sm[method])}")
    entry = sm[method][metric]
    models, matrix = entry.get("models"), entry.get("matrix")
    if not isinstance(models, list) or not isinstance(matrix, list):
        raise InputError(f"results[{method}][{metric}] needs 'models' and 'matrix' lists")
    n = len(models)
    if len(matrix) != n or any(not isinstance(r, list) or len(r) != n for r in matrix):
        raise InputError(f"results[{method}][{metric}]: matrix must be {n} x {n} for {n} models")
    return [str(m) for m in models], matrix


def load_external(results_file: str, info: dict[str, dict], method: str, metric: str, lake_root: str) -> tuple[str, list[str]]:
    """Write the matrix and model info into a lake; returns (config_hash, skipped model ids)."""
    import math

    import pyarrow as pa

    from fingerprinting.lake import Lake
    from fingerprinting.registry import ModelRecord, register_models

    models, matrix = read_results(results_file, method, metric)
    skipped = [m for m in models if m not in info]
    keep = [i for i, m in enumerate(models) if m in info]
    if len(keep) < 2:  # nothing to compare: say so in one line instead of failing deep in the report
        sample = ", ".join(models[:3]) + (", ..." if len(models) > 3 else "")
        raise InputError(f"{len(keep)} of the {len(models)} models in {results_file} ({sample}) "
                         f"match a model_id of the model info file; at least 2 are needed")
    config_hash = "ext-" + hashlib.sha256(Path(results_file).read_bytes()).hexdigest()[:12]
    lake = Lake(lake_root).init()
    register_models(lake, [ModelRecord(models[i], "external", info[models[i]]["family"], info[models[i]]["model_type"],
                                       info[models[i]]["display_name"]) for i in keep])
    a, b, s = [], [], []
    for x in range(len(keep)):
        for y in range(x + 1, len(keep)):
            i, j = keep[x], keep[y]
            v = matrix[i][j]
            if v is None or not isinstance(v, int | float) or not math.isfinite(v):
                raise InputError(f"matrix entry for ({models[i]}, {models[j]}) is not a finite number: {v!r}")
            ma, mb = sorted([models[i], models[j]])
            a.append(ma)
            b.append(mb)
            s.append(float(v))
    lake.replace("similarities", pa.table({"model_a": a, "model_b": b, "method": [method] * len(s),
                                           "metric": [metric] * len(s), "config_hash": [config_hash] * len(s),
                                           "similarity": s}),
                 {"method": method, "metric": metric, "config_hash": config_hash})
    return config_hash, skipped


def main(argv: list[str] | None = None) -> int:
    apply_quiet_env()
    p = argparse.ArgumentParser(prog="compute_similarity_metrics", description=__doc__.splitlines()[0])
    p.add_argument("--results-file", help="similarity_matrices.json (original format); default: the project's lake")
    p.add_argument("--model-info", help="JSON array of {model_id, family, model_type, display_name}")
    p.add_argument("--method", default="input_output")
    p.add_argument("--metric", default="l1")
    p.add_argument("--config-hash", default=None, help="with the project lake: which config (default: latest)")
    p.add_argument("--output-dir", default=None)
    args = p.parse_args(argv)
    from flows.server import ensure_ephemeral_server_dies_with_parent, use_managed_server_if_running

    use_managed_server_if_running()  # before prefect is imported
    ensure_ephemeral_server_dies_with_parent()

    from fingerprinting.settings import get_settings

    settings = get_settings()
    try:
        if args.results_file:
            if not args.model_info:
                raise InputError("--model-info is required with --results-file")
            out = Path(args.output_dir or "similarity_report").resolve()
            info = read_model_info(args.model_info)
            settings = settings.with_overrides(lake_root=str(out / "lake"), warehouse=str(out / "warehouse.duckdb"),
                                               reports_dir=str(out))
            config_hash, skipped = load_external(args.results_file, info, args.method, args.metric, settings.lake_root)
            if skipped:
                print(f"skipped {len(skipped)} model(s) missing from {args.model_info}: {', '.join(skipped)}")
        else:
            out = Path(args.output_dir).resolve() if args.output_dir else None
            config_hash = args.config_hash
            if args.model_info:
                read_model_info(args.model_info)  # validated; the lake's registry supplies the facts
    except InputError as exc:
        print(f"compute_similarity_metrics: error: {exc}", file=sys.stderr)
        return 2
    from flows.report_flow import report_flow

    try:
        from fingerprinting.warehouse import check_unlocked

        check_unlocked(settings)  # one clear line instead of a failed flow's tracebacks
        paths = report_flow(method=args.method, metric=args.metric, config_hash=config_hash, settings=settings,
                            output_dir=str(out) if out else None)
    except (LookupError, FingerprintLakeError) as exc:
        print(f"compute_similarity_metrics: error: {exc}", file=sys.stderr)
        return 2
    print(f"dashboard: {paths['dashboard']}")
    for name, path in sorted(paths.items()):
        if name != "dashboard":
            print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

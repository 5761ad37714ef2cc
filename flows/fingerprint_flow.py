"""``fingerprint_flow``: registry models -> fingerprints -> lake -> pairwise similarities -> lake.

Reads like a table of contents; the work lives in :mod:`fingerprinting.pipeline`.
With a parallel task runner (``task_runner="threads"`` or ``"dask"``, see
:mod:`flows.task_runners`) the models fan out: each task loads its model,
fingerprints it and merges its own rows into the lake; similarities and the
JSON exports stay on the driver, after every model has landed.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from tqdm.auto import tqdm

from fingerprinting import pipeline
from fingerprinting.experiment import ExperimentConfig
from fingerprinting.lake import Lake
from fingerprinting.loading import ModelSource
from fingerprinting.methods import Fingerprint, make_method
from fingerprinting.registry import GlobalRegistry, ModelRecord, resolve_models
from fingerprinting.settings import Settings, get_settings
from flows.task_runners import apply_torch_threads, fan_out, runner_options, torch_threads


@dataclass
class RunSummary:
    run_id: str
    experiment_key: str
    models: list[str]
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    pair_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True, task_run_name="fingerprint-{record.model_id}")
def fingerprint_model(record: ModelRecord, source_identity: str, method_specs: list[tuple[str, dict, str]],
                      device: str, dtype: str) -> list[dict]:
    """Load one model, compute the listed methods. Cached on model, method configs and code."""
    methods = [make_method(name, args) for name, args, _ in method_specs]
    fps = pipeline.fingerprint_model(record, methods, device=device, dtype=dtype)
    return [asdict(fp) | {"vector": fp.vector.tolist()} for fp in fps]


@task(retries=2, retry_delay_seconds=1)
def write_fingerprints(lake_root: str, fps: list[dict], run_id: str) -> int:
    import numpy as np

    lake = Lake(lake_root)
    objs = [Fingerprint(**{**d, "vector": np.asarray(d["vector"])}) for d in fps]
    return pipeline.write_fingerprints(lake, pipeline.fingerprint_table(objs, run_id))


@task(task_run_name="fingerprint-and-write-{record.model_id}")
def fingerprint_and_write(lake_root: str, record: ModelRecord, source_identity: str,
                          method_specs: list[tuple[str, dict, str]], device: str, dtype: str, run_id: str,
                          refresh: bool, torch_threads: int | None) -> list[str]:
    """A worker's whole share for one model: load, fingerprint (cached task), merge its rows."""
    apply_torch_threads(torch_threads)
    fps = fingerprint_model.with_options(refresh_cache=refresh)(record, source_identity, method_specs, device, dtype)
    write_fingerprints(lake_root, fps, run_id)
    return [f"{record.model_id}/{d['method']}" for d in fps]


@task(retries=2, retry_delay_seconds=1)
def write_similarities(lake_root: str, method: str, config_hash: str, metrics: list[str], device: str) -> dict:
    return pipeline.compute_similarities(Lake(lake_root), method, config_hash, metrics,
                                         device="cpu" if device in ("auto", "cpu") else device)


@task
def export_json(lake_root: str, model_ids: list[str], hashes: dict[str, str], metrics: list[str], out_dir: str) -> dict:
    lake = Lake(lake_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "fingerprints": (out / "fingerprints.json", pipeline.export_fingerprints_json(lake, model_ids, hashes)),
        "similarity_matrices": (out / "similarity_matrices.json",
                                pipeline.export_similarity_json(lake, model_ids, hashes, metrics)),
    }
    for path, payload in files.values():
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(path)
    return {k: str(v[0]) for k, v in files.items()}


@task(retries=2, retry_delay_seconds=1)
def publish(settings: Settings, admin_token: str | None, records: list[ModelRecord]) -> int:
    """Copy the models and their fingerprints to the global registry (token checked again)."""
    fps = Lake(settings.lake_root).read("fingerprints")
    mask = pc.is_in(fps.column("model_id"), value_set=pa.array([r.model_id for r in records], pa.string()))
    return GlobalRegistry(settings.global_registry).publish(admin_token, records, fps.filter(mask))


@flow(name="fingerprint_flow")
def fingerprint_flow(config: ExperimentConfig, use_existing: bool = False, write_to_registry: bool = False,
                     admin_token: str | None = None, settings: Settings | None = None,
                     output_dir: str | None = None, progress: bool = True, task_runner: str = "sequential",
                     dask_address: str | None = None, dask_workers: int | None = None,
                     threads_per_worker: int | None = None) -> RunSummary:
    """Fingerprint the config's models, land fingerprints and similarities in the lake.

    ``task_runner``: "sequential" (default), "threads" or "dask" (a local cluster of
    ``dask_workers`` processes, or the scheduler at ``dask_address``); the lake ends
    up the same row for row whichever runs the models. ``threads_per_worker``: torch
    threads per worker (and for the sequential loop; None leaves the process's setting).
    """
    t0 = time.perf_counter()
    settings = settings or get_settings()
    logger = get_run_logger()
    runner = runner_options(task_runner, dask_address, dask_workers, threads_per_worker)
    lake = Lake(settings.lake_root).init()
    registry = GlobalRegistry(settings.global_registry) if write_to_registry else None
    if registry is not None:
        registry.check_write(admin_token)  # refuse before any model is loaded
    records = resolve_models(lake, config.models)
    methods = config.instances()
    hashes = {name: m.config_hash for name, m in methods.items()}
    summary = RunSummary(uuid.uuid4().hex[:12], config.experiment_key(), [r.model_id for r in records])
    device = config.device or settings.device

    stored = {name: set(pipeline.existing_fingerprints(lake, name, m.config_hash)) if use_existing else set()
              for name, m in methods.items()}

    def still_to_do(record: ModelRecord) -> list[tuple[str, dict, str]]:
        todo = []
        for name, m in methods.items():
            if record.model_id in stored[name]:
                summary.reused.append(f"{record.model_id}/{name}")
            else:
                todo.append((name, m.config, m.config_hash))
        return todo

    if runner.parallel:
        work = [(r, todo) for r in records if (todo := still_to_do(r))]
        if work:
            _fan_out_models(work, runner, settings, device, config.dtype, use_existing, summary, progress, logger)
    else:
        with torch_threads(runner.threads_per_worker):  # None: as today
            for record in tqdm(records, desc="fingerprinting", unit="model", disable=not progress):
                todo = still_to_do(record)
                if not todo:
                    continue
                ident = ModelSource.parse(record.source).identity()
                state = fingerprint_model.with_options(refresh_cache=not use_existing)(
                    record, ident, todo, device, config.dtype, return_state=True)
                if not state.is_completed():
                    try:
                        state.result()
                    except Exception as exc:  # one failing model must not sink the batch
                        summary.failures[record.model_id] = f"{type(exc).__name__}: {exc}"
                        logger.error("model %s failed: %s", record.model_id, exc)
                    continue
                fps = state.result()
                write_fingerprints(settings.lake_root, fps, summary.run_id)
                summary.computed += [f"{record.model_id}/{d['method']}" for d in fps]

    for name, h in hashes.items():
        summary.pair_counts[name] = write_similarities(settings.lake_root, name, h, config.metrics, device)
    out_dir = output_dir or str(Path(settings.reports_dir) / "experiments" / summary.experiment_key)
    summary.outputs = export_json(settings.lake_root, summary.models, hashes, config.metrics, out_dir)
    if registry is not None:
        ok = [r for r in records if r.model_id not in summary.failures]
        publish(settings, admin_token, ok)
        summary.outputs["global_registry"] = settings.global_registry
    summary.seconds = round(time.perf_counter() - t0, 2)
    if summary.failures:
        logger.warning("%d model(s) failed: %s", len(summary.failures), ", ".join(summary.failures))
    return summary


def _fan_out_models(work: list, runner, settings: Settings, device: str, dtype: str, use_existing: bool,
                    summary: RunSummary, progress: bool, logger) -> None:
    """One task per model on the runner; each writes its own rows. Summary kept in config order."""
    params = [{"lake_root": settings.lake_root, "record": record,
               "source_identity": ModelSource.parse(record.source).identity(), "method_specs": todo,
               "device": device, "dtype": dtype, "run_id": summary.run_id, "refresh": not use_existing,
               "torch_threads": runner.threads_per_worker} for record, todo in work]
    done: dict[int, list[str]] = {}
    failed: dict[int, str] = {}
    for i, fut in fan_out(runner, fingerprint_and_write, params, progress=progress, desc="fingerprinting"):
        try:
            done[i] = fut.result()
        except Exception as exc:  # one failing model must not sink the batch
            failed[i] = f"{type(exc).__name__}: {exc}"
            logger.error("model %s failed: %s", work[i][0].model_id, exc)
    for i in range(len(work)):
        if i in failed:
            summary.failures[work[i][0].model_id] = failed[i]
        else:
            summary.computed += done[i]

"""``demo_flow``: the README's main job, one flow that the CLI (`fplake demo`) and the
nightly deployment both call.

    zoo + registry -> fingerprints -> configs -> memorization -> dbt build -> dashboards
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, task

from fingerprinting.experiment import ExperimentConfig, parse_config
from fingerprinting.lake import Lake
from fingerprinting.registry import register_models, zoo_records
from fingerprinting.settings import Settings, get_settings

DEMO_METHODS = {
    "input_output": {"n0": 40, "probe_tokens_path": "helper_data/io_tokens/probe_tokens.txt",
                     "target_tokens_path": "helper_data/io_tokens/target_tokens.txt"},
    "weight": {"size": 50},
    "weight_spectrum": {"k": 32, "profile_points": 16},
    # representation- and output-level methods: the ones that see distillation (docs/fingerprints.md)
    "hidden_cka": {},
    "next_token": {},
}


@dataclass
class DemoSummary:
    manifest: dict
    config: ExperimentConfig
    fingerprints: object = None  # fingerprint_flow's RunSummary
    configs: object = None  # config_flow's ConfigRunSummary
    memorization: object = None  # memorization_flow's summary
    provenance: dict = field(default_factory=dict)  # {"verdict": ProvenanceSummary, "lineage": LineageRunSummary}
    dashboards: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.fingerprints is not None and self.fingerprints.ok


def demo_config(manifest: dict, methods: list[str] | None = None) -> dict:
    """The demo experiment: every zoo model, the demo methods, every metric."""
    from fingerprinting.metrics import METRICS

    names = methods or list(DEMO_METHODS)
    return {"name": "demo", "models": [m["model_id"] for m in manifest["models"]], "methods": names,
            "method_args": {m: DEMO_METHODS[m] for m in names}, "metrics": METRICS.names()}


@task
def build_and_register_zoo(profile: str, settings: Settings, progress: bool = True) -> dict:
    """Build (or reuse) the demo zoo, register its models and lineage, write model_info.json."""
    from fingerprinting.zoo import build_zoo, model_info

    manifest = build_zoo(profile, settings, progress=progress)
    register_models(Lake(settings.lake_root).init(), zoo_records(manifest))
    info_path = Path(settings.reports_dir) / "model_info.json"
    info_path.parent.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(model_info(manifest), indent=1))
    return manifest


def provenance_stage(settings: Settings, progress: bool = True) -> dict:
    """Fit the verdict on every stored similarity, then infer lineage from its scores."""
    from flows.lineage_flow import lineage_flow
    from flows.provenance_flow import provenance_flow

    verdict = provenance_flow(settings=settings)
    lineage = lineage_flow(settings=settings, progress=progress)
    return {"verdict": verdict, "lineage": lineage}


@flow(name="demo")
def demo_flow(profile: str = "full", recompute: bool = False, analytics: bool = True, progress: bool = True,
              verbose: bool = True, settings: Settings | None = None, task_runner: str = "sequential",
              dask_address: str | None = None, dask_workers: int | None = None,
              threads_per_worker: int | None = None) -> DemoSummary:
    """Zoo -> fingerprints -> configs -> memorization -> marts -> dashboards, reusing what is stored.

    ``task_runner`` ("sequential", "threads", "dask"; see :mod:`flows.task_runners`)
    fans the model work of stages 2-4 out; a local Dask cluster is started once for all three.
    """
    from flows.config_flow import config_flow
    from flows.fingerprint_flow import fingerprint_flow
    from flows.memorization_flow import demo_memorization
    from flows.report_flow import (
        config_report_flow,
        memorization_report_flow,
        provenance_report_flow,
        report_flow,
    )
    from flows.task_runners import flow_runner_kwargs, runner_options, runner_session

    say = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    settings = settings or get_settings()
    runner = runner_options(task_runner, dask_address, dask_workers, threads_per_worker)  # fail before work
    say("== 1/6 demo zoo + registry")
    manifest = build_and_register_zoo(profile, settings, progress)
    config = parse_config(demo_config(manifest))
    out = DemoSummary(manifest, config)
    with runner_session(runner) as shared:
        kw = flow_runner_kwargs(shared)
        say(f"== 2/6 fingerprints ({len(config.models)} models x {len(config.methods)} methods, "
            f"{len(config.metrics)} metrics" + (f"; {runner.describe()})" if runner.parallel else ")"))
        out.fingerprints = fingerprint_flow(config, use_existing=not recompute, settings=settings,
                                            progress=progress, **kw)
        say("== 3/6 configs (zoo, the transformers catalogue, the Hub lineage sample)")
        out.configs = config_flow(sources=["registry", "catalogue", "lineage"], settings=settings, **kw)
        say("== 4/6 memorization")
        out.memorization = demo_memorization(profile=profile, settings=settings, progress=progress,
                                             use_existing=not recompute, **kw)
    say("== 5/6 provenance: calibrated verdict (leave-one-family-out) + lineage recovery")
    out.provenance = provenance_stage(settings, progress)
    if analytics:
        say("== 6/6 dbt build + dashboards")
        inst = config.instances()
        io = report_flow(method="input_output", metric="l1", config_hash=inst["input_output"].config_hash,
                         settings=settings, print_summary=verbose)
        # the cheap weight signal separates lineage best on this zoo: render it too (marts already built)
        ws = report_flow(method="weight_spectrum", metric="l1", config_hash=inst["weight_spectrum"].config_hash,
                         settings=settings, run_dbt_build=False, print_summary=False)
        out.dashboards = {"input_output": io["dashboard"], "weight_spectrum": ws["dashboard"]}
        out.dashboards["configs"] = config_report_flow(settings=settings, run_dbt_build=False)["dashboard"]
        out.dashboards["memorization"] = memorization_report_flow(settings=settings,
                                                                  run_dbt_build=False)["dashboard"]
        out.dashboards["provenance"] = provenance_report_flow(settings=settings, run_dbt_build=False)["dashboard"]
    out.seconds = round(time.perf_counter() - t0, 1)
    return out

"""``config_flow``: config sources -> features -> lake -> similarities, embedding, phylogeny -> lake.

Reads like a table of contents; the work lives in :mod:`fingerprinting.configs`.
Sources: ``registry`` (every registered model), ``catalogue`` (every
architecture transformers knows), ``lineage`` (the real Hub lineage sample,
registered with its edges), and user paths (folder, JSONL, Parquet).
With a parallel task runner (:mod:`flows.task_runners`) the sources other than
the lineage sample are read at once; their rows land in the same order as
sequentially, so the lake is the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import flow, task

from fingerprinting.configs import analysis, ingest
from fingerprinting.configs.drift import detect_cycles
from fingerprinting.configs.features import read_config_source
from fingerprinting.lake import Lake
from fingerprinting.registry import ModelRecord, list_models, register_models
from fingerprinting.settings import Settings, get_settings
from flows.task_runners import fan_out_calls, runner_options

SOURCES = ("registry", "catalogue", "lineage")


@dataclass
class ConfigRunSummary:
    ingested: dict[str, int] = field(default_factory=dict)  # source -> configs landed
    issues: dict[str, int] = field(default_factory=dict)  # source -> validation issues
    problems: list[str] = field(default_factory=list)  # one line each, model or line named
    cycles: list[list[str]] = field(default_factory=list)
    similarity_rows: dict[str, int] = field(default_factory=dict)
    population: int = 0
    seconds: float = 0.0


@task(retries=2, retry_delay_seconds=1, task_run_name="write-configs-{batch.source}")
def write_batch(lake_root: str, batch: ingest.ConfigBatch) -> int:
    lake = Lake(lake_root)
    tables = batch.tables()
    lake.merge("model_configs", tables["model_configs"])
    # a source's issues are recomputed whole on each run: fixed configs lose their old issues
    lake.replace("config_validation_issues", tables["config_validation_issues"], {"source": batch.source})
    lake.merge("model_traits", tables["model_traits"])
    return tables["model_configs"].num_rows


@task
def read_registry_batch(lake_root: str, network: bool) -> ingest.ConfigBatch:
    records = [r for r in list_models(Lake(lake_root)) if not r.source.startswith("hf://") or network]
    return ingest.build_batch(ingest.registry_items(records, network=network), "registry")


@task
def read_catalogue_batch() -> ingest.ConfigBatch:
    return ingest.build_batch(ingest.catalogue_items(), "catalogue")


@task
def read_path_batch(path: str) -> ingest.ConfigBatch:
    return ingest.build_batch(read_config_source(path), f"user:{path}")


@task(retries=2, retry_delay_seconds=1)
def register_lineage(lake_root: str) -> ingest.ConfigBatch:
    """Register the Hub lineage sample's models (family = tree root) and edges; return its config rows."""
    data = ingest.lineage_batch()
    records = [ModelRecord(m["model_id"], f"hf://{m['model_id']}", m["family"],
                           "Base" if m.get("depth") == 0 else "Finetune", m["model_id"], m.get("model_type") or "",
                           [(e["parent_id"], e["relation"]) for e in data.edges if e["child_id"] == m["model_id"]])
               for m in data.models]
    register_models(Lake(lake_root), records)
    return data.batch


@task
def analyse_population(lake_root: str, k: int, all_pairs_max: int) -> dict:
    """Similarities per metric, embedding and phylogeny over every config in the lake."""
    lake = Lake(lake_root)
    cfg = lake.read("model_configs")
    ids = cfg.column("model_id").to_pylist()
    rows = cfg.to_pylist()
    counts = {}
    for metric, table in analysis.similarity_tables(ids, rows, k=k, all_pairs_max=all_pairs_max).items():
        counts[metric] = lake.replace("config_similarities", table, {"metric": metric})
    models = lake.read("models", columns=["model_id", "family"]).to_pylist()
    family_of = {m["model_id"]: m["family"] for m in models}
    edges = lake.read("model_edges").to_pylist()
    emb, phylo = analysis.embedding_and_phylogeny(ids, rows, family_of, edges)
    lake.overwrite("config_embedding", emb)
    lake.overwrite("config_phylogeny", phylo)
    return counts


@task
def find_cycles(lake_root: str) -> list[list[str]]:
    return detect_cycles([(e["parent_id"], e["child_id"]) for e in Lake(lake_root).read("model_edges").to_pylist()])


@task
def edges_without_config(lake_root: str) -> list[str]:
    """One line for the lineage edges whose parent or child has no config (their drift stays empty)."""
    lake = Lake(lake_root)
    have = set(lake.read("model_configs", columns=["model_id"]).column("model_id").to_pylist())
    missing = [(e["parent_id"], e["child_id"]) for e in lake.read("model_edges").to_pylist()
               if e["parent_id"] not in have or e["child_id"] not in have]
    if not missing:
        return []
    examples = "; ".join(f"{p} -> {c}" for p, c in missing[:3])
    return [f"{len(missing)} lineage edge(s) have no config at one end, so no drift (e.g. {examples})"]


@flow(name="config_flow")
def config_flow(sources: list[str] | tuple[str, ...] = SOURCES, paths: list[str] | tuple[str, ...] = (),
                settings: Settings | None = None, k: int = 10, all_pairs_max: int = 1000,
                network: bool = False, task_runner: str = "sequential", dask_address: str | None = None,
                dask_workers: int | None = None, threads_per_worker: int | None = None) -> ConfigRunSummary:
    """Ingest configs from the sources and paths, then analyse the whole config population.

    ``task_runner`` ("sequential", "threads", "dask"): with a parallel one the
    registry, catalogue and path sources are read concurrently (writes stay in order).
    """
    t0 = time.perf_counter()
    settings = settings or get_settings()
    runner = runner_options(task_runner, dask_address, dask_workers, threads_per_worker)
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown config source(s) {unknown}; known: {list(SOURCES)} (or give paths)")
    lake = Lake(settings.lake_root).init()
    summary = ConfigRunSummary()
    batches = []
    if "lineage" in sources:  # first, so registry ingestion below sees nothing it cannot read offline
        batches.append(register_lineage(lake.root))
    reads = []
    if "registry" in sources:
        reads.append((read_registry_batch, {"lake_root": lake.root, "network": network}))
    if "catalogue" in sources:
        reads.append((read_catalogue_batch, {}))
    reads += [(read_path_batch, {"path": p}) for p in paths]
    if runner.parallel and len(reads) > 1:
        done = {i: fut.result() for i, fut in fan_out_calls(runner, reads, progress=False, desc="config sources")}
        batches += [done[i] for i in range(len(reads))]
    else:
        batches += [t(**kw) for t, kw in reads]
    for b in batches:
        summary.ingested[b.source] = write_batch(lake.root, b)
        summary.issues[b.source] = len(b.issues)
        summary.problems += b.problems
    summary.cycles = find_cycles(lake.root)
    summary.problems += edges_without_config(lake.root)
    summary.similarity_rows = analyse_population(lake.root, k, all_pairs_max)
    summary.population = lake.count("model_configs")
    summary.seconds = round(time.perf_counter() - t0, 1)
    return summary

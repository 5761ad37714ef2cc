"""``memorization_flow``: corpus -> 64-token samples -> greedy scores + features -> lake -> taxonomic model -> lake.

Reads like a table of contents; the work lives in :mod:`fingerprinting.memorization`.
One model failing (cannot load, cannot generate, corpus too short for its
tokenizer) is reported in one line and the rest land. With a parallel task
runner (:mod:`flows.task_runners`) each model's scoring, writing and fit run as
one task on a worker.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from prefect import flow, task

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.lake import Lake
from fingerprinting.registry import ModelRecord, register_models, resolve_models
from fingerprinting.settings import Settings, get_settings
from flows.task_runners import apply_torch_threads, fan_out, runner_options, torch_threads


@dataclass
class MemorizationRunSummary:
    corpus: str
    models: list[str]
    samples: dict[str, int] = field(default_factory=dict)  # model -> samples scored
    memorized: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # model -> one line
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # models whose stored scores were kept
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


@task(task_run_name="score-{record.model_id}")
def score_model(record: ModelRecord, corpus_path: str, corpus: str, text_column: str, options: dict,
                device: str, run_id: str, progress: bool) -> dict:
    """Load one model, cut and score its samples; returns lake rows (as Arrow tables)."""
    from fingerprinting.loading import load_model
    from fingerprinting.memorization.corpus import read_documents
    from fingerprinting.memorization.pipeline import score_corpus

    problems: list = []
    docs = list(read_documents(corpus_path, text_column, problems=problems))
    loaded = load_model(record.model_id, record.source, device=device, need_tokenizer=True)
    try:
        out = score_corpus(loaded, docs, corpus=corpus, run_id=run_id, progress=progress, **options)
    finally:
        del loaded
    out.problems = [f"{f}: {msg}" for f, msg in problems] + out.problems
    return {"samples": out.samples, "scores": out.scores, "features": out.features, "problems": out.problems}


@task(retries=2, retry_delay_seconds=1)
def write_scores(lake_root: str, rows: dict) -> int:
    lake = Lake(lake_root)
    lake.merge("memorization_samples", rows["samples"])
    lake.merge("memorization_scores", rows["scores"])
    lake.merge("memorization_features", rows["features"])
    return rows["scores"].num_rows


@task(task_run_name="score-and-write-{record.model_id}")
def score_and_write(lake_root: str, record: ModelRecord, corpus_path: str, corpus: str, text_column: str,
                    options: dict, device: str, run_id: str, fit: bool, recitation_threshold: int,
                    torch_threads: int | None) -> dict:
    """A worker's whole share for one model: score, merge its rows, fit its taxonomic model."""
    apply_torch_threads(torch_threads)
    rows = score_model(record, corpus_path, corpus, text_column, options, device, run_id, False)
    n = write_scores(lake_root, rows)
    note = fit_taxonomy(lake_root, record.model_id, corpus, 1024, recitation_threshold) if fit else ""
    return {"samples": n, "memorized": int(sum(rows["scores"].column("memorized").to_pylist())),
            "problems": rows["problems"], "note": note}


@task
def fit_taxonomy(lake_root: str, model_id: str, corpus: str, seed: int, recitation_threshold: int) -> str:
    """Fit the taxonomic model on everything stored for (model, corpus); replace its result rows."""
    from fingerprinting.memorization.pipeline import fit_tables

    lake = Lake(lake_root)
    where = {"model_id": model_id, "corpus": corpus}
    scores = lake.scan("memorization_scores").filter(_eq(where)).select(
        ["sample_id", "score", "memorized", "prompt_perplexity", "continuation_perplexity", "sequence_perplexity"])
    feats = lake.scan("memorization_features").filter(_eq(where)).drop(["model_id", "corpus"])
    joined = scores.join(feats, on="sample_id", how="inner").sort("sample_id").collect().to_arrow()
    fit = fit_tables(joined, model_id, corpus, seed=seed, recitation_threshold=recitation_threshold)
    for table, rows in (("memorization_model_results", fit.results), ("memorization_model_weights", fit.weights),
                        ("memorization_model_tests", fit.tests), ("memorization_correlations", fit.correlations),
                        ("memorization_taxonomy_search", fit.search), ("taxonomic_predictions", fit.predictions)):
        lake.replace(table, rows, where)
    return fit.note


def _eq(where: dict):
    import polars as pl

    expr = None
    for k, v in where.items():
        e = pl.col(k) == v
        expr = e if expr is None else expr & e
    return expr


@flow(name="memorization_flow")
def memorization_flow(models: list[str], corpus_path: str, corpus: str | None = None, text_column: str = "text",
                      stride: int = 64, max_samples: int | None = None, mode: str = "stride", seed: int = 0,
                      batch_size: int = 32, recitation_threshold: int = 6, fit: bool = True,
                      use_existing: bool = False, settings: Settings | None = None,
                      progress: bool = True, task_runner: str = "sequential", dask_address: str | None = None,
                      dask_workers: int | None = None,
                      threads_per_worker: int | None = None) -> MemorizationRunSummary:
    """Score registered models on a corpus, land samples / scores / features, fit the taxonomic model.

    With ``use_existing`` a model that already has scores on this corpus is not loaded
    again (whatever sampling options produced them); its stored rows are reported.
    ``task_runner`` ("sequential", "threads", "dask"): how the models fan out; the
    lake and the summary are the same whichever is used.
    """
    t0 = time.perf_counter()
    settings = settings or get_settings()
    runner = runner_options(task_runner, dask_address, dask_workers, threads_per_worker)
    if mode not in ("stride", "random"):
        raise ValueError(f"unknown sampling mode {mode!r}; known: stride, random")
    if not Path(corpus_path).exists():
        raise FileNotFoundError(f"corpus {corpus_path!r} does not exist")
    corpus = corpus or Path(corpus_path).stem
    lake = Lake(settings.lake_root).init()
    records = resolve_models(lake, models)  # unknown ids fail here, before any model loads
    summary = MemorizationRunSummary(corpus, [r.model_id for r in records])
    run_id = uuid.uuid4().hex[:12]
    options = {"stride": stride, "max_samples": max_samples, "mode": mode, "seed": seed, "batch_size": batch_size}
    device = settings.device  # "auto" picks CUDA when present (loading.resolve_device)
    stored = _stored_counts(lake, corpus) if use_existing else {}
    todo = []
    for record in records:
        if record.model_id in stored:
            summary.samples[record.model_id], summary.memorized[record.model_id] = stored[record.model_id]
            summary.reused.append(record.model_id)
            continue
        if runner.parallel:
            todo.append(record)
            continue
        with torch_threads(runner.threads_per_worker):
            state = score_model(record, str(corpus_path), corpus, text_column, options, device, run_id, progress,
                                return_state=True)
        if state.is_failed():
            summary.failures[record.model_id] = _one_line(state)
            continue
        rows = state.result()
        summary.problems += rows["problems"]
        summary.samples[record.model_id] = write_scores(settings.lake_root, rows)
        summary.memorized[record.model_id] = int(sum(rows["scores"].column("memorized").to_pylist()))
        if fit:
            note = fit_taxonomy(settings.lake_root, record.model_id, corpus, 1024, recitation_threshold)
            if note:
                summary.notes.append(note)
    if todo:
        _fan_out_models(todo, runner, settings, str(corpus_path), corpus, text_column, options, device, run_id,
                        fit, recitation_threshold, summary, progress)
        order = {r.model_id: i for i, r in enumerate(records)}  # reused and scored models as sequentially
        summary.samples = dict(sorted(summary.samples.items(), key=lambda kv: order[kv[0]]))
        summary.memorized = dict(sorted(summary.memorized.items(), key=lambda kv: order[kv[0]]))
    summary.seconds = round(time.perf_counter() - t0, 1)
    return summary


def _fan_out_models(records: list[ModelRecord], runner, settings: Settings, corpus_path: str, corpus: str,
                    text_column: str, options: dict, device: str, run_id: str, fit: bool,
                    recitation_threshold: int, summary: MemorizationRunSummary, progress: bool) -> None:
    """One task per model on the runner; the summary is filled in the models' order, as sequentially."""
    params = [{"lake_root": settings.lake_root, "record": r, "corpus_path": corpus_path, "corpus": corpus,
               "text_column": text_column, "options": options, "device": device, "run_id": run_id, "fit": fit,
               "recitation_threshold": recitation_threshold, "torch_threads": runner.threads_per_worker}
              for r in records]
    out: dict[int, dict | str] = {}
    for i, fut in fan_out(runner, score_and_write, params, progress=progress, desc=f"scoring on {corpus}"):
        try:
            out[i] = fut.result()
        except Exception as exc:  # one failing model must not sink the batch
            out[i] = _exc_line(exc)
    for i, record in enumerate(records):
        res = out[i]
        if isinstance(res, str):
            summary.failures[record.model_id] = res
            continue
        summary.problems += res["problems"]
        summary.samples[record.model_id] = res["samples"]
        summary.memorized[record.model_id] = res["memorized"]
        if res["note"]:
            summary.notes.append(res["note"])


def _stored_counts(lake: Lake, corpus: str) -> dict[str, tuple[int, int]]:
    """model_id -> (samples, memorized) already in the lake for this corpus."""
    import polars as pl

    df = (lake.scan("memorization_scores").filter(pl.col("corpus") == corpus).group_by("model_id")
          .agg(pl.len().alias("n"), pl.col("memorized").sum().alias("m")).collect())
    return {r["model_id"]: (int(r["n"]), int(r["m"])) for r in df.to_dicts()}


def _one_line(state) -> str:
    try:
        state.result()
    except BaseException as exc:  # the task's own exception: name it in one line
        return _exc_line(exc)
    return "failed"


def _exc_line(exc: BaseException) -> str:
    kind = "" if isinstance(exc, FingerprintLakeError) else f"{type(exc).__name__}: "
    return ((kind + str(exc)).strip().splitlines() or ["failed"])[0][:300]


def print_memorization_summary(summary: MemorizationRunSummary | list) -> None:
    for s in summary if isinstance(summary, list) else [summary]:
        for m, n in s.samples.items():
            kept = " (stored)" if m in s.reused else ""
            print(f"   {m} on {s.corpus}: {n} samples, {s.memorized.get(m, 0)} memorized{kept}")
        for m, err in s.failures.items():
            print(f"   FAILED {m} on {s.corpus}: {err}")
        for line in s.problems[:10]:
            print(f"   skipped {line}")
        if len(s.problems) > 10:
            print(f"   ... and {len(s.problems) - 10} more problem(s)")
        for note in s.notes:
            print(f"   note: {note}")


# ------------------------------------------------------------------ the demo's part
PLANTED_SAMPLES = {"full": None, "tiny": None}  # score every window of the planted corpus
ZOO_SAMPLES = {"full": 300, "tiny": 40}


@task
def prepare_planted(profile: str, settings: Settings, progress: bool) -> tuple[str, str]:
    """Train (or reuse) the planted-memorization model; write its corpus as JSONL; return (model_dir, corpus)."""
    from fingerprinting.memorization.planted import (
        PLANTED_VERSION,
        build_planted_corpus,
        train_planted_model,
    )

    tiny = profile != "full"
    out = Path(settings.zoo_dir) / f"planted-{'tiny' if tiny else 'full'}"
    manifest = out / "planted_manifest.json"
    fresh = manifest.is_file() and json.loads(manifest.read_text()).get("version") == PLANTED_VERSION
    if not fresh:
        train_planted_model(out, tiny=tiny, progress=progress)
    info = json.loads(manifest.read_text())
    corpus = build_planted_corpus(info["seed"], info["profile"])
    path = out / "corpus.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            for i, text in enumerate(corpus.blocks):
                fh.write(json.dumps({"id": f"block-{i:05d}", "text": text}) + "\n")
        tmp.replace(path)
    name = f"planted-{info['profile']}"
    by_id = {r["id"]: r for r in corpus.manifest}
    truth = [{"corpus": name, "doc_id": f"block-{i:05d}", "planted_id": b, "kind": by_id[b]["kind"],
              "planted_count": int(by_id[b]["planted_count"])}
             for i, b in enumerate(corpus.block_ids) if b is not None]
    from fingerprinting.memorization.tables import GROUND_TRUTH

    Lake(settings.lake_root).merge("memorization_ground_truth", pa.Table.from_pylist(truth, schema=GROUND_TRUTH.schema))
    register_models(Lake(settings.lake_root), [ModelRecord(name, str(out), "Planted", "Base", name, "llama")])
    return name, str(path)


@task
def prepare_docstrings(settings: Settings) -> str:
    """The demo zoo's training text (stdlib docstrings), one document per paragraph, as JSONL."""
    from fingerprinting.zoo.corpus import build_corpus

    path = Path(settings.zoo_dir) / "docstrings.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        paras = [p for p in build_corpus().docs.split("\n\n") if p.strip()]
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            for i, p in enumerate(paras):
                fh.write(json.dumps({"id": f"para-{i:05d}", "text": p}) + "\n")
        tmp.replace(path)
    return str(path)


@flow(name="demo_memorization")
def demo_memorization(profile: str = "full", settings: Settings | None = None, progress: bool = True,
                      use_existing: bool = True, task_runner: str = "sequential", dask_address: str | None = None,
                      dask_workers: int | None = None,
                      threads_per_worker: int | None = None) -> list[MemorizationRunSummary]:
    """The planted-memorization model on its corpus (ground truth), and the zoo's base models and
    stories260k on the zoo's own training text."""
    settings = settings or get_settings()
    runner = {"task_runner": task_runner, "dask_address": dask_address, "dask_workers": dask_workers,
              "threads_per_worker": threads_per_worker}
    runner_options(**runner)  # bad options fail before the planted model is trained
    name, planted_corpus = prepare_planted(profile, settings, progress)
    out = [memorization_flow([name], planted_corpus, corpus=name, max_samples=PLANTED_SAMPLES[profile],
                             use_existing=use_existing, settings=settings, progress=progress, **runner)]
    lake = Lake(settings.lake_root)
    bases = [r["model_id"] for r in lake.read("models").to_pylist()
             if r["model_type"] == "Base" and r["family"] not in ("Planted",) and not r["source"].startswith("hf://")]
    if bases:
        out.append(memorization_flow(bases, prepare_docstrings(settings), corpus="docstrings",
                                     max_samples=ZOO_SAMPLES[profile], mode="random", use_existing=use_existing,
                                     settings=settings, progress=progress, **runner))
    return out

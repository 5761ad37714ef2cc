"""``lineage_flow``: pair scores + checkpoint signals -> inferred parent -> child edges -> lake.

Reads like a table of contents; the work lives in :mod:`fingerprinting.provenance.lineage`.
The pair score is the calibrated verdict (``provenance_scores.score_full`` with
``provenance_model.threshold``) when those tables hold a fit, else one (method, metric)
similarity with a threshold at a quantile of the cross-family pairs (unrelated by construction).
Direction signals are read once per checkpoint into ``model_weight_stats`` (recomputed when the
checkpoint's files change); a model whose checkpoint cannot be read is reported in one line and
is oriented by structure alone.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from prefect import flow, task

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.lake import TABLES, Lake, load_system_tables
from fingerprinting.provenance import lineage_tables
from fingerprinting.provenance.lineage import (
    LineageError,
    LineageParams,
    WeightStats,
    attach_orphans,
    cross_family_threshold,
    infer_lineage,
)
from fingerprinting.settings import Settings, get_settings

DEFAULT_METHOD, DEFAULT_METRIC = "weight_spectrum", "js_divergence"
# second pass: models the weight tree leaves isolated are attached by a functional similarity
FUNCTIONAL = (("hidden_cka", "cosine"), ("next_token", "cosine"))
SOURCES = ("auto", "verdict", "similarity")


@dataclass
class PairInput:
    """The pair scores the lineage is inferred from."""

    scores: object  # polars DataFrame: model_a, model_b, score
    threshold: float
    source: str  # 'verdict' or 'method:metric'
    upper: float = 1.0
    note: str = ""


@dataclass
class LineageRunSummary:
    source: str = ""
    threshold: float = float("nan")
    n_models: int = 0
    n_edges: int = 0
    n_merges: int = 0
    run_id: str = ""
    signals_computed: list[str] = field(default_factory=list)
    signals_reused: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # model -> why it has no signals
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _has_rows(lake: Lake, table: str) -> bool:
    load_system_tables()
    return table in TABLES and lake.exists(table) and lake.count(table) > 0


@task
def load_pair_scores(lake_root: str, source: str, method: str, metric: str, config_hash: str | None,
                     quantile: float, threshold: float | None) -> PairInput:
    """The verdict's scores when asked for (or, with 'auto', when present), else one similarity."""
    import polars as pl

    from fingerprinting.queries import metric_bounds, validate_method, validate_metric

    lake = Lake(lake_root)
    if source in ("auto", "verdict") and _has_rows(lake, "provenance_scores") and _has_rows(lake, "provenance_model"):
        model = lake.scan("provenance_model").sort("fitted_at", descending=True).head(1).collect()
        scores = lake.scan("provenance_scores")
        if "fit_id" in scores.collect_schema().names():
            scores = scores.filter(pl.col("fit_id") == model["fit_id"][0])
        scores = scores.select("model_a", "model_b", pl.col("score_full").alias("score")).collect()
        thr = float(model["threshold"][0]) if threshold is None else float(threshold)
        return PairInput(scores, thr, "verdict", 1.0, f"verdict fit {model['fit_id'][0]}")
    if source == "verdict":
        raise LineageError("source 'verdict': no provenance_scores / provenance_model in the lake; "
                           "run the provenance verdict first or use source 'similarity'")
    validate_method(method)
    validate_metric(metric)
    sims = lake.scan("similarities").filter((pl.col("method") == method) & (pl.col("metric") == metric))
    hashes = sims.group_by("config_hash").agg(pl.len().alias("n")).sort(["n", "config_hash"], descending=True).collect()
    if hashes.height == 0:
        raise LineageError(f"no similarities for method {method!r} and metric {metric!r} in the lake")
    if config_hash is None:
        config_hash = hashes["config_hash"][0]  # the config with the most pairs
    elif config_hash not in hashes["config_hash"].to_list():
        raise LineageError(f"no similarities for {method}/{metric} with config_hash {config_hash!r}; "
                           f"known: {', '.join(hashes['config_hash'].to_list())}")
    scores = (sims.filter(pl.col("config_hash") == config_hash)
              .select("model_a", "model_b", pl.col("similarity").alias("score")).collect())
    note = ""
    if threshold is None:
        fam = lake.read("models", columns=["model_id", "family"]).to_pylist()
        threshold = cross_family_threshold(scores, {r["model_id"]: r["family"] for r in fam}, quantile)
        note = f"threshold = {quantile} quantile of cross-family {method}/{metric} scores"
    return PairInput(scores, float(threshold), f"{method}:{metric}", metric_bounds(metric)[1], note)


@task
def ensure_weight_stats(lake_root: str, model_ids: list[str], progress: bool = True) -> dict:
    """Signals per model: stored rows whose checkpoint is unchanged, the rest read and merged in."""
    from tqdm.auto import tqdm

    from fingerprinting.loading import ModelSource
    from fingerprinting.provenance.lineage import weight_stats

    lake = Lake(lake_root)
    sources = {r["model_id"]: r["source"] for r in lake.read("models", columns=["model_id", "source"]).to_pylist()}
    stored = {r["model_id"]: r for r in lake.read("model_weight_stats").to_pylist()}
    fields = ("n_params", "zero_fraction", "distinct_ratio", "kurtosis", "quant_type", "source_identity")
    out: dict = {"signals": {}, "computed": [], "reused": [], "failures": {}}
    todo = []
    for m in model_ids:
        src = sources.get(m)
        if src is None:
            out["failures"][m] = "not in the registry"
            continue
        row = stored.get(m)
        ident = None if src.startswith("hf://") else ModelSource.parse(src).identity()
        if row is not None and (ident is None or row["source_identity"] == ident):
            out["signals"][m] = WeightStats(m, *(row[f] for f in fields))
            out["reused"].append(m)
        else:
            todo.append((m, src))
    rows = []
    for m, src in tqdm(todo, desc="weight signals", unit="model", disable=not progress or not todo):
        try:
            st = weight_stats(m, src)
        except LineageError as exc:
            out["failures"][m] = str(exc)
            continue
        out["signals"][m] = st
        out["computed"].append(m)
        rows.append({"model_id": m, **{f: getattr(st, f) for f in fields}, "computed_at": datetime.now(UTC)})
    if rows:
        lake.merge("model_weight_stats", pa.Table.from_pylist(rows, schema=lineage_tables.MODEL_WEIGHT_STATS.schema))
    return out


@task(retries=2, retry_delay_seconds=1)
def write_edges(lake_root: str, edges: list, pairs: PairInput, run_id: str,
                other_sources: dict | None = None) -> int:
    """Replace ``inferred_edges`` by this run's edges (one commit).

    ``other_sources``: (parent, child) -> (source, threshold) for edges found by another score
    (the functional pass), so each row names the score and threshold it passed.
    """
    now = datetime.now(UTC)
    other = other_sources or {}
    rows = [{"parent_id": e.parent_id, "child_id": e.child_id, "score": e.score,
             "direction_confidence": e.direction_confidence, "is_merge_parent": e.is_merge_parent,
             "source": other.get((e.parent_id, e.child_id), (pairs.source, pairs.threshold))[0],
             "threshold": other.get((e.parent_id, e.child_id), (pairs.source, pairs.threshold))[1],
             "evidence": e.evidence, "run_id": run_id, "inferred_at": now} for e in edges]
    table = pa.Table.from_pylist(rows, schema=lineage_tables.INFERRED_EDGES.schema)
    return Lake(lake_root).overwrite("inferred_edges", table)


@flow(name="lineage")
def lineage_flow(settings: Settings | None = None, *, source: str = "similarity", method: str = DEFAULT_METHOD,
                 metric: str = DEFAULT_METRIC, config_hash: str | None = None, quantile: float = 0.999,
                 threshold: float | None = None, signals: bool = True, progress: bool = True,
                 functional: bool = True) -> LineageRunSummary:
    """Infer the lineage of every scored model and replace the lake table ``inferred_edges``.

    ``source``: 'auto' (the verdict when the lake holds one, else the similarity), 'verdict' or
    'similarity' (``method`` / ``metric`` / ``config_hash``, threshold at the ``quantile`` of
    cross-family scores). ``threshold`` overrides either threshold; ``signals=False`` orients
    by structure alone (no checkpoint is read). The default is the weight-space similarity
    (weight_spectrum / js_divergence: its tree is the most accurate on weight-preserving derivations),
    then, with ``functional``, models it leaves isolated are attached by the first of
    :data:`FUNCTIONAL` stored (see :func:`~fingerprinting.provenance.lineage.attach_orphans`).
    The verdict's probabilities saturate near 1 inside a family, which flattens the tree's weights,
    so it is not the default (docs/fingerprints.md compares the sources).
    """
    import polars as pl

    t0 = time.perf_counter()
    if source not in SOURCES:
        raise LineageError(f"unknown lineage source {source!r}; known: {', '.join(SOURCES)}")
    settings = settings or get_settings()
    lake = Lake(settings.lake_root).init(lineage_tables.TABLE_NAMES)
    pairs = load_pair_scores(settings.lake_root, source, method, metric, config_hash, quantile, threshold)
    scores = pairs.scores
    models = sorted(set(scores["model_a"].to_list()) | set(scores["model_b"].to_list()))
    summary = LineageRunSummary(pairs.source, pairs.threshold, len(models), run_id=uuid.uuid4().hex[:12])
    if pairs.note:
        summary.notes.append(pairs.note)
    stats = {"signals": {}}
    if signals:
        stats = ensure_weight_stats(settings.lake_root, models, progress)
        summary.signals_computed, summary.signals_reused = stats["computed"], stats["reused"]
        summary.failures = stats["failures"]
    edges = infer_lineage(models, scores.select("model_a", "model_b", pl.col("score")), pairs.threshold,
                          stats["signals"], params=LineageParams(upper=pairs.upper))
    other_sources: dict = {}
    if functional and pairs.source != "verdict":
        for fm, fmetric in FUNCTIONAL:
            try:
                second = load_pair_scores(settings.lake_root, "similarity", fm, fmetric, None, quantile, None)
            except (LineageError, FingerprintLakeError):
                continue
            extra = attach_orphans(models, edges, second.scores, second.threshold, stats["signals"])
            other_sources.update({(e.parent_id, e.child_id): (second.source, second.threshold) for e in extra})
            summary.notes.append(f"functional pass {second.source} (threshold {second.threshold:.4f}): "
                                 f"{len(extra)} edge(s)")
            edges = edges + extra
            break
    summary.n_edges = write_edges(lake.root, edges, pairs, summary.run_id, other_sources)
    summary.n_merges = len({e.child_id for e in edges if e.is_merge_parent})
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary

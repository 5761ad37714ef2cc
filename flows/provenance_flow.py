"""``provenance_flow``: stored similarities -> pair features -> leave-one-family-out verdict -> lake.

Reads like a table of contents; the work lives in :mod:`fingerprinting.provenance.verdict`.
Writes ``provenance_scores`` (replaced whole: one row per scored pair of this fit) and
``provenance_model`` (one row per fit, upserted by its content-hash id; the newest is current),
so a rerun never duplicates. Callable from other flows (``demo_flow``) as a subflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from fingerprinting.lake import Lake
from fingerprinting.provenance import verdict as V
from fingerprinting.settings import Settings, get_settings


@dataclass
class ProvenanceSummary:
    fit_id: str
    features: list[dict]
    coefficients: dict[str, float]
    intercept: float
    threshold: float
    target_fpr: float
    n_pairs: int
    n_positive: int
    n_negative: int
    n_families: int
    n_fits: int
    n_unscored: int
    roc_auc_oof: float | None
    tpr_at_fpr_oof: float | None
    fpr_at_threshold_oof: float | None
    precision_oof: float | None
    n_imputed: dict[str, int]
    fit_seconds: float
    fitted_at: str | None
    cv: str = V.CV_NAME
    quality: list[dict] = field(default_factory=list)  # per derivation type, as the verdict_quality mart
    written: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@task(cache_policy=NO_CACHE)
def build_pair_features(lake_root: str, features: list | None) -> tuple:
    """Resolve the features (one config hash per method) and build the labelled pair x feature frame."""
    lake = Lake(lake_root)
    feats = V.resolve_features(lake, features)
    return feats, V.pair_features(lake, feats)


@task(cache_policy=NO_CACHE)
def fit_provenance_model(df, feats: list, target_fpr: float, C: float) -> V.VerdictModel:
    """Leave-one-family-out scores, the threshold at ``target_fpr``, the final model on all pairs."""
    return V.fit_verdict(df, feats, target_fpr=target_fpr, C=C, progress=True)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_provenance(lake_root: str, df, model: V.VerdictModel) -> dict:
    return V.write_verdict(Lake(lake_root), df, model)


@flow(name="provenance")
def provenance_flow(settings: Settings | None = None, features: list | None = None, target_fpr: float = 0.01,
                    C: float = V.DEFAULT_C) -> ProvenanceSummary:
    """Fit the calibrated provenance verdict on every stored similarity and land it in the lake.

    ``features``: ``"method/metric"`` strings (or (method, metric[, config_hash]) tuples); default:
    every method with stored similarities and its default metrics (see ``verdict.DEFAULT_METRICS``).
    """
    t0 = time.perf_counter()
    target_fpr = V.check_target_fpr(target_fpr)
    settings = settings or get_settings()
    logger = get_run_logger()
    Lake(settings.lake_root).init(["provenance_scores", "provenance_model"])
    feats, df = build_pair_features(settings.lake_root, list(features) if features is not None else None)
    logger.info("%d pairs (%d related) over %d feature(s): %s", df.height, int(df["label"].sum()), len(feats),
                ", ".join(f.name for f in feats))
    model = fit_provenance_model(df, feats, target_fpr, C)
    written = write_provenance(settings.lake_root, df, model)
    quality = V.quality_by_relation(df["relation"].to_list(), df["label"].to_numpy(), model.lofo.scores,
                                    model.threshold, model.target_fpr)
    s = V.model_summary(model)
    logger.info("fit %s: OOF ROC-AUC %s, TPR %s at FPR <= %s (threshold %.4f)", model.fit_id, s["roc_auc_oof"],
                s["tpr_at_fpr_oof"], target_fpr, model.threshold)
    return ProvenanceSummary(**s, quality=quality, written=written, seconds=time.perf_counter() - t0)

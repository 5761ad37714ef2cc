"""A calibrated provenance verdict: logistic regression over per-method similarities.

Pipeline (every step vectorised over pairs):

1. **Features** (:func:`resolve_features`): a list of (method, metric) pairs, each pinned to ONE
   config hash per method: the config whose similarities cover the most models; ties go to the
   config with the newest fingerprint, then to the smaller hash. Default: for every method with
   stored similarities, the metrics of :data:`DEFAULT_METRICS` that are stored (a method not listed
   there uses ``cosine``, else ``l1``, else its first stored metric).
2. **Pairs** (:func:`pair_features`): every unordered pair with at least one of those similarities
   (models without fingerprints never appear), one column per feature (null when not stored),
   families, and the label. POSITIVE: the two models are ancestor / descendant through
   ``model_edges`` (any depth, ``sibling`` edges excluded) or share a family. NEGATIVE otherwise;
   a pair recorded as siblings (``model_siblings``, or a ``sibling`` edge) is negative with relation
   ``sibling`` even within one family (lineage, when recorded too, wins). Relation of a positive:
   the direct edge's relation (the smallest name when there are several), ``multi_step`` for a
   longer path, ``same_family`` without lineage (as ``int_lineage_pairs`` / ``pair_similarities``).
3. **Model**: missing similarities are imputed with the median of the *training negatives* (per
   fit; counted per feature in ``VerdictModel.n_imputed``), features standardised, then a
   class-balanced L2 logistic regression with non-negative coefficients (``C``, default
   :data:`DEFAULT_C`; a higher similarity never lowers the odds). The score is its probability.
4. **Leave-one-family-out** (:func:`leave_one_family_out`): a pair with families {f, g} is scored
   by a model trained only on pairs involving neither f nor g: one fit per distinct family set
   (fits with the same training families are shared). Pairs whose training set lacks a class stay
   unscored (NaN). Out-of-fold scores give the ROC-AUC and the threshold. (A looser scheme, one fit
   per family scoring every pair of that family, lets the fit of g see f's labels when it scores
   {f, g}; it reads about 0.01 higher in pooled ROC-AUC on the demo lake: docs/fingerprints.md.)
5. **Threshold** (:func:`choose_threshold`): with n negatives and k = floor(target_fpr * n) false
   positives allowed, the threshold is the lowest observed score strictly above the (k+1)-th
   highest negative score (i.e. above the ceil((1 - target_fpr) * n)-th negative in ascending
   order). A pair is *related* iff score >= threshold, so at most k negatives are flagged.
6. The final model is the average of the fold models (logits are linear, so it is one linear
   model): it has the out-of-fold scores' scale, so their threshold applies to new pairs.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.lake import TABLES, Lake

DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "weight": ("l1", "js_divergence"),
    "weight_spectrum": ("correlation", "l1"),
    "input_output": ("wasserstein", "l1"),
    "hidden_cka": ("cosine",),
    "next_token": ("cosine",),
}
FALLBACK_METRICS = ("cosine", "l1")
BASE_COLUMNS = ("model_a", "model_b", "family_a", "family_b", "relation", "label", "lineage_depth")
CV_NAME = "leave-one-family-out"
# inverse L2 strength of the logistic regression on standardised features (scikit-learn's default).
# Coefficients are constrained to be non-negative, which does most of the regularising: on the demo
# lake C in 0.1..100 moves the out-of-fold ROC-AUC by < 0.01 (docs/fingerprints.md).
DEFAULT_C = 1.0
MAX_LINEAGE_DEPTH = 64


class ProvenanceError(FingerprintLakeError, ValueError):
    """The verdict cannot be fitted or applied (no similarities, one class only, bad argument, ...)."""


class NoVerdictModelError(ProvenanceError):
    """No verdict model has been fitted in this lake yet."""


# ------------------------------------------------------------------ features
@dataclass(frozen=True)
class Feature:
    """One input of the verdict: the similarity of a method (at one config hash) under a metric."""

    method: str
    metric: str
    config_hash: str = ""

    @property
    def name(self) -> str:
        return f"{self.method}/{self.metric}"

    def to_dict(self) -> dict:
        return {"name": self.name, "method": self.method, "metric": self.metric, "config_hash": self.config_hash}

    @classmethod
    def parse(cls, spec: Any) -> Feature:
        """A Feature from a Feature, ``"method/metric[@hash]"``, ``(method, metric[, hash])`` or a dict."""
        if isinstance(spec, Feature):
            return spec
        if isinstance(spec, Mapping):
            return cls(str(spec["method"]), str(spec["metric"]), str(spec.get("config_hash") or ""))
        if isinstance(spec, str):
            body, _, h = spec.partition("@")
            method, sep, metric = body.partition("/")
            if not sep or not method or not metric:
                raise ProvenanceError(f"feature {spec!r}: expected METHOD/METRIC (e.g. weight/l1)")
            return cls(method, metric, h)
        if isinstance(spec, Sequence) and len(spec) in (2, 3):
            return cls(str(spec[0]), str(spec[1]), str(spec[2]) if len(spec) == 3 else "")
        raise ProvenanceError(f"feature {spec!r}: expected METHOD/METRIC or (method, metric[, config_hash])")


def stored_feature_space(lake: Lake) -> tuple[pl.DataFrame, dict[str, str]]:
    """Stored (method, metric, config_hash) triples and the config hash chosen per method.

    The chosen config of a method covers the most models with similarities; ties go to the config
    with the newest fingerprint, then to the smaller hash.
    """
    sims = lake.scan("similarities").select("method", "metric", "config_hash", "model_a", "model_b")
    triples = sims.select("method", "metric", "config_hash").unique().collect()
    if triples.height == 0:
        return triples, {}
    models = pl.concat([sims.select("method", "config_hash", pl.col("model_a").alias("model_id")),
                        sims.select("method", "config_hash", pl.col("model_b").alias("model_id"))]).unique()
    cover = models.group_by("method", "config_hash").agg(pl.len().alias("n_models"))
    newest = (lake.scan("fingerprints").group_by("method", "config_hash")
              .agg(pl.col("created_at").max().alias("newest")))
    ranked = (cover.join(newest, on=["method", "config_hash"], how="left").collect()
              .sort(["method", "n_models", "newest", "config_hash"], descending=[False, True, True, False],
                    nulls_last=True))
    chosen = dict(ranked.group_by("method", maintain_order=True).agg(pl.col("config_hash").first()).iter_rows())
    return triples, chosen


def resolve_features(lake: Lake, features: Iterable[Any] | None = None) -> list[Feature]:
    """The verdict's features, each pinned to a stored config hash (see the module docstring)."""
    triples, chosen = stored_feature_space(lake)
    if not chosen:
        raise ProvenanceError(f"no stored similarities in the lake at {lake.root}: fingerprint models first "
                              "(`fplake demo` or run_experiment)")
    have = {(r[0], r[1], r[2]) for r in triples.iter_rows()}
    if features is None:
        out = []
        for method in sorted(chosen):
            h = chosen[method]
            stored = sorted(m for (me, m, hh) in have if me == method and hh == h)
            wanted = [m for m in DEFAULT_METRICS.get(method, ()) if m in stored]
            if not wanted:
                wanted = [next((m for m in FALLBACK_METRICS if m in stored), stored[0])]
            out += [Feature(method, m, h) for m in wanted]
        return out
    out = []
    for spec in features:
        f = Feature.parse(spec)
        if f.method not in chosen:
            raise ProvenanceError(f"feature {f.name!r}: no stored similarities for method {f.method!r}; "
                                  f"methods with similarities: {', '.join(sorted(chosen))}")
        h = f.config_hash or chosen[f.method]
        if (f.method, f.metric, h) not in have:
            stored = sorted({m for (me, m, hh) in have if me == f.method and hh == h})
            raise ProvenanceError(f"feature {f.name!r}: metric {f.metric!r} is not stored for method {f.method!r} "
                                  f"config {h}; stored metrics: {', '.join(stored) or 'none'}")
        f = Feature(f.method, f.metric, h)
        if f.name in {g.name for g in out}:
            raise ProvenanceError(f"feature {f.name!r} is listed twice")
        out.append(f)
    if not out:
        raise ProvenanceError("no features given")
    return out


# ------------------------------------------------------------------ labels
def _ordered(a: str, b: str) -> list[pl.Expr]:
    return [pl.min_horizontal(pl.col(a), pl.col(b)).alias("model_a"),
            pl.max_horizontal(pl.col(a), pl.col(b)).alias("model_b")]


def lineage_pairs(edges: pl.DataFrame, max_depth: int = MAX_LINEAGE_DEPTH) -> pl.DataFrame:
    """Unordered ancestor / descendant pairs of ``edges`` (parent_id, child_id, relation; no siblings).

    Breadth-first transitive closure by joins: ``lineage_depth`` is the shortest path, ``lineage_relation``
    the direct edge's relation at depth 1 (the smallest name if several), else ``multi_step``.
    """
    schema = {"model_a": pl.String, "model_b": pl.String, "lineage_depth": pl.Int64, "lineage_relation": pl.String}
    edges = edges.filter((pl.col("relation") != "sibling") & (pl.col("parent_id") != pl.col("child_id")))
    if edges.height == 0:
        return pl.DataFrame(schema=schema)
    direct = edges.group_by("parent_id", "child_id").agg(pl.col("relation").min())
    adj = direct.select("parent_id", "child_id")
    seen = direct.select(pl.col("parent_id").alias("anc"), pl.col("child_id").alias("desc"),
                         pl.lit(1, pl.Int64).alias("depth"), "relation")
    frontier = seen.select("anc", "desc")
    for depth in range(2, max_depth + 1):
        nxt = (frontier.join(adj, left_on="desc", right_on="parent_id")
               .select("anc", pl.col("child_id").alias("desc")).unique()
               .filter(pl.col("anc") != pl.col("desc"))
               .join(seen.select("anc", "desc"), on=["anc", "desc"], how="anti"))
        if nxt.height == 0:
            break
        seen = pl.concat([seen, nxt.with_columns(pl.lit(depth, pl.Int64).alias("depth"),
                                                 pl.lit("multi_step").alias("relation"))])
        frontier = nxt
    return (seen.select(*_ordered("anc", "desc"), "depth", "relation")
            .group_by("model_a", "model_b")
            .agg(pl.col("depth").min().alias("lineage_depth"),
                 pl.col("relation").filter(pl.col("depth") == pl.col("depth").min()).min().alias("lineage_relation"))
            .cast(schema))


def sibling_pairs(lake: Lake) -> pl.DataFrame:
    """Unordered sibling pairs: ``model_siblings`` rows (when that table is declared) and ``sibling`` edges."""
    parts = [lake.scan("model_edges").filter(pl.col("relation") == "sibling")
             .select(*_ordered("parent_id", "child_id")).collect()]
    if "model_siblings" in TABLES:
        parts.append(lake.scan("model_siblings").select(*_ordered("model_a", "model_b")).collect())
    return pl.concat(parts).filter(pl.col("model_a") != pl.col("model_b")).unique()


def label_pairs(lake: Lake, pairs: pl.DataFrame) -> pl.DataFrame:
    """``pairs`` (model_a < model_b) with family_a/b, relation, label and lineage_depth appended."""
    models = lake.scan("models").select("model_id", "family").collect()
    lineage = lineage_pairs(lake.scan("model_edges").select("parent_id", "child_id", "relation").collect())
    sib = sibling_pairs(lake).with_columns(pl.lit(True).alias("_sibling"))
    df = (pairs.join(models.rename({"model_id": "model_a", "family": "family_a"}), on="model_a", how="left")
          .join(models.rename({"model_id": "model_b", "family": "family_b"}), on="model_b", how="left")
          .with_columns(  # a model missing from the registry is a family of its own
              pl.col("family_a").fill_null(pl.lit("unregistered:") + pl.col("model_a")),
              pl.col("family_b").fill_null(pl.lit("unregistered:") + pl.col("model_b")))
          .join(lineage, on=["model_a", "model_b"], how="left")
          .join(sib, on=["model_a", "model_b"], how="left"))
    is_sib = pl.col("_sibling").fill_null(False)
    has_lineage = pl.col("lineage_relation").is_not_null()
    same_family = pl.col("family_a") == pl.col("family_b")
    return df.with_columns(
        pl.when(has_lineage).then(pl.col("lineage_relation"))
        .when(is_sib).then(pl.lit("sibling"))
        .when(same_family).then(pl.lit("same_family"))
        .otherwise(pl.lit("unrelated")).alias("relation"),
        (has_lineage | (same_family & ~is_sib)).alias("label"),
    ).drop("_sibling", "lineage_relation")


def pair_features(lake: Lake, features: Iterable[Any] | None = None) -> pl.DataFrame:
    """One row per unordered pair with a stored similarity for any feature.

    Columns: model_a < model_b, family_a, family_b, relation, label, lineage_depth, then one Float64
    column per feature named ``method/metric`` (null when not stored). The resolved features are in
    the frame's column order; :func:`resolve_features` returns them with their config hashes.
    """
    feats = resolve_features(lake, features)
    key = pl.DataFrame({"method": [f.method for f in feats], "metric": [f.metric for f in feats],
                        "config_hash": [f.config_hash for f in feats], "feature": [f.name for f in feats]})
    sims = (lake.scan("similarities").join(key.lazy(), on=["method", "metric", "config_hash"])
            .select(*_ordered("model_a", "model_b"), "feature", pl.col("similarity").cast(pl.Float64))
            .filter(pl.col("model_a") != pl.col("model_b")).collect())
    names = [f.name for f in feats]
    if sims.height == 0:
        wide = pl.DataFrame(schema={"model_a": pl.String, "model_b": pl.String, **dict.fromkeys(names, pl.Float64)})
    else:
        wide = sims.pivot(on="feature", index=["model_a", "model_b"], values="similarity",
                          aggregate_function="first")
        wide = wide.with_columns([pl.lit(None, pl.Float64).alias(n) for n in names if n not in wide.columns])
    df = label_pairs(lake, wide.select("model_a", "model_b"))
    df = df.join(wide, on=["model_a", "model_b"], how="left")
    return (df.select(*BASE_COLUMNS, *[pl.col(n).cast(pl.Float64) for n in names])
            .sort("model_a", "model_b"))


def _features_of(df: pl.DataFrame, features: Iterable[Any] | None) -> list[Feature]:
    if features is None:
        return [Feature.parse(c) for c in df.columns if c not in BASE_COLUMNS]
    feats = [Feature.parse(f) for f in features]
    missing = [f.name for f in feats if f.name not in df.columns]
    if missing:
        raise ProvenanceError(f"feature column(s) {missing} are not in the pair frame")
    return feats


def design_matrix(df: pl.DataFrame, features: Sequence[Feature]) -> np.ndarray:
    """The pair x feature matrix (float64; NaN where a similarity is missing)."""
    if not features:
        raise ProvenanceError("the verdict needs at least one feature")
    return df.select([pl.col(f.name).cast(pl.Float64).fill_null(float("nan")) for f in features]).to_numpy()


# ------------------------------------------------------------------ one logistic fit
@dataclass
class _Fit:
    impute: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logit(self, X: np.ndarray) -> np.ndarray:
        Xi = np.where(np.isnan(X), self.impute, X)
        return ((Xi - self.mean) / self.scale) @ self.coef + self.intercept


def _fit_lr(X: np.ndarray, y: np.ndarray, C: float) -> _Fit | None:
    """Impute (training negatives' median), standardise, class-balanced L2 logistic regression with
    NON-NEGATIVE coefficients (a higher similarity never lowers the odds of relatedness); None if one class.

    L-BFGS-B on the weighted log-loss + ||w||^2 / (2 C); the intercept is free.
    """
    from scipy.optimize import minimize

    if y.all() or not y.any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        impute = np.nanmedian(X[~y], axis=0)
        impute = np.where(np.isnan(impute), np.nanmedian(X, axis=0), impute)
    impute = np.where(np.isnan(impute), 0.0, impute)
    Xi = np.where(np.isnan(X), impute, X)
    mean, scale = Xi.mean(axis=0), Xi.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Z = (Xi - mean) / scale
    yf = y.astype(np.float64)
    # class-balanced sample weights, as scikit-learn's class_weight="balanced"
    sw = np.where(y, len(y) / (2.0 * y.sum()), len(y) / (2.0 * (~y).sum()))

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = p[:-1], p[-1]
        z = Z @ w + b
        nll = sw * (np.logaddexp(0.0, z) - yf * z)
        g = sw * (_sigmoid(z) - yf)
        return float(nll.sum() + 0.5 * (w @ w) / C), np.concatenate([Z.T @ g + w / C, [g.sum()]])

    bounds = [(0.0, None)] * Z.shape[1] + [(None, None)]
    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 5000})
    return _Fit(impute, mean, scale, res.x[:-1].copy(), float(res.x[-1]))


def _average_fits(fits: Sequence[_Fit], impute: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> _Fit:
    """The mean of several linear logits, re-expressed on one standardisation (exactly: logits are linear)."""
    w = np.mean([f.coef / f.scale for f in fits], axis=0)  # raw-feature weights
    b = float(np.mean([f.intercept - (f.mean / f.scale) @ f.coef for f in fits]))
    return _Fit(impute, mean, scale, w * scale, b + float(mean @ w))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


# ------------------------------------------------------------------ leave-one-family-out
@dataclass
class LofoFit:
    """One cross-validation fit: the families it leaves out, what it trained on, the rows it scored."""

    excluded: tuple[str, ...]
    train_families: tuple[str, ...]
    train_rows: np.ndarray
    scored_rows: np.ndarray
    fitted: bool


@dataclass
class LofoResult:
    """Out-of-fold scores (NaN = unscored) and, per pair, the index of the fit in ``fits`` that scored it."""

    scores: np.ndarray
    fit_index: np.ndarray
    fits: list[LofoFit]
    n_distinct_fits: int
    fitted: list = field(default_factory=list, repr=False)

    @property
    def n_unscored(self) -> int:
        return int(np.isnan(self.scores).sum())


def leave_one_family_out(df: pl.DataFrame, features: Iterable[Any] | None = None, *, C: float = DEFAULT_C,
                         progress: bool = False) -> LofoResult:
    """Score every pair with a model that never saw either of its families (see the module docstring)."""
    feats = _features_of(df, features)
    X = design_matrix(df, feats)
    y = df["label"].to_numpy().astype(bool)
    fam_a, fam_b = df["family_a"].to_numpy(), df["family_b"].to_numpy()
    names, codes = np.unique(np.concatenate([fam_a, fam_b]), return_inverse=True)
    ca, cb = codes[: len(fam_a)], codes[len(fam_a):]
    lo, hi = np.minimum(ca, cb), np.maximum(ca, cb)
    sets, inverse = np.unique(lo * len(names) + hi, return_inverse=True)
    scores = np.full(len(df), np.nan)
    fit_index = np.full(len(df), -1, dtype=np.int64)
    fits: list[LofoFit] = []
    cache: dict[tuple[int, ...], _Fit | None] = {}
    from tqdm.auto import tqdm

    for k in tqdm(range(len(sets)), desc="leave-one-family-out", unit="fit", disable=not progress):
        excl = np.unique([sets[k] // len(names), sets[k] % len(names)])
        train = ~(np.isin(ca, excl) | np.isin(cb, excl))
        train_rows = np.flatnonzero(train)
        scored = np.flatnonzero(inverse == k)
        train_fams = tuple(int(c) for c in np.unique(np.concatenate([ca[train_rows], cb[train_rows]])))
        if train_fams not in cache:
            cache[train_fams] = _fit_lr(X[train_rows], y[train_rows], C) if len(train_rows) else None
        fit = cache[train_fams]
        fits.append(LofoFit(tuple(str(names[c]) for c in excl), tuple(str(names[c]) for c in train_fams),
                            train_rows, scored, fit is not None))
        if fit is not None:
            scores[scored] = _sigmoid(fit.logit(X[scored]))
            fit_index[scored] = k
    fitted = [f for f in cache.values() if f is not None]
    return LofoResult(scores, fit_index, fits, len(fitted), fitted)


# ------------------------------------------------------------------ threshold and quality
@dataclass(frozen=True)
class Threshold:
    threshold: float
    target_fpr: float
    allowed_fp: int
    n_positive: int
    n_negative: int
    n_tp: int
    n_fp: int

    @property
    def tpr(self) -> float:
        return self.n_tp / self.n_positive if self.n_positive else float("nan")

    @property
    def fpr(self) -> float:
        return self.n_fp / self.n_negative if self.n_negative else float("nan")

    @property
    def precision(self) -> float | None:
        flagged = self.n_tp + self.n_fp
        return self.n_tp / flagged if flagged else None


def check_target_fpr(target_fpr: float) -> float:
    t = float(target_fpr)
    if not (0.0 < t < 1.0) or math.isnan(t):
        raise ProvenanceError(f"--target-fpr {target_fpr!r}: must be strictly between 0 and 1 (e.g. 0.01)")
    return t


def choose_threshold(scores: np.ndarray, labels: np.ndarray, target_fpr: float = 0.01) -> Threshold:
    """The lowest observed score whose false-positive rate is at most ``target_fpr`` (related iff score >= it).

    k = floor(target_fpr * n_negative) negatives may score at or above the threshold; it is the
    lowest observed score strictly above the (k+1)-th highest negative score. When no observed
    score is above it, the threshold is the next float above that negative (nothing flagged).
    """
    target_fpr = check_target_fpr(target_fpr)
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if np.isnan(s).any():
        raise ProvenanceError("choose_threshold: scores contain NaN")
    neg = np.sort(s[~y])[::-1]
    if len(neg) == 0:
        raise ProvenanceError("choose_threshold: no negative (unrelated) pair to calibrate the threshold on")
    k = int(math.floor(target_fpr * len(neg) + 1e-9))
    bound = neg[k]  # the (k+1)-th highest negative
    above = s[s > bound]
    thr = float(above.min()) if len(above) else float(np.nextafter(bound, np.inf))
    return Threshold(thr, target_fpr, k, int(y.sum()), len(neg), int((s[y] >= thr).sum()), int((neg >= thr).sum()))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Mann-Whitney ROC-AUC (ties count 1/2); None without both classes."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=bool)
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


# ------------------------------------------------------------------ the model
@dataclass
class VerdictModel:
    """The fitted verdict: final model (all pairs) + the out-of-fold threshold and quality figures."""

    features: list[Feature]
    impute: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    target_fpr: float
    fit_id: str = ""
    fitted_at: datetime | None = None
    C: float = DEFAULT_C
    cv: str = CV_NAME
    n_pairs: int = 0
    n_positive: int = 0
    n_negative: int = 0
    n_families: int = 0
    n_fits: int = 0
    n_unscored: int = 0
    roc_auc_oof: float | None = None
    tpr_at_fpr_oof: float | None = None
    fpr_at_threshold_oof: float | None = None
    precision_oof: float | None = None
    n_imputed: dict[str, int] = field(default_factory=dict)
    fit_seconds: float = 0.0
    lofo: LofoResult | None = field(default=None, repr=False, compare=False)

    def _matrix(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(1, -1) if X.ndim == 1 else X
        if X.shape[1] != len(self.features):
            raise ProvenanceError(f"expected {len(self.features)} feature column(s) "
                                  f"({', '.join(f.name for f in self.features)}), got {X.shape[1]}")
        return X

    def _z(self, X) -> np.ndarray:
        X = self._matrix(X)
        return (np.where(np.isnan(X), self.impute, X) - self.mean) / self.scale

    def logit(self, X) -> np.ndarray:
        """Log-odds of relatedness (missing values imputed with the training negatives' medians)."""
        return self._z(X) @ self.coef + self.intercept

    def score(self, X) -> np.ndarray:
        """Probability-like score in [0, 1]; related iff score >= threshold."""
        return _sigmoid(self.logit(X))

    def contributions(self, X) -> np.ndarray:
        """Per-feature terms coef * z of the log-odds (they sum to logit - intercept)."""
        return self._z(X) * self.coef

    # lake rows
    def to_row(self) -> dict:
        return {
            "fit_id": self.fit_id, "features_json": json.dumps([f.to_dict() for f in self.features]),
            "coef_json": json.dumps({f.name: float(c) for f, c in zip(self.features, self.coef, strict=True)}),
            "intercept": float(self.intercept),
            "scaler_json": json.dumps({"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}),
            "impute_json": json.dumps({f.name: float(v) for f, v in zip(self.features, self.impute, strict=True)}),
            "threshold": float(self.threshold), "target_fpr": float(self.target_fpr),
            "n_pairs": self.n_pairs, "n_positive": self.n_positive, "n_negative": self.n_negative,
            "n_families": self.n_families, "cv": self.cv, "n_fits": self.n_fits, "n_unscored": self.n_unscored,
            "roc_auc_oof": self.roc_auc_oof, "tpr_at_fpr_oof": self.tpr_at_fpr_oof,
            "fpr_at_threshold_oof": self.fpr_at_threshold_oof, "precision_oof": self.precision_oof,
            "n_imputed_json": json.dumps(self.n_imputed), "c": float(self.C), "fit_seconds": float(self.fit_seconds),
            "fitted_at": self.fitted_at or datetime.now(UTC),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VerdictModel:
        feats = [Feature.parse(d) for d in json.loads(row["features_json"])]
        coef, impute = json.loads(row["coef_json"]), json.loads(row["impute_json"])
        scaler = json.loads(row["scaler_json"])
        return cls(
            features=feats, impute=np.array([impute[f.name] for f in feats], dtype=np.float64),
            mean=np.array(scaler["mean"], dtype=np.float64), scale=np.array(scaler["scale"], dtype=np.float64),
            coef=np.array([coef[f.name] for f in feats], dtype=np.float64), intercept=float(row["intercept"]),
            threshold=float(row["threshold"]), target_fpr=float(row["target_fpr"]), fit_id=row["fit_id"],
            fitted_at=row.get("fitted_at"), C=float(row.get("c") or DEFAULT_C), cv=row.get("cv") or CV_NAME,
            n_pairs=int(row.get("n_pairs") or 0), n_positive=int(row.get("n_positive") or 0),
            n_negative=int(row.get("n_negative") or 0), n_families=int(row.get("n_families") or 0),
            n_fits=int(row.get("n_fits") or 0), n_unscored=int(row.get("n_unscored") or 0),
            roc_auc_oof=row.get("roc_auc_oof"), tpr_at_fpr_oof=row.get("tpr_at_fpr_oof"),
            fpr_at_threshold_oof=row.get("fpr_at_threshold_oof"), precision_oof=row.get("precision_oof"),
            n_imputed=json.loads(row.get("n_imputed_json") or "{}"), fit_seconds=float(row.get("fit_seconds") or 0.0),
        )


def _fit_id(df: pl.DataFrame, feats: Sequence[Feature], X: np.ndarray, target_fpr: float, C: float) -> str:
    """Content hash of the inputs: a rerun on the same lake gets the same id (and replaces its row)."""
    h = hashlib.sha256()
    h.update(json.dumps([[f.to_dict() for f in feats], target_fpr, C]).encode())
    for col in ("model_a", "model_b", "family_a", "family_b", "relation"):
        h.update("\x00".join(df[col].to_list()).encode())
    h.update(df["label"].to_numpy().astype(np.uint8).tobytes())
    h.update(np.ascontiguousarray(X).tobytes())
    return h.hexdigest()[:16]


def fit_verdict(df: pl.DataFrame, features: Iterable[Any] | None = None, *, target_fpr: float = 0.01,
                C: float = DEFAULT_C, progress: bool = False) -> VerdictModel:
    """Leave-one-family-out scores, the threshold at ``target_fpr``, then the final fit on all pairs.

    Pass the features from :func:`resolve_features` so the model records their config hashes;
    given by name only (or None: every non-base column of ``df``), the verdict later reads each
    method's current config in the lake.
    """
    t0 = time.perf_counter()
    target_fpr = check_target_fpr(target_fpr)
    feats = _features_of(df, features)
    X = design_matrix(df, feats)
    y = df["label"].to_numpy().astype(bool)
    if not y.any() or y.all():
        raise ProvenanceError(f"the verdict needs related and unrelated pairs; got {int(y.sum())} related and "
                              f"{int((~y).sum())} unrelated of {len(y)}")
    lofo = leave_one_family_out(df, feats, C=C, progress=progress)
    ok = ~np.isnan(lofo.scores)
    if not ok.any() or y[ok].all():
        raise ProvenanceError("leave-one-family-out scored no unrelated pair: it needs at least 3 families "
                              f"with fingerprints (found {len(set(df['family_a']) | set(df['family_b']))})")
    thr = choose_threshold(lofo.scores[ok], y[ok], target_fpr)
    # the final model is the average of the fold models: same scale as the out-of-fold scores, so the
    # out-of-fold threshold applies to it (a refit on all pairs would be sharper and under-call)
    full = _fit_lr(X, y, C)
    assert full is not None  # both classes present
    final = _average_fits(lofo.fitted, full.impute, full.mean, full.scale)
    families = set(df["family_a"].to_list()) | set(df["family_b"].to_list())
    return VerdictModel(
        features=list(feats), impute=final.impute, mean=final.mean, scale=final.scale, coef=final.coef,
        intercept=final.intercept, threshold=thr.threshold, target_fpr=target_fpr,
        fit_id=_fit_id(df, feats, X, target_fpr, C), fitted_at=datetime.now(UTC), C=C,
        n_pairs=len(y), n_positive=int(y.sum()), n_negative=int((~y).sum()), n_families=len(families),
        n_fits=lofo.n_distinct_fits, n_unscored=lofo.n_unscored, roc_auc_oof=roc_auc(lofo.scores[ok], y[ok]),
        tpr_at_fpr_oof=thr.tpr, fpr_at_threshold_oof=thr.fpr, precision_oof=thr.precision,
        n_imputed={f.name: int(np.isnan(X[:, j]).sum()) for j, f in enumerate(feats)},
        fit_seconds=time.perf_counter() - t0, lofo=lofo)


# ------------------------------------------------------------------ lake I/O
def scores_table(df: pl.DataFrame, model: VerdictModel) -> pa.Table:
    """``provenance_scores`` rows for the fitted pairs (out-of-fold and full-model scores)."""
    feats = model.features
    X = design_matrix(df, feats)
    lofo = model.lofo
    n = len(df)
    oof = lofo.scores if lofo is not None else np.full(n, np.nan)
    # the families left out by the fit that scored each pair (None when unscored: index -1 -> last)
    # the families left out by the fit that scored each pair (None when unscored: index -1 -> last)
    names = np.array(["|".join(f.excluded) for f in lofo.fits] + [None] if lofo is not None else [None], dtype=object)
    excluded = names[lofo.fit_index] if lofo is not None else np.full(n, None, dtype=object)
    out = df.select(
        "model_a", "model_b", "family_a", "family_b", "relation", "label", pl.col("lineage_depth").cast(pl.Int64),
        pl.Series("score_oof", oof, pl.Float64).fill_nan(None),
        pl.Series("score_full", model.score(X), pl.Float64),
        pl.struct([pl.col(f.name) for f in feats]).struct.json_encode().alias("features_json"),
        pl.lit(model.fit_id).alias("fit_id"),
        pl.lit(model.fitted_at or datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("fitted_at"),
        pl.Series("n_imputed", np.isnan(X).sum(axis=1), pl.Int64),
        pl.Series("oof_excluded", excluded.tolist(), pl.String),
    )
    return out.to_arrow()


def write_verdict(lake: Lake, df: pl.DataFrame, model: VerdictModel) -> dict[str, int]:
    """Replace ``provenance_scores`` by this fit's pairs and upsert its ``provenance_model`` row."""
    n = lake.overwrite("provenance_scores", scores_table(df, model))
    lake.merge("provenance_model", pa.Table.from_pylist([model.to_row()], schema=TABLES["provenance_model"].schema))
    return {"provenance_scores": n, "provenance_model": 1}


def current_model(lake: Lake) -> VerdictModel:
    """The newest fit in ``provenance_model``; :class:`NoVerdictModelError` when there is none."""
    rows = (lake.scan("provenance_model").sort("fitted_at", descending=True, nulls_last=True).head(1)
            .collect().to_dicts()) if lake.exists("provenance_model") else []
    if not rows:
        raise NoVerdictModelError(f"no verdict model fitted yet in the lake at {lake.root}; "
                                  "run `fplake provenance fit` first")
    return VerdictModel.from_row(rows[0])


# ------------------------------------------------------------------ verdicts
def _feature_key(model: VerdictModel, key: Any) -> str | None:
    f = Feature.parse(key)
    mine = {g.name: g for g in model.features}
    if f.name not in mine:
        return None
    if f.config_hash and mine[f.name].config_hash and f.config_hash != mine[f.name].config_hash:
        raise ProvenanceError(f"similarity for {f.name!r} was computed with config {f.config_hash}, but the "
                              f"verdict model uses config {mine[f.name].config_hash}")
    return f.name


def score_similarities(model: VerdictModel, similarities: Mapping[Any, float | None]) -> dict:
    """The verdict for one pair from its similarities (keys ``"method/metric"``, (method, metric) or Feature).

    Features the model does not use are ignored; missing ones (absent, None or NaN) are imputed
    with the training negatives' median and flagged. For callers holding similarities of a model
    that is not registered (``fplake lookup``).
    """
    vals: dict[str, float] = {}
    for k, v in similarities.items():
        name = _feature_key(model, k)
        if name is not None and v is not None and not (isinstance(v, float) and math.isnan(v)):
            vals[name] = float(v)
    x = np.array([vals.get(f.name, np.nan) for f in model.features], dtype=np.float64)
    z = model._z(x)[0]
    contrib = z * model.coef
    logit = float(contrib.sum() + model.intercept)
    score = float(_sigmoid(np.array([logit]))[0])
    evidence = [{"feature": f.name, "method": f.method, "metric": f.metric, "config_hash": f.config_hash,
                 "similarity": vals.get(f.name), "imputed": f.name not in vals,
                 "imputed_value": None if f.name in vals else float(model.impute[j]),
                 "coef": float(model.coef[j]), "z": float(z[j]), "contribution": float(contrib[j])}
                for j, f in enumerate(model.features)]
    related = bool(score >= model.threshold)
    return {"related": related, "verdict": "related" if related else "unrelated", "score": score, "logit": logit,
            "intercept": float(model.intercept), "threshold": float(model.threshold),
            "target_fpr": float(model.target_fpr), "fit_id": model.fit_id, "evidence": evidence,
            "n_missing": int(sum(e["imputed"] for e in evidence))}


def negative_values(lake: Lake, model: VerdictModel) -> dict[str, np.ndarray]:
    """Per feature, the similarities of this fit's unrelated (negative) pairs, from ``provenance_scores``."""
    if not lake.exists("provenance_scores"):
        return {}
    dtype = pl.Struct({f.name: pl.Float64 for f in model.features})
    neg = (lake.scan("provenance_scores").filter((pl.col("fit_id") == model.fit_id) & ~pl.col("label"))
           .select(pl.col("features_json").str.json_decode(dtype).alias("f")).unnest("f").collect())
    return {f.name: neg[f.name].drop_nulls().to_numpy() for f in model.features if f.name in neg.columns}


def percentile(values: np.ndarray, v: float) -> float | None:
    """Share (in %) of ``values`` below ``v``, ties counted half; None without values."""
    if values is None or len(values) == 0:
        return None
    return float(100.0 * ((values < v).sum() + 0.5 * (values == v).sum()) / len(values))


def verdict(lake: Lake, a: str, b: str, model: VerdictModel | None = None) -> dict:
    """Is B derived from A (or vice versa)? The current fit's verdict with per-feature evidence.

    ``a`` / ``b``: model ids or unique display names. A similarity that is not stored is computed
    from the two stored fingerprints of the feature's config (``source = "computed"``); without
    both fingerprints the feature is reported missing and imputed.
    """
    from fingerprinting.metrics import similarity
    from fingerprinting.registry import list_models, match_ids

    model = model or current_model(lake)
    ra, rb = match_ids([a, b], list_models(lake))
    if ra.model_id == rb.model_id:
        raise ProvenanceError(f"{a!r} and {b!r} are the same model ({ra.model_id}); name two different models")
    x, y = sorted([ra.model_id, rb.model_id])
    # a model fitted without config hashes (features given by name only) reads the lake's current choice
    feats = [f if f.config_hash else resolve_features(lake, [(f.method, f.metric)])[0] for f in model.features]
    key = pl.DataFrame({"method": [f.method for f in feats], "metric": [f.metric for f in feats],
                        "config_hash": [f.config_hash for f in feats], "feature": [f.name for f in feats]})
    stored = dict(lake.scan("similarities")
                  .filter((pl.col("model_a") == x) & (pl.col("model_b") == y))
                  .join(key.lazy(), on=["method", "metric", "config_hash"])
                  .select("feature", "similarity").collect().iter_rows())
    values: dict[str, float] = {}
    source: dict[str, str] = {}
    need = [f for f in feats if stored.get(f.name) is None]
    fps: dict[tuple[str, str, str], np.ndarray] = {}
    if need:
        for mid, method, h, vec in (lake.scan("fingerprints").filter(pl.col("model_id").is_in([x, y]))
                                    .select("model_id", "method", "config_hash", "vector").collect().iter_rows()):
            fps[(mid, method, h)] = np.asarray(vec, dtype=np.float64)
    for f in feats:
        if stored.get(f.name) is not None:
            values[f.name], source[f.name] = float(stored[f.name]), "stored"
        elif (x, f.method, f.config_hash) in fps and (y, f.method, f.config_hash) in fps:
            values[f.name] = similarity(fps[(x, f.method, f.config_hash)], fps[(y, f.method, f.config_hash)], f.metric)
            source[f.name] = "computed"
        else:
            source[f.name] = "missing"
    if not values:
        methods = ", ".join(sorted({f"{f.method} (config {f.config_hash})" for f in feats}))
        raise ProvenanceError(f"no similarity and no pair of fingerprints for {ra.model_id!r} and {rb.model_id!r} "
                              f"under any verdict feature; fingerprint both with {methods}")
    res = score_similarities(model, values)
    negs = negative_values(lake, model)
    for e in res["evidence"]:
        e["source"] = source[e["feature"]]
        e["percentile_among_unrelated"] = (percentile(negs.get(e["feature"]), e["similarity"])
                                           if e["similarity"] is not None else None)
    pair = pl.DataFrame({"model_a": [x], "model_b": [y]})
    recorded = label_pairs(lake, pair).to_dicts()[0]
    oof = None
    if lake.exists("provenance_scores"):
        rows = (lake.scan("provenance_scores")
                .filter((pl.col("model_a") == x) & (pl.col("model_b") == y) & (pl.col("fit_id") == model.fit_id))
                .select("score_oof", "oof_excluded").collect().to_dicts())
        oof = rows[0] if rows else None

    def info(r):
        return {"model_id": r.model_id, "display_name": r.display_name, "family": r.family, "model_type": r.model_type}

    return {"a": info(ra), "b": info(rb), **res,
            "fitted_at": model.fitted_at.isoformat() if isinstance(model.fitted_at, datetime) else model.fitted_at,
            "roc_auc_oof": model.roc_auc_oof, "tpr_at_fpr_oof": model.tpr_at_fpr_oof,
            "recorded": {"relation": recorded["relation"], "label": bool(recorded["label"]),
                         "lineage_depth": recorded["lineage_depth"]},
            "score_oof": oof["score_oof"] if oof else None, "oof_excluded": oof["oof_excluded"] if oof else None}


def model_summary(model: VerdictModel) -> dict:
    """The figures ``fplake provenance fit`` prints (JSON-safe)."""
    return {"fit_id": model.fit_id, "features": [f.to_dict() for f in model.features],
            "coefficients": {f.name: float(c) for f, c in zip(model.features, model.coef, strict=True)},
            "intercept": float(model.intercept), "threshold": float(model.threshold),
            "target_fpr": model.target_fpr, "n_pairs": model.n_pairs, "n_positive": model.n_positive,
            "n_negative": model.n_negative, "n_families": model.n_families, "cv": model.cv, "n_fits": model.n_fits,
            "n_unscored": model.n_unscored, "roc_auc_oof": model.roc_auc_oof, "tpr_at_fpr_oof": model.tpr_at_fpr_oof,
            "fpr_at_threshold_oof": model.fpr_at_threshold_oof, "precision_oof": model.precision_oof,
            "n_imputed": model.n_imputed, "fit_seconds": round(model.fit_seconds, 3),
            "fitted_at": model.fitted_at.isoformat() if isinstance(model.fitted_at, datetime) else model.fitted_at}


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, target_fpr: float) -> float:
    """Best TPR over thresholds at positive scores whose FPR (negatives >= threshold) is <= target_fpr."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    neg_sorted = np.sort(neg)
    pos_sorted = np.sort(pos)
    n_neg_ge = len(neg) - np.searchsorted(neg_sorted, pos_sorted, side="left")
    n_pos_ge = len(pos) - np.searchsorted(pos_sorted, pos_sorted, side="left")
    ok = n_neg_ge / len(neg) <= target_fpr
    return float((n_pos_ge[ok] / len(pos)).max()) if ok.any() else 0.0


def quality_by_relation(relation: Sequence[str], label: np.ndarray, scores: np.ndarray, threshold: float,
                        target_fpr: float) -> list[dict]:
    """The Python twin of the ``verdict_quality`` mart (unscored pairs dropped).

    Groups: ``all`` (every positive vs every negative), each positive relation (its positives vs
    every negative) and ``sibling`` (every positive vs the sibling negatives only).
    """
    rel = np.asarray(relation, dtype=object)
    y = np.asarray(label, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    ok = ~np.isnan(s)
    rel, y, s = rel[ok], y[ok], s[ok]
    groups = [("all", y, ~y)] + [(r, y & (rel == r), ~y) for r in sorted(set(rel[y]))]
    if (~y & (rel == "sibling")).any():
        groups.append(("sibling", y, ~y & (rel == "sibling")))
    out = []
    for name, pm, nm in groups:
        pos, neg = s[pm], s[nm]
        tp, fp = int((pos >= threshold).sum()), int((neg >= threshold).sum())
        out.append({"derivation_type": name, "n_positive": len(pos), "n_negative": len(neg),
                    "roc_auc": roc_auc(np.concatenate([pos, neg]), np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]),
                    "tpr_at_target_fpr": tpr_at_fpr(pos, neg, target_fpr),
                    "tpr_at_threshold": tp / len(pos) if len(pos) else None,
                    "fpr_at_threshold": fp / len(neg) if len(neg) else None,
                    "precision_at_threshold": tp / (tp + fp) if tp + fp else None})
    return out

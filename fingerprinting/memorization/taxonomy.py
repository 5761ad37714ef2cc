"""Taxonomy of memorized samples and its predictive model.

Rule (memorized samples): duplicates >= ``recitation_threshold`` (default 6,
i.e. "> 5", the reference's command-line default) -> recitation; else
templating -> reconstruction; else recollection. The production taxonomy is
a dbt mart; :func:`categorize` is the reference the tests use.

:func:`fit_taxonomic_model` follows the paper: the rule (duplicates and
templating only) is applied to ALL samples, memorized or not, so every sample
falls in a category; one logistic regression per category predicts
memorization from the features, against one baseline regression on all
samples. :func:`feature_correlations` and :func:`greedy_taxonomy_search`
complete the analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

CATEGORIES = ("recitation", "reconstruction", "recollection")
CONTINUOUS_FEATURES = (
    "duplicates",
    "max_frequency", "mean_frequency", "min_frequency", "median_frequency",
    "p25_frequency", "p75_frequency",
    "prompt_perplexity", "continuation_perplexity", "sequence_perplexity",
    "textual_matches", "semantic_matches",
    "huffman_length",
)
BINARY_FEATURES = ("is_templating",)
MODEL_FEATURES = CONTINUOUS_FEATURES + BINARY_FEATURES


def assign_category(duplicates, is_templating, recitation_threshold: int = 6) -> np.ndarray:
    """The taxonomy rule applied to every sample, memorized or not (object array of str)."""
    dup = np.asarray(duplicates)
    templ = np.asarray(is_templating, dtype=bool)
    return np.where(dup >= recitation_threshold, "recitation",
                    np.where(templ, "reconstruction", "recollection")).astype(object)


def categorize(memorized, duplicates, is_templating, recitation_threshold: int = 6) -> np.ndarray:
    """Category of each sample: the rule for memorized samples, "not_memorized" otherwise."""
    cat = assign_category(duplicates, is_templating, recitation_threshold)
    return np.where(np.asarray(memorized, dtype=bool), cat, "not_memorized").astype(object)


# ----------------------------------------------------------------- metrics
def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins on [0, 1].

    Bin b holds predictions in [b/n, (b+1)/n) (the last bin includes 1);
    ECE = sum_b (n_b / N) * |mean(y in b) - mean(p in b)|; empty bins add 0.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(y) * abs(y[m].mean() - p[m].mean())
    return float(total)


def _metrics(y, p) -> dict:
    from sklearn.metrics import (
        average_precision_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=np.float64)
    pred = (p >= 0.5).astype(int)
    two = len(np.unique(y)) == 2
    return {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, p)) if two else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if y.sum() > 0 else float("nan"),
        "ece": expected_calibration_error(y, p, 10),
    }


def _log_likelihood(y, p) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(y, dtype=np.float64)
    return float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))


# ----------------------------------------------------------------- inputs
def _to_columns(features) -> dict[str, np.ndarray]:
    """Columns of a pyarrow Table, polars / pandas DataFrame or dict as numpy arrays."""
    if isinstance(features, dict):
        return {k: np.asarray(v) for k, v in features.items()}
    if isinstance(features, pa.Table):
        return {name: features.column(name).to_numpy(zero_copy_only=False)
                for name in features.column_names}
    if hasattr(features, "to_arrow"):  # polars
        return _to_columns(features.to_arrow())
    if hasattr(features, "columns") and hasattr(features, "to_numpy"):  # pandas
        return {c: features[c].to_numpy() for c in features.columns}
    raise TypeError(f"unsupported feature container {type(features).__name__}")


def _design(cols: dict, features: Sequence[str]) -> np.ndarray:
    missing = [f for f in features if f not in cols]
    if missing:
        raise KeyError(f"feature table lacks columns {missing}")
    X = np.column_stack([np.asarray(cols[f], dtype=np.float64) for f in features])
    # perplexities can overflow to inf; keep the model finite and monotone
    X = np.where(np.isfinite(X), X, np.nan)
    col_max = np.nanmax(np.where(np.isnan(X), -np.inf, X), axis=0)
    col_max = np.where(np.isfinite(col_max), col_max, 0.0)
    return np.where(np.isnan(X), col_max[None, :], X)


def _target(cols: dict, target: str) -> np.ndarray:
    if target in cols:
        return np.asarray(cols[target]).astype(bool).astype(int)
    if "score" in cols:
        return (np.asarray(cols["score"], dtype=np.float64) >= 1.0).astype(int)
    raise KeyError(f"feature table lacks the target column {target!r} (or 'score')")


def _categories(cols: dict, threshold: int, category_column: str | None) -> np.ndarray:
    if category_column and category_column in cols:
        return np.asarray(cols[category_column]).astype(object)
    dup = cols["duplicates"]
    templ = cols["is_templating"] if "is_templating" in cols else np.zeros(len(dup), dtype=bool)
    return assign_category(dup, templ, threshold)


def _pipeline(seed: int, C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, random_state=seed))


# ----------------------------------------------------------------- taxonomic model
@dataclass
class TaxonomyModelResult:
    """Outcome of :func:`fit_taxonomic_model`."""

    features: list[str]
    categories: dict  # category -> {"n_train", "n_test", "status", "metrics", "weights", ...}
    baseline: dict  # {"metrics", "weights", "intercept"}
    taxonomic: dict  # metrics of the combined per-category predictions on the test split
    likelihood_ratio: dict  # {"statistic", "df", "p_value", "ll_taxonomic", "ll_baseline"}
    skipped: list[tuple[str, str]] = field(default_factory=list)
    split: dict = field(default_factory=dict)

    def summary_table(self) -> pa.Table:
        """One row per model (baseline, taxonomic, each category) with its test metrics."""
        rows = [("baseline", self.baseline["metrics"]), ("taxonomic", self.taxonomic)]
        rows += [(c, v["metrics"]) for c, v in self.categories.items() if v.get("metrics")]
        keys = ["n", "positives", "precision", "recall", "roc_auc", "pr_auc", "ece"]
        data = {"model": [r[0] for r in rows]}
        for k in keys:
            data[k] = [r[1].get(k) for r in rows]
        return pa.table(data)


def _split(y: np.ndarray, cats: np.ndarray, test_size: float, seed: int):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    strata = np.array([f"{c}|{v}" for c, v in zip(cats, y, strict=True)])
    # strata with a single member cannot be split; fall back to the label, then to none
    for s in (strata, y):
        _, counts = np.unique(s, return_counts=True)
        if counts.min() >= 2:
            try:
                return train_test_split(idx, test_size=test_size, random_state=seed, stratify=s)
            except ValueError:
                continue
    return train_test_split(idx, test_size=test_size, random_state=seed)


def fit_taxonomic_model(
    features,
    *,
    seed: int = 1024,
    test_size: float = 0.3,
    target: str = "memorized",
    recitation_threshold: int = 6,
    category_column: str | None = None,
    feature_names: Sequence[str] = MODEL_FEATURES,
    C: float = 1.0,
) -> TaxonomyModelResult:
    """Per-category logistic regressions vs one baseline, on the same split.

    ``features`` (pyarrow Table / polars DataFrame / dict) holds the 13
    continuous features, ``is_templating`` and the target (``memorized``, or
    ``score`` == 1). Categories come from ``category_column`` when given, else
    from the rule on duplicates / templating applied to ALL samples (as in the
    paper, so non-memorized samples are in a category too).

    Split: seeded (``seed``) train/test split stratified by category x label.
    Each model is StandardScaler + LogisticRegression(C). A category whose
    training part has a single class is skipped (reported in ``skipped``); its
    test samples get that class's training rate as the prediction, so the
    taxonomic combination still covers every test sample. Metrics (precision,
    recall at 0.5, ROC-AUC, PR-AUC = average precision, ECE with 10 bins) are
    reported per category and for the combination vs the baseline on the same
    test samples. Likelihood-ratio test on the training data:
    2 * (LL_taxonomic - LL_baseline) against chi-square with df = parameters of
    the taxonomic models (k + 1 per fitted category, 1 per skipped one) minus
    the baseline's k + 1 (with L2 regularisation, C = 1, the statistic is an
    approximation). Weights are the standardised coefficients per feature.
    """
    from scipy import stats

    cols = _to_columns(features)
    feats = list(feature_names)
    X = _design(cols, feats)
    y = _target(cols, target)
    cats = _categories(cols, recitation_threshold, category_column)
    tr, te = _split(y, cats, test_size, seed)

    def weights(pipe) -> tuple[dict, float]:
        lr = pipe[-1]
        return ({f: float(w) for f, w in zip(feats, lr.coef_.ravel(), strict=True)},
                float(lr.intercept_[0]))

    base_res: dict = {}
    p_base_te = np.full(len(te), y[tr].mean())
    p_base_tr = np.full(len(tr), y[tr].mean())
    if len(np.unique(y[tr])) == 2:
        base = _pipeline(seed, C).fit(X[tr], y[tr])
        p_base_te = base.predict_proba(X[te])[:, 1]
        p_base_tr = base.predict_proba(X[tr])[:, 1]
        base_res["weights"], base_res["intercept"] = weights(base)
        base_res["status"] = "fitted"
    else:
        base_res["status"] = "single class in training data"
    base_res["metrics"] = _metrics(y[te], p_base_te)

    p_tax_te = np.zeros(len(te))
    p_tax_tr = np.zeros(len(tr))
    per_cat: dict = {}
    skipped: list[tuple[str, str]] = []
    params_tax = 0
    for c in sorted(set(cats.tolist())):
        mtr, mte = cats[tr] == c, cats[te] == c
        rec: dict = {"n_train": int(mtr.sum()), "n_test": int(mte.sum()),
                     "train_positives": int(y[tr][mtr].sum())}
        classes = np.unique(y[tr][mtr])
        if len(classes) < 2:
            rate = float(y[tr][mtr].mean()) if mtr.any() else float(y[tr].mean())
            reason = f"single class ({int(classes[0]) if len(classes) else 'none'}) in training data"
            rec.update(status="skipped", reason=reason, constant_prediction=rate)
            skipped.append((c, reason))
            p_tax_tr[mtr] = rate
            p_tax_te[mte] = rate
            params_tax += 1
        else:
            pipe = _pipeline(seed, C).fit(X[tr][mtr], y[tr][mtr])
            p_tax_tr[mtr] = pipe.predict_proba(X[tr][mtr])[:, 1]
            if mte.any():
                p_tax_te[mte] = pipe.predict_proba(X[te][mte])[:, 1]
            rec["weights"], rec["intercept"] = weights(pipe)
            rec["status"] = "fitted"
            params_tax += len(feats) + 1
        if mte.any():
            rec["metrics"] = _metrics(y[te][mte], p_tax_te[mte])
        per_cat[c] = rec

    ll_tax = _log_likelihood(y[tr], p_tax_tr)
    ll_base = _log_likelihood(y[tr], p_base_tr)
    params_base = len(feats) + 1 if base_res["status"] == "fitted" else 1
    df = params_tax - params_base
    stat = 2.0 * (ll_tax - ll_base)
    p_value = float(stats.chi2.sf(stat, df)) if df > 0 else float("nan")
    return TaxonomyModelResult(
        features=feats,
        categories=per_cat,
        baseline=base_res,
        taxonomic=_metrics(y[te], p_tax_te),
        likelihood_ratio={"statistic": float(stat), "df": int(df), "p_value": p_value,
                          "ll_taxonomic": ll_tax, "ll_baseline": ll_base},
        skipped=skipped,
        split={"seed": seed, "test_size": test_size, "n_train": int(len(tr)), "n_test": int(len(te)),
               "train_index": tr, "test_index": te, "y_test": y[te],
               "p_baseline_test": p_base_te, "p_taxonomic_test": p_tax_te},
    )


# ----------------------------------------------------------------- correlations
def chatterjee_xi(x, y, seed: int = 0) -> float:
    """Chatterjee's rank correlation xi_n(X, Y) (Chatterjee 2021), ties handled as in the paper.

    Sort the pairs by x (ties in x broken uniformly at random, seeded);
    r_i = #{j : y_j <= y_(i)}, l_i = #{j : y_j >= y_(i)};
    xi = 1 - n * sum_i |r_{i+1} - r_i| / (2 * sum_i l_i (n - l_i)).
    Without ties in y this equals 1 - 3 sum|r_{i+1} - r_i| / (n^2 - 1).
    Not symmetric: measures how well y is a function of x. NaN when n < 2 or
    y is constant.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), x))  # by x, random among equal x
    ys = y[order]
    sorted_y = np.sort(y)
    r = np.searchsorted(sorted_y, ys, side="right")  # #{j: y_j <= y_(i)}
    lc = n - np.searchsorted(sorted_y, ys, side="left")  # l_i = #{j: y_j >= y_(i)}
    denom = 2.0 * np.sum(lc * (n - lc))
    if denom == 0:
        return float("nan")
    return float(1.0 - n * np.sum(np.abs(np.diff(r))) / denom)


def _corr_row(x, y) -> tuple[float, float, float]:
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), chatterjee_xi(x, y) if len(x) >= 2 and np.ptp(y) else float("nan")
    return (float(stats.pearsonr(x, y)[0]), float(stats.spearmanr(x, y)[0]), chatterjee_xi(x, y))


def feature_correlations(
    features,
    *,
    target: str = "score",
    feature_names: Sequence[str] = MODEL_FEATURES,
    category_column: str | None = None,
    code_column: str = "is_code",
    recitation_threshold: int = 6,
) -> pa.Table:
    """Pearson, Spearman and Chatterjee's xi of each feature with the memorization score.

    Groups: "all"; "category=<c>" for each category (``category_column`` or
    the rule on all samples); and "is_code=True/False" when ``code_column``
    is present. Rows: group, feature, n, pearson, spearman, xi (non-finite
    values dropped pairwise; constant columns give NaN).
    """
    cols = _to_columns(features)
    if target not in cols:
        raise KeyError(f"feature table lacks the target column {target!r}")
    y = np.asarray(cols[target], dtype=np.float64)
    groups: list[tuple[str, np.ndarray]] = [("all", np.ones(len(y), bool))]
    cats = _categories(cols, recitation_threshold, category_column)
    for c in sorted(set(cats.tolist())):
        groups.append((f"category={c}", cats == c))
    if code_column in cols:
        code = np.asarray(cols[code_column]).astype(bool)
        groups += [("is_code=True", code), ("is_code=False", ~code)]
    out = {"group": [], "feature": [], "n": [], "pearson": [], "spearman": [], "xi": []}
    for name, mask in groups:
        for f in feature_names:
            if f not in cols:
                continue
            pr, sp, xi = _corr_row(np.asarray(cols[f], dtype=np.float64)[mask], y[mask])
            out["group"].append(name)
            out["feature"].append(f)
            out["n"].append(int(mask.sum()))
            out["pearson"].append(pr)
            out["spearman"].append(sp)
            out["xi"].append(xi)
    return pa.table(out)


# ----------------------------------------------------------------- greedy search
def _taxonomy_score(X, y, cats, tr, te, seed: int, C: float) -> dict:
    """Held-out log-likelihood per sample and ROC-AUC of per-category models."""
    p = np.zeros(len(te))
    for c in set(cats.tolist()):
        mtr, mte = cats[tr] == c, cats[te] == c
        if not mte.any():
            continue
        ytr = y[tr][mtr]
        if len(np.unique(ytr)) < 2:
            p[mte] = ytr.mean() if len(ytr) else y[tr].mean()
        else:
            p[mte] = _pipeline(seed, C).fit(X[tr][mtr], ytr).predict_proba(X[te][mte])[:, 1]
    m = _metrics(y[te], p)
    return {"loglik": _log_likelihood(y[te], p) / max(len(te), 1), "roc_auc": m["roc_auc"]}


def greedy_taxonomy_search(
    features,
    *,
    candidates: Sequence[str] = CONTINUOUS_FEATURES,
    quantiles: Sequence[float] = (0.25, 0.5, 0.75),
    max_steps: int = 3,
    metric: str = "loglik",
    seed: int = 1024,
    test_size: float = 0.3,
    target: str = "memorized",
    recitation_threshold: int = 6,
    min_size: int = 20,
    C: float = 1.0,
) -> list[dict]:
    """Greedy search for taxonomy refinements that predict memorization better.

    Start from the rule's categories. At each step try splitting every
    current category on every candidate feature at its 0.25 / 0.5 / 0.75
    quantile (computed within that category) into "<cat>|<f><=t" and
    "<cat>|<f>>t"; score each taxonomy by the per-category models' held-out
    mean log-likelihood (``metric="loglik"``) or ROC-AUC (``"roc_auc"``) on a
    fixed seeded split; keep the best split if it beats the current score.
    Splits leaving fewer than ``min_size`` samples on a side are not tried.
    Returns the steps: step 0 is the starting taxonomy, then one record per
    accepted split with category, feature, quantile, threshold and scores.
    """
    cols = _to_columns(features)
    feats = list(MODEL_FEATURES)
    X = _design(cols, feats)
    y = _target(cols, target)
    cats = _categories(cols, recitation_threshold, None).astype(object)
    tr, te = _split(y, cats, test_size, seed)
    current = _taxonomy_score(X, y, cats, tr, te, seed, C)
    steps = [{"step": 0, "split": None, "categories": sorted(set(cats.tolist())), **current}]
    for step in range(1, max_steps + 1):
        best = None
        for c in sorted(set(cats.tolist())):
            in_c = cats == c
            for f in candidates:
                v = np.asarray(cols[f], dtype=np.float64)
                for q in quantiles:
                    thr = float(np.nanquantile(v[in_c], q))
                    low = in_c & (v <= thr)
                    if low.sum() < min_size or (in_c & ~low).sum() < min_size:
                        continue
                    trial = cats.copy()
                    trial[low] = f"{c}|{f}<={thr:.4g}"
                    trial[in_c & ~low] = f"{c}|{f}>{thr:.4g}"
                    s = _taxonomy_score(X, y, trial, tr, te, seed, C)
                    if np.isfinite(s[metric]) and (best is None or s[metric] > best[0][metric]):
                        best = (s, c, f, q, thr, trial)
        if best is None or not best[0][metric] > current[metric]:
            break
        s, c, f, q, thr, trial = best
        cats, current = trial, s
        steps.append({"step": step, "split": {"category": c, "feature": f, "quantile": q,
                                              "threshold": thr},
                      "categories": sorted(set(cats.tolist())), **s})
    return steps

"""The memorization dashboard: how much each model memorizes, of which kind
(recitation / reconstruction / recollection), which features go with it, and how
well the taxonomic model predicts it.

:func:`load_memorization_data` reads the memorization marts of an open warehouse
connection into plain rows and arrays (a mart that is not built yet, or empty,
is recorded, not fatal); :func:`memorization_dashboard_html` turns them into one
offline page over :mod:`fingerprinting.reports.page`;
:func:`render_memorization_dashboard` does both and writes the file.

The page has overview sections across every model x corpus (taxonomy shares,
predictive-model metrics, planted ground truth) and one block per model x
corpus, chosen with a selector, so it stays readable with many combinations.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from fingerprinting.reports import page

GEN_LEN = 32  # generated tokens per sample: scores are multiples of 1/32
CATEGORIES = ("recitation", "reconstruction", "recollection")
# One colour per category on every chart; not memorized is grey.
CATEGORY_COLOURS = {"recitation": "#1f77b4", "reconstruction": "#ff7f0e", "recollection": "#2ca02c",
                    "not_memorized": "#9a9a9a", "memorized": "#7f7f7f"}
PREDICTOR_COLOURS = {"baseline": "#444444", "taxonomic": "#9467bd", **CATEGORY_COLOURS}
PREDICTORS = ("baseline", "taxonomic", *CATEGORIES)
SUBSETS = ("all", *CATEGORIES, "code", "natural_language")
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#393b79", "#ad494a", "#637939"]
# (column, label, log axis) of the feature box plots
BOX_FEATURES = (("duplicates", "duplicates", True), ("sequence_perplexity", "sequence perplexity", True),
                ("huffman_length", "Huffman length (bits / char)", False),
                ("mean_frequency", "mean token frequency", True))
MAX_CURVE_POINTS = 400
MAX_TEXT_CHARS = 500

# The marts (and the optional predictions table) this page reads, with the columns it uses.
MARTS: dict[str, tuple[str, ...]] = {
    "memorization_taxonomy": ("model_id", "corpus", "display_name", "family", "score", "memorized", "category",
                              "duplicates", "sequence_perplexity", "huffman_length", "mean_frequency"),
    "taxonomy_shares": ("model_id", "corpus", "n_samples", "n_memorized", "memorization_rate", "n_recitation",
                        "n_reconstruction", "n_recollection", "share_recitation", "share_reconstruction",
                        "share_recollection", "mean_score"),
    "taxonomy_feature_profile": ("model_id", "corpus", "category", "feature", "n", "mean", "min", "p25", "median",
                                 "p75", "max"),
    "feature_correlations": ("model_id", "corpus", "feature", "subset", "n", "pearson", "spearman", "xi"),
    "taxonomic_model_metrics": ("model_id", "corpus", "predictor", "status", "n", "positives", "precision",
                                "recall", "roc_auc", "pr_auc", "ece", "n_train", "lrt_statistic", "lrt_df",
                                "lrt_p_value"),
    "taxonomic_model_weights": ("model_id", "corpus", "predictor", "feature", "coefficient", "abs_rank"),
    "planted_recovery_summary": ("model_id", "corpus", "kind", "planted_count", "n", "memorized_share",
                                 "mean_score", "mean_duplicates"),
    "memorization_examples": ("model_id", "corpus", "category", "rank", "sample_id", "text", "continuation_text",
                              "score", "duplicates", "is_templating", "code_label"),
    "taxonomic_predictions": ("model_id", "corpus", "sample_id", "predictor", "y_true", "p"),
}


@dataclass
class Combo:
    """One model x corpus: the unit of the per-model blocks."""

    model_id: str
    corpus: str
    display_name: str | None = None
    family: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.model_id, self.corpus)

    @property
    def label(self) -> str:
        return f"{self.display_name or self.model_id} · {self.corpus}"


@dataclass
class MemorizationData:
    """What the dashboard shows; a part stays empty when its mart is missing (see ``missing``)."""

    combos: list[Combo] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # part -> why it is not shown
    shares: list[dict] = field(default_factory=list)
    histogram: list[dict] = field(default_factory=list)  # model_id, corpus, bin, category, n
    boxes: list[dict] = field(default_factory=list)  # model_id, corpus, category, feature, n, lo, q1, med, q3, hi, mean
    box_source: str = ""  # which mart the box statistics came from
    correlations: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    weights: list[dict] = field(default_factory=list)
    planted: list[dict] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)
    predictions: dict[tuple[str, str], dict[str, dict]] = field(default_factory=dict)  # combo -> predictor -> curves
    has_predictions: bool = False
    max_examples: int = 5

    def rows_for(self, rows: list[dict], combo: Combo) -> list[dict]:
        return [r for r in rows if (r.get("model_id"), r.get("corpus")) == combo.key]


# ---------------------------------------------------------------- curves (pure numpy)
def pr_curve(y_true, p) -> tuple[np.ndarray, np.ndarray, float]:
    """Precision-recall points, one per distinct threshold (highest first), and the average precision.

    ``recall`` starts at 0 with precision 1 (the usual plotting anchor);
    average precision = sum over thresholds of (recall step) x precision, as in
    scikit-learn. No positives gives empty curves and NaN.
    """
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(p, dtype=float)
    ok = np.isfinite(y) & np.isfinite(s)
    y, s = y[ok] > 0.5, s[ok]
    n_pos = int(y.sum())
    if n_pos == 0:
        return np.zeros(0), np.zeros(0), float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last index of each distinct score
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return np.r_[0.0, recall], np.r_[1.0, precision], ap


def calibration_bins(y_true, p, n_bins: int = 10) -> list[dict]:
    """Equal-width probability bins: mean predicted probability, observed share of positives, count.

    Empty bins are left out; p = 1 falls in the last bin.
    """
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(p, dtype=float)
    ok = np.isfinite(y) & np.isfinite(s)
    y, s = y[ok] > 0.5, np.clip(s[ok], 0.0, 1.0)
    b = np.minimum((s * n_bins).astype(int), n_bins - 1)
    out = []
    for i in range(n_bins):
        m = b == i
        if m.any():
            out.append({"bin": i, "mean_p": float(s[m].mean()), "observed": float(y[m].mean()), "n": int(m.sum())})
    return out


def _thin(x: np.ndarray, y: np.ndarray, n: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= n:
        return x, y
    idx = np.unique(np.r_[np.linspace(0, len(x) - 1, n).astype(int), len(x) - 1])
    return x[idx], y[idx]


# ---------------------------------------------------------------- reading
def _plain(v):
    return float(v) if isinstance(v, Decimal) else v


class _Reader:
    def __init__(self, con):
        self.con = con
        self.present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = current_schema()").fetchall()}

    def rows(self, sql: str, params=()) -> list[dict]:
        cur = self.con.execute(sql, list(params))
        cols = [d[0] for d in cur.description]
        return [{c: _plain(v) for c, v in zip(cols, r, strict=True)} for r in cur.fetchall()]

    def count(self, table: str) -> int:
        return int(self.con.execute(f"select count(*) from {table}").fetchone()[0])


def _load(r: _Reader, data: MemorizationData, part: str, table: str, fn: Callable[[], None]) -> bool:
    """Run ``fn`` when ``table`` is there and has rows; otherwise record why ``part`` is not shown."""
    import duckdb

    if table not in r.present:
        data.missing[part] = f"not built: {table} is not in the warehouse yet (run dbt build)"
        return False
    try:
        if r.count(table) == 0:
            data.missing[part] = f"no data: {table} has no rows"
            return False
        fn()
    except duckdb.Error as e:  # e.g. a mart whose columns changed: say so on the page, keep the rest
        data.missing[part] = f"could not be read: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        return False
    return True


def _size_key(model_id: str) -> tuple:
    """Sort models by the size in their name (70m < 160m < 1b < 12b), then by name."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*([kmbt])(?![a-z])", model_id.lower())
    scale = {"k": 1e-3, "m": 1.0, "b": 1e3, "t": 1e6}
    return (float(m.group(1)) * scale[m.group(2)] if m else float("inf"), model_id)


def load_memorization_data(con, *, max_examples: int = 5) -> MemorizationData:
    """Read every memorization mart the dashboard shows from an open DuckDB warehouse connection."""
    r = _Reader(con)
    d = MemorizationData(max_examples=max_examples)
    combos: dict[tuple[str, str], Combo] = {}

    def note_combos(rows):
        for row in rows:
            key = (row["model_id"], row["corpus"])
            if key[0] is not None and key[1] is not None and key not in combos:
                combos[key] = Combo(*key)

    def taxonomy():
        names = r.rows("select model_id, corpus, any_value(display_name) as display_name, "
                       "any_value(family) as family from memorization_taxonomy group by all")
        for row in names:
            combos[(row["model_id"], row["corpus"])] = Combo(row["model_id"], row["corpus"], row["display_name"],
                                                             row["family"])
        d.histogram = r.rows(
            f"select model_id, corpus, least(greatest(cast(floor(score * {GEN_LEN} + 1e-9) as integer), 0), "
            f"{GEN_LEN}) as bin, coalesce(category, case when memorized then 'memorized' else 'not_memorized' end) "
            "as category, count(*) as n from memorization_taxonomy where score is not null group by all "
            "order by all")
        cols = ", ".join(f"cast({c} as double) as {c}" for c, _, _ in BOX_FEATURES)
        on = ", ".join(c for c, _, _ in BOX_FEATURES)
        d.boxes = r.rows(
            "select model_id, corpus, category, feature, count(*) as n, "
            "quantile_cont(value, 0.05) as lo, quantile_cont(value, 0.25) as q1, median(value) as med, "
            "quantile_cont(value, 0.75) as q3, quantile_cont(value, 0.95) as hi, avg(value) as mean from "
            f"(unpivot (select model_id, corpus, coalesce(category, 'not_memorized') as category, {cols} "
            f"from memorization_taxonomy) on {on} into name feature value value) where isfinite(value) "
            "group by all order by all")
        d.box_source = "memorization_taxonomy"

    def profile():
        feats = [c for c, _, _ in BOX_FEATURES]
        d.boxes = r.rows("select model_id, corpus, category, feature, n, min as lo, p25 as q1, median as med, "
                         "p75 as q3, max as hi, mean from taxonomy_feature_profile where feature in "
                         f"({', '.join('?' for _ in feats)}) order by all", feats)
        d.box_source = "taxonomy_feature_profile"

    def shares():
        d.shares = r.rows("select * from taxonomy_shares order by corpus, model_id")
        note_combos(d.shares)

    def correlations():
        d.correlations = r.rows("select model_id, corpus, feature, subset, n, pearson, spearman, xi "
                                "from feature_correlations order by all")
        note_combos(d.correlations)

    def metrics():
        d.metrics = r.rows("select * from taxonomic_model_metrics order by corpus, model_id, predictor")
        note_combos(d.metrics)

    def weights():
        d.weights = r.rows("select model_id, corpus, predictor, feature, coefficient, abs_rank "
                           "from taxonomic_model_weights order by all")
        note_combos(d.weights)

    def planted():
        d.planted = r.rows("select * from planted_recovery_summary order by corpus, model_id, kind, planted_count")
        note_combos(d.planted)

    def examples():
        d.examples = r.rows("select model_id, corpus, category, rank, sample_id, text, continuation_text, score, "
                            "duplicates, is_templating, code_label from memorization_examples where rank <= ? "
                            "order by model_id, corpus, category, rank", [max_examples])
        note_combos(d.examples)

    def predictions():
        d.has_predictions = True
        keys = r.rows("select distinct model_id, corpus from taxonomic_predictions order by all")
        note_combos(keys)
        for k in keys:
            arrs = con.execute("select predictor, cast(y_true as double) as y, cast(p as double) as p "
                               "from taxonomic_predictions where model_id = ? and corpus = ? and p is not null "
                               "order by predictor", [k["model_id"], k["corpus"]]).fetchnumpy()
            per = {}
            for pred in dict.fromkeys(arrs["predictor"].tolist()):
                m = arrs["predictor"] == pred
                y, p = arrs["y"][m].astype(float), arrs["p"][m].astype(float)
                rec, prec, ap = pr_curve(y, p)
                rec, prec = _thin(rec, prec)
                per[pred] = {"recall": rec, "precision": prec, "ap": ap, "n": int(m.sum()),
                             "prevalence": float(np.nanmean(y)) if len(y) else float("nan"),
                             "calibration": calibration_bins(y, p)}
            d.predictions[(k["model_id"], k["corpus"])] = per

    if not _load(r, d, "taxonomy", "memorization_taxonomy", taxonomy):
        # the box plots can still come from the per-category profile mart
        if _load(r, d, "boxes", "taxonomy_feature_profile", profile):
            note_combos(d.boxes)
        else:
            d.missing["boxes"] = f"{d.missing['taxonomy']}; {d.missing['boxes']}"
    _load(r, d, "shares", "taxonomy_shares", shares)
    _load(r, d, "correlations", "feature_correlations", correlations)
    _load(r, d, "metrics", "taxonomic_model_metrics", metrics)
    _load(r, d, "weights", "taxonomic_model_weights", weights)
    _load(r, d, "planted", "planted_recovery_summary", planted)
    _load(r, d, "examples", "memorization_examples", examples)
    _load(r, d, "predictions", "taxonomic_predictions", predictions)
    d.combos = sorted(combos.values(), key=lambda c: (c.corpus, _size_key(c.model_id)))
    # the overview charts and tables list models in the selector's order (by corpus, then size)
    pos = {c.key: i for i, c in enumerate(d.combos)}
    for rows in (d.shares, d.metrics, d.planted):
        rows.sort(key=lambda row: pos.get((row["model_id"], row["corpus"]), len(pos)))
    pred_order = {p: i for i, p in enumerate(PREDICTORS)}
    d.metrics.sort(key=lambda row: (pos.get((row["model_id"], row["corpus"]), len(pos)),
                                    pred_order.get(row["predictor"], len(pred_order)), str(row["predictor"])))
    return d


# ---------------------------------------------------------------- figures
def _go():
    import plotly.graph_objects as go

    return go


def _colour(name: str, i: int = 0) -> str:
    return PREDICTOR_COLOURS.get(name, PALETTE[i % len(PALETTE)])


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def shares_figure(shares: list[dict], labels: dict[tuple[str, str], str]):
    """Stacked bars per model x corpus: share of memorized samples per category, memorization rate on top."""
    go = _go()
    x = [labels.get((r["model_id"], r["corpus"]), f"{r['model_id']} · {r['corpus']}") for r in shares]
    fig = go.Figure()
    for cat in CATEGORIES:
        y = [_num(r.get(f"share_{cat}")) for r in shares]
        n = [r.get(f"n_{cat}") for r in shares]
        fig.add_trace(go.Bar(x=x, y=y, name=cat, marker_color=CATEGORY_COLOURS[cat], customdata=n,
                             text=[f"{v:.0%}" if v == v and v >= 0.04 else "" for v in y], textposition="inside",
                             hovertemplate=f"%{{x}}<br>{cat}: %{{y:.1%}} of memorized (%{{customdata:,}} samples)"
                                           "<extra></extra>"))
    for xi, r in zip(x, shares, strict=True):
        rate = r.get("memorization_rate")
        # rates are often well under 1%: keep two significant digits there
        pct = f"{rate:.1%}" if rate is None or rate >= 0.1 or rate == 0 else f"{rate:.2%}"
        txt = (f"{pct} memorized<br>{int(r.get('n_memorized') or 0):,} of {int(r.get('n_samples') or 0):,}"
               if rate is not None else "no samples")
        fig.add_annotation(x=xi, y=1.0, yshift=4, text=txt, showarrow=False, yanchor="bottom", font_size=11)
    fig.update_layout(barmode="stack", height=440, margin=dict(t=60, b=40, l=60, r=20),
                      title="Memorized samples by category", yaxis=dict(title="share of memorized samples",
                                                                       tickformat=".0%", range=[0, 1.18]),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom",
                                  traceorder="normal"))
    return fig


def metrics_figure(metrics: list[dict], labels: dict[tuple[str, str], str]):
    """ROC-AUC and PR-AUC of the baseline and the taxonomic model per model x corpus."""
    go = _go()
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("ROC-AUC", "PR-AUC (average precision)"))
    for pred in ("baseline", "taxonomic"):
        rows = [r for r in metrics if r.get("predictor") == pred]
        x = [labels.get((r["model_id"], r["corpus"]), r["model_id"]) for r in rows]
        for col, metric in ((1, "roc_auc"), (2, "pr_auc")):
            fig.add_trace(go.Bar(x=x, y=[_num(r.get(metric)) for r in rows], name=pred, legendgroup=pred,
                                 showlegend=col == 1, marker_color=_colour(pred),
                                 hovertemplate=f"%{{x}}<br>{pred} {metric}: %{{y:.3f}}<extra></extra>"),
                          row=1, col=col)
    fig.update_layout(barmode="group", height=400, margin=dict(t=80, b=40, l=50, r=20),
                      legend=dict(orientation="h", y=1.1, x=0, xanchor="left", yanchor="bottom"))
    fig.update_yaxes(range=[0, 1.0])
    return fig


def planted_figure(planted: list[dict], labels: dict[tuple[str, str], str]):
    """Memorized share against how often a sequence was planted (log x), one line per model x corpus x kind."""
    go = _go()
    fig = go.Figure()
    groups: dict[tuple, list[dict]] = {}
    for r in planted:
        if r.get("planted_count") is not None and r["planted_count"] > 0 and r.get("memorized_share") is not None:
            groups.setdefault((r["model_id"], r["corpus"], r.get("kind")), []).append(r)
    models = list(dict.fromkeys(k[:2] for k in groups))
    kinds = list(dict.fromkeys(k[2] for k in groups))
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    for (m, c, kind), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["planted_count"])
        fig.add_trace(go.Scatter(
            x=[r["planted_count"] for r in rows], y=[r["memorized_share"] for r in rows], mode="lines+markers",
            name=f"{labels.get((m, c), m)} · {kind}", line=dict(color=PALETTE[models.index((m, c)) % len(PALETTE)],
                                                                dash=dashes[kinds.index(kind) % len(dashes)]),
            customdata=[[r.get("n"), _num(r.get("mean_score")), _num(r.get("mean_duplicates"))] for r in rows],
            hovertemplate="planted %{x:,}×: %{y:.1%} memorized<br>n = %{customdata[0]}, mean score "
                          "%{customdata[1]:.3f}, mean duplicates %{customdata[2]:.1f}<extra>%{fullData.name}</extra>"))
    fig.update_layout(height=420, margin=dict(t=30, b=50, l=60, r=20),
                      xaxis=dict(type="log", title="times planted in the corpus"),
                      yaxis=dict(title="share memorized", tickformat=".0%", range=[-0.03, 1.03]))
    return fig


def histogram_figure(hist: list[dict]):
    """Stacked bars of samples per score (k/32); the bar at 1 is split by category."""
    go = _go()
    fig = go.Figure()
    cats = [c for c in ("not_memorized", *CATEGORIES, "memorized") if any(h["category"] == c for h in hist)]
    cats += sorted({h["category"] for h in hist} - set(cats))
    for i, cat in enumerate(cats):
        rows = [h for h in hist if h["category"] == cat]
        fig.add_trace(go.Bar(x=[h["bin"] / GEN_LEN for h in rows], y=[h["n"] for h in rows], name=cat,
                             marker_color=_colour(cat, i), width=0.8 / GEN_LEN,
                             hovertemplate=f"score %{{x:.3f}}: %{{y:,}} samples ({cat})<extra></extra>"))
    fig.update_layout(barmode="stack", height=360, margin=dict(t=40, b=50, l=60, r=20),
                      xaxis=dict(title=f"memorization score (share of the {GEN_LEN} continuation tokens "
                                       "reproduced)", range=[-0.03, 1.03]),
                      yaxis=dict(title="samples"),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom",
                                  traceorder="normal"),
                      updatemenus=[dict(type="buttons", direction="right", x=0, y=1.02, xanchor="left",
                                        yanchor="bottom", showactive=True, pad=dict(r=4, t=0, b=0, l=0),
                                        buttons=[dict(label="linear", method="relayout",
                                                      args=[{"yaxis.type": "linear"}]),
                                                 dict(label="log", method="relayout",
                                                      args=[{"yaxis.type": "log"}])])])
    return fig


def feature_box_figure(boxes: list[dict]):
    """2 x 2 box plots (from precomputed quantiles) of key features per category."""
    go = _go()
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=[label for _, label, _ in BOX_FEATURES],
                        horizontal_spacing=0.08, vertical_spacing=0.14)
    order = ["not_memorized", *CATEGORIES]
    for k, (feat, label, log) in enumerate(BOX_FEATURES):
        row, col = k // 2 + 1, k % 2 + 1
        rows = sorted((b for b in boxes if b["feature"] == feat),
                      key=lambda b: order.index(b["category"]) if b["category"] in order else 99)
        for i, b in enumerate(rows):
            fig.add_trace(go.Box(
                x=[b["category"].replace("_", " ")], q1=[b["q1"]], median=[b["med"]], q3=[b["q3"]],
                lowerfence=[b["lo"]], upperfence=[b["hi"]], mean=[b["mean"]], name=b["category"],
                marker_color=_colour(b["category"], i),
                showlegend=False, hoverinfo="y+name", boxpoints=False), row=row, col=col)
        positive = all(b["lo"] is not None and b["lo"] > 0 for b in rows)
        fig.update_yaxes(type="log" if log and positive and rows else "linear", row=row, col=col,
                         title_text=label if col == 1 else None, title_font_size=11)
    # one box per category slot: "overlay" keeps each box centred and full width
    fig.update_layout(height=620, margin=dict(t=40, b=40, l=70, r=20), boxmode="overlay")
    return fig


def correlation_figure(rows: list[dict]):
    """Features x subsets heatmap: Spearman by default, buttons for Chatterjee's xi and Pearson."""
    go = _go()
    from fingerprinting.memorization.taxonomy import MODEL_FEATURES

    present = {r["feature"] for r in rows}
    feats = [f for f in MODEL_FEATURES if f in present] + sorted(present - set(MODEL_FEATURES))
    subsets = [s for s in SUBSETS if any(r["subset"] == s for r in rows)]
    subsets += sorted({r["subset"] for r in rows} - set(subsets))
    cell = {(r["feature"], r["subset"]): r for r in rows}

    def z(stat):
        return [[_num(cell.get((f, s), {}).get(stat)) for s in subsets] for f in feats]

    n = [[cell.get((f, s), {}).get("n") or 0 for s in subsets] for f in feats]
    fig = go.Figure(go.Heatmap(
        z=z("spearman"), x=[s.replace("_", " ") for s in subsets], y=feats, zmin=-1, zmax=1, zmid=0,
        colorscale="RdBu", reversescale=True, customdata=n, texttemplate="%{z:.2f}", textfont_size=10,
        hovertemplate="%{y} in %{x}: %{z:.3f} (n = %{customdata:,})<extra></extra>",
        colorbar=dict(title="corr.", thickness=12)))
    fig.update_layout(
        height=max(320, 34 * len(feats) + 120), margin=dict(t=50, b=40, l=170, r=20),
        yaxis=dict(autorange="reversed"), xaxis=dict(side="top"),
        updatemenus=[dict(type="buttons", direction="right", x=0, y=1.0, xanchor="left", yanchor="bottom",
                          pad=dict(b=28), showactive=True,
                          buttons=[dict(label=label, method="restyle", args=[{"z": [z(stat)]}])
                                   for label, stat in (("Spearman", "spearman"), ("xi (Chatterjee)", "xi"),
                                                       ("Pearson", "pearson"))])])
    return fig


def prediction_figure(curves: dict[str, dict]):
    """PR curves (left) and calibration (right) per predictor from per-sample predictions."""
    go = _go()
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("precision-recall", "calibration (10 equal-width bins)"),
                        horizontal_spacing=0.1)
    order = [p for p in PREDICTORS if p in curves] + sorted(set(curves) - set(PREDICTORS))
    for i, pred in enumerate(order):
        c = curves[pred]
        colour = _colour(pred, i)
        name = f"{pred} (AP {c['ap']:.3f})" if c["ap"] == c["ap"] else f"{pred} (no positives)"
        fig.add_trace(go.Scatter(x=c["recall"], y=c["precision"], mode="lines", name=name, legendgroup=pred,
                                 line=dict(color=colour, width=3 if pred == "taxonomic" else 2),
                                 hovertemplate="recall %{x:.3f}, precision %{y:.3f}<extra>" + pred + "</extra>"),
                      row=1, col=1)
        cal = c["calibration"]
        fig.add_trace(go.Scatter(x=[b["mean_p"] for b in cal], y=[b["observed"] for b in cal], mode="lines+markers",
                                 name=pred, legendgroup=pred, showlegend=False, line=dict(color=colour),
                                 customdata=[b["n"] for b in cal],
                                 hovertemplate="predicted %{x:.3f}, observed %{y:.3f} (n = %{customdata:,})"
                                               "<extra>" + pred + "</extra>"), row=1, col=2)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#bbb", dash="dash"),
                             showlegend=False, hoverinfo="skip"), row=1, col=2)
    fig.update_xaxes(title_text="recall", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="precision", range=[0, 1.05], row=1, col=1)
    fig.update_xaxes(title_text="mean predicted probability", range=[0, 1.02], row=1, col=2)
    fig.update_yaxes(title_text="observed share memorized", range=[0, 1.05], row=1, col=2)
    fig.update_layout(height=420, margin=dict(t=40, b=50, l=60, r=20),
                      legend=dict(orientation="h", y=-0.22, x=0))
    return fig


def weights_figure(rows: list[dict]):
    """Grouped bars: the standardised logistic weight of each feature per predictor."""
    go = _go()
    preds = [p for p in PREDICTORS if any(r["predictor"] == p for r in rows)]
    preds += sorted({r["predictor"] for r in rows} - set(preds))
    # features ordered by their largest absolute weight over the predictors
    size: dict[str, float] = {}
    for r in rows:
        size[r["feature"]] = max(size.get(r["feature"], 0.0), abs(_num(r["coefficient"])) if r["coefficient"]
                                 is not None else 0.0)
    feats = sorted(size, key=lambda f: (-size[f], f))
    cell = {(r["predictor"], r["feature"]): r["coefficient"] for r in rows}
    fig = go.Figure()
    for i, pred in enumerate(preds):
        fig.add_trace(go.Bar(x=feats, y=[_num(cell.get((pred, f))) for f in feats], name=pred,
                             marker_color=_colour(pred, i),
                             hovertemplate="%{x}: %{y:.3f}<extra>" + pred + "</extra>"))
    fig.update_layout(barmode="group", height=400, margin=dict(t=30, b=110, l=60, r=20),
                      yaxis=dict(title="standardised coefficient", zeroline=True, zerolinecolor="#888"),
                      xaxis=dict(tickangle=-35), legend=dict(orientation="h", y=1.02, x=1, xanchor="right",
                                                             yanchor="bottom"))
    return fig


# ---------------------------------------------------------------- page
EXTRA_CSS = """div.picker{position:sticky;top:34px;z-index:9;background:#fff;padding:6px 0;border-bottom:1px solid #dde}
div.picker select{font-size:14px;padding:3px;margin-left:6px}div.combo{border-left:4px solid #1f3b57;padding-left:14px;
margin:10px 0 28px}div.combo h3{font-size:16px;margin:18px 0 4px}div.combo h2{margin-top:6px}
table[id^=t-examples] td:nth-child(7),table[id^=t-examples] td:nth-child(8){white-space:pre-wrap;
font-family:ui-monospace,monospace;font-size:12px}"""

# Show the chosen model x corpus block (or all of them); plots drawn hidden are resized when shown.
PICKER_JS = """(function(){var sel=document.getElementById('combo-select');if(!sel)return;
function show(first){var v=sel.value;document.querySelectorAll('div.combo').forEach(function(d){
var on=v==='all'||d.dataset.combo===v;d.style.display=on?'':'none';
if(on&&!first){d.querySelectorAll('.js-plotly-plot').forEach(function(p){Plotly.Plots.resize(p);});}});}
sel.addEventListener('change',function(){show(false);});show(true);})();"""


def _missing_p(text: str) -> str:
    return f'<p class="missing">{html.escape(text)}</p>'


def _sub(title: str, body: str, legend: str = "") -> str:
    return f"<h3>{html.escape(title)}</h3>{body}{page.legend_html(legend)}"


def _short(v, n: int = MAX_TEXT_CHARS) -> str:
    s = page.fmt(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def _drawn(build: Callable[[], str], title: str) -> str:
    """The HTML ``build`` makes, or a line saying why it could not (odd values must not cost the page)."""
    try:
        return build()
    except Exception as e:  # noqa: BLE001 - reported on the page
        return _missing_p(f"{title}: could not be drawn: {type(e).__name__}: {e}"[:400])


def _combo_block(d: MemorizationData, k: int, c: Combo) -> str:
    e = html.escape
    parts = [f'<div class="combo" data-combo="{k}" id="combo-{k}"><h2>{e(c.label)}</h2>']
    fam = f"family {e(c.family)}, " if c.family else ""
    parts.append(f'<p class="legend">{fam}model {e(c.model_id)}, corpus {e(c.corpus)}</p>')

    def hist():
        rows = d.rows_for(d.histogram, c)
        if "taxonomy" in d.missing:
            return _sub("Score histogram", _missing_p(f"Score histogram: {d.missing['taxonomy']}."))
        if not rows:
            return _sub("Score histogram", _missing_p("Score histogram: no data for this model and corpus."))
        n = sum(r["n"] for r in rows)
        mem = sum(r["n"] for r in rows if r["bin"] == GEN_LEN)
        return _sub("Score histogram", page.figure_div(histogram_figure(rows), f"hist-{k}"), (
            f"Samples per memorization score ({n:,} samples, {mem:,} with score 1 = memorized, split by category); "
            "buttons switch the count axis to log."))

    def boxes():
        rows = d.rows_for(d.boxes, c)
        if "boxes" in d.missing:
            return _sub("Features by category", _missing_p(f"Feature distributions: {d.missing['boxes']}."))
        if not rows:
            return _sub("Features by category", _missing_p("Feature distributions: no data for this model and "
                                                           "corpus."))
        whiskers = ("5th-95th percentile" if d.box_source == "memorization_taxonomy" else "min-max")
        return _sub("Features by category", page.figure_div(feature_box_figure(rows), f"boxes-{k}"), (
            f"Distribution of key features per category (box = quartiles, line = median, whiskers = {whiskers}; "
            "duplicates, perplexity and frequency on log axes when all positive)."))

    def corr():
        rows = d.rows_for(d.correlations, c)
        if "correlations" in d.missing:
            return _sub("Feature correlations", _missing_p(f"Correlations: {d.missing['correlations']}."))
        if not rows:
            return _sub("Feature correlations", _missing_p("Correlations: no data for this model and corpus."))
        return _sub("Feature correlations", page.figure_div(correlation_figure(rows), f"corr-{k}"), (
            "Correlation of each feature with the memorization score, on all samples, per category and for code / "
            "natural language; red = higher feature goes with more memorization; buttons switch to Chatterjee's "
            "xi (0 = independent, 1 = a function of the feature) and Pearson."))

    def prediction():
        title = "Predictive model: precision-recall and calibration"
        curves = d.predictions.get(c.key)
        if curves:
            return _sub(title, page.figure_div(prediction_figure(curves), f"pred-{k}"), (
                "Held-out predictions of memorization: precision-recall curves (AP = average precision) and the "
                "observed share memorized per predicted-probability bin (dashed diagonal = perfectly calibrated); "
                "taxonomic = one model per category, baseline = one model on all samples."))
        why = ("per-sample predictions (table taxonomic_predictions) are not in the warehouse, so only the "
               "summary metrics are shown" if not d.has_predictions else "no per-sample predictions for this model "
               "and corpus")
        return _sub(title, _missing_p(f"PR and calibration curves: {why}."))

    def metrics():
        rows = d.rows_for(d.metrics, c)
        if not rows:
            return ""
        cols = [("predictor", "Predictor"), ("status", "Status"), ("n", "Test n"), ("positives", "Positives"),
                ("precision", "Precision"), ("recall", "Recall"), ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"),
                ("ece", "ECE"), ("n_train", "Train n")]
        order = {p: i for i, p in enumerate(PREDICTORS)}
        rows = sorted(rows, key=lambda r: order.get(r.get("predictor"), 99))
        lrt = next((r for r in rows if r.get("lrt_p_value") is not None), None)
        note = (f'<p class="legend">likelihood-ratio test, taxonomic vs baseline: χ² = {lrt["lrt_statistic"]:.2f}, '
                f'df = {lrt.get("lrt_df")}, p = {lrt["lrt_p_value"]:.3g}</p>' if lrt else "")
        return (page.table_html(rows, cols, f"t-metrics-{k}", placeholder="filter predictors...", digits=3) + note)

    def weights():
        rows = [r for r in d.rows_for(d.weights, c) if r.get("feature") is not None]
        if "weights" in d.missing:
            return _sub("Model weights", _missing_p(f"Weights: {d.missing['weights']}."))
        if not rows:
            return _sub("Model weights", _missing_p("Weights: no data for this model and corpus."))
        return _sub("Model weights", page.figure_div(weights_figure(rows), f"weights-{k}"), (
            "Standardised logistic-regression coefficients per predictor (features ordered by their largest "
            "absolute weight): a positive weight raises the predicted chance of memorization."))

    def examples():
        title = "Example samples"
        if "examples" in d.missing:
            return _sub(title, _missing_p(f"Examples: {d.missing['examples']}."))
        rows = d.rows_for(d.examples, c)
        if not rows:
            return _sub(title, _missing_p("Examples: none for this model and corpus."))
        order = {cat: i for i, cat in enumerate((*CATEGORIES, "not_memorized"))}
        rows = sorted(rows, key=lambda r: (order.get(r["category"], 99), r["rank"] or 0))
        shown = [{**r, "text": _short(r.get("text")), "continuation_text": _short(r.get("continuation_text")),
                  "is_templating": {True: "yes", False: "no"}.get(r.get("is_templating"), "")} for r in rows]
        cols = [("category", "Category"), ("rank", "#"), ("score", "Score"), ("duplicates", "Duplicates"),
                ("is_templating", "Templating"), ("code_label", "Code?"), ("text", "Text (prompt)"),
                ("continuation_text", "True continuation"), ("sample_id", "Sample")]
        return _sub(title, page.table_html(shown, cols, f"t-examples-{k}", placeholder="filter examples...",
                                           digits=3),
                    f"Up to {d.max_examples} example samples per category, ranked by the examples mart; texts "
                    f"shortened to {MAX_TEXT_CHARS} characters.")

    for build, title in ((hist, "Score histogram"), (boxes, "Feature distributions"), (corr, "Correlations"),
                         (prediction, "Predictive model"), (metrics, "Metrics"), (weights, "Weights"),
                         (examples, "Examples")):
        parts.append(_drawn(build, title))
    parts.append("</div>")
    return "".join(parts)


def _overview_sections(d: MemorizationData, labels: dict) -> list[page.Section]:
    out = []
    title = "Taxonomy shares"
    if "shares" in d.missing:
        out.append(page.missing_section("shares", title, f"{title}: {d.missing['shares']}."))
    else:
        fig = _drawn(lambda: page.figure_div(shares_figure(d.shares, labels), "shares"), title)
        cols = [("model_id", "Model"), ("corpus", "Corpus"), ("n_samples", "Samples"), ("n_memorized", "Memorized"),
                ("memorization_rate", "Rate"), ("n_recitation", "Recitation"),
                ("n_reconstruction", "Reconstruction"), ("n_recollection", "Recollection"),
                ("share_recitation", "Share recit."), ("share_reconstruction", "Share recon."),
                ("share_recollection", "Share recoll."), ("mean_score", "Mean score")]
        table = page.table_html(d.shares, cols, "t-shares", placeholder="filter rows (model, corpus)...")
        out.append(page.Section("shares", fig + table, (
            "Memorized samples (score 1) split into recitation (many duplicates in the corpus), reconstruction "
            "(templated text) and recollection (the rest); the label above each bar is the memorization rate over "
            "all samples."), title))
    title = "Predictive model"
    if "metrics" in d.missing:
        out.append(page.missing_section("metrics", title, f"{title}: {d.missing['metrics']}."))
    else:
        fig = _drawn(lambda: page.figure_div(metrics_figure(d.metrics, labels), "metrics"), title)
        cols = [("model_id", "Model"), ("corpus", "Corpus"), ("predictor", "Predictor"), ("status", "Status"),
                ("n", "Test n"), ("positives", "Positives"), ("precision", "Precision"), ("recall", "Recall"),
                ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("ece", "ECE"), ("lrt_statistic", "LRT χ²"),
                ("lrt_df", "LRT df"), ("lrt_p_value", "LRT p")]
        table = page.table_html(d.metrics, cols, "t-metrics", placeholder="filter rows (model, predictor)...",
                                digits=3)
        out.append(page.Section("metrics", fig + table, (
            "Held-out quality of predicting memorization from the features: one logistic model on all samples "
            "(baseline) against one per taxonomy category (taxonomic); ECE = expected calibration error; the "
            "likelihood-ratio test asks whether the taxonomic model fits better."), title))
    title = "Planted ground truth"
    if "planted" in d.missing:
        text = ("no planted corpus in this warehouse" if d.missing["planted"].startswith("no data")
                else d.missing["planted"])
        out.append(page.missing_section("planted", title, f"{title}: {text}."))
    else:
        fig = _drawn(lambda: page.figure_div(planted_figure(d.planted, labels), "planted"), title)
        cols = [("model_id", "Model"), ("corpus", "Corpus"), ("kind", "Kind"), ("planted_count", "Planted ×"),
                ("n", "Samples"), ("memorized_share", "Memorized share"), ("mean_score", "Mean score"),
                ("mean_duplicates", "Mean duplicates")]
        table = page.table_html(d.planted, cols, "t-planted", placeholder="filter rows (model, kind)...", digits=3)
        out.append(page.Section("planted", fig + table, (
            "Sequences planted a known number of times in a synthetic corpus: share of their samples the model "
            "reproduces exactly, against the planted count (log axis); controls planted 0 times are in the table."),
            title))
    return out


def memorization_dashboard_html(data: MemorizationData) -> str:
    """The memorization dashboard as one self-contained page (plotly inlined once, no network)."""
    e = html.escape
    labels = {c.key: c.label for c in data.combos}
    sections = _overview_sections(data, labels)
    title = "Per model and corpus"
    if data.combos:
        options = "".join(f'<option value="{k}"{" selected" if k == 0 else ""}>{e(c.label)}</option>'
                          for k, c in enumerate(data.combos))
        picker = (f'<div class="picker"><label>model × corpus<select id="combo-select">{options}'
                  f'<option value="all">all, one after another</option></select></label></div>')
        blocks = "".join(_combo_block(data, k, c) for k, c in enumerate(data.combos))
        sections.append(page.Section("per-model", f"<style>{EXTRA_CSS}</style>{picker}{blocks}"
                                                  f"<script>{PICKER_JS}</script>", "", title))
    else:
        sections.append(page.missing_section("per-model", title, f"{title}: no model has memorization data yet "
                                                                 "(run the memorization flow, then dbt build)."))
    facts = [f"{len(data.combos):,} model × corpus combinations"]
    if data.shares:
        n = sum(int(r.get("n_samples") or 0) for r in data.shares)
        mem = sum(int(r.get("n_memorized") or 0) for r in data.shares)
        facts.append(f"{n:,} scored samples, {mem:,} memorized")
    not_built = sorted({m.split(": ", 1)[1].split(" is not")[0] for m in data.missing.values()
                        if m.startswith("not built")} - {"taxonomic_predictions"})
    note = f"<div>not built yet: {e(', '.join(not_built))}</div>" if not_built else ""
    header = (f"<h1>Fingerprint Lake: memorization dashboard</h1><div>{e(', '.join(facts))}; "
              "taxonomy: recitation / reconstruction / recollection</div>" + note)
    nav = [(s.id, label) for s, label in zip(sections, ["shares", "predictive model", "planted", "per model"],
                                             strict=False)]
    return page.page_html("Fingerprint Lake: memorization", header, sections, nav)


def render_memorization_dashboard(con, out_dir: str | Path, *, max_examples: int = 5) -> dict[str, str]:
    """Read the memorization marts from an open warehouse connection and write ``memorization_dashboard.html``.

    Returns name -> path; ``"dashboard"`` is the self-contained offline page. Marts
    that are missing or empty are named on the page instead of failing the render;
    the optional ``taxonomic_predictions`` table adds PR and calibration curves.
    """
    data = load_memorization_data(con, max_examples=max_examples)
    path = page.write_text(Path(out_dir) / "memorization_dashboard.html", memorization_dashboard_html(data))
    return {"dashboard": path}

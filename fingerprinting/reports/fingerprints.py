"""The fingerprint dashboard and reports of one experiment (method x metric x config).

Inputs are plain rows read from the warehouse (see :func:`load_experiment`);
outputs: console summary, consolidated text report, JSON report, plotly HTML
figures (sharing one local plotly.min.js) and a self-contained dashboard built
on :mod:`fingerprinting.reports.page`.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fingerprinting.reports import page

HEATMAP_FULL_LIMIT = 3000  # above this many models the heatmap shows family blocks
# Experiments stored at scale (fingerprinting.scale: no cross-family pairs) render from the aggregates:
SCALE_PAIR_LINES = 2000  # stored (intrafamily) pairs loaded for the text report, most similar first
SCALE_TABLE_ROWS = 1000  # rows written per dashboard / console table
QUARTILE_MAX_BOXES = 300  # box plots per category (highest medians first)


@dataclass
class ExperimentData:
    method: str
    metric: str
    config_hash: str
    models: list[dict]  # model_id, display_name, family, model_type
    pairs: dict[str, np.ndarray]  # pair_similarities columns (+ "line": formatted pair text)
    intrafamily: list[dict]
    interfamily: list[dict]
    type_pairs: list[dict]
    quartiles: list[dict]
    provenance: list[dict]
    neighbors: list[dict] = field(default_factory=list)
    # set for experiments stored at scale: population_size, n_pairs (all pairs, aggregated),
    # n_stored_pairs, families + family_means (matrix), roc_hist (same-family / cross-family sketches),
    # neighbors_exact
    scale: dict | None = None


def _rows(con, sql, params=()):
    cur = con.execute(sql, list(params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def latest_config_hash(con, method: str) -> str | None:
    r = con.execute("select config_hash from stg_fingerprints where method = ? order by created_at desc limit 1",
                    [method]).fetchone()
    if r:
        return r[0]
    r = con.execute("select config_hash from pair_similarities where method = ? limit 1", [method]).fetchone()
    return r[0] if r else None


def _scale_info(con, key: tuple) -> dict | None:
    """The aggregates of an experiment stored at scale, or None (not at scale, or no such table yet)."""
    import duckdb

    where = "where method = ? and metric = ? and config_hash = ?"
    try:
        head = con.execute("select max(population_size), sum(n_pairs) filter (where grouping = 'family') "
                           f"from stg_similarity_aggregates {where}", list(key)).fetchone()
    except duckdb.CatalogException:
        return None
    if head is None or head[0] is None:
        return None
    fam = con.execute("select group_a, group_b, mean_similarity from stg_similarity_aggregates "
                      f"{where} and grouping = 'family'", list(key)).fetchnumpy()
    names, inv = np.unique(np.concatenate([fam["group_a"], fam["group_b"]]).astype(str), return_inverse=True)
    ia, ib = inv[: len(fam["group_a"])], inv[len(fam["group_a"]):]
    means = np.full((len(names), len(names)), np.nan)
    means[ia, ib] = fam["mean_similarity"]
    means[ib, ia] = fam["mean_similarity"]
    hist = con.execute(
        "select group_a = group_b as intra, b, sum(c) as c, any_value(sketch_lower), any_value(sketch_upper), "
        "any_value(sketch_size) from (select group_a, group_b, sketch_lower, sketch_upper, sketch_size, "
        f"unnest(sketch_bins) as b, unnest(sketch) as c from stg_similarity_aggregates {where} "
        "and grouping = 'family') group by all", list(key)).fetchall()
    roc = None
    if hist:
        lower, upper, size = hist[0][3], hist[0][4], int(hist[0][5])
        roc = {"lower": lower, "upper": upper, "intra": np.zeros(size), "inter": np.zeros(size)}
        for intra, b, c, *_ in hist:
            roc["intra" if intra else "inter"][int(b)] += c
    stored = con.execute(f"select count(*) from pair_similarities {where}", list(key)).fetchone()[0]
    exact = con.execute(f"select bool_and(exact) from stg_similarity_neighbors {where}", list(key)).fetchone()[0]
    return {"population_size": int(head[0]), "n_pairs": int(head[1] or 0), "n_stored_pairs": int(stored),
            "families": names.tolist(), "family_means": means, "roc_hist": roc, "neighbors_exact": exact}


def load_experiment(con, method: str, metric: str, config_hash: str | None = None) -> ExperimentData:
    """Read one experiment's marts from an open DuckDB warehouse connection.

    Experiments stored at scale (aggregates, no cross-family pairs) load the
    aggregates, the most similar stored pairs and rank-1 neighbours only.
    """
    config_hash = config_hash or latest_config_hash(con, method)
    if config_hash is None:
        raise LookupError(f"no results for method {method!r} in the warehouse")
    key = (method, metric, config_hash)
    where = "where method = ? and metric = ? and config_hash = ?"
    scale = _scale_info(con, key)
    limit = f" limit {SCALE_PAIR_LINES}" if scale else ""
    pairs = con.execute(
        "select model_a, model_b, similarity, category, relation, is_related, family_a, family_b, type_a, type_b, "
        "printf('%s (%s/%s) <-> %s (%s/%s): %.4f', display_name_a, family_a, type_a, display_name_b, family_b, "
        "type_b, similarity) as line "
        f"from pair_similarities {where} order by similarity desc, model_a, model_b{limit}", list(key)).fetchnumpy()
    if len(pairs["similarity"]) == 0 and scale is None:
        known = con.execute("select distinct method, metric, config_hash from pair_similarities order by 1, 2").fetchall()
        raise LookupError(f"no pairs for method={method!r} metric={metric!r} config_hash={config_hash!r}; "
                          f"available: {known[:20]}")
    if scale:
        models = _rows(con, "select m.model_id, m.display_name, m.family, m.model_type from stg_models m "
                       "semi join (select model_id from stg_similarity_neighbors where method = ? and metric = ? "
                       "and config_hash = ?) n using (model_id) order by family, model_type, display_name", key)
        neighbors = _rows(con, "select model_id, rank, neighbor_id, neighbor_name, same_family, similarity "
                          f"from nearest_neighbors {where} and rank = 1 order by model_id", key)
    else:
        ids = sorted(set(pairs["model_a"].tolist()) | set(pairs["model_b"].tolist()))
        models = _rows(con, "select model_id, display_name, family, model_type from stg_models "
                       "where list_contains(?, model_id) order by family, model_type, display_name", [ids])
        neighbors = _rows(con, f"select * from nearest_neighbors {where} order by model_id, rank", key)
    return ExperimentData(
        method, metric, config_hash, models, pairs,
        _rows(con, f"select * from intrafamily_stats {where} order by mean_similarity desc", key),
        _rows(con, f"select * from interfamily_stats {where} order by mean_similarity desc", key),
        _rows(con, f"select * from type_pair_stats {where} order by mean_similarity desc", key),
        _rows(con, f"select * from family_similarity_quartiles {where} order by category, grouping", key),
        _rows(con, f"select * from provenance_quality {where} order by derivation_type", key),
        neighbors, scale,
    )


# ---------------------------------------------------------------- text reports
HEADER = f"{{:<21}}{'Min':<11}{'Max':<11}{'Mean':<11}{'Variance':<11}# Pairs"


def _stats_table(title: str, label: str, rows: list[dict], key: str, max_rows: int | None = None) -> list[str]:
    lines = [f"{title} SIMILARITY (sorted by mean similarity):", HEADER.format(label), "-" * 75]
    ordered = sorted(rows, key=lambda r: (-r["mean_similarity"], str(r[key])))
    for r in ordered[:max_rows]:
        lines.append(f"{str(r[key]):<21}{r['min_similarity']:<11.4f}{r['max_similarity']:<11.4f}"
                     f"{r['mean_similarity']:<11.4f}{r['variance']:<11.4f}{r['n_pairs']}")
    if max_rows is not None and len(ordered) > max_rows:
        lines.append(f"... {len(ordered) - max_rows:,} more rows (the JSON report has them all)")
    if not rows:
        lines.append("(none)")
    return lines


def console_summary(data: ExperimentData) -> str:
    """The original tool's console tables: intrafamily, interfamily, type pair (4 decimals)."""
    cap = SCALE_TABLE_ROWS if data.scale else None
    out = [f"method={data.method} metric={data.metric} config={data.config_hash} "
           f"models={len(data.models)} pairs={n_pairs(data)}", ""]
    if data.scale:
        out[0] += " (stored at scale: cross-family pairs aggregated, not stored)"
    out += _stats_table("INTRAFAMILY", "Family", data.intrafamily, "family", cap) + [""]
    out += _stats_table("INTERFAMILY", "Family Pair", data.interfamily, "family_pair", cap) + [""]
    out += _stats_table("TYPE PAIR", "Type Pair", data.type_pairs, "type_pair", cap)
    return "\n".join(out) + "\n"


def n_pairs(data: ExperimentData) -> int:
    """All pairs of the experiment (at scale: counted by the aggregates, most of them not stored)."""
    if data.scale:
        return int(data.scale["n_pairs"])
    return int(len(data.pairs["similarity"]))


def pair_line(p: dict) -> str:
    return (f"{p['display_name_a']} ({p['family_a']}/{p['type_a']}) <-> "
            f"{p['display_name_b']} ({p['family_b']}/{p['type_b']}): {p['similarity']:.4f}")


def text_report(data: ExperimentData) -> str:
    """Every pair, sorted by similarity, grouped by category (intrafamily, interfamily, type pair).

    Pairs arrive sorted by similarity (desc) with their lines formatted in SQL;
    sections are boolean masks over those columns.
    """
    P = data.pairs
    lines = P["line"]
    out = [f"DETAILED PAIRS  method={data.method} metric={data.metric} config={data.config_hash}", ""]
    if data.scale:
        out += [f"Stored at scale: {data.scale['n_pairs']:,} pairs in all, {data.scale['n_stored_pairs']:,} "
                f"intrafamily pairs stored; the {len(lines):,} most similar stored pairs are listed. "
                "Cross-family pairs are aggregated (see the interfamily statistics).", ""]
    for cat in ("intrafamily", "interfamily"):
        sel = lines[P["category"] == cat]
        out.append(f"== {cat.upper()} PAIRS ({len(sel)}) ==")
        out += sel.tolist() + [""]
    typed = (P["category"] == "intrafamily") & (P["type_a"] != P["type_b"])
    ta, tb = P["type_a"][typed], P["type_b"][typed]
    keys = np.where(ta <= tb, ta + "-" + tb, tb + "-" + ta) if typed.any() else np.array([], dtype=object)
    tlines = lines[typed]
    out.append(f"== TYPE PAIRS ({len(tlines)}) ==")
    for key in sorted(set(keys.tolist())):
        sel = tlines[keys == key]
        out.append(f"-- {key} ({len(sel)}) --")
        out += sel.tolist()
    return "\n".join(out) + "\n"


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def json_report(data: ExperimentData) -> dict:
    def clean_rows(rows):
        return [{k: _clean(v) for k, v in r.items()} for r in rows]

    scale = None
    if data.scale:
        scale = {k: data.scale[k] for k in ("population_size", "n_pairs", "n_stored_pairs", "neighbors_exact")}
    return {
        "method": data.method, "metric": data.metric, "config_hash": data.config_hash,
        "n_models": len(data.models), "n_pairs": n_pairs(data), "at_scale": scale,
        "models": data.models,
        "intrafamily": clean_rows(data.intrafamily), "interfamily": clean_rows(data.interfamily),
        "type_pairs": clean_rows(data.type_pairs), "quartiles": clean_rows(data.quartiles),
        "provenance_quality": clean_rows(data.provenance), "nearest_neighbors": clean_rows(data.neighbors),
    }


# ---------------------------------------------------------------- figures
def _ordered(data: ExperimentData):
    models = sorted(data.models, key=lambda m: (m["family"], m["model_type"], m["display_name"], m["model_id"]))
    index = {m["model_id"]: i for i, m in enumerate(models)}
    return models, index


def similarity_matrix(data: ExperimentData) -> tuple[list[dict], np.ndarray]:
    models, _ = _ordered(data)
    n = len(models)
    M = np.full((n, n), np.nan, dtype=np.float32)
    np.fill_diagonal(M, 1.0)
    ids = np.array([m["model_id"] for m in models], dtype=object)
    order = np.argsort(ids)
    sorted_ids = ids[order]
    a = order[np.searchsorted(sorted_ids, data.pairs["model_a"])]
    b = order[np.searchsorted(sorted_ids, data.pairs["model_b"])]
    s = data.pairs["similarity"].astype(np.float32)
    M[a, b] = s
    M[b, a] = s
    return models, M


def heatmap_figure(data: ExperimentData):
    import plotly.graph_objects as go

    blocks = data.scale is not None or len(data.models) > HEATMAP_FULL_LIMIT
    models, M = (_ordered(data)[0], None) if blocks else similarity_matrix(data)
    title = f"{data.method} / {data.metric}: pairwise similarity ({len(models)} models, ordered by family)"
    if blocks:  # family-block means keep the page light at any size
        if data.scale is not None:  # exact means per family pair from the aggregates
            fams, z = data.scale["families"], data.scale["family_means"]
        else:
            fams = sorted({m["family"] for m in models})
            fi = {f: i for i, f in enumerate(fams)}
            fa = np.array([fi[f] for f in data.pairs["family_a"].tolist()])
            fb = np.array([fi[f] for f in data.pairs["family_b"].tolist()])
            sums = np.zeros((len(fams), len(fams)))
            counts = np.zeros((len(fams), len(fams)))
            np.add.at(sums, (fa, fb), data.pairs["similarity"])
            np.add.at(counts, (fa, fb), 1)
            sums, counts = sums + sums.T - np.diag(np.diag(sums)), counts + counts.T - np.diag(np.diag(counts))
            z = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        show = len(fams) <= 80
        fig = go.Figure(go.Heatmap(z=np.asarray(z, dtype=np.float32), x=fams, y=fams, colorscale="Viridis",
                                   colorbar={"title": {"text": "mean<br>similarity", "side": "right"}},
                                   hovertemplate="%{y} x %{x}<br>mean similarity %{z:.4f}<extra></extra>"))
        fig.update_layout(title=title + f" - means of {len(fams)} x {len(fams)} family blocks")
        fig.update_xaxes(showticklabels=show)
        fig.update_yaxes(showticklabels=show, autorange="reversed")
    else:
        labels = [f"{m['display_name']} ({m['family']}/{m['model_type']}) #{m['model_id']}" for m in models]
        fig = go.Figure(go.Heatmap(z=M, x=labels, y=labels, colorscale="Viridis", zsmooth=False,
                                   colorbar={"title": {"text": "similarity", "side": "right"}},
                                   hovertemplate="%{y}<br>%{x}<br>similarity %{z:.4f}<extra></extra>"))
        fig.update_layout(title=title)
        # family boundaries
        bounds = [i for i in range(1, len(models)) if models[i]["family"] != models[i - 1]["family"]]
        for bnd in bounds:
            fig.add_shape(type="line", x0=bnd - 0.5, x1=bnd - 0.5, y0=-0.5, y1=len(models) - 0.5,
                          line={"color": "white", "width": 1})
            fig.add_shape(type="line", y0=bnd - 0.5, y1=bnd - 0.5, x0=-0.5, x1=len(models) - 0.5,
                          line={"color": "white", "width": 1})
        show = len(models) <= 80
        fig.update_xaxes(showticklabels=show, tickangle=45)
        fig.update_yaxes(showticklabels=show, autorange="reversed")
    fig.update_layout(height=800, margin={"l": 40, "r": 40, "t": 60, "b": 40})
    return fig


def quartile_figure(data: ExperimentData):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles, per_cat = [], {}
    for cat in ("intrafamily", "interfamily"):
        rows = sorted([q for q in data.quartiles if q["category"] == cat], key=lambda q: -q["median"])
        per_cat[cat] = rows[:QUARTILE_MAX_BOXES]
        cut = f" (top {QUARTILE_MAX_BOXES} of {len(rows):,} by median)" if len(rows) > QUARTILE_MAX_BOXES else ""
        titles.append(cat.capitalize() + cut)
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    for col, cat in ((1, "intrafamily"), (2, "interfamily")):
        rows = per_cat[cat]
        fig.add_trace(go.Box(
            name=cat, x=[q["grouping"] for q in rows],
            q1=[q["q1"] for q in rows], median=[q["median"] for q in rows], q3=[q["q3"] for q in rows],
            lowerfence=[q["min_similarity"] for q in rows], upperfence=[q["max_similarity"] for q in rows],
            mean=[q["mean_similarity"] for q in rows], showlegend=False,
        ), row=1, col=col)
    fig.update_yaxes(title_text=f"pair similarity ({data.metric})", row=1, col=1)
    fig.update_yaxes(title_text=f"pair similarity ({data.metric})", row=1, col=2)
    sketch = " - interfamily quartiles from sketches" if data.scale else ""
    fig.update_layout(title=f"Similarity quartiles by family and family pair ({data.metric}){sketch}", height=520)
    return fig


def type_pair_figure(data: ExperimentData):
    """Mean similarity per type pair as dots with +- one std; the y-axis spans the data, not 0..1,
    so means of 0.79 and 0.97 do not look alike (dots, not bars, because the axis does not start at 0)."""
    import plotly.graph_objects as go

    rows = sorted(data.type_pairs, key=lambda r: -r["mean_similarity"])
    std = [math.sqrt(max(r["variance"] or 0.0, 0)) for r in rows]
    fig = go.Figure(go.Scatter(
        x=[r["type_pair"] for r in rows], y=[r["mean_similarity"] for r in rows], mode="markers",
        marker={"size": 11, "color": "#1f77b4"}, error_y={"type": "data", "array": std, "thickness": 1.5},
        customdata=[[r["n_pairs"], r["n_families"], r["min_similarity"], r["max_similarity"]] for r in rows],
        hovertemplate="%{x}<br>mean %{y:.4f}<br>pairs %{customdata[0]} in %{customdata[1]} families"
                      "<br>min %{customdata[2]:.4f} max %{customdata[3]:.4f}<extra></extra>",
    ))
    fig.update_layout(title="Same-family pairs of different types (mean +- std)", height=480,
                      xaxis_title="type pair", yaxis_title=f"mean similarity ({data.metric})")
    if rows:
        lo = min(r["mean_similarity"] - s for r, s in zip(rows, std, strict=True))
        hi = max(r["mean_similarity"] + s for r, s in zip(rows, std, strict=True))
        pad = 0.08 * (hi - lo) if hi > lo else max(0.01, 0.05 * abs(hi))
        fig.update_yaxes(range=[lo - pad, hi + pad])
    return fig


def roc_points(pos: np.ndarray, neg: np.ndarray, max_points: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve (FPR, TPR) at up to ``max_points`` thresholds (quantiles when there are more)."""
    thr = np.unique(np.concatenate([pos, neg]))[::-1]
    if len(thr) > max_points:
        thr = thr[np.linspace(0, len(thr) - 1, max_points).round().astype(int)]
    ps, ns = np.sort(pos), np.sort(neg)
    tpr = 1 - np.searchsorted(ps, thr, side="left") / max(len(ps), 1)
    fpr = 1 - np.searchsorted(ns, thr, side="left") / max(len(ns), 1)
    return np.concatenate([[0], fpr, [1]]), np.concatenate([[0], tpr, [1]])


def roc_figure(data: ExperimentData):
    import plotly.graph_objects as go

    fig = go.Figure()
    if data.scale is not None:
        return _roc_from_sketches(data, fig)
    P = data.pairs
    related = P["is_related"].astype(bool)
    neg = P["similarity"][~related]
    auc = {r["derivation_type"]: r["roc_auc"] for r in data.provenance}
    groups = {"all": P["similarity"][related]}
    for rel in sorted(set(P["relation"][related].tolist())):
        groups[rel] = P["similarity"][related & (P["relation"] == rel)]
    for name, vals in sorted(groups.items(), key=lambda kv: kv[0] != "all"):
        if not len(vals) or not len(neg):
            continue
        fpr, tpr = roc_points(np.array(vals), neg)
        a = auc.get(name)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines",
                                 name=f"{name} (AUC {a:.3f}, n={len(vals)})" if a is not None else name,
                                 line={"width": 3 if name == "all" else 1.5}))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                             name="chance"))
    fig.update_layout(title="Provenance quality: related vs unrelated pairs (ROC by derivation type)",
                      xaxis_title="false positive rate (unrelated pairs above the threshold)",
                      yaxis_title="true positive rate (related pairs above the threshold)", height=560)
    return fig


def sketch_roc(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC points at the bin edges of two histograms over the same bins, and the AUC (ties within a bin
    count one half, so the AUC is exact up to pairs sharing a bin)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    tp = np.concatenate([[0], np.cumsum(pos[::-1])]) / max(pos.sum(), 1)
    fp = np.concatenate([[0], np.cumsum(neg[::-1])]) / max(neg.sum(), 1)
    neg_below = np.concatenate([[0], np.cumsum(neg)[:-1]])
    auc = float((pos * (neg_below + 0.5 * neg)).sum() / max(pos.sum() * neg.sum(), 1))
    return fp, tp, auc


def _roc_from_sketches(data: ExperimentData, fig):
    import plotly.graph_objects as go

    h = data.scale.get("roc_hist")
    if h is not None and h["intra"].sum() and h["inter"].sum():
        fpr, tpr, auc = sketch_roc(h["intra"], h["inter"])
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", line={"width": 3},
                                 name=f"same family vs other families (AUC {auc:.3f}, n={int(h['intra'].sum()):,})"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                             name="chance"))
    fig.update_layout(title="Same-family vs cross-family pairs (ROC from the similarity sketches; "
                            "per-derivation curves need stored pairs)",
                      xaxis_title="false positive rate (cross-family pairs above the threshold)",
                      yaxis_title="true positive rate (same-family pairs above the threshold)", height=560)
    return fig


# ---------------------------------------------------------------- dashboard
STATS_COLS = [("min_similarity", "Min"), ("max_similarity", "Max"), ("mean_similarity", "Mean"),
              ("variance", "Variance"), ("n_pairs", "# Pairs")]

FIGURE_LEGENDS = {
    "heatmap": "Each cell is the similarity of two models (brighter = more similar); models are ordered by "
               "family and white lines separate families, so bright blocks on the diagonal mean families "
               "are recognisable.",
    "quartiles": "Spread of pair similarities within each family (left) and between each pair of families "
                 "(right): the line is the median, the box the middle half, whiskers reach the minimum and maximum.",
    "type_pairs": "Mean similarity of same-family pairs whose models differ in type (e.g. Base vs Chat), with "
                  "one standard deviation as error bars; the y-axis is zoomed to the data, not started at 0.",
    "roc": "How well similarity separates related (lineage) pairs from unrelated ones, per derivation type: "
           "each curve sweeps the similarity threshold; the further above the dotted chance line, the better.",
}


def _target_fpr_label(data: ExperimentData) -> str:
    fpr = next((r.get("target_fpr") for r in data.provenance if r.get("target_fpr") is not None), 0.01)
    return f"True positive rate at {fpr * 100:g}% false positive rate"


def dashboard_html(data: ExperimentData, figures: dict) -> str:
    """One self-contained page: plotly JS inlined once, every figure, filterable tables."""
    legends = dict(FIGURE_LEGENDS)
    if data.scale is not None or len(data.models) > HEATMAP_FULL_LIMIT:
        legends["heatmap"] = ("Each cell is the mean similarity of all pairs between two families (the diagonal: pairs "
                              "within a family), " + ("exact, from the aggregates over every pair" if data.scale
                                                      else "from the stored pairs")
                              + "; a bright diagonal means families are recognisable.")
    sections = [page.figure_section(name, fig, legends.get(name, "")) for name, fig in figures.items()]
    prov_cols = [("derivation_type", "Derivation"), ("n_positive_pairs", "Related pairs"),
                 ("n_negative_pairs", "Unrelated pairs"), ("roc_auc", "ROC-AUC"),
                 ("tpr_at_target_fpr", _target_fpr_label(data)), ("best_threshold", "Best threshold"),
                 ("youden_j", "Youden J")]
    model_rows = [dict(m) for m in data.models]
    nn = {}
    for r in data.neighbors:
        if r["rank"] == 1:
            nn[r["model_id"]] = f"{r['neighbor_name']} ({r['similarity']:.4f})"
    for m in model_rows:
        m["nearest"] = nn.get(m["model_id"], "")
    cap = SCALE_TABLE_ROWS if data.scale else None
    tables = (
        "<h2>Intrafamily</h2>" + page.table_html(data.intrafamily, [("family", "Family"), *STATS_COLS], "t-intra",
                                                 max_rows=cap)
        + "<h2>Interfamily</h2>" + page.table_html(data.interfamily, [("family_pair", "Family Pair"), *STATS_COLS],
                                                   "t-inter", max_rows=cap)
        + "<h2>Type pairs</h2>" + page.table_html(data.type_pairs, [("type_pair", "Type Pair"), *STATS_COLS,
                                                                     ("n_families", "Families")], "t-types",
                                                  max_rows=cap)
        + "<h2>Provenance quality</h2>" + page.table_html(data.provenance, prov_cols, "t-prov")
        + page.legend_html("ROC-AUC: chance that a related pair is more similar than an unrelated one; Youden J: "
                           "the best true minus false positive rate, reached at the best threshold.")
        + "<h2>Models</h2>" + page.table_html(model_rows, [("model_id", "Id"), ("display_name", "Model"),
                                                            ("family", "Family"), ("model_type", "Type"),
                                                            ("nearest", "Nearest neighbour")], "t-models",
                                                          max_rows=cap)
    )
    sections.append(page.Section("tables", tables))
    e = html.escape
    header = (f"<h1>Fingerprint Lake dashboard</h1><div>method <b>{e(data.method)}</b>, metric <b>{e(data.metric)}</b>, "
              f"config {e(data.config_hash)}: {len(data.models):,} models, {n_pairs(data):,} pairs</div>")
    if data.scale:
        exact = "exact" if data.scale.get("neighbors_exact") else "approximate (faiss HNSW, exact similarities)"
        header += (f"<div>Stored at scale: statistics are exact aggregates over all pairs, cross-family pairs are "
                   f"not stored ({data.scale['n_stored_pairs']:,} intrafamily pairs are); interfamily quartiles "
                   f"come from histogram sketches; nearest neighbours {e(exact)}.</div>")
    return page.page_html(f"Fingerprint Lake: {data.method} / {data.metric}", header, sections)


def render_all(data: ExperimentData, out_dir: str | Path) -> dict[str, str]:
    """Write every report for one experiment into ``out_dir``; returns name -> path
    (plus ``"dashboard"`` -> the dashboard's path and ``"summary_text"`` -> the console summary itself)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{data.method}_{data.metric}"
    paths = {}

    def write(name: str, text: str):
        paths[name] = page.write_text(out / name, text)

    summary = console_summary(data)
    write(f"{stem}_summary.txt", summary)
    write(f"{stem}_pairs.txt", text_report(data))
    write(f"{stem}_report.json", json.dumps(json_report(data), indent=1, default=str))
    figures = {"heatmap": heatmap_figure(data), "quartiles": quartile_figure(data),
               "type_pairs": type_pair_figure(data), "roc": roc_figure(data)}
    for name, fig in figures.items():
        p = out / f"{stem}_{name}.html"
        fig.write_html(str(p), include_plotlyjs="directory", full_html=True)
        paths[f"{stem}_{name}.html"] = str(p)
    write(f"{stem}_dashboard.html", dashboard_html(data, figures))
    paths["dashboard"] = str(out / f"{stem}_dashboard.html")
    paths["summary_text"] = summary
    return paths

"""The config lake's dashboard: drift along lineage edges, field and trait mutation,
the config embedding and similarity graph, neighbours, duplicates, validation issues
and how well configs recover phylogeny.

:func:`load_config_data` reads the config marts of an open warehouse connection
into plain rows and arrays (a mart that is not built yet is recorded, not
fatal); :func:`config_dashboard_html` turns them into one offline page over
:mod:`fingerprinting.reports.page`; :func:`render_config_dashboard` does both
and writes the file.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from fingerprinting.reports import page

# Keep the page light (< ~15 MB) whatever the population: plotly.js is ~4.5 MB of it.
MAX_SCATTER_POINTS = 6000
MAX_TABLE_ROWS = 2000
MAX_DISTRIBUTION_VALUES = 5000  # per violin
GRAPH_MAX_NODES = 600
GRAPH_MAX_EDGES = 6000
CDF_POINTS = 1500

# The marts (and staging views) this page reads, with the columns it uses.
MARTS: dict[str, tuple[str, ...]] = {
    "config_neighbors": ("model_id", "neighbor_id", "metric", "rank", "distance", "similarity", "model_family",
                         "neighbor_family", "model_arch", "neighbor_arch", "relation"),
    "config_similarity_graph": ("model_a", "model_b", "metric", "variant", "distance"),
    "config_graph_nodes": ("model_id", "metric", "variant", "degree", "component_id", "component_size"),
    "config_drift_edges": ("parent_id", "child_id", "relation", "parent_family", "child_family", "same_family",
                           "gower_standard", "n_changed"),
    "config_drift_summary": ("group_kind", "group_value", "n_edges", "n_with_drift", "mean_drift", "median_drift",
                             "p25_drift", "p75_drift", "share_zero_drift", "mean_drift_max"),
    "config_field_mutation": ("field", "relation", "n_edges_compared", "n_changed", "share_changed", "ci_low",
                              "ci_high"),
    "trait_mutation": ("trait", "relation", "n_edges", "mean_mutation_rate", "share_changed"),
    "architecture_duplicates": ("match_kind", "group_key", "n_models", "model_ids", "n_families", "archs"),
    "config_validation_summary": ("source", "field", "n_issues", "n_models", "example_model_id",
                                  "example_raw_value", "example_message"),
    "stg_config_embedding": ("model_id", "pca_x", "pca_y", "mds_x", "mds_y", "cluster"),
    "stg_config_phylogeny": ("population", "statistic", "value", "detail"),
    "stg_model_configs": ("model_id", "model_type"),
    "stg_models": ("model_id", "family", "arch"),
}

GREY, LIGHT_GREY = "#9a9a9a", "#d0d0d0"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d", "#31a354"]


@dataclass
class ConfigData:
    """What the config dashboard shows; a field stays empty when its mart is missing (see ``missing``)."""

    metric: str
    top_families: int
    missing: dict[str, str] = field(default_factory=dict)  # part -> why it is not shown
    n_configs: int | None = None
    drift: dict[str, np.ndarray] | None = None  # scored edges: gower_standard, same_family, relation, child_family
    n_edges: int = 0  # every lineage edge, scored or not
    drift_summary: list[dict] = field(default_factory=list)
    field_mutation: list[dict] = field(default_factory=list)
    trait_mutation: list[dict] = field(default_factory=list)
    embedding: dict[str, np.ndarray] | None = None  # model_id, pca_x/y, mds_x/y, cluster, family, arch
    n_embedded: int = 0
    graph: dict | None = None  # nodes (ids, family, arch, degree), edges (i, j), sizes
    neighbors: list[dict] = field(default_factory=list)
    n_neighbors: int = 0
    nearest_relations: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    n_duplicates: int = 0
    validation: list[dict] = field(default_factory=list)
    phylogeny: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- reading
class _Reader:
    def __init__(self, con):
        self.con = con
        self.present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main'").fetchall()}

    def absent(self, *names: str) -> list[str]:
        return [n for n in names if n not in self.present]

    def rows(self, sql: str, params=()) -> list[dict]:
        cur = self.con.execute(sql, list(params))
        cols = [d[0] for d in cur.description]
        # DECIMAL columns (e.g. literals in hand-written SQL) arrive as Decimal: plot and print them as floats
        return [{c: float(v) if isinstance(v, Decimal) else v for c, v in zip(cols, r, strict=True)}
                for r in cur.fetchall()]

    def arrays(self, sql: str, params=()) -> dict[str, np.ndarray]:
        out = self.con.execute(sql, list(params)).fetchnumpy()
        return {k: v.astype(float) if v.dtype == object and len(v) and isinstance(v[0], Decimal) else v
                for k, v in out.items()}

    def scalar(self, sql: str, params=()):
        return self.con.execute(sql, list(params)).fetchone()[0]

    def model_labels(self) -> tuple[str, str]:
        """SQL joins and expressions giving ``family`` and ``arch`` per model_id of alias ``x``."""
        joins, fam, arch = "", "null", "null"
        if "stg_models" in self.present:
            joins += " left join stg_models sm on sm.model_id = x.model_id"
            fam, arch = "sm.family", "nullif(sm.arch, '')"
        if "stg_model_configs" in self.present:
            joins += " left join stg_model_configs smc on smc.model_id = x.model_id"
            arch = f"coalesce({arch}, nullif(smc.model_type, ''))"
        return joins, f"{fam} as family, {arch} as arch"


def _load(r: _Reader, data: ConfigData, part: str, needs: tuple[str, ...], fn: Callable[[], None]) -> None:
    import duckdb

    absent = r.absent(*needs)
    if absent:
        data.missing[part] = f"not built: {', '.join(absent)} is not in the warehouse yet (run dbt build)"
        return
    try:
        fn()
    except duckdb.Error as e:  # e.g. a mart whose columns changed: say so on the page, keep the rest
        data.missing[part] = f"could not be read: {type(e).__name__}: {str(e).splitlines()[0][:300]}"


def load_config_data(con, *, metric: str = "gower", top_families: int = 10) -> ConfigData:
    """Read every config mart the dashboard shows from an open DuckDB warehouse connection."""
    r = _Reader(con)
    d = ConfigData(metric, top_families)
    if "stg_model_configs" in r.present:
        d.n_configs = int(r.scalar("select count(*) from stg_model_configs"))

    def drift():
        d.n_edges = int(r.scalar("select count(*) from config_drift_edges"))
        d.drift = r.arrays("select gower_standard, coalesce(same_family, false) as same_family, "
                           "coalesce(relation, 'unknown') as relation, coalesce(child_family, '?') as child_family "
                           "from config_drift_edges where gower_standard is not null and isfinite(gower_standard) "
                           "order by parent_id, child_id")

    def summary():
        d.drift_summary = r.rows("select * from config_drift_summary order by group_kind, n_edges desc, group_value")

    def fields():
        d.field_mutation = r.rows("select * from config_field_mutation order by relation, share_changed desc, field")

    def traits():
        d.trait_mutation = r.rows("select * from trait_mutation order by trait, relation = 'all' desc, relation")

    def embedding():
        joins, labels = r.model_labels()
        d.n_embedded = int(r.scalar("select count(*) from stg_config_embedding"))
        # a stable sample when the population is large: hash order, not the table's
        d.embedding = r.arrays(
            f"select x.model_id, x.pca_x, x.pca_y, x.mds_x, x.mds_y, x.cluster, {labels} "
            f"from stg_config_embedding x{joins} where x.pca_x is not null "
            f"order by hash(x.model_id), x.model_id limit {MAX_SCATTER_POINTS}")

    def graph():
        d.graph = _load_graph(r, metric)

    def neighbors():
        where = "where metric = ?"
        d.n_neighbors = int(r.scalar(f"select count(*) from config_neighbors {where}", [metric]))
        d.neighbors = r.rows(f"select * from config_neighbors {where} order by model_id, rank limit {MAX_TABLE_ROWS}",
                             [metric])
        d.nearest_relations = r.rows(
            f"select coalesce(relation, 'unknown') as relation, count(*) as n_models, "
            f"count(*) / sum(count(*)) over () as share from config_neighbors {where} and rank = 1 "
            f"group by all order by n_models desc", [metric])

    def duplicates():
        d.n_duplicates = int(r.scalar("select count(*) from architecture_duplicates"))
        d.duplicates = r.rows(f"select * from architecture_duplicates order by n_models desc, match_kind, group_key "
                              f"limit {MAX_TABLE_ROWS}")

    def validation():
        d.validation = r.rows("select * from config_validation_summary order by n_issues desc, source, field "
                              f"limit {MAX_TABLE_ROWS}")

    def phylogeny():
        d.phylogeny = r.rows("select * from stg_config_phylogeny order by population, statistic")

    _load(r, d, "drift", ("config_drift_edges",), drift)
    _load(r, d, "drift_summary", ("config_drift_summary",), summary)
    _load(r, d, "field_mutation", ("config_field_mutation",), fields)
    _load(r, d, "trait_mutation", ("trait_mutation",), traits)
    _load(r, d, "embedding", ("stg_config_embedding",), embedding)
    _load(r, d, "graph", ("config_similarity_graph", "config_graph_nodes"), graph)
    _load(r, d, "neighbors", ("config_neighbors",), neighbors)
    _load(r, d, "duplicates", ("architecture_duplicates",), duplicates)
    _load(r, d, "validation", ("config_validation_summary",), validation)
    _load(r, d, "phylogeny", ("stg_config_phylogeny",), phylogeny)
    return d


def _load_graph(r: _Reader, metric: str) -> dict | None:
    """The largest component of the median-threshold similarity graph (its best-connected nodes if huge)."""
    key = [metric, "median"]
    comp = r.con.execute("select component_id, max(component_size), count(distinct component_id) over () "
                         "from config_graph_nodes where metric = ? and variant = ? group by component_id "
                         "order by 2 desc, 1 limit 1", key).fetchone()
    if comp is None:
        return None
    cid, size, n_components = comp
    joins, labels = r.model_labels()
    nodes = r.arrays(f"select x.model_id, x.degree, {labels} from config_graph_nodes x{joins} "
                     f"where x.metric = ? and x.variant = ? and x.component_id = ? "
                     f"order by x.degree desc, x.model_id limit {GRAPH_MAX_NODES}", [*key, cid])
    ids = nodes["model_id"].tolist()
    edges = r.arrays("select model_a, model_b from config_similarity_graph where metric = ? and variant = ? "
                     "and list_contains(?, model_a) and list_contains(?, model_b) "
                     f"order by distance, model_a, model_b limit {GRAPH_MAX_EDGES}", [*key, ids, ids])
    index = {m: i for i, m in enumerate(ids)}
    return {"ids": nodes["model_id"], "family": nodes["family"], "arch": nodes["arch"],
            "degree": nodes["degree"], "i": np.array([index[a] for a in edges["model_a"].tolist()], dtype=int),
            "j": np.array([index[b] for b in edges["model_b"].tolist()], dtype=int),
            "component_size": int(size), "n_components": int(n_components)}


# ---------------------------------------------------------------- helpers
def spring_layout(n: int, i: np.ndarray, j: np.ndarray, *, iterations: int = 120, seed: int = 0) -> np.ndarray:
    """Fruchterman-Reingold positions (n x 2) for an undirected graph given as edge index arrays."""
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 2))
    if n < 2:
        return pos
    k = 1.0 / np.sqrt(n)
    step = 0.1
    for _ in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.maximum(np.linalg.norm(delta, axis=-1), 1e-3)
        disp = (delta * (k * k / dist**2)[..., None]).sum(axis=1)  # repulsion k^2 / d along the unit vector
        if len(i):
            e = pos[i] - pos[j]
            el = np.maximum(np.linalg.norm(e, axis=1), 1e-3)
            pull = e * (el / k)[:, None]  # attraction d^2 / k along the unit vector
            np.add.at(disp, i, -pull)
            np.add.at(disp, j, pull)
        length = np.maximum(np.linalg.norm(disp, axis=1), 1e-9)
        pos += disp / length[:, None] * np.minimum(length, step)[:, None]
        step = max(step * 0.96, 0.002)
    return pos


def _labels(values: np.ndarray | list, top: int, missing: str) -> tuple[list[str], list[str]]:
    """Each value's colour group (its own name for the ``top`` most common, else "other") and the group order."""
    vals = ["" if v is None else str(v) for v in (values.tolist() if isinstance(values, np.ndarray) else values)]
    counts: dict[str, int] = {}
    for v in vals:
        if v:
            counts[v] = counts.get(v, 0) + 1
    keep = sorted(counts, key=lambda v: (-counts[v], v))[:top]
    keep_set = set(keep)
    groups = [v if v in keep_set else ("other" if v else missing) for v in vals]
    order = keep + [g for g in ("other", missing) if g in groups]
    return groups, order


def _colour(group: str, order: list[str]) -> str:
    if group == "other":
        return GREY
    if group.startswith("no "):
        return LIGHT_GREY
    return PALETTE[order.index(group) % len(PALETTE)]


def _short(s: str, n: int = 42) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _ecdf(values: np.ndarray, max_points: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values)
    y = np.arange(1, len(x) + 1) / len(x)
    if len(x) > max_points:
        keep = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(int))
        x, y = x[keep], y[keep]
    return x, y


def _sample(values: np.ndarray, n: int = MAX_DISTRIBUTION_VALUES) -> np.ndarray:
    if len(values) <= n:
        return values
    return np.random.default_rng(0).choice(values, n, replace=False)


def _summary(data: ConfigData, kind: str) -> list[dict]:
    return [r for r in data.drift_summary if r["group_kind"] == kind]


# ---------------------------------------------------------------- figures
def drift_histogram_figure(drift: np.ndarray):
    import plotly.graph_objects as go

    med = float(np.median(drift))
    fig = go.Figure(go.Histogram(x=drift, xbins={"start": 0, "end": max(1.0, float(drift.max())), "size": 0.02},
                                 marker={"color": "#1f77b4"},
                                 hovertemplate="drift %{x}<br>%{y} edges<extra></extra>"))
    fig.add_vline(x=med, line={"dash": "dash", "color": "#d62728", "width": 2},
                  annotation={"text": f"median {med:.4f}", "font": {"color": "#d62728"}, "bgcolor": "rgba(255,255,255,0.85)"},
                  annotation_position="top right")
    fig.update_layout(title="Config drift along lineage edges", height=420, bargap=0.05,
                      xaxis_title="config drift, standard Gower distance (0 = identical features)",
                      yaxis_title="parent → child edges", margin={"t": 60})
    return fig


def within_between_figure(drift: dict[str, np.ndarray]):
    import plotly.graph_objects as go

    fig = go.Figure()
    same = drift["same_family"].astype(bool)
    for name, mask, colour in (("within a family", same, "#1f77b4"), ("between families", ~same, "#ff7f0e")):
        vals = drift["gower_standard"][mask]
        if not len(vals):
            continue
        fig.add_trace(go.Violin(y=_sample(vals), name=f"{name} (n={len(vals):,})", box_visible=True,
                                meanline_visible=True, points=False, spanmode="hard", line_color=colour,
                                hoverinfo="y"))
    fig.update_layout(title="Drift of edges within a family vs between families", height=440, showlegend=False,
                      yaxis_title="config drift (standard Gower)", margin={"t": 60})
    return fig


def drift_groups_figure(relations: list[dict], families: list[dict]):
    """Median drift (dot) with the middle half (p25-p75, bar) and the mean (diamond) per group."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    parts = [(t, rows) for t, rows in (("by relation", relations), ("by child family", families)) if rows]
    heights = [max(len(rows), 2) for _, rows in parts]
    fig = make_subplots(rows=len(parts), cols=1, shared_xaxes=True, subplot_titles=[t for t, _ in parts],
                        row_heights=[h / sum(heights) for h in heights], vertical_spacing=0.1)
    for k, (_, rows) in enumerate(parts, start=1):
        rows = sorted(rows, key=lambda r: (r["median_drift"] or 0, r["group_value"] or ""))
        labels = [f"{_short(str(r['group_value']))} (n={r['n_edges'] or 0:,})" for r in rows]
        med = [r["median_drift"] for r in rows]
        fig.add_trace(go.Scatter(
            x=med, y=labels, mode="markers", marker={"size": 10, "color": "#1f77b4"}, name="median (p25-p75)",
            showlegend=k == 1, legendgroup="median",
            error_x={"type": "data", "symmetric": False,
                     "array": [max((r["p75_drift"] or 0) - (m or 0), 0) for r, m in zip(rows, med, strict=True)],
                     "arrayminus": [max((m or 0) - (r["p25_drift"] or 0), 0) for r, m in zip(rows, med, strict=True)]},
            customdata=[[r["p25_drift"], r["p75_drift"], r["mean_drift"], r["share_zero_drift"], r["n_edges"]]
                        for r in rows],
            hovertemplate="%{y}<br>median %{x:.4f} (p25 %{customdata[0]:.4f}, p75 %{customdata[1]:.4f})"
                          "<br>mean %{customdata[2]:.4f}<br>share with zero drift %{customdata[3]:.1%}"
                          "<extra></extra>"), row=k, col=1)
        fig.add_trace(go.Scatter(x=[r["mean_drift"] for r in rows], y=labels, mode="markers", name="mean",
                                 marker={"symbol": "diamond", "size": 8, "color": "#d62728"}, showlegend=k == 1,
                                 legendgroup="mean", hovertemplate="%{y}<br>mean %{x:.4f}<extra></extra>"),
                      row=k, col=1)
    fig.update_xaxes(title_text="config drift (standard Gower)", row=len(parts), col=1)
    fig.update_layout(title="Drift by relation and by family", height=220 + 28 * sum(heights),
                      margin={"l": 330, "t": 80}, legend={"orientation": "h", "y": 1.06, "x": 1, "xanchor": "right"})
    return fig


def drift_cdf_figure(drift: dict[str, np.ndarray], baselines: list[dict]):
    import plotly.graph_objects as go

    fig = go.Figure()
    vals = drift["gower_standard"]
    x, y = _ecdf(vals)
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line={"shape": "hv", "width": 3, "color": "#1f77b4"},
                             name=f"parent → child edges (n={len(vals):,})",
                             hovertemplate="drift ≤ %{x:.4f}: %{y:.1%} of edges<extra></extra>"))
    same = drift["same_family"].astype(bool)
    if same.any() and (~same).any():
        for name, mask, colour in (("within a family", same, "#6baed6"), ("between families", ~same, "#fd8d3c")):
            bx, by = _ecdf(vals[mask])
            fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", line={"shape": "hv", "width": 1.5, "color": colour},
                                     name=f"edges {name} (n={int(mask.sum()):,})"))
    dashes = ["dash", "dot", "dashdot", "longdash"]
    for k, b in enumerate(baselines):
        # the mart keeps quartiles, not every pair: draw the baseline's CDF through them
        pts = sorted({(0.0, b["share_zero_drift"] or 0.0), (b["p25_drift"], 0.25), (b["median_drift"], 0.5),
                      (b["p75_drift"], 0.75)} - {(None, 0.25), (None, 0.5), (None, 0.75)})
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                 line={"dash": dashes[k % len(dashes)], "color": PALETTE[(k + 2) % len(PALETTE)]},
                                 name=f"baseline: {b['group_value']} (n={b['n_edges'] or 0:,}, quartiles)",
                                 hovertemplate="drift ≤ %{x:.4f}: %{y:.0%}<extra></extra>"))
    fig.update_layout(title="Cumulative distribution of config drift", height=460, margin={"t": 60},
                      xaxis_title="config drift (standard Gower)", yaxis_title="share of pairs with drift ≤ x",
                      yaxis={"range": [0, 1.02], "tickformat": ".0%"})
    return fig


def field_mutation_figure(rows: list[dict]):
    import plotly.graph_objects as go

    rows = [r for r in rows if r["share_changed"] is not None]  # fields never compared have no share
    relations = sorted({r["relation"] for r in rows}, key=lambda v: (v != "all", str(v)))
    base = sorted([r for r in rows if r["relation"] == relations[0]], key=lambda r: (-r["share_changed"], r["field"]))
    order = [r["field"] for r in base]
    fig = go.Figure()
    for k, rel in enumerate(relations):
        by_field = {r["field"]: r for r in rows if r["relation"] == rel}
        sel = [by_field[f] for f in order if f in by_field]
        share = [r["share_changed"] for r in sel]
        fig.add_trace(go.Bar(
            x=[r["field"] for r in sel], y=share, name=f"{rel}", marker={"color": PALETTE[k % len(PALETTE)]},
            visible=True if k == 0 else "legendonly",
            error_y={"type": "data", "symmetric": False,
                     "array": [max((r["ci_high"] if r["ci_high"] is not None else s) - s, 0) for r, s in zip(sel, share, strict=True)],
                     "arrayminus": [max(s - (r["ci_low"] if r["ci_low"] is not None else s), 0) for r, s in zip(sel, share, strict=True)]},
            customdata=[[r["n_changed"], r["n_edges_compared"], r["ci_low"], r["ci_high"]] for r in sel],
            hovertemplate="%{x}: changed on %{customdata[0]} of %{customdata[1]} edges (%{y:.1%})"
                          "<br>95% CI %{customdata[2]:.1%} - %{customdata[3]:.1%}<extra>" + html.escape(str(rel)) + "</extra>"))
    fig.update_layout(title="Which config fields change from parent to child", height=460, barmode="group",
                      xaxis_title="config field", yaxis_title="share of edges where the field changed",
                      yaxis={"tickformat": ".0%", "rangemode": "tozero"}, legend_title_text="relation",
                      margin={"t": 60})
    return fig


def embedding_figure(emb: dict[str, np.ndarray], x: str, y: str, top: int, title: str):
    """Config embedding coloured by family; buttons switch the colouring to architecture."""
    import plotly.graph_objects as go

    fam, fam_order = _labels(emb["family"], top, "no family (not in a lineage)")
    arch, arch_order = _labels(emb["arch"], top, "no architecture")
    ids = emb["model_id"].tolist()
    hover = [f"{m}<br>family {f or '-'}<br>architecture {a or '-'}<br>cluster {c}"
             for m, f, a, c in zip(ids, emb["family"].tolist(), emb["arch"].tolist(), emb["cluster"].tolist(),
                                   strict=True)]
    fig = go.Figure()
    groups_of = {"family": (np.array(fam, dtype=object), fam_order), "architecture": (np.array(arch, dtype=object), arch_order)}
    n_traces = {}
    for kind, (groups, order) in groups_of.items():
        n_traces[kind] = 0
        for g in order:
            mask = groups == g
            if not mask.any():
                continue
            fig.add_trace(go.Scatter(
                x=emb[x][mask], y=emb[y][mask], mode="markers", name=_short(g, 36), legendgroup=kind,
                visible=kind == "family", text=np.array(hover, dtype=object)[mask], hoverinfo="text",
                marker={"size": 6, "opacity": 0.75, "color": _colour(g, order), "line": {"width": 0}}))
            n_traces[kind] += 1
    nf, na = n_traces["family"], n_traces["architecture"]
    buttons = [{"label": "colour by family", "method": "update", "args": [{"visible": [True] * nf + [False] * na}]},
               {"label": "colour by architecture", "method": "update",
                "args": [{"visible": [False] * nf + [True] * na}]}]
    axis = x.split("_")[0].upper()
    fig.update_layout(title=title, height=620, margin={"t": 100}, legend={"itemsizing": "constant"},
                      xaxis_title=f"{axis} axis 1", yaxis_title=f"{axis} axis 2",
                      updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons, "x": 1, "y": 1.02,
                                    "xanchor": "right", "yanchor": "bottom", "showactive": True}])
    # a few outlying configs would squeeze everyone else into a corner: open on the central 98%
    for ax, col in (("xaxis", x), ("yaxis", y)):
        v = emb[col].astype(float)
        v = v[np.isfinite(v)]
        if len(v) >= 50:
            lo, hi = np.quantile(v, [0.01, 0.99])
            pad = 0.08 * (hi - lo) or 1.0
            fig.update_layout({ax: {"range": [lo - pad, hi + pad]}})
    return fig


def graph_figure(g: dict, top: int):
    import plotly.graph_objects as go

    n = len(g["ids"])
    pos = spring_layout(n, g["i"], g["j"])
    ex = np.full(3 * len(g["i"]), np.nan)
    ey = np.full(3 * len(g["i"]), np.nan)
    ex[0::3], ex[1::3] = pos[g["i"], 0], pos[g["j"], 0]
    ey[0::3], ey[1::3] = pos[g["i"], 1], pos[g["j"], 1]
    fig = go.Figure(go.Scatter(x=ex, y=ey, mode="lines", line={"width": 0.6, "color": "#b8c2cc"},
                               hoverinfo="skip", showlegend=False))
    fam, order = _labels(g["family"], top, "no family (not in a lineage)")
    fam = np.array(fam, dtype=object)
    hover = np.array([f"{m}<br>family {f or '-'}<br>architecture {a or '-'}<br>degree {d}" for m, f, a, d in
                      zip(g["ids"].tolist(), g["family"].tolist(), g["arch"].tolist(), g["degree"].tolist(),
                          strict=True)], dtype=object)
    for grp in order:
        mask = fam == grp
        if mask.any():
            fig.add_trace(go.Scatter(x=pos[mask, 0], y=pos[mask, 1], mode="markers", name=_short(grp, 36),
                                     text=hover[mask], hoverinfo="text",
                                     marker={"size": 8, "color": _colour(grp, order), "line": {"width": 0.5, "color": "#fff"}}))
    shown = f"{n} best-connected of {g['component_size']}" if n < g["component_size"] else f"all {n}"
    fig.update_layout(title=f"Largest component of the config similarity graph ({shown} models)", height=640,
                      margin={"t": 60}, xaxis={"visible": False}, yaxis={"visible": False},
                      legend={"itemsizing": "constant"}, plot_bgcolor="#fff")
    return fig


# ---------------------------------------------------------------- page
def _stat_value(v):
    """Counts stored as doubles read better as integers."""
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) >= 2 else v


def _missing(data: ConfigData, part: str, sid: str, title: str) -> page.Section | None:
    if part in data.missing:
        return page.missing_section(sid, title, f"{title}: {data.missing[part]}.")
    return None


def _drift_sections(data: ConfigData) -> list[page.Section]:
    out = []
    title = "Drift along lineage edges"
    miss = _missing(data, "drift", "drift", title)
    drift = data.drift
    if miss:
        out.append(miss)
    elif drift is None or not len(drift["gower_standard"]):
        out.append(page.missing_section("drift", title, f"{title}: none of the {data.n_edges:,} lineage edges has "
                                                        "a config on both sides."))
    else:
        vals = drift["gower_standard"]
        med = float(np.median(vals))
        out.append(page.figure_section("drift", drift_histogram_figure(vals), (
            f"Config drift of each parent → child edge with both configs ({len(vals):,} of {data.n_edges:,} edges): "
            f"median {med:.4f}, {np.mean(vals == 0):.1%} have identical features (drift 0); dashed line = median.")))
        out.append(page.figure_section("within-between", within_between_figure(drift), (
            "Distribution of drift for edges whose parent and child share a family vs cross-family edges "
            "(violin = density, box = quartiles, dashed line = mean).")))
    title = "Drift by relation and by family"
    miss = _missing(data, "drift_summary", "drift-groups", title)
    # groups without one scored edge (no config on a side) have no median to draw
    rel = [r for r in _summary(data, "relation") if r["median_drift"] is not None]
    fams = [r for r in _summary(data, "family") if r["median_drift"] is not None][: data.top_families]
    if miss:
        out.append(miss)
    elif rel or fams:
        out.append(page.figure_section("drift-groups", drift_groups_figure(rel, fams), (
            f"Median drift per relation and for the {data.top_families} families with most edges: dot = median, "
            "bar = middle half of the edges (25th-75th percentile), diamond = mean.")))
        cols = [("group_kind", "Group"), ("group_value", "Value"), ("n_edges", "Edges"),
                ("n_with_drift", "With drift"), ("share_zero_drift", "Share zero"), ("mean_drift", "Mean"),
                ("median_drift", "Median"), ("p25_drift", "25th pct"), ("p75_drift", "75th pct"),
                ("mean_drift_max", "Mean (max-normalised Gower)")]
        out.append(page.Section("drift-summary", page.table_html(
            data.drift_summary, cols, "t-drift-summary", placeholder="filter rows (family, relation)...",
            max_rows=MAX_TABLE_ROWS), "Drift summary per group (overall, relation, family, within/between, "
                                      "baselines); the standard Gower distance unless named otherwise.",
            "Drift summary"))
    title = "Cumulative drift"
    if "drift" in data.missing or drift is None or not len(drift["gower_standard"]):
        out.append(page.missing_section("drift-cdf", title, f"{title}: no scored edges to draw."))
    else:
        baselines = _summary(data, "baseline")
        note = (" Baselines (dashed) are drawn through the quartiles the mart keeps, starting at their "
                "share of zero drift." if baselines else " No baselines (config_drift_summary has no baseline rows).")
        out.append(page.figure_section("drift-cdf", drift_cdf_figure(drift, baselines), (
            "Share of edges whose drift is at most x; a curve further up-left means parents and children are "
            "closer." + note)))
    return out


def _mutation_sections(data: ConfigData) -> list[page.Section]:
    out = []
    title = "Field mutation"
    miss = _missing(data, "field_mutation", "fields", title)
    if miss:
        out.append(miss)
    elif not any(r["share_changed"] is not None for r in data.field_mutation):
        out.append(page.missing_section("fields", title, f"{title}: no edges compared."))
    else:
        out.append(page.figure_section("fields", field_mutation_figure(data.field_mutation), (
            "Share of parent → child edges (with the field on both sides) where the config field's value changed; "
            "error bars are 95% confidence intervals; click a relation in the legend to add it.")))
    title = "Trait mutation"
    miss = _missing(data, "trait_mutation", "traits", title)
    out.append(miss or page.Section("traits", page.table_html(
        data.trait_mutation, [("trait", "Trait"), ("relation", "Relation"), ("n_edges", "Edges"),
                              ("mean_mutation_rate", "Mean mutation rate"), ("share_changed", "Share changed")],
        "t-traits", placeholder="filter rows (trait, relation)..."),
        "Set-valued Hub traits (license, languages, pipeline tag, library) along edges: mutation rate = "
        "|union − intersection| / |union| of parent and child sets, 0 = unchanged.", title))
    return out


def _embedding_sections(data: ConfigData) -> list[page.Section]:
    out = []
    title = "Config embedding"
    miss = _missing(data, "embedding", "embedding", title)
    emb = data.embedding
    if miss:
        return [miss]
    if emb is None or not len(emb["model_id"]):
        return [page.missing_section("embedding", title, f"{title}: no embedded configs.")]
    cap = (f" Showing a fixed sample of {len(emb['model_id']):,} of {data.n_embedded:,} models."
           if len(emb["model_id"]) < data.n_embedded else "")
    out.append(page.figure_section("embedding", embedding_figure(
        emb, "pca_x", "pca_y", data.top_families, f"Configs in 2-D (PCA), {len(emb['model_id']):,} models"), (
        "Each dot is one model's config projected by PCA of its standardised features; nearby dots have similar "
        "architectures. The buttons switch colour between family (lineage root) and architecture; hover for "
        "the model id; the view opens on the central 98% of points (double-click to see outliers)." + cap)))
    mds = np.isfinite(emb["mds_x"].astype(float)) & np.isfinite(emb["mds_y"].astype(float))
    if mds.sum() >= 3:
        sub = {k: v[mds] for k, v in emb.items()}
        out.append(page.figure_section("embedding-mds", embedding_figure(
            sub, "mds_x", "mds_y", data.top_families, f"Configs in 2-D (MDS of Gower distances), {int(mds.sum()):,} models"),
            "The same models placed by multidimensional scaling so that plotted distances follow the Gower "
            "distances between configs (computed for populations small enough)."))
    return out


def _graph_section(data: ConfigData) -> page.Section:
    title = "Similarity graph"
    miss = _missing(data, "graph", "graph", title)
    if miss:
        return miss
    g = data.graph
    if g is None or not len(g["ids"]):
        return page.missing_section("graph", title, f"{title}: no graph for metric {data.metric!r} (median variant).")
    return page.figure_section("graph", graph_figure(g, data.top_families), (
        f"Models joined when their {data.metric} distance is below the population median of neighbour "
        f"distances; the largest of {g['n_components']:,} components ({g['component_size']:,} models), laid out "
        f"by a spring layout (linked models pull together), coloured by family."))


def _table_sections(data: ConfigData) -> list[page.Section]:
    out = []
    title = f"Nearest config neighbours ({data.metric})"
    miss = _missing(data, "neighbors", "neighbors", title)
    if miss:
        out.append(miss)
    else:
        rel = page.table_html(data.nearest_relations, [("relation", "Nearest neighbour is"), ("n_models", "Models"),
                                                       ("share", "Share")], "t-nearest-relations",
                              placeholder="filter relations...")
        cols = [("model_id", "Model"), ("rank", "Rank"), ("neighbor_id", "Neighbour"), ("distance", "Distance"),
                ("similarity", "Similarity"), ("relation", "Relation"), ("model_family", "Family"),
                ("neighbor_family", "Neighbour family"), ("model_arch", "Architecture"),
                ("neighbor_arch", "Neighbour architecture")]
        nb = page.table_html(data.neighbors, cols, "t-neighbors", placeholder="filter rows (model, family, arch)...")
        cap = (f'<p class="note">showing the first {len(data.neighbors):,} of {data.n_neighbors:,} rows '
               f"(models in id order; the filter searches these rows only)</p>"
               if len(data.neighbors) < data.n_neighbors else "")
        out.append(page.Section("neighbors", rel + cap + nb, (
            "Each model's closest configs; the first table says how often the very nearest one is the model's "
            "parent, child, a sibling, another model of its family, or from another family."), title))
    title = "Architecture duplicates"
    miss = _missing(data, "duplicates", "duplicates", title)
    if miss:
        out.append(miss)
    else:
        rows = []
        for r in data.duplicates:
            ids = list(r.get("model_ids") or [])
            rows.append({**r, "model_ids": ", ".join(ids[:8]) + (f" … (+{len(ids) - 8})" if len(ids) > 8 else "")})
        cols = [("match_kind", "Match"), ("n_models", "Models"), ("n_families", "Families"), ("archs", "Architectures"),
                ("model_ids", "Model ids"), ("group_key", "Key")]
        cap = (f'<p class="note">showing the {len(rows):,} largest of {data.n_duplicates:,} groups</p>'
               if len(rows) < data.n_duplicates else "")
        out.append(page.Section("duplicates", cap + page.table_html(
            rows, cols, "t-duplicates", placeholder="filter rows (model, architecture)..."),
            "Groups of models sharing an identical config (same config hash) or identical architecture features; "
            "groups spanning several families are reused architectures.", title))
    title = "Validation issues"
    miss = _missing(data, "validation", "validation", title)
    out.append(miss or page.Section("validation", page.table_html(
        [{**r, "example_raw_value": _short(page.fmt(r.get("example_raw_value")), 80),
          "example_message": _short(page.fmt(r.get("example_message")), 160)} for r in data.validation],
        [("source", "Source"), ("field", "Field"), ("n_issues", "Issues"), ("n_models", "Models"),
                          ("example_model_id", "Example model"), ("example_raw_value", "Example value"),
                          ("example_message", "Why rejected")], "t-validation",
        placeholder="filter rows (source, field)..."),
        "Config values that failed validation and were left out (set to missing), per source and field, "
        "with one example each.", title))
    return out


def _phylogeny_section(data: ConfigData) -> page.Section:
    title = "Phylogeny from configs"
    miss = _missing(data, "phylogeny", "phylogeny", title)
    if miss:
        return miss
    overall = _summary(data, "overall")
    zero = overall[0]["share_zero_drift"] if overall and overall[0]["share_zero_drift"] is not None else (
        float(np.mean(data.drift["gower_standard"] == 0)) if data.drift is not None and len(data.drift["gower_standard"]) else None)
    zero_text = f" Here {zero:.0%} of parent → child edges have identical config features." if zero is not None else ""
    honest = ("Configs describe architecture, not weights: a fine-tune usually ships its parent's config unchanged, "
              "so configs often cannot tell a fine-tune from its parent or its siblings (identical configs), and "
              "unrelated models built on a popular architecture look alike too." + zero_text +
              " Config similarity places a model in its architecture family; weight or behaviour fingerprints "
              "are needed to tell relatives apart.")
    first = {"adjusted_rand_index": 0, "neighbour_recovery": 1}
    ordered = sorted(data.phylogeny, key=lambda r: (first.get(r["statistic"], 2), str(r["population"]),
                                                    str(r["statistic"])))
    rows = [{**r, "value": _stat_value(r["value"]), "statistic": str(r["statistic"]).replace("_", " ")}
            for r in ordered]
    body = page.table_html(rows, [("population", "Population"), ("statistic", "Statistic"), ("value", "Value"),
                                  ("detail", "Detail")], "t-phylogeny", placeholder="filter statistics...")
    return page.Section("phylogeny", f'<p class="legend"><b>{html.escape(honest)}</b></p>' + body, (
        "Adjusted Rand index: agreement of average-linkage config clusters with lineage families (1 = perfect, "
        "0 = chance). Neighbour recovery: share of lineage edges whose child's nearest config is its parent or "
        "a sibling."), title)


_drawn = page.drawn


def config_dashboard_html(data: ConfigData) -> str:
    """The config dashboard as one self-contained page (plotly inlined once, no network)."""
    sections = [*_drawn(_drift_sections, data, "drift", "Drift"),
                *_drawn(_mutation_sections, data, "fields", "Field and trait mutation"),
                *_drawn(_embedding_sections, data, "embedding", "Config embedding"),
                *_drawn(_graph_section, data, "graph", "Similarity graph"),
                *_drawn(_table_sections, data, "neighbors", "Tables"),
                *_drawn(_phylogeny_section, data, "phylogeny", "Phylogeny from configs")]
    e = html.escape
    facts = [f"metric <b>{e(data.metric)}</b>"]
    if data.n_configs is not None:
        facts.append(f"{data.n_configs:,} configs")
    if "drift" not in data.missing:
        scored = 0 if data.drift is None else len(data.drift["gower_standard"])
        facts.append(f"{data.n_edges:,} lineage edges ({scored:,} with both configs)")
    missing = sorted({m.split(": ", 1)[1].split(" is not")[0] for m in data.missing.values() if m.startswith("not built")})
    note = (f"<div>not built yet: {e(', '.join(missing))}</div>" if missing else "")
    header = f"<h1>Fingerprint Lake: config dashboard</h1><div>{', '.join(facts)}</div>{note}"
    nav_ids = ["drift", "drift-groups", "drift-cdf", "fields", "traits", "embedding", "graph", "neighbors",
               "duplicates", "validation", "phylogeny"]
    present = {s.id for s in sections}
    nav = [(i, i.replace("-", " ")) for i in nav_ids if i in present]
    return page.page_html(f"Fingerprint Lake: configs ({data.metric})", header, sections, nav)


def render_config_dashboard(con, out_dir: str | Path, *, metric: str = "gower", top_families: int = 10) -> dict[str, str]:
    """Read the config marts from an open warehouse connection and write ``config_dashboard.html``.

    Returns name -> path; ``"dashboard"`` is the self-contained offline page. Marts
    that are not built yet are named on the page instead of failing the render.
    """
    data = load_config_data(con, metric=metric, top_families=top_families)
    path = page.write_text(Path(out_dir) / "config_dashboard.html", config_dashboard_html(data))
    return {"dashboard": path}

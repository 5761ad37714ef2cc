"""The provenance dashboard: recorded vs inferred lineage as a tree, recovery quality per relation,
the inferred edges, the direction signals, and the calibrated verdict's quality.

:func:`load_provenance_data` reads the lineage marts of an open warehouse connection into plain rows
(a mart that is not built yet is recorded, not fatal); :func:`provenance_dashboard_html` turns them
into one offline page over :mod:`fingerprinting.reports.page`; :func:`render_provenance_dashboard`
does both and writes the file.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from fingerprinting.reports import page

MAX_TREE_NODES = 600
MAX_TABLE_ROWS = 2000
LABELLED_NODES = 120  # above this, node names show on hover only

# The marts (and staging views) this page reads, with the columns it uses.
MARTS: dict[str, tuple[str, ...]] = {
    "inferred_edges": ("parent_id", "child_id", "parent_name", "child_name", "parent_family", "child_family",
                       "status", "relation", "is_inferred", "score", "direction_confidence", "is_merge_parent",
                       "evidence", "source", "threshold", "run_id"),
    "lineage_recovery_quality": ("relation", "n_recorded", "n_inferred", "n_spurious", "tp_directed",
                                 "tp_undirected", "precision_directed", "recall_directed", "precision_undirected",
                                 "recall_undirected", "source", "threshold", "run_id"),
    "verdict_quality": ("derivation_type", "roc_auc", "tpr_at_target_fpr", "precision_at_threshold",
                        "recall_at_threshold", "n_positive_pairs", "n_negative_pairs"),
    "stg_model_weight_stats": ("model_id", "n_params", "zero_fraction", "distinct_ratio", "kurtosis", "quant_type"),
}

STATUS = {  # edge status -> (colour, line dash, legend label)
    "correct": ("#2ca02c", "solid", "correct (recorded parent → child)"),
    "reversed": ("#ff7f0e", "solid", "wrong direction (recorded child → parent)"),
    "missed": ("#9a9a9a", "dot", "missed (recorded, not inferred)"),
    "spurious": ("#d62728", "dash", "spurious (inferred, not recorded)"),
}
PALETTE = ["#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#7b4173",
           "#3182bd", "#6b6ecf", "#8c6d31", "#843c39", "#5254a3", "#b5cf6b"]


@dataclass
class ProvenanceData:
    """What the page shows; a field stays empty when its mart is missing (see ``missing``)."""

    missing: dict[str, str] = field(default_factory=dict)  # part -> why it is not shown
    edges: list[dict] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)
    verdict: list[dict] = field(default_factory=list)
    signals: list[dict] = field(default_factory=list)
    models: dict[str, dict] = field(default_factory=dict)  # model_id -> display_name, family (from the edges)


# ---------------------------------------------------------------- reading
def _rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [{c: float(v) if isinstance(v, Decimal) else v for c, v in zip(cols, r, strict=True)}
            for r in cur.fetchall()]


def load_provenance_data(con) -> ProvenanceData:
    """Read the lineage marts (and the verdict's quality mart) from an open DuckDB warehouse connection."""
    import duckdb

    present = {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main'").fetchall()}
    d = ProvenanceData()

    def load(part: str, mart: str, fn: Callable[[], None]) -> None:
        if mart not in present:
            d.missing[part] = f"not built: {mart} is not in the warehouse yet (run dbt build)"
            return
        try:
            fn()
        except duckdb.Error as e:  # e.g. a mart whose columns changed: say so on the page, keep the rest
            d.missing[part] = f"could not be read: {type(e).__name__}: {str(e).splitlines()[0][:300]}"

    cols = ", ".join

    def edges():
        d.edges = _rows(con, f"select {cols(MARTS['inferred_edges'])} from inferred_edges "
                             "order by child_family, child_id, parent_id")
        for e in d.edges:
            for side in ("parent", "child"):
                d.models.setdefault(e[f"{side}_id"], {"display_name": e[f"{side}_name"],
                                                      "family": e[f"{side}_family"]})

    def quality():
        d.quality = _rows(con, f"select {cols(MARTS['lineage_recovery_quality'])} from lineage_recovery_quality "
                               "order by relation = 'all' desc, relation")

    def verdict():
        d.verdict = _rows(con, f"select {cols(MARTS['verdict_quality'])} from verdict_quality "
                               "order by derivation_type")

    def signals():
        d.signals = _rows(con, f"select {cols(MARTS['stg_model_weight_stats'])} from stg_model_weight_stats "
                               f"order by model_id limit {MAX_TABLE_ROWS}")

    load("tree", "inferred_edges", edges)
    load("quality", "lineage_recovery_quality", quality)
    load("verdict", "verdict_quality", verdict)
    load("signals", "stg_model_weight_stats", signals)
    return d


# ---------------------------------------------------------------- layout
def tree_layout(nodes: list[str], parent_of: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Tidy positions for a forest: leaves on consecutive x, a parent above the mean of its children,
    y = -depth. ``parent_of`` maps a node to its (one) layout parent; cycles are cut."""
    known = set(nodes)
    children: dict[str, list[str]] = {n: [] for n in nodes}
    roots = []
    for n in nodes:
        p = parent_of.get(n)
        if p in known and p != n:
            children[p].append(n)
        else:
            roots.append(n)
    pos: dict[str, tuple[float, float]] = {}
    next_x = 0.0
    placed: set[str] = set()

    def place(root: str) -> None:
        nonlocal next_x
        stack = [(root, 0, False)]
        while stack:
            n, depth, done = stack.pop()
            if done:
                xs = [pos[c][0] for c in children[n] if c in pos]
                if xs:
                    pos[n] = (sum(xs) / len(xs), -depth)
                else:
                    pos[n] = (next_x, -depth)
                    next_x += 1.0
                continue
            if n in placed:
                continue
            placed.add(n)
            stack.append((n, depth, True))
            for c in sorted(children[n], reverse=True):
                if c not in placed:
                    stack.append((c, depth + 1, False))

    for r in roots:
        place(r)
        next_x += 0.6  # a gap between trees
    for n in nodes:  # nodes only on a cycle
        if n not in pos:
            place(n)
    return pos


def _layout_parents(edges: list[dict]) -> dict[str, str]:
    """Each child's recorded parent (first by id); spurious edges do not shape the layout."""
    out: dict[str, str] = {}
    for e in edges:
        if e["status"] == "spurious":
            continue
        parent, child = ((e["child_id"], e["parent_id"]) if e["status"] == "reversed"
                         else (e["parent_id"], e["child_id"]))
        if child not in out or parent < out[child]:
            out[child] = parent
    return out


def _capped(edges: list[dict], limit: int) -> tuple[list[dict], int]:
    """The edges of whole connected groups, largest first, up to ``limit`` nodes; and the node total."""
    adj: dict[str, set[str]] = {}
    for e in edges:
        adj.setdefault(e["parent_id"], set()).add(e["child_id"])
        adj.setdefault(e["child_id"], set()).add(e["parent_id"])
    seen, groups = set(), []
    for n in sorted(adj):
        if n in seen:
            continue
        comp, stack = [], [n]
        seen.add(n)
        while stack:
            x = stack.pop()
            comp.append(x)
            for y in adj[x] - seen:
                seen.add(y)
                stack.append(y)
        groups.append(comp)
    keep: set[str] = set()
    for comp in sorted(groups, key=lambda c: (-len(c), min(c))):
        if keep and len(keep) + len(comp) > limit:
            continue
        keep |= set(comp)
    return [e for e in edges if e["parent_id"] in keep], len(adj)


# ---------------------------------------------------------------- figures
def _name(data: ProvenanceData, m: str) -> str:
    return str((data.models.get(m) or {}).get("display_name") or m)


def _family(data: ProvenanceData, m: str) -> str:
    return str((data.models.get(m) or {}).get("family") or "unknown")


def lineage_tree_figure(data: ProvenanceData, edges: list[dict] | None = None):
    """Recorded vs inferred lineage: models laid out on their recorded trees, each edge coloured by
    whether the run inferred it in the recorded direction, reversed, missed it, or invented it."""
    import plotly.graph_objects as go

    edges = data.edges if edges is None else edges
    nodes = sorted({e["parent_id"] for e in edges} | {e["child_id"] for e in edges})
    pos = tree_layout(nodes, _layout_parents(edges))
    fig = go.Figure()
    for status, (colour, dash, label) in STATUS.items():
        xs, ys, sizes, texts = [], [], [], []
        for e in edges:
            if e["status"] != status:
                continue
            (px, py), (cx, cy) = pos[e["parent_id"]], pos[e["child_id"]]
            ax, ay = px + 0.8 * (cx - px), py + 0.8 * (cy - py)
            conf = e.get("direction_confidence")
            info = (f"{html.escape(_name(data, e['parent_id']))} → {html.escape(_name(data, e['child_id']))}"
                    f"<br>{label}" + (f"<br>relation: {e['relation']}" if e.get("relation") else "")
                    + (f"<br>score {e['score']:.5f}" if e.get("score") is not None else "")
                    + (f"<br>direction confidence {conf:.2f}" if conf is not None else "")
                    + ("<br>merge parent" if e.get("is_merge_parent") else "")
                    + (f"<br>{html.escape(e['evidence'])}" if e.get("evidence") else ""))
            xs += [px, ax, cx, None]
            ys += [py, ay, cy, None]
            sizes += [0, 13, 0, 0]
            texts += [info, info, info, ""]
        n = len(xs) // 4
        if not n:
            continue
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=f"{label} ({n})", legendgroup=status,
            line={"color": colour, "dash": dash, "width": 2},
            marker={"symbol": "arrow", "angleref": "previous", "size": sizes, "color": colour},
            text=texts, hovertemplate="%{text}<extra></extra>"))
    # neighbours on one level take alternate label lines, so long names overlap less
    level_rank: dict[str, int] = {}
    for y in {p[1] for p in pos.values()}:
        row = sorted((m for m in nodes if pos[m][1] == y), key=lambda m: pos[m][0])
        level_rank.update({m: k for k, m in enumerate(row)})
    fams = [_family(data, m) for m in nodes]
    order = sorted(set(fams), key=lambda f: (-fams.count(f), f))
    for k, fam in enumerate(order):
        members = [m for m, f in zip(nodes, fams, strict=True) if f == fam]
        colour = PALETTE[k % len(PALETTE)] if k < len(PALETTE) else "#777777"
        fig.add_trace(go.Scatter(
            x=[pos[m][0] for m in members], y=[pos[m][1] for m in members],
            mode="markers+text" if len(nodes) <= LABELLED_NODES else "markers",
            text=[("<br>" if level_rank[m] % 2 else "") + html.escape(_name(data, m)) for m in members],
            textposition="bottom center", textfont={"size": 10},
            marker={"size": 12, "color": colour, "line": {"color": "#ffffff", "width": 1}},
            name=f"family {fam}", legendgroup="families",
            customdata=[[m, _name(data, m)] for m in members],
            hovertemplate="%{customdata[1]}<br>id %{customdata[0]}<extra>" + html.escape(fam) + "</extra>"))
    depth = max([-y for _, y in pos.values()] or [0])
    fig.update_layout(title="Recorded vs inferred lineage", height=max(460, 170 * (depth + 1) + 160),
                      xaxis={"visible": False}, yaxis={"visible": False, "range": [-depth - 0.6, 0.5]},
                      legend={"orientation": "h", "y": -0.02, "yanchor": "top"}, margin={"t": 60, "l": 20, "r": 20},
                      plot_bgcolor="#ffffff", hovermode="closest")
    return fig


def quality_figure(rows: list[dict]):
    """Precision and recall per relation, directed and ignoring direction."""
    import plotly.graph_objects as go

    rel = [r["relation"] for r in rows]
    fig = go.Figure()
    for key, label, colour in (("precision_directed", "precision (directed)", "#1f77b4"),
                               ("recall_directed", "recall (directed)", "#ff7f0e"),
                               ("precision_undirected", "precision (either direction)", "#aec7e8"),
                               ("recall_undirected", "recall (either direction)", "#ffbb78")):
        fig.add_trace(go.Bar(x=rel, y=[r[key] for r in rows], name=label, marker={"color": colour},
                             hovertemplate="%{x}: %{y:.3f}<extra>" + label + "</extra>"))
    fig.update_layout(title="Lineage recovery per relation", barmode="group", height=400,
                      yaxis={"range": [0, 1.05], "title": "share"}, margin={"t": 60})
    return fig


def verdict_figure(rows: list[dict]):
    """The verdict's ROC AUC and TPR at the target FPR per derivation type."""
    import plotly.graph_objects as go

    x = [r["derivation_type"] for r in rows]
    fig = go.Figure()
    for key, label, colour in (("roc_auc", "ROC AUC", "#1f77b4"), ("tpr_at_target_fpr", "TPR at target FPR", "#2ca02c"),
                               ("precision_at_threshold", "precision at threshold", "#9467bd"),
                               ("recall_at_threshold", "recall at threshold", "#ff7f0e")):
        fig.add_trace(go.Bar(x=x, y=[r.get(key) for r in rows], name=label, marker={"color": colour},
                             hovertemplate="%{x}: %{y:.3f}<extra>" + label + "</extra>"))
    fig.update_layout(title="Verdict quality per derivation type", barmode="group", height=400,
                      yaxis={"range": [0, 1.05]}, margin={"t": 60})
    return fig


# ---------------------------------------------------------------- sections
def _missing(data: ProvenanceData, part: str, sid: str, title: str) -> page.Section | None:
    why = data.missing.get(part)
    return page.missing_section(sid, title, f"{title}: {why}.") if why else None


def _tree_section(data: ProvenanceData) -> page.Section:
    title = "Lineage tree"
    miss = _missing(data, "tree", "tree", title)
    if miss:
        return miss
    if not data.edges:
        return page.missing_section("tree", title, f"{title}: no inferred or recorded edges among the scored models.")
    edges, total = _capped(data.edges, MAX_TREE_NODES)
    note = (f'<p class="note">showing the largest lineage groups: {len({e["parent_id"] for e in edges} | {e["child_id"] for e in edges}):,} '
            f"of {total:,} models</p>" if len(edges) < len(data.edges) else "")
    return page.Section("tree", note + page.figure_div(lineage_tree_figure(data, edges), "tree"), (
        "Models placed on their recorded lineage trees (roots at the top). Green: an inferred edge in the recorded "
        "direction; orange: inferred but pointing the wrong way; grey dotted: recorded but not inferred; red dashed: "
        "inferred but not recorded. Arrows point from parent to child; hover an edge for its score, direction "
        "confidence and the evidence behind its direction."), title)


def _quality_sections(data: ProvenanceData) -> list[page.Section]:
    title = "Recovery quality"
    miss = _missing(data, "quality", "quality", title)
    if miss:
        return [miss]
    if not data.quality:
        return [page.missing_section("quality", title, f"{title}: no recorded or inferred edges yet.")]
    cols = [("relation", "Relation"), ("n_recorded", "Recorded"), ("n_inferred", "Inferred"),
            ("n_spurious", "Spurious"), ("tp_directed", "Correct"), ("tp_undirected", "Either direction"),
            ("precision_directed", "Precision"), ("recall_directed", "Recall"),
            ("precision_undirected", "Precision (undirected)"), ("recall_undirected", "Recall (undirected)")]
    table = page.table_html(data.quality, cols, "t-quality", placeholder="filter relations...", digits=3)
    return [page.Section("quality", page.figure_div(quality_figure(data.quality), "quality") + table, (
        "Per recorded relation: an inferred edge counts for the relation of the recorded edge it matches (either "
        "direction); 'all' also counts spurious edges against precision. Directed: the inferred parent is the "
        "recorded parent."), title)]


def _edges_section(data: ProvenanceData) -> page.Section:
    title = "Edges"
    miss = _missing(data, "tree", "edges", title)
    if miss:
        return miss
    rows = [{**e, "parent": _name(data, e["parent_id"]), "child": _name(data, e["child_id"]),
             "merge": "yes" if e.get("is_merge_parent") else ""} for e in data.edges[:MAX_TABLE_ROWS]]
    cols = [("parent", "Parent"), ("child", "Child"), ("status", "Status"), ("relation", "Recorded relation"),
            ("score", "Score"), ("direction_confidence", "Direction confidence"), ("merge", "Merge parent"),
            ("evidence", "Direction evidence (log-odds)"), ("child_family", "Child family")]
    cap = (f'<p class="note">showing the first {len(rows):,} of {len(data.edges):,} edges</p>'
           if len(rows) < len(data.edges) else "")
    return page.Section("edges", cap + page.table_html(rows, cols, "t-edges",
                                                       placeholder="filter rows (model, status, relation)..."), (
        "Every inferred edge and every missed recorded edge. Evidence: the direction terms in log-odds "
        "(params: the larger model is the parent; zeros: the one with fewer exact zeros; quant: the one stored in "
        "more bits; kurtosis: the one farther from Gaussian; structure: the one closer to all models of its group; "
        "merge: the child sits between its two parents)."), title)


def _signals_section(data: ProvenanceData) -> page.Section:
    title = "Direction signals"
    miss = _missing(data, "signals", "signals", title)
    if miss:
        return miss
    rows = [{**r, "name": _name(data, r["model_id"])} for r in data.signals]
    cols = [("model_id", "Model"), ("name", "Name"), ("n_params", "Parameters"), ("zero_fraction", "Zero fraction"),
            ("distinct_ratio", "Distinct ratio"), ("kurtosis", "Kurtosis"), ("quant_type", "Storage")]
    return page.Section("signals", page.table_html(rows, cols, "t-signals", placeholder="filter models..."), (
        "Read from each checkpoint without running model code (safetensors, GGUF): parameters, share of exact "
        "zeros and of distinct values per row in the weight matrices, weight kurtosis, and the storage type "
        "(grid-int8 / grid-int4: float rows holding at most 256 / 16 evenly spaced values)."), title)


def _verdict_section(data: ProvenanceData) -> page.Section:
    title = "Verdict quality"
    miss = _missing(data, "verdict", "verdict", title)
    if miss:
        return miss
    if not data.verdict:
        return page.missing_section("verdict", title, f"{title}: the verdict_quality mart is empty.")
    cols = [("derivation_type", "Derivation"), ("roc_auc", "ROC AUC"), ("tpr_at_target_fpr", "TPR at target FPR"),
            ("precision_at_threshold", "Precision at threshold"), ("recall_at_threshold", "Recall at threshold"),
            ("n_positive_pairs", "Positive pairs"), ("n_negative_pairs", "Negative pairs")]
    return page.Section("verdict", page.figure_div(verdict_figure(data.verdict), "verdict")
                        + page.table_html(data.verdict, cols, "t-verdict", placeholder="filter derivations...", digits=3), (
        "How well the calibrated verdict separates derived pairs (per derivation type) from unrelated ones."), title)


_drawn = page.drawn


def provenance_dashboard_html(data: ProvenanceData) -> str:
    """The provenance dashboard as one self-contained page (plotly inlined once, no network)."""
    sections = [*_drawn(_tree_section, data, "tree", "Lineage tree"),
                *_drawn(_quality_sections, data, "quality", "Recovery quality"),
                *_drawn(_edges_section, data, "edges", "Edges"),
                *_drawn(_signals_section, data, "signals", "Direction signals"),
                *_drawn(_verdict_section, data, "verdict", "Verdict quality")]
    e = html.escape
    facts = []
    run = next((x for x in data.edges if x.get("run_id")), None)
    if run:
        facts.append(f"score <b>{e(str(run['source']))}</b>, threshold {run['threshold']:.5g}, run {e(str(run['run_id']))}")
    overall = next((q for q in data.quality if q["relation"] == "all"), None)
    if overall:
        def pct(v):
            return "–" if v is None else f"{v:.0%}"
        facts.append(f"{overall['n_inferred']:,} inferred / {overall['n_recorded']:,} recorded edges: precision "
                     f"{pct(overall['precision_directed'])}, recall {pct(overall['recall_directed'])} "
                     f"(ignoring direction {pct(overall['precision_undirected'])} / {pct(overall['recall_undirected'])})")
    missing = sorted({m.split(": ", 1)[1].split(" is not")[0] for m in data.missing.values() if m.startswith("not built")})
    note = f"<div>not built yet: {e(', '.join(missing))}</div>" if missing else ""
    header = f"<h1>Fingerprint Lake: provenance dashboard</h1><div>{'; '.join(facts)}</div>{note}"
    nav = [(s.id, s.id) for s in sections]
    return page.page_html("Fingerprint Lake: provenance", header, sections, nav)


def render_provenance_dashboard(con, out_dir: str | Path) -> dict[str, str]:
    """Read the lineage marts from an open warehouse connection and write ``provenance_dashboard.html``.

    Returns name -> path; ``"dashboard"`` is the self-contained offline page. Marts that are
    not built yet are named on the page instead of failing the render.
    """
    data = load_provenance_data(con)
    path = page.write_text(Path(out_dir) / "provenance_dashboard.html", provenance_dashboard_html(data))
    return {"dashboard": path}

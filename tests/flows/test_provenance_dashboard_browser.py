"""Open the provenance dashboard (hand-made marts) in headless Chromium: the lineage tree, the quality and
verdict charts draw, edges carry the right colours and arrows, the tables filter, no JS error; a warehouse
without the marts renders a page that says so."""

import os
import shutil

import duckdb
import pytest

from fingerprinting.reports.provenance import render_provenance_dashboard, tree_layout
from tests.browser import needs_chromium, open_page

# The recorded lineage: r -> a (finetune), r -> b (quantized), a -> c (pruned), r -> d (distilled); x is a
# second tree's root with x -> y (finetune). The run inferred r -> a (correct), b -> r (reversed),
# a -> c (correct), x -> y (correct), y -> d (spurious), and missed r -> d.
EDGES = [
    ("r", "a", "correct", "finetune", True, 0.95, 0.8, False, "kurtosis=+0.50"),
    ("b", "r", "reversed", "quantized", True, 0.99, 0.4, False, "structure=-0.40"),
    ("a", "c", "correct", "pruned", True, 0.90, 0.95, False, "zeros=+3.00"),
    ("x", "y", "correct", "finetune", True, 0.93, 0.7, False, "structure=+0.85"),
    ("y", "d", "spurious", None, True, 0.81, 0.9, False, "params=+3.00"),
    ("r", "d", "missed", "distilled", False, None, None, None, None),
]
FAMILY = {"r": "F", "a": "F", "b": "F", "c": "F", "d": "F", "x": "G", "y": "G"}


def make_marts(con) -> None:
    con.execute("create table inferred_edges (parent_id varchar, child_id varchar, parent_name varchar, "
                "child_name varchar, parent_family varchar, child_family varchar, status varchar, relation varchar, "
                "is_inferred boolean, score double, direction_confidence double, is_merge_parent boolean, "
                "evidence varchar, source varchar, threshold double, run_id varchar)")
    for p, c, status, rel, inferred, score, conf, merge, ev in EDGES:
        con.execute("insert into inferred_edges values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'weight_spectrum:js_divergence', 0.8, 'run1')",
                    [p, c, f"model-{p}", f"model-{c}", FAMILY[p], FAMILY[c], status, rel, inferred, score, conf, merge, ev])
    con.execute("create table lineage_recovery_quality as select * from (values "
                "('all', 5, 5, 1, 3, 4, 0.6, 0.6, 0.8, 0.8, 'weight_spectrum:js_divergence', 0.8, 'run1'), "
                "('finetune', 2, 2, 0, 2, 2, 1.0, 1.0, 1.0, 1.0, 'weight_spectrum:js_divergence', 0.8, 'run1'), "
                "('quantized', 1, 1, 0, 0, 1, 0.0, 0.0, 1.0, 1.0, 'weight_spectrum:js_divergence', 0.8, 'run1'), "
                "('pruned', 1, 1, 0, 1, 1, 1.0, 1.0, 1.0, 1.0, 'weight_spectrum:js_divergence', 0.8, 'run1'), "
                "('distilled', 1, 0, 0, 0, 0, null, 0.0, null, 0.0, 'weight_spectrum:js_divergence', 0.8, 'run1')) "
                "t(relation, n_recorded, n_inferred, n_spurious, tp_directed, tp_undirected, precision_directed, "
                "recall_directed, precision_undirected, recall_undirected, source, threshold, run_id)")
    con.execute("create table verdict_quality as select * from (values "
                "('finetune', 0.97, 0.8, 0.9, 0.85, 20, 300), ('quantized', 1.0, 1.0, 1.0, 1.0, 5, 300)) "
                "t(derivation_type, roc_auc, tpr_at_target_fpr, precision_at_threshold, recall_at_threshold, "
                "n_positive_pairs, n_negative_pairs)")
    con.execute("create table stg_model_weight_stats as select * from (values "
                "('r', 1000, 0.0, 1.0, 4.1, 'F32'), ('b', 1000, 0.008, 0.8, 4.1, 'grid-int8')) "
                "t(model_id, n_params, zero_fraction, distinct_ratio, kurtosis, quant_type)")


def test_tree_layout_by_hand():
    # r has children a, b; a has child c; s is a second, single-node tree. Leaves take consecutive x in
    # depth-first order (c 0, b 1), a parent sits above the mean of its children (a 0, r 0.5), trees are
    # 0.6 apart (s at 2 + 0.6), y = -depth.
    pos = tree_layout(["c", "a", "b", "r", "s"], {"a": "r", "b": "r", "c": "a"})
    assert pos == {"c": (0.0, -2), "a": (0.0, -1), "b": (1.0, -1), "r": (0.5, 0), "s": (2.6, 0)}
    # a cycle is cut: every node still gets a position
    assert set(tree_layout(["p", "q"], {"p": "q", "q": "p"})) == {"p", "q"}


@pytest.mark.slow
@needs_chromium
def test_provenance_dashboard_renders_without_js_errors(tmp_path):
    con = duckdb.connect()
    make_marts(con)
    dashboard = render_provenance_dashboard(con, tmp_path / "out")["dashboard"]

    with open_page(f"file://{dashboard}", tmp_path / "profile") as page:
        assert page.wait_for_plots(3) >= 3, "plots did not render"
        for name in ("tree", "quality", "verdict"):
            assert page.eval(f"document.querySelectorAll('#fig-{name} .main-svg').length") >= 1, name
        traces = page.eval("document.getElementById('fig-tree').data.map(t => [t.name, "
                           "(typeof t.marker.size === 'object' ? Array.from(t.marker.size) : []).filter(s => s > 0).length, "
                           "t.x.length])")
        by_name = {name.split(" (")[0]: (arrows, n) for name, arrows, n in traces}
        # one arrow per edge of each status (counted from EDGES): correct 3, reversed 1, missed 1, spurious 1
        assert by_name["correct"][0] == 3 and by_name["wrong direction"][0] == 1
        assert by_name["missed"][0] == 1 and by_name["spurious"][0] == 1
        # nodes: family F has r, a, b, c, d; family G has x, y
        assert by_name["family F"][1] == 5 and by_name["family G"][1] == 2
        # the recorded tree shapes the layout: r is the root above a, b and d; c two levels down
        ys = page.eval("Object.fromEntries(document.getElementById('fig-tree').data.filter(t => t.customdata)"
                       ".flatMap(t => t.customdata.map((m, i) => [m[0], t.y[i]])))")
        assert ys["r"] == 0 and ys["a"] == ys["b"] == ys["d"] == -1 and ys["c"] == -2 and ys["y"] == -1
        assert page.eval("document.querySelectorAll('#fig-tree .legendtext').length") == 6  # 4 statuses, 2 families
        page.eval("var i=document.querySelector('input[data-table=t-edges]'); i.value='spurious';"
                  "i.dispatchEvent(new Event('input'))")
        visible = page.eval("Array.from(document.getElementById('t-edges').tBodies[0].rows)"
                            ".filter(r => r.style.display !== 'none').length")
        assert visible == 1
        assert page.eval("document.getElementById('t-quality').tBodies[0].rows.length") == 5
        assert page.eval("document.getElementById('t-signals').tBodies[0].rows.length") == 2
        assert "precision 60%" in page.eval("document.querySelector('header').textContent")
        page.screenshot(tmp_path / "provenance_dashboard.png", full_page=True)
        page.drain()
        assert page.errors() == []
    assert (tmp_path / "provenance_dashboard.png").stat().st_size > 50_000
    keep = os.environ.get("FPLAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "provenance_dashboard.png", keep)


@pytest.mark.slow
@needs_chromium
def test_missing_marts_are_named_on_the_page(tmp_path):
    dashboard = render_provenance_dashboard(duckdb.connect(), tmp_path / "out")["dashboard"]
    with open_page(f"file://{dashboard}", tmp_path / "profile") as page:
        page.wait_for_plots(0)
        page.drain()
        text = page.eval("Array.from(document.querySelectorAll('p.missing')).map(p => p.textContent).join('|')")
        for mart in ("inferred_edges", "lineage_recovery_quality", "verdict_quality", "stg_model_weight_stats"):
            assert f"{mart} is not in the warehouse yet" in text, mart
        assert page.eval("document.querySelectorAll('.js-plotly-plot').length") == 0
        assert page.errors() == []

"""Open the config dashboard (hand-made marts) in headless Chromium; every plot draws, no JS error."""

import os
import shutil

import duckdb
import pytest

from tests.browser import needs_chromium, open_page

pytestmark = pytest.mark.slow
FIGURES = ["drift", "within-between", "drift-groups", "drift-cdf", "fields", "embedding", "graph"]


@needs_chromium
def test_config_dashboard_renders_without_js_errors(tmp_path):
    from fingerprinting.reports import render_config_dashboard
    from tests.fingerprinting.reports.test_configs_report import make_marts

    con = duckdb.connect()
    make_marts(con)
    dashboard = render_config_dashboard(con, tmp_path / "out")["dashboard"]

    with open_page(f"file://{dashboard}", tmp_path / "profile") as page:
        assert page.wait_for_plots(len(FIGURES)) >= len(FIGURES), "plots did not render"
        for name in FIGURES:
            assert page.eval(f"document.querySelectorAll('#fig-{name} .main-svg').length") >= 1, name
        # the drift histogram has its bars, the graph its nodes
        assert page.eval("document.querySelectorAll('#fig-drift .bars path').length") >= 3
        assert page.eval("document.querySelectorAll('#fig-graph .scatterlayer .point').length") == 3
        # the colour toggle switches the embedding to architecture groups
        assert page.eval("document.getElementById('fig-embedding').data.filter(t => t.visible === true)"
                         ".map(t => t.name).sort().join()") == "fam_a,fam_b"
        page.eval("document.querySelectorAll('#fig-embedding .updatemenu-button')[1]"
                  ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        page.drain()
        assert page.eval("document.getElementById('fig-embedding').data.filter(t => t.visible === true)"
                         ".map(t => t.name).sort().join()") == "gpt2,llama"
        # filter the neighbour table
        page.eval("var i=document.querySelector('input[data-table=t-neighbors]'); i.value='c4';"
                  "i.dispatchEvent(new Event('input'))")
        visible = page.eval("Array.from(document.getElementById('t-neighbors').tBodies[0].rows)"
                            ".filter(r => r.style.display !== 'none').length")
        assert visible == 1
        page.screenshot(tmp_path / "config_dashboard.png", full_page=True)
        page.drain()
        assert page.errors() == []
    assert (tmp_path / "config_dashboard.png").stat().st_size > 50_000
    keep = os.environ.get("FPLAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "config_dashboard.png", keep)

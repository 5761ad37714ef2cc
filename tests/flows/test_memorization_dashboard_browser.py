"""Open the memorization dashboard (hand-made marts) in headless Chromium; every plot draws, no JS error."""

import os
import shutil

import duckdb
import pytest

from tests.browser import needs_chromium, open_page

pytestmark = pytest.mark.slow
OVERVIEW = ["shares", "metrics", "planted"]
FIRST_BLOCK = ["hist-0", "boxes-0", "corr-0", "pred-0", "weights-0"]


def _visible(page, selector: str) -> bool:
    return page.eval(f"getComputedStyle(document.querySelector('{selector}')).display !== 'none'")


@needs_chromium
def test_memorization_dashboard_renders_without_js_errors(tmp_path):
    from fingerprinting.reports.memorization import render_memorization_dashboard
    from tests.fingerprinting.reports.test_memorization_report import EVIL, make_marts

    con = duckdb.connect()
    make_marts(con)
    dashboard = render_memorization_dashboard(con, tmp_path / "out")["dashboard"]

    with open_page(f"file://{dashboard}", tmp_path / "profile") as page:
        figures = OVERVIEW + FIRST_BLOCK + ["hist-1", "boxes-1"]
        assert page.wait_for_plots(len(figures)) >= len(figures), "plots did not render"
        for name in figures:
            assert page.eval(f"document.querySelectorAll('#fig-{name} .main-svg').length") >= 1, name
        # three stacked bar series of the shares, each with a bar per model x corpus
        assert page.eval("document.querySelectorAll('#fig-shares .bars path').length") >= 6
        # the first model x corpus is shown, the others hidden until chosen
        assert _visible(page, "#combo-0") and not _visible(page, "#combo-1")
        page.eval("var s=document.getElementById('combo-select'); s.value='1';"
                  "s.dispatchEvent(new Event('change'))")
        page.drain()
        assert _visible(page, "#combo-1") and not _visible(page, "#combo-0")
        # a plot drawn while hidden is resized to the page when shown
        assert page.eval("document.querySelector('#fig-hist-1 .main-svg').getBoundingClientRect().width") > 800
        page.eval("var s=document.getElementById('combo-select'); s.value='0';"
                  "s.dispatchEvent(new Event('change'))")
        page.drain()
        # the heatmap's xi button swaps Spearman (0.4321) for xi (0.05)
        assert page.eval("document.getElementById('fig-corr-0').data[0].z[0][0]") == 0.4321
        page.eval("document.querySelectorAll('#fig-corr-0 .updatemenu-button')[1]"
                  ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        page.drain()
        assert page.eval("document.getElementById('fig-corr-0').data[0].z[0][0]") == 0.05
        # sample text is shown as text, never run: no script element came from it
        assert page.eval("document.getElementById('t-examples-0').tBodies[0].rows[0].cells[6].textContent") == EVIL
        page.eval("var i=document.querySelector('input[data-table=t-examples-0]'); i.value='recollection';"
                  "i.dispatchEvent(new Event('input'))")
        visible = page.eval("Array.from(document.getElementById('t-examples-0').tBodies[0].rows)"
                            ".filter(r => r.style.display !== 'none').length")
        assert visible == 1
        page.screenshot(tmp_path / "memorization_dashboard.png", full_page=True)
        page.drain()
        assert page.errors() == []
    assert (tmp_path / "memorization_dashboard.png").stat().st_size > 50_000
    keep = os.environ.get("FPLAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "memorization_dashboard.png", keep)

"""Open the dashboard in headless Chromium (DevTools protocol), fail on any JS error."""

import os
import shutil

import pytest

from tests.browser import needs_chromium, open_page

pytestmark = pytest.mark.slow


@needs_chromium
def test_dashboard_renders_without_js_errors(prefect_harness, tmp_path):
    from flows.compute_similarity_metrics import main
    from tests.flows.test_reports import _files

    res, info = _files(tmp_path)
    out = tmp_path / "out"
    assert main(["--results-file", res, "--model-info", info, "--output-dir", str(out)]) == 0
    dashboard = out / "input_output_l1_dashboard.html"

    with open_page(dashboard.as_uri(), tmp_path / "profile") as page:
        assert page.wait_for_plots(4) >= 4, "plots did not render"
        assert page.eval("document.querySelectorAll('#fig-heatmap .heatmaplayer image').length") >= 1
        assert page.eval("document.querySelectorAll('table.stats').length") == 5
        assert page.eval("document.getElementById('t-models').tBodies[0].rows.length") == 4
        # the filter box hides rows that do not match
        page.eval("var i=document.querySelector('input[data-table=t-models]'); i.value='b-chat';"
                  "i.dispatchEvent(new Event('input'))")
        visible = page.eval("Array.from(document.getElementById('t-models').tBodies[0].rows)"
                            ".filter(r => r.style.display !== 'none').length")
        # b-chat itself, and b-base whose nearest neighbour is b-chat (0.7 against 0.2 / 0.3)
        assert visible == 2
        page.screenshot(tmp_path / "dashboard.png")
        page.drain()
        assert page.errors() == []
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    keep = os.environ.get("FPLAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "dashboard.png", keep)

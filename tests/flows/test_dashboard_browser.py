"""Open the dashboard in headless Chromium (DevTools protocol), fail on any JS error."""

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page:
    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expr):
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

    def errors(self):
        errs = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                errs.append(p["exceptionDetails"].get("text", "") + str(p["exceptionDetails"].get("exception", {}).get("description", "")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                errs.append(str(p.get("args")))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errs.append(p["entry"].get("text", ""))
        return errs


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_dashboard_renders_without_js_errors(prefect_harness, tmp_path):
    from websockets.sync.client import connect

    from flows.compute_similarity_metrics import main
    from tests.flows.test_reports import _files

    res, info = _files(tmp_path)
    out = tmp_path / "out"
    assert main(["--results-file", res, "--model-info", info, "--output-dir", str(out)]) == 0
    dashboard = out / "input_output_l1_dashboard.html"

    port = _free_port()
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                             f"--remote-debugging-port={port}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets = None
        for _ in range(100):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
                if any(t["type"] == "page" for t in targets):
                    break
            except OSError:
                time.sleep(0.2)
        page_target = next(t for t in targets if t["type"] == "page")
        with connect(page_target["webSocketDebuggerUrl"], max_size=2**26) as ws:
            page = Page(ws)
            for domain in ("Runtime", "Log", "Page"):
                page.call(f"{domain}.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)
            page.call("Page.navigate", url=dashboard.as_uri())
            rendered = 0
            for _ in range(150):
                rendered = page.eval("document.querySelectorAll('.js-plotly-plot .main-svg').length") or 0
                if rendered >= 4 and page.eval("document.readyState") == "complete":
                    break
                time.sleep(0.2)
            assert rendered >= 4, "plots did not render"
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
            shot = page.call("Page.captureScreenshot", format="png")
            (tmp_path / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
            time.sleep(0.5)
            page.eval("1")  # drain late events
            assert page.errors() == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    keep = os.environ.get("FPLAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "dashboard.png", keep)

"""Headless Chromium over the DevTools protocol, for the dashboard tests (no Selenium, no network)."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page:
    """One browser tab: DevTools calls, JS evaluation, and the error events seen so far."""

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

    def errors(self) -> list[str]:
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

    def wait_for_plots(self, at_least: int, timeout_s: float = 30) -> int:
        """Wait until ``at_least`` plotly plots have drawn and the document is loaded; returns the count."""
        rendered = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rendered = self.eval("document.querySelectorAll('.js-plotly-plot .main-svg').length") or 0
            if rendered >= at_least and self.eval("document.readyState") == "complete":
                break
            time.sleep(0.2)
        return rendered

    def screenshot(self, path: str | Path, full_page: bool = False) -> Path:
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            m = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": m["width"], "height": m["height"], "scale": 1}
        shot = self.call("Page.captureScreenshot", **params)
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return Path(path)

    def drain(self) -> None:
        """Give late errors a moment to arrive."""
        time.sleep(0.5)
        self.eval("1")


@contextlib.contextmanager
def open_page(url: str, profile_dir: str | Path, width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """Start headless Chromium, open ``url`` in its tab, yield the :class:`Page`; the browser stops after."""
    from websockets.sync.client import connect

    port = _free_port()
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={profile_dir}",
                             f"--remote-debugging-port={port}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets = []
        for _ in range(100):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
                if any(t["type"] == "page" for t in targets):
                    break
            except OSError:
                time.sleep(0.2)
        page_target = next(t for t in targets if t["type"] == "page")
        with connect(page_target["webSocketDebuggerUrl"], max_size=2**27) as ws:
            page = Page(ws)
            for domain in ("Runtime", "Log", "Page"):
                page.call(f"{domain}.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
            page.call("Page.navigate", url=url)
            yield page
    finally:
        proc.terminate()
        proc.wait(timeout=10)

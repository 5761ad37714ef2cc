"""`python -m flows.deployments` stops cleanly and quickly on SIGTERM / SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A throwaway Prefect server on a loopback port (flows.server's managed server under a temp dir)."""
    from flows import server

    home = tmp_path_factory.mktemp("prefect-server")
    old = os.environ.get(server.SERVER_DIR_ENV)
    os.environ[server.SERVER_DIR_ENV] = str(home)
    try:
        state = server.start_server(timeout=120)
        yield state["url"]
    finally:
        server.stop_server()
        if old is None:
            os.environ.pop(server.SERVER_DIR_ENV, None)
        else:
            os.environ[server.SERVER_DIR_ENV] = old


def _serve_and_signal(api_url: str, home: Path, sig: int) -> tuple[float, int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "PYTHONUNBUFFERED": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    proc = subprocess.Popen([sys.executable, "-m", "flows.deployments"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out: list[str] = []
    served = threading.Event()

    def pump():
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            out.append(line)
            if "being served" in line:
                served.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert served.wait(30), "never started serving:\n" + "".join(out)
        time.sleep(3)  # let the runner's loops start (signal handlers, polling)
        assert proc.poll() is None, "exited on its own:\n" + "".join(out)
        t0 = time.monotonic()
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("still running 10 s after the signal:\n" + "".join(out))
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    return elapsed, rc, "".join(out)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_deployments_stop_cleanly_on_signal(prefect_api, tmp_path, sig):
    elapsed, rc, output = _serve_and_signal(prefect_api, tmp_path / "prefect-home", sig)
    assert elapsed < 10
    assert rc == 0, output
    assert "Traceback" not in output, output
    assert "was never awaited" not in output, output
    assert "shutting down" in output.lower() or "stopped" in output.lower(), output

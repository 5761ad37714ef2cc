"""moto's S3 server with state that survives a restart (for tests and benchmarks, loopback only).

moto keeps objects in memory, so a restarted ``moto_server`` is empty. A real
S3 server keeps its data across a restart; to test that situation this script
serves moto with its request recorder on (``MOTO_ENABLE_RECORDING``, every
request appended to a JSON-lines file) and, when started again with the same
file, replays the recording into the fresh backend *before* it opens the port,
so no client ever sees a half-restored store.

    python tests/moto_persistent.py PORT RECORDING_FILE

Helpers :func:`start` / :func:`stop` run it as a subprocess.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def _replay(app, path: str) -> int:
    from werkzeug.test import Client

    client = Client(app)
    n = 0
    with open(path) as fh:
        for line in fh:
            if not line.strip():
                continue
            e = json.loads(line)
            body = e.get("body") or b""
            if e.get("body_encoded"):
                body = base64.b64decode(body)
            headers = {k: v for k, v in (e.get("headers") or {}).items()
                       if k.lower() not in ("content-length", "transfer-encoding")}
            url = e["url"].split("://", 1)[-1]
            host, _, rest = url.partition("/")
            client.open("/" + rest, method=e["method"], headers=headers, data=body,
                        base_url=f"http://{host}")
            n += 1
    return n


def serve(port: int, recording: str) -> None:
    os.environ["MOTO_ENABLE_RECORDING"] = "True"
    os.environ["MOTO_RECORDER_FILEPATH"] = recording
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    if Path(recording).exists():
        recorder.stop_recording()  # the replay itself is not recorded again
        _replay(app, recording)
        recorder.start_recording()
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    server.serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, recording: str, timeout: float = 60.0) -> subprocess.Popen:
    """Start (or restart) the server on ``port``; returns once it accepts connections."""
    proc = subprocess.Popen([sys.executable, __file__, str(port), recording], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def stop(proc: subprocess.Popen, hard: bool = True) -> None:
    """Stop the server (SIGKILL by default: a crash, not a clean shutdown)."""
    if proc.poll() is None:
        proc.kill() if hard else proc.terminate()
    proc.wait(timeout=10)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])

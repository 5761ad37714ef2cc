"""Prefect servers that never outlive their owner.

Two pieces:

* A **managed local server**: ``fplake server start|stop|status``. ``start``
  runs ``prefect server start`` detached (its own session) on a free loopback
  port with ``PREFECT_HOME`` under ``.cache/prefect-server`` (or
  ``$FPLAKE_SERVER_DIR``), writes ``server.json`` (pid, port, url) there and
  waits until ``/api/health`` answers. While it runs, every CLI run uses it
  (:func:`use_managed_server_if_running` sets ``PREFECT_API_URL``), so no run
  pays for, or leaves behind, a temporary server. ``stop`` ends its whole
  process group.

* **Temporary servers die with their parent.** With no ``PREFECT_API_URL``,
  Prefect 3 starts a temporary API server itself
  (``prefect.server.api.server.SubprocessASGIServer``: ``python -m uvicorn
  ... prefect.server.api.server:create_app`` via ``subprocess.Popen``, stopped
  by an ``atexit`` hook). A SIGKILLed parent never runs that hook, so the
  server (~200 MB) used to stay forever. Prefect has no setting for this, so
  instead of patching it :func:`ensure_ephemeral_server_dies_with_parent`
  marks the process environment with ``FPLAKE_OWNER_PID=<pid>`` (every child,
  the temporary server included, inherits ``os.environ``) and starts a small
  watchdog process. When the owner is gone, the watchdog sends SIGTERM (then
  SIGKILL) to every remaining process carrying that mark, and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fingerprinting.errors import FingerprintLakeError

OWNER_ENV = "FPLAKE_OWNER_PID"
SERVER_DIR_ENV = "FPLAKE_SERVER_DIR"
STATE_FILE = "server.json"


class ServerError(FingerprintLakeError, RuntimeError):
    """The managed Prefect server could not be started, stopped or found."""


# ------------------------------------------------------------------ managed server
def server_dir() -> Path:
    """Where the managed server keeps its PREFECT_HOME, database, log and state file."""
    return Path(os.environ.get(SERVER_DIR_ENV) or ".cache/prefect-server").expanduser().resolve()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _healthy(url: str, timeout: float = 1.0) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:  # noqa: S310 (loopback URL)
            return resp.status == 200
    except OSError:
        return False


def read_state() -> dict | None:
    """The managed server's state (pid, port, url) if its process is alive, else None."""
    path = server_dir() / STATE_FILE
    try:
        state = json.loads(path.read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if _alive(pid) else None


def start_server(port: int | None = None, timeout: float = 180.0) -> dict:
    """Start the managed server (or return the running one); waits until it is healthy."""
    state = read_state()
    if state and _healthy(state["url"]):
        return {**state, "already_running": True}
    home = server_dir()
    home.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", OWNER_ENV)}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
                "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false"})
    prefect = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect)] if prefect.exists() else [sys.executable, "-m", "prefect"]
    cmd += ["server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui", "--analytics-off"]
    log = open(home / "server.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=str(home))
    log.close()
    state = {"pid": proc.pid, "port": port, "url": url, "home": str(home), "started_at": time.time()}
    (home / STATE_FILE).write_text(json.dumps(state))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (home / STATE_FILE).unlink(missing_ok=True)
            raise ServerError(f"prefect server exited with code {proc.returncode}; see {home / 'server.log'}")
        if _healthy(url):
            return state
        time.sleep(0.3)
    stop_server()
    raise ServerError(f"prefect server not healthy after {timeout:.0f} s; see {home / 'server.log'}")


def stop_server(timeout: float = 15.0) -> dict | None:
    """Stop the managed server's whole process group; returns the state it had (None if none ran)."""
    path = server_dir() / STATE_FILE
    state = read_state()
    if state is None:
        path.unlink(missing_ok=True)
        return None
    pid = int(state["pid"])
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)  # started with start_new_session: its pgid is its pid
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if not _group_alive(pid):
            break
    path.unlink(missing_ok=True)
    return state


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _group_alive(pgid: int) -> bool:
    return any(_alive(p) for p in _pids_where(lambda p: _pgid(p) == pgid))


def _pgid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


def _pids_where(pred) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if pred(int(name)):
                    out.append(int(name))
            except OSError:
                continue
    return out


def use_managed_server_if_running() -> str | None:
    """Point Prefect at the managed server (``PREFECT_API_URL``) when one is running and healthy.

    Call it before ``prefect`` is imported (Prefect reads its settings at import).
    An explicit ``PREFECT_API_URL`` is left alone. Returns the URL used, or None.
    """
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    state = read_state()
    if state and _healthy(state["url"]):
        os.environ["PREFECT_API_URL"] = state["url"]
        return state["url"]
    return None


# ------------------------------------------------------------------ temporary servers
def _environ_has(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return marker in fh.read().split(b"\0")
    except OSError:
        return False


def marked_processes(owner_pid: int) -> list[int]:
    """Processes (other than the owner) whose environment carries ``FPLAKE_OWNER_PID=<owner_pid>``."""
    marker = f"{OWNER_ENV}={owner_pid}".encode()
    me = os.getpid()
    return [p for p in _pids_where(lambda p: p not in (owner_pid, me) and _environ_has(p, marker)) if _alive(p)]


def _watch(owner_pid: int, poll: float = 0.5, grace: float = 5.0) -> int:
    """Watchdog body: wait for the owner to go, then end every process it left behind."""
    try:  # the watchdog must not die of the terminal's Ctrl-C before it has cleaned up
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        pass
    while _alive(owner_pid) and os.getppid() == owner_pid:
        time.sleep(poll)
    left = marked_processes(owner_pid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in left):
        time.sleep(0.1)
    for pid in left:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return 0


_WATCHDOG: subprocess.Popen | None = None


def ensure_ephemeral_server_dies_with_parent() -> int | None:
    """Make any temporary Prefect server (or other child) this process starts die with it.

    Marks ``os.environ`` with ``FPLAKE_OWNER_PID`` and starts one watchdog
    process (idempotent). Linux only (reads ``/proc``); elsewhere a no-op.
    Returns the watchdog's pid, or None when not started.
    """
    global _WATCHDOG
    if not os.path.isdir("/proc/self") or os.environ.get("PREFECT_API_URL"):
        return None  # a server we do not own (managed or remote) is never touched
    me = os.getpid()
    if _WATCHDOG is not None and _WATCHDOG.poll() is None and os.environ.get(OWNER_ENV) == str(me):
        return _WATCHDOG.pid
    os.environ[OWNER_ENV] = str(me)
    env = {k: v for k, v in os.environ.items() if k != OWNER_ENV}  # the watchdog does not mark itself
    _WATCHDOG = subprocess.Popen([sys.executable, "-c", f"import flows.server as s; s._watch({me})"],
                                 env={**env, "PYTHONPATH": _pythonpath(env)}, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    # subprocess keeps a reference; the watchdog reaps itself as a child of init when we die first
    return _WATCHDOG.pid


def _pythonpath(env: dict) -> str:
    root = str(Path(__file__).resolve().parent.parent)
    old = env.get("PYTHONPATH")
    return f"{root}{os.pathsep}{old}" if old else root


# ------------------------------------------------------------------ CLI
def add_server_parser(subparsers, common_parent: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """``fplake server start|stop|status`` on an ``argparse`` subparsers object."""
    parents = [common_parent] if common_parent is not None else []
    sp = subparsers.add_parser("server", parents=parents,
                               help="a managed local Prefect server used by every CLI run while it is up")
    ss = sp.add_subparsers(dest="server_cmd", required=True)
    st = ss.add_parser("start", parents=parents, help="start it detached on a loopback port and wait until healthy")
    st.add_argument("--port", type=int, default=None, help="loopback port (default: a free one)")
    st.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for it to become healthy")
    ss.add_parser("stop", parents=parents, help="stop it (its whole process group)")
    ss.add_parser("status", parents=parents, help="print its url and pid, exit 1 when none runs")
    return sp


def cmd_server(args) -> int:
    """Handler for ``fplake server``: 0 on success; ``status`` returns 1 when no server runs."""
    if args.server_cmd == "start":
        state = start_server(port=args.port, timeout=args.timeout)
        word = "already running" if state.get("already_running") else "started"
        print(f"prefect server {word}: {state['url']} (pid {state['pid']}, home {state['home']})")
        print(f"CLI runs use it while it is up; stop it with `fplake server stop`. Or: export PREFECT_API_URL={state['url']}")
        return 0
    if args.server_cmd == "stop":
        state = stop_server()
        print(f"prefect server stopped (pid {state['pid']})" if state else "no managed prefect server running")
        return 0
    state = read_state()
    if state and _healthy(state["url"]):
        print(f"running: {state['url']} (pid {state['pid']}, home {state['home']})")
        return 0
    print("not running" + (f" (pid {state['pid']} alive but not healthy)" if state else ""))
    return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.server start|stop|status`` (the same as ``fplake server ...``)."""
    p = argparse.ArgumentParser(prog="fplake server")
    add_server_parser(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(["server", *(argv if argv is not None else sys.argv[1:])])
    try:
        return cmd_server(args)
    except ServerError as exc:
        print(f"fplake server: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

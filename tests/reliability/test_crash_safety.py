"""Crash safety as a user meets it: SIGKILLed runs, concurrent writers, bad inputs.

Every run is the real console script (``.venv/bin/run_experiment``) in its own
session on the tiny zoo. Runs use one managed Prefect server for the module
(``flows.server``, found through ``FPLAKE_SERVER_DIR``), so they do not pay
for a temporary server each; one test runs without it to check that the
temporary server Prefect starts by itself dies with its SIGKILLed parent.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fingerprinting.lake import TABLES, Lake
from fingerprinting.registry import register_models, zoo_records

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
CONFIG = {"models": ["1", "2", "3", "8", "9", "15"], "methods": ["input_output", "weight_spectrum"],
          "method_args": {"input_output": {"n0": 40}}, "metrics": ["l1", "cosine"]}
N_KILLS = 10


def _session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (each run is started with start_new_session)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append(int(name))
    return out


def _wait_session_empty(sid: int, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = _session_pids(sid)
        if not left:
            return []
        time.sleep(0.2)
    return _session_pids(sid)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"


@pytest.fixture(scope="module")
def managed_server(tmp_path_factory):
    from flows import server

    home = tmp_path_factory.mktemp("prefect-server")
    old = os.environ.get(server.SERVER_DIR_ENV)
    os.environ[server.SERVER_DIR_ENV] = str(home)
    state = server.start_server()
    yield {**state, "dir": str(home)}
    server.stop_server()
    if old is None:
        os.environ.pop(server.SERVER_DIR_ENV, None)
    else:
        os.environ[server.SERVER_DIR_ENV] = old
    assert not _session_pids(state["pid"]), "the managed server left processes behind"


def _env(settings, server_dir: str, lake_root: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "FPLAKE_"))}
    env.update(settings.export_env())
    env.update({"FPLAKE_LAKE_ROOT": lake_root or settings.lake_root, "FPLAKE_SERVER_DIR": server_dir,
                "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"})
    return env


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    fh = open(log, "wb")  # noqa: SIM115 (closed by the caller's wait)
    return subprocess.Popen([str(BIN / args[0]), *args[1:]], env=env, stdout=fh, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _registered(root: str, tiny_zoo) -> Lake:
    lake = Lake(root).init()
    register_models(lake, zoo_records(tiny_zoo))
    return lake


def _check_lake(root: str) -> dict[str, set]:
    """Every table reads, and no key appears twice; returns the key sets."""
    lake = Lake(root)
    keys = {}
    for name in ("models", "model_edges", "fingerprints", "similarities"):
        t = lake.read(name, columns=list(TABLES[name].key))
        rows = list(zip(*(t.column(k).to_pylist() for k in TABLES[name].key), strict=True))
        assert len(rows) == len(set(rows)), f"{name}: duplicate keys after a crash"
        keys[name] = set(rows)
    return keys


def test_sigkill_at_random_points(managed_server, settings, tiny_zoo, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    args = ["run_experiment", "--config", str(cfg), "--no-progress", "--output-dir", str(tmp_path / "out")]

    # a reference run, never interrupted, on its own lake: what a complete run lands
    ref_root = str(tmp_path / "ref_lake")
    _registered(ref_root, tiny_zoo)
    t0 = time.monotonic()
    p = _start(args, _env(settings, managed_server["dir"], ref_root), tmp_path / "ref.log")
    assert p.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    full = time.monotonic() - t0
    want = _check_lake(ref_root)
    assert len(want["fingerprints"]) == 12 and len(want["similarities"]) == 15 * 4

    root = settings.lake_root
    _registered(root, tiny_zoo)
    env = _env(settings, managed_server["dir"], root)
    rng = random.Random(20260511)
    finished = 0
    for i in range(N_KILLS):
        # kill anywhere from model loading to the last similarity commit
        at = rng.uniform(0.25, 1.0) * full
        p = _start([*args, *(["--use-existing"] if i % 2 else [])], env, tmp_path / f"kill{i}.log")
        time.sleep(at)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)  # the main process only, as `kill -9 PID` or the OOM killer would
        else:
            finished += 1
        p.wait(timeout=60)
        left = _wait_session_empty(p.pid)
        assert not left, f"kill {i} at {at:.1f} s left {[_cmdline(x) for x in left]}"
        got = _check_lake(root)  # readable, no duplicates
        assert got["fingerprints"] <= want["fingerprints"] and got["similarities"] <= want["similarities"]
    assert finished < N_KILLS // 2, "most runs finished before their kill: the kill points are too late"

    # the rerun completes and lands exactly what an uninterrupted run lands
    p = _start([*args, "--use-existing"], env, tmp_path / "rerun.log")
    assert p.wait(timeout=300) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    assert not _wait_session_empty(p.pid)
    got = _check_lake(root)
    assert got == want
    key = TABLES["similarities"].key

    def sims(r):
        return {tuple(x[k] for k in key): x["similarity"] for x in Lake(r).read("similarities").to_pylist()}

    ref = sims(ref_root)
    assert sims(root) == pytest.approx(ref, abs=1e-9)


def test_temporary_prefect_server_dies_with_its_parent(settings, tiny_zoo, tmp_path):
    """No managed server: Prefect starts its own; SIGKILL the run once that server is up."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"models": ["1", "2"], "methods": ["weight_spectrum"], "metrics": ["l1"]}))
    _registered(settings.lake_root, tiny_zoo)
    env = _env(settings, str(tmp_path / "no-server"))
    p = _start(["run_experiment", "--config", str(cfg), "--no-progress"], env, tmp_path / "eph.log")
    server_pid = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None and server_pid is None:
        server_pid = next((x for x in _session_pids(p.pid) if "uvicorn" in _cmdline(x)), None)
        time.sleep(0.2)
    if server_pid is None:
        pytest.fail("no temporary Prefect server appeared: " + (tmp_path / "eph.log").read_text()[-2000:])
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=60)
    left = _wait_session_empty(p.pid)
    assert not left, f"left behind: {[_cmdline(x) for x in left]}"


def test_two_runs_and_a_registration_at_once(managed_server, settings, tiny_zoo, tmp_path):
    root = settings.lake_root
    _registered(root, tiny_zoo)
    env = _env(settings, managed_server["dir"], root)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"models": ["1", "2", "3", "4"], "methods": ["weight_spectrum"], "metrics": ["l1"]}))
    b.write_text(json.dumps({"models": ["3", "4", "8", "9", "10"], "methods": ["input_output"],
                             "method_args": {"input_output": {"n0": 40}}, "metrics": ["l1", "cosine"]}))
    src = next(m["path"] for m in tiny_zoo["models"] if m["model_id"] == "1")
    register = ("from fingerprinting.lake import Lake\n"
                "from fingerprinting.registry import ModelRecord, register_models\n"
                "lake = Lake(__import__('os').environ['FPLAKE_LAKE_ROOT'])\n"
                f"for i in range(5):\n"
                f"    register_models(lake, [ModelRecord(f'extra-{{i}}', {src!r}, 'extra', 'base', f'extra {{i}}')])\n")
    procs = [_start(["run_experiment", "--config", str(a), "--no-progress", "--output-dir", str(tmp_path / "oa")],
                    env, tmp_path / "a.log"),
             _start(["run_experiment", "--config", str(b), "--no-progress", "--output-dir", str(tmp_path / "ob")],
                    env, tmp_path / "b.log"),
             _start(["python", "-c", register], env, tmp_path / "reg.log")]
    for p, log in zip(procs, ("a", "b", "reg"), strict=True):
        assert p.wait(timeout=300) == 0, (tmp_path / f"{log}.log").read_text()[-3000:]
        assert not _wait_session_empty(p.pid)
    keys = _check_lake(root)
    assert len(keys["models"]) == len(tiny_zoo["models"]) + 5
    fps = {(m, meth) for m, meth, _ in keys["fingerprints"]}
    assert fps == {(m, "weight_spectrum") for m in "1 2 3 4".split()} | {
        (m, "input_output") for m in "3 4 8 9 10".split()}
    per = {}
    for _, _, method, metric, _ in keys["similarities"]:
        per[(method, metric)] = per.get((method, metric), 0) + 1
    assert per == {("weight_spectrum", "l1"): 6, ("input_output", "l1"): 10, ("input_output", "cosine"): 10}


def test_model_info_matching_no_model_is_one_clear_line(tmp_path):
    results = {"similarity_matrices": {"input_output": {"l1": {"models": ["a", "b", "c"],
                                                              "matrix": [[1, .5, .2], [.5, 1, .3], [.2, .3, 1]]}}}}
    (tmp_path / "sim.json").write_text(json.dumps(results))
    (tmp_path / "info.json").write_text(json.dumps([{"model_id": "x", "family": "f", "model_type": "base"},
                                                    {"model_id": "y", "family": "f", "model_type": "base"}]))
    p = subprocess.run([str(BIN / "compute_similarity_metrics"), "--results-file", str(tmp_path / "sim.json"),
                        "--model-info", str(tmp_path / "info.json"), "--output-dir", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120, start_new_session=True)
    assert p.returncode == 2
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("compute_similarity_metrics: error:"), p.stderr
    assert "0 of the 3 models" in lines[0] and "Traceback" not in p.stdout
    assert not (tmp_path / "out" / "lake").exists()  # nothing written

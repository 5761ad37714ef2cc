"""The lake on an object store: a real S3-compatible server (moto's server mode) on loopback."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

pytest.importorskip("s3fs")
MOTO = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
pytestmark = pytest.mark.skipif(not Path(MOTO).exists(), reason="moto[server] not installed")


@pytest.fixture(scope="module")
def s3_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    # the usual AWS_* variables are all the lake needs to find the server
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": url}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem(endpoint_url=url).mkdir("fplake-test")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_lake_contract_on_s3(s3_endpoint):
    from fingerprinting.lake import Lake

    lake = Lake("s3://fplake-test/contract").init()
    assert not lake.is_local and lake.storage_options["AWS_ALLOW_HTTP"] == "true"
    edges = pa.table({"parent_id": ["a", "b"], "child_id": ["b", "c"], "relation": ["finetune", "merge"]})
    lake.merge("model_edges", edges)
    lake.merge("model_edges", edges)  # idempotent
    assert lake.read("model_edges").num_rows == 2
    assert lake.read("model_edges", version=1).num_rows == 2
    assert lake.read("similarities").num_rows == 0
    assert [h["operation"] for h in lake.history("model_edges")][0] == "MERGE"
    # DuckDB reads the same Delta table over S3 (httpfs + delta extensions, secret from the env)
    con = lake.duckdb()
    assert con.execute("select count(*) from model_edges").fetchone()[0] == 2


def test_fingerprint_flow_into_s3_lake(prefect_harness, s3_endpoint, tiny_zoo, settings):
    from fingerprinting.experiment import parse_config
    from fingerprinting.lake import Lake
    from fingerprinting.registry import register_models, zoo_records
    from flows.fingerprint_flow import fingerprint_flow

    s3_settings = settings.with_overrides(lake_root="s3://fplake-test/flow")
    lake = Lake(s3_settings.lake_root).init()
    register_models(lake, zoo_records(tiny_zoo))
    cfg = parse_config({"models": ["1", "2", "8"], "methods": ["weight_spectrum"], "metrics": ["l1", "cosine"]})
    summary = fingerprint_flow(cfg, settings=s3_settings, progress=False)
    assert summary.ok
    assert lake.read("fingerprints").num_rows == 3
    assert lake.read("similarities").num_rows == 6
    again = fingerprint_flow(cfg, use_existing=True, settings=s3_settings, progress=False)
    assert len(again.reused) == 3 and lake.read("similarities").num_rows == 6


def test_demo_end_to_end_on_s3_lake(prefect_harness, s3_endpoint, tiny_zoo, settings, tmp_path):
    """Flows write the S3 lake, dbt reads it over S3 (DuckDB httpfs), the reports render."""
    from fingerprinting.experiment import parse_config
    from fingerprinting.lake import Lake
    from fingerprinting.registry import register_models, zoo_records
    from fingerprinting.warehouse import connect
    from flows.fingerprint_flow import fingerprint_flow
    from flows.report_flow import report_flow

    s3_settings = settings.with_overrides(lake_root="s3://fplake-test/demo")
    lake = Lake(s3_settings.lake_root).init()
    register_models(lake, zoo_records(tiny_zoo))
    ids = ["1", "2", "3", "8", "9", "15"]
    cfg = parse_config({"models": ids, "methods": ["input_output"], "method_args": {"input_output": {"n0": 40}},
                        "metrics": ["l1"]})
    assert fingerprint_flow(cfg, settings=s3_settings, progress=False).ok
    assert not Path(settings.lake_root).exists()  # nothing went to a local folder
    paths = report_flow(method="input_output", metric="l1", settings=s3_settings,
                        output_dir=str(tmp_path / "report"), print_summary=False)
    assert Path(paths["dashboard"]).stat().st_size > 10_000
    with connect(s3_settings) as con:  # the marts were built from the S3 lake
        n = con.execute("select count(*) from pair_similarities where method = 'input_output' "
                        "and metric = 'l1'").fetchone()[0]
    assert n == len(ids) * (len(ids) - 1) // 2


def test_s3_server_restart_mid_run(prefect_harness, tiny_zoo, settings, tmp_path):
    """The object store is killed and restarted (state kept) while run_experiment writes to it."""
    from prefect.settings import PREFECT_API_URL

    from fingerprinting.lake import TABLES, Lake
    from fingerprinting.registry import register_models, zoo_records
    from tests import moto_persistent as mp

    port = mp.free_port()
    recording = str(tmp_path / "s3-recording.jsonl")
    server = mp.start(port, recording)
    opts = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}
    try:
        import s3fs

        s3fs.S3FileSystem(endpoint_url=opts["AWS_ENDPOINT_URL"], key="test", secret="test").mkdir("fplake-restart")
        root = "s3://fplake-restart/lake"
        lake = Lake(root, storage_options=opts).init()
        register_models(lake, zoo_records(tiny_zoo))
        cfg = tmp_path / "cfg.json"
        ids = ["1", "2", "3", "8", "9", "10", "15", "16"]
        cfg.write_text(json.dumps({"models": ids, "methods": ["input_output", "weight_spectrum"],
                                   "method_args": {"input_output": {"n0": 40}}, "metrics": ["l1", "cosine"]}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FPLAKE_", "PREFECT_API"))}
        env.update(settings.export_env())
        env.update(opts)
        env.update({"FPLAKE_LAKE_ROOT": root, "PREFECT_API_URL": PREFECT_API_URL.value(),
                    "FPLAKE_SERVER_DIR": str(tmp_path / "no-server")})
        cmd = [str(Path(sys.executable).with_name("run_experiment")), "--config", str(cfg), "--no-progress",
               "--output-dir", str(tmp_path / "out")]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        start = lake.version("fingerprints")
        deadline = time.monotonic() + 240
        while lake.version("fingerprints") < start + 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the run ended before the server could be stopped: " + first.stderr.read()
        mp.stop(server)  # SIGKILL: a crash in the middle of the run
        time.sleep(3)
        server = mp.start(port, recording)  # same data, as a real S3 server would have
        out, err = first.communicate(timeout=300)
        if first.returncode != 0:  # allowed, but only with one clear line, no traceback at the end
            last = err.strip().splitlines()[-1]
            assert last.startswith("run_experiment: error:"), err[-3000:]
        rerun = subprocess.run([*cmd, "--use-existing"], env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        for name in ("fingerprints", "similarities"):
            key = TABLES[name].key
            t = lake.read(name, columns=list(key))
            rows = list(zip(*(t.column(k).to_pylist() for k in key), strict=True))
            assert len(rows) == len(set(rows)), f"{name}: duplicates after the restart"
        n_pairs = len(ids) * (len(ids) - 1) // 2
        assert lake.count("fingerprints") == 2 * len(ids)
        assert lake.count("similarities") == n_pairs * 4
        print(f"first run rc={first.returncode}; rerun reused {json.loads(rerun.stdout[rerun.stdout.index('{'):])['reused']}")
    finally:
        mp.stop(server)

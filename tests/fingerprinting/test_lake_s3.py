"""The lake on an object store: a real S3-compatible server (moto's server mode) on loopback."""

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

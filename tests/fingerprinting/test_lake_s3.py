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
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    url = f"http://127.0.0.1:{port}"
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

    lake = Lake("s3://fplake-test/contract", storage_options={"endpoint_url": s3_endpoint}).init()
    assert not lake.is_local
    edges = pa.table({"parent_id": ["a", "b"], "child_id": ["b", "c"], "relation": ["finetune", "merge"]})
    lake.upsert_small("model_edges", edges)
    lake.upsert_small("model_edges", edges)  # idempotent
    assert lake.read("model_edges").num_rows == 2
    assert lake.read("similarities").num_rows == 0
    assert any(f.endswith("model_edges/_schema.parquet") for f in lake.files("model_edges"))


def test_fingerprint_flow_into_s3_lake(prefect_harness, s3_endpoint, tiny_zoo, settings, monkeypatch):
    # fsspec reads FSSPEC_S3_<kwarg> from the environment, so a plain s3:// lake root needs no code change
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", s3_endpoint)
    import fsspec.config

    fsspec.config.set_conf_env(fsspec.config.conf)
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

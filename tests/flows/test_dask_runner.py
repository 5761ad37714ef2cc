"""Task runners: a Dask (and a thread-pool) run of the fingerprint flow lands the same rows as the
sequential run; one missing model is reported alone; bad runner options fail in one line."""

import socket

import numpy as np
import pytest

import fingerprinting.loading as loading
from fingerprinting.experiment import parse_config
from fingerprinting.lake import Lake
from fingerprinting.registry import ModelRecord, register_models, zoo_records
from fingerprinting.settings import Settings
from flows.task_runners import TaskRunnerError, options_from_args, runner_options, usable_cores

FP_KEY = ["model_id", "method", "config_hash"]
SIM_KEY = ["model_a", "model_b", "method", "metric", "config_hash"]
VOLATILE = {"run_id", "created_at", "seconds"}  # when and how fast, not what


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


def _rows(lake: Lake, table: str, key: list[str]) -> list[dict]:
    return sorted(lake.read(table).to_pylist(), key=lambda r: [r[k] for k in key])


def _lake(tmp_path, name: str, zoo_dir: str, tiny_zoo) -> tuple[Settings, Lake]:
    s = Settings(lake_root=str(tmp_path / name / "lake"), warehouse=str(tmp_path / name / "wh.duckdb"),
                 reports_dir=str(tmp_path / name / "reports"), zoo_dir=zoo_dir,
                 global_registry=str(tmp_path / name / "global"), device="cpu")
    lake = Lake(s.lake_root).init()
    register_models(lake, zoo_records(tiny_zoo))
    register_models(lake, [ModelRecord("missing-1", str(tmp_path / "no-such-model"), "Junk", "Base", "missing")])
    return s, lake


def _assert_same_lake(ref: Lake, other: Lake) -> None:
    """Same keys and columns; vectors and similarities equal to 1e-12.

    Not asserted bitwise (they came out bitwise here): on the full demo zoo, at
    the same torch thread count, some input_output vectors differed between the
    test's process and the workers by up to 1e-14 (docs/distributed.md); with
    other thread counts float32 sums differ by ~1e-7, so both sides use one thread.
    """
    fa, fb = _rows(ref, "fingerprints", FP_KEY), _rows(other, "fingerprints", FP_KEY)
    assert [[r[k] for k in FP_KEY] for r in fa] == [[r[k] for k in FP_KEY] for r in fb]
    for a, b in zip(fa, fb, strict=True):
        np.testing.assert_allclose(np.asarray(b["vector"]), np.asarray(a["vector"]), rtol=0, atol=1e-12,
                                   err_msg=f"{a['model_id']}/{a['method']}")
        skip = VOLATILE | {"vector"}
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
    sa, sb = _rows(ref, "similarities", SIM_KEY), _rows(other, "similarities", SIM_KEY)
    assert len(sa) == len(sb) > 0
    assert [[r[k] for k in SIM_KEY] for r in sa] == [[r[k] for k in SIM_KEY] for r in sb]
    np.testing.assert_allclose([r["similarity"] for r in sb], [r["similarity"] for r in sa], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_dask_and_threads_runs_equal_the_sequential_run(prefect_harness, tmp_path, zoo_settings, tiny_zoo):
    from flows.fingerprint_flow import fingerprint_flow

    ids = [m["model_id"] for m in tiny_zoo["models"][:2]] + ["missing-1"] + \
          [m["model_id"] for m in tiny_zoo["models"][7:9]]  # two Llama, the missing one, two GPT-2
    cfg = parse_config({"models": ids, "methods": ["input_output", "weight_spectrum"], "metrics": ["l1", "cosine"],
                        "method_args": {"input_output": {"n0": 40}}})
    loadable = len(ids) - 1

    s_seq, lake_seq = _lake(tmp_path, "seq", zoo_settings.zoo_dir, tiny_zoo)
    loads = loading.LOAD_COUNT
    seq = fingerprint_flow(cfg, settings=s_seq, progress=False, threads_per_worker=1)
    assert loading.LOAD_COUNT == loads + loadable  # loaded here, in the test's process

    s_dask, lake_dask = _lake(tmp_path, "dask", zoo_settings.zoo_dir, tiny_zoo)
    loads = loading.LOAD_COUNT
    dsk = fingerprint_flow(cfg, settings=s_dask, progress=False, task_runner="dask", dask_workers=2,
                           threads_per_worker=1)
    assert loading.LOAD_COUNT == loads  # every model was loaded in a worker process, not here
    # each worker merged its own model's rows: one fingerprints commit per loaded model
    merges = [h for h in lake_dask.history("fingerprints") if h["operation"] == "MERGE"]
    assert len(merges) == loadable

    s_thr, lake_thr = _lake(tmp_path, "threads", zoo_settings.zoo_dir, tiny_zoo)
    thr = fingerprint_flow(cfg, settings=s_thr, progress=False, task_runner="threads", dask_workers=2,
                           threads_per_worker=1)

    expected_computed = [f"{m}/{meth}" for m in ids if m != "missing-1" for meth in ("input_output", "weight_spectrum")]
    for run, lake in ((dsk, lake_dask), (thr, lake_thr)):
        assert run.computed == seq.computed == expected_computed
        assert run.pair_counts == seq.pair_counts == {m: {"l1": 6, "cosine": 6} for m in cfg.methods}
        # the missing model is reported alone, in one line naming it, the same way in every runner
        assert list(run.failures) == list(seq.failures) == ["missing-1"]
        assert run.failures["missing-1"] == seq.failures["missing-1"]
        assert "missing-1" in seq.failures["missing-1"] and "\n" not in seq.failures["missing-1"]
        _assert_same_lake(lake_seq, lake)
    assert lake_seq.read("fingerprints").num_rows == 2 * loadable


def test_runner_options_validate_in_one_line():
    assert runner_options() == runner_options("sequential")
    assert not runner_options().parallel
    local = runner_options("dask", dask_workers=2, threads_per_worker=1)
    assert (local.workers, local.threads_per_worker, local.dask_address) == (2, 1, None)
    # defaults: one worker per core, the cores shared among the workers' torch pools
    assert runner_options("threads").workers == usable_cores()
    assert runner_options("dask", dask_workers=1).threads_per_worker == usable_cores()

    with socket.socket() as srv:  # a listening port stands in for a scheduler
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        opts = runner_options(dask_address=f"127.0.0.1:{port}")  # the address alone means dask
        assert (opts.task_runner, opts.dask_address) == ("dask", f"tcp://127.0.0.1:{port}")

    port = _closed_port()
    cases = [
        (dict(task_runner="ray"), "unknown task runner 'ray'; valid: sequential, threads, dask"),
        (dict(task_runner="dask", dask_workers=0), "--dask-workers must be a positive integer, got 0"),
        (dict(task_runner="threads", dask_workers=-3), "--dask-workers must be a positive integer, got -3"),
        (dict(task_runner="dask", threads_per_worker=0), "--threads-per-worker must be a positive integer"),
        (dict(task_runner="sequential", dask_workers=2), "--dask-workers needs --task-runner dask or threads"),
        (dict(task_runner="threads", dask_address="tcp://127.0.0.1:1"), "--dask-address needs --task-runner dask"),
        (dict(task_runner="dask", dask_address=f"tcp://127.0.0.1:{port}"),
         f"Dask scheduler tcp://127.0.0.1:{port} is unreachable"),
        (dict(dask_address="http://127.0.0.1:8786"), "unsupported scheme 'http'"),
        (dict(dask_address="tcp://127.0.0.1"), "expected tcp://HOST:PORT"),
        (dict(dask_address="tcp://127.0.0.1:1", dask_workers=2), "--dask-workers sizes a local cluster"),
    ]
    for kwargs, message in cases:
        with pytest.raises(TaskRunnerError) as err:
            runner_options(**kwargs)
        assert message in str(err.value) and "\n" not in str(err.value), kwargs


def test_commands_refuse_bad_runner_options_before_loading(settings, tiny_zoo, tmp_path, capsys, monkeypatch):
    from flows.cli import build_parser
    from flows.run_experiment import main

    register_models(Lake(settings.lake_root).init(), zoo_records(tiny_zoo))
    monkeypatch.setenv("FPLAKE_LAKE_ROOT", settings.lake_root)
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"models": ["1", "2"], "methods": ["weight"], "metrics": ["l1"]}')
    loads = loading.LOAD_COUNT
    port = _closed_port()
    assert main(["--config", str(cfg), "--dask-address", f"tcp://127.0.0.1:{port}", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"run_experiment: error: Dask scheduler tcp://127.0.0.1:{port} is unreachable: Connection refused"
    assert main(["--config", str(cfg), "--task-runner", "dask", "--dask-workers", "0"]) == 2
    assert "--dask-workers must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(cfg), "--task-runner", "ray"])
    assert exc.value.code == 2 and "invalid choice: 'ray'" in capsys.readouterr().err
    assert loading.LOAD_COUNT == loads

    # fplake demo's options go through the same validation
    args = build_parser().parse_args(["demo", "--task-runner", "threads", "--dask-address", "tcp://h:1"])
    with pytest.raises(TaskRunnerError, match="--dask-address needs --task-runner dask"):
        options_from_args(args)
    args = build_parser().parse_args(["demo", "--task-runner", "dask", "--dask-workers", "2"])
    assert options_from_args(args).workers == 2

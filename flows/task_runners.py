"""Task-runner options for the flows' per-model work: sequential, threads or Dask.

    sequential  one model after another in the flow's process (the default, today's behaviour)
    threads     a thread pool in the flow's process (``ThreadPoolTaskRunner``)
    dask        ``prefect_dask.DaskTaskRunner``: a temporary local cluster of ``dask_workers``
                processes, or the scheduler at ``dask_address`` (``tcp://HOST:PORT``) for many machines

:func:`runner_options` validates the options (one-line :class:`TaskRunnerError`s);
:func:`fan_out` starts the runner inside a flow, submits one task per item and
yields the futures as they complete. Each task writes its own rows to the lake,
so the driver only collects small summaries. :func:`runner_session` starts one
local Dask cluster that several flows then share (the demo).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from fingerprinting.errors import FingerprintLakeError

RUNNERS = ("sequential", "threads", "dask")
SCHEMES = ("tcp", "tls", "ws", "wss")


class TaskRunnerError(FingerprintLakeError, ValueError):
    """Bad task-runner options or an unreachable Dask scheduler."""


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class RunnerOptions:
    """Validated runner choice (build with :func:`runner_options`).

    Attributes:
        task_runner: "sequential", "threads" or "dask".
        dask_address: scheduler of an existing Dask cluster (None: a temporary local one).
        workers: worker processes of the local cluster, or threads of the pool (None for an address).
        threads_per_worker: torch threads in each worker (None: the worker's own setting,
            ``FPLAKE_TORCH_THREADS`` or torch's default).
    """

    task_runner: str = "sequential"
    dask_address: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None

    @property
    def parallel(self) -> bool:
        return self.task_runner != "sequential"

    def describe(self) -> str:
        if self.task_runner == "dask":
            where = self.dask_address or f"local cluster of {self.workers} worker process(es)"
            return f"dask ({where})"
        if self.task_runner == "threads":
            return f"threads ({self.workers})"
        return "sequential"


def _positive(value, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TaskRunnerError(f"{what} must be a positive integer, got {value!r}")
    return value


def check_scheduler(address: str, timeout: float = 5.0) -> str:
    """Check a Dask scheduler address parses and answers on its port; returns it with a scheme."""
    full = address if "://" in address else f"tcp://{address}"
    parts = urlsplit(full)
    if parts.scheme not in SCHEMES:
        raise TaskRunnerError(f"--dask-address {address!r}: unsupported scheme {parts.scheme!r}; "
                              f"expected tcp://HOST:PORT (or {', '.join(SCHEMES[1:])})")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise TaskRunnerError(f"--dask-address {address!r}: expected tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TaskRunnerError(f"Dask scheduler {full} is unreachable: {reason}") from None
    return full


def runner_options(task_runner: str | None = None, dask_address: str | None = None,
                   dask_workers: int | None = None, threads_per_worker: int | None = None,
                   check_address: bool = True) -> RunnerOptions:
    """Validate the options. No ``task_runner`` means "dask" when an address is given, else "sequential"."""
    if task_runner is None:
        task_runner = "dask" if dask_address else "sequential"
    if task_runner not in RUNNERS:
        raise TaskRunnerError(f"unknown task runner {task_runner!r}; valid: {', '.join(RUNNERS)}")
    workers = _positive(dask_workers, "--dask-workers")
    threads = _positive(threads_per_worker, "--threads-per-worker")
    if dask_address and task_runner != "dask":
        raise TaskRunnerError(f"--dask-address needs --task-runner dask (got {task_runner!r})")
    if task_runner == "sequential":
        if workers is not None:
            raise TaskRunnerError("--dask-workers needs --task-runner dask or threads (got 'sequential')")
        return RunnerOptions("sequential", threads_per_worker=threads)
    if dask_address:
        if workers is not None:
            raise TaskRunnerError(f"--dask-workers sizes a local cluster; the cluster at {dask_address} "
                                  "has its own workers (leave one of the two out)")
        address = check_scheduler(dask_address) if check_address else dask_address
        return RunnerOptions("dask", address, None, threads)
    workers = workers or usable_cores()
    # one model per worker at a time; share the cores among the workers' torch pools
    threads = threads or max(1, usable_cores() // workers)
    return RunnerOptions(task_runner, None, workers, threads)


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """``--task-runner``, ``--dask-address``, ``--dask-workers``, ``--threads-per-worker``."""
    parser.add_argument("--task-runner", choices=RUNNERS, default=None,
                        help="how models fan out: sequential (default), threads, or dask "
                             "(default dask when --dask-address is given)")
    parser.add_argument("--dask-address", default=None, metavar="tcp://HOST:PORT",
                        help="scheduler of an existing Dask cluster (default: a temporary local cluster)")
    parser.add_argument("--dask-workers", type=int, default=None, metavar="N",
                        help="worker processes of the local Dask cluster, or threads (default: one per core)")
    parser.add_argument("--threads-per-worker", type=int, default=None, metavar="N",
                        help="torch threads in each worker (default: cores / workers)")


def options_from_args(args, check_address: bool = True) -> RunnerOptions:
    return runner_options(getattr(args, "task_runner", None), getattr(args, "dask_address", None),
                          getattr(args, "dask_workers", None), getattr(args, "threads_per_worker", None),
                          check_address=check_address)


def flow_runner_kwargs(opts: RunnerOptions) -> dict:
    """The keyword arguments the flows take for ``opts`` (plain values, so deployments can pass them)."""
    return {"task_runner": opts.task_runner, "dask_address": opts.dask_address, "dask_workers": opts.workers,
            "threads_per_worker": opts.threads_per_worker}


# ------------------------------------------------------------------ workers
def apply_torch_threads(n: int | None) -> None:
    """In a worker: use ``n`` torch threads (else ``FPLAKE_TORCH_THREADS`` when set)."""
    n = n or (int(os.environ["FPLAKE_TORCH_THREADS"]) if os.environ.get("FPLAKE_TORCH_THREADS") else None)
    if n:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def local_cluster_kwargs(workers: int, threads_per_worker: int | None) -> dict:
    """``distributed.LocalCluster`` arguments: processes, one task each, thread caps set before torch loads."""
    env = {}
    if threads_per_worker:
        n = str(threads_per_worker)
        env = {"FPLAKE_TORCH_THREADS": n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
            "silence_logs": logging.WARNING, "env": env}


def make_task_runner(opts: RunnerOptions):
    """The Prefect task runner for ``opts`` (None for sequential)."""
    if opts.task_runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=opts.workers)
    if opts.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if opts.dask_address:
            return DaskTaskRunner(address=opts.dask_address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs=local_cluster_kwargs(opts.workers, opts.threads_per_worker))
    return None


@contextmanager
def _workers_see_this_api() -> Iterator[None]:
    """Pin the run's Prefect API URL into the context shipped to Dask workers.

    With no ``PREFECT_API_URL`` Prefect runs a temporary server per process;
    a worker would start its own. The flow's client knows the driver's server.
    """
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ctx = FlowRunContext.get()
    url = str(ctx.client.api_url) if ctx is not None and ctx.client is not None else ""
    if PREFECT_API_URL.value() or not url.startswith("http") or "ephemeral-prefect" in url:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: url.rstrip("/")}):
        yield


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch threads in this process for a while (None: leave it), then restore."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _quiet_dask(stack: ExitStack, make_cm) -> object:
    """Enter the context ``make_cm()`` returns, with distributed's INFO chatter off.

    Worker processes that loaded torch models often hang in native teardown at
    exit; the nanny kills them after 4 s and says so: expected, so not shown.
    """
    base, nanny = logging.getLogger("distributed"), logging.getLogger("distributed.nanny")
    stack.callback(base.setLevel, base.level)
    stack.callback(nanny.setLevel, nanny.level)
    base.setLevel(max(base.getEffectiveLevel(), logging.WARNING))
    out = stack.enter_context(make_cm())
    stack.callback(nanny.setLevel, logging.ERROR)  # runs first on exit, while the cluster closes
    return out


def fan_out(opts: RunnerOptions, task, params: list[dict], progress: bool = True,
            desc: str = "models") -> Iterator[tuple[int, object]]:
    """Submit ``task`` once per parameter dict on the runner; yield ``(index, future)`` as each completes."""
    return fan_out_calls(opts, [(task, p) for p in params], progress, desc)


def fan_out_calls(opts: RunnerOptions, calls: list[tuple[object, dict]], progress: bool = True,
                  desc: str = "models") -> Iterator[tuple[int, object]]:
    """Submit each ``(task, parameters)`` on the runner; yield ``(index, future)`` as each completes.

    Call inside a flow run (task runs are recorded under it). Failed tasks are
    yielded too: ``future.result()`` raises the task's own exception.
    """
    from prefect.futures import as_completed
    from tqdm.auto import tqdm

    if not opts.parallel:
        raise TaskRunnerError("fan_out needs a parallel task runner (threads or dask)")
    runner = make_task_runner(opts)
    with ExitStack() as stack:
        stack.enter_context(_workers_see_this_api())
        if opts.task_runner == "threads":
            stack.enter_context(torch_threads(opts.threads_per_worker))
            stack.enter_context(runner)
        else:
            _quiet_dask(stack, lambda: runner)
        futures = [runner.submit(task, p) for task, p in calls]
        index = {id(f): i for i, f in enumerate(futures)}
        bar = stack.enter_context(tqdm(total=len(futures), desc=desc, unit="model", disable=not progress))
        for fut in as_completed(futures):
            bar.update(1)
            yield index[id(fut)], fut


@contextmanager
def runner_session(opts: RunnerOptions) -> Iterator[RunnerOptions]:
    """For several flows in a row: start one local Dask cluster and yield options pointing at it.

    Other options are yielded unchanged; the cluster closes on exit.
    """
    if opts.task_runner != "dask" or opts.dask_address:
        yield opts
        return
    from distributed import LocalCluster

    with ExitStack() as stack:
        cluster = _quiet_dask(stack, lambda: LocalCluster(**local_cluster_kwargs(opts.workers,
                                                                                 opts.threads_per_worker)))
        yield replace(opts, dask_address=cluster.scheduler_address, workers=None)

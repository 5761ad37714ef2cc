"""Prefect deployments: serve the main job on a schedule and the report flow on demand.

    python -m flows.deployments            # serves until interrupted (needs a Prefect API:
                                           # `prefect server start` or PREFECT_API_URL)
    prefect deployment run 'demo/nightly'
    prefect deployment run 'experiment/on-demand' -p config_path=helper_data/configs/demo_weights.json
    prefect deployment run 'report_flow/on-demand' -p method=weight_spectrum -p metric=cosine

Parameters are plain JSON values (a config path, not a config object), so the
deployments can be triggered from the UI, the CLI or the API.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from prefect import flow

from fingerprinting.experiment import load_config
from fingerprinting.settings import get_settings
from flows.config_flow import config_flow
from flows.demo_flow import demo_flow
from flows.fingerprint_flow import fingerprint_flow
from flows.report_flow import report_flow


@flow(name="experiment")
def run_experiment_flow(config_path: str, use_existing: bool = True) -> dict:
    """Deployment wrapper: run one experiment config file (original format)."""
    summary = fingerprint_flow(load_config(config_path), use_existing=use_existing, settings=get_settings(),
                               progress=False)
    return {"computed": len(summary.computed), "reused": len(summary.reused), "failures": summary.failures,
            "outputs": summary.outputs}


def deployments() -> list:
    return [
        demo_flow.to_deployment(name="nightly", cron="0 2 * * *", tags=["fingerprint-lake"],
                                parameters={"progress": False, "verbose": False}),
        run_experiment_flow.to_deployment(name="on-demand", tags=["fingerprint-lake"],
                                          parameters={"config_path": "helper_data/configs/demo_input_output.json"}),
        report_flow.to_deployment(name="on-demand", tags=["fingerprint-lake"]),
        config_flow.to_deployment(name="weekly", cron="30 3 * * 0", tags=["fingerprint-lake"]),
    ]


async def serve_until_signalled(runner, grace: float = 5.0) -> None:
    """Run ``runner`` until SIGTERM / SIGINT, then stop it through its async API.

    ``prefect.serve`` leaves SIGTERM to ``Runner.handle_sigterm``, which calls the
    sync ``Runner.stop()`` from inside the running loop (so it only creates an
    ``astop()`` coroutine that is never awaited) and then ``sys.exit(0)`` in the
    middle of the loop: the runner is torn down half-way, with tracebacks and a
    long wait. Here the signal only sets an event; ``astop()`` is awaited and the
    runner leaves its context normally (schedules paused, client closed).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def request_stop(signum=None, frame=None) -> None:
        loop.call_soon_threadsafe(stop.set)

    runner.handle_sigterm = request_stop  # Runner.start() installs self.handle_sigterm for SIGTERM
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    serving = asyncio.create_task(runner.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        stopping.cancel()
        serving.result()
        return
    print("Stop requested, shutting down...", flush=True)
    if runner.started:
        await runner.astop()
    else:
        serving.cancel()
    try:
        await asyncio.wait_for(serving, grace)
    except (TimeoutError, asyncio.CancelledError):
        pass


def main() -> None:
    from prefect.runner import Runner

    deps = deployments()
    runner = Runner(pause_on_shutdown=True)
    for dep in deps:
        runner.add_deployment(dep)
    try:
        from prefect.flows import _display_serve_start_message  # the banner `prefect.serve` prints
    except ImportError:
        print(f"Your deployments are being served: {', '.join(d.name for d in deps)}", flush=True)
    else:
        _display_serve_start_message(*deps)
    sys.stdout.flush()
    asyncio.run(serve_until_signalled(runner))
    print("Runner stopped.", flush=True)


if __name__ == "__main__":
    main()

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

from prefect import flow, serve

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


def main() -> None:
    serve(
        demo_flow.to_deployment(name="nightly", cron="0 2 * * *", tags=["fingerprint-lake"],
                                parameters={"progress": False, "verbose": False}),
        run_experiment_flow.to_deployment(name="on-demand", tags=["fingerprint-lake"],
                                          parameters={"config_path": "helper_data/configs/demo_input_output.json"}),
        report_flow.to_deployment(name="on-demand", tags=["fingerprint-lake"]),
        config_flow.to_deployment(name="weekly", cron="30 3 * * 0", tags=["fingerprint-lake"]),
    )


if __name__ == "__main__":
    main()

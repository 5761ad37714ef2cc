"""Prefect deployments: serve the main job on a schedule and the report flow on demand.

    python -m flows.deployments            # serves until interrupted (needs a Prefect API:
                                           # `prefect server start` or PREFECT_API_URL)
    prefect deployment run 'demo-refresh/nightly'
    prefect deployment run 'report/on-demand' -p method=weight_spectrum -p metric=cosine

Parameters are plain JSON values (a config path, not a config object), so the
deployments can be triggered from the UI, the CLI or the API.
"""

from __future__ import annotations

from prefect import flow, serve

from fingerprinting.experiment import load_config
from fingerprinting.settings import get_settings
from flows.fingerprint_flow import fingerprint_flow
from flows.report_flow import report_flow


@flow(name="experiment")
def run_experiment_flow(config_path: str, use_existing: bool = True) -> dict:
    """Deployment wrapper: run one experiment config file (original format)."""
    summary = fingerprint_flow(load_config(config_path), use_existing=use_existing, settings=get_settings(),
                               progress=False)
    return {"computed": len(summary.computed), "reused": len(summary.reused), "failures": summary.failures,
            "outputs": summary.outputs}


@flow(name="demo-refresh")
def demo_refresh(profile: str = "full", method: str = "input_output", metric: str = "l1") -> dict:
    """Rebuild/reuse the demo zoo, fingerprint what is new, rebuild marts and reports."""
    from argparse import Namespace

    from fingerprinting.experiment import parse_config
    from flows.cli import cmd_register_demo, demo_config

    manifest = cmd_register_demo(Namespace(profile=profile, lake_root=None, warehouse=None, reports_dir=None,
                                           device=None))
    config = parse_config(demo_config(manifest))
    summary = fingerprint_flow(config, use_existing=True, settings=get_settings(), progress=False)
    paths = report_flow(method=method, metric=metric, config_hash=config.instances()[method].config_hash,
                        print_summary=False)
    return {"failures": summary.failures, "dashboard": paths["dashboard"]}


def main() -> None:
    serve(
        demo_refresh.to_deployment(name="nightly", cron="0 2 * * *", tags=["fingerprint-lake"]),
        run_experiment_flow.to_deployment(name="on-demand", tags=["fingerprint-lake"],
                                          parameters={"config_path": "helper_data/configs/demo_input_output.json"}),
        report_flow.to_deployment(name="on-demand", tags=["fingerprint-lake"]),
    )


if __name__ == "__main__":
    main()

"""``report_flow``: dbt build over the lake, then dashboards and reports for one experiment."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from fingerprinting import reports
from fingerprinting.lake import Lake
from fingerprinting.settings import Settings, get_settings
from fingerprinting.warehouse import connect, run_dbt


@task(retries=1, retry_delay_seconds=2)
def dbt_build(settings: Settings, select: list[str] | None = None) -> None:
    Lake(settings.lake_root).init()
    run_dbt(["build", *(["--select", *select] if select else [])], settings)


@task
def load_experiment(settings: Settings, method: str, metric: str, config_hash: str | None) -> reports.ExperimentData:
    with connect(settings) as con:
        return reports.load_experiment(con, method, metric, config_hash)


@task
def render(data: reports.ExperimentData, out_dir: str) -> dict[str, str]:
    return reports.render_all(data, out_dir)


@flow(name="report_flow")
def report_flow(method: str = "input_output", metric: str = "l1", config_hash: str | None = None,
                settings: Settings | None = None, output_dir: str | None = None,
                model_info_path: str | None = None, run_dbt_build: bool = True,
                print_summary: bool = True) -> dict[str, str]:
    """Build the marts, then render the JSON/text/HTML reports and print the console summary."""
    settings = settings or get_settings()
    if run_dbt_build:
        dbt_build(settings)
    data = load_experiment(settings, method, metric, config_hash)
    out = output_dir or str(Path(settings.reports_dir) / f"{method}_{metric}_{data.config_hash}")
    paths = render(data, out)
    if print_summary:
        print("\n" + paths.pop("summary_text"))
    else:
        paths.pop("summary_text")
    return paths


@task
def render_configs(settings: Settings, out_dir: str) -> dict[str, str]:
    from fingerprinting.reports.configs import render_config_dashboard

    with connect(settings) as con:
        return render_config_dashboard(con, out_dir)


@flow(name="config_report_flow")
def config_report_flow(settings: Settings | None = None, output_dir: str | None = None,
                       run_dbt_build: bool = True) -> dict[str, str]:
    """Build the marts, then render the config similarity and drift dashboard."""
    settings = settings or get_settings()
    if run_dbt_build:
        dbt_build(settings)
    return render_configs(settings, output_dir or str(Path(settings.reports_dir) / "configs"))


@task
def render_memorization(settings: Settings, out_dir: str) -> dict[str, str]:
    from fingerprinting.reports.memorization import render_memorization_dashboard

    with connect(settings) as con:
        return render_memorization_dashboard(con, out_dir)


@flow(name="memorization_report_flow")
def memorization_report_flow(settings: Settings | None = None, output_dir: str | None = None,
                             run_dbt_build: bool = True) -> dict[str, str]:
    """Build the marts, then render the memorization taxonomy dashboard."""
    settings = settings or get_settings()
    if run_dbt_build:
        dbt_build(settings)
    return render_memorization(settings, output_dir or str(Path(settings.reports_dir) / "memorization"))


@task
def render_provenance(settings: Settings, out_dir: str) -> dict[str, str]:
    from fingerprinting.reports.provenance import render_provenance_dashboard

    with connect(settings) as con:
        return render_provenance_dashboard(con, out_dir)


@flow(name="provenance_report_flow")
def provenance_report_flow(settings: Settings | None = None, output_dir: str | None = None,
                           run_dbt_build: bool = True) -> dict[str, str]:
    """Build the marts, then render the provenance dashboard (verdict quality, recorded vs inferred lineage)."""
    settings = settings or get_settings()
    if run_dbt_build:
        dbt_build(settings)
    return render_provenance(settings, output_dir or str(Path(settings.reports_dir) / "provenance"))

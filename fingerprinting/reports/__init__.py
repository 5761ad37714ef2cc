"""Reports and dashboards, one module per system over one shared page module.

* :mod:`fingerprinting.reports.page` — offline page shell, filterable tables, atomic writes;
* :mod:`fingerprinting.reports.fingerprints` — one fingerprint experiment's dashboard and text reports;
* :mod:`fingerprinting.reports.configs` — the config lake's dashboard.

The fingerprint names are re-exported here, where callers have always imported them.
"""

from fingerprinting.reports.fingerprints import (
    HEATMAP_FULL_LIMIT,
    ExperimentData,
    console_summary,
    dashboard_html,
    heatmap_figure,
    json_report,
    latest_config_hash,
    load_experiment,
    n_pairs,
    pair_line,
    quartile_figure,
    render_all,
    roc_figure,
    roc_points,
    similarity_matrix,
    text_report,
    type_pair_figure,
)

__all__ = [
    "HEATMAP_FULL_LIMIT",
    "ExperimentData",
    "console_summary",
    "dashboard_html",
    "heatmap_figure",
    "json_report",
    "latest_config_hash",
    "load_experiment",
    "n_pairs",
    "pair_line",
    "quartile_figure",
    "render_all",
    "render_config_dashboard",
    "roc_figure",
    "roc_points",
    "similarity_matrix",
    "text_report",
    "type_pair_figure",
]


def __getattr__(name):
    # the config dashboard is imported on first use: fingerprint callers do not pay for it
    if name == "render_config_dashboard":
        from fingerprinting.reports.configs import render_config_dashboard

        return render_config_dashboard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""One place for paths and settings.

Every path the project touches (lake root, warehouse file, reports folder,
zoo cache, global registry) comes from :class:`Settings`, filled from
environment variables with defaults relative to the working directory. CLI
flags override by constructing ``Settings(...)`` with explicit values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_PREFIX = "FPLAKE_"
REPO_ROOT = Path(__file__).resolve().parent.parent
HELPER_DATA = REPO_ROOT / "helper_data"

# Quiet, offline-friendly defaults for the libraries we drive.
_QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def apply_quiet_env() -> None:
    """Set telemetry-off defaults unless the user already chose a value."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _abs(location: str) -> str:
    if _is_url(location):
        return location.rstrip("/")
    if location.startswith("file://"):
        location = location[len("file://") :]
    return str(Path(location).expanduser().resolve())


@dataclass(frozen=True)
class Settings:
    """Resolved locations and runtime choices.

    Attributes:
        lake_root: local folder or object-store URL holding the Parquet tables.
        warehouse: DuckDB file the dbt project builds into.
        reports_dir: where the report flow writes HTML/JSON/text.
        zoo_dir: cache of the demo zoo's checkpoints.
        global_registry: location of the shared registry (guarded writes).
        device: "auto", "cpu", "cuda" or "cuda:N".
    """

    lake_root: str = field(default_factory=lambda: _abs(os.environ.get(f"{ENV_PREFIX}LAKE_ROOT", "lake")))
    warehouse: str = field(
        default_factory=lambda: _abs(os.environ.get(f"{ENV_PREFIX}WAREHOUSE", "warehouse.duckdb"))
    )
    reports_dir: str = field(default_factory=lambda: _abs(os.environ.get(f"{ENV_PREFIX}REPORTS_DIR", "reports")))
    zoo_dir: str = field(default_factory=lambda: _abs(os.environ.get(f"{ENV_PREFIX}ZOO_DIR", ".cache/zoo")))
    global_registry: str = field(
        default_factory=lambda: _abs(os.environ.get(f"{ENV_PREFIX}GLOBAL_REGISTRY", ".cache/global_registry"))
    )
    device: str = field(default_factory=lambda: os.environ.get(f"{ENV_PREFIX}DEVICE", "auto"))

    def with_overrides(self, **kwargs: str | None) -> Settings:
        """Return a copy with the non-None keyword values applied (paths made absolute)."""
        clean = {}
        for key, value in kwargs.items():
            if value is None:
                continue
            clean[key] = value if key == "device" else _abs(str(value))
        return replace(self, **clean)

    def export_env(self) -> dict[str, str]:
        """Environment variables that hand these settings to dbt and subprocesses."""
        env = {
            f"{ENV_PREFIX}LAKE_ROOT": self.lake_root,
            f"{ENV_PREFIX}WAREHOUSE": self.warehouse,
            f"{ENV_PREFIX}REPORTS_DIR": self.reports_dir,
            f"{ENV_PREFIX}ZOO_DIR": self.zoo_dir,
            f"{ENV_PREFIX}GLOBAL_REGISTRY": self.global_registry,
            f"{ENV_PREFIX}DEVICE": self.device,
        }
        from fingerprinting.lake import duckdb_extension_dir, storage_options_from_env

        ext = duckdb_extension_dir()
        if ext:
            env[f"{ENV_PREFIX}DUCKDB_EXTENSION_DIR"] = ext
        # dbt-duckdb's S3 secret (profiles.yml) is filled from these when the lake is on S3
        opts = storage_options_from_env(self.lake_root)
        if opts:
            endpoint = opts.get("AWS_ENDPOINT_URL", "")
            if endpoint:
                env[f"{ENV_PREFIX}S3_ENDPOINT"] = endpoint.split("://", 1)[-1].rstrip("/")
                env[f"{ENV_PREFIX}S3_URL_STYLE"] = "path"
                env[f"{ENV_PREFIX}S3_USE_SSL"] = "false" if endpoint.startswith("http://") else "true"
            env[f"{ENV_PREFIX}S3_REGION"] = opts.get("AWS_REGION", "us-east-1")
        return env

    def apply_env(self) -> None:
        """Write :meth:`export_env` into ``os.environ`` (for dbt's env_var())."""
        os.environ.update(self.export_env())
        apply_quiet_env()


def get_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()

"""The SQL layer: run dbt over the lake and open the DuckDB warehouse."""

from __future__ import annotations

import os
from pathlib import Path

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.settings import REPO_ROOT, Settings, get_settings

DBT_DIR = REPO_ROOT / "dbt_project"


class DbtError(FingerprintLakeError, RuntimeError):
    pass


def run_dbt(args: list[str], settings: Settings | None = None, quiet: bool = True) -> object:
    """Invoke dbt in-process (``dbtRunner``) with the lake/warehouse paths exported.

    Raises :class:`DbtError` when the command fails; returns dbt's result otherwise.
    """
    settings = settings or get_settings()
    settings.apply_env()
    Path(settings.warehouse).parent.mkdir(parents=True, exist_ok=True)
    from dbt.cli.main import dbtRunner

    cwd = os.getcwd()
    try:
        os.chdir(DBT_DIR)  # dbt resolves logs/ and target/ against the working directory
        res = dbtRunner().invoke([*(["--quiet"] if quiet else []), *args, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)])
    finally:
        os.chdir(cwd)
        _release_duckdb()
    if not res.success:
        failed = []
        if res.result is not None and hasattr(res.result, "results"):
            failed = [f"{r.node.name}: {r.status}: {(r.message or '')[:300]}" for r in res.result.results
                      if str(r.status) not in ("success", "pass", "RunStatus.Success", "TestStatus.Pass")]
        raise DbtError(f"dbt {' '.join(args)} failed: " + ("; ".join(failed) or str(res.exception)))
    return res


def _release_duckdb() -> None:
    """dbt-duckdb caches its DuckDB environment per process; close it so the
    warehouse file is free for other connections (DuckDB allows one writer)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        if env is not None:
            try:
                env.close()
            finally:
                DuckDBConnectionManager._ENV = None


def connect(settings: Settings | None = None, read_only: bool = True):
    """A DuckDB connection to the warehouse (read-only by default)."""
    from fingerprinting.lake import Lake, duckdb_connect

    settings = settings or get_settings()
    # staging views read the lake with delta_scan: load the extension (and S3 secret) first
    lake = Lake(settings.lake_root)
    return duckdb_connect(None if lake.is_local else lake.storage_options, database=settings.warehouse,
                          read_only=read_only)

"""The SQL layer: run dbt over the lake and open the DuckDB warehouse."""

from __future__ import annotations

import os
from pathlib import Path

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.settings import REPO_ROOT, Settings, get_settings

DBT_DIR = REPO_ROOT / "dbt_project"


class DbtError(FingerprintLakeError, RuntimeError):
    pass


class WarehouseLockedError(FingerprintLakeError):
    """Another process holds the DuckDB warehouse file."""


def _locked_message(path: str, exc: Exception) -> str:
    text = str(exc)
    holder = ""
    if "Conflicting lock is held in" in text:
        holder = " by " + text.split("Conflicting lock is held in", 1)[1].strip().splitlines()[0].rstrip(".")
    return (f"the warehouse {path} is locked{holder}; DuckDB allows one writer, and a reader blocks "
            "writers too: close the other connection (notebook, DuckDB CLI, a running build) and retry")


def check_unlocked(settings: Settings) -> None:
    """Fail fast with one clear line when another process holds the warehouse file."""
    import duckdb

    if not Path(settings.warehouse).exists():
        return
    try:
        duckdb.connect(settings.warehouse).close()
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLockedError(_locked_message(settings.warehouse, exc)) from exc
        raise


def run_dbt(args: list[str], settings: Settings | None = None, quiet: bool = True) -> object:
    """Invoke dbt in-process (``dbtRunner``) with the lake/warehouse paths exported.

    Raises :class:`DbtError` when the command fails; returns dbt's result otherwise.
    """
    settings = settings or get_settings()
    settings.apply_env()
    Path(settings.warehouse).parent.mkdir(parents=True, exist_ok=True)
    check_unlocked(settings)
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
                      if str(r.status).split(".")[-1].lower() not in ("success", "pass", "warn", "skipped")]
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
    import duckdb

    lake = Lake(settings.lake_root)
    try:
        return duckdb_connect(None if lake.is_local else lake.storage_options, database=settings.warehouse,
                              read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLockedError(_locked_message(settings.warehouse, exc)) from exc
        raise

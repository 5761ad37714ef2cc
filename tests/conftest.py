"""Shared fixtures: one tiny zoo and isolated settings per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fingerprinting.settings import REPO_ROOT, Settings, apply_quiet_env

apply_quiet_env()
STORIES = REPO_ROOT / "helper_data" / "models" / "stories260k"
SHARED_STORIES = REPO_ROOT.parent / "shared" / "models" / "stories260k"


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fplake")


@pytest.fixture(scope="session")
def zoo_settings(session_dir) -> Settings:
    # the zoo cache can be shared across runs via FPLAKE_TEST_ZOO_DIR (CI keeps it per run)
    zoo_dir = os.environ.get("FPLAKE_TEST_ZOO_DIR", str(session_dir / "zoo"))
    return Settings(lake_root=str(session_dir / "lake"), warehouse=str(session_dir / "wh.duckdb"),
                    reports_dir=str(session_dir / "reports"), zoo_dir=zoo_dir,
                    global_registry=str(session_dir / "global"), device="cpu")


@pytest.fixture(scope="session")
def tiny_zoo(zoo_settings) -> dict:
    from fingerprinting.zoo import build_zoo

    return build_zoo("tiny", zoo_settings, progress=False)


@pytest.fixture
def settings(tmp_path, zoo_settings) -> Settings:
    """Fresh lake/warehouse/reports per test, shared zoo cache."""
    return Settings(lake_root=str(tmp_path / "lake"), warehouse=str(tmp_path / "wh.duckdb"),
                    reports_dir=str(tmp_path / "reports"), zoo_dir=zoo_settings.zoo_dir,
                    global_registry=str(tmp_path / "global"), device="cpu")


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole run (starting one costs ~25 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole run (starting one costs ~25 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield

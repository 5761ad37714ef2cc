"""The warehouse: a lock held by another process is one clear line, not a dbt traceback."""

import subprocess
import sys
import time

import pytest

from fingerprinting.warehouse import WarehouseLockedError, connect, run_dbt


def test_lock_clash_is_one_clear_line(settings):
    import duckdb

    duckdb.connect(settings.warehouse).close()  # create the file
    code = (f"import duckdb, time; c = duckdb.connect({settings.warehouse!r}, read_only=True); "
            "print('ready', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseLockedError) as err:
            run_dbt(["build"], settings)
        msg = str(err.value)
        assert settings.warehouse in msg and f"PID {holder.pid}" in msg and "\n" not in msg
        assert "readers block" in msg or "a reader blocks" in msg
        with pytest.raises(WarehouseLockedError):
            connect(settings, read_only=False)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)
    connect(settings, read_only=False).close()  # free again

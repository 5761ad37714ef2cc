#!/usr/bin/env bash
# Command 2 of the README: set up (if needed), lint, run the whole test suite with pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q --timeout=900 --durations=15 "$@"

#!/usr/bin/env bash
# Command 1 of the README: set up on a fresh machine and run the main job on the demo zoo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fplake demo "$@"

#!/usr/bin/env bash
# Regenerate constraints.txt (the lock) from a fresh resolve of pyproject.toml.
# Run after changing dependencies; commit the result. scripts/setup.sh installs with -c constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q "torch==2.13.0"
"$tmp/venv/bin/python" -m pip install -q -e ".[dev]"
{
  echo "# The lock: every package of a fresh install of .[dev], pinned. Made by scripts/lock.sh; do not edit."
  echo "# torch is pinned without its local build label so pip's configured CPU wheel satisfies it."
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+.*/torch==\1/' | sort -f
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"

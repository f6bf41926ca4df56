#!/usr/bin/env bash
# Quick start 2: install, lint, then run the whole test suite (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Lint and format check first, failing fast (settings: [tool.ruff] in pyproject.toml).
.venv/bin/python -m ruff check edgemtl tests benchmarks
.venv/bin/python -m ruff format --check edgemtl tests benchmarks
.venv/bin/python -m pytest -n 2 --durations=25 "$@"

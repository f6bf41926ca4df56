#!/usr/bin/env bash
# Quick start 2: install, lint, then run the whole test suite (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Lint and format check first, failing fast (settings: [tool.ruff] in pyproject.toml).
.venv/bin/python -m ruff check edgemtl tests benchmarks
.venv/bin/python -m ruff format --check edgemtl tests benchmarks
# One pytest worker per CPU that other processes leave free (edgemtl.core.threads).
workers=$(.venv/bin/python -m edgemtl.core.threads --count)  # says why on stderr
.venv/bin/python -m pytest -n "$workers" --durations=25 "$@"

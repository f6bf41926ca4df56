#!/usr/bin/env bash
# Quick start 2: install, then run the whole test suite (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -n 2 --durations=25 "$@"

#!/usr/bin/env bash
# Quick start 1: install, generate the built-in synthetic scenes, train the
# self-distilled Teacher+Student on CPU and print per-head metrics.
# Extra arguments go to `edgemtl train` (e.g. --set train.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/edgemtl train recipes/synthetic.yaml "$@"
echo "next: source .venv/bin/activate (puts edgemtl on PATH), then e.g. edgemtl export --head student"

#!/usr/bin/env bash
# The prepared GPU check (docs/deploy.md "GPU check on a lent device"): installs
# edgemtl into this Python without touching its torch and without network (the
# wheels in .whl/ it lacks, then `pip install --no-deps --no-build-isolation -e .`),
# then times CUDA training, the torch runner's CUDA-event latency and the
# cuda-python buffer path, writing DIR/gpu_check.json after every section.
#   bash scripts/gpu_check.sh [--out DIR] [--only SECTION,...] [--smoke] [--device auto|cpu|cuda]
# DIR defaults to $OUT, else runs/gpu_check. Without a CUDA GPU each GPU section
# prints "== SKIP <section>: <reason>"; --cpu-smoke runs them on the CPU at tiny
# settings. PYTHON picks the interpreter (default python3: the device image's).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py "$@"

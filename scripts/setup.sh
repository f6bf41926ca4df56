#!/usr/bin/env bash
# Creates .venv (once) and installs edgemtl with its training, aggregator (mtl) and test extras,
# pinned by constraints.txt. Re-running is cheap: pip finds everything present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.edgemtl-install-stamp
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[train,mtl,dev]"
  # Type stubs for the TensorRT code path (mypy in CI). --no-deps: the stubs
  # package depends on tensorrt itself, whose libraries only NVIDIA's index has.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt tensorrt-stubs
  echo "$want" > "$stamp"
fi

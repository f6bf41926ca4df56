#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored) the Python 3.12 manylinux x86-64 wheels that
# the lent GPU device's image lacks, at the versions this repository's .venv
# uses, so scripts/gpu_check.sh installs them there without network. The names
# come from CARRIED in benchmarks/gpu_check.py. Run it here (it needs PyPI and
# .venv), then pass carry: [".whl"] to the device tool (docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LIMIT=$((64 * 1024 * 1024))  # what the device tool carries: the working tree and .whl together
read -r -a names <<< "$("$PY" benchmarks/gpu_check.py --carried)"
rm -rf .whl && mkdir .whl   # one version of each: two would stop the install
for name in "${names[@]}"; do
  version=$("$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name")
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$name==$version"
  echo "$name==$version"
done
wheels=$(du -cb .whl/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
echo "wheels: $((wheels / 1024)) KiB; with the tracked tree: $(((wheels + tree) / 1024)) KiB of $((LIMIT / 1024))"
if [ $((wheels + tree)) -gt "$LIMIT" ]; then
  echo "over the device tool's 64 MiB: carry fewer wheels" >&2
  exit 1
fi

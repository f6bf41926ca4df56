#!/usr/bin/env bash
# Creates .venv (once) and installs edgemtl with its training, aggregator (mtl) and
# test extras, pinned by constraints.txt. Re-running is cheap: a stamp of pyproject.toml and
# constraints.txt skips pip when nothing changed.
#
# The first install downloads PyTorch and friends (about 2-3 minutes): it says
# so up front and prints one line per package pip collects and installs, so a
# silent terminal never means a hung one. pip's full output goes to
# .venv/pip-install.log, whose tail is printed if pip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
stamp=.venv/.edgemtl-install-stamp
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
log=.venv/pip-install.log

# pip with one short line per step on the terminal and everything in $log.
pip_install() {
  set +e
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off "$@" 2>> "$log" \
    | tee -a "$log" \
    | awk '/^Collecting / { sub(/^Collecting /, "  collecting "); print; fflush() }
           /^Installing collected packages/ { print "  installing..."; fflush() }
           /^Successfully installed/ { print "  installed " NF - 2 " packages"; fflush() }
           /^ERROR/ { print; fflush() }'
  local status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "setup: pip failed (exit $status); the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit "$status"
  fi
}

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  : > "$log"
  start=$SECONDS
  echo "setup: installing edgemtl[train,mtl,dev] into .venv, pinned by constraints.txt"
  echo "setup: the first time downloads PyTorch (CPU) and ~60 packages: about 2-3 minutes"
  pip_install -c constraints.txt -e ".[train,mtl,dev]"
  # Type stubs for the TensorRT code path (mypy in CI). --no-deps: the stubs
  # package depends on tensorrt itself, whose libraries only NVIDIA's index has.
  pip_install --no-deps -c constraints.txt tensorrt-stubs
  echo "$want" > "$stamp"
  echo "setup: done in $((SECONDS - start)) s (pip's full log: $log)"
fi
# Commands below call .venv/bin/edgemtl; a shell gets `edgemtl` on its PATH with:
echo "setup: .venv is ready; to type 'edgemtl' directly: source .venv/bin/activate"

"""The repository root and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run `python -m edgemtl ...` in a subprocess (the real CLI, exit codes and all)."""
    full_env = {k: v for k, v in os.environ.items() if k != "EDGEMTL_DEBUG"}
    full_env.update({"COLUMNS": "120", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "edgemtl", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
    )

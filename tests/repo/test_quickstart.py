"""Quick-start command 1 with tiny overrides, so the README's first command cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.helpers.cli import REPO
from tests.helpers.tiny_run import TINY_OVERRIDES


def test_quickstart_script_trains_and_prints_per_head_metrics(tmp_path: Path) -> None:
    args = [arg for override in [*TINY_OVERRIDES, "train.epochs=1"] for arg in ("--set", override)]
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "quickstart.sh"), *args, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for word in ("teacher", "student", "ensemble", "(constant)", "mIoU", "best.pt"):
        assert word in proc.stdout, word
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["final"]) == {"teacher", "student", "ensemble"}

"""`edgemtl profile` / `edgemtl predict` through the real CLI.

Exit codes, one-line errors, `--json -`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.cli import run_cli
from tests.helpers.toy_bundle import make_toy_bundle


def test_profile_json_stdout_and_errors(tmp_path: Path) -> None:
    bundle = make_toy_bundle(tmp_path / "b")
    proc = run_cli(
        "profile",
        str(bundle),
        "--iterations",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--idle",
        "0",
        "--json",
        "-",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["artifacts"][0]["rows"][0]["latency"]["count"] == 3
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"x")
    proc = run_cli("profile", str(junk))
    assert proc.returncode == 1 and "not a model file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = run_cli("profile", str(bundle), "--batch", "0")
    assert proc.returncode == 1 and "--batch" in proc.stderr


def test_predict_cli(tmp_path: Path) -> None:
    bundle = make_toy_bundle(tmp_path / "b")
    frame = tmp_path / "f.png"
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(frame)
    proc = run_cli("predict", str(bundle), str(frame), "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "f.npz").is_file() and (tmp_path / "o" / "f.seg.png").is_file()
    proc = run_cli(
        "predict", str(bundle), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")
    )
    assert proc.returncode == 1 and "no such image" in proc.stderr

"""The device profile: `pip install edgemtl` (no extras) into a fresh venv without torch, then
`edgemtl profile` and `edgemtl predict` on an ONNX bundle, as on a Jetson or CPU box.

The venv is made with plain `python -m venv` (no system site packages), so only
what pyproject.toml declares is there. pip takes wheels from its cache or the
configured index; with no index reachable the test skips and says so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.cli import REPO
from tests.helpers.toy_bundle import make_toy_bundle

OFFLINE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution"
    r"|Network is unreachable"
)


def _source_copy(dest: Path) -> Path:
    """pyproject + package only: pip builds there, leaving no build/ or egg-info in the repo."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "edgemtl", dest / "edgemtl", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest


@pytest.mark.slow
@pytest.mark.venv
def test_device_profile_installs_without_torch_and_runs_profile_and_predict(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, cli = venv / "bin" / "python", venv / "bin" / "edgemtl"
    install = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",
            "--disable-pip-version-check",
            str(_source_copy(tmp_path / "src")),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if install.returncode != 0 and OFFLINE.search(install.stdout + install.stderr):
        pytest.skip(
            "no package index reachable and the pip cache lacks the device profile's wheels"
        )
    assert install.returncode == 0, install.stderr[-3000:]

    code = (
        "import importlib.util as u, json; print(json.dumps("
        "{m: u.find_spec(m) is not None for m in ('torch', 'onnxruntime', 'edgemtl', 'typer')}))"
    )
    probe = subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(probe.stdout) == {
        "torch": False,
        "onnxruntime": True,
        "edgemtl": True,
        "typer": True,
    }

    bundle = make_toy_bundle(tmp_path / "bundle", "student")
    frame = tmp_path / "frame.png"
    Image.fromarray((np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)).save(
        frame
    )
    work = tmp_path / "work"  # outside the repo: nothing can import the source tree
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "120"}
    prof = subprocess.run(
        [
            str(cli),
            "profile",
            str(bundle),
            "--iterations",
            "3",
            "--warmup",
            "1",
            "--warmup-s",
            "0",
            "--rounds",
            "1",
            "--idle",
            "0",
            "--threads",
            "1",
            "--json",
            str(work / "profile.json"),
            "--quiet",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=300,
    )
    assert prof.returncode == 0, prof.stderr[-3000:]
    report = json.loads((work / "profile.json").read_text())
    assert report["artifacts"][0]["rows"], report
    pred = subprocess.run(
        [
            str(cli),
            "predict",
            str(bundle),
            str(frame),
            "--out",
            str(work / "preds"),
            "--threads",
            "1",
            "--quiet",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=300,
    )
    assert pred.returncode == 0, pred.stderr[-3000:]
    arrays = np.load(work / "preds" / "frame.npz")
    assert arrays["seg"].shape == (24, 40) and (work / "preds" / "frame.seg.png").is_file()
    # A checkpoint needs the training profile, and says how to get it.
    ckpt = work / "best.pt"
    ckpt.write_bytes(b"x")
    needs_torch = subprocess.run(
        [str(cli), "profile", str(ckpt), "--quiet"],
        check=False,
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=120,
    )
    assert needs_torch.returncode == 1 and "pip install 'edgemtl[train]'" in needs_torch.stderr

"""The device install exactly as docs/deploy.md writes it (build a wheel, install it into a
fresh venv without torch), then `edgemtl profile` and `edgemtl predict` on an ONNX bundle with
the installed command, as on a Jetson or CPU box.

The commands are read from the block between `<!-- device-install -->` markers and run
by bash, unchanged, in a folder holding a copy of the clone (`edgemtl/`). The venvs are
plain `python -m venv` (no system site packages), so only what pyproject.toml declares
is there. pip takes wheels from its cache or the configured index; with no index
reachable the test skips and says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgemtl import __version__
from edgemtl.core.errors import TRAIN_EXTRA
from tests.helpers.cli import REPO
from tests.helpers.toy_bundle import make_toy_bundle

OFFLINE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution"
    r"|Network is unreachable"
)


def device_install_commands() -> str:
    """The bash block of docs/deploy.md between the device-install markers."""
    text = (REPO / "docs" / "deploy.md").read_text()
    found = re.search(
        r"<!-- device-install -->\s*```bash\n(.*?)```\s*<!-- /device-install -->", text, re.S
    )
    assert found, "docs/deploy.md lost its <!-- device-install --> block"
    return found.group(1)


def _clone_copy(dest: Path) -> Path:
    """What a clone holds for an install: pyproject, README and the package (no build/)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "edgemtl", dest / "edgemtl", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest


@pytest.mark.slow
@pytest.mark.venv
def test_device_install_as_documented_then_profile_and_predict(tmp_path: Path) -> None:
    _clone_copy(tmp_path / "edgemtl")
    python_dir = str(Path(sys.executable).parent)
    shell_env = {
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "http", "HTTP"))},
        "PATH": f"{python_dir}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),  # pip's cache and config live there
    }
    install = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", device_install_commands()],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=shell_env,
        timeout=1500,
    )
    if install.returncode != 0 and OFFLINE.search(install.stdout + install.stderr):
        pytest.skip("no package index reachable and the pip cache lacks the device wheels")
    assert install.returncode == 0, install.stderr[-3000:]
    assert install.stdout.strip().splitlines()[-1] == f"edgemtl {__version__}"
    venv = tmp_path / "edgemtl-env"
    py, cli = venv / "bin" / "python", venv / "bin" / "edgemtl"

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
    assert needs_torch.returncode == 1 and TRAIN_EXTRA in needs_torch.stderr

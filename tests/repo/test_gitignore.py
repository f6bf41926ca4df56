"""What installing and building leave in a clone is ignored by git: `pip install ./edgemtl`
writes build/ and *.egg-info/, `python -m build` writes dist/ (docs/deploy.md)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers.cli import REPO


@pytest.mark.parametrize(
    "path", ["build/lib/edgemtl/cli.py", "dist/edgemtl-0.1.0-py3-none-any.whl", "edgemtl.egg-info/"]
)
def test_install_and_build_leftovers_are_ignored(path: str) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, check=False, timeout=30
    )
    assert proc.returncode == 0, f"{path} is not ignored by .gitignore"


def test_sources_are_not_ignored() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", "edgemtl/build.py"], cwd=REPO, check=False
    )
    assert proc.returncode == 1

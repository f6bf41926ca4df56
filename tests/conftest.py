"""Shared fixtures: one tiny trained checkpoint per test session, CLI runner.

The tiny checkpoint is trained once per session even under pytest-xdist: the
first worker trains it under a file lock in the session's shared temp root;
the others wait and reuse it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Small enough to train in seconds on one core; both heads present.
TINY_OVERRIDES = [
    "data.size=[32,64]",
    "data.synthetic.n_train=32",
    "data.synthetic.n_val=12",
    "data.workers=0",
    "model.width=0.125",
    "train.epochs=2",
    "train.batch_size=4",
    "train.optimizer.lr=0.002",
    "train.threads=1",
]


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


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is <session root>/popen-gwN.
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _train_once(root: Path, name: str, overrides: list[str]) -> Path:
    run_dir = root / name
    best = run_dir / "best.pt"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not best.is_file():
            import torch

            from edgemtl.training.train_command import TrainOptions, run_training

            threads = torch.get_num_threads()
            try:
                recipe = REPO / "recipes" / "synthetic.yaml"
                run_training(TrainOptions.from_file(recipe, overrides, out=run_dir, quiet=True))
            finally:
                torch.set_num_threads(threads)
        fcntl.flock(lock, fcntl.LOCK_UN)
    return best


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a 2-epoch `sd` run (teacher + student + ensemble heads), 32x64, width 0.125."""
    return _train_once(_shared_root(tmp_path_factory), "tiny-sd", TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_vanilla_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a 1-epoch `vanilla` run (teacher head only)."""
    overrides = [*TINY_OVERRIDES, "method={name: vanilla}", "train.epochs=1"]
    return _train_once(_shared_root(tmp_path_factory), "tiny-vanilla", overrides)


@pytest.fixture(scope="session")
def tiny_single_task_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a 1-epoch single-task (seg) `vanilla` run: a KD4MTL / BAM teacher."""
    overrides = [*TINY_OVERRIDES, "method={name: vanilla}", "tasks=[seg]", "train.epochs=1"]
    return _train_once(_shared_root(tmp_path_factory), "tiny-single-seg", overrides)

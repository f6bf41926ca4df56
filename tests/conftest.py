"""Repo-wide fixtures: one tiny trained checkpoint per test session (per kind).

The tiny checkpoint is trained once per session even under pytest-xdist: the
first worker trains it under a file lock in the session's shared temp root;
the others wait and reuse it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tests.helpers.cli import REPO
from tests.helpers.tiny_run import TINY_OVERRIDES

#: A skip Student with ConvTranspose up-stages and two shared stages.
TRANSPOSE_S2 = [
    "model.student.kind=skip",
    "model.student.shared_stages=2",
    "model.student.upsample=transpose",
]


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
    # The ConvTranspose skip Student (the first default), so the INT8 tests see the
    # ConvTranspose nodes the quantiser keeps float.
    overrides = [*TINY_OVERRIDES, *TRANSPOSE_S2]
    return _train_once(_shared_root(tmp_path_factory), "tiny-sd", overrides)


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


@pytest.fixture(scope="session")
def tiny_skip_exits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a 2-epoch `sd` run with a `skip` Student (2 shared stages) and exits 1-3."""
    overrides = [
        *TINY_OVERRIDES,
        *TRANSPOSE_S2,
        "model.exits=[1,2,3]",
    ]
    return _train_once(_shared_root(tmp_path_factory), "tiny-skip-exits", overrides)

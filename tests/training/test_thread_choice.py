"""A run's thread choice: recorded in the run folder, reused by --resume, overridable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgemtl.core.config import load_recipe
from edgemtl.core.threads import ThreadChoice, run_choice
from edgemtl.training.checkpoint import load_checkpoint
from edgemtl.training.device import TORCH_DEFAULT_THREADS
from edgemtl.training.train_command import TrainOptions, run_training
from edgemtl.training.trainer import Position, Trainer, TrainingInterrupted
from tests.helpers.cli import REPO
from tests.helpers.tiny_run import TINY_OVERRIDES

RECIPE = REPO / "recipes" / "synthetic.yaml"
#: The suite's tiny run, its threads left to the automatic choice.
AUTO = [o for o in TINY_OVERRIDES if not o.startswith("train.threads")] + [
    "data.synthetic.n_train=16",
    "data.workers=null",
    "train.epochs=1",
]


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> object:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _interrupted_run(run: Path, overrides: list[str]) -> None:
    def stop(position: Position) -> None:
        if position.global_step == 2:
            raise KeyboardInterrupt

    trainer = Trainer(load_recipe(RECIPE, overrides), run, quiet=True, step_callback=stop)
    trainer.init_from_data()
    with pytest.raises(TrainingInterrupted):
        trainer.fit()


def _rewrite_record(path: Path, record: dict | None) -> None:
    data = torch.load(path, weights_only=True)
    if record is None:
        data.pop("threads")
    else:
        data["threads"] = record
    torch.save(data, path)


def test_auto_choice_is_recorded_and_reused_on_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _interrupted_run(run, AUTO)
    saved = load_checkpoint(run / "last.pt").threads
    auto = run_choice("cpu")
    assert saved is not None and saved.source == "auto"
    assert (saved.threads, saved.workers) == (auto.threads, 0)  # CPU: loading in-process
    assert saved.facts is not None and saved.facts["cpus"] >= 1
    # Whatever this machine looks like now, the resumed run takes the recorded count.
    recorded = ThreadChoice(threads=3, workers=0, source="auto").to_dict()
    _rewrite_record(run / "last.pt", recorded)
    summary = run_training(TrainOptions.from_file(RECIPE, [], out=run, resume=True, quiet=True))
    assert torch.get_num_threads() == 3
    assert summary["threads"] == 3
    assert summary["thread_choice"]["threads"] == 3
    assert summary["thread_choice"]["source"] == "checkpoint"
    assert json.loads((run / "summary.json").read_text())["thread_choice"]["threads"] == 3
    assert load_checkpoint(run / "last.pt").threads.threads == 3  # and passed on


def test_train_threads_overrides_and_old_checkpoints_keep_torch_default(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _interrupted_run(run, AUTO)
    _rewrite_record(run / "last.pt", None)  # as written before edgemtl recorded threads
    resume = TrainOptions.from_file(RECIPE, ["train.epochs=1"], out=run, resume=True, quiet=True)
    summary = run_training(resume)
    assert summary["thread_choice"]["source"] == "torch default"
    assert summary["threads"] == TORCH_DEFAULT_THREADS
    fresh = tmp_path / "fixed"
    summary = run_training(
        TrainOptions.from_file(RECIPE, [*AUTO, "train.threads=2"], out=fresh, quiet=True)
    )
    assert summary["threads"] == 2 and summary["thread_choice"]["source"] == "train.threads"

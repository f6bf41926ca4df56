"""Every recipe validates and trains 2 steps under one fixed override set on synthetic data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from edgemtl.core.config import AGGREGATOR_NAMES, LOSS_BALANCER_NAMES, Recipe, load_recipe
from edgemtl.training.data import PreparedSplit, train_loader
from edgemtl.training.methods import METHODS, StepContext
from edgemtl.training.trainer import Trainer
from tests.helpers.cli import REPO

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))

#: The fixed override set: tiny network and inputs, synthetic data, batch 2.
FIXED = [
    "data.kind=synthetic",
    "data.root=null",
    "data.root_env=null",
    "data.size=[64,128]",
    "data.synthetic={n_train: 4, n_val: 2, seed: 0}",
    "data.workers=0",
    "model.width=0.125",
    "train.batch_size=2",
    "train.epochs=1",
    "train.eval_limit=2",
    "train.threads=1",
]


def test_the_zoo_is_complete() -> None:
    names = {path.stem for path in RECIPES}
    for dataset in ("synthetic", "nyuv2", "cityscapes", "taskonomy"):
        for variant in (
            "",
            "-vanilla",
            "-lambda0",
            "-sd-ensemble",
            "-kd-two-stage",
            "-no-attention",
            "-unet",
            "-single",
            "-single-vanilla",
            "-kd4mtl",
            "-bam",
            *(f"-{b}" for b in LOSS_BALANCER_NAMES if b != "equal"),
        ):
            assert f"{dataset}{variant}" in names
    methods = {load_recipe(path).method.name for path in RECIPES}
    balancers = {load_recipe(path).train.balancer.name for path in RECIPES}
    # The papers' balancers have recipes; aggregators are `--set train.balancer.name=...`.
    assert methods == set(METHODS) and balancers == set(LOSS_BALANCER_NAMES)


def _overrides(recipe_path: Path, teachers: tuple[Path, Path]) -> list[str]:
    """The fixed set, plus teacher checkpoints for the methods that need them."""
    vanilla, single = teachers
    recipe = load_recipe(recipe_path)
    overrides = list(FIXED)
    if recipe.method.name in ("kd4mtl", "bam"):
        chosen = {key: str(vanilla) for key in recipe.tasks}
        if "seg" in chosen:
            chosen["seg"] = str(single)  # a real single-task teacher
        overrides += [f"method.teachers={chosen}", "train.reference=null"]
    if recipe.method.name == "kd_two_stage":
        overrides.append(f"method.teacher={vanilla}")
    return overrides


def _two_steps(recipe: Recipe, run_dir: Path) -> list[dict[str, float]]:
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(recipe, run_dir, quiet=True)
        trainer.init_from_data()
        loader = train_loader(
            PreparedSplit(trainer.train_reader, trainer.input_spec), 2, 0, 0, 0, 0
        )
        trainer.model.train()
        logs = []
        for step, (images, targets) in enumerate(loader):
            ctx = StepContext(0, 1, step, trainer.steps_per_epoch)
            logs.append(trainer.train_step(images, targets, ctx))
            assert math.isfinite(logs[-1]["total"])
        assert len(logs) == 2  # 4 images, batch 2: exactly 2 steps
        return logs
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_and_trains_two_steps(
    path: Path, tmp_path: Path, tiny_vanilla_checkpoint: Path, tiny_single_task_checkpoint: Path
) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    overrides = _overrides(path, (tiny_vanilla_checkpoint, tiny_single_task_checkpoint))
    recipe = load_recipe(path, overrides)
    for logged in _two_steps(recipe, tmp_path / "run"):
        assert {f"weight.{key}" for key in recipe.tasks} <= set(logged)


#: Each aggregator trains with another method of the zoo (all of them are composable).
AGGREGATOR_RECIPES = ["synthetic", "synthetic-vanilla", "synthetic-sd-ensemble", "synthetic-bam"]


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_aggregator_trains_two_steps(
    name: str, tmp_path: Path, tiny_vanilla_checkpoint: Path, tiny_single_task_checkpoint: Path
) -> None:
    stem = AGGREGATOR_RECIPES[AGGREGATOR_NAMES.index(name) % len(AGGREGATOR_RECIPES)]
    path = REPO / "recipes" / f"{stem}.yaml"
    overrides = _overrides(path, (tiny_vanilla_checkpoint, tiny_single_task_checkpoint))
    recipe = load_recipe(path, [*overrides, f"train.balancer.name={name}"])
    for logged in _two_steps(recipe, tmp_path / "run"):
        weights = {k for k in logged if k.startswith("weight.")}
        if name in ("graddrop", "config"):  # torchjd exposes no per-task weights for these
            assert not weights
        else:
            assert weights == {f"weight.{key}" for key in recipe.tasks}

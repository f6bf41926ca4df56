"""Every recipe validates and trains 2 steps under one fixed override set on synthetic data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from edgemtl.core.config import load_recipe
from edgemtl.training.data import PreparedSplit, train_loader
from edgemtl.training.methods import METHODS, StepContext
from edgemtl.training.methods.balancers import BALANCERS
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
            *(f"-{b}" for b in BALANCERS if b != "equal"),
        ):
            assert f"{dataset}{variant}" in names
    methods = {load_recipe(path).method.name for path in RECIPES}
    balancers = {load_recipe(path).train.balancer.name for path in RECIPES}
    assert methods == set(METHODS) and balancers == set(BALANCERS)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_and_trains_two_steps(
    path: Path, tmp_path: Path, tiny_vanilla_checkpoint: Path, tiny_single_task_checkpoint: Path
) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    overrides = list(FIXED)
    if recipe.method.name in ("kd4mtl", "bam"):
        teachers = {key: str(tiny_vanilla_checkpoint) for key in recipe.tasks}
        if "seg" in teachers:
            teachers["seg"] = str(tiny_single_task_checkpoint)  # a real single-task teacher
        overrides += [f"method.teachers={teachers}", "train.reference=null"]
    if recipe.method.name == "kd_two_stage":
        overrides.append(f"method.teacher={tiny_vanilla_checkpoint}")
    recipe = load_recipe(path, overrides)
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(recipe, tmp_path / "run", quiet=True)
        trainer.init_from_data()
        loader = train_loader(
            PreparedSplit(trainer.train_reader, trainer.input_spec), 2, 0, 0, 0, 0
        )
        trainer.model.train()
        for step, (images, targets) in enumerate(loader):
            ctx = StepContext(0, 1, step, trainer.steps_per_epoch)
            logged = trainer.train_step(images, targets, ctx)
            assert math.isfinite(logged["total"])
            assert {f"weight.{key}" for key in recipe.tasks} <= set(logged)
        assert step == 1  # 4 images, batch 2: exactly 2 steps
    finally:
        torch.set_num_threads(threads)

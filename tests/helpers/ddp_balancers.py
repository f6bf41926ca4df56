"""Two training steps per balancer, the same way under torchrun and in one process.

    torchrun --nproc-per-node 2 tests/helpers/ddp_balancers.py OUT RECIPE NAME[,NAME...] [SET...]

Under torchrun every balancer NAME trains two steps of `RECIPE` (with the `--set`
overrides SET) in ONE launch: the process group is created once and each
Trainer joins it. Rank 0 writes OUT/NAME.pt: {"model": state dict, "logged":
the two steps' logged values}. `two_steps` is also what the test runs in its
own process (with `train.micro_batches=2`) to compare.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist

from edgemtl.core.config import load_recipe
from edgemtl.training.data import PreparedSplit, train_loader
from edgemtl.training.distributed import Dist
from edgemtl.training.methods import StepContext
from edgemtl.training.trainer import Trainer


def two_steps(recipe_path: Path, sets: list[str], run_dir: Path) -> dict[str, Any]:
    """{"model": weights after two steps, "logged": each step's logged values}."""
    recipe = load_recipe(recipe_path, sets)
    threads = torch.get_num_threads()
    try:
        dist = Dist.from_env("cpu")
        trainer = Trainer(recipe, run_dir, quiet=True, dist=dist)
        cfg = recipe.train
        dataset = PreparedSplit(trainer.train_reader, trainer.input_spec)
        loader = train_loader(
            dataset, cfg.batch_size, cfg.seed, 0, 0, 0, rank=dist.rank, world_size=dist.world_size
        )
        trainer.model.train()
        logged = []
        for step, (images, targets) in enumerate(loader):
            if step == 2:
                break
            ctx = StepContext(0, 1, step, trainer.steps_per_epoch)
            logged.append(trainer.train_step(images, targets, ctx))
        return {"model": trainer.model.state_dict(), "logged": logged}
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    out, recipe, names, *sets = sys.argv[1:]
    tdist.init_process_group("gloo")
    try:
        for name in names.split(","):
            result = two_steps(Path(recipe), [*sets, f"train.balancer.name={name}"], Path(out))
            if tdist.get_rank() == 0:
                torch.save(result, Path(out) / f"{name}.pt")
    finally:
        tdist.destroy_process_group()


if __name__ == "__main__":
    main()

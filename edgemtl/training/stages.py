"""Runs made of several trainings: two-stage KD's stage 1 before the Student's stage 2.

Why here and not in the trainer: the Trainer trains one network; a two-stage
method is two ordinary runs, the first one's best.pt feeding the second's
recipe (`method.teacher`). Stage 1 lands in `<run>/stage1/` and is reused (or
continued from its last.pt) when the same command runs again with `--out`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from edgemtl.core.config import Recipe, recipe_from_dict
from edgemtl.training.checkpoint import load_checkpoint
from edgemtl.training.distributed import Dist
from edgemtl.training.trainer import Trainer

STAGE1 = "stage1"


def stage1_recipe(recipe: Recipe) -> Recipe:
    """The Teacher-only (vanilla) run of a kd_two_stage recipe: same data, model, train settings."""
    raw = recipe.dump()
    method = raw["method"]
    raw["method"] = {
        "name": "vanilla",
        "tau": method.get("tau", 1.0),
        "detach_teacher": method.get("detach_teacher", True),
    }
    raw["name"] = f"{recipe.name}-{STAGE1}"
    raw["train"]["select"]["head"] = None
    return recipe_from_dict(raw, f"{recipe.name} (stage 1)")


def prepare_stages(
    recipe: Recipe,
    run_dir: Path,
    device: str | None,
    quiet: bool,
    console: Console,
    dist: Dist | None = None,
) -> Recipe:
    """Train what must exist before `recipe` can train; return the recipe that then trains."""
    method: Any = recipe.method
    if method.name != "kd_two_stage" or method.teacher:
        return recipe
    folder = run_dir / STAGE1
    if not (folder / "summary.json").is_file():
        first = stage1_recipe(recipe)
        trainer = Trainer(first, folder, device, quiet, console, dist=dist)
        if (folder / "last.pt").is_file():
            trainer.restore(load_checkpoint(folder / "last.pt"))
            console.print(f"stage 1 (Teacher): resuming {folder}")
        elif dist is None or dist.is_main:  # under torchrun fit() broadcasts rank 0's weights
            trainer.init_from_data()
            console.print(f"stage 1 (Teacher network, vanilla) -> {folder}")
        trainer.fit()
    console.print(
        f"stage 2 (separate Student network against the frozen Teacher {folder / 'best.pt'})"
    )
    raw = recipe.dump()
    raw["method"]["teacher"] = str(folder / "best.pt")
    return recipe_from_dict(raw, recipe.name)

"""Training objectives. `build_method(recipe, specs)` picks one by `method.name`."""

from __future__ import annotations

from collections.abc import Sequence

from edgemtl.core.config import Recipe
from edgemtl.core.errors import UserError
from edgemtl.core.tasks import TaskSpec
from edgemtl.training.methods.bam import BAM
from edgemtl.training.methods.base import Method, StepContext
from edgemtl.training.methods.kd import TwoStageKD
from edgemtl.training.methods.kd4mtl import KD4MTL
from edgemtl.training.methods.sd import SelfDistillation, Vanilla

METHODS: dict[str, type[Method]] = {
    "vanilla": Vanilla,
    "sd": SelfDistillation,
    "sd_ensemble": SelfDistillation,
    "kd_two_stage": TwoStageKD,
    "kd4mtl": KD4MTL,
    "bam": BAM,
}


def build_method(recipe: Recipe, specs: Sequence[TaskSpec]) -> Method:
    try:
        cls = METHODS[recipe.method.name]
    except KeyError:
        raise UserError(
            f"unknown method {recipe.method.name!r} (expected one of: {', '.join(METHODS)})"
        ) from None
    return cls(recipe, specs)


__all__ = ["METHODS", "Method", "StepContext", "build_method"]

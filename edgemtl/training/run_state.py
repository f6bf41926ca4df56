"""A trainer's state to and from checkpoint fields (docs/formats.md "Checkpoint").

Why apart from `checkpoint` (the file: save, load, validate): this is the
mapping of one run's live objects (model, optimizer, scheduler, balancer, AMP
scaler, RNG, position, selection, history) onto the fields, both ways, so
`--resume` continues bit for bit.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from edgemtl.core.checkpoint_schema import Checkpoint, Position
from edgemtl.core.config import Recipe
from edgemtl.core.tasks import TaskSpec
from edgemtl.data.preprocess import InputSpec
from edgemtl.training.amp import Precision
from edgemtl.training.distributed import Dist
from edgemtl.training.methods import Method
from edgemtl.training.methods.balancers import Balancer
from edgemtl.training.run_log import RunLog
from edgemtl.training.selection import Selection


class Trainer(Protocol):
    """What this mapping reads and writes of `training.trainer.Trainer` (which imports this
    module)."""

    recipe: Recipe
    specs: list[TaskSpec]
    method: Method
    model: nn.Module
    extra: nn.Module | None
    balancer: Balancer
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    position: Position
    log: RunLog
    selection: Selection
    record: dict[str, Any]
    input_spec: InputSpec
    precision: Precision
    dist: Dist


def checkpoint_payload(trainer: Trainer) -> dict[str, Any]:
    """Every field `save_checkpoint` writes (format and versions are added there)."""
    recipe = trainer.recipe
    return {
        "recipe": recipe.dump(),
        "tasks": {spec.key: spec.to_dict() for spec in trainer.specs},
        "heads": list(trainer.method.eval_heads),
        "model": trainer.model.state_dict(),
        "extra": trainer.extra.state_dict() if trainer.extra is not None else None,
        "balancer": {"name": trainer.balancer.name, "state": trainer.balancer.state_dict()},
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "epoch": trainer.position.epoch,
        "position": trainer.position.model_dump(),
        "rng": {"torch": torch.get_rng_state()},
        "metrics": trainer.log.last,
        "select": trainer.selection.to_dict(),
        "data": trainer.record,
        "input": trainer.input_spec.to_dict(),
        "upsampling": recipe.model.upsampling,
        "amp_scaler": trainer.precision.state_dict(),
        "distributed": {
            "world_size": trainer.dist.world_size,
            "micro_batches": recipe.train.micro_batches,
        },
    }


def restore(trainer: Trainer, ckpt: Checkpoint) -> None:
    """Put `trainer` exactly where `ckpt` (a last.pt) stopped; metrics.jsonl is cut to match.

    Raises `UserError` when the checkpoint lacks the state resuming needs
    (e.g. written by an older edgemtl without optimizer state).
    """
    ckpt.require("optimizer", "position", "rng", "select", purpose="to resume training")
    assert ckpt.position is not None and ckpt.select is not None and ckpt.rng is not None
    trainer.model.load_state_dict(ckpt.model)
    if trainer.extra is not None and ckpt.extra is not None:
        trainer.extra.load_state_dict(ckpt.extra)
    trainer.optimizer.load_state_dict(ckpt.optimizer)  # type: ignore[arg-type]
    if trainer.scheduler is not None and ckpt.scheduler is not None:
        trainer.scheduler.load_state_dict(ckpt.scheduler)
    if ckpt.balancer is not None:
        trainer.balancer.load_state_dict(ckpt.balancer.state)
    trainer.position = ckpt.position.model_copy()
    torch.set_rng_state(ckpt.rng["torch"])
    trainer.precision.load_state_dict(ckpt.amp_scaler)
    trainer.selection = Selection.from_record(
        ckpt.select, own_reference=not trainer.recipe.train.reference
    )
    trainer.log.read_back(upto_epoch=trainer.position.epoch)

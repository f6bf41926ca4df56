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
from edgemtl.core.errors import UserError
from edgemtl.core.tasks import TaskSpec
from edgemtl.core.threads import ThreadChoice
from edgemtl.data.preprocess import InputSpec
from edgemtl.training.amp import Precision
from edgemtl.training.device import training_threads
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
    threads: ThreadChoice
    device: torch.device


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
        "threads": trainer.threads.to_dict(),
    }


def restore(trainer: Trainer, ckpt: Checkpoint) -> None:
    """Put `trainer` exactly where `ckpt` (a last.pt) stopped; metrics.jsonl is cut to match.

    Raises `UserError` when the checkpoint lacks the state resuming needs
    (e.g. written by an older edgemtl without optimizer state), or when its state
    does not fit the network the (overridden) recipe builds: one line naming the
    recipe keys that differ from the checkpoint's (`recipe_changes`).
    """
    ckpt.require("optimizer", "position", "rng", "select", purpose="to resume training")
    assert ckpt.position is not None and ckpt.select is not None and ckpt.rng is not None
    try:
        trainer.model.load_state_dict(ckpt.model)
        if trainer.extra is not None and ckpt.extra is not None:
            trainer.extra.load_state_dict(ckpt.extra)
        trainer.optimizer.load_state_dict(ckpt.optimizer)  # type: ignore[arg-type]
        if trainer.scheduler is not None and ckpt.scheduler is not None:
            trainer.scheduler.load_state_dict(ckpt.scheduler)
        if ckpt.balancer is not None:
            trainer.balancer.load_state_dict(ckpt.balancer.state)
        trainer.precision.load_state_dict(ckpt.amp_scaler)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise UserError(_incompatible(ckpt, trainer.recipe, exc)) from None
    trainer.position = ckpt.position.model_copy()
    trainer.threads = training_threads(
        trainer.recipe.train, trainer.device.type, ckpt.threads, resumed=True
    )
    torch.set_rng_state(ckpt.rng["torch"])
    trainer.selection = Selection.from_record(
        ckpt.select, own_reference=not trainer.recipe.train.reference
    )
    trainer.log.read_back(upto_epoch=trainer.position.epoch)


def recipe_changes(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two recipe dicts ("model.width"), sorted."""
    out: list[str] = []
    for key in sorted(set(before) | set(after), key=str):
        name = f"{prefix}{key}"
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(recipe_changes(a, b, name + "."))
        elif a != b:
            out.append(name)
    return out


def _value_at(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None  # type: ignore[assignment]
    return tree


def _change(key: str, before: Any, after: Any) -> str:
    """One differing key as the error names it: `model.width 0.125 -> 0.25`, `tasks.edges
    (removed)`; sections and long values by name only."""
    if before is None or after is None:
        return f"{key} ({'added' if before is None else 'removed'})"
    a, b = repr(before), repr(after)
    if isinstance(before, dict) or isinstance(after, dict) or len(a) + len(b) > 40:
        return f"{key} (changed)"
    return f"{key} {a} -> {b}"


def _incompatible(ckpt: Checkpoint, recipe: Recipe, exc: BaseException) -> str:
    """The one line for a checkpoint whose state does not fit the resumed run's recipe."""
    before, after = ckpt.recipe.dump(), recipe.dump()
    # Sections that shape the saved state first (a changed train.epochs is no cause), and a
    # section's `name` before its other keys.
    order = ("model", "tasks", "method.name", "method", "train.optimizer", "train.balancer")
    changed = sorted(
        recipe_changes(before, after),
        key=lambda k: next((i for i, p in enumerate(order) if k.startswith(p)), len(order)),
    )
    if not changed:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"--resume: {ckpt.path} does not fit the network its own recipe builds ({first[:120]})"
        )
    shown = ", ".join(
        _change(key, _value_at(before, key), _value_at(after, key)) for key in changed[:2]
    )
    more = f" and {len(changed) - 2} more" if len(changed) > 2 else ""
    return (
        f"--resume: {ckpt.path}: its state does not fit a different recipe ({shown}{more}); "
        "drop those --set overrides or start a new run"
    )

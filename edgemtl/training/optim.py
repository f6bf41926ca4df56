"""The optimizer and learning-rate schedule of a run (`train.optimizer`, `train.scheduler`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edgemtl.core.config import OptimizerConfig, SchedulerConfig
from edgemtl.training.methods import Method
from edgemtl.training.models.network import MultiTaskNet


def parameter_groups(
    method: Method, model: MultiTaskNet, modules: Sequence[nn.Module | None]
) -> list[dict[str, Any]]:
    """The method's groups for `model`, then one group per other module's remaining parameters.

    `modules` are the method's extra module and the balancer's learnable state;
    a method may already have given them a group of its own (KD4MTL's adaptors),
    so parameters already grouped are not added twice.
    """
    groups = method.parameter_groups(model)
    grouped = {id(p) for group in groups for p in group["params"]}
    for module in modules:
        if module is not None:
            params = [p for p in module.parameters() if id(p) not in grouped]
            if params:
                groups.append({"params": params})
    return groups


def build_optimizer(cfg: OptimizerConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with momentum) over `groups`; group keys override `cfg`."""
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_scheduler(
    cfg: SchedulerConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Step decay (lr x gamma every `step_size` epochs; stepped at each epoch end) or none."""
    if cfg.name == "none":
        return None
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)

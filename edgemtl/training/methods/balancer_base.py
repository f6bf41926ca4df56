"""The balancer protocol and `equal`, the balancer every other one extends.

Its own module so that balancers defined elsewhere (`aggregators`) and the
registry (`balancers`) both import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edgemtl.training.methods.base import SharedCut

TaskLosses = dict[str, torch.Tensor]


class Balancer:
    """`equal`: the recipe weights, fixed (the papers' "uniform" baseline)."""

    name = "equal"
    #: The trainer asks the method to cut the shared representation out of the graph.
    needs_representation = False
    #: Called once per step with the chunks' mean task losses and every chunk's cut
    #: (per-task gradients of the global batch), not once per chunk.
    per_task_gradients = False
    #: Sets the shared parameters' gradients itself from rank-averaged per-task gradients
    #: (the step averages only the other parameters' gradients across ranks).
    sets_shared_grads = False
    #: Whether `backward` returns per-task weights (torchjd's ConFIG and GradDrop have none).
    exposes_weights = True

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = dict(weights)

    def module(self) -> nn.Module | None:
        """Learnable balancer state (e.g. log-variances), optimised with the model."""
        return None

    def scaled(self, task_losses: TaskLosses) -> TaskLosses:
        return {key: self.weights.get(key, 1.0) * loss for key, loss in task_losses.items()}

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        cuts: Sequence[SharedCut] = (),
        scale: float = 1.0,
    ) -> dict[str, float]:
        """Backpropagate `scale` x the combined loss; return the weights used (for the log).

        `task_losses`: true (unscaled) scalar losses; `scale`: the fp16 loss scale
        (1 without AMP): every `.grad` written is `scale` times the true gradient,
        as `GradScaler.scale(loss).backward()` would leave it.
        """
        total = sum(self.scaled(task_losses).values())
        (scale * total).backward()  # type: ignore[operator]
        return {key: self.weights.get(key, 1.0) for key in task_losses}

    def on_epoch_end(self, epoch_task_losses: dict[str, float]) -> None:
        """Hook for balancers driven by the loss history (DWA)."""

    def state_dict(self) -> dict[str, Any]:
        """Plain containers (checkpoint-safe) needed to resume exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""

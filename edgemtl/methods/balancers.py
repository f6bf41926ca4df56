"""Loss balancers: turn per-task losses into one backward pass.

The trainer calls `balancer.backward(task_losses, shared_params)`; balancers that
need per-task gradients on the shared encoder (GradNorm, MGDA, PCGrad: the
method-zoo issue) override it. `equal` weighs each task by its recipe weight.
"""

from __future__ import annotations

import torch
from torch import nn


class Balancer:
    name = "equal"

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = dict(weights)

    def module(self) -> nn.Module | None:
        """Learnable balancer state (e.g. log-variances), optimised with the model."""
        return None

    def backward(self, task_losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter]) -> dict[str, float]:
        """Backpropagate the combined loss; return the weights used (for the log)."""
        total = sum(self.weights.get(key, 1.0) * loss for key, loss in task_losses.items())
        total.backward()  # type: ignore[union-attr]
        return {key: self.weights.get(key, 1.0) for key in task_losses}

    def on_epoch_end(self, epoch_task_losses: dict[str, float]) -> None:
        """Hook for balancers driven by the loss history (DWA)."""

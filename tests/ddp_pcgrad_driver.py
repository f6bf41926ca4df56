"""`edgemtl` CLI with a tiny PCGrad-style balancer plugged in (run plain or under torchrun).

Test support for test_distributed.py: it shows how a per-task-gradient balancer
meets the distributed contract (`per_task_gradients = True`, per-task gradients
averaged with `mean_across_ranks` before they are combined). The method zoo's
real PCGrad (random task order) replaces it once merged.

    torchrun --standalone --nproc-per-node 2 tests/ddp_pcgrad_driver.py train RECIPE --out DIR --set ...
"""

from __future__ import annotations

import sys

import torch
from torch import nn

import edgemtl.train
from edgemtl.distributed import mean_across_ranks
from edgemtl.methods.balancers import Balancer


class ToyPCGrad(Balancer):
    """PCGrad with a fixed task order: project each task gradient off every conflicting one."""

    name = "toy_pcgrad"
    per_task_gradients = True

    def backward(self, task_losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter]) -> dict[str, float]:
        keys = list(task_losses)
        weighted = {key: self.weights.get(key, 1.0) * task_losses[key] for key in keys}
        rows = []
        for key in keys:
            grads = torch.autograd.grad(weighted[key], shared_params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, shared_params)]))
        original = mean_across_ranks(torch.stack(rows))  # the global batch's per-task gradients
        projected = original.clone()
        for i in range(len(keys)):
            for j in range(len(keys)):
                dot = projected[i] @ original[j]
                if i != j and dot < 0:
                    projected[i] -= dot / (original[j] @ original[j]) * original[j]
        combined = projected.sum(0)
        sum(weighted.values()).backward()  # type: ignore[union-attr]  # task-specific parameters
        offset = 0
        for p in shared_params:
            p.grad = combined[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        return {key: self.weights.get(key, 1.0) for key in keys}


if __name__ == "__main__":
    edgemtl.train.Balancer = ToyPCGrad  # type: ignore[misc]  # what the method zoo's build_balancer will pick
    from edgemtl.cli import main

    sys.argv = ["edgemtl", *sys.argv[1:]]
    main()

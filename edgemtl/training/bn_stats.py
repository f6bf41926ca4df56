"""BatchNorm running statistics over a step's chunks and ranks.

Why: W processes (or W micro-batches) must move BN running statistics by the
mean of the chunks' updates, like one process with `train.micro_batches = W`
(conventions: `edgemtl.training.distributed`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from edgemtl.training.distributed import Dist


class RunningStats:
    """BN running statistics that move by the MEAN of a step's chunk updates, on every rank.

    Each chunk starts from the step's starting statistics; at the end the
    buffers become the mean over local chunks, then over ranks, and
    `num_batches_tracked` advances by one step. With `keep_graphs` (all chunks
    are forwarded before one backward) buffers are swapped for fresh tensors
    instead of being overwritten, because autograd saved the old ones; without
    it they are written in place (what `torch.compile` guards expect).
    """

    def __init__(self, model: nn.Module, keep_graphs: bool = False) -> None:
        self.keep_graphs = keep_graphs
        self.layers = [
            m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats
        ]
        self._start: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._sums: list[list[torch.Tensor]] = []
        self._count = 0

    def begin(self) -> None:
        self._start = []
        for m in self.layers:  # track_running_stats layers: the three buffers exist
            mean, var, tracked = m.running_mean, m.running_var, m.num_batches_tracked
            assert mean is not None and var is not None and tracked is not None
            self._start.append((mean.clone(), var.clone(), tracked.clone()))
        self._sums = [
            [torch.zeros_like(mean), torch.zeros_like(var)] for mean, var, _ in self._start
        ]
        self._count = 0

    def before_chunk(self) -> None:
        if self._count:
            for m, (mean, var, _) in zip(self.layers, self._start):
                self._set(m, "running_mean", mean)
                self._set(m, "running_var", var)

    def after_chunk(self) -> None:
        for m, sums in zip(self.layers, self._sums):
            sums[0] += m.running_mean  # type: ignore[operator,arg-type]
            sums[1] += m.running_var  # type: ignore[operator,arg-type]
        self._count += 1

    def finish(self, dist: Dist) -> None:
        if not self.layers or not self._count:
            return
        if self._count == 1 and not dist.active:
            return  # one chunk in one process: the buffers are already the step's
        flat = [s for sums in self._sums for s in sums]
        dist.mean_(flat, divisor=self._count * dist.world_size)
        for m, (mean, var), (_, _, tracked) in zip(self.layers, self._sums, self._start):
            self._set(m, "running_mean", mean)
            self._set(m, "running_var", var)
            m.num_batches_tracked.copy_(tracked + 1)  # type: ignore[union-attr]

    def _set(self, module: nn.Module, name: str, value: torch.Tensor) -> None:
        if self.keep_graphs:
            module._buffers[name] = value.clone()
        else:
            module._buffers[name].copy_(value)  # type: ignore[union-attr]

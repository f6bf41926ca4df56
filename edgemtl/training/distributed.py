"""Data-parallel training under `torchrun`: process group, rank helpers, collectives.

Conventions (docs/deploy.md "Distributed training" explains them to users):

* `train.batch_size` is the GLOBAL batch: all ranks and all micro-batches
  together. Every process takes the same global permutation of the training
  split for (seed, epoch), cuts it into global batches exactly as a single
  process does, and trains on its own contiguous slice of each global batch.
  Steps per epoch, the resumable position and the learning-rate schedule are
  therefore the same whatever the world size, and a run can resume on a
  different number of processes.
* A global batch is processed as `world_size x train.micro_batches` chunks.
  BatchNorm statistics and loss means are per chunk, and the step's gradient
  is the mean of the chunks' gradients; BN running statistics move by the mean
  of the chunks' updates. So W processes reproduce, to float rounding, one
  process run with `train.micro_batches = W` (SyncBatchNorm, on CUDA, makes the
  statistics global instead).
* Gradients are averaged with one all-reduce per dtype after the backward
  pass, not by wrapping the model in `DistributedDataParallel`: methods call
  sub-modules and balancers take several backward passes per step (per-task
  gradients), which DDP's reducer (one backward per wrapped forward) does not
  allow. Per-task-gradient balancers call `mean_across_ranks` on their per-task
  gradient matrix before combining it, so the combination (PCGrad's
  projections, the torchjd aggregators, MGDA's min-norm weights, GradNorm's
  norms) sees the global batch's per-task gradients and every rank applies the
  same update (random draws are seeded alike on every rank).
* Only rank 0 writes files; every rank evaluates its own shard of the val split
  (no padding) and the metric states are summed across ranks.

This module holds the process group and its collectives; slicing batches and
the val split is `edgemtl.training.sharding`, BatchNorm statistics over chunks
and ranks `edgemtl.training.bn_stats`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn


# ------------------------------------------------------------------ rank info
@dataclass
class Dist:
    """This process's place in the job; a world of one makes every collective the identity."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    _owns_group: bool = field(default=False, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device_type: str) -> Dist:
        """Join the torchrun job of RANK/WORLD_SIZE/LOCAL_RANK (a single process if absent)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if device_type == "cuda" else "gloo"
        if tdist.is_initialized():
            return cls(rank, world, local, tdist.get_backend())
        if device_type == "cuda":
            torch.cuda.set_device(local)
        tdist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        return cls(rank, world, local, backend, _owns_group=True)

    def close(self) -> None:
        if self._owns_group and tdist.is_initialized():
            tdist.destroy_process_group()
            self._owns_group = False

    # ------------------------------------------------------------ collectives
    def barrier(self) -> None:
        if self.active:
            tdist.barrier()

    def _device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's value on every rank (paths, messages)."""
        if not self.active:
            return value
        box = [value]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, value: Any) -> list[Any]:
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, value)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any rank (one tiny all-reduce)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._device())
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_module(self, *modules: nn.Module | None) -> None:
        """Make every rank hold rank 0's parameters and buffers."""
        if not self.active:
            return
        for module in modules:
            if module is None:
                continue
            for tensor in [*module.parameters(), *module.buffers()]:
                tdist.broadcast(tensor.data, src=0)

    def mean_(self, tensors: Sequence[torch.Tensor], divisor: float | None = None) -> None:
        """In place: each tensor becomes sum over ranks / `divisor` (default: world size).

        Packed into one flat buffer per dtype so a step costs one all-reduce per dtype.
        """
        divisor = float(self.world_size if divisor is None else divisor)
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            if self.active:
                flat = torch.cat([t.reshape(-1) for t in group])
                tdist.all_reduce(flat)
                offset = 0
                for t in group:
                    n = t.numel()
                    t.copy_(flat[offset : offset + n].view_as(t))
                    offset += n
            if divisor != 1.0:
                for t in group:
                    t.div_(divisor)

    def mean_gradients(self, params: Iterable[nn.Parameter], chunks: int = 1) -> None:
        """grad <- (sum over ranks) / (world x chunks): the mean over the global batch's chunks."""
        grads = [p.grad for p in params if p.grad is not None]
        self.mean_(grads, divisor=self.world_size * chunks)

    def mean_floats(self, values: dict[str, float]) -> dict[str, float]:
        """Mean over ranks of per-rank scalars with the same keys (epoch loss means)."""
        if not self.active or not values:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self._device())
        tdist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}

    def sum_state(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Element-wise sum over ranks of a `MetricSet.state()` (one all-reduce per dtype)."""
        if not self.active:
            return state
        keys = sorted(state)
        out: dict[str, np.ndarray] = {}
        for dtype in sorted({state[k].dtype.str for k in keys}):
            group = [k for k in keys if state[k].dtype.str == dtype]
            flat = np.concatenate([np.asarray(state[k]).reshape(-1) for k in group])
            t = torch.from_numpy(flat.copy()).to(self._device())
            tdist.all_reduce(t)
            summed = t.cpu().numpy()
            offset = 0
            for k in group:
                n = state[k].size
                out[k] = summed[offset : offset + n].reshape(state[k].shape)
                offset += n
        return out


def mean_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (a new tensor); the identity outside a multi-process job.

    For per-task-gradient balancers: call it on the T x P matrix of per-task
    shared gradients (and on per-task loss values when the balancer uses them)
    before combining, so the result is the global batch's, identical on every rank.
    """
    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
        return tensor
    out = tensor.detach().clone()
    tdist.all_reduce(out)
    return out / tdist.get_world_size()

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
  projections, MGDA's min-norm weights, GradNorm's norms) sees the global
  batch's per-task gradients and every rank applies the same update.
* Only rank 0 writes files; every rank evaluates its own shard of the val split
  (no padding) and the metric states are summed across ranks.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from edgemtl.data.sample import Sample
from edgemtl.training.data import epoch_permutation, rank_batches  # noqa: F401 (re-exported)
from edgemtl.core.errors import UserError

#: Env var naming a folder where each rank appends the sample indices it trains on
#: (`rank<R>.jsonl`, one line per step): a debug aid to check data sharding.
TRACE_ENV = "EDGEMTL_TRACE_SAMPLES"


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
        """Join the torchrun job described by RANK/WORLD_SIZE/LOCAL_RANK (single process if absent)."""
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
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

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
        """grad <- (sum over ranks of grad) / (world x chunks): the mean over every chunk of the global batch."""
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


# ----------------------------------------------------------------- data split
def check_batch(batch_size: int, world_size: int, micro_batches: int) -> int:
    """The chunk size of one micro-batch; the global batch must split evenly."""
    chunks = world_size * micro_batches
    if batch_size % chunks:
        raise UserError(
            f"train.batch_size {batch_size} is the global batch: it must be divisible by "
            f"processes ({world_size}) x train.micro_batches ({micro_batches}) = {chunks}"
        )
    return batch_size // chunks


def eval_shard(total: int, rank: int, world_size: int) -> np.ndarray:
    """Contiguous, non-overlapping shard of the first `total` indices (sizes differ by at most 1; no padding)."""
    return np.array_split(np.arange(total), world_size)[rank]


class ShardReader:
    """A split reader restricted to some indices (keeps the reader protocol)."""

    def __init__(self, reader: Any, indices: Sequence[int] | np.ndarray) -> None:
        self.reader = reader
        self.indices = [int(i) for i in indices]
        self.class_names = reader.class_names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.reader[self.indices[index]]


class SampleTrace:
    """Appends `{"epoch", "batch", "indices"}` per step to `$EDGEMTL_TRACE_SAMPLES/rank<R>.jsonl`."""

    def __init__(self, rank: int) -> None:
        folder = os.environ.get(TRACE_ENV)
        self.path = Path(folder) / f"rank{rank}.jsonl" if folder else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, epoch: int, batch: int, indices: Sequence[int]) -> None:
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"epoch": epoch, "batch": batch, "indices": list(indices)}) + "\n")


# ------------------------------------------------------- BatchNorm statistics
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
        self.layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        self._start: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._sums: list[list[torch.Tensor]] = []
        self._count = 0

    def begin(self) -> None:
        self._start = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())  # type: ignore[union-attr]
                       for m in self.layers]
        self._sums = [[torch.zeros_like(mean), torch.zeros_like(var)] for mean, var, _ in self._start]
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


def split_chunks(images: torch.Tensor, targets: dict[str, torch.Tensor], chunks: int) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The micro-batches of this rank's slice, in order."""
    parts = images.chunk(chunks)
    split = {k: v.chunk(chunks) for k, v in targets.items()}
    for i, x in enumerate(parts):
        yield x, {k: v[i] for k, v in split.items()}

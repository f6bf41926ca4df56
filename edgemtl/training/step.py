"""One optimizer step: micro-batches, mixed precision, gradient averaging across ranks, NaN stop.

Why its own object: the step is the part every method, balancer, AMP mode and
world size goes through; the loop (`edgemtl.training.trainer`) only feeds it
batches. Conventions of chunks and ranks: `edgemtl.training.distributed`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from edgemtl.core.config import TrainConfig
from edgemtl.training.amp import Precision
from edgemtl.training.bn_stats import RunningStats
from edgemtl.training.distributed import Dist
from edgemtl.training.methods import Method, StepContext
from edgemtl.training.methods.balancers import Balancer
from edgemtl.training.methods.base import SharedCut
from edgemtl.training.models.network import MultiTaskNet
from edgemtl.training.sharding import split_chunks

#: Balancer weights travel through the per-step log under this prefix, then into
#: metrics.jsonl's "weights".
WEIGHT_PREFIX = "weight."


def epoch_means(
    sums: dict[str, float], batches: int, dist: Dist
) -> tuple[dict[str, float], dict[str, float]]:
    """(losses, balancer weights): the epoch's means of the logged step values, over ranks too."""
    means = dist.mean_floats({name: value / max(1, batches) for name, value in sums.items()})
    weights = {
        k.removeprefix(WEIGHT_PREFIX): means.pop(k)
        for k in list(means)
        if k.startswith(WEIGHT_PREFIX)
    }
    return means, weights


def epoch_task_losses(losses: dict[str, float], tasks: Any) -> dict[str, float]:
    """Each task's mean loss over an epoch: the sum of its logged terms ("seg.teacher", ...)."""
    out = {key: 0.0 for key in tasks}
    for name, value in losses.items():
        task, dot, _ = name.partition(".")
        if dot and task in out:
            out[task] += value
    return out


def logged_values(terms: dict[str, dict[str, torch.Tensor]], total: Any) -> dict[str, float]:
    """{"<task>.<term>": value, ..., "total": value} of one chunk's scalar loss tensors.

    Why one stacked copy: `float(tensor)` per term is a device-to-host sync per
    term per step on CUDA; one `tolist()` syncs once. Values are float32 as before.
    """
    names = [f"{task}.{name}" for task, group in terms.items() for name in group]
    tensors = [term for group in terms.values() for term in group.values()] + [total]
    flat = torch.stack([t.detach().float().reshape(()) for t in tensors]).tolist()
    return dict(zip([*names, "total"], flat))


class NonFinite(Exception):
    """A loss that is NaN or infinite: `value`, the bad `terms` ("seg.kd"), the first bad `rank`."""

    def __init__(self, value: float, terms: list[str], rank: int = 0) -> None:
        super().__init__(value)
        self.value = value
        self.terms = terms
        self.rank = rank

    def describe(self, epoch: int, batch: int, distributed: bool, kept: str | None) -> str:
        """The one-line stop message; `epoch`, `batch` 0-based; `kept`: the good last.pt, if any."""
        where = f" in {', '.join(self.terms)}" if self.terms else ""
        if distributed:
            where += f" on rank {self.rank}"
        last = f"; last good checkpoint: {kept}" if kept else ""
        return (
            f"training stopped: loss is {self.value}{where} at epoch {epoch + 1}, "
            f"batch {batch + 1}{last}"
        )


class TrainStep:
    """Callable: (images, targets, ctx) -> the step's logged means {"seg.teacher": ..., "total"}."""

    def __init__(
        self,
        cfg: TrainConfig,
        model: MultiTaskNet,
        method: Method,
        balancer: Balancer,
        optimizer: torch.optim.Optimizer,
        precision: Precision,
        dist: Dist,
    ) -> None:
        self.cfg = cfg
        self.model = model
        self.method = method
        self.balancer = balancer
        self.optimizer = optimizer
        self.precision = precision
        self.dist = dist
        self._stats: dict[bool, RunningStats] = {}

    def params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def __call__(
        self, images: torch.Tensor, targets: dict[str, torch.Tensor], ctx: StepContext
    ) -> dict[str, float]:
        """One optimizer step on this rank's slice of a global batch, in `micro_batches` chunks.

        Every chunk's loss is checked on every rank before any backward pass
        (a NaN anywhere raises `NonFinite` on all ranks together, before the
        update). Balancers get the true (unscaled) task losses and the fp16 loss
        scale (`Precision.loss_scale`, 1 otherwise). Balancers that combine
        per-task gradients (`per_task_gradients = True`) get the mean of the
        chunks' task losses and every chunk's shared cut in one call and average
        their per-task gradients across ranks themselves
        (`edgemtl.training.distributed.mean_across_ranks`); this step averages
        every other gradient (all but the shared ones a balancer with
        `sets_shared_grads` wrote).
        """
        cfg = self.cfg
        chunks = cfg.micro_batches
        per_task = self.balancer.per_task_gradients
        stats = self._running_stats(per_task)
        shared = [p for p in self.model.encoder.parameters() if p.requires_grad]
        scale = self.precision.loss_scale()
        self.optimizer.zero_grad(set_to_none=True)
        if stats is not None:
            stats.begin()
        logged: dict[str, float] = {}
        kept: list[dict[str, torch.Tensor]] = []
        cuts: list[SharedCut] = []
        for x, y in split_chunks(images, targets, chunks):
            if stats is not None:
                stats.before_chunk()
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.precision.autocast():
                outputs = self.method.forward(self.model, x, ctx)
            terms = self.method.loss_terms(self.precision.outputs_fp32(outputs), y, ctx)
            if stats is not None:
                stats.after_chunk()
            task_losses: dict[str, Any] = {
                task: sum(group.values()) for task, group in terms.items()
            }
            values = logged_values(terms, sum(task_losses.values()))
            value = values.pop("total")
            bad = None
            if not math.isfinite(value):
                bad = NonFinite(value, [n for n, v in values.items() if not math.isfinite(v)])
            self._agree_finite(bad)
            for name, term_value in values.items():
                logged[name] = logged.get(name, 0.0) + term_value
            logged["total"] = logged.get("total", 0.0) + value
            cut = [self.method.shared_cut] if self.method.shared_cut is not None else []
            if per_task:
                kept.append(task_losses)
                cuts += cut
            else:
                used = self.balancer.backward(task_losses, shared, cut, scale)
                for task, weight in used.items():
                    logged[f"{WEIGHT_PREFIX}{task}"] = (
                        logged.get(f"{WEIGHT_PREFIX}{task}", 0.0) + weight
                    )
        if per_task:
            mean: dict[str, Any] = {task: sum(k[task] for k in kept) / chunks for task in kept[0]}
            used = self.balancer.backward(mean, shared, cuts, scale)
            logged.update(
                {f"{WEIGHT_PREFIX}{task}": weight * chunks for task, weight in used.items()}
            )
            ids = {id(p) for p in shared} if self.balancer.sets_shared_grads else set()
            self.dist.mean_gradients([p for p in self.params() if id(p) not in ids])
        else:
            self.dist.mean_gradients(self.params(), chunks=chunks)
        if stats is not None:
            stats.finish(self.dist)
        self.precision.unscale(self.optimizer)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.precision.step(self.optimizer)
        return {name: value / chunks for name, value in logged.items()}

    def _running_stats(self, keep_graphs: bool) -> RunningStats | None:
        """BN running statistics averaged over chunks and ranks (None: one chunk, one process)."""
        if self.cfg.micro_batches == 1 and not self.dist.active:
            return None
        if keep_graphs not in self._stats:
            self._stats[keep_graphs] = RunningStats(self.model, keep_graphs)
        return self._stats[keep_graphs]

    def _agree_finite(self, bad: NonFinite | None) -> None:
        """Raise the first bad rank's `NonFinite` on every rank if any rank's loss is not finite."""
        if not self.dist.any(bad is not None):
            return
        reports = self.dist.gather_objects(None if bad is None else (bad.value, bad.terms))
        rank = next(r for r, report in enumerate(reports) if report is not None)
        value, terms = reports[rank]
        raise NonFinite(value, terms, rank)

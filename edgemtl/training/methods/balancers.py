"""Loss balancers: turn per-task losses into one update of the shared network.

The step calls `balancer.backward(task_losses, shared_params, cuts, scale)`;
each task loss is the sum of all of that task's terms (docs/methods.md), already
multiplied by the recipe's static `tasks.<key>.weight`, and is the TRUE loss:
under fp16 AMP the balancer backpropagates `scale * loss` (the GradScaler's
scale) but reasons on unscaled losses and gradients, so its weights do not
depend on the loss scale. Balancers that need per-task gradients work on the
shared encoder (GradNorm: its last conv layer; MGDA-UB: the shared
representation, which the method cuts out of the graph when
`needs_representation`; PCGrad and the aggregators of
`edgemtl.training.methods.aggregators`: all its parameters, through
`edgemtl.training.methods.task_grads`). Every balancer returns the weights it
applied, which the trainer averages per epoch into metrics.jsonl.

Statistics captured once get a validity rule (docs/methods.md "Loss balancers"):
GradNorm's reference loss L_t(0) of a task is its first finite, positive loss
(until then the task's loss ratio is 1), and DWA's ratio L_t(e-1) / L_t(e-2)
is 1 unless both are finite and L_t(e-2) > 0.

Why this size: five short classes sharing one protocol (`balancer_base.Balancer`), and
the registry (`build_balancer`, `BALANCERS`) belongs next to them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from edgemtl.core.config import AGGREGATOR_NAMES, BALANCER_NAMES, BalancerConfig
from edgemtl.training.distributed import mean_across_ranks
from edgemtl.training.methods.aggregators import Aggregated
from edgemtl.training.methods.balancer_base import Balancer, TaskLosses
from edgemtl.training.methods.base import SharedCut
from edgemtl.training.methods.min_norm import min_norm_weights
from edgemtl.training.methods.task_grads import (
    finite_jacobian,
    flat_grads,
    poison,
    representation_grads,
    set_shared_grads,
)


class Uncertainty(Balancer):
    """Kendall et al.: learned log-variances s_t, loss = sum_t exp(-s_t) L_t + s_t.

    Why this form (no 1/2): at s = 0 it equals equal weighting, so the step size
    matches the other balancers at the start. Weight logged: exp(-s_t). Under fp16
    the whole objective (the s_t terms too) is scaled, so d/ds_t = 1 - exp(-s_t) L_t
    on the true loss after unscaling.
    """

    name = "uncertainty"

    def __init__(self, weights: dict[str, float], tasks: Sequence[str]) -> None:
        super().__init__(weights)
        self.tasks = list(tasks)
        self._module = nn.Module()
        self._module.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    @property
    def log_vars(self) -> nn.Parameter:
        return self._module.log_vars  # type: ignore[return-value]

    def module(self) -> nn.Module:
        return self._module

    def combined(self, task_losses: TaskLosses) -> torch.Tensor:
        losses = self.scaled(task_losses)
        s = self.log_vars
        return sum(torch.exp(-s[i]) * losses[key] + s[i] for i, key in enumerate(self.tasks))  # type: ignore[return-value]

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        cuts: Sequence[SharedCut] = (),
        scale: float = 1.0,
    ) -> dict[str, float]:
        (scale * self.combined(task_losses)).backward()
        s = self.log_vars.detach()
        return {
            key: self.weights.get(key, 1.0) * math.exp(-float(s[i]))
            for i, key in enumerate(self.tasks)
        }

    def state_dict(self) -> dict[str, Any]:
        return {"log_vars": self.log_vars.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_vars.copy_(state["log_vars"])


def loss_ratio(current: float, reference: float) -> float:
    """current / reference where both are finite and the reference is > 0, else 1 (neutral).

    The validity rule for statistics captured once (DWA's history, GradNorm's
    initial losses): a task whose reference loss is 0 (no valid pixel in the
    batch, an all-zero heatmap under a zero-initialised head) or non-finite has
    no defined training rate, so it neither drives its own weight up nor the
    others' down.
    """
    if not (math.isfinite(current) and math.isfinite(reference)) or reference <= 0:
        return 1.0
    return current / reference


def dwa_weights(
    previous: dict[str, float], before: dict[str, float], temperature: float
) -> dict[str, float]:
    """Liu et al. (MTAN): w_k = K softmax_k(r_k / T), r_k = L_k(t-1) / L_k(t-2) (`loss_ratio`)."""
    ratios = {k: loss_ratio(previous[k], before[k]) for k in previous}
    top = max(r / temperature for r in ratios.values())
    exps = {k: math.exp(r / temperature - top) for k, r in ratios.items()}
    total = sum(exps.values())
    return {k: len(exps) * e / total for k, e in exps.items()}


class DWA(Balancer):
    """Dynamic Weight Average: weights 1 for the first two epochs, then from the loss history."""

    name = "dwa"

    def __init__(
        self, weights: dict[str, float], tasks: Sequence[str], temperature: float = 2.0
    ) -> None:
        super().__init__(weights)
        self.tasks = list(tasks)
        self.temperature = temperature
        self.history: list[dict[str, float]] = []
        self.current = {key: 1.0 for key in self.tasks}

    def on_epoch_end(self, epoch_task_losses: dict[str, float]) -> None:
        self.history.append({k: float(epoch_task_losses[k]) for k in self.tasks})
        if len(self.history) >= 2:
            self.current = dwa_weights(self.history[-1], self.history[-2], self.temperature)

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        cuts: Sequence[SharedCut] = (),
        scale: float = 1.0,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        total = sum(self.current[k] * losses[k] for k in self.tasks)
        (scale * total).backward()  # type: ignore[operator]
        return {k: self.weights.get(k, 1.0) * self.current[k] for k in self.tasks}

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(h) for h in self.history], "current": dict(self.current)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [dict(h) for h in state["history"]]
        self.current = dict(state["current"])


def last_shared_layer(shared_params: Sequence[nn.Parameter]) -> nn.Parameter:
    """GradNorm's W: the last weight tensor of the shared encoder (its bottleneck conv)."""
    weights = [p for p in shared_params if p.dim() > 1]
    if not weights:
        raise ValueError("GradNorm needs a shared layer with a weight matrix")
    return weights[-1]


class GradNorm(Balancer):
    """Chen et al.: task weights w_t (sum = T) trained so that ||grad_W w_t L_t|| tracks
    mean_t ||grad_W w_t L_t|| * r_t^alpha, r_t = (L_t / L_t(0)) / mean_t(L_t / L_t(0)).

    The weights take one SGD step (lr) per training step on
    L_grad = sum_t |G_t - target_t| with the target held constant, then are
    renormalised to sum T. The model's update uses the weights before that step.
    L_t(0) is each task's first finite, positive loss; until a task has one its
    ratio L_t / L_t(0) is 1 (`loss_ratio`). One call per step (the chunks' mean
    losses), so micro-batches and ranks update the weights once, alike.
    """

    name = "gradnorm"
    per_task_gradients = True

    def __init__(
        self, weights: dict[str, float], tasks: Sequence[str], alpha: float = 1.5, lr: float = 0.025
    ) -> None:
        super().__init__(weights)
        self.tasks = list(tasks)
        self.alpha = alpha
        self.lr = lr
        self.w = torch.ones(len(self.tasks), dtype=torch.float64)
        #: L_t(0) per task; NaN until the task's first valid loss.
        self.initial: torch.Tensor | None = None

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        cuts: Sequence[SharedCut] = (),
        scale: float = 1.0,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        layer = last_shared_layer(shared_params)
        # Under torchrun: the global batch's per-task gradients and losses (same weights
        # on every rank). Unscaled before the norms: the weights must not see the loss scale.
        grads = mean_across_ranks(
            torch.stack([flat_grads(scale * losses[k], [layer]).float() for k in self.tasks])
            / scale
        )
        norms = grads.norm(dim=1).detach().double().cpu()
        values = (
            mean_across_ranks(torch.stack([losses[k].detach() for k in self.tasks])).double().cpu()
        )
        used = self.w.clone()
        total = sum(float(used[i]) * losses[k] for i, k in enumerate(self.tasks))
        (scale * total).backward()  # type: ignore[operator]
        if not torch.isfinite(norms).all():  # overflowed fp16 gradients: skip, keep the state
            poison([layer])
        else:
            self.capture_initial(values)
            self.w = self.updated_weights(used, norms, values)
        return {k: self.weights.get(k, 1.0) * float(used[i]) for i, k in enumerate(self.tasks)}

    def capture_initial(self, values: torch.Tensor) -> None:
        """Fill L_t(0) of every task that has none yet with its loss, if finite and > 0."""
        if self.initial is None:
            self.initial = torch.full_like(values, math.nan)
        valid = torch.isnan(self.initial) & torch.isfinite(values) & (values > 0)
        self.initial = torch.where(valid, values, self.initial)

    def updated_weights(
        self, w: torch.Tensor, norms: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """One GradNorm step from weights `w`, per-task gradient norms of the unweighted losses,
        losses."""
        assert self.initial is not None
        ratio = torch.tensor(
            [loss_ratio(float(v), float(r)) for v, r in zip(values, self.initial)],
            dtype=torch.float64,
        )
        grad_norms = w * norms
        target = grad_norms.mean() * (ratio / ratio.mean()) ** self.alpha
        grad_w = torch.sign(grad_norms - target) * norms
        new = (w - self.lr * grad_w).clamp_min(1e-4)
        return new * len(self.tasks) / new.sum()

    def state_dict(self) -> dict[str, Any]:
        return {
            "w": self.w.clone(),
            "initial": None if self.initial is None else self.initial.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = state["w"].clone()
        self.initial = None if state["initial"] is None else state["initial"].clone()


class MGDA(Balancer):
    """MGDA-UB (Sener & Koltun): exact min-norm task weights (`min_norm.min_norm_weights`)
    from gradients on the shared representation (the encoder outputs the decoders read),
    scaled to sum T so the step size matches equal weighting. Without a cut it uses the
    shared parameters."""

    name = "mgda"
    needs_representation = True
    per_task_gradients = True

    def __init__(self, weights: dict[str, float], tasks: Sequence[str]) -> None:
        super().__init__(weights)
        self.tasks = list(tasks)

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        cuts: Sequence[SharedCut] = (),
        scale: float = 1.0,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        scaled = [losses[k] for k in self.tasks]
        # Under torchrun: parameter gradients are averaged before the Gram matrix; representation
        # gradients belong to each rank's own samples (and chunk), so their Gram matrices are
        # summed (the global batch's Gram up to a scale, which leaves the weights unchanged).
        if cuts:
            rows = representation_grads(scaled, cuts, scale, accumulate=False)
            flat = torch.stack([torch.cat([g.reshape(-1) for g in row]) for row in rows])
            flat = flat.double() / scale
            gram = mean_across_ranks(flat @ flat.T)
        else:
            jac = mean_across_ranks(
                torch.stack([flat_grads(scale * loss, shared_params) for loss in scaled]).double()
                / scale
            )
            gram = jac @ jac.T
        finite = bool(torch.isfinite(gram).all())
        alpha = (
            torch.from_numpy(min_norm_weights(gram.cpu().numpy())) * len(self.tasks)
            if finite
            else torch.ones(len(self.tasks), dtype=torch.float64)
        )
        total = sum(float(alpha[i]) * losses[k] for i, k in enumerate(self.tasks))
        if not cuts:
            (scale * total).backward()  # type: ignore[operator]
        else:
            (scale * total).backward(retain_graph=True)  # type: ignore[operator]
            pairs = [
                (o, c.grad)
                for cut in cuts
                for o, c in zip(cut.originals, cut.cuts)
                if c.grad is not None
            ]
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        if not finite:  # overflowed fp16 gradients: the scaler skips the step
            poison(shared_params)
        return {k: self.weights.get(k, 1.0) * float(alpha[i]) for i, k in enumerate(self.tasks)}


def pcgrad_combine(
    grads: torch.Tensor, order: Sequence[Sequence[int]] | None = None
) -> torch.Tensor:
    """Yu et al.: project each task gradient g_i off every conflicting g_j (g_i . g_j < 0),
    g_i -= (g_i . g_j) / ||g_j||^2 g_j, against the original g_j in `order[i]`; return the sum."""
    n = grads.shape[0]
    out = grads.clone()
    for i in range(n):
        others = order[i] if order is not None else [j for j in range(n) if j != i]
        for j in others:
            dot = torch.dot(out[i], grads[j])
            if dot < 0:
                out[i] = out[i] - dot / grads[j].pow(2).sum().clamp_min(1e-20) * grads[j]
    return out.sum(dim=0)


class PCGrad(Balancer):
    """PCGrad on the shared parameters; task-specific parameters get the plain sum's gradient.

    The per-task gradients come from `task_grads.shared_jacobian` (each task's backward
    to the cut representation, one batched product through the encoder).
    """

    name = "pcgrad"
    needs_representation = True
    per_task_gradients = True
    sets_shared_grads = True

    def __init__(self, weights: dict[str, float], tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__(weights)
        self.tasks = list(tasks)
        self.generator = torch.Generator().manual_seed(seed)

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        cuts: Sequence[SharedCut] = (),
        scale: float = 1.0,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        grads = finite_jacobian([losses[k] for k in self.tasks], shared_params, cuts, scale)
        if grads is None:  # overflowed fp16 gradients: no draw, no update
            return {k: self.weights.get(k, 1.0) for k in self.tasks}
        n = len(self.tasks)
        order = []
        for i in range(n):
            perm = torch.randperm(n, generator=self.generator).tolist()
            order.append([j for j in perm if j != i])
        set_shared_grads(shared_params, pcgrad_combine(grads, order), scale)
        return {k: self.weights.get(k, 1.0) for k in self.tasks}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


#: The registry: one builder per name of `edgemtl.core.config.BALANCER_NAMES` (the one
#: list of names, torch-free for recipe validation), called as builder(cfg, weights).
_BUILDERS: dict[str, Callable[[BalancerConfig, dict[str, float]], Balancer]] = {
    Balancer.name: lambda cfg, weights: Balancer(weights),
    Uncertainty.name: lambda cfg, weights: Uncertainty(weights, list(weights)),
    DWA.name: lambda cfg, weights: DWA(weights, list(weights), cfg.temperature),
    GradNorm.name: lambda cfg, weights: GradNorm(weights, list(weights), cfg.alpha, cfg.lr),
    MGDA.name: lambda cfg, weights: MGDA(weights, list(weights)),
    PCGrad.name: lambda cfg, weights: PCGrad(weights, list(weights), cfg.seed),
    **{name: Aggregated for name in AGGREGATOR_NAMES},
}
if set(_BUILDERS) != set(BALANCER_NAMES):  # a balancer added on one side only
    raise RuntimeError(
        f"balancer registry {sorted(_BUILDERS)} != config.BALANCER_NAMES {sorted(BALANCER_NAMES)}"
    )

#: Every balancer name, in the recipe model's order.
BALANCERS: tuple[str, ...] = BALANCER_NAMES


def build_balancer(cfg: BalancerConfig, weights: dict[str, float]) -> Balancer:
    """The recipe's `train.balancer` over the recipe's tasks (the keys of `weights`, in order)."""
    return _BUILDERS[cfg.name](cfg, weights)

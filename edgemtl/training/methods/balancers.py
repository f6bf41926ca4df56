"""Loss balancers: turn per-task losses into one update of the shared network.

The trainer calls `balancer.backward(task_losses, shared_params, shared_cut)`;
each task loss is the sum of all of that task's terms (docs/methods.md), already
multiplied by the recipe's static `tasks.<key>.weight`. Balancers that need
per-task gradients work on the shared encoder (GradNorm: its last conv layer;
PCGrad: all its parameters; MGDA-UB: the shared representation, which the method
cuts out of the graph when `needs_representation`). Every balancer returns the
weights it applied, which the trainer averages per epoch into metrics.jsonl.

Why this size: six short classes with one protocol, and the registry
(`build_balancer`, `BALANCERS`) belongs next to them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from edgemtl.core.config import BALANCER_NAMES, BalancerConfig
from edgemtl.training.distributed import mean_across_ranks
from edgemtl.training.methods.base import SharedCut

TaskLosses = dict[str, torch.Tensor]


class Balancer:
    """`equal`: the recipe weights, fixed (the papers' "uniform" baseline)."""

    name = "equal"
    #: MGDA-UB: the trainer asks the method to cut the shared representation out of the graph.
    needs_representation = False

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
        shared_cut: SharedCut | None = None,
    ) -> dict[str, float]:
        """Backpropagate the combined loss; return the weights used (for the log)."""
        total = sum(self.scaled(task_losses).values())
        total.backward()  # type: ignore[union-attr]
        return {key: self.weights.get(key, 1.0) for key in task_losses}

    def on_epoch_end(self, epoch_task_losses: dict[str, float]) -> None:
        """Hook for balancers driven by the loss history (DWA)."""

    def state_dict(self) -> dict[str, Any]:
        """Plain containers (checkpoint-safe) needed to resume exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""


class Uncertainty(Balancer):
    """Kendall et al.: learned log-variances s_t, loss = sum_t exp(-s_t) L_t + s_t.

    Why this form (no 1/2): at s = 0 it equals equal weighting, so the step size
    matches the other balancers at the start. Weight logged: exp(-s_t).
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
        shared_cut: SharedCut | None = None,
    ) -> dict[str, float]:
        self.combined(task_losses).backward()
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


def dwa_weights(
    previous: dict[str, float], before: dict[str, float], temperature: float
) -> dict[str, float]:
    """Liu et al. (MTAN): w_k = K softmax_k(r_k / T), r_k = L_k(t-1) / L_k(t-2)."""
    ratios = {k: previous[k] / before[k] if before[k] else 1.0 for k in previous}
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
        shared_cut: SharedCut | None = None,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        sum(self.current[k] * losses[k] for k in self.tasks).backward()  # type: ignore[union-attr]
        return {k: self.weights.get(k, 1.0) * self.current[k] for k in self.tasks}

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(h) for h in self.history], "current": dict(self.current)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [dict(h) for h in state["history"]]
        self.current = dict(state["current"])


def _flat_grads(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """d loss / d inputs, flattened into one vector (zeros where an input is unused)."""
    grads = torch.autograd.grad(loss, list(inputs), retain_graph=True, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(x)).reshape(-1) for g, x in zip(grads, inputs)]
    )


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
    """

    name = "gradnorm"

    def __init__(
        self, weights: dict[str, float], tasks: Sequence[str], alpha: float = 1.5, lr: float = 0.025
    ) -> None:
        super().__init__(weights)
        self.tasks = list(tasks)
        self.alpha = alpha
        self.lr = lr
        self.w = torch.ones(len(self.tasks), dtype=torch.float64)
        self.initial: torch.Tensor | None = None

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        shared_cut: SharedCut | None = None,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        layer = last_shared_layer(shared_params)
        # Under torchrun: the global batch's per-task gradients and losses (same weights
        # on every rank).
        grads = mean_across_ranks(
            torch.stack([_flat_grads(losses[k], [layer]) for k in self.tasks])
        )
        norms = grads.norm(dim=1).detach().double().cpu()
        values = (
            mean_across_ranks(torch.stack([losses[k].detach() for k in self.tasks])).double().cpu()
        )
        if self.initial is None:
            self.initial = values.clone()
        used = self.w.clone()
        sum(float(used[i]) * losses[k] for i, k in enumerate(self.tasks)).backward()  # type: ignore[union-attr]
        self.w = self.updated_weights(used, norms, values)
        return {k: self.weights.get(k, 1.0) * float(used[i]) for i, k in enumerate(self.tasks)}

    def updated_weights(
        self, w: torch.Tensor, norms: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """One GradNorm step from weights `w`, per-task gradient norms of the unweighted losses,
        losses."""
        assert self.initial is not None
        grad_norms = w * norms
        ratio = values / self.initial.clamp_min(1e-12)
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


def min_norm_weights(gram: torch.Tensor, iterations: int = 250, tol: float = 1e-9) -> torch.Tensor:
    """argmin_{a in simplex} || sum_t a_t g_t ||^2 from the Gram matrix G_ij = g_i . g_j.

    Two tasks: closed form a_1 = clip((G22 - G12) / (G11 - 2 G12 + G22), 0, 1).
    More: Frank-Wolfe with exact line search (Sener & Koltun, Alg. 2).
    """
    gram = gram.double()
    n = gram.shape[0]
    if n == 1:
        return torch.ones(1, dtype=torch.float64)
    if n == 2:
        pair_denom = float(gram[0, 0] - 2 * gram[0, 1] + gram[1, 1])
        first = (
            0.5
            if pair_denom <= 1e-20
            else min(1.0, max(0.0, float(gram[1, 1] - gram[0, 1]) / pair_denom))
        )
        return torch.tensor([first, 1.0 - first], dtype=torch.float64)
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    for _ in range(iterations):
        grad = gram @ a
        t = int(torch.argmin(grad))
        vv, vu, uu = float(a @ grad), float(grad[t]), float(gram[t, t])
        denom = vv - 2 * vu + uu
        gamma = 1.0 if denom <= 1e-20 else min(1.0, max(0.0, (vv - vu) / denom))
        new = (1 - gamma) * a
        new[t] += gamma
        if float((new - a).abs().sum()) < tol:
            a = new
            break
        a = new
    return a


class MGDA(Balancer):
    """MGDA-UB (Sener & Koltun): min-norm task weights from gradients on the shared
    representation (the encoder outputs the decoders read), scaled to sum T so the
    step size matches equal weighting. Without a cut it uses the shared parameters."""

    name = "mgda"
    needs_representation = True

    def __init__(self, weights: dict[str, float], tasks: Sequence[str]) -> None:
        super().__init__(weights)
        self.tasks = list(tasks)

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        shared_cut: SharedCut | None = None,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        inputs: Sequence[torch.Tensor] = (
            shared_cut.cuts if shared_cut is not None else shared_params
        )
        grads = torch.stack([_flat_grads(losses[k], inputs) for k in self.tasks])
        # Under torchrun: parameter gradients are averaged before the Gram matrix; representation
        # gradients belong to each rank's own samples, so their Gram matrices are averaged (the
        # global Gram up to a scale, which leaves the min-norm weights unchanged).
        gram = (
            mean_across_ranks(grads @ grads.T)
            if shared_cut is not None
            else _gram(mean_across_ranks(grads))
        )
        alpha = min_norm_weights(gram) * len(self.tasks)
        total = sum(float(alpha[i]) * losses[k] for i, k in enumerate(self.tasks))
        if shared_cut is None:
            total.backward()  # type: ignore[union-attr]
        else:
            total.backward(retain_graph=True)  # type: ignore[union-attr]
            pairs = [
                (o, c.grad)
                for o, c in zip(shared_cut.originals, shared_cut.cuts)
                if c.grad is not None
            ]
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        return {k: self.weights.get(k, 1.0) * float(alpha[i]) for i, k in enumerate(self.tasks)}


def _gram(grads: torch.Tensor) -> torch.Tensor:
    return grads @ grads.T


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
    """PCGrad on the shared parameters; task-specific parameters get the plain sum's gradient."""

    name = "pcgrad"
    #: The trainer leaves the shared gradients to it: it sets them from rank-averaged
    #: per-task gradients.
    per_task_gradients = True

    def __init__(self, weights: dict[str, float], tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__(weights)
        self.tasks = list(tasks)
        self.generator = torch.Generator().manual_seed(seed)

    def backward(
        self,
        task_losses: TaskLosses,
        shared_params: list[nn.Parameter],
        shared_cut: SharedCut | None = None,
    ) -> dict[str, float]:
        losses = self.scaled(task_losses)
        grads = mean_across_ranks(
            torch.stack([_flat_grads(losses[k], shared_params) for k in self.tasks])
        )
        sum(losses.values()).backward()  # type: ignore[union-attr]
        n = len(self.tasks)
        order = []
        for i in range(n):
            perm = torch.randperm(n, generator=self.generator).tolist()
            order.append([j for j in perm if j != i])
        combined = pcgrad_combine(grads, order)
        offset = 0
        for p in shared_params:
            size = p.numel()
            p.grad = combined[offset : offset + size].view_as(p).to(p.dtype).clone()
            offset += size
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

"""Balancers under fp16 AMP: they reason on true losses and gradients, whatever the loss scale.

A toy network (a shared linear encoder, one linear head per task, conflicting
regression targets) runs through the real `Precision` (autocast + GradScaler)
and each balancer's `backward`. Tolerances: with the scale applied in fp32
arithmetic (no autocast) the answers equal the unscaled ones to float rounding
(rel 1e-6: the scale is a power of two); under fp16 autocast they match fp32 to
fp16 accuracy (rel 2e-2 on weights and on the combined gradient, 11-bit mantissa
through two layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from edgemtl.core.config import BALANCER_NAMES, BalancerConfig
from edgemtl.training.amp import Precision
from edgemtl.training.methods.balancer_base import Balancer
from edgemtl.training.methods.balancers import GradNorm, Uncertainty, build_balancer
from edgemtl.training.methods.base import SharedCut

TASKS = ["a", "b", "c"]
CPU = torch.device("cpu")


def _fp16_autocast_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float16
    except (RuntimeError, AssertionError):
        return False


FP16 = pytest.mark.skipif(
    not _fp16_autocast_on_cpu(), reason="this torch build has no CPU float16 autocast"
)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(4, 6)
        self.heads = nn.ModuleList(nn.Linear(6, 1) for _ in TASKS)


@dataclass
class Stepped:
    weights: dict[str, float]
    grads: list[torch.Tensor]  # unscaled, every trained parameter
    balancer: Balancer
    scale: float
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer


def toy_step(name: str, precision: Precision) -> Stepped:
    """One balancer backward through `precision`, gradients unscaled, optimizer not stepped."""
    model = Toy()
    balancer = build_balancer(BalancerConfig(name=name, seed=3), {k: 1.0 for k in TASKS})
    extra = list(balancer.module().parameters()) if balancer.module() is not None else []
    params = [*model.parameters(), *extra]
    optimizer = torch.optim.SGD(params, lr=0.1)
    x = torch.linspace(-1, 1, 32).view(8, 4)
    targets = [x.sum(1, keepdim=True), -x[:, :1] * 2, x[:, 1:2] - x[:, 3:]]
    with precision.autocast():
        rep = model.encoder(x)
        cuts: list[SharedCut] = []
        if balancer.needs_representation:
            cut = rep.detach().requires_grad_()
            cuts = [SharedCut([rep], [cut])]
            rep = cut
        preds = [head(torch.tanh(rep)) for head in model.heads]
    preds = precision.outputs_fp32(preds)
    losses = {k: ((p - y) ** 2).mean() for k, p, y in zip(TASKS, preds, targets)}
    scale = precision.loss_scale()
    used = balancer.backward(losses, list(model.encoder.parameters()), cuts, scale)
    precision.unscale(optimizer)
    grads = [p.grad.detach().clone() for p in params]
    return Stepped(used, grads, balancer, scale, params, optimizer)


def fp16(init_scale: float) -> Precision:
    precision = Precision("fp16", CPU)
    precision.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    return precision


class ScaledFp32(Precision):
    """fp32 arithmetic with a GradScaler active: isolates the loss scale from fp16 rounding."""

    def __init__(self, scale: float) -> None:
        super().__init__("off", CPU)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=scale)


def assert_close(got: list[torch.Tensor], want: list[torch.Tensor], rel: float) -> None:
    top = max(float(w.abs().max()) for w in want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=rel, atol=rel * top)


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_loss_scale_changes_nothing(name: str) -> None:
    want, got = toy_step(name, Precision("off", CPU)), toy_step(name, ScaledFp32(2.0**16))
    assert got.scale == 2.0**16
    assert got.weights.keys() == want.weights.keys()
    assert got.weights == pytest.approx(want.weights, rel=1e-6)
    assert_close(got.grads, want.grads, 1e-6)


@FP16
@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_fp16_autocast_with_the_scaler_matches_fp32(name: str) -> None:
    want, got = toy_step(name, Precision("off", CPU)), toy_step(name, fp16(2.0**10))
    assert got.scale == 2.0**10 and all(torch.isfinite(g).all() for g in got.grads)
    assert got.weights == pytest.approx(want.weights, rel=2e-2)
    assert_close(got.grads, want.grads, 2e-2)


@FP16
@pytest.mark.parametrize("name", [n for n in BALANCER_NAMES if n not in ("equal", "dwa")])
def test_overflowing_per_task_gradients_skip_the_step(name: str) -> None:
    """At a scale that overflows fp16 the scaler skips the step and halves its scale, and the
    balancer's state is what it was."""
    precision = fp16(2.0**40)
    fresh = build_balancer(BalancerConfig(name=name, seed=3), {k: 1.0 for k in TASKS})
    got = toy_step(name, precision)
    before = [p.detach().clone() for p in got.params]
    assert any(not torch.isfinite(g).all() for g in got.grads)  # what the scaler sees
    precision.step(got.optimizer)
    assert precision.scaler.get_scale() == 2.0**39  # skipped, backed off
    assert all(torch.equal(p, b) for p, b in zip(got.params, before))
    kept, initial = got.balancer.state_dict(), fresh.state_dict()
    assert kept.keys() == initial.keys()
    for key in kept:
        a, b = kept[key], initial[key]
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), key
        else:
            assert a == b, key


def test_uncertainty_log_variance_gradient_is_that_of_the_true_loss() -> None:
    # One task, L = 1, s = 0: d/ds (exp(-s) L + s) = 1 - L = 0, whatever the loss scale.
    bal = Uncertainty({"a": 1.0}, ["a"])
    loss = torch.tensor(1.0, requires_grad=True)
    bal.backward({"a": loss}, [], (), scale=65536.0)
    assert float(bal.log_vars.grad[0]) / 65536.0 == 0.0
    assert float(loss.grad) == 65536.0  # scaled like GradScaler.scale(loss).backward()


def test_gradnorm_weights_do_not_see_the_loss_scale() -> None:
    # The hand-worked toy of test_balancers.py at scale 65536: same next weights.
    w_layer = nn.Parameter(torch.tensor([[1.0, 1.0]]))
    z = (w_layer @ torch.tensor([1.0, 2.0])).squeeze()
    bal = GradNorm({"a": 1.0, "b": 1.0}, ["a", "b"], alpha=1.5, lr=0.1)
    bal.backward({"a": z, "b": 0.5 * z * z}, [w_layer], (), scale=65536.0)
    assert bal.w.tolist() == pytest.approx([1.5760143110525873, 0.4239856889474127])
    assert bal.initial.tolist() == [3.0, 4.5]
    assert (w_layer.grad.flatten() / 65536.0).tolist() == pytest.approx([4.0, 8.0])
    assert math.isfinite(float(bal.w.sum()))

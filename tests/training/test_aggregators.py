"""torchjd aggregators as balancers: known answers, logged weights, exact resume, cheap Jacobian."""

from __future__ import annotations

import io
import json

import pytest
import torch
from torch import nn

from edgemtl.core.config import AGGREGATOR_NAMES, BalancerConfig, load_recipe
from edgemtl.training.methods import StepContext, build_method
from edgemtl.training.methods.aggregators import TORCHJD_VERSION, Aggregated
from edgemtl.training.methods.balancers import build_balancer
from edgemtl.training.methods.task_grads import flat_grads, shared_jacobian
from tests.helpers.cli import REPO
from tests.helpers.tiny_run import specs_for, tiny_batch

RECIPE = REPO / "recipes" / "synthetic.yaml"


def test_the_pinned_torchjd_is_installed() -> None:
    import importlib.metadata

    assert importlib.metadata.version("torchjd") == TORCHJD_VERSION
    assert f'"torchjd=={TORCHJD_VERSION}"' in (REPO / "pyproject.toml").read_text()


def test_upgrad_known_answer_scaled_to_the_task_count() -> None:
    # torchjd's documented example: J = [[-4, 1, 1], [6, 1, 1]] -> UPGrad weights (1.1109, 0.7894),
    # aggregation (0.2929, 1.9004, 1.9004); edgemtl applies it times T = 2 (the `equal` scale).
    w = nn.Parameter(torch.zeros(3))
    losses = {"a": w @ torch.tensor([-4.0, 1.0, 1.0]), "b": w @ torch.tensor([6.0, 1.0, 1.0])}
    bal = build_balancer(BalancerConfig(name="upgrad"), {"a": 1.0, "b": 1.0})
    used = bal.backward(losses, [w])
    assert used == pytest.approx({"a": 2 * 1.1109, "b": 2 * 0.7894}, abs=2e-4)
    assert w.grad.tolist() == pytest.approx([2 * 0.2929, 2 * 1.9004, 2 * 1.9004], abs=2e-4)


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_weights_logged_where_torchjd_exposes_them(name: str) -> None:
    w = nn.Parameter(torch.zeros(3))
    losses = {"a": w @ torch.tensor([-4.0, 1.0, 1.0]), "b": w @ torch.tensor([6.0, 1.0, 2.0])}
    bal = build_balancer(BalancerConfig(name=name), {"a": 1.0, "b": 2.0})
    used = bal.backward(losses, [w])
    assert torch.isfinite(w.grad).all()
    if name in ("graddrop", "config"):
        assert used == {} and not bal.exposes_weights
        return
    assert set(used) == {"a", "b"} and bal.exposes_weights
    if name not in ("graddrop", "config"):  # a weighted sum: the gradient is J^T (weights)
        # recipe weight 2 on b: row b of J is 2 * (6, 1, 2); the logged weight includes it.
        expected = (used["a"] * torch.tensor([-4.0, 1.0, 1.0])) + (
            used["b"] * torch.tensor([6.0, 1.0, 2.0])
        )
        torch.testing.assert_close(w.grad, expected, rtol=1e-4, atol=1e-5)


def _checkpoint_round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_resume_is_exact(name: str) -> None:
    """Four calls straight through == two calls, a checkpoint (weights_only), two more calls."""
    torch.manual_seed(0)
    matrices = [torch.randn(3, 40) + (0.5 if i % 2 else -0.2) for i in range(4)]
    cfg = BalancerConfig(name=name, seed=5)
    weights = {"a": 1.0, "b": 1.0, "c": 1.0}
    straight = build_balancer(cfg, weights)
    assert isinstance(straight, Aggregated)
    want = [straight.aggregate(m) for m in matrices]
    first = build_balancer(cfg, weights)
    assert isinstance(first, Aggregated)
    for m in matrices[:2]:
        first.aggregate(m)
    torch.manual_seed(123)  # the global RNG must not matter
    resumed = build_balancer(cfg, weights)
    assert isinstance(resumed, Aggregated)
    resumed.load_state_dict(_checkpoint_round_trip(first.state_dict()))
    got = [resumed.aggregate(m) for m in matrices[2:]]
    for g, w in zip(got, want[2:]):
        assert torch.equal(g, w), (g, w)
    if name in ("graddrop", "gradvac", "rlw"):  # random: another seed draws differently
        other = build_balancer(BalancerConfig(name=name, seed=6), weights)
        assert isinstance(other, Aggregated)
        assert not all(torch.equal(other.aggregate(m), w) for m, w in zip(matrices, want))


def test_aggregation_leaves_the_training_rng_alone() -> None:
    bal = build_balancer(BalancerConfig(name="graddrop"), {"a": 1.0, "b": 1.0})
    assert isinstance(bal, Aggregated)
    torch.manual_seed(0)
    matrix = torch.randn(2, 10)
    expected = torch.rand(3)
    torch.manual_seed(0)
    matrix = torch.randn(2, 10)
    bal.aggregate(matrix)
    assert torch.equal(torch.rand(3), expected)


def test_jacobian_through_the_cut_equals_per_task_backward_passes() -> None:
    """Each task's backward to the cut + one batched product through the encoder == T full
    backward passes; task-specific parameters get the plain sum's gradient."""
    keys = ["seg", "depth", "normal"]
    recipe = load_recipe(
        RECIPE, ["model.width=0.125", f"tasks={json.dumps(keys)}", "method={name: sd}"]
    )
    torch.manual_seed(0)
    method = build_method(recipe, specs_for(keys))
    model = method.build_model().train()
    images, targets = tiny_batch(keys, n=4)
    ctx = StepContext(0, 1, 0, 1)
    shared = list(model.encoder.parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    method.cut_shared = True
    terms = method.loss_terms(method.forward(model, images, ctx), targets, ctx)
    jac = shared_jacobian(
        [sum(g.values()) for g in terms.values()], shared, [method.shared_cut], scale=8.0
    )
    heads = {n: p.grad.clone() / 8.0 for n, p in model.named_parameters() if p.grad is not None}
    model.load_state_dict(state)  # BN running stats moved in the first forward
    model.zero_grad()
    method.cut_shared = False
    terms = method.loss_terms(method.forward(model, images, ctx), targets, ctx)
    losses = [sum(g.values()) for g in terms.values()]
    want = torch.stack([flat_grads(loss, shared) for loss in losses])
    torch.testing.assert_close(jac, want, rtol=1e-5, atol=1e-7)
    sum(losses).backward()
    for name, p in model.named_parameters():
        if not name.startswith("encoder."):
            torch.testing.assert_close(heads[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)

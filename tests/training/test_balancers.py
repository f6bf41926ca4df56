"""Loss balancers against hand-worked examples with literal numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from edgemtl.core.config import BalancerConfig
from edgemtl.training.methods.balancers import (
    DWA,
    MGDA,
    Balancer,
    GradNorm,
    PCGrad,
    Uncertainty,
    build_balancer,
    dwa_weights,
    min_norm_weights,
    pcgrad_combine,
)


def linear_losses(
    direction_a: list[float], direction_b: list[float]
) -> tuple[nn.Parameter, dict[str, torch.Tensor]]:
    """A shared parameter w (at 0) and two losses whose gradients are the given directions."""
    w = nn.Parameter(torch.zeros(2))
    return w, {"a": w @ torch.tensor(direction_a), "b": w @ torch.tensor(direction_b)}


# ----------------------------------------------------------------------- equal
def test_equal_uses_recipe_weights() -> None:
    w, losses = linear_losses([1.0, 0.0], [0.0, 1.0])
    used = Balancer({"a": 2.0, "b": 0.5}).backward(losses, [w])
    assert used == {"a": 2.0, "b": 0.5}
    assert w.grad.tolist() == [2.0, 0.5]


# ---------------------------------------------------------------------- PCGrad
def test_pcgrad_projects_two_conflicting_gradients() -> None:
    # g1 = (1, 0), g2 = (-1, 1): g1.g2 = -1 < 0.
    # g1' = g1 - (-1 / 2) g2 = (0.5, 0.5); g2' = g2 - (-1 / 1) g1 = (0, 1); sum = (0.5, 1.5).
    combined = pcgrad_combine(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    assert combined.tolist() == pytest.approx([0.5, 1.5])
    w, losses = linear_losses([1.0, 0.0], [-1.0, 1.0])
    assert PCGrad({"a": 1.0, "b": 1.0}, ["a", "b"]).backward(losses, [w]) == {"a": 1.0, "b": 1.0}
    assert w.grad.tolist() == pytest.approx([0.5, 1.5])


def test_pcgrad_leaves_agreeing_gradients_alone() -> None:
    assert pcgrad_combine(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).tolist() == pytest.approx(
        [2.0, 1.0]
    )


# ------------------------------------------------------------------------ MGDA
def test_mgda_two_task_min_norm() -> None:
    # g1 = (2, 0), g2 = (0, 1): min over a of |a g1 + (1 - a) g2|^2 = 4a^2 + (1 - a)^2 -> a = 1/5.
    gram = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    assert min_norm_weights(gram).tolist() == pytest.approx([0.2, 0.8])
    w, losses = linear_losses([2.0, 0.0], [0.0, 1.0])
    used = MGDA({"a": 1.0, "b": 1.0}, ["a", "b"]).backward(losses, [w])
    assert used["a"] == pytest.approx(0.4) and used["b"] == pytest.approx(
        1.6
    )  # scaled to sum T = 2
    assert w.grad.tolist() == pytest.approx([0.8, 1.6])


def test_mgda_three_tasks_edge_optimum() -> None:
    # g = (1,0), (0,1), (1,1): the hull's min-norm point is (0.5, 0.5) with weights (0.5, 0.5, 0).
    g = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    a = min_norm_weights(g @ g.T)
    assert (a @ g).tolist() == pytest.approx([0.5, 0.5], abs=1e-12)
    assert a.tolist() == pytest.approx([0.5, 0.5, 0.0], abs=1e-12)


# ------------------------------------------------------------------------- DWA
def test_dwa_weights_from_loss_history() -> None:
    # r = L(t-1) / L(t-2) = (1/2, 1/1); T = 2: w_k = 2 exp(r_k / 2) / sum exp(r_i / 2).
    dwa = DWA({"a": 1.0, "b": 1.0}, ["a", "b"], temperature=2.0)
    dwa.on_epoch_end({"a": 2.0, "b": 1.0})  # after epoch 0: still 1 for epoch 1
    assert dwa.current == {"a": 1.0, "b": 1.0}
    dwa.on_epoch_end({"a": 1.0, "b": 1.0})  # after epoch 1: weights for epoch 2
    assert dwa.current["a"] == pytest.approx(0.8756469982)
    assert dwa.current["b"] == pytest.approx(1.1243530018)
    assert dwa_weights({"a": 1.0, "b": 1.0}, {"a": 2.0, "b": 1.0}, 2.0) == dwa.current
    w, losses = linear_losses([1.0, 0.0], [0.0, 1.0])
    used = dwa.backward(losses, [w])
    assert w.grad.tolist() == pytest.approx([used["a"], used["b"]])
    restored = DWA({"a": 1.0, "b": 1.0}, ["a", "b"])
    restored.load_state_dict(dwa.state_dict())
    assert restored.current == dwa.current and restored.history == dwa.history


# ----------------------------------------------------------------- uncertainty
def test_uncertainty_loss_and_gradient() -> None:
    # s = (0, ln 2), L = (2, 3): loss = e^0 * 2 + 0 + e^-ln2 * 3 + ln 2 = 3.5 + ln 2;
    # d/ds_t = 1 - e^-s_t L_t = (1 - 2, 1 - 1.5) = (-1, -0.5); d/dL_t = e^-s_t = (1, 0.5).
    bal = Uncertainty({"a": 1.0, "b": 1.0}, ["a", "b"])
    with torch.no_grad():
        bal.log_vars.copy_(torch.tensor([0.0, math.log(2.0)]))
    la, lb = torch.tensor(2.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    assert float(bal.combined({"a": la, "b": lb}).detach()) == pytest.approx(4.193147180559945)
    used = bal.backward({"a": la, "b": lb}, [])
    assert bal.log_vars.grad.tolist() == pytest.approx([-1.0, -0.5])
    assert (float(la.grad), float(lb.grad)) == pytest.approx((1.0, 0.5))
    assert used == pytest.approx({"a": 1.0, "b": 0.5})
    assert list(bal.module().parameters()) == [bal.log_vars]


# -------------------------------------------------------------------- GradNorm
def test_gradnorm_weight_update_on_a_toy_model() -> None:
    # Shared layer W = [[1, 1]], x = (1, 2): z = W x = 3. L_a = z = 3, L_b = z^2 / 2 = 4.5.
    # grad_W L_a = x (norm sqrt5), grad_W L_b = z x (norm 3 sqrt5). First step: ratios 1, so
    # target = mean(G) = 2 sqrt5; dL_grad/dw = sign(G - target) * norm = (-sqrt5, +3 sqrt5).
    # lr 0.1: w = (1 + 0.1 sqrt5, 1 - 0.3 sqrt5), renormalised to sum 2 = (1.57601431, 0.42398569).
    W = nn.Parameter(torch.tensor([[1.0, 1.0]]))
    z = (W @ torch.tensor([1.0, 2.0])).squeeze()
    bal = GradNorm({"a": 1.0, "b": 1.0}, ["a", "b"], alpha=1.5, lr=0.1)
    used = bal.backward({"a": z, "b": 0.5 * z * z}, [W])
    assert used == {"a": 1.0, "b": 1.0}  # the model's step uses the weights before the update
    assert W.grad.flatten().tolist() == pytest.approx([4.0, 8.0])  # x + z x
    assert bal.w.tolist() == pytest.approx([1.5760143110525873, 0.4239856889474127])
    assert bal.initial.tolist() == pytest.approx([3.0, 4.5])


def test_gradnorm_raises_the_weight_of_the_slower_task() -> None:
    # Losses (1.5, 4.5) from initial (3, 4.5): ratios (0.5, 1) -> r = (2/3, 4/3);
    # alpha 1, norms 1, w = 1:
    # target = (2/3, 4/3), G = (1, 1): sign = (+1, -1) -> w = (0.9, 1.1) (sum already 2).
    bal = GradNorm({"a": 1.0, "b": 1.0}, ["a", "b"], alpha=1.0, lr=0.1)
    bal.initial = torch.tensor([3.0, 4.5], dtype=torch.float64)
    new = bal.updated_weights(
        torch.ones(2, dtype=torch.float64),
        torch.ones(2, dtype=torch.float64),
        torch.tensor([1.5, 4.5], dtype=torch.float64),
    )
    assert new.tolist() == pytest.approx([0.9, 1.1])


def test_build_balancer_by_name() -> None:
    weights = {"seg": 1.0, "depth": 2.0}
    for name, cls in [
        ("equal", Balancer),
        ("uncertainty", Uncertainty),
        ("dwa", DWA),
        ("gradnorm", GradNorm),
        ("mgda", MGDA),
        ("pcgrad", PCGrad),
    ]:
        bal = build_balancer(BalancerConfig(name=name), weights)
        assert type(bal) is cls and bal.name == name
    assert build_balancer(BalancerConfig(name="mgda"), weights).needs_representation


def test_one_list_of_balancer_names() -> None:
    """Recipes validate against `config.BALANCER_NAMES`; the registry and the docs follow it."""
    from edgemtl.core.config import BALANCER_NAMES, recipe_from_dict
    from edgemtl.core.errors import UserError
    from edgemtl.training.methods.balancers import BALANCERS
    from tests.helpers.cli import REPO

    assert BALANCERS == BALANCER_NAMES
    docs = (REPO / "docs" / "methods.md").read_text()
    for name in BALANCER_NAMES:
        assert f"| `{name}` |" in docs, name
    with pytest.raises(UserError, match="train.balancer.name"):
        recipe_from_dict({"tasks": ["seg"], "train": {"balancer": {"name": "sum"}}})


# ------------------------------------------- validity rules of captured statistics
def test_gradnorm_reference_loss_is_the_first_valid_one() -> None:
    # Task a's first loss is 0 (no valid pixel): no reference yet, its ratio counts as 1.
    bal = GradNorm({"a": 1.0, "b": 1.0}, ["a", "b"], alpha=1.0, lr=0.1)
    bal.capture_initial(torch.tensor([0.0, 2.0], dtype=torch.float64))
    assert math.isnan(float(bal.initial[0])) and float(bal.initial[1]) == 2.0
    # Ratios (1, 1): equal targets, equal norms -> weights unchanged (not driven to the clamp).
    one = torch.ones(2, dtype=torch.float64)
    new = bal.updated_weights(one, one, torch.tensor([5.0, 2.0], dtype=torch.float64))
    assert new.tolist() == [1.0, 1.0]
    bal.capture_initial(torch.tensor([4.0, math.inf], dtype=torch.float64))  # a's first valid
    assert bal.initial.tolist() == [4.0, 2.0]
    # Later losses (2, 2): ratios (0.5, 1) -> r = (2/3, 4/3) as in the hand-worked test above.
    new = bal.updated_weights(one, one, torch.tensor([2.0, 2.0], dtype=torch.float64))
    assert new.tolist() == pytest.approx([0.9, 1.1])
    restored = GradNorm({"a": 1.0, "b": 1.0}, ["a", "b"])
    restored.load_state_dict(bal.state_dict())
    assert restored.initial.tolist() == [4.0, 2.0]


def test_gradnorm_zero_first_loss_does_not_collapse_the_other_weights() -> None:
    # Two tasks, a's first loss 0 (the toy): over many steps b's weight stays sane.
    bal = GradNorm({"a": 1.0, "b": 1.0}, ["a", "b"], alpha=1.5, lr=0.025)
    bal.capture_initial(torch.tensor([0.0, 1.0], dtype=torch.float64))
    w = bal.w
    for step in range(300):
        values = torch.tensor([0.5 + 0.001 * step, 1.0 - 0.001 * step], dtype=torch.float64)
        bal.capture_initial(values)
        w = bal.updated_weights(w, torch.ones(2, dtype=torch.float64), values)
    assert float(w.min()) > 0.3


@pytest.mark.parametrize("bad", [0.0, math.inf, math.nan])
def test_dwa_ratio_with_a_zero_or_non_finite_history_is_neutral(bad: float) -> None:
    weights = dwa_weights({"a": 1.0, "b": 1.0}, {"a": bad, "b": 1.0}, 2.0)
    assert weights == pytest.approx({"a": 1.0, "b": 1.0})
    if not math.isfinite(bad):  # (a current loss of 0 is a valid ratio 0: that task learned)
        weights = dwa_weights({"a": bad, "b": 1.0}, {"a": 1.0, "b": 1.0}, 2.0)
        assert weights == pytest.approx({"a": 1.0, "b": 1.0})


def test_delta_m_own_reference_fills_invalid_metrics_later() -> None:
    from edgemtl.training.selection import Selection

    sel = Selection(head="teacher", metric="delta_m")
    first = sel.add_delta_m({"teacher": {"seg": {"miou": 0.0, "pixel_acc": 50.0}}})
    assert first["teacher"]["delta_m"] == 0.0  # miou skipped: its reference is 0
    second = sel.add_delta_m({"teacher": {"seg": {"miou": 10.0, "pixel_acc": 60.0}}})
    assert sel.reference == {"seg": {"miou": 10.0, "pixel_acc": 50.0}}
    assert second["teacher"]["delta_m"] == pytest.approx((0.0 + 20.0) / 2)
    third = sel.add_delta_m({"teacher": {"seg": {"miou": 15.0, "pixel_acc": 50.0}}})
    assert third["teacher"]["delta_m"] == pytest.approx(50.0 / 2)  # the reference stays
    given = Selection(head="teacher", metric="delta_m", own_reference=False)
    given.reference = {"seg": {"miou": 0.0, "pixel_acc": 50.0}}
    given.add_delta_m({"teacher": {"seg": {"miou": 10.0, "pixel_acc": 60.0}}})
    assert given.reference == {"seg": {"miou": 0.0, "pixel_acc": 50.0}}  # a user's: as given

"""Task and distillation losses against hand-worked numbers; KD gradient rules."""

from __future__ import annotations

import math

import pytest
import torch

from edgemtl.core.config import recipe_from_dict
from edgemtl.core.tasks import make_spec
from edgemtl.training.losses import distill_loss, task_loss
from edgemtl.training.methods import StepContext, build_method
from edgemtl.training.models.network import ensemble

SEG = make_spec("seg", ["a", "b"])
DEPTH = make_spec("depth")
NORMAL = make_spec("normal")
KEYPOINTS = make_spec("keypoints")
LN3 = math.log(3.0)


def seg_case() -> tuple[torch.Tensor, torch.Tensor]:
    # Three pixels in a 1x3 image, C = 2.
    # A: logits (0, 0), target 0 -> CE = ln 2
    # B: logits (ln 3, 0) -> p = (3/4, 1/4), target 1 -> CE = ln 4
    # C: target -1 (ignored)
    logits = torch.tensor([[[[0.0, LN3, 5.0]], [[0.0, 0.0, -5.0]]]])
    target = torch.tensor([[[0, 1, -1]]])
    return logits, target


def test_seg_cross_entropy_ignores_minus_one() -> None:
    logits, target = seg_case()
    # (ln 2 + ln 4) / 2 = 1.5 ln 2 = 1.0397208
    assert task_loss(SEG, logits, target).item() == pytest.approx(1.0397208, abs=1e-6)


def test_seg_labels_out_of_range_are_ignored_too() -> None:
    logits, target = seg_case()
    target[0, 0, 2] = 7  # >= C
    assert task_loss(SEG, logits, target).item() == pytest.approx(1.0397208, abs=1e-6)


def test_depth_l1_over_valid_pixels() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    target = torch.tensor([1.5, 0.0, 2.0, 5.0]).view(1, 1, 1, 4)
    # |1-1.5| + |3-2| + |4-5| over 3 valid pixels = 2.5 / 3
    assert task_loss(DEPTH, pred, target).item() == pytest.approx(0.8333333, abs=1e-6)


def test_normal_one_minus_cosine_skips_zero_targets() -> None:
    pred = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(1, 3, 1, 3)
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).view(1, 3, 1, 3)
    # pixel 1: cos 1 -> 0; pixel 2: cos 0 -> 1; pixel 3: zero target, ignored -> mean 0.5
    assert task_loss(NORMAL, pred, target).item() == pytest.approx(0.5, abs=1e-6)


def test_keypoints_l1_skips_negative_targets() -> None:
    pred = torch.tensor([0.5, 0.2]).view(1, 1, 1, 2)
    target = torch.tensor([1.0, -1.0]).view(1, 1, 1, 2)
    assert task_loss(KEYPOINTS, pred, target).item() == pytest.approx(0.5, abs=1e-6)


def test_no_valid_pixel_gives_zero_not_nan() -> None:
    logits, _ = seg_case()
    loss = task_loss(SEG, logits.requires_grad_(), torch.full((1, 1, 3), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_seg_distillation_kl_with_temperature() -> None:
    # Pixel 1: teacher (ln 3, 0), student (0, 0); pixel 2 has an ignored target.
    teacher = torch.tensor([[[[LN3, 9.0]], [[0.0, 0.0]]]])
    student = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[1, -1]]])
    # tau = 1: KL((3/4, 1/4) || (1/2, 1/2)) = 0.75 ln 1.5 + 0.25 ln 0.5 = 0.1308120
    assert distill_loss(SEG, student, teacher, target, tau=1.0).item() == pytest.approx(
        0.1308120, abs=1e-6
    )
    # tau = 2: p_T = softmax((ln 3)/2, 0) = (0.633975, 0.366025); KL = 0.0363408;
    # x tau^2 = 0.1453631
    assert distill_loss(SEG, student, teacher, target, tau=2.0).item() == pytest.approx(
        0.1453631, abs=1e-6
    )


def test_regression_distillation_is_mean_euclidean_distance() -> None:
    student = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]).view(1, 3, 1, 2)
    teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).view(1, 3, 1, 2)
    target = torch.ones(1, 3, 1, 2)
    # pixel 1: ||(1,0,0) - (0,1,0)|| = sqrt 2; pixel 2: identical -> 0; mean = 0.7071068
    assert distill_loss(NORMAL, student, teacher, target).item() == pytest.approx(
        0.7071068, abs=1e-6
    )
    depth_s = torch.tensor([1.0, 2.0, 7.0]).view(1, 1, 1, 3)
    depth_t = torch.tensor([4.0, 2.0, 0.0]).view(1, 1, 1, 3)
    depth_target = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3)  # third pixel invalid
    assert distill_loss(DEPTH, depth_s, depth_t, depth_target).item() == pytest.approx(
        1.5, abs=1e-6
    )


def test_identical_outputs_give_zero_gradient_not_nan() -> None:
    student = torch.ones(1, 1, 2, 2, requires_grad=True)
    distill_loss(DEPTH, student, torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2)).backward()
    assert torch.equal(student.grad, torch.zeros_like(student))


def test_ensemble_seg_is_log_of_mean_probabilities() -> None:
    teacher = {"seg": torch.tensor([[[[LN3]], [[0.0]]]])}
    student = {"seg": torch.zeros(1, 2, 1, 1)}
    mixed = ensemble([SEG], teacher, student)["seg"]
    # mean of (3/4, 1/4) and (1/2, 1/2) = (5/8, 3/8); loss for target 0 = -ln(5/8) = 0.4700036
    assert torch.allclose(mixed.exp().flatten(), torch.tensor([0.625, 0.375]))
    assert task_loss(SEG, mixed, torch.tensor([[[0]]])).item() == pytest.approx(0.4700036, abs=1e-6)


def _sd_setup(lam: float, detach: bool, name: str = "sd"):
    recipe = recipe_from_dict(
        {
            "tasks": ["seg", "depth", "normal"],
            "model": {"width": 0.125},
            "method": {"name": name, "lambda": lam, "detach_teacher": detach},
        }
    )
    specs = [SEG, DEPTH, NORMAL]
    method = build_method(recipe, specs)
    torch.manual_seed(0)
    net = method.build_model()
    x = torch.randn(2, 3, 32, 32)
    targets = {
        "seg": torch.randint(0, 2, (2, 32, 32)),
        "depth": torch.rand(2, 1, 32, 32) + 0.5,
        "normal": torch.nn.functional.normalize(torch.randn(2, 3, 32, 32), dim=1),
    }
    ctx = StepContext(0, 1, 0, 1)
    terms = method.loss_terms(method.forward(net, x, ctx), targets, ctx)
    return net, terms


def _grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in module.parameters() if p.grad is not None]


def test_lambda_zero_gives_zero_kd_gradient() -> None:
    net, terms = _sd_setup(lam=0.0, detach=True)
    kd = sum(group["kd"] for group in terms.values())
    kd.backward()
    assert all(torch.count_nonzero(g) == 0 for g in _grads(net))


def test_detached_teacher_gets_no_kd_gradient_but_student_does() -> None:
    net, terms = _sd_setup(lam=1.0, detach=True)
    sum(group["kd"] for group in terms.values()).backward()
    assert _grads(net.teacher) == [] or all(
        torch.count_nonzero(g) == 0 for g in _grads(net.teacher)
    )
    assert any(torch.count_nonzero(g) > 0 for g in _grads(net.student))


def test_undetached_teacher_receives_kd_gradient() -> None:
    net, terms = _sd_setup(lam=1.0, detach=False)
    sum(group["kd"] for group in terms.values()).backward()
    assert any(torch.count_nonzero(g) > 0 for g in _grads(net.teacher))


def test_methods_group_terms_by_task() -> None:
    _, eq5 = _sd_setup(lam=1.0, detach=True, name="sd")
    assert {k: sorted(v) for k, v in eq5.items()} == {
        t: ["kd", "student", "teacher"] for t in ("seg", "depth", "normal")
    }
    _, eq6 = _sd_setup(lam=1.0, detach=True, name="sd_ensemble")
    assert {k: sorted(v) for k, v in eq6.items()} == {
        t: ["ensemble", "kd"] for t in ("seg", "depth", "normal")
    }

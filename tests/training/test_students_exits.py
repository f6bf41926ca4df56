"""Student kinds, decoder exits and feature distillation on the network and the methods."""

from __future__ import annotations

import pytest
import torch

from edgemtl.core.config import recipe_from_dict
from edgemtl.core.errors import UserError
from edgemtl.core.tasks import make_spec
from edgemtl.training.methods import build_method
from edgemtl.training.methods.base import StepContext
from edgemtl.training.models.network import MultiTaskNet
from edgemtl.training.models.students import StudentShape

SPECS = [make_spec("seg", ["a", "b", "c"]), make_spec("normal"), make_spec("edges")]
SHAPES = [
    StudentShape(),
    StudentShape("skip"),
    StudentShape("skip", shared_stages=4),
    StudentShape("skip", shared_stages=2, smooth=(3, 4)),
    StudentShape("skip", width=0.5, upsample="resize", smooth=()),
]


def _recipe(**model: object) -> dict:
    return {
        "name": "t",
        "data": {"size": [32, 64]},
        "tasks": {"seg": {}, "normal": {}, "edges": {}},
        "model": {"width": 0.125, **model},
        "method": {"name": "sd"},
    }


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.kind}-{s.shared_stages}-{s.upsample}")
def test_heads_agree_with_their_export_modules(shape: StudentShape) -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(SPECS, 0.125, student=shape, exits=(1, 2, 3)).eval()
    assert net.heads == ("teacher", "student", "ensemble", "exit1", "exit2", "exit3")
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        out = net(x, heads=net.heads)
        enc = net.encoder(x)
        tapped, taps = net.forward_with_taps(enc, net.heads)
        for head in net.heads:
            module = net.head_module(head)
            for spec, value in zip(SPECS, module(x)):
                assert value.shape == out[head][spec.key].shape
                torch.testing.assert_close(value, out[head][spec.key], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(tapped[head][spec.key], out[head][spec.key])
    # Taps: four up-stages for Teacher and Student, 4 - k for exit k, coarse to fine.
    assert [len(taps[h]["seg"]) for h in ("teacher", "student", "exit1", "exit2", "exit3")] == [
        4,
        4,
        3,
        2,
        1,
    ]
    assert taps["exit1"]["seg"][0].shape[-2:] == (8, 16)  # stage 2: 1/4 scale
    assert taps["student"]["normal"][-1].shape[-2:] == (32, 64)


def test_exit_modules_hold_only_their_teacher_prefix() -> None:
    net = MultiTaskNet(SPECS, 0.125, student=StudentShape("skip"), exits=(1, 2, 3))
    teacher_ids = {id(p) for p in net.teacher.parameters()}
    for k in (1, 2, 3):
        module = net.head_module(f"exit{k}")
        owned = {id(p) for p in module.parameters()}
        prefix = {
            id(p)
            for d in net.teacher.values()
            for i in range(k)
            for part in (d.ups[i], d.convs[i], d.gates[i])
            for p in part.parameters()
        }
        assert owned & teacher_ids == prefix
        assert not owned & {id(p) for p in net.student.parameters()}


@pytest.mark.parametrize("method", ["vanilla", "sd", "sd_ensemble"])
def test_exit_losses_train_the_teacher_stages_they_run_on(method: str) -> None:
    recipe = recipe_from_dict(
        {**_recipe(student={"kind": "skip"}, exits=[2]), "method": {"name": method}}
    )
    m = build_method(recipe, SPECS)
    net = m.build_model()
    assert m.eval_heads[-1] == "exit2"
    x = torch.randn(2, 3, 32, 64)
    targets = {
        "seg": torch.randint(0, 3, (2, 32, 64)),
        "normal": torch.nn.functional.normalize(torch.randn(2, 3, 32, 64), dim=1),
        "edges": torch.rand(2, 1, 32, 64),
    }
    terms = m.loss_terms(
        m.forward(net, x, StepContext(0, 1, 0, 1)), targets, StepContext(0, 1, 0, 1)
    )
    names = set(terms["seg"])
    assert "exit2" in names and ("exit2.kd" in names) == (method != "vanilla")
    # Deep supervision: the exit's task loss alone reaches Teacher stages 1-2, not stages 3-4.
    net.zero_grad()
    terms["seg"]["exit2"].backward()
    stage = net.teacher["seg"].convs
    assert stage[0][0][0].weight.grad.abs().sum() > 0 and stage[1][0][0].weight.grad is not None
    assert stage[2][0][0].weight.grad is None and stage[3][0][0].weight.grad is None


def test_feature_distillation_adaptors_learn_and_stay_out_of_the_network() -> None:
    recipe = recipe_from_dict(
        {
            **_recipe(student={"kind": "skip", "shared_stages": 2}, exits=[1]),
            "method": {"name": "sd", "feature_distill": {"weight": 0.5, "taps": [2, 4]}},
        }
    )
    m = build_method(recipe, SPECS)
    net = m.build_model()
    adaptors = m.extra_module()
    assert adaptors is not None
    # student: taps 2, 4; exit1 (own stages 2-4): taps 2, 4 -> 2 heads x 3 tasks x 2 taps
    assert len(adaptors.convs) == 12
    assert not {id(p) for p in adaptors.parameters()} & {id(p) for p in net.parameters()}
    x = torch.randn(2, 3, 32, 64)
    targets = {
        "seg": torch.randint(0, 3, (2, 32, 64)),
        "normal": torch.nn.functional.normalize(torch.randn(2, 3, 32, 64), dim=1),
        "edges": torch.rand(2, 1, 32, 64),
    }
    ctx = StepContext(0, 1, 0, 1)
    terms = m.loss_terms(m.forward(net, x, ctx), targets, ctx)
    assert {"feat", "exit1.feat"} <= set(terms["normal"])
    sum(terms["normal"].values()).backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for name, conv in adaptors.convs.items()
        if "normal" in name
        for p in conv.parameters()
    )
    # Teacher side detached: the feature terms alone give the Teacher decoder no gradient.
    net.zero_grad()
    terms = m.loss_terms(m.forward(net, x, ctx), targets, ctx)
    terms["seg"]["feat"].backward()
    assert all(p.grad is None for p in net.teacher["seg"].parameters())
    exported = {id(p) for h in net.heads for p in net.head_module(h).parameters()}
    assert not exported & {id(p) for p in adaptors.parameters()}


@pytest.mark.parametrize(
    ("model", "method", "message"),
    [
        ({"exits": [2]}, {"name": "kd_two_stage"}, "model.exits: method kd_two_stage cannot"),
        ({"exits": [4]}, {"name": "sd"}, "model.exits: expected distinct stages among [1, 2, 3]"),
        ({"exits": [1, 1]}, {"name": "sd"}, "model.exits: expected distinct stages"),
        ({"student": {"smooth": [5]}}, {"name": "sd"}, "model.student.smooth: expected true"),
        ({"student": {"shared_stages": 5}}, {"name": "sd"}, "model.student.shared_stages"),
        ({"student": {"kind": "fpn"}}, {"name": "sd"}, "model.student.kind"),
        ({}, {"name": "sd", "feature_distill": {"taps": [0]}}, "method.feature_distill.taps"),
    ],
)
def test_recipe_errors_name_the_key(model: dict, method: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        recipe_from_dict({**_recipe(**model), "method": method}, "r.yaml")


def test_recipe_and_checkpoint_without_student_key_mean_paper() -> None:
    recipe = recipe_from_dict(_recipe())
    assert recipe.model.student.kind == "paper" and recipe.model.exits == ()
    assert (
        StudentShape.of(None) == StudentShape() and StudentShape.of({"smooth": False}).smooth == ()
    )
    head = build_method(recipe, SPECS).build_model().student["seg"]
    assert type(head).__name__ == "StudentHead"

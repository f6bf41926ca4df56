"""Two-stage KD, KD4MTL, BAM, MGDA-UB's cut, balancer logging and Δm references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.core.config import load_recipe
from edgemtl.core.errors import UserError
from edgemtl.evaluation.metrics import delta_m
from edgemtl.evaluation.reference import load_reference
from edgemtl.evaluation.scoring import with_delta_m
from edgemtl.training.checkpoint import load_checkpoint, model_from_checkpoint
from edgemtl.training.methods import StepContext, build_method
from edgemtl.training.methods.balancers import MGDA
from edgemtl.training.methods.bam import ground_truth_share
from edgemtl.training.methods.kd4mtl import feature_distance
from edgemtl.training.train_command import TrainOptions, run_training
from tests.helpers.cli import REPO, run_cli
from tests.helpers.tiny_run import TINY_OVERRIDES, specs_for, tiny_batch

RECIPE = REPO / "recipes" / "synthetic.yaml"


def build(keys: list[str], method: str):  # type: ignore[no-untyped-def]
    recipe = load_recipe(
        RECIPE, ["model.width=0.125", f"tasks={json.dumps(keys)}", f"method={method}"]
    )
    method_obj = build_method(recipe, specs_for(keys))
    return recipe, method_obj, method_obj.build_model()


def one_step(method, model, keys: list[str], extra_params=()):  # type: ignore[no-untyped-def]
    images, targets = tiny_batch(keys)
    ctx = StepContext(0, 1, 0, 1)
    model.train()
    optimizer = torch.optim.Adam([*model.parameters(), *extra_params], lr=1e-2)
    terms = method.loss_terms(method.forward(model, images, ctx), targets, ctx)
    optimizer.zero_grad()
    sum(sum(group.values()) for group in terms.values()).backward()
    optimizer.step()
    return terms


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- two-stage KD
def test_two_stage_kd_freezes_the_teacher_and_has_its_own_encoder(
    tiny_vanilla_checkpoint: Path,
) -> None:
    keys = ["seg", "depth", "normal"]
    _, method, student = build(keys, f"{{name: kd_two_stage, teacher: {tiny_vanilla_checkpoint}}}")
    teacher = method.teacher.net
    before_teacher, before_student = snapshot(teacher), snapshot(student)
    assert student.heads == ("student",) and len(student.teacher) == 0
    teacher_ptrs = {p.data_ptr() for p in teacher.parameters()}
    assert not teacher_ptrs & {p.data_ptr() for p in student.parameters()}  # its own encoder
    terms = one_step(method, student, keys)
    assert set(terms["seg"]) == {"student", "kd"} and float(terms["depth"]["kd"].detach()) > 0
    assert not teacher.training and all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before_teacher[k], v) for k, v in teacher.state_dict().items())
    changed = [
        k
        for k, v in student.state_dict().items()
        if k.startswith("encoder") and not torch.equal(before_student[k], v)
    ]
    assert changed  # the Student's own encoder trains


def test_two_stage_kd_trains_both_stages_and_exports_the_student(tmp_path: Path) -> None:
    overrides = [
        *TINY_OVERRIDES,
        "data.synthetic.n_train=8",
        "data.synthetic.n_val=4",
        "train.epochs=1",
        "tasks=[seg, depth]",
        "method={name: kd_two_stage}",
    ]
    options = TrainOptions.from_file(RECIPE, overrides, out=tmp_path / "kd", quiet=True)
    summary = run_training(options)
    stage1 = load_checkpoint(tmp_path / "kd" / "stage1" / "best.pt")
    assert stage1.heads == ["teacher"] and stage1.recipe.method.name == "vanilla"
    ckpt = load_checkpoint(tmp_path / "kd" / "best.pt")
    assert ckpt.heads == ["student"] and summary["select"]["head"] == "student"
    teacher = ckpt.recipe.method.teacher  # type: ignore[union-attr]
    assert teacher == str(tmp_path / "kd" / "stage1" / "best.pt")
    assert not any(k.startswith("teacher.") for k in ckpt.model)
    head = model_from_checkpoint(ckpt).head_module("student")
    outputs = head(torch.zeros(1, 3, 32, 64))
    assert [tuple(o.shape[-2:]) for o in outputs] == [(32, 64), (32, 64)] and outputs[1].shape[
        1
    ] == 1


def test_two_stage_kd_rejects_a_teacher_without_the_task(tiny_single_task_checkpoint: Path) -> None:
    with pytest.raises(UserError, match="has no depth task"):
        build(["seg", "depth"], f"{{name: kd_two_stage, teacher: {tiny_single_task_checkpoint}}}")


# ---------------------------------------------------------------------- KD4MTL
def test_feature_distance_is_l2_normalised() -> None:
    # Student (3, 4) -> (0.6, 0.8); teacher (0, 5) -> (0, 1): (0.6)^2 + (0.2)^2 = 0.4 at each pixel.
    student = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1).expand(2, 2, 3, 3)
    teacher = torch.tensor([0.0, 5.0]).view(1, 2, 1, 1).expand(2, 2, 3, 3)
    assert float(feature_distance(student, teacher)) == pytest.approx(0.4, rel=1e-5)


@pytest.mark.parametrize("adaptor,layers", [("linear", "last"), ("nonlinear", "mid+last")])
def test_kd4mtl_teachers_frozen_adaptors_learn(
    tiny_single_task_checkpoint: Path, tiny_vanilla_checkpoint: Path, adaptor: str, layers: str
) -> None:
    keys = ["seg", "depth"]
    teachers = f"{{seg: {tiny_single_task_checkpoint}, depth: {tiny_vanilla_checkpoint}}}"
    recipe, method, model = build(
        keys,
        f"{{name: kd4mtl, teachers: {teachers}, adaptor: {adaptor}, layers: {layers}, weights: "
        "{depth: 2}}",
    )
    frozen = {id(t): t.net for t in method.teachers.values()}
    assert len(frozen) == 2
    before = {i: snapshot(net) for i, net in frozen.items()}
    groups = method.parameter_groups(model)
    assert groups[1]["lr"] == pytest.approx(0.1) and groups[1]["weight_decay"] == pytest.approx(
        5e-4
    )
    assert {id(p) for p in groups[1]["params"]} == {
        id(p) for p in method.extra_module().parameters()
    }
    terms = one_step(method, model, keys, extra_params=list(method.adaptors.parameters()))
    assert set(terms["seg"]) == {"teacher", "feat"} and float(terms["depth"]["feat"].detach()) > 0
    for i, net in frozen.items():
        assert not net.training
        assert all(p.grad is None and not p.requires_grad for p in net.parameters())
        assert all(torch.equal(before[i][k], v) for k, v in net.state_dict().items())
    grads = [p.grad for p in method.adaptors.parameters()]
    assert grads and all(g is not None and float(g.abs().sum()) > 0 for g in grads)
    assert set(method.adaptors["seg"]) == ({"last"} if layers == "last" else {"mid", "last"})


def test_kd4mtl_adaptor_none_needs_matching_channels(tiny_single_task_checkpoint: Path) -> None:
    method = (
        f"method={{name: kd4mtl, teachers: {{seg: {tiny_single_task_checkpoint}}}, adaptor: none}}"
    )
    wider = load_recipe(RECIPE, ["model.width=0.25", "tasks=[seg]", method])  # teacher: width 0.125
    with pytest.raises(
        UserError, match="adaptor none: features have 256 channels but the teacher's have 128"
    ):
        build_method(wider, specs_for(["seg"]))
    same = build_method(
        load_recipe(RECIPE, ["model.width=0.125", "tasks=[seg]", method]), specs_for(["seg"])
    )
    assert isinstance(same.adaptors["seg"]["last"], torch.nn.Identity)


def test_kd4mtl_missing_teacher_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"method.teachers.seg: checkpoint .*missing.pt not found"):
        build(["seg"], f"{{name: kd4mtl, teachers: {{seg: {tmp_path / 'missing.pt'}}}}}")


def test_method_teachers_must_name_recipe_tasks() -> None:
    with pytest.raises(UserError, match="method.teachers names task 'normal'"):
        load_recipe(RECIPE, ["tasks=[seg]", "method={name: bam, teachers: {normal: x.pt}}"])


# ------------------------------------------------------------------------- BAM
def test_bam_annealing_schedule() -> None:
    assert [ground_truth_share(p) for p in (0.0, 0.25, 0.5, 1.0)] == [0.0, 0.25, 0.5, 1.0]
    assert ground_truth_share(0.25, 0.2, 0.8) == pytest.approx(0.35)
    assert ground_truth_share(1.7) == 1.0
    assert StepContext(epoch=1, epochs=2, step=2, steps_per_epoch=4).progress == pytest.approx(0.75)


def test_bam_moves_from_teacher_to_ground_truth(
    tiny_single_task_checkpoint: Path, tiny_vanilla_checkpoint: Path
) -> None:
    keys = ["seg", "depth", "normal"]
    teachers = f"{{seg: {tiny_single_task_checkpoint}, depth: {tiny_vanilla_checkpoint}}}"
    _, method, model = build(keys, f"{{name: bam, teachers: {teachers}}}")
    images, targets = tiny_batch(keys)
    outputs = method.forward(model, images, StepContext(0, 1, 0, 1))
    start = method.loss_terms(outputs, targets, StepContext(0, 2, 0, 4))
    middle = method.loss_terms(outputs, targets, StepContext(1, 2, 0, 4))
    assert set(start["seg"]) == {"gt", "distill"} and set(start["normal"]) == {
        "teacher"
    }  # no normal teacher
    assert (
        float(start["depth"]["gt"].detach()) == 0.0
        and float(start["depth"]["distill"].detach()) > 0
    )
    # Half way: half of each; the distillation term is the same loss, halved.
    assert 2 * float(middle["depth"]["distill"].detach()) == pytest.approx(
        float(start["depth"]["distill"].detach()), rel=1e-6
    )
    assert float(middle["depth"]["gt"].detach()) > 0
    for t in method.teachers.values():
        assert not t.net.training


# ---------------------------------------------------------------- MGDA-UB cut
def test_mgda_on_the_cut_representation_matches_a_weighted_backward() -> None:
    keys = ["seg", "depth"]
    torch.manual_seed(0)
    _, method, model = build(keys, "{name: sd}")
    images, targets = tiny_batch(keys)
    ctx = StepContext(0, 1, 0, 1)
    model.eval()  # BN in eval: the two forwards below are identical
    method.cut_shared = True
    terms = method.loss_terms(method.forward(model, images, ctx), targets, ctx)
    shared = list(model.encoder.parameters())
    used = MGDA({k: 1.0 for k in keys}, keys).backward(
        {k: sum(g.values()) for k, g in terms.items()}, shared, [method.shared_cut]
    )
    cut_grads = [p.grad.clone() for p in shared]
    assert sum(used.values()) == pytest.approx(2.0)
    model.zero_grad()
    method.cut_shared = False
    terms = method.loss_terms(method.forward(model, images, ctx), targets, ctx)
    sum(used[k] * sum(g.values()) for k, g in terms.items()).backward()
    for got, want in zip(cut_grads, (p.grad for p in shared)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


# ------------------------------------------------- balancer weights in the log
def test_dwa_weights_logged_per_epoch(tmp_path: Path) -> None:
    from edgemtl.training.methods.balancers import dwa_weights
    from edgemtl.training.step import epoch_task_losses

    overrides = [
        *TINY_OVERRIDES,
        "data.synthetic.n_train=8",
        "data.synthetic.n_val=4",
        "train.epochs=3",
        "tasks=[seg, depth]",
        "method={name: vanilla}",
        "train.balancer.name=dwa",
    ]
    options = TrainOptions.from_file(RECIPE, overrides, out=tmp_path / "dwa", quiet=True)
    summary = run_training(options)
    rows = [
        json.loads(line) for line in (tmp_path / "dwa" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["weights"] for row in rows[:2]] == [{"seg": 1.0, "depth": 1.0}] * 2
    history = [epoch_task_losses(row["losses"], ["seg", "depth"]) for row in rows]
    assert rows[2]["weights"] == pytest.approx(dwa_weights(history[1], history[0], 2.0))
    assert summary["balancer"] == "dwa" and summary["weights"] == rows[2]["weights"]
    balancer = load_checkpoint(tmp_path / "dwa" / "last.pt").balancer
    assert balancer is not None and balancer.name == "dwa"
    saved = balancer.state["history"]
    assert len(saved) == 3 and all(got == pytest.approx(want) for got, want in zip(saved, history))


# -------------------------------------------------------------------------- Δm
def test_delta_m_against_hand_computed_reference(tmp_path: Path) -> None:
    # seg: miou +25 %, pixel_acc 0 -> +12.5 %; depth: abs_err 0.4 -> 0.5 is -25 %.
    # Δm = (12.5 - 25) / 2 = -6.25.
    (tmp_path / "st-seg").mkdir()
    (tmp_path / "st-seg" / "summary.json").write_text(
        json.dumps(
            {
                "select": {"head": "teacher"},
                "final": {"teacher": {"seg": {"miou": 40.0, "pixel_acc": 80.0}, "delta_m": 0.0}},
            }
        )
    )
    (tmp_path / "depth.json").write_text(
        json.dumps(
            {
                "heads": {
                    "teacher": {"depth": {"abs_err": 0.4}},
                    "student": {"depth": {"abs_err": 9.0}},
                }
            }
        )
    )
    (tmp_path / "mtl.json").write_text(
        json.dumps({"seg": {"miou": 1.0}, "depth": {"abs_err": 1.0}})
    )
    reference = load_reference(
        [str(tmp_path / "st-seg"), f"{tmp_path / 'depth.json'}#teacher", str(tmp_path / "mtl.json")]
    )
    assert reference == {
        "seg": {"miou": 40.0, "pixel_acc": 80.0},
        "depth": {"abs_err": 0.4},
    }  # first source wins
    result = {"seg": {"miou": 50.0, "pixel_acc": 80.0}, "depth": {"abs_err": 0.5}}
    assert delta_m(result, reference) == pytest.approx(-6.25)
    assert with_delta_m({"student": result}, reference)["student"]["delta_m"] == pytest.approx(
        -6.25
    )
    with pytest.raises(UserError, match="several heads"):
        load_reference([str(tmp_path / "depth.json")])


def test_eval_cli_reference(tiny_checkpoint: Path, tmp_path: Path) -> None:
    proc = run_cli("eval", str(tiny_checkpoint), "--head", "student", "--json", "-", "--limit", "4")
    assert proc.returncode == 0, proc.stderr
    own = json.loads(proc.stdout)["heads"]["student"]
    seg = own["seg"]
    reference = {
        "seg": {"miou": seg["miou"] / 2, "pixel_acc": seg["pixel_acc"]}
    }  # Δm = 100 * (1 + 0) / 2 = +50
    (tmp_path / "ref.json").write_text(json.dumps(reference))
    proc = run_cli(
        "eval",
        str(tiny_checkpoint),
        "--head",
        "student",
        "--json",
        "-",
        "--limit",
        "4",
        "--reference",
        str(tmp_path / "ref.json"),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["heads"]["student"]["delta_m"] == pytest.approx(50.0)
    assert result["reference"] == [str(tmp_path / "ref.json")]
    proc = run_cli("eval", str(tiny_checkpoint), "--reference", str(tmp_path / "nope.json"))
    assert proc.returncode == 1 and "reference" in proc.stderr and "Traceback" not in proc.stderr


def test_training_summary_delta_m_against_recipe_reference(
    tiny_vanilla_checkpoint: Path, tmp_path: Path
) -> None:
    ref = tiny_vanilla_checkpoint.parent
    overrides = [
        *TINY_OVERRIDES,
        "data.synthetic.n_train=8",
        "data.synthetic.n_val=12",
        "train.epochs=1",
        "method={name: vanilla}",
        f"train.reference={ref}",
    ]
    options = TrainOptions.from_file(RECIPE, overrides, out=tmp_path / "run", quiet=True)
    summary = run_training(options)
    expected = load_reference([str(ref)])
    assert summary["select"]["reference"] == expected
    final = summary["final"]["teacher"]
    assert final["delta_m"] == pytest.approx(delta_m(final, expected))
    assert np.isfinite(final["delta_m"])


def test_checkpoint_reference_needs_the_training_sides_reader(tiny_checkpoint: Path) -> None:
    """evaluation/ never imports training: a .pt reference is read by the loader its caller
    passes."""
    from edgemtl.training.checkpoint import load_checkpoint

    with pytest.raises(UserError, match="reading a checkpoint needs PyTorch"):
        load_reference([str(tiny_checkpoint)])
    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt.select is not None and ckpt.metrics is not None
    head = ckpt.select.head
    expected = {k: v for k, v in ckpt.metrics.heads[head].items() if isinstance(v, dict)}
    assert load_reference([str(tiny_checkpoint)], load_checkpoint) == expected

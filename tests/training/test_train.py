"""Trainer behaviour: learning, exact resume, NaN stop, run folder, eval agreement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.core.config import load_recipe
from edgemtl.core.errors import UserError
from edgemtl.core.tasks import make_spec
from edgemtl.training.checkpoint import load_checkpoint, model_from_checkpoint
from edgemtl.training.evaluate import evaluate_checkpoint
from edgemtl.training.methods import StepContext, build_method
from edgemtl.training.train_command import TrainOptions, run_training
from edgemtl.training.trainer import Position, Trainer, TrainingInterrupted
from tests.helpers.cli import REPO, run_cli
from tests.helpers.tiny_run import TINY_OVERRIDES

RECIPE = REPO / "recipes" / "synthetic.yaml"


def test_overfits_one_fixed_batch() -> None:
    from edgemtl.data.preprocess import InputSpec, collate, prepare_sample
    from edgemtl.data.synthetic import CLASS_NAMES, SynthParams, render_sample

    torch.manual_seed(0)
    recipe = load_recipe(RECIPE, ["model.width=0.125"])
    specs = [make_spec("seg", list(CLASS_NAMES)), make_spec("depth"), make_spec("normal")]
    method = build_method(recipe, specs)
    net = method.build_model()
    params = SynthParams(n_train=4, n_val=1, height=32, width=64, seed=5)
    spec = InputSpec(32, 64)
    images, targets = collate(
        [prepare_sample(render_sample(params, "train", i), spec) for i in range(4)]
    )
    x = torch.from_numpy(images)
    batch = {s.key: torch.from_numpy(targets[s.key]) for s in specs}
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    ctx = StepContext(0, 1, 0, 1)
    losses = []
    for _ in range(50):
        terms = method.loss_terms(method.forward(net, x, ctx), batch, ctx)
        total = sum(sum(group.values()) for group in terms.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < 0.5 * losses[0]


def _resume_overrides() -> list[str]:
    return [*TINY_OVERRIDES, "data.synthetic.n_train=24", "data.workers=1", "train.epochs=2"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model


def test_interrupt_mid_epoch_then_resume_is_bit_identical(tmp_path: Path) -> None:
    overrides = _resume_overrides()
    run_training(TrainOptions.from_file(RECIPE, overrides, out=tmp_path / "straight", quiet=True))

    def interrupt(position: Position) -> None:
        if position.global_step == 8:  # 6 steps per epoch: batch 2 of epoch 2
            raise KeyboardInterrupt

    recipe = load_recipe(RECIPE, overrides)
    first = Trainer(recipe, tmp_path / "resumed", quiet=True, step_callback=interrupt)
    first.init_from_data()
    with pytest.raises(TrainingInterrupted, match="--resume"):
        first.fit()
    saved = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert saved.position == Position(epoch=1, batch=2, global_step=8)

    resume = TrainOptions.from_file(RECIPE, [], out=tmp_path / "resumed", resume=True, quiet=True)
    run_training(resume)
    straight, resumed = (
        _weights(tmp_path / "straight" / "last.pt"),
        _weights(tmp_path / "resumed" / "last.pt"),
    )
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    rows = [
        json.loads(line)
        for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["epoch"] for row in rows] == [0, 1]


def test_nan_loss_stops_and_keeps_a_loadable_last_checkpoint(tmp_path: Path) -> None:
    from edgemtl.data.synthetic import SynthParams, write_dataset
    from edgemtl.training.data import epoch_permutation

    root = write_dataset(
        tmp_path / "data", SynthParams(n_train=8, n_val=4, height=32, width=64, seed=3)
    )
    for i in epoch_permutation(8, 0, 0)[4:8]:  # the second batch of 4 (train.seed 0)
        path = root / "train" / "image" / f"{i}.npy"
        image = np.load(path)
        image[0, 0, 0] = np.nan
        np.save(path, image)
    with pytest.raises(
        UserError,
        match=r"training stopped: loss is nan .* at epoch 1, batch 2; last good checkpoint: "
        r".*last.pt",
    ):
        # data.check=false: the NaN guard behind the data checks (which refuse these images);
        # a last.pt after every step, so the one before the NaN batch is the good one
        overrides = [
            *TINY_OVERRIDES,
            f"data.root={root}",
            "data.check=false",
            "train.checkpoint_every=1",
        ]
        run_training(TrainOptions.from_file(RECIPE, overrides, out=tmp_path / "run", quiet=True))
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt.position.global_step == 1
    net = model_from_checkpoint(ckpt)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert all(torch.isfinite(b).all() for b in net.buffers() if b.is_floating_point())


def test_run_folder_and_checkpoint_contents(tiny_checkpoint: Path) -> None:
    run = tiny_checkpoint.parent
    for name in ("recipe.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    ckpt = torch.load(tiny_checkpoint, weights_only=True)  # plain containers only
    for key in (
        "format",
        "schema_version",
        "edgemtl_version",
        "recipe",
        "tasks",
        "heads",
        "model",
        "optimizer",
        "scheduler",
        "epoch",
        "rng",
        "metrics",
        "select",
        "data",
    ):
        assert key in ckpt, key
    assert ckpt["heads"] == ["teacher", "student", "ensemble"]
    assert ckpt["select"]["head"] == "student" and ckpt["select"]["metric"] == "delta_m"
    assert ckpt["data"]["kind"] == "synthetic" and ckpt["data"]["params"]["height"] == 32
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["schema_version"] == 1 and rows[0]["split"] == "val"
    assert set(rows[0]["heads"]) == {"teacher", "student", "ensemble"}
    assert set(rows[0]["heads"]["student"]) == {
        "seg",
        "depth",
        "normal",
        "keypoints",
        "edges",
        "delta_m",
    }
    assert rows[0]["heads"]["student"]["delta_m"] == 0.0  # the reference is the first evaluation


def test_eval_reproduces_logged_metrics(tiny_checkpoint: Path) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt.metrics is not None
    logged = ckpt.metrics.heads
    result = evaluate_checkpoint(tiny_checkpoint, "all")
    assert set(result["heads"]) == set(logged)
    for head, tasks in logged.items():
        for task, values in tasks.items():
            if isinstance(values, dict):
                for name, value in values.items():
                    assert result["heads"][head][task][name] == pytest.approx(
                        value, rel=1e-5, abs=1e-6
                    ), (head, task, name)
            else:
                assert result["heads"][head][task] == pytest.approx(values, abs=1e-4)


def test_eval_cli_json_to_stdout(tiny_checkpoint: Path) -> None:
    proc = run_cli("eval", str(tiny_checkpoint), "--head", "student", "--json", "-", "--limit", "4")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert list(result["heads"]) == ["student"] and result["samples"] == 4
    assert 0.0 <= result["heads"]["student"]["seg"]["miou"] <= 100.0


def test_loop_parts_import_without_cycles() -> None:
    """stages -> trainer only (not back); evaluate and the checkpoint readers need no trainer."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import edgemtl.training.checkpoint, edgemtl.training.evaluate\n"
        "import edgemtl.training.torch_runner\n"
        "assert 'edgemtl.training.trainer' not in sys.modules, 'evaluate imports the trainer'\n"
        "import edgemtl.training.trainer\n"
        "assert 'edgemtl.training.stages' not in sys.modules, 'the trainer imports stages'\n"
        "import edgemtl.core.checkpoint_schema\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", ["nash_mtl", "gradvac"])  # numpy + cvxpy; random + tensors
def test_stateful_and_random_aggregators_resume_bit_identically(tmp_path: Path, name: str) -> None:
    """Their state (numpy, tensors, call count) goes through last.pt (weights_only) and back."""
    overrides = [
        *TINY_OVERRIDES,
        "data.synthetic.n_train=8",
        "data.synthetic.n_val=4",
        "train.epochs=2",
        "method={name: vanilla}",
        "tasks=[seg, depth, normal]",
        f"train.balancer.name={name}",
    ]
    run_training(TrainOptions.from_file(RECIPE, overrides, out=tmp_path / "straight", quiet=True))

    def interrupt(position: Position) -> None:
        if position.global_step == 3:  # 2 steps per epoch: batch 2 of epoch 2
            raise KeyboardInterrupt

    first = Trainer(
        load_recipe(RECIPE, overrides), tmp_path / "resumed", quiet=True, step_callback=interrupt
    )
    first.init_from_data()
    with pytest.raises(TrainingInterrupted):
        first.fit()
    state = load_checkpoint(tmp_path / "resumed" / "last.pt").balancer
    # Step 1's matrix is zero (zero-initialised output layers): steps 2 and 3 called it.
    assert state is not None and state.name == name and state.state["calls"] == 2
    resume = TrainOptions.from_file(RECIPE, [], out=tmp_path / "resumed", resume=True, quiet=True)
    run_training(resume)
    straight = _weights(tmp_path / "straight" / "last.pt")
    resumed = _weights(tmp_path / "resumed" / "last.pt")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)

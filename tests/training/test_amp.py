"""Speed options of the training step: bf16/fp16 autocast, GradScaler state, channels_last,
micro-batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.core.config import load_recipe
from edgemtl.core.errors import UserError
from edgemtl.training.amp import Precision
from edgemtl.training.checkpoint import load_checkpoint
from edgemtl.training.methods import StepContext
from edgemtl.training.trainer import Position, Trainer, TrainingInterrupted
from tests.helpers.cli import REPO

RECIPE = REPO / "recipes" / "synthetic.yaml"
TINY = [
    "data.size=[32,64]",
    "data.workers=0",
    "data.synthetic.n_train=8",
    "data.synthetic.n_val=4",
    "model.width=0.125",
    "train.batch_size=4",
    "train.threads=1",
    "train.epochs=1",
    "train.optimizer.lr=0.002",
]


def _cpu_autocast_supported(dtype: torch.dtype) -> bool:
    try:
        with torch.autocast("cpu", dtype=dtype):
            return (
                torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 1, 1)).dtype
                == dtype
            )
    except (RuntimeError, AssertionError):
        return False


BF16 = pytest.mark.skipif(
    not _cpu_autocast_supported(torch.bfloat16),
    reason="this torch build has no CPU bfloat16 autocast",
)


def _steps(tmp: Path, extra: list[str], steps: int = 2) -> Trainer:
    """Run `steps` real optimizer steps of the trainer, then stop (last.pt holds them)."""

    def stop(position: Position) -> None:
        if position.global_step == steps:
            raise KeyboardInterrupt

    trainer = Trainer(load_recipe(RECIPE, [*TINY, *extra]), tmp, quiet=True, step_callback=stop)
    trainer.init_from_data()
    threads = torch.get_num_threads()
    try:
        with pytest.raises(TrainingInterrupted):
            trainer.fit()
    finally:
        torch.set_num_threads(threads)
    return trainer


def _trainer(tmp: Path, extra: list[str]) -> Trainer:
    trainer = Trainer(load_recipe(RECIPE, [*TINY, *extra]), tmp, quiet=True)
    trainer.init_from_data()
    trainer.model.train()
    return trainer


def _batch(trainer: Trainer) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    from edgemtl.training.data import PreparedSplit

    return next(
        iter(
            torch.utils.data.DataLoader(
                PreparedSplit(trainer.train_reader, trainer.input_spec), batch_size=4
            )
        )
    )


CTX = StepContext(0, 1, 0, 1)


@BF16
def test_bf16_autocast_runs_the_step_in_bfloat16_and_stays_close_to_fp32(tmp_path: Path) -> None:
    bf16, fp32 = _trainer(tmp_path / "a", ["train.amp=bf16"]), _trainer(tmp_path / "b", [])
    seen: list[torch.dtype] = []
    hook = bf16.model.encoder.stages[0][0][0].register_forward_hook(
        lambda m, i, o: seen.append(o.dtype)
    )
    images, targets = _batch(bf16)
    first16 = bf16.train_step(images, targets, CTX)
    hook.remove()
    first32 = fp32.train_step(images, targets, CTX)
    assert (
        seen == [torch.bfloat16] and bf16.precision.state_dict() is None
    )  # bf16 needs no loss scaling
    # Same weights and batch: the bf16 loss is the fp32 loss to bf16 accuracy.
    assert first16["total"] == pytest.approx(first32["total"], rel=0.02)
    # Output convolutions start at zero (the constant predictor), so they are the first to move.
    w = "teacher.seg.output.weight"
    after = bf16.model.state_dict()[w]
    assert (
        after.dtype == torch.float32 and torch.isfinite(after).all()
    )  # fp32 master weights, updated
    assert not torch.equal(after, _trainer(tmp_path / "c", []).model.state_dict()[w])
    _steps(tmp_path / "run", ["train.amp=bf16"])  # and the whole loop: checkpoint written mid-epoch
    position = load_checkpoint(tmp_path / "run" / "last.pt").position
    assert position is not None and position.global_step == 2


def test_fp16_uses_a_grad_scaler_whose_state_is_checkpointed(tmp_path: Path) -> None:
    if not _cpu_autocast_supported(torch.float16):
        pytest.skip("this torch build has no CPU float16 autocast")
    more = ["data.synthetic.n_train=32"]
    init = _trainer(tmp_path / "init", more)
    trainer = _steps(tmp_path / "fp16", [*more, "train.amp=fp16"], steps=6)
    ckpt = load_checkpoint(tmp_path / "fp16" / "last.pt")
    assert ckpt.amp_scaler["scale"] == trainer.precision.scaler.get_scale() > 0
    # The scaler may skip overflowing first steps, but the later ones apply finite updates
    # (output convolutions start at zero, so they are the first weights every applied step moves).
    w = "teacher.seg.output.weight"
    weight = ckpt.model[w]
    assert torch.isfinite(weight).all() and not torch.equal(weight, init.model.state_dict()[w])
    resumed = Trainer(
        load_recipe(RECIPE, [*TINY, *more, "train.amp=fp16"]), tmp_path / "fp16", quiet=True
    )
    resumed.restore(ckpt)
    assert resumed.precision.scaler.get_scale() == ckpt.amp_scaler["scale"]


def test_channels_last_gives_the_default_layouts_numbers(tmp_path: Path) -> None:
    nhwc, nchw = (
        _trainer(tmp_path / "a", ["train.channels_last=true"]),
        _trainer(tmp_path / "b", []),
    )
    conv = nhwc.model.encoder.stages[0][0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images, targets = _batch(nhwc)
    nhwc.model.eval(), nchw.model.eval()
    out_a, out_b = nhwc.infer(images.numpy()), nchw.infer(images.numpy())
    for head in out_b:
        for task in out_b[head]:
            np.testing.assert_allclose(
                out_a[head][task], out_b[head][task], rtol=1e-4, atol=1e-5, err_msg=f"{head}.{task}"
            )
    nhwc.model.train(), nchw.model.train()
    a, b = nhwc.train_step(images, targets, CTX), nchw.train_step(images, targets, CTX)
    assert a["total"] == pytest.approx(b["total"], rel=1e-5)  # the loss before the update


def test_precision_rejects_unknown_modes() -> None:
    with pytest.raises(UserError, match="train.amp 'int4': expected off, bf16 or fp16"):
        Precision("int4", torch.device("cpu"))


def test_sync_bn_on_cpu_under_torchrun_is_a_clear_error(tmp_path: Path) -> None:
    from edgemtl.training.distributed import Dist

    fake_world = Dist(rank=0, world_size=2)  # only the check runs: no collective is reached
    with pytest.raises(
        UserError,
        match="train.sync_bn: PyTorch's SyncBatchNorm runs on CUDA only; this run is on cpu",
    ):
        Trainer(
            load_recipe(RECIPE, [*TINY, "train.sync_bn=true"]),
            tmp_path,
            quiet=True,
            dist=fake_world,
        )


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU (AMP fp16/bf16 and SyncBatchNorm on CUDA)",
)
def test_cuda_amp_steps(tmp_path: Path) -> None:
    for mode in ("fp16", "bf16"):
        if mode == "bf16" and not torch.cuda.is_bf16_supported():
            continue
        trainer = _steps(tmp_path / mode, [f"train.amp={mode}", "train.channels_last=true"])
        assert trainer.device.type == "cuda"
        ckpt = load_checkpoint(tmp_path / mode / "last.pt")
        assert all(torch.isfinite(v).all() for v in ckpt.model.values() if v.is_floating_point())

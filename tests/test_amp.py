"""Speed options of the training step: bf16/fp16 autocast, GradScaler state, channels_last, micro-batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import REPO
from edgemtl.amp import Precision
from edgemtl.checkpoint import load_checkpoint
from edgemtl.config import load_recipe
from edgemtl.errors import UserError
from edgemtl.train import Position, Trainer, TrainingInterrupted

RECIPE = REPO / "recipes" / "synthetic.yaml"
TINY = [
    "data.size=[32,64]", "data.workers=0", "data.synthetic.n_train=8", "data.synthetic.n_val=4",
    "model.width=0.125", "train.batch_size=4", "train.threads=1", "train.epochs=1", "train.optimizer.lr=0.002",
]


def _cpu_autocast_supported(dtype: torch.dtype) -> bool:
    try:
        with torch.autocast("cpu", dtype=dtype):
            return torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 1, 1)).dtype == dtype
    except (RuntimeError, AssertionError):
        return False


BF16 = pytest.mark.skipif(not _cpu_autocast_supported(torch.bfloat16), reason="this torch build has no CPU bfloat16 autocast")


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


@BF16
def test_bf16_autocast_runs_the_step_in_bfloat16_and_stays_close_to_fp32(tmp_path: Path) -> None:
    init = Trainer(load_recipe(RECIPE, [*TINY, "train.amp=bf16"]), tmp_path / "init", quiet=True)
    init.init_from_data()
    seen: list[torch.dtype] = []
    hook = init.model.encoder.stages[0][0][0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with init.precision.autocast():
        init.model(torch.zeros(1, 3, 32, 64), heads=("teacher",))
    hook.remove()
    assert seen == [torch.bfloat16] and init.precision.state_dict() is None  # bf16 needs no loss scaling

    _steps(tmp_path / "fp32", [])
    _steps(tmp_path / "bf16", ["train.amp=bf16"])
    a, b = load_checkpoint(tmp_path / "fp32" / "last.pt"), load_checkpoint(tmp_path / "bf16" / "last.pt")
    assert a["position"]["global_step"] == b["position"]["global_step"] == 2
    assert all(v.dtype == a["model"][k].dtype for k, v in b["model"].items())  # fp32 master weights
    assert all(torch.isfinite(v).all() for v in b["model"].values() if v.is_floating_point())
    # Two Adam steps from the same init: bf16 moves the weights the way fp32 does almost everywhere.
    w = "encoder.stages.0.0.0.weight"
    start = init.model.state_dict()[w]
    d32, d16 = a["model"][w] - start, b["model"][w] - start
    assert d16.abs().sum() > 0
    agree = (torch.sign(d32) == torch.sign(d16)).float().mean().item()
    assert agree > 0.9, agree


def test_fp16_uses_a_grad_scaler_whose_state_is_checkpointed(tmp_path: Path) -> None:
    if not _cpu_autocast_supported(torch.float16):
        pytest.skip("this torch build has no CPU float16 autocast")
    init = Trainer(load_recipe(RECIPE, TINY), tmp_path / "init", quiet=True)
    init.init_from_data()
    trainer = _steps(tmp_path / "fp16", ["train.amp=fp16"], steps=3)
    ckpt = load_checkpoint(tmp_path / "fp16" / "last.pt")
    assert ckpt["amp_scaler"]["scale"] == trainer.precision.scaler.get_scale() > 0
    # The scaler may skip an overflowing first step, but the later ones apply finite updates.
    w = "encoder.stages.0.0.0.weight"
    assert torch.isfinite(ckpt["model"][w]).all() and not torch.equal(ckpt["model"][w], init.model.state_dict()[w])
    resumed = Trainer(load_recipe(RECIPE, [*TINY, "train.amp=fp16"]), tmp_path / "fp16", quiet=True)
    resumed.restore(ckpt)
    assert resumed.precision.scaler.get_scale() == ckpt["amp_scaler"]["scale"]


def test_channels_last_trains_like_the_default_layout(tmp_path: Path) -> None:
    _steps(tmp_path / "nchw", [])
    _steps(tmp_path / "nhwc", ["train.channels_last=true"])
    a, b = load_checkpoint(tmp_path / "nchw" / "last.pt")["model"], load_checkpoint(tmp_path / "nhwc" / "last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key].contiguous(), rtol=1e-3, atol=1e-4, msg=key)


def test_precision_rejects_unknown_modes() -> None:
    with pytest.raises(UserError, match="train.amp 'int4': expected off, bf16 or fp16"):
        Precision("int4", torch.device("cpu"))


def test_sync_bn_on_cpu_under_torchrun_is_a_clear_error(tmp_path: Path) -> None:
    from edgemtl.distributed import Dist

    fake_world = Dist(rank=0, world_size=2)  # only the check runs: no collective is reached
    with pytest.raises(UserError, match="train.sync_bn: PyTorch's SyncBatchNorm runs on CUDA only; this run is on cpu"):
        Trainer(load_recipe(RECIPE, [*TINY, "train.sync_bn=true"]), tmp_path, quiet=True, dist=fake_world)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (AMP fp16/bf16 and SyncBatchNorm on CUDA)")
def test_cuda_amp_steps(tmp_path: Path) -> None:
    for mode in ("fp16", "bf16"):
        if mode == "bf16" and not torch.cuda.is_bf16_supported():
            continue
        trainer = _steps(tmp_path / mode, [f"train.amp={mode}", "train.channels_last=true"])
        assert trainer.device.type == "cuda"
        ckpt = load_checkpoint(tmp_path / mode / "last.pt")
        assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())

"""Which torch device a command runs on (`--device cpu|cuda|auto`), and the model's form there."""

from __future__ import annotations

import torch
from torch import nn

from edgemtl.core.config import TrainConfig
from edgemtl.core.errors import UserError
from edgemtl.training.distributed import Dist


def pick_device(device: str | None) -> torch.device:
    """`None`/"auto": CUDA when PyTorch sees a GPU, else the CPU.

    Raises `UserError` for "cuda" without a visible GPU and for any other name.
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to PyTorch here")
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: expected cpu, cuda or auto")
    return torch.device(device)


def prepare_model(model: nn.Module, cfg: TrainConfig, device: torch.device, dist: Dist) -> None:
    """In place: SyncBatchNorm (under torchrun), channels_last memory format, torch.compile.

    Raises `UserError` for `train.sync_bn` off CUDA (PyTorch's SyncBatchNorm is CUDA-only).
    """
    if cfg.sync_bn and dist.active:
        if device.type != "cuda":
            raise UserError(
                f"train.sync_bn: PyTorch's SyncBatchNorm runs on CUDA only; this run is on "
                f"{device.type} (set train.sync_bn=false)"
            )
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if cfg.compile:
        model.compile()

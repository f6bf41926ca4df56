"""Which torch device a command runs on (`--device cpu|cuda|auto`), with how many threads,
and the model's form there."""

from __future__ import annotations

import os
from dataclasses import replace

import torch
from torch import nn

from edgemtl.core.checkpoint_schema import ThreadsRecord
from edgemtl.core.config import TrainConfig
from edgemtl.core.errors import UserError
from edgemtl.core.threads import ThreadChoice, run_choice
from edgemtl.training.distributed import Dist

#: PyTorch's own intra-op thread count, read before edgemtl sets one: what runs resumed
#: from checkpoints without a thread record (older edgemtl) trained with.
TORCH_DEFAULT_THREADS = torch.get_num_threads()


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


def training_threads(
    cfg: TrainConfig,
    device_type: str,
    record: ThreadsRecord | None = None,
    resumed: bool = False,
) -> ThreadChoice:
    """The run's threads, applied (`torch.set_num_threads`) and returned for the record.

    `train.threads` wins; a resumed run reuses its checkpoint's `record` (the thread
    count changes results in the last bits, and resume is exact), or PyTorch's
    default when the checkpoint has none; a fresh run takes the automatic choice
    (edgemtl.core.threads), its CPUs shared among torchrun's processes on this node.
    """
    auto = run_choice(device_type)
    if cfg.threads:
        choice = auto.overridden(cfg.threads, "train.threads")
    elif record is not None:
        choice = replace(ThreadChoice.from_dict(record.model_dump()), source="checkpoint")
    elif resumed:
        choice = ThreadChoice(TORCH_DEFAULT_THREADS, auto.workers, source="torch default")
    else:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        choice = replace(auto, threads=max(1, auto.threads // local))
    torch.set_num_threads(choice.threads)
    return choice


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

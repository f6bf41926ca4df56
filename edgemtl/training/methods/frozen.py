"""Frozen networks loaded from checkpoints: teachers for two-stage KD, KD4MTL and BAM.

Why a plain object and not an nn.Module attribute: a frozen teacher must stay out
of the trained model's state dict, out of the optimizer, and in eval mode even when
the trainer calls `model.train()`. It runs under `torch.no_grad()`, so it never
receives a gradient, and its BatchNorm statistics never move.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from edgemtl.core.errors import UserError
from edgemtl.core.heads import checkpoint_default_head, require_checkpoint_head
from edgemtl.core.tasks import TaskSpec
from edgemtl.training.checkpoint import load_checkpoint, model_from_checkpoint
from edgemtl.training.models.encoder import EncoderOutput
from edgemtl.training.models.network import MultiTaskNet, Outputs


class FrozenNet:
    """A checkpoint's network, fixed: eval mode, no gradient, its own input normalisation."""

    def __init__(self, path: str | Path, mean: Sequence[float], std: Sequence[float]) -> None:
        self.path = str(path)
        ckpt = load_checkpoint(path)
        self.ckpt_heads = list(ckpt.heads)
        self.selected_head = checkpoint_default_head(ckpt)
        self.specs: dict[str, TaskSpec] = {s.key: s for s in ckpt.task_specs()}
        self.net: MultiTaskNet = model_from_checkpoint(ckpt)
        self._facts = ckpt.without_tensors()  # the weights live in self.net only
        for p in self.net.parameters():
            p.requires_grad_(False)
        # Our images are (raw - mean) / std; the teacher was trained on (raw - mean_t) / std_t.
        t_mean, t_std = ckpt.input.mean, ckpt.input.std
        self.scale = torch.tensor([s / ts for s, ts in zip(std, t_std)]).view(1, 3, 1, 1)
        self.shift = torch.tensor([(m - tm) / ts for m, tm, ts in zip(mean, t_mean, t_std)]).view(
            1, 3, 1, 1
        )

    def require_task(self, spec: TaskSpec, key: str) -> None:
        """The teacher must predict `spec` with the same channels (classes)."""
        own = self.specs.get(spec.key)
        if own is None:
            raise UserError(
                f"method.teachers.{key}: checkpoint {self.path} has no {spec.key} task (it has: "
                f"{', '.join(self.specs)})"
            )
        if own.channels != spec.channels or own.class_names != spec.class_names:
            raise UserError(
                f"method.teachers.{key}: checkpoint {self.path} predicts {own.channels} channels "
                f"for {spec.key}, "
                f"this recipe's data has {spec.channels}"
            )

    def require_head(self, head: str, key: str) -> None:
        try:
            require_checkpoint_head(self._facts, head)
        except UserError as err:
            raise UserError(f"{key}: {err}") from None

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.scale.device != images.device:
            self.net.to(images.device)
            self.scale, self.shift = self.scale.to(images.device), self.shift.to(images.device)
        self.net.eval()
        return images * self.scale + self.shift

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> EncoderOutput:
        return self.net.encoder(self._prepare(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, head: str) -> Outputs:
        return self.net(self._prepare(images), heads=(head,))

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())


def load_teachers(
    teachers: dict[str, str], specs: Sequence[TaskSpec], mean: Sequence[float], std: Sequence[float]
) -> dict[str, FrozenNet]:
    """One FrozenNet per task key; a checkpoint named for several tasks is loaded once."""
    by_path: dict[str, FrozenNet] = {}
    out: dict[str, FrozenNet] = {}
    spec_by_key = {s.key: s for s in specs}
    for key, path in teachers.items():
        if not Path(path).is_file():
            raise UserError(
                f"method.teachers.{key}: checkpoint {path} not found (train that run first)"
            )
        if path not in by_path:
            by_path[path] = FrozenNet(path, mean, std)
        frozen = by_path[path]
        frozen.require_task(spec_by_key[key], key)
        out[key] = frozen
    return out

"""Task losses and distillation losses (torch), looked up by task kind.

All are means over valid pixels (docs/formats.md "Losses"); the valid-pixel
rule is the kind's own (`TaskKind.valid`: seg ignores -1 and labels >= C,
depth 0 = invalid, normal zero vector = invalid, keypoints/edges negative =
invalid) and the formulas live in `edgemtl.training.task_ops`. A batch with no
valid pixel gives a zero loss that still carries a graph, never NaN.
"""

from __future__ import annotations

import torch

from edgemtl.core.tasks import TaskSpec
from edgemtl.training.task_ops import get_ops


def valid_mask(spec: TaskSpec, target: torch.Tensor) -> torch.Tensor:
    """Boolean N x H x W mask of pixels whose target is defined."""
    return spec.task_kind.valid(target, spec.channels)


def task_loss(spec: TaskSpec, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """seg: cross-entropy; depth, keypoints, edges: L1; normal: 1 - cos (`TaskOps.loss`)."""
    return get_ops(spec.kind).loss(pred, target, valid_mask(spec, target))


def distill_loss(
    spec: TaskSpec,
    student: torch.Tensor,
    teacher: torch.Tensor,
    target: torch.Tensor,
    tau: float = 1.0,
    detach_teacher: bool = True,
) -> torch.Tensor:
    """Student mimics Teacher, averaged over pixels whose target is valid.

    seg: tau^2 * KL(p_T || p_S), p = softmax(logits / tau), summed over classes;
    regression: per-pixel Euclidean distance ||y_S - y_T||_2 (`TaskOps.distill`).
    """
    if detach_teacher:
        teacher = teacher.detach()
    return get_ops(spec.kind).distill(student, teacher, valid_mask(spec, target), tau)

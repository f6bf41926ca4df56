"""Task losses and distillation losses (torch), one definition per task kind.

All are means over valid pixels (INTERFACES.md "Losses"): seg ignores -1 (and
labels >= C), depth 0 = invalid, normal zero vector = invalid, keypoints/edges
negative = invalid. A batch with no valid pixel gives a zero loss that still
carries a graph, never NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgemtl.core.tasks import TaskSpec


def valid_mask(spec: TaskSpec, target: torch.Tensor) -> torch.Tensor:
    """Boolean N x H x W mask of pixels whose target is defined."""
    if spec.kind == "seg":
        return (target >= 0) & (target < spec.channels)
    if spec.kind == "depth":
        return target[:, 0] > 0
    if spec.kind == "normal":
        return target.abs().sum(dim=1) > 0
    return target[:, 0] >= 0


def _masked_mean(per_pixel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (per_pixel * mask).sum() / mask.sum().clamp_min(1)


def task_loss(spec: TaskSpec, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """seg: cross-entropy; depth, keypoints, edges: L1; normal: 1 - cos."""
    mask = valid_mask(spec, target)
    if spec.kind == "seg":
        safe_target = torch.where(mask, target, torch.zeros_like(target))
        per_pixel = F.cross_entropy(pred, safe_target, reduction="none")
        return _masked_mean(per_pixel, mask)
    if spec.kind == "normal":
        cosine = (pred * target).sum(dim=1)
        return _masked_mean(1.0 - cosine, mask)
    return _masked_mean((pred - target).abs().sum(dim=1), mask)


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
    regression: per-pixel Euclidean distance ||y_S - y_T||_2.
    """
    if detach_teacher:
        teacher = teacher.detach()
    mask = valid_mask(spec, target)
    if spec.kind == "seg":
        log_p_t = F.log_softmax(teacher / tau, dim=1)
        log_p_s = F.log_softmax(student / tau, dim=1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
        return tau * tau * _masked_mean(kl, mask)
    squared = (student - teacher).pow(2).sum(dim=1)
    # sqrt has an infinite slope at 0: clamp so identical outputs give a zero gradient, not NaN.
    distance = torch.sqrt(squared.clamp_min(1e-12))
    return _masked_mean(distance, mask)

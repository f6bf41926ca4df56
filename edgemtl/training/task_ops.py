"""The torch side of each task kind: loss, distillation, activation, ensemble, decoding.

Why one registry keyed by kind name: `training/losses.py`, the methods and
`training/models/network.py` ask these questions per task, and a new kind must
be one numpy-side `TaskKind` (edgemtl/core/tasks/) plus one `register_ops` here
(docs/datasets.md "Adding a new task kind"). Valid pixels come from the
numpy-side kind (`TaskKind.valid`), so losses and metrics share one rule.

Every loss is a mean over valid pixels (docs/formats.md "Losses"); a batch
with no valid pixel gives a zero loss that still carries a graph, never NaN.
The defaults (`TaskOps()`) are those of a dense regression map: L1 loss,
Euclidean distillation, linear output, mean ensemble.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgemtl.core.errors import UserError

#: (pred N×C×H×W, target, valid N×H×W) -> scalar loss.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: (student, teacher, valid N×H×W, tau) -> scalar distillation loss.
DistillFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def masked_mean(per_pixel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of an N×H×W map over the pixels where `mask` holds (0 with a graph if none)."""
    return (per_pixel * mask).sum() / mask.sum().clamp_min(1)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum over channels of |p - g|, averaged over valid pixels."""
    return masked_mean((pred - target).abs().sum(dim=1), mask)


def euclidean_distill(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, tau: float
) -> torch.Tensor:
    """Per-pixel ||y_S - y_T||_2 averaged over valid pixels (SD-MTCNN BMVC 2020, regression)."""
    squared = (student - teacher).pow(2).sum(dim=1)
    # sqrt has an infinite slope at 0: clamp so identical outputs give a zero gradient, not NaN.
    distance = torch.sqrt(squared.clamp_min(1e-12))
    return masked_mean(distance, mask)


def identity(raw: torch.Tensor) -> torch.Tensor:
    return raw


def mean_of_two(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    return 0.5 * (teacher + student)


@dataclass(frozen=True)
class TaskOps:
    """Torch functions of one task kind (defaults: a dense regression map).

    loss / distill: scalar losses given the valid mask; activate: raw decoder
    output -> head output; ensemble: (teacher, student) head outputs -> the
    ensemble head's; decode: head output -> the `--outputs decoded` graph output.
    """

    loss: LossFn = l1_loss
    distill: DistillFn = euclidean_distill
    activate: Callable[[torch.Tensor], torch.Tensor] = identity
    ensemble: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mean_of_two
    decode: Callable[[torch.Tensor], torch.Tensor] = identity


# ---- seg: logits, cross-entropy, KL distillation -----------------------------------------


def _seg_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; ignored labels are replaced by 0 before F.cross_entropy, then masked."""
    safe_target = torch.where(mask, target, torch.zeros_like(target))
    per_pixel = F.cross_entropy(pred, safe_target, reduction="none")
    return masked_mean(per_pixel, mask)


def _seg_distill(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, tau: float
) -> torch.Tensor:
    """tau^2 * KL(p_T || p_S), p = softmax(logits / tau), summed over classes (Hinton KD)."""
    log_p_t = F.log_softmax(teacher / tau, dim=1)
    log_p_s = F.log_softmax(student / tau, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return tau * tau * masked_mean(kl, mask)


def _seg_ensemble(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Log of the mean of both softmax probabilities: valid logits (softmax(log p) = p,
    argmax unchanged); SD-MTCNN BMVC 2020 Eq. 6."""
    probs = 0.5 * (F.softmax(teacher, dim=1) + F.softmax(student, dim=1))
    return torch.log(probs.clamp_min(1e-12))


def _argmax_labels(logits: torch.Tensor) -> torch.Tensor:
    return torch.argmax(logits, dim=1).to(torch.int32)


# ---- normal: unit vectors, 1 - cos -------------------------------------------------------


def _cosine_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - cos(p, g) with unit p (the activation) and unit g, averaged over valid pixels."""
    cosine = (pred * target).sum(dim=1)
    return masked_mean(1.0 - cosine, mask)


def unit_vectors(raw: torch.Tensor) -> torch.Tensor:
    """raw / max(||raw||_2 over C, 1e-12) for an N×C×H×W map: `F.normalize(raw, dim=1)`.

    Why not `F.normalize` itself outside ONNX export: its `linalg.vector_norm`
    over C of an NCHW map runs ~50x slower on CPU (torch 2.13) than the sum of
    squares below, which gives the same vectors to within one float32 ulp.
    Exported graphs keep `F.normalize` (ONNX ReduceL2), so they do not change.
    """
    if torch.onnx.is_in_onnx_export():
        return F.normalize(raw, dim=1, eps=1e-12)
    return raw / raw.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)


def _normal_ensemble(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    return unit_vectors(0.5 * (teacher + student))


_OPS: dict[str, TaskOps] = {
    "seg": TaskOps(
        loss=_seg_loss, distill=_seg_distill, ensemble=_seg_ensemble, decode=_argmax_labels
    ),
    "depth": TaskOps(),
    "normal": TaskOps(loss=_cosine_loss, activate=unit_vectors, ensemble=_normal_ensemble),
    "keypoints": TaskOps(),
    "edges": TaskOps(),
}


def register_ops(kind: str, ops: TaskOps, replace: bool = False) -> TaskOps:
    """Torch functions for the task kind named `kind`; ValueError if taken (without `replace`)."""
    if kind in _OPS and not replace:
        raise ValueError(f"task ops for {kind!r} are already registered")
    _OPS[kind] = ops
    return ops


def unregister_ops(kind: str) -> None:
    """Remove a kind's ops (tests that register a temporary kind); unknown names are ignored."""
    _OPS.pop(kind, None)


def get_ops(kind: str) -> TaskOps:
    """The torch functions of `kind`; UserError naming the kinds that have them otherwise."""
    try:
        return _OPS[kind]
    except KeyError:
        raise UserError(
            f"task kind {kind!r} has no training ops (register_ops in "
            f"edgemtl.training.task_ops); known: {', '.join(_OPS)}"
        ) from None

"""`seg`: semantic segmentation, one logit channel per class, labels -1 = ignore.

Everything numpy-side about seg: valid labels, argmax decoding, the
confusion-matrix metric, the class-prior constant predictor, label-agreement
parity and the class palette. Loss/ensemble: edgemtl/training/task_ops.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks.colours import class_colour, class_colours
from edgemtl.core.tasks.kind import Legend, MetricInfo, TaskKind
from edgemtl.core.tasks.metric_base import SummableState, TaskMetric, nan_result, same_shape
from edgemtl.core.tasks.parity import Gate, Tolerances, label_agreement, max_abs


def valid_labels(target: Any, num_classes: int) -> Any:
    """Labels in [0, C): -1, any other negative, >= C and NaN are ignored (numpy or torch)."""
    return (target >= 0) & (target < num_classes)


class SegMetric(SummableState):
    """mIoU and pixel accuracy from a confusion matrix over the whole split.

    pred: integer labels (N,H,W); target: labels of the same shape where -1,
    any other negative value, any value >= num_classes and NaN are ignored.
    IoU_c = diag / (row + col - diag); mIoU averages only classes whose union is
    non-zero, so a class absent from both prediction and target does not count
    as 0 (nor as 100). pixel_acc = diag.sum / valid pixels.
    """

    names = ("miou", "pixel_acc")
    _kind = "seg"

    def __init__(self, num_classes: int) -> None:
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1
        ):
            raise UserError(
                f"seg metric: num_classes must be a positive integer, got {num_classes!r}"
            )
        self.num_classes = int(num_classes)
        super().__init__()

    def _zero_state(self) -> dict[str, np.ndarray]:
        return {"confusion": np.zeros((self.num_classes, self.num_classes), dtype=np.int64)}

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one batch; rows of the confusion matrix are target, columns prediction."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        same_shape("seg", pred, target)
        if not np.issubdtype(pred.dtype, np.integer):
            raise UserError(
                f"seg metric: prediction must hold integer class labels, got dtype {pred.dtype}"
            )
        n = self.num_classes
        valid = valid_labels(target, n)  # NaN compares False: ignored too
        p = pred[valid].astype(np.int64)
        if p.size and (p.min() < 0 or p.max() >= n):
            raise UserError(
                f"seg metric: predicted label outside [0, {n - 1}] (got {p.min()}..{p.max()}); "
                "check the number of classes"
            )
        t = target[valid].astype(np.int64)
        counts = np.bincount(t * n + p, minlength=n * n)
        self._state["confusion"] += counts.reshape(n, n)

    def compute(self) -> dict[str, float]:
        conf = self._state["confusion"]
        total = conf.sum()
        if total == 0:
            return nan_result(self.names)
        diag = np.diag(conf).astype(np.float64)
        union = conf.sum(axis=0) + conf.sum(axis=1) - diag
        present = union > 0
        iou = diag[present] / union[present]
        return {
            "miou": float(100.0 * iou.mean()),
            "pixel_acc": float(100.0 * diag.sum() / total),
        }


class ClassPriorFit:
    """Log class frequencies of the valid training labels: argmax is the majority class,
    and they make a sane output bias."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.counts = np.zeros(channels)

    def add(self, target: np.ndarray) -> None:
        valid = target[valid_labels(target, self.channels)]
        self.counts = self.counts + np.bincount(valid, minlength=self.channels)

    def result(self) -> np.ndarray:
        freq = self.counts / max(self.counts.sum(), 1)
        return np.log(freq + 1e-3).astype(np.float32)


class SegKind(TaskKind):
    name = "seg"
    raw_output = "seg_logits"
    decoded_output = "seg_labels"
    meaning = "per-class logits (argmax = label)"
    decoded_meaning = "argmax class labels"
    channels = None
    labels = True
    invalid_value = -1
    invalid_hint = "-1"
    metrics = (MetricInfo("miou", True, "mIoU %"), MetricInfo("pixel_acc", True, "pixel acc %"))
    overlay = ("image", 0.55)

    def valid(self, target: Any, channels: int) -> Any:
        return valid_labels(target, channels)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Logits N×C×H×W -> argmax labels N×H×W int32 (labels already decoded pass through)."""
        if raw.ndim == 3:
            return raw.astype(np.int32, copy=False)
        return np.argmax(raw, axis=1).astype(np.int32)

    def metric(self, channels: int | None = None) -> TaskMetric:
        if channels is None:
            raise UserError("seg metric: the number of classes is required")
        return SegMetric(channels)

    def constant_fit(self, channels: int) -> ClassPriorFit:
        return ClassPriorFit(channels)

    def parity_fp32(
        self, a: np.ndarray, b: np.ndarray, tol: Tolerances, unpool: bool = False
    ) -> dict[str, Gate]:
        limit = tol.fp32_max_abs_unpool if unpool else tol.fp32_max_abs
        agree = tol.fp32_label_agreement_unpool if unpool else tol.fp32_label_agreement
        gates: dict[str, Gate] = {}
        if a.ndim == 4:  # raw logits; decoded labels have no channel axis
            gates["max_abs"] = (max_abs(a, b), limit, "<=")
        gates["label_agreement"] = (label_agreement(a, b), agree, ">=")
        return gates

    def parity_fp16(self, a: np.ndarray, b: np.ndarray, tol: Tolerances) -> dict[str, Gate]:
        return {"label_agreement": (label_agreement(a, b), tol.fp16_label_agreement, ">=")}

    def parity_int8(
        self, ref: Mapping[str, float], cand: Mapping[str, float], tol: Tolerances
    ) -> dict[str, Gate]:
        if "miou" in ref and "miou" in cand:
            return {"miou_drop": (ref["miou"] - cand["miou"], tol.int8_miou_drop, "<=")}
        return {}

    def check_target(
        self, target: np.ndarray, class_names: Sequence[str], where: Path
    ) -> list[str]:
        n = len(class_names)
        bad = (target < -1) | (target >= n)
        if bad.any():
            value = int(target[bad][0])
            raise UserError(
                f"{where}: label {value} out of range; expected -1 (ignore) or "
                f"0..{n - 1} ({n} classes)"
            )
        return []

    def colourize(
        self,
        value: np.ndarray,
        class_names: Sequence[str] = (),
        units: str = "",
        encoding: str | None = None,
    ) -> tuple[np.ndarray, Legend]:
        """Labels H×W -> palette colours (ignored pixels black); legend = classes present."""
        labels = np.asarray(value).astype(np.int64)
        valid = labels >= 0
        present = sorted(int(c) for c in np.unique(labels[valid]))
        table = class_colours(max(present, default=-1) + 1).astype(np.float32) / 255.0
        rgb = np.zeros(labels.shape + (3,), np.float32)
        rgb[valid] = table[labels[valid]]
        names = list(class_names)
        legend: Legend = [
            (class_colour(c), names[c] if c < len(names) else str(c)) for c in present
        ]
        return rgb, legend

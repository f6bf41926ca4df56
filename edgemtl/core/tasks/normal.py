"""`normal`: unit surface normals (3 channels, camera frame: x right), zero vector = invalid.

Everything numpy-side about normals: valid pixels, re-normalised decoding, the
angular metrics, the mean-direction constant predictor, angle parity gates,
the flip rule and RGB pictures. Loss: 1 - cos (edgemtl/training/task_ops.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks.kind import Legend, MetricInfo, TaskKind
from edgemtl.core.tasks.metric_base import SummableState, TaskMetric, nan_result, same_shape
from edgemtl.core.tasks.parity import Gate, Tolerances, mean_angle_deg

ANGLE_BIN_DEG = 0.001
"""Width of the normal-angle histogram bins; bounds the error of `median_deg`."""
_ANGLE_BINS = 180_000  # [0, 180] degrees in ANGLE_BIN_DEG steps; 180 itself goes in the last bin
_WITHIN_DEG = (("within_11_25", 11.25), ("within_22_5", 22.5), ("within_30", 30.0))
#: `data check` warns about normals whose length is off 1 by more than this.
NORMAL_TOLERANCE = 0.05


def valid_normal(target: Any) -> Any:
    """N×H×W mask: non-zero target vector (NaN is invalid too) of N×3×H×W (numpy or torch)."""
    return abs(target).sum(1) > 0


class NormalMetric(SummableState):
    """Angular error of surface normals, in degrees, over valid pixels.

    A pixel is valid where the target vector is non-zero. Both vectors are
    re-normalised (a zero prediction counts as 90 degrees: it points nowhere);
    angle = degrees(arccos(clip(dot, -1, 1))). mean_deg and cosine (mean of the
    clipped dot) come from exact sums; within_t counts angle < t (strict), in
    percent. median_deg comes from a summable histogram of 0.001-degree bins
    over [0, 180]: each middle order statistic is placed inside its bin by
    linear interpolation of its rank, so the median is within one bin
    (0.001 degree) of the exact whole-split median (half a bin when the angles
    sit at bin edges, e.g. exactly 0 -> 0.0005).
    """

    names = ("mean_deg", "median_deg", "within_11_25", "within_22_5", "within_30", "cosine")
    _kind = "normal"

    def _zero_state(self) -> dict[str, np.ndarray]:
        state = {
            "angle_sum": np.zeros((), dtype=np.float64),
            "cos_sum": np.zeros((), dtype=np.float64),
            "count": np.zeros((), dtype=np.int64),
            "hist": np.zeros(_ANGLE_BINS, dtype=np.int64),
        }
        for name, _ in _WITHIN_DEG:
            state[name] = np.zeros((), dtype=np.int64)
        return state

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one batch of (N,3,H,W) predictions and targets."""
        pred, target = np.asarray(pred), np.asarray(target)
        same_shape("normal", pred, target)
        if pred.ndim != 4 or pred.shape[1] != 3:
            raise UserError(f"normal metric: expected (N,3,H,W) arrays, got shape {pred.shape}")
        valid = valid_normal(target)
        # Component planes of the valid pixels, in float64: the same arithmetic, in the same
        # order, as norms over the channel axis, at a fraction of the gathers.
        g = [target[:, c][valid].astype(np.float64) for c in range(3)]
        p = [pred[:, c][valid].astype(np.float64) for c in range(3)]
        g_norm = np.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])
        p_norm = np.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2])
        p_norm = np.where(p_norm > 0, p_norm, 1.0)
        dot = (p[0] / p_norm) * (g[0] / g_norm) + (p[1] / p_norm) * (g[1] / g_norm)
        cos = np.clip(dot + (p[2] / p_norm) * (g[2] / g_norm), -1.0, 1.0)
        angle = np.degrees(np.arccos(cos))
        self._state["angle_sum"] += angle.sum()
        self._state["cos_sum"] += cos.sum()
        self._state["count"] += angle.size
        for name, limit in _WITHIN_DEG:
            self._state[name] += np.count_nonzero(angle < limit)
        finite = angle[np.isfinite(angle)]  # a NaN prediction already poisons angle_sum
        bins = np.minimum((finite * (1.0 / ANGLE_BIN_DEG)).astype(np.int64), _ANGLE_BINS - 1)
        self._state["hist"] += np.bincount(bins, minlength=_ANGLE_BINS)

    def _order_statistic(self, rank: int) -> float:
        """Estimate the rank-th smallest angle (1-based) from the histogram."""
        hist = self._state["hist"]
        cum = np.cumsum(hist)
        b = int(np.searchsorted(cum, rank, side="left"))
        before = int(cum[b] - hist[b])
        return (b + (rank - before - 0.5) / int(hist[b])) * ANGLE_BIN_DEG

    def compute(self) -> dict[str, float]:
        n = int(self._state["count"])
        if n == 0 or not math.isfinite(float(self._state["angle_sum"])):
            return nan_result(self.names)
        if n % 2:
            median = self._order_statistic((n + 1) // 2)
        else:
            median = 0.5 * (self._order_statistic(n // 2) + self._order_statistic(n // 2 + 1))
        result = {"mean_deg": float(self._state["angle_sum"] / n), "median_deg": float(median)}
        for name, _ in _WITHIN_DEG:
            result[name] = float(100.0 * int(self._state[name]) / n)
        result["cosine"] = float(self._state["cos_sum"] / n)
        return {name: result[name] for name in self.names}


class MeanNormalFit:
    """Mean of the valid training normals, re-normalised to unit length."""

    def __init__(self, channels: int) -> None:
        self.sums = np.zeros(3)

    def add(self, target: np.ndarray) -> None:
        mask = valid_normal(target[None])[0]
        self.sums = self.sums + target[:, mask].sum(axis=1)

    def result(self) -> np.ndarray:
        return (self.sums / max(np.linalg.norm(self.sums), 1e-12)).astype(np.float32)


def unit_vectors(value: np.ndarray, axis: int) -> np.ndarray:
    """Vectors along `axis` scaled to unit length; zero vectors stay zero."""
    norm = np.linalg.norm(value, axis=axis, keepdims=True)
    return np.where(norm > 0, value / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


class NormalKind(TaskKind):
    name = "normal"
    raw_output = "normal"
    decoded_output = "normal"
    meaning = "unit surface normals, camera frame"
    channels = 3
    invalid_value = 0.0
    invalid_hint = "a zero vector"
    metrics = (
        MetricInfo("mean_deg", False, "mean angle °"),
        MetricInfo("median_deg", False, "median angle °"),
        MetricInfo("within_11_25", True, "< 11.25° %"),
        MetricInfo("within_22_5", True, "< 22.5° %"),
        MetricInfo("within_30", True, "< 30° %"),
        MetricInfo("cosine", True, "cosine"),
    )
    value_range = (-1.0, 1.0)
    overlay = None

    def valid(self, target: Any, channels: int) -> Any:
        return valid_normal(target)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """L2-normalised over C (the graph already normalises; FP16/INT8 drift is undone)."""
        norm = np.sqrt(np.sum(np.square(raw, dtype=np.float32), axis=1, keepdims=True))
        return (raw / np.maximum(norm, 1e-12)).astype(np.float32)

    def normalise_frame(self, value: np.ndarray) -> np.ndarray:
        return unit_vectors(value, axis=-1)

    def metric(self, channels: int | None = None) -> TaskMetric:
        return NormalMetric()

    def constant_fit(self, channels: int) -> MeanNormalFit:
        return MeanNormalFit(channels)

    def parity_fp32(
        self, a: np.ndarray, b: np.ndarray, tol: Tolerances, unpool: bool = False
    ) -> dict[str, Gate]:
        return {"mean_angle_deg": (mean_angle_deg(a, b), tol.fp32_normal_deg, "<=")}

    def parity_fp16(self, a: np.ndarray, b: np.ndarray, tol: Tolerances) -> dict[str, Gate]:
        return {"mean_angle_deg": (mean_angle_deg(a, b), tol.fp16_normal_deg, "<=")}

    def flip(self, value: np.ndarray) -> np.ndarray:
        """Mirrored left-right, camera x (pointing right) changes sign."""
        out = np.array(value, copy=True)
        out[..., 0] = -out[..., 0]
        return out

    def check_target(
        self, target: np.ndarray, class_names: Sequence[str], where: Path
    ) -> list[str]:
        super().check_target(target, class_names, where)
        norm = np.linalg.norm(target, axis=-1)
        off = np.abs(norm[self.valid_sample(target, 3)] - 1) > NORMAL_TOLERANCE
        if not off.any():
            return []
        count = int(off.sum())
        return [f"{where}: {count} normals are not unit length (|n| off by > {NORMAL_TOLERANCE})"]

    def colourize(
        self,
        value: np.ndarray,
        class_names: Sequence[str] = (),
        units: str = "",
        encoding: str | None = None,
    ) -> tuple[np.ndarray, Legend]:
        """RGB = (xyz + 1) / 2, so each axis has a fixed colour."""
        rgb = ((np.clip(np.asarray(value, dtype=np.float32), -1, 1) + 1) / 2).astype(np.float32)
        return rgb, [(None, "normals: RGB = (xyz + 1) / 2")]

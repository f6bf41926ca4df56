"""`depth`: one-channel depth map, 0 = invalid: metric depth, or inverse depth (disparity).

The target's encoding (`depth` or `inverse_depth`) is declared by the dataset
(dataset.yaml `encoding`, the readers: Cityscapes stores disparity) and travels
in the task spec into checkpoints and manifests; augmentation and pictures read
it, never the dataset kind.

Everything numpy-side about depth: valid pixels, abs/rel error, the mean-depth
constant predictor, the INT8 abs-error gate and the scale-crop rule.
Loss: L1 (edgemtl/training/task_ops.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks.kind import Legend, MetricInfo, TaskKind, auto_range
from edgemtl.core.tasks.metric_base import SummableState, TaskMetric, nan_result, pixels, same_shape
from edgemtl.core.tasks.parity import Gate, Tolerances


def valid_depth(target: Any) -> Any:
    """N×H×W mask: depth > 0 (0 and NaN are invalid) of an N×1×H×W batch (numpy or torch)."""
    return target[:, 0] > 0


class DepthMetric(SummableState):
    """Absolute and relative depth error over valid pixels (target > 0).

    abs_err = sum|p - g| / n and rel_err = sum(|p - g| / g) / n, with n the
    number of valid pixels in the whole split. A non-finite prediction on a
    valid pixel makes the result NaN rather than being skipped.
    """

    names = ("abs_err", "rel_err")
    _kind = "depth"

    def _zero_state(self) -> dict[str, np.ndarray]:
        return {
            "abs_sum": np.zeros((), dtype=np.float64),
            "rel_sum": np.zeros((), dtype=np.float64),
            "count": np.zeros((), dtype=np.int64),
        }

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one batch of (N,1,H,W) predictions and targets."""
        pred = np.asarray(pred, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        same_shape("depth", pred, target)
        valid = valid_depth(target)
        g = pixels(target, valid)
        err = np.abs(pixels(pred, valid) - g)
        self._state["abs_sum"] += err.sum()
        self._state["rel_sum"] += (err / g).sum()
        self._state["count"] += g.size

    def compute(self) -> dict[str, float]:
        n = int(self._state["count"])
        if n == 0:
            return nan_result(self.names)
        return {
            "abs_err": float(self._state["abs_sum"] / n),
            "rel_err": float(self._state["rel_sum"] / n),
        }


class MeanDepthFit:
    """Mean of the valid training depths."""

    def __init__(self, channels: int) -> None:
        self.sums = np.zeros(2)

    def add(self, target: np.ndarray) -> None:
        valid = target[0][valid_depth(target[None])[0]]
        self.sums = self.sums + [valid.sum(), valid.size]

    def result(self) -> np.ndarray:
        total, count = self.sums
        return np.array([total / max(count, 1)], dtype=np.float32)


class DepthKind(TaskKind):
    name = "depth"
    raw_output = "depth"
    decoded_output = "depth"
    meaning = "depth map"
    invalid_value = 0.0
    invalid_hint = "0"
    metrics = (MetricInfo("abs_err", False, "abs err"), MetricInfo("rel_err", False, "rel err"))
    colormap = "turbo"
    colormap_ends = ("blue", "red")
    value_range = None  # metres, inverse depth or dataset units: no one range fits all
    overlay = None
    encodings = ("depth", "inverse_depth")

    def valid(self, target: Any, channels: int) -> Any:
        return valid_depth(target)

    def metric(self, channels: int | None = None) -> TaskMetric:
        return DepthMetric()

    def constant_fit(self, channels: int) -> MeanDepthFit:
        return MeanDepthFit(channels)

    def parity_int8(
        self, ref: Mapping[str, float], cand: Mapping[str, float], tol: Tolerances
    ) -> dict[str, Gate]:
        if "abs_err" in ref and "abs_err" in cand:
            rise = 100.0 * (cand["abs_err"] - ref["abs_err"]) / max(abs(ref["abs_err"]), 1e-12)
            return {"abs_err_rise_percent": (rise, tol.int8_depth_abs_rise, "<=")}
        return {}

    def scale_crop(
        self, value: np.ndarray, scale: float, encoding: str | None = None
    ) -> np.ndarray:
        """Seen through the crop the scene is `scale` times closer: metric depth / scale,
        inverse depth (disparity) * scale (docs/datasets.md "Augmentation")."""
        if self.encoding_of(encoding) == "inverse_depth":
            return value * np.float32(scale)
        return value / np.float32(scale)

    def colourize(
        self,
        value: np.ndarray,
        class_names: Sequence[str] = (),
        units: str = "",
        encoding: str | None = None,
    ) -> tuple[np.ndarray, Legend]:
        """Near is blue and far is red in either encoding: inverse depth is high when near,
        so its colour scale runs the other way, and the legend says so."""
        if self.encoding_of(encoding) != "inverse_depth":
            return super().colourize(value, class_names, units)
        from matplotlib import colormaps

        value = np.asarray(value, dtype=np.float32)
        low, high = self.display_range(value)
        farness = 1 - np.clip((value - low) / max(high - low, 1e-12), 0, 1)
        rgb = np.asarray(colormaps[self.colormap](np.nan_to_num(farness))[..., :3], np.float32)
        unit = f" ({units})" if units else ""
        return rgb, [
            (None, f"inverse depth{unit}: {high:.3g} (near, blue) .. {low:.3g} (far, red)")
        ]

    def colour_key(
        self, value: np.ndarray, encoding: str | None = None
    ) -> tuple[str, float, float] | None:
        """Depth's colour bar; for inverse depth the colormap runs the other way (near is
        blue in both encodings, `colourize`)."""
        low, high = self.display_range(np.asarray(value, dtype=np.float32))
        reverse = self.encoding_of(encoding) == "inverse_depth"
        return (self.colormap + ("_r" if reverse else ""), low, high)

    def check_target(
        self, target: np.ndarray, class_names: Sequence[str], where: Path
    ) -> list[str]:
        super().check_target(target, class_names, where)
        if (target < 0).any():
            raise UserError(
                f"{where}: negative depth {float(target.min()):.4g}; expected >= 0 (0 = invalid)"
            )
        return []

    def display_range(self, value: np.ndarray) -> tuple[float, float]:
        """From the valid pixels only, so invalid zeros do not stretch the range."""
        return auto_range(value[self.valid_sample(value, 1)])

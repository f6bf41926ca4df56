"""`TaskKind`: everything the numpy side knows about one kind of dense task.

Why one class per kind instead of `if kind == ...` chains: training, `eval`,
export's parity gates, `profile`, `predict` and the `data` commands all ask the
same questions (channels, valid pixels, decoding, metrics, constant predictor,
parity, augmentation, colours), and a new kind must be one new file plus
`register_kind` (docs/datasets.md "Adding a new task kind"). The torch side
(loss, distillation, activation, ensemble) is `edgemtl.training.task_ops`.

The base class is a 1-channel dense regression map (keypoints, edges): a
negative target marks an invalid pixel, `abs_err` is its metric, zero its
constant predictor. Kinds override only what differs.

Layouts (docs/formats.md "Tasks"): a *sample* target is channels-last (H×W for
labels and 1-channel maps, H×W×C otherwise); a *model* target is H×W int64
labels or C×H×W float32, batched as N×H×W / N×C×H×W.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks.metric_base import AbsErrMetric, TaskMetric
from edgemtl.core.tasks.parity import Gate, Tolerances, max_abs, rel_diff_percent

#: Legend entries of a picture: (RGB swatch or None for a text-only line, text).
Legend = list[tuple[tuple[int, int, int] | None, str]]


@dataclass(frozen=True)
class MetricInfo:
    """One metric of a kind: its key in results, direction and table label.

    `label` is what tables print before the arrow, e.g. "mIoU %" -> "mIoU % ↑".
    """

    name: str
    higher_is_better: bool
    label: str

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


class ConstantFit(Protocol):
    """Accumulates training targets, then gives the constant a trivial predictor outputs."""

    def add(self, target: np.ndarray) -> None:
        """One sample's target in model layout (H×W int64 labels or C×H×W float32)."""

    def result(self) -> np.ndarray:
        """The per-channel constant, shape (C,) float32 (seg: C log class priors)."""


class ZeroFit:
    """Constant predictor of a sparse map: all zeros (the map is mostly empty)."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def add(self, target: np.ndarray) -> None:
        return None

    def result(self) -> np.ndarray:
        return np.zeros(self.channels, dtype=np.float32)


def auto_range(values: np.ndarray) -> tuple[float, float]:
    """2nd..98th percentile of the finite values: robust to a few outliers; (0, 1) if none."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    return float(np.percentile(finite, 2)), float(np.percentile(finite, 98))


class TaskKind:
    """A 1-channel dense regression map; subclasses override what differs (module doc)."""

    #: Registry key, also the task key in recipes, datasets and manifests.
    name: str = ""
    #: Graph output names for `--outputs raw` / `--outputs decoded`.
    raw_output: str = ""
    decoded_output: str = ""
    #: What the raw output means (manifests, reports); decoded_meaning if it differs.
    meaning: str = ""
    decoded_meaning: str = ""
    #: Output channels; None = one per class (`labels` kinds).
    channels: int | None = 1
    #: Targets are integer class labels (H×W int64, no channel axis); outputs are logits.
    labels: bool = False
    #: What readers write into an invalid pixel, and how `data check` words it.
    invalid_value: float = -1.0
    invalid_hint: str = "a negative value"
    #: Metrics in display order; the first is the headline (profile tables).
    metrics: tuple[MetricInfo, ...] = (MetricInfo("abs_err", False, "abs err"),)
    #: Pictures: matplotlib colormap, its low/high colour words, and a FIXED value
    #: range (None: from the values, 2nd..98th percentile, stated in the legend).
    colormap: str = "magma"
    colormap_ends: tuple[str, str] = ("dark", "yellow")
    value_range: tuple[float, float] | None = (0.0, 1.0)
    #: `predict` overlays: None (picture alone) or (under it: "image" | "grey", colour weight).
    overlay: tuple[str, float] | None = ("grey", 0.6)
    #: What a dataset may declare its targets of this kind to store (`encoding` in
    #: dataset.yaml, readers, checkpoints and manifests); the first is the default.
    #: Empty: the kind has one meaning only.
    encodings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<TaskKind {self.name}>"

    # ---- shapes and names ------------------------------------------------------------

    def output_channels(self, class_names: Sequence[str] | None = None) -> int:
        """Channels of the raw output; a labels kind needs its class names (ValueError)."""
        if self.channels is not None:
            return self.channels
        if not class_names:
            raise ValueError(f"a {self.name} task needs class names")
        return len(class_names)

    def output_name(self, outputs: str = "raw") -> str:
        """Graph output name for `outputs` = "raw" or "decoded"."""
        return self.raw_output if outputs == "raw" else self.decoded_output

    def output_meaning(self, outputs: str = "raw") -> str:
        return (self.decoded_meaning or self.meaning) if outputs == "decoded" else self.meaning

    def target_layout(self) -> tuple[type, tuple[int, ...]]:
        """(dtype, channels-last trailing shape after H, W) of a sample target."""
        if self.labels:
            return np.int64, ()
        channels = self.channels or 1
        return np.float32, (() if channels == 1 else (channels,))

    def to_model_layout(self, value: np.ndarray) -> np.ndarray:
        """One sample target, channels-last -> model layout (H×W int64 or C×H×W float32)."""
        if self.labels:
            return np.ascontiguousarray(value, dtype=np.int64)
        if value.ndim == 2:
            return np.ascontiguousarray(value[None], dtype=np.float32)
        return np.ascontiguousarray(value.transpose(2, 0, 1), dtype=np.float32)

    # ---- valid pixels ----------------------------------------------------------------

    def valid(self, target: Any, channels: int) -> Any:
        """N×H×W boolean mask of defined pixels of a model-layout batch.

        Written with operators numpy arrays and torch tensors share, so the
        training losses and the metrics use this one rule. Here: first channel >= 0.
        """
        return target[:, 0] >= 0

    def valid_sample(self, value: np.ndarray, channels: int) -> np.ndarray:
        """H×W boolean mask of a channels-last sample target (`data show`, `data check`)."""
        return np.asarray(self.valid(self.to_model_layout(np.asarray(value))[None], channels))[0]

    # ---- decoding, metrics, constant predictor ----------------------------------------

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Raw output N×C×H×W -> what metrics and users consume (here: unchanged float32)."""
        return raw.astype(np.float32, copy=False)

    def normalise_frame(self, value: np.ndarray) -> np.ndarray:
        """Re-impose the kind's constraint on a channels-last map after resampling or
        decoding a file (normals: unit length); here unchanged."""
        return value

    def metric(self, channels: int | None = None) -> TaskMetric:
        """A fresh whole-split accumulator (evaluation/metrics.py conventions)."""
        return AbsErrMetric(valid=lambda target: self.valid(target, 1))

    def constant_fit(self, channels: int) -> ConstantFit:
        """Fitter of the trivial predictor `evaluation.baselines` scores (and heads start at)."""
        return ZeroFit(channels)

    # ---- export parity gates (numbers in core/tasks/parity.py) -------------------------

    def parity_fp32(
        self, a: np.ndarray, b: np.ndarray, tol: Tolerances, unpool: bool = False
    ) -> dict[str, Gate]:
        """FP32 ONNX output `a` against the torch reference `b`."""
        limit = tol.fp32_max_abs_unpool if unpool else tol.fp32_max_abs
        return {"max_abs": (max_abs(a, b), limit, "<=")}

    def parity_fp16(self, a: np.ndarray, b: np.ndarray, tol: Tolerances) -> dict[str, Gate]:
        """FP16 ONNX output `a` against the FP32 ONNX `b`."""
        return {"rel_diff_percent": (rel_diff_percent(a, b), tol.fp16_rel_diff, "<=")}

    def parity_int8(
        self, ref: Mapping[str, float], cand: Mapping[str, float], tol: Tolerances
    ) -> dict[str, Gate]:
        """INT8 metrics `cand` against FP32 metrics `ref`; here nothing is gated."""
        return {}

    # ---- augmentation (data/augment.py) ------------------------------------------------

    def flip(self, value: np.ndarray) -> np.ndarray:
        """A channels-last target already mirrored left-right; fix what the mirror changes."""
        return value

    def scale_crop(
        self, value: np.ndarray, scale: float, encoding: str | None = None
    ) -> np.ndarray:
        """A target seen through a crop that makes the scene `scale` times closer.

        `encoding`: what the target stores (one of `encodings`; None: the default),
        as the dataset declares it (e.g. Cityscapes' disparity: `inverse_depth`).
        Here unchanged.
        """
        return value

    def encoding_of(self, encoding: str | None) -> str | None:
        """`encoding`, or the kind's default when None (None for a kind without encodings)."""
        if encoding is None:
            return self.encodings[0] if self.encodings else None
        if encoding not in self.encodings:
            allowed = ", ".join(self.encodings) or "none"
            raise UserError(f"{self.name}: encoding {encoding!r} is not one of ({allowed})")
        return encoding

    # ---- data check ------------------------------------------------------------------

    def check_target(
        self, target: np.ndarray, class_names: Sequence[str], where: Path
    ) -> list[str]:
        """Hard errors (UserError naming `where`) and warnings of one decoded sample target."""
        if not np.isfinite(target).all():
            raise UserError(f"{where}: NaN/Inf values after decoding; expected finite numbers")
        return []

    # ---- pictures (data show, predict) -------------------------------------------------

    def colour_key(
        self, value: np.ndarray, encoding: str | None = None
    ) -> tuple[str, float, float] | None:
        """What explains `colourize`'s colours as a colour bar: (matplotlib colormap,
        low, high) over the map's values, or None when the picture is not a colormap of the
        values (labels: a legend; normals: their own RGB rule)."""
        if self.labels or type(self).colourize is not TaskKind.colourize:
            return None
        return (self.colormap, *self.display_range(np.asarray(value, dtype=np.float32)))

    def display_range(self, value: np.ndarray) -> tuple[float, float]:
        """(low, high) the colormap spans: the fixed `value_range`, else the map's own."""
        return self.value_range or auto_range(value)

    def colourize(
        self,
        value: np.ndarray,
        class_names: Sequence[str] = (),
        units: str = "",
        encoding: str | None = None,
    ) -> tuple[np.ndarray, Legend]:
        """Channels-last map -> (H×W×3 float32 RGB in [0, 1], legend entries).

        The value range is `display_range`: the kind's fixed `value_range` (so
        noise in an empty heatmap stays dark), or the map's own when None.
        `encoding`: what the map stores (kinds with `encodings` read it).
        """
        from matplotlib import colormaps

        value = np.asarray(value, dtype=np.float32)
        low, high = self.display_range(value)
        scaled = np.clip((value - low) / max(high - low, 1e-12), 0, 1)
        rgb = np.asarray(colormaps[self.colormap](np.nan_to_num(scaled))[..., :3], dtype=np.float32)
        unit = f" [{units}]" if units else ""  # "depth [m (z-depth)]": units in brackets
        ends = self.colormap_ends
        return rgb, [(None, f"{self.name}{unit}: {low:.3g} ({ends[0]}) .. {high:.3g} ({ends[1]})")]

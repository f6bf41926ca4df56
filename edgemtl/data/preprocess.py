"""The single numpy preprocessing path shared by train, eval, export and profile.

Why one function: a split must produce identical input tensors whether it is
scored by `edgemtl eval` on a checkpoint or by `edgemtl profile` on an engine.
Resize policy: image bilinear (half-pixel centres, like torch's
align_corners=False); every target nearest, so labels, invalid markers and unit
normals are never blended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgemtl.core.tasks import get_kind
from edgemtl.data.sample import Sample


@dataclass(frozen=True)
class InputSpec:
    """Model input: size and normalisation. Input images are float RGB in [0, 1]."""

    height: int
    width: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": "image",
            "shape": ["N", 3, self.height, self.width],
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "mean": list(self.mean),
            "std": list(self.std),
            "value_range": [0.0, 1.0],
            "resize": "bilinear (half-pixel) to HxW; targets nearest",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        shape = data["shape"]
        return cls(int(shape[2]), int(shape[3]), tuple(data["mean"]), tuple(data["std"]))  # type: ignore[arg-type]


def _source_coords(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = in_size / out_size
    pos = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    pos = np.clip(pos, 0.0, in_size - 1)
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, (pos - low).astype(np.float32)


def resize_bilinear(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize H x W [x C] float array (half-pixel centres, edge clamped)."""
    if array.shape[:2] == (height, width):
        return array
    y0, y1, fy = _source_coords(height, array.shape[0])
    x0, x1, fx = _source_coords(width, array.shape[1])
    if array.ndim == 3:
        fy = fy[:, None, None]
        fx = fx[None, :, None]
    else:
        fy = fy[:, None]
        fx = fx[None, :]
    top = array[y0][:, x0] * (1 - fx) + array[y0][:, x1] * fx
    bottom = array[y1][:, x0] * (1 - fx) + array[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(array.dtype, copy=False)


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of H x W [x C] (labels, masks, depth, normals)."""
    if array.shape[:2] == (height, width):
        return array
    rows = np.minimum(
        ((np.arange(height) + 0.5) * array.shape[0] / height).astype(np.int64), array.shape[0] - 1
    )
    cols = np.minimum(
        ((np.arange(width) + 0.5) * array.shape[1] / width).astype(np.int64), array.shape[1] - 1
    )
    return array[rows][:, cols]


def preprocess_image(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """H x W x 3 float RGB in [0, 1] -> normalised 3 x H x W float32 at the spec's size."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    image = resize_bilinear(image, spec.height, spec.width)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(((image - mean) / std).transpose(2, 0, 1), dtype=np.float32)


def prepare_targets(targets: dict[str, np.ndarray], spec: InputSpec) -> dict[str, np.ndarray]:
    """Channels-last targets -> model layout (`TaskKind.to_model_layout`): labels (H,W) int64,
    maps (C,H,W) float32. Task keys are kind names."""
    out: dict[str, np.ndarray] = {}
    for key, value in targets.items():
        value = resize_nearest(np.asarray(value), spec.height, spec.width)
        out[key] = get_kind(key).to_model_layout(value)
    return out


def prepare_sample(sample: Sample, spec: InputSpec) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return preprocess_image(sample.image, spec), prepare_targets(sample.targets, spec)


def collate(
    items: list[tuple[np.ndarray, dict[str, np.ndarray]]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stack prepared samples into one batch (N,3,H,W) and {task: (N,...)}."""
    images = np.stack([item[0] for item in items])
    keys = items[0][1].keys()
    return images, {key: np.stack([item[1][key] for item in items]) for key in keys}

"""A camera frame through a model: read, fit to the model input, and outputs back to the frame.

Why a module of its own: `edgemtl predict` runs these steps for users, and
`edgemtl profile` times the very same steps per stage (decode -> preprocess
-> infer -> postprocess, `deploy/profile/frame.py`), so the per-frame cost it
reports is what predict pays.

Fitting a frame whose aspect ratio differs from the model input: `stretch`
(the default; what training's preprocessing does to dataset images) resizes
it to the input, distorting shapes; `letterbox` keeps its aspect ratio,
centred in the input on the normalisation mean (zero after normalising),
and crops the same box out of every output before resizing it back.
numpy + Pillow only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks import TaskKind
from edgemtl.data.imageio import read_rgb
from edgemtl.data.preprocess import InputSpec

RESIZE_MODES = ("stretch", "letterbox")
#: Aspect ratios further apart than this (relative) earn a warning under `stretch`.
ASPECT_TOLERANCE = 0.1


def read_image(path: str | Path) -> np.ndarray:
    """H x W x 3 float32 RGB in [0, 1] from PNG/JPG/BMP/WebP (EXIF orientation applied, any
    bit depth scaled) or .npy: `edgemtl.data.imageio.read_rgb`, the one image decoder.
    UserError (one line naming the file) for what it cannot read."""
    return read_rgb(path, orient=True)


@dataclass(frozen=True)
class Placement:
    """Where a frame of `frame_hw` sits in the model input: `box` = (top, left, height,
    width) in input pixels (the whole input under `stretch`)."""

    mode: str
    frame_hw: tuple[int, int]
    box: tuple[int, int, int, int]


def place(frame_hw: tuple[int, int], input_hw: tuple[int, int], mode: str) -> Placement:
    """The placement of a frame in the input for resize `mode` (`RESIZE_MODES`)."""
    if mode not in RESIZE_MODES:
        raise UserError(f"--resize {mode}: expected {' or '.join(RESIZE_MODES)}")
    (fh, fw), (ih, iw) = frame_hw, input_hw
    if mode == "stretch":
        return Placement(mode, (fh, fw), (0, 0, ih, iw))
    scale = min(ih / fh, iw / fw)
    h, w = max(1, min(ih, round(fh * scale))), max(1, min(iw, round(fw * scale)))
    return Placement(mode, (fh, fw), ((ih - h) // 2, (iw - w) // 2, h, w))


def aspect_warning(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> str | None:
    """Why stretching this frame distorts it, or None when the aspect ratios agree within
    `ASPECT_TOLERANCE`."""
    frame, model = frame_hw[1] / frame_hw[0], input_hw[1] / input_hw[0]
    if abs(frame / model - 1) <= ASPECT_TOLERANCE:
        return None
    shape = "portrait" if frame < 1 else "landscape" if frame > 1 else "square"
    return (
        f"{frame_hw[0]}x{frame_hw[1]} ({shape}, width/height {frame:.2f}) stretched to the "
        f"model input {input_hw[0]}x{input_hw[1]} (width/height {model:.2f}); "
        "--resize letterbox keeps its shape"
    )


def preprocess_frame(frame: np.ndarray, spec: InputSpec, placement: Placement) -> np.ndarray:
    """H x W x 3 float RGB in [0, 1] -> normalised 3 x H x W float32 input (`placement`)."""
    from edgemtl.data.preprocess import preprocess_image

    if placement.mode == "stretch":
        return preprocess_image(frame, spec)
    top, left, h, w = placement.box
    inner = preprocess_image(frame, InputSpec(h, w, spec.mean, spec.std))
    canvas = np.zeros((3, spec.height, spec.width), dtype=np.float32)  # the mean, normalised
    canvas[:, top : top + h, left : left + w] = inner
    return canvas


def _crop(arr: np.ndarray, placement: Placement, input_hw: tuple[int, int]) -> np.ndarray:
    """The placement's box out of one output (H,W labels or C,H,W map at any resolution)."""
    if placement.mode == "stretch":
        return arr
    top, left, h, w = placement.box
    out_h, out_w = arr.shape[-2:]
    sy, sx = out_h / input_hw[0], out_w / input_hw[1]
    y0, x0 = int(round(top * sy)), int(round(left * sx))
    y1, x1 = max(y0 + 1, int(round((top + h) * sy))), max(x0 + 1, int(round((left + w) * sx)))
    return arr[..., y0:y1, x0:x1]


def to_frame(arr: np.ndarray, size: tuple[int, int], kind: TaskKind) -> np.ndarray:
    """One decoded output (H,W labels or C,H,W map) -> the frame's size, channels last.

    Labels resize nearest, maps bilinear; then the kind re-imposes its constraint
    (`TaskKind.normalise_frame`: normals back to unit length). 1-channel maps drop C.
    """
    from edgemtl.data.preprocess import resize_bilinear, resize_nearest

    h, w = size
    if kind.labels:
        return resize_nearest(arr, h, w)
    chw = np.ascontiguousarray(arr.transpose(1, 2, 0), dtype=np.float32)
    out = kind.normalise_frame(resize_bilinear(chw, h, w))
    return out[..., 0] if out.shape[2] == 1 else out


def postprocess(
    ref: Any, outputs: dict[str, np.ndarray], placements: Sequence[Placement]
) -> list[dict[str, np.ndarray]]:
    """Raw outputs of a batch (`ref`: the artifact's `ModelRef`) -> per frame, each task's
    decoded map at the frame's size: seg H x W int32 labels, maps H x W (x C) float32."""
    decoded = ref.decode(outputs)
    kinds = {t.key: t.task_kind for t in ref.tasks}
    input_hw = ref.input_hw
    return [
        {
            key: to_frame(_crop(value[i], p, input_hw), p.frame_hw, kinds[key])
            for key, value in decoded.items()
        }
        for i, p in enumerate(placements)
    ]

"""Training-split augmentation on channels-last Samples (numpy).

Why a pure function of (train.seed, epoch, index): `--resume` must replay the
exact same crops and flips, and DataLoader workers must not depend on process
state, so each sample draws from `augment_rng(seed, epoch, index)`.

Geometry (checked in tests on synthetic scenes whose camera is known):
- scale-crop by s: a random window of 1/s of each side is resized back to the
  model size (image bilinear, targets nearest). Seen through the crop the scene
  looks s times closer, so metric depth is divided by s (inverse depth, as
  Cityscapes stores it, is multiplied by s: the target's declared encoding
  decides, `TaskKind.scale_crop`); normals and labels are unchanged.
- horizontal flip: every map mirrored, and the normals' x component negated
  (camera x points right).
- photometric jitter j: brightness, contrast and saturation factors drawn from
  [1-j, 1+j], image clipped to [0, 1]; targets untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgemtl.core.tasks import get_kind
from edgemtl.data.preprocess import resize_bilinear, resize_nearest
from edgemtl.data.sample import Sample

#: Keeps augmentation draws apart from the epoch permutation's stream.
_STREAM = 0xA116


def augment_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([_STREAM, seed, epoch, index])


@dataclass(frozen=True)
class AugmentParams:
    """One sample's draw: crop window in source pixels, flip, jitter factors."""

    scale: float
    top: int
    left: int
    crop_h: int
    crop_w: int
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def jitter_image(
    image: np.ndarray, brightness: float, contrast: float, saturation: float
) -> np.ndarray:
    out = image * np.float32(brightness)
    mean = out.mean(dtype=np.float64)
    out = (out - mean) * np.float32(contrast) + np.float32(mean)
    grey = (out @ _LUMA)[..., None]
    out = grey + (out - grey) * np.float32(saturation)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class Augmenter:
    """Draws and applies scale-crop / flip / jitter; output is at `size` (H, W)."""

    def __init__(
        self,
        scales: tuple[float, ...],
        flip: bool,
        jitter: float,
        size: tuple[int, int],
        encodings: Mapping[str, str] | None = None,
    ) -> None:
        self.scales = tuple(float(s) for s in scales)
        self.flip = flip
        self.jitter = float(jitter)
        self.size = (int(size[0]), int(size[1]))
        #: task key -> what its target stores (the reader's declaration; absent: the default).
        self.encodings = dict(encodings or {})

    def draw(self, rng: np.random.Generator, height: int, width: int) -> AugmentParams:
        scale = self.scales[int(rng.integers(len(self.scales)))]
        crop_h = max(1, min(height, round(height / scale)))
        crop_w = max(1, min(width, round(width / scale)))
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        flip = bool(rng.random() < 0.5) if self.flip else False
        factors = [1.0, 1.0, 1.0]
        if self.jitter > 0:
            factors = [float(f) for f in rng.uniform(1 - self.jitter, 1 + self.jitter, size=3)]
        return AugmentParams(scale, top, left, crop_h, crop_w, flip, *factors)

    def apply(self, sample: Sample, p: AugmentParams) -> Sample:
        out_h, out_w = self.size
        rows = slice(p.top, p.top + p.crop_h)
        cols = slice(p.left, p.left + p.crop_w)
        image = resize_bilinear(
            np.ascontiguousarray(sample.image[rows, cols], dtype=np.float32), out_h, out_w
        )
        targets: dict[str, np.ndarray] = {}
        for key, value in sample.targets.items():
            value = np.array(resize_nearest(value[rows, cols], out_h, out_w), copy=True)
            if p.scale != 1.0:  # depth rescales; kind and encoding decide (TaskKind.scale_crop)
                value = get_kind(key).scale_crop(value, p.scale, self.encodings.get(key))
            targets[key] = value
        if p.flip:
            image = image[:, ::-1]
            # Mirror every map, then let its kind fix what mirroring changes (normal x).
            targets = {key: get_kind(key).flip(value[:, ::-1]) for key, value in targets.items()}
        if (p.brightness, p.contrast, p.saturation) != (1.0, 1.0, 1.0):
            image = jitter_image(image, p.brightness, p.contrast, p.saturation)
        targets = {key: np.ascontiguousarray(value) for key, value in targets.items()}
        return Sample(
            image=np.ascontiguousarray(image, dtype=np.float32), targets=targets, name=sample.name
        )

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        return self.apply(sample, self.draw(rng, height, width))


def build_augmenter(
    cfg: object, size: tuple[int, int], encodings: Mapping[str, str] | None = None
) -> Augmenter | None:
    """From a recipe's `data.augment` (AugmentConfig) and the targets' declared encodings
    (task key -> encoding, `data.registry.declared_target`); None if it changes nothing."""
    if not cfg.enabled():  # type: ignore[attr-defined]
        return None
    scale, flip, jitter = cfg.scale, cfg.flip, cfg.jitter  # type: ignore[attr-defined]
    return Augmenter(scale, flip, jitter, size, encodings)

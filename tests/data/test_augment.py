"""Augmentation keeps every target consistent with the image, and is a pure function of
(seed, epoch, index).

Two kinds of proof: (1) a sample whose image and targets all encode the pixel's
source coordinates must still agree after any crop/flip (alignment); (2) on a
synthetic scene with a known pinhole camera, every plane (floor, walls) must
still satisfy n . P = d after augmentation, with P rebuilt from the augmented
depth and the augmented pixel's ray, and d divided by the crop scale. That
fails if depth is not divided by s or if the normals' x is not negated on a flip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemtl.core.config import AugmentConfig
from edgemtl.data.augment import Augmenter, AugmentParams, augment_rng, build_augmenter
from edgemtl.data.preprocess import InputSpec
from edgemtl.data.sample import Sample
from edgemtl.data.synthetic import FLOOR, WALL, Camera, SynthParams, render_sample
from edgemtl.training.data import PreparedSplit, train_loader

H0, W0 = 48, 64


def _coordinate_sample() -> Sample:
    rows, cols = np.mgrid[0:H0, 0:W0].astype(np.float32)
    image = np.stack([cols / W0, rows / H0, np.full_like(rows, 0.5)], axis=-1)
    normal = np.zeros((H0, W0, 3), np.float32)
    normal[...] = (0.6, 0.0, -0.8)
    targets = {
        "seg": cols.astype(np.int64),
        "depth": 1.0 + rows,
        "normal": normal,
        "keypoints": cols / W0,
        "edges": rows / H0,
    }
    return Sample(image=image.astype(np.float32), targets=targets, name="coords")


@pytest.mark.parametrize("draw", range(6))
def test_every_target_stays_aligned_with_the_image(draw: int) -> None:
    aug = Augmenter((1.0, 1.2, 1.5), flip=True, jitter=0.0, size=(H0, W0))
    rng = augment_rng(0, draw, 3)
    params = aug.draw(augment_rng(0, draw, 3), H0, W0)
    out = aug(_coordinate_sample(), rng)
    col_from_image = out.image[..., 0] * W0  # bilinear: continuous source column
    row_from_image = out.image[..., 1] * H0
    # Nearest picks the source pixel containing the sample point: within half a pixel of it.
    interior = np.s_[1:-1, 1:-1]
    assert np.abs(out.targets["keypoints"] * W0 - col_from_image)[interior].max() <= 0.5 + 1e-4
    assert np.abs(out.targets["seg"] - col_from_image)[interior].max() <= 0.5 + 1e-4
    assert np.abs(out.targets["edges"] * H0 - row_from_image)[interior].max() <= 0.5 + 1e-4
    # Depth: 1 + source row, divided by the crop scale.
    depth_row = out.targets["depth"] * params.scale - 1.0
    assert np.abs(depth_row - row_from_image)[interior].max() <= 0.5 + 1e-3
    # Normals: x negated exactly when flipped.
    np.testing.assert_allclose(out.targets["normal"][..., 0], -0.6 if params.flip else 0.6)
    assert out.image.shape == (H0, W0, 3) and out.targets["seg"].dtype == np.int64


def _planes(
    sample: Sample, rays_x: np.ndarray, rays_y: np.ndarray
) -> dict[tuple, tuple[float, float]]:
    """Per plane (floor and wall pixels grouped by their normal): median n . P and the
    90th percentile of its relative deviation (0 for a perfect plane)."""
    seg, depth, normal = sample.targets["seg"], sample.targets["depth"], sample.targets["normal"]
    P = depth[..., None] * np.stack([rays_x, rays_y, np.ones_like(rays_x)], axis=-1)
    d = (normal * P).sum(-1)
    keep = np.isin(seg, [FLOOR, WALL]) & (depth > 0)
    groups: dict[tuple, list[float]] = {}
    for n, value in zip(np.round(normal[keep], 3), d[keep]):
        groups.setdefault(tuple(0.0 if v == 0 else v for v in n.tolist()), []).append(float(value))
    out = {}
    for key, values in groups.items():
        if len(values) >= 40:
            arr = np.asarray(values)
            med = float(np.median(arr))
            out[key] = (med, float(np.percentile(np.abs(arr - med) / abs(med), 90)))
    return out


def _plane_offsets(sample: Sample, rays_x: np.ndarray, rays_y: np.ndarray) -> dict[tuple, float]:
    return {key: med for key, (med, _) in _planes(sample, rays_x, rays_y).items()}


def _rays(
    height: int, width: int, p: AugmentParams | None, out: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Ray (x/z, y/z) of every output pixel, in the original camera (x mirrored on a flip)."""
    f, _, cx, cy = Camera(position=(0.0, 0.0, 0.0)).intrinsics(height, width)
    oh, ow = out
    rows, cols = np.mgrid[0:oh, 0:ow].astype(np.float64)
    if p is None:
        return (cols - cx) / f, (rows - cy) / f
    src_cols = cols[:, ::-1] if p.flip else cols
    u = p.left + (src_cols + 0.5) * p.crop_w / ow - 0.5
    v = p.top + (rows + 0.5) * p.crop_h / oh - 0.5
    x = (u - cx) / f
    return (-x if p.flip else x), (v - cy) / f


@pytest.mark.parametrize("index", [0, 1, 2])
def test_planes_stay_planes_on_synthetic_scenes(index: int) -> None:
    params = SynthParams(n_train=4, n_val=1, height=64, width=128, seed=11)
    sample = render_sample(params, "train", index)
    before = _plane_offsets(sample, *_rays(64, 128, None, (64, 128)))
    assert len(before) >= 2  # the floor and at least one wall
    aug = Augmenter((1.5,), flip=True, jitter=0.0, size=(64, 128))
    for flip in (False, True):
        p = AugmentParams(scale=1.5, top=10, left=20, crop_h=43, crop_w=85, flip=flip)
        out = aug.apply(sample, p)
        after = _plane_offsets(out, *_rays(64, 128, p, (64, 128)))
        matched = 0
        for (nx, ny, nz), d in after.items():
            key = (-nx if flip else nx, ny, nz)
            key = tuple(0.0 if v == 0 else v for v in key)
            if key in before:
                matched += 1
                # Same plane, seen s times closer: offset divided by s.
                assert d == pytest.approx(before[key] / 1.5, rel=0.03), (flip, key)
        assert matched >= 2

    # Negative control: a flip that forgets to negate normal x gets the side walls' offsets wrong.
    p = AugmentParams(scale=1.0, top=0, left=0, crop_h=64, crop_w=128, flip=True)
    out = aug.apply(sample, p)
    wrong = Sample(
        out.image, {**out.targets, "normal": out.targets["normal"] * np.float32([-1, 1, 1])}
    )
    rays = _rays(64, 128, p, (64, 128))
    assert max(spread for _, spread in _planes(out, *rays).values()) < 0.05
    side = {
        key: d
        for key, d in _plane_offsets(wrong, *rays).items()
        if abs(key[0]) > 0.3 and key in before
    }
    assert side, "the scene should show a side wall"
    for key, d in side.items():
        assert abs(d - before[key]) > 0.3 * abs(before[key])


def test_jitter_changes_only_the_image() -> None:
    sample = render_sample(SynthParams(n_train=1, n_val=1, height=32, width=64, seed=2), "train", 0)
    plain = Augmenter((1.0,), flip=False, jitter=0.0, size=(32, 64))
    jitter = Augmenter((1.0,), flip=False, jitter=0.4, size=(32, 64))
    p = jitter.draw(augment_rng(0, 0, 0), 32, 64)
    assert (p.brightness, p.contrast, p.saturation) != (1.0, 1.0, 1.0)
    a, b = plain(sample, augment_rng(0, 0, 0)), jitter(sample, augment_rng(0, 0, 0))
    assert not np.allclose(a.image, b.image)
    assert b.image.min() >= 0.0 and b.image.max() <= 1.0
    for key in sample.targets:
        np.testing.assert_array_equal(a.targets[key], b.targets[key])


def test_inverse_depth_is_multiplied_by_the_scale() -> None:
    sample = _coordinate_sample()
    p = AugmentParams(scale=1.5, top=0, left=0, crop_h=32, crop_w=43)
    direct = Augmenter((1.5,), False, 0.0, (H0, W0)).apply(sample, p).targets["depth"]
    inverse = (
        Augmenter((1.5,), False, 0.0, (H0, W0), {"depth": "inverse_depth"})
        .apply(sample, p)
        .targets["depth"]
    )
    np.testing.assert_allclose(inverse, direct * 1.5 * 1.5, rtol=1e-6)


def test_disabled_config_builds_nothing() -> None:
    assert build_augmenter(AugmentConfig(), (32, 64)) is None
    assert build_augmenter(AugmentConfig(flip=True), (32, 64)) is not None
    with pytest.raises(ValueError):
        AugmentConfig(scale=(0.5,))


class _ListReader:
    class_names = ("a",)

    def __init__(self, n: int) -> None:
        self.samples = [
            render_sample(SynthParams(n_train=n, n_val=1, height=32, width=64, seed=4), "train", i)
            for i in range(n)
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


def test_augmented_loader_is_a_pure_function_of_seed_epoch_index() -> None:
    torch.set_num_threads(1)
    reader = _ListReader(8)
    aug = Augmenter((1.0, 1.25, 1.5), flip=True, jitter=0.2, size=(32, 64))
    dataset = PreparedSplit(reader, InputSpec(32, 64), augment=aug, seed=3)

    def batches(epoch: int, start: int, workers: int = 0) -> list[torch.Tensor]:
        return [images for images, _ in train_loader(dataset, 2, 3, epoch, start, workers=workers)]

    full = batches(1, 0)
    resumed = batches(1, 2, workers=1)  # --resume at batch 2 of epoch 1, in a worker process
    assert len(full) == 4 and len(resumed) == 2
    for a, b in zip(full[2:], resumed):
        assert torch.equal(a, b)
    other_epoch = batches(2, 0)
    assert not all(torch.equal(a, b) for a, b in zip(full, other_epoch))
    # Same index, same epoch: same draw whatever the order it is asked in.
    dataset.set_epoch(5)
    first = dataset[6][1]["depth"]
    dataset[2]
    assert torch.equal(first, dataset[6][1]["depth"])

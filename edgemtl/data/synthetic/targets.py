"""Target maps derived from a render: soft contour edges and keypoint heatmaps."""

from __future__ import annotations

import math

import numpy as np

from edgemtl.data.synthetic.scene import EPS, Scene

# Edge thresholds: a relative depth jump between neighbours, or a normal turn.
EDGE_DEPTH_REL = 0.1
EDGE_NORMAL_DEG = 45.0
# Soft edge maps: 1 on the contour, exp(-d^2 / 2 s^2) at Chebyshev distance d <= 2 px.
EDGE_SOFTNESS_PX = 1.1
# Keypoint blob size at the reference 64x128; scales with sqrt(area).
KEYPOINT_SIGMA_PX = 2.5


def edge_map(z: np.ndarray, normal: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Contours where a neighbour pair differs in depth (relative jump), normal
    (angle) or label; the nearer pixel of the pair is marked, so contours are 1 px
    thick and sit on the occluding surface; then softened (`_soften`). `z` is inf
    where nothing was hit."""
    out = np.zeros(z.shape, dtype=bool)
    cos_thr = math.cos(math.radians(EDGE_NORMAL_DEG))
    for axis in (0, 1):
        a = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        b = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        za, zb = z[a], z[b]
        both = np.isfinite(za) & np.isfinite(zb)
        with np.errstate(invalid="ignore"):
            jump = np.abs(za - zb) > EDGE_DEPTH_REL * np.minimum(za, zb)
        turn = np.sum(normal[a] * normal[b], axis=-1) < cos_thr
        diff = (seg[a] != seg[b]) | (both & (jump | turn))
        a_near = za <= zb
        out[a] |= diff & a_near
        out[b] |= diff & ~a_near
    return _soften(out)


def _soften(contour: np.ndarray) -> np.ndarray:
    """Contour (bool) -> soft edge map: 1 on it, Gaussian falloff over 2 px around it.

    Why soft: a 1-px binary map is the worst case for an L1-trained dense head
    (its per-pixel median is 0 unless it localises a contour to the pixel); a
    short falloff keeps the contour's position exact and gives nearby pixels
    graded targets, as Taskonomy's continuous edge maps do.
    """
    height, width = contour.shape
    padded = np.pad(contour, 2)
    out = contour.astype(np.float32)
    for d in (1, 2):
        level = math.exp(-(d * d) / (2 * EDGE_SOFTNESS_PX**2))
        near = np.zeros_like(contour)
        for di in range(-d, d + 1):
            for dj in range(-d, d + 1):
                near |= padded[2 + di : 2 + di + height, 2 + dj : 2 + dj + width]
        np.maximum(out, np.where(near, np.float32(level), np.float32(0.0)), out=out)
    return out


def keypoint_map(scene: Scene, height: int, width: int) -> np.ndarray:
    """Max-combined unit-peak Gaussians at projected keypoints in front of the camera."""
    heat = np.zeros((height, width), dtype=np.float32)
    pts = scene.keypoints_3d()
    if len(pts) == 0:
        return heat
    uv, z = scene.camera.project(pts, height, width)
    sigma = KEYPOINT_SIGMA_PX * math.sqrt(height * width / (64.0 * 128.0))
    rad = math.ceil(3.0 * sigma)
    for (u, v), zi in zip(uv, z, strict=True):
        if not (zi > EPS and 0.0 <= u <= width - 1 and 0.0 <= v <= height - 1):
            continue
        j0, j1 = max(int(u) - rad, 0), min(int(u) + rad + 2, width)
        i0, i1 = max(int(v) - rad, 0), min(int(v) + rad + 2, height)
        gx = np.exp(-((np.arange(j0, j1) - u) ** 2) / (2 * sigma * sigma))
        gy = np.exp(-((np.arange(i0, i1) - v) ** 2) / (2 * sigma * sigma))
        np.maximum(heat[i0:i1, j0:j1], np.outer(gy, gx), out=heat[i0:i1, j0:j1])
    return heat

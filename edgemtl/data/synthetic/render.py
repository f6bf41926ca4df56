"""Render a scene (or sample i of a split) into a Sample with every task's target."""

from __future__ import annotations

import numpy as np

from edgemtl.data.sample import Sample
from edgemtl.data.synthetic.params import SPLITS, SynthParams
from edgemtl.data.synthetic.raycast import camera_rays, primitives
from edgemtl.data.synthetic.sampling import sample_scene
from edgemtl.data.synthetic.scene import Scene
from edgemtl.data.synthetic.targets import edge_map, keypoint_map


def render_scene(
    scene: Scene, height: int, width: int, rng: np.random.Generator | None = None, name: str = ""
) -> Sample:
    """Render every task's target for `scene`. Image noise is added only with `rng`."""
    n_pix = height * width
    rot = scene.camera.rotation()
    o = np.asarray(scene.camera.position, float)
    d = rot.T @ camera_rays(height, width, scene.camera.hfov_deg)  # world dirs, cam z == 1
    dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]

    prims = primitives(scene)
    if prims:
        ts = np.stack([p.hit(o, d, dd) for p in prims])
        winner = np.argmin(ts, axis=0)
        t = ts[winner, np.arange(n_pix)]
    else:
        winner = np.zeros(n_pix, dtype=np.intp)
        t = np.full(n_pix, np.inf)
    hit = np.isfinite(t)

    labels = np.full(n_pix, -1, dtype=np.int64)
    normal_w = np.zeros((3, n_pix))
    albedo = np.zeros((3, n_pix))
    for k, prim in enumerate(prims):
        idx = np.flatnonzero(hit & (winner == k))
        if idx.size == 0:
            continue
        points = o[:, None] + t[idx] * d[:, idx]
        n, a = prim.shade(points)
        normal_w[:, idx] = n
        albedo[:, idx] = a
        labels[idx] = prim.label

    light = np.asarray(scene.light.direction, float)
    light = light / np.linalg.norm(light)
    lambert = np.maximum(light @ normal_w, 0.0)
    shading = scene.light.ambient + (1.0 - scene.light.ambient) * lambert
    color = albedo * shading[None, :]
    sky = _sky(scene, rot, height, width)
    color = np.where(hit[None, :], color, sky)

    image = color.reshape(3, height, width).transpose(1, 2, 0)
    if rng is not None and scene.noise > 0:
        image = image + scene.noise * rng.standard_normal(image.shape)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)

    depth = np.where(hit, t, 0.0).reshape(height, width)
    normal = (rot @ normal_w).reshape(3, height, width).transpose(1, 2, 0)
    seg = labels.reshape(height, width)
    edges = edge_map(np.where(hit, t, np.inf).reshape(height, width), normal, seg)
    keypoints = keypoint_map(scene, height, width)
    return Sample(
        image=np.ascontiguousarray(image),
        targets={
            "seg": seg,
            "depth": depth.astype(np.float32),
            "normal": np.ascontiguousarray(normal, dtype=np.float32),
            "keypoints": keypoints,
            "edges": edges,
        },
        name=name,
    )


def _sky(scene: Scene, rot: np.ndarray, height: int, width: int) -> np.ndarray:
    """Vertical gradient by ray elevation, from horizon colour to top colour."""
    d = rot.T @ camera_rays(height, width, scene.camera.hfov_deg)
    elev = d[2] / np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
    k = np.clip(elev * 3.0, 0.0, 1.0)[None, :]
    top, horizon = np.asarray(scene.sky[0])[:, None], np.asarray(scene.sky[1])[:, None]
    return horizon * (1.0 - k) + top * k


def render_sample(params: SynthParams, split: str, index: int) -> Sample:
    """Sample `index` of `split`, regenerated from its own seed alone."""
    n = params.count(split)
    if not 0 <= index < n:
        raise IndexError(f"synthetic {split} index {index} out of range [0, {n})")
    rng = np.random.default_rng([params.seed, SPLITS[split], index])
    scene = sample_scene(rng)
    return render_scene(scene, params.height, params.width, rng, name=f"{split}/{index}")

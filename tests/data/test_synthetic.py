"""The synthetic renderer against hand geometry, and its dataset cache under concurrency."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.data.npy_layout import NpyLayoutReader
from edgemtl.data.synthetic import (
    BOX,
    CLASS_NAMES,
    GENERATOR_VERSION,
    SPHERE,
    WALL,
    Box,
    Camera,
    Room,
    Scene,
    Sphere,
    SynthParams,
    dataset_key,
    ensure_dataset,
    render_sample,
    render_scene,
    write_dataset,
)

H, W = 33, 65  # odd: a pixel sits exactly on the optical axis
RED = (0.8, 0.1, 0.1)
TINY = SynthParams(n_train=3, n_val=2, height=16, width=32, seed=7)


def _rays(height: int, width: int, hfov_deg: float = 65.0) -> tuple[np.ndarray, float]:
    """Camera-frame rays (H, W, 3) with z == 1, written out independently of the renderer."""
    f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    jj, ii = np.meshgrid(np.arange(width), np.arange(height))
    x, y = (jj - (width - 1) / 2) / f, (ii - (height - 1) / 2) / f
    rays = np.stack([x, y, np.ones_like(x)], -1)
    return rays, f


def _sphere_z(rays: np.ndarray, centre_cam: np.ndarray, r: float) -> np.ndarray:
    """Closed-form z-depth of the near ray-sphere hit (NaN on a miss)."""
    a = np.sum(rays * rays, -1)
    b = rays @ centre_cam
    disc = b * b - a * (centre_cam @ centre_cam - r * r)
    with np.errstate(invalid="ignore"):
        return np.where(disc > 0, (b - np.sqrt(disc)) / a, np.nan)


# --------------------------------------------------------------------------- geometry


def test_sphere_on_axis_depth_is_analytic() -> None:
    # Camera at height 1.5 looking along +Y; sphere of radius 0.5 three metres ahead on the axis.
    scene = Scene(Camera((0.0, 0.0, 1.5)), room=None, objects=(Sphere((0.0, 3.0, 1.5), 0.5, RED),))
    s = render_scene(scene, H, W)
    depth, seg = s.targets["depth"], s.targets["seg"]
    # Centre pixel: nearest surface point is 3 - 0.5 = 2.5 m ahead; normal points back at us.
    assert depth[16, 32] == pytest.approx(2.5, abs=1e-6)
    np.testing.assert_allclose(s.targets["normal"][16, 32], [0.0, 0.0, -1.0], atol=1e-6)
    rays, _ = _rays(H, W)
    expect = _sphere_z(rays, np.array([0.0, 0.0, 3.0]), 0.5)
    hit = ~np.isnan(expect)
    assert (seg[hit] == SPHERE).all() and (seg[~hit] == -1).all()
    np.testing.assert_allclose(depth[hit], expect[hit], rtol=1e-5)
    assert (depth[~hit] == 0).all() and (s.targets["normal"][~hit] == 0).all()
    # Angular radius asin(0.5/3) -> ~ f * tan(9.59 deg) = 8.6 px: the disc spans 17 columns.
    assert hit[16].sum() == 17


def test_sphere_depth_is_z_not_ray_length_with_pitched_camera() -> None:
    pitch = math.radians(30.0)
    cam = Camera((0.0, 0.0, 2.0), yaw=0.0, pitch=pitch)
    centre = np.array([0.7, 4.0, 0.4])
    r = 0.4
    scene = Scene(cam, room=None, objects=(Sphere(tuple(centre), r, RED),))
    s = render_scene(scene, H, W)
    # Hand rotation for yaw 0: right = +X, forward = (0, cos p, -sin p), down = (0, -sin p, -cos p).
    rel = centre - np.array([0.0, 0.0, 2.0])
    c_cam = np.array(
        [
            rel[0],
            -math.sin(pitch) * rel[1] - math.cos(pitch) * rel[2],
            math.cos(pitch) * rel[1] - math.sin(pitch) * rel[2],
        ]
    )
    rays, _ = _rays(H, W)
    expect = _sphere_z(rays, c_cam, r)
    hit = ~np.isnan(expect)
    # Boundary pixels can flip on rounding; compare where both agree, demand near-total agreement.
    got = s.targets["seg"] == SPHERE
    assert (got != hit).sum() <= 2 and hit.sum() > 30
    both = got & hit
    np.testing.assert_allclose(s.targets["depth"][both], expect[both], rtol=1e-5)
    # Normals are (P - C) / r in the camera frame.
    pts = rays[both] * expect[both][:, None]
    np.testing.assert_allclose(s.targets["normal"][both], (pts - c_cam) / r, atol=1e-4)


def _backproject(depth: np.ndarray) -> np.ndarray:
    rays, _ = _rays(*depth.shape)
    return rays * depth[..., None]


def test_normals_agree_with_depth_gradients() -> None:
    params = SynthParams(height=64, width=128, seed=3)
    errors = []
    for i in range(4):
        s = render_sample(params, "train", i)
        depth, seg, normal = s.targets["depth"], s.targets["seg"], s.targets["normal"]
        pts = _backproject(depth.astype(np.float64))
        du = pts[1:-1, 2:] - pts[1:-1, :-2]
        dv = pts[2:, 1:-1] - pts[:-2, 1:-1]
        est = -np.cross(du, dv)  # x right cross y down = z forward: flip to face the camera
        est /= np.linalg.norm(est, axis=-1, keepdims=True) + 1e-12
        # Smooth interior: the 3x3 neighbourhood has one label and no edge.
        lab, edg = seg, s.targets["edges"]
        ok = lab[1:-1, 1:-1] >= 0
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                win = (slice(1 + di, lab.shape[0] - 1 + di), slice(1 + dj, lab.shape[1] - 1 + dj))
                ok &= (lab[win] == lab[1:-1, 1:-1]) & (edg[win] == 0)
        cos = np.sum(est * normal[1:-1, 1:-1], -1)[ok]
        errors.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    deg = np.concatenate(errors)
    assert deg.size > 10_000
    assert np.median(deg) < 0.1  # planes are exact up to float32 depth
    assert np.percentile(deg, 99) < 2.0  # curved surfaces: finite differences of a sphere
    assert deg.max() < 5.0


def test_keypoints_peak_at_projected_points() -> None:
    cam = Camera((0.0, 0.0, 1.5))
    box = Box((0.8, 4.0, 1.2), (0.3, 0.25, 0.2), math.radians(20.0), (0.1, 0.2, 0.8))
    scene = Scene(cam, room=None, objects=(Sphere((0.0, 3.0, 1.5), 0.4, RED), box))
    kp = render_scene(scene, H, W).targets["keypoints"]
    assert kp.dtype == np.float32 and kp.min() >= 0 and kp.max() <= 1
    # The sphere centre is on the optical axis: exactly pixel (16, 32), value exp(0) = 1.
    assert kp[16, 32] == pytest.approx(1.0)
    uv, z = cam.project(box.corners(), H, W)
    assert (z > 0).all()
    # Hand check of one corner's projection: X, Y, Z world -> (X, -(Z-1.5), Y) in the camera frame.
    corner = box.corners()[0]
    f = (W / 2) / math.tan(math.radians(65.0) / 2)
    assert uv[0, 0] == pytest.approx(f * corner[0] / corner[1] + (W - 1) / 2)
    assert uv[0, 1] == pytest.approx(f * -(corner[2] - 1.5) / corner[1] + (H - 1) / 2)
    for u, v in uv:
        i, j = round(float(v)), round(float(u))
        patch = kp[i - 1 : i + 2, j - 1 : j + 2]
        assert kp[i, j] == patch.max()  # local maximum at the projected point
        # Unit-peak Gaussian of sigma 1.5 px * sqrt(area ratio), half a pixel off at most.
        sigma = 1.5 * math.sqrt(H * W / (64 * 128))
        assert kp[i, j] >= math.exp(-0.5 / (2 * sigma**2)) - 1e-6
    # Far from every keypoint the map is exactly zero.
    assert kp[0, 0] == 0 and kp[-1, 0] == 0


def test_edges_on_discontinuities_not_in_flat_interiors() -> None:
    cam = Camera((0.0, 0.0, 1.5))
    room = Room(x_min=-10.0, x_max=10.0, y_min=-1.0, y_max=6.0, wall_height=5.0, walls=("back",))
    box = Box((0.0, 3.0, 0.9), (0.6, 0.5, 0.9), 0.0, (0.1, 0.2, 0.8))
    s = render_scene(Scene(cam, room, (box,)), H, W)
    seg, edges = s.targets["seg"], s.targets["edges"]
    assert edges.min() >= 0.0 and edges.max() == 1.0
    box_rows = np.flatnonzero((seg == BOX).any(axis=1))
    for i in box_rows:
        cols = np.flatnonzero(seg[i] == BOX)
        # Occluding contour: the box's own outermost pixels (the nearer side) are edges.
        assert edges[i, cols[0]] == 1 and edges[i, cols[-1]] == 1
        # Background pixels right next to it only get the soft falloff (1-px contours
        # on the occluder), except on the wall-floor junction rows, an edge of their own.
        if len(set(seg[max(i - 3, 0) : i + 4, 3].tolist())) == 1:
            assert 0 < edges[i, cols[0] - 1] < 1 and 0 < edges[i, cols[-1] + 1] < 1
            assert edges[i, cols[0] - 3] == 0 and edges[i, cols[-1] + 3] == 0
    # Front face (fronto-parallel) interior: no edges at all.
    face = (seg == BOX) & (np.abs(s.targets["normal"][..., 2] + 1) < 1e-6)
    inner = face.copy()
    for _ in range(3):  # 3 px inside the contour: beyond the soft falloff
        eroded = inner.copy()
        eroded[1:-1, 1:-1] &= (
            inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
        )
        eroded[[0, -1], :] = False
        eroded[:, [0, -1]] = False
        inner = eroded
    assert inner.sum() > 10 and edges[inner].sum() == 0
    # Top rows see only the back wall: flat, no edges.
    assert (seg[:3] == WALL).all() and edges[:3].sum() == 0
    # Wall-floor junction (a 90 degree turn) is an edge in a column far from the box.
    col = 3
    change = np.flatnonzero(seg[1:, col] != seg[:-1, col])
    assert change.size == 1 and edges[change[0] : change[0] + 2, col].sum() >= 1


def test_label_changes_are_always_edges() -> None:
    for i in range(3):
        s = render_sample(SynthParams(seed=1), "val", i)
        seg, e = s.targets["seg"], s.targets["edges"] > 0
        h = seg[:, 1:] != seg[:, :-1]
        v = seg[1:] != seg[:-1]
        assert (e[:, 1:] | e[:, :-1])[h].all()
        assert (e[1:] | e[:-1])[v].all()


# --------------------------------------------------------------------------- samples


def test_values_ranges_and_dtypes() -> None:
    params = SynthParams(seed=5)
    for i in range(4):
        s = render_sample(params, "train", i)
        t = s.targets
        assert s.image.shape == (64, 128, 3) and s.image.dtype == np.float32
        assert 0 <= s.image.min() and s.image.max() <= 1
        assert t["seg"].shape == (64, 128) and t["seg"].dtype == np.int64
        assert t["seg"].min() >= -1 and t["seg"].max() < len(CLASS_NAMES)
        valid = t["seg"] >= 0
        assert t["depth"].dtype == np.float32 and (t["depth"][valid] > 0).all()
        assert (t["depth"][~valid] == 0).all()
        n = t["normal"]
        assert n.shape == (64, 128, 3) and n.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(n[valid], axis=-1), 1.0, atol=1e-5)
        assert (n[~valid] == 0).all()
        # Visible surfaces face the camera: normal . ray < 0.
        rays, _ = _rays(64, 128)
        assert (np.sum(n * rays, -1)[valid] < 1e-6).all()
        for key in ("keypoints", "edges"):
            assert t[key].shape == (64, 128) and t[key].dtype == np.float32
            assert t[key].min() >= 0 and t[key].max() <= 1
        assert (
            len(set(np.unique(t["edges"]).tolist()) - {0.0, 1.0}) <= 2
        )  # contour 1, two falloff levels
        assert s.name == f"train/{i}"


def test_scenes_are_varied() -> None:
    seen: set[int] = set()
    for i in range(8):
        seen |= set(np.unique(render_sample(SynthParams(), "train", i).targets["seg"]).tolist())
    assert seen == {-1, 0, 1, 2, 3, 4}  # every class and the sky appear


def test_deterministic_per_seed_and_independent_of_order() -> None:
    params = SynthParams(seed=11, height=32, width=64)
    forward = [render_sample(params, "train", i) for i in range(4)]
    backward = [render_sample(params, "train", i) for i in reversed(range(4))][::-1]
    for a, b in zip(forward, backward, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        for key in a.targets:
            np.testing.assert_array_equal(a.targets[key], b.targets[key])
    assert not np.array_equal(forward[0].image, forward[1].image)
    other_seed = render_sample(SynthParams(seed=12, height=32, width=64), "train", 0)
    assert not np.array_equal(forward[0].image, other_seed.image)
    val = render_sample(params, "val", 0)
    assert not np.array_equal(forward[0].image, val.image)


def test_bad_split_index_and_params() -> None:
    with pytest.raises(UserError, match="split 'test'"):
        render_sample(TINY, "test", 0)
    with pytest.raises(IndexError):
        render_sample(TINY, "val", 2)
    with pytest.raises(UserError, match="height"):
        SynthParams(height=4)
    with pytest.raises(UserError, match="n_train"):
        SynthParams.from_dict({"n_train": "ten"})
    with pytest.raises(UserError, match="unknown key 'size'"):
        SynthParams.from_dict({"size": 3})
    assert SynthParams.from_dict(TINY.to_dict()) == TINY


# --------------------------------------------------------------------------- dataset files


def test_write_dataset_layout_round_trips(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = write_dataset(tmp_path / "ds", TINY, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(k, 5) for k in range(1, 6)]
    meta = json.loads((out / "synthetic.json").read_text())
    assert meta == {
        "generator_version": GENERATOR_VERSION,
        "params": TINY.to_dict(),
        "class_names": list(CLASS_NAMES),
    }
    shapes = {
        "image": (16, 32, 3),
        "label": (16, 32),
        "depth": (16, 32, 1),
        "normal": (16, 32, 3),
        "keypoints": (16, 32, 1),
        "edges": (16, 32, 1),
    }
    for folder, shape in shapes.items():
        arr = np.load(out / "val" / folder / "1.npy")
        assert arr.shape == shape and arr.dtype == np.float32, folder
    names = sorted(p.name for p in (out / "train" / "image").iterdir())
    assert names == ["0.npy", "1.npy", "2.npy"]
    reader = NpyLayoutReader(out, "train", ["seg", "depth", "normal", "keypoints", "edges"])
    assert len(reader) == 3
    got, want = reader[2], render_sample(TINY, "train", 2)
    np.testing.assert_array_equal(got.image, want.image)
    for key, arr in want.targets.items():
        assert got.targets[key].dtype == arr.dtype
        np.testing.assert_array_equal(got.targets[key], arr)
    # Rewriting the same dataset is a no-op; a foreign folder is refused.
    assert write_dataset(out, TINY) == out
    with pytest.raises(UserError, match="not this synthetic dataset"):
        write_dataset(out, SynthParams(n_train=3, n_val=2, height=16, width=32, seed=8))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


_WORKER = """
import sys, time
from edgemtl.data.synthetic import SynthParams, ensure_dataset, write_dataset
start = float(sys.argv[1])
params = SynthParams(n_train=6, n_val=3, height=16, width=32, seed=7)
time.sleep(max(0.0, start - time.time()))
if sys.argv[2] == "ensure":
    print(ensure_dataset(params))
else:
    print(write_dataset(sys.argv[3], params))
"""


def _race(mode: str, env: dict[str, str], *extra: str) -> list[str]:
    start = time.time() + 1.5  # both interpreters are up and waiting by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(start), mode, *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    return outs


def _assert_complete(root: Path, params: SynthParams) -> None:
    assert json.loads((root / "synthetic.json").read_text())["params"] == params.to_dict()
    for split, n in (("train", params.n_train), ("val", params.n_val)):
        for folder in ("image", "label", "depth", "normal", "keypoints", "edges"):
            assert len(list((root / split / folder).glob("*.npy"))) == n


def test_ensure_dataset_concurrent_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "EDGEMTL_CACHE": str(tmp_path)}
    params = SynthParams(n_train=6, n_val=3, height=16, width=32, seed=7)
    a, b = _race("ensure", env)
    assert a == b == str(tmp_path / "synthetic" / dataset_key(params))
    _assert_complete(Path(a), params)
    entries = sorted(p.name for p in (tmp_path / "synthetic").iterdir())
    assert [e for e in entries if not e.endswith(".lock")] == [dataset_key(params)]
    # In this process: found at once, nothing regenerated.
    monkeypatch.setenv("EDGEMTL_CACHE", str(tmp_path))
    stamp = (Path(a) / "synthetic.json").stat().st_mtime_ns
    assert ensure_dataset(params) == Path(a)
    assert (Path(a) / "synthetic.json").stat().st_mtime_ns == stamp


def test_write_dataset_race_without_lock_keeps_one_copy(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    a, b = _race("write", dict(os.environ), str(out))
    assert a == b == str(out)
    _assert_complete(out, SynthParams(n_train=6, n_val=3, height=16, width=32, seed=7))
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # the loser's temp copy is gone


def test_dataset_key_depends_on_params_and_version() -> None:
    assert len(dataset_key(TINY)) == 16
    assert dataset_key(TINY) == dataset_key(SynthParams.from_dict(TINY.to_dict()))
    assert dataset_key(TINY) != dataset_key(SynthParams(n_train=3, n_val=2, height=16, width=32))

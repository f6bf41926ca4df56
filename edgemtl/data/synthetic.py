"""Procedural multi-task scenes: a small numpy ray caster.

Why: tests, recipes and CI need a dataset that appears from nothing, is exactly
reproducible, and has *consistent* labels for every task (seg, depth, normal,
keypoints, edges) so that a tiny CNN learns something real in minutes on a CPU.

The scene is an open-top room seen by a pinhole camera looking slightly down:
a checkered floor, 2-3 striped walls, and 2-6 objects (red-family spheres,
blue-family framed boxes, green-family banded cylinders) standing on the floor
without touching. Every pixel's ray is intersected with every primitive at once
(vectorised over pixels), so a 64x128 image costs a few milliseconds.

Conventions (also in docs/formats.md):
- Camera frame is OpenCV's: x right, y down, z forward. Pixel (row i, column j)
  has its centre at image coordinates (u, v) = (j, i); the principal point is
  ((W-1)/2, (H-1)/2); fx = fy = (W/2) / tan(hfov/2).
- depth is **z-depth** (camera-frame z) in metres, 0 where the ray hits nothing.
- normal is a unit vector in the camera frame facing the camera, (0,0,0) where
  the ray hits nothing. seg is -1 there. keypoints and edges are defined
  everywhere (0 where there is nothing).
- The world frame is X right, Y forward (into the room), Z up; the floor is Z=0.
- Sample i of split s is rendered from `np.random.default_rng([seed, s_id, i])`,
  so any index is regenerated alone and in any order.
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.data.sample import Sample
from edgemtl.core.errors import UserError
from edgemtl.core.io import atomic_dir, atomic_write_json

#: Bump whenever rendered output changes for the same parameters: it is part of
#: the cache key, so old caches are never mistaken for new ones.
GENERATOR_VERSION = 2

CLASS_NAMES: tuple[str, ...] = ("floor", "wall", "sphere", "box", "cylinder")
FLOOR, WALL, SPHERE, BOX, CYLINDER = range(len(CLASS_NAMES))

SPLITS: dict[str, int] = {"train": 0, "val": 1}
HFOV_DEG = 65.0

#: Folder names of the NYUv2-release layout, per stored array.
LAYOUT_FOLDERS = ("image", "label", "depth", "normal", "keypoints", "edges")

# Edge thresholds: a relative depth jump between neighbours, or a normal turn.
EDGE_DEPTH_REL = 0.1
EDGE_NORMAL_DEG = 45.0
# Soft edge maps: 1 on the contour, exp(-d^2 / 2 s^2) at Chebyshev distance d <= 2 px.
EDGE_SOFTNESS_PX = 1.1
# Keypoint blob size at the reference 64x128; scales with sqrt(area).
KEYPOINT_SIGMA_PX = 2.5

_EPS = 1e-6

Vec3 = tuple[float, float, float]


# --------------------------------------------------------------------------- params


@dataclass(frozen=True)
class SynthParams:
    """What determines a synthetic dataset (with GENERATOR_VERSION)."""

    n_train: int = 512
    n_val: int = 128
    height: int = 64
    width: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"synthetic params: {f.name} must be an integer, got {value!r}")
        for key in ("n_train", "n_val"):
            if getattr(self, key) < 1:
                raise UserError(f"synthetic params: {key} must be >= 1, got {getattr(self, key)}")
        for key in ("height", "width"):
            if getattr(self, key) < 8:
                raise UserError(f"synthetic params: {key} must be >= 8, got {getattr(self, key)}")
        if self.seed < 0:
            raise UserError(f"synthetic params: seed must be >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"synthetic params: unknown key {unknown[0]!r}; expected one of {sorted(known)}"
            )
        return cls(**data)

    def count(self, split: str) -> int:
        """Number of samples in `split`."""
        if split not in SPLITS:
            raise UserError(f"synthetic split {split!r} is unknown; expected one of {list(SPLITS)}")
        return self.n_train if split == "train" else self.n_val


# --------------------------------------------------------------------------- scene


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at `position` (world), turned by `yaw` about +Z (0 looks
    along +Y, positive turns right) and tilted down by `pitch` (radians)."""

    position: Vec3
    yaw: float = 0.0
    pitch: float = 0.0
    hfov_deg: float = HFOV_DEG

    def rotation(self) -> np.ndarray:
        """World-to-camera rotation: rows are the camera x (right), y (down), z (forward)."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        forward = np.array([sy * cp, cy * cp, -sp])
        right = np.array([cy, -sy, 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def intrinsics(self, height: int, width: int) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels, pixel centres at integer coordinates."""
        f = (width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)
        return f, f, (width - 1) / 2.0, (height - 1) / 2.0

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (K, 3) -> camera-frame points (K, 3)."""
        return (np.asarray(points, float) - np.asarray(self.position)) @ self.rotation().T

    def project(self, points: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """World points (K, 3) -> pixel coordinates (K, 2) as (u=column, v=row), and z (K,)."""
        pc = self.to_camera(points)
        fx, fy, cx, cy = self.intrinsics(height, width)
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([fx * pc[:, 0] / z + cx, fy * pc[:, 1] / z + cy], axis=1)
        return uv, z


@dataclass(frozen=True)
class Sphere:
    center: Vec3
    radius: float
    color: Vec3


@dataclass(frozen=True)
class Box:
    """Box with half extents `half` (local x, y, z), turned by `yaw` about +Z."""

    center: Vec3
    half: Vec3
    yaw: float
    color: Vec3

    def corners(self) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        local = signs * np.asarray(self.half)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return local @ rot.T + np.asarray(self.center)


@dataclass(frozen=True)
class Cylinder:
    """Upright cylinder (axis +Z) centred at `center`; capped at top and bottom."""

    center: Vec3
    radius: float
    half_height: float
    color: Vec3


Shape = Sphere | Box | Cylinder


@dataclass(frozen=True)
class Room:
    """Floor rectangle [x_min, x_max] x [y_min, y_max] at Z=0 and walls on the
    named sides ("left" X=x_min, "back" Y=y_max, "right" X=x_max), open on top."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    wall_height: float
    walls: tuple[str, ...] = ("left", "back", "right")
    floor_colors: tuple[Vec3, Vec3] = ((0.55, 0.5, 0.45), (0.3, 0.28, 0.25))
    checker: float = 0.5
    wall_colors: tuple[Vec3, Vec3] = ((0.9, 0.87, 0.78), (0.75, 0.72, 0.65))
    stripe: float = 0.3


@dataclass(frozen=True)
class Light:
    """Directional light: `direction` points from surfaces towards the light."""

    direction: Vec3 = (0.3, -0.4, 0.87)
    ambient: float = 0.4


@dataclass(frozen=True)
class Scene:
    camera: Camera
    room: Room | None
    objects: tuple[Shape, ...] = ()
    light: Light = field(default_factory=Light)
    sky: tuple[Vec3, Vec3] = ((0.55, 0.7, 0.95), (0.85, 0.9, 0.97))  # top, horizon
    noise: float = 0.0  # std of additive image noise (needs an rng at render time)

    def keypoints_3d(self) -> np.ndarray:
        """Box corners and sphere/cylinder centres (K, 3), world frame."""
        pts: list[np.ndarray] = []
        for obj in self.objects:
            if isinstance(obj, Box):
                pts.append(obj.corners())
            else:
                pts.append(np.asarray(obj.center, float)[None])
        return np.concatenate(pts) if pts else np.zeros((0, 3))


# --------------------------------------------------------------------------- sampling


def _hsv(rng: np.random.Generator, hue: tuple[float, float], sat: tuple[float, float],
         val: tuple[float, float]) -> Vec3:
    h = rng.uniform(*hue) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))
    return (r, g, b)


def _scaled(color: Vec3, k: float) -> Vec3:
    return (color[0] * k, color[1] * k, color[2] * k)


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random room, camera, light and 2-6 non-touching objects."""
    half_w = rng.uniform(2.0, 3.5)
    shift = rng.uniform(-0.5, 0.5)
    depth = rng.uniform(4.5, 8.0)
    walls = ("left", "back", "right") if rng.random() < 0.5 else (
        ("back", "left") if rng.random() < 0.5 else ("back", "right"))
    floor_a = _hsv(rng, (0.0, 1.0), (0.0, 0.15), (0.4, 0.65))
    wall_a = _hsv(rng, (0.05, 0.2), (0.05, 0.25), (0.75, 0.95))
    room = Room(
        x_min=-half_w + shift, x_max=half_w + shift, y_min=-2.0, y_max=depth,
        wall_height=rng.uniform(0.8, 1.5), walls=walls,
        floor_colors=(floor_a, _scaled(floor_a, rng.uniform(0.5, 0.75))),
        checker=rng.uniform(0.3, 0.6),
        wall_colors=(wall_a, _scaled(wall_a, rng.uniform(0.8, 0.9))),
        stripe=rng.uniform(0.15, 0.4),
    )
    camera = Camera(
        position=(rng.uniform(-0.4, 0.4), 0.0, rng.uniform(1.5, 2.0)),
        yaw=math.radians(rng.uniform(-12.0, 12.0)),
        pitch=math.radians(rng.uniform(10.0, 22.0)),
    )
    objects = _place_objects(rng, room, camera, int(rng.integers(2, 7)))
    az, el = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(35.0, 70.0))
    light = Light(
        direction=(math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)),
        ambient=rng.uniform(0.3, 0.5),
    )
    top = _hsv(rng, (0.55, 0.62), (0.3, 0.5), (0.8, 1.0))
    sky = (top, _hsv(rng, (0.55, 0.62), (0.02, 0.1), (0.9, 1.0)))
    return Scene(camera, room, tuple(objects), light, sky, noise=rng.uniform(0.01, 0.03))


def _place_objects(rng: np.random.Generator, room: Room, camera: Camera, n: int) -> list[Shape]:
    """Rejection-sample footprints (circles on the floor) that touch neither each
    other nor the walls, inside the camera's horizontal field of view."""
    placed: list[tuple[float, float, float]] = []  # x, y, footprint radius
    objects: list[Shape] = []
    tan_half = math.tan(math.radians(camera.hfov_deg) / 2.0) * 0.85
    cam_x, cam_y = camera.position[0], camera.position[1]
    for _ in range(60):
        if len(objects) == n:
            break
        kind = int(rng.integers(0, 3))
        if kind == 0:
            radius = rng.uniform(0.2, 0.5)
            foot = radius
        elif kind == 1:
            hx, hy, hz = rng.uniform(0.15, 0.45), rng.uniform(0.15, 0.45), rng.uniform(0.15, 0.5)
            foot = math.hypot(hx, hy)
        else:
            radius, half_h = rng.uniform(0.12, 0.35), rng.uniform(0.2, 0.6)
            foot = radius
        dist = rng.uniform(2.2, room.y_max - 0.5)
        ang = camera.yaw + rng.uniform(-1.0, 1.0) * math.atan(tan_half)
        x, y = cam_x + dist * math.sin(ang), cam_y + dist * math.cos(ang)
        margin = foot + 0.05
        if not (room.x_min + margin < x < room.x_max - margin and y < room.y_max - margin):
            continue
        if any(math.hypot(x - px, y - py) < foot + pr + 0.1 for px, py, pr in placed):
            continue
        placed.append((x, y, foot))
        if kind == 0:
            color = _hsv(rng, (-0.04, 0.07), (0.6, 0.9), (0.7, 1.0))
            objects.append(Sphere((x, y, radius), radius, color))
        elif kind == 1:
            color = _hsv(rng, (0.55, 0.68), (0.5, 0.85), (0.6, 0.95))
            objects.append(Box((x, y, hz), (hx, hy, hz), rng.uniform(0, math.pi / 2), color))
        else:
            color = _hsv(rng, (0.22, 0.38), (0.5, 0.85), (0.6, 0.95))
            objects.append(Cylinder((x, y, half_h), radius, half_h, color))
    return objects


# --------------------------------------------------------------------------- ray casting


@lru_cache(maxsize=16)
def _camera_rays(height: int, width: int, hfov_deg: float) -> np.ndarray:
    """Per-pixel ray directions (3, H*W) in the camera frame with z == 1, so a
    ray parameter t is directly the z-depth."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    u = (np.arange(width) - (width - 1) / 2.0) / f
    v = (np.arange(height) - (height - 1) / 2.0) / f
    rays = np.empty((3, height, width))
    rays[0] = u[None, :]
    rays[1] = v[:, None]
    rays[2] = 1.0
    rays.setflags(write=False)
    return rays.reshape(3, -1)


@dataclass
class _Primitive:
    """One surface: its intersection, and (for its own pixels) normal and albedo."""

    label: int
    hit: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    shade: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # points(3,M) -> normal, albedo


def _rect(axis: int, value: float, facing: float, a: int, a_lim: tuple[float, float], b: int,
          b_lim: tuple[float, float], albedo: Callable[[np.ndarray], np.ndarray],
          label: int) -> _Primitive:
    """Axis-aligned one-sided rectangle, e.g. the floor (axis Z, facing +1)."""

    def hit(o: np.ndarray, d: np.ndarray, _dd: np.ndarray) -> np.ndarray:
        den = d[axis]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - o[axis]) / den
            pa = o[a] + t * d[a]
            pb = o[b] + t * d[b]
        ok = (den * facing < 0) & (t > _EPS)
        ok &= (pa >= a_lim[0]) & (pa <= a_lim[1]) & (pb >= b_lim[0]) & (pb <= b_lim[1])
        return np.where(ok, t, np.inf)

    normal = np.zeros(3)
    normal[axis] = facing

    def shade(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_to(normal[:, None], p.shape), albedo(p)

    return _Primitive(label, hit, shade)


def _two_tone(c1: Vec3, c2: Vec3, pick: np.ndarray) -> np.ndarray:
    return np.where(pick[None, :], np.asarray(c1)[:, None], np.asarray(c2)[:, None])


def _room_primitives(room: Room) -> list[_Primitive]:
    def floor_albedo(p: np.ndarray) -> np.ndarray:
        s = room.checker
        pick = (np.floor(p[0] / s) + np.floor(p[1] / s)) % 2 == 0
        return _two_tone(*room.floor_colors, pick)

    def stripes(axis: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: _two_tone(*room.wall_colors, np.floor(p[axis] / room.stripe) % 2 == 0)

    xs, ys, h = (room.x_min, room.x_max), (room.y_min, room.y_max), (0.0, room.wall_height)
    prims = [_rect(2, 0.0, 1.0, 0, xs, 1, ys, floor_albedo, FLOOR)]
    if "back" in room.walls:
        prims.append(_rect(1, room.y_max, -1.0, 0, xs, 2, h, stripes(0), WALL))
    if "left" in room.walls:
        prims.append(_rect(0, room.x_min, 1.0, 1, ys, 2, h, stripes(1), WALL))
    if "right" in room.walls:
        prims.append(_rect(0, room.x_max, -1.0, 1, ys, 2, h, stripes(1), WALL))
    return prims


def _sphere(s: Sphere) -> _Primitive:
    c = np.asarray(s.center, float)
    color = np.asarray(s.color)[:, None]

    def hit(o: np.ndarray, d: np.ndarray, dd: np.ndarray) -> np.ndarray:
        oc = o - c
        b = d[0] * oc[0] + d[1] * oc[1] + d[2] * oc[2]
        disc = b * b - dd * (oc @ oc - s.radius**2)
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / dd
        return np.where((disc > 0) & (t > _EPS), t, np.inf)

    def shade(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = (p - c[:, None]) / s.radius
        # A soft highlight band keeps spheres' texture family distinct from flat paint.
        tone = 0.85 + 0.15 * np.cos(6.0 * n[2])
        return n, color * tone[None, :]

    return _Primitive(SPHERE, hit, shade)


def _box(bx: Box) -> _Primitive:
    c = np.asarray(bx.center, float)
    half = np.asarray(bx.half, float)
    cs, sn = math.cos(bx.yaw), math.sin(bx.yaw)
    color = np.asarray(bx.color)[:, None]

    def to_local(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return cs * v[0] + sn * v[1], -sn * v[0] + cs * v[1], v[2]

    def hit(o: np.ndarray, d: np.ndarray, _dd: np.ndarray) -> np.ndarray:
        ol = to_local(o - c)
        dl = to_local(d)
        near = np.full(d.shape[1], -np.inf)
        far = np.full(d.shape[1], np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(3):
                inv = 1.0 / dl[k]
                t1 = (-half[k] - ol[k]) * inv
                t2 = (half[k] - ol[k]) * inv
                near = np.maximum(near, np.minimum(t1, t2))
                far = np.minimum(far, np.maximum(t1, t2))
        return np.where((far >= near) & (near > _EPS), near, np.inf)

    def shade(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pl = np.stack(to_local(p - c[:, None])) / half[:, None]  # in [-1, 1]^3
        mag = np.abs(pl)
        face = np.argmax(mag, axis=0)
        nl = np.zeros_like(pl)
        cols = np.arange(pl.shape[1])
        nl[face, cols] = np.sign(pl[face, cols])
        n = np.stack([cs * nl[0] - sn * nl[1], sn * nl[0] + cs * nl[1], nl[2]])
        # Crate look: darker frame where a second local coordinate is near its face edge.
        second = np.sort(mag, axis=0)[1]
        tone = np.where(second > 0.82, 0.55, 1.0)
        return n, color * tone[None, :]

    return _Primitive(BOX, hit, shade)


def _cylinder(cy: Cylinder) -> _Primitive:
    c = np.asarray(cy.center, float)
    r, hh = cy.radius, cy.half_height
    color = np.asarray(cy.color)[:, None]
    band = 2.0 * hh / 4.0

    def hit(o: np.ndarray, d: np.ndarray, _dd: np.ndarray) -> np.ndarray:
        ox, oy, oz = o - c
        a = d[0] * d[0] + d[1] * d[1]
        b = d[0] * ox + d[1] * oy
        disc = b * b - a * (ox * ox + oy * oy - r * r)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            z = oz + t_side * d[2]
            side_ok = (disc > 0) & (t_side > _EPS) & (np.abs(z) <= hh)
            best = np.where(side_ok, t_side, np.inf)
            for cap in (hh, -hh):
                t_cap = (cap - oz) / d[2]
                px, py = ox + t_cap * d[0], oy + t_cap * d[1]
                ok = (t_cap > _EPS) & (px * px + py * py <= r * r) & (d[2] * cap < 0)
                best = np.minimum(best, np.where(ok, t_cap, np.inf))
        return best

    def shade(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = p - c[:, None]
        radial = np.hypot(q[0], q[1])
        on_cap = (hh - np.abs(q[2])) < (r - radial)
        n = np.where(on_cap[None, :], np.stack([0 * q[0], 0 * q[1], np.sign(q[2])]),
                     np.stack([q[0], q[1], 0 * q[2]]) / np.maximum(radial, 1e-12))
        tone = np.where(np.floor((q[2] + hh) / band) % 2 == 0, 1.0, 0.72)
        tone = np.where(on_cap, 0.9, tone)
        return n, color * tone[None, :]

    return _Primitive(CYLINDER, hit, shade)


def _primitives(scene: Scene) -> list[_Primitive]:
    prims = _room_primitives(scene.room) if scene.room is not None else []
    for obj in scene.objects:
        if isinstance(obj, Sphere):
            prims.append(_sphere(obj))
        elif isinstance(obj, Box):
            prims.append(_box(obj))
        elif isinstance(obj, Cylinder):
            prims.append(_cylinder(obj))
        else:  # pragma: no cover - Scene's type says this cannot happen
            raise TypeError(f"unknown shape {obj!r}")
    return prims


# --------------------------------------------------------------------------- rendering


def render_scene(scene: Scene, height: int, width: int,
                 rng: np.random.Generator | None = None, name: str = "") -> Sample:
    """Render every task's target for `scene`. Image noise is added only with `rng`."""
    n_pix = height * width
    rot = scene.camera.rotation()
    o = np.asarray(scene.camera.position, float)
    d = rot.T @ _camera_rays(height, width, scene.camera.hfov_deg)  # world dirs, cam z == 1
    dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]

    prims = _primitives(scene)
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
    edges = _edges(np.where(hit, t, np.inf).reshape(height, width), normal, seg)
    keypoints = _keypoints(scene, height, width)
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
    d = rot.T @ _camera_rays(height, width, scene.camera.hfov_deg)
    elev = d[2] / np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
    k = np.clip(elev * 3.0, 0.0, 1.0)[None, :]
    top, horizon = np.asarray(scene.sky[0])[:, None], np.asarray(scene.sky[1])[:, None]
    return horizon * (1.0 - k) + top * k


def _edges(z: np.ndarray, normal: np.ndarray, seg: np.ndarray) -> np.ndarray:
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


def _keypoints(scene: Scene, height: int, width: int) -> np.ndarray:
    """Max-combined unit-peak Gaussians at projected keypoints in front of the camera."""
    heat = np.zeros((height, width), dtype=np.float32)
    pts = scene.keypoints_3d()
    if len(pts) == 0:
        return heat
    uv, z = scene.camera.project(pts, height, width)
    sigma = KEYPOINT_SIGMA_PX * math.sqrt(height * width / (64.0 * 128.0))
    rad = math.ceil(3.0 * sigma)
    for (u, v), zi in zip(uv, z, strict=True):
        if not (zi > _EPS and 0.0 <= u <= width - 1 and 0.0 <= v <= height - 1):
            continue
        j0, j1 = max(int(u) - rad, 0), min(int(u) + rad + 2, width)
        i0, i1 = max(int(v) - rad, 0), min(int(v) + rad + 2, height)
        gx = np.exp(-((np.arange(j0, j1) - u) ** 2) / (2 * sigma * sigma))
        gy = np.exp(-((np.arange(i0, i1) - v) ** 2) / (2 * sigma * sigma))
        np.maximum(heat[i0:i1, j0:j1], np.outer(gy, gx), out=heat[i0:i1, j0:j1])
    return heat


def render_sample(params: SynthParams, split: str, index: int) -> Sample:
    """Sample `index` of `split`, regenerated from its own seed alone."""
    n = params.count(split)
    if not 0 <= index < n:
        raise IndexError(f"synthetic {split} index {index} out of range [0, {n})")
    rng = np.random.default_rng([params.seed, SPLITS[split], index])
    scene = sample_scene(rng)
    return render_scene(scene, params.height, params.width, rng, name=f"{split}/{index}")


# --------------------------------------------------------------------------- dataset files


def _manifest(params: SynthParams) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "params": params.to_dict(),
        "class_names": list(CLASS_NAMES),
    }


def _layout_arrays(sample: Sample) -> dict[str, np.ndarray]:
    """A Sample as the NYUv2 release stores it (label float with -1, HxWx1 maps)."""
    t = sample.targets
    return {
        "image": sample.image.astype(np.float32),
        "label": t["seg"].astype(np.float32),
        "depth": t["depth"][..., None].astype(np.float32),
        "normal": t["normal"].astype(np.float32),
        "keypoints": t["keypoints"][..., None].astype(np.float32),
        "edges": t["edges"][..., None].astype(np.float32),
    }


def _is_complete(root: Path, params: SynthParams) -> bool:
    meta = root / "synthetic.json"
    try:
        if json.loads(meta.read_text()) != _manifest(params):
            return False
    except (OSError, ValueError):
        return False
    for split in SPLITS:
        n = params.count(split)
        for folder in LAYOUT_FOLDERS:
            if not (root / split / folder / f"{n - 1}.npy").is_file():
                return False
    return True


def _write_into(tmp: Path, params: SynthParams,
                progress: Callable[[int, int], None] | None) -> None:
    total = params.n_train + params.n_val
    done = 0
    for split in SPLITS:
        for folder in LAYOUT_FOLDERS:
            (tmp / split / folder).mkdir(parents=True)
        for i in range(params.count(split)):
            for folder, arr in _layout_arrays(render_sample(params, split, i)).items():
                np.save(tmp / split / folder / f"{i}.npy", arr)
            done += 1
            if progress is not None:
                progress(done, total)
    # Written last: its presence inside the folder marks the content complete.
    atomic_write_json(tmp / "synthetic.json", _manifest(params))


def write_dataset(out: Path, params: SynthParams,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Write `{out}/{train,val}/{image,label,depth,normal,keypoints,edges}/{i}.npy`
    and `{out}/synthetic.json`; the folder appears whole or not at all.

    An existing complete copy with the same parameters is kept as is; any other
    existing non-empty `out` is refused rather than overwritten.
    """
    out = Path(out)
    if out.exists():
        if _is_complete(out, params):
            return out
        if not out.is_dir() or any(out.iterdir()):
            raise UserError(f"{out} already exists and is not this synthetic dataset; "
                            "expected a new or empty folder")
        out.rmdir()
    with atomic_dir(out) as tmp:
        _write_into(tmp, params, progress)
    if not _is_complete(out, params):
        raise UserError(f"{out} appeared while writing and is not this synthetic dataset")
    return out


def cache_root() -> Path:
    """`$EDGEMTL_CACHE` or `~/.cache/edgemtl`."""
    env = os.environ.get("EDGEMTL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgemtl"


def dataset_key(params: SynthParams) -> str:
    """16 hex digits of sha256 over the parameters and the generator version."""
    blob = json.dumps({"params": params.to_dict(), "generator_version": GENERATOR_VERSION},
                      sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive advisory lock so parallel workers build a dataset once; where
    fcntl is missing, the atomic rename alone keeps the result correct."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_dataset(params: SynthParams,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """Return the cached dataset folder for `params`, generating it once if needed.

    Safe when several processes call it at once (file lock + atomic rename).
    """
    final = cache_root() / "synthetic" / dataset_key(params)
    if _is_complete(final, params):
        return final
    with _locked(final.parent / f".{final.name}.lock"):
        if _is_complete(final, params):
            return final
        if final.exists():
            # A damaged copy (hand-edited?): move it aside, then rebuild.
            trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.stale.", dir=final.parent))
            os.replace(final, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        return write_dataset(final, params, progress)

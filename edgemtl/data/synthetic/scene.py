"""The scene description: camera, room, objects, light (world frame X right, Y forward, Z up)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgemtl.data.synthetic.params import HFOV_DEG

#: Smallest ray parameter / depth counted as "in front" (avoids self-hits at t = 0).
EPS = 1e-6

Vec3 = tuple[float, float, float]


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

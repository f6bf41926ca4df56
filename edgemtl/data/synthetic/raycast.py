"""Ray casting: each primitive's vectorised ray intersection, normal and albedo.

Every pixel's ray is intersected with every primitive at once (vectorised over
pixels); `render.render_scene` keeps the nearest hit per pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edgemtl.data.synthetic.params import BOX, CYLINDER, FLOOR, SPHERE, WALL
from edgemtl.data.synthetic.scene import EPS, Box, Cylinder, Room, Scene, Sphere, Vec3


@lru_cache(maxsize=16)
def camera_rays(height: int, width: int, hfov_deg: float) -> np.ndarray:
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


def _rect(
    axis: int,
    value: float,
    facing: float,
    a: int,
    a_lim: tuple[float, float],
    b: int,
    b_lim: tuple[float, float],
    albedo: Callable[[np.ndarray], np.ndarray],
    label: int,
) -> _Primitive:
    """Axis-aligned one-sided rectangle, e.g. the floor (axis Z, facing +1)."""

    def hit(o: np.ndarray, d: np.ndarray, _dd: np.ndarray) -> np.ndarray:
        den = d[axis]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - o[axis]) / den
            pa = o[a] + t * d[a]
            pb = o[b] + t * d[b]
        ok = (den * facing < 0) & (t > EPS)
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
        return np.where((disc > 0) & (t > EPS), t, np.inf)

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
        return np.where((far >= near) & (near > EPS), near, np.inf)

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
            side_ok = (disc > 0) & (t_side > EPS) & (np.abs(z) <= hh)
            best = np.where(side_ok, t_side, np.inf)
            for cap in (hh, -hh):
                t_cap = (cap - oz) / d[2]
                px, py = ox + t_cap * d[0], oy + t_cap * d[1]
                ok = (t_cap > EPS) & (px * px + py * py <= r * r) & (d[2] * cap < 0)
                best = np.minimum(best, np.where(ok, t_cap, np.inf))
        return best

    def shade(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = p - c[:, None]
        radial = np.hypot(q[0], q[1])
        on_cap = (hh - np.abs(q[2])) < (r - radial)
        n = np.where(
            on_cap[None, :],
            np.stack([0 * q[0], 0 * q[1], np.sign(q[2])]),
            np.stack([q[0], q[1], 0 * q[2]]) / np.maximum(radial, 1e-12),
        )
        tone = np.where(np.floor((q[2] + hh) / band) % 2 == 0, 1.0, 0.72)
        tone = np.where(on_cap, 0.9, tone)
        return n, color * tone[None, :]

    return _Primitive(CYLINDER, hit, shade)


def primitives(scene: Scene) -> list[_Primitive]:
    """The room's floor and walls, then one primitive per object, in scene order."""
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

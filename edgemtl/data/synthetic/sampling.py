"""Random scenes: room, camera, light and 2-6 non-touching objects from one rng."""

from __future__ import annotations

import colorsys
import math

import numpy as np

from edgemtl.data.synthetic.scene import (
    Box,
    Camera,
    Cylinder,
    Light,
    Room,
    Scene,
    Shape,
    Sphere,
    Vec3,
)


def _hsv(
    rng: np.random.Generator,
    hue: tuple[float, float],
    sat: tuple[float, float],
    val: tuple[float, float],
) -> Vec3:
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
    walls = (
        ("left", "back", "right")
        if rng.random() < 0.5
        else (("back", "left") if rng.random() < 0.5 else ("back", "right"))
    )
    floor_a = _hsv(rng, (0.0, 1.0), (0.0, 0.15), (0.4, 0.65))
    wall_a = _hsv(rng, (0.05, 0.2), (0.05, 0.25), (0.75, 0.95))
    room = Room(
        x_min=-half_w + shift,
        x_max=half_w + shift,
        y_min=-2.0,
        y_max=depth,
        wall_height=rng.uniform(0.8, 1.5),
        walls=walls,
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

"""The one class palette: `data show` and `predict` draw class c in the same colour.

Why a fixed table and not a matplotlib colormap sampled over n classes: the
colour of a class must not depend on how many classes a picture happens to
name, or two tools drawing the same label would disagree. Classes past the
table get hues spaced by the golden ratio, which never repeat.
"""

from __future__ import annotations

import colorsys

import numpy as np

#: Distinct label colours (RGB) for classes 0..19.
PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
        (170, 110, 40),
        (255, 250, 200),
        (128, 0, 0),
        (170, 255, 195),
        (128, 128, 0),
        (255, 215, 180),
        (0, 0, 128),
        (128, 128, 128),
    ],
    dtype=np.uint8,
)

_GOLDEN = 0.618033988749895


def class_colour(index: int) -> tuple[int, int, int]:
    """RGB (0..255) of class `index` (>= 0)."""
    if index < len(PALETTE):
        return tuple(int(x) for x in PALETTE[index])  # type: ignore[return-value]
    hue = (index * _GOLDEN) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def class_colours(n: int) -> np.ndarray:
    """n×3 uint8 RGB table of classes 0..n-1."""
    return np.array([class_colour(i) for i in range(max(n, 0))], dtype=np.uint8).reshape(-1, 3)

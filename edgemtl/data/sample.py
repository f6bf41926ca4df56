"""The one sample structure every reader returns.

Layout is channels-last, as the NYUv2 release stores it; `preprocess` moves it to
channels-first model tensors. Each task's dtype, trailing shape and invalid
marker are its kind's (`TaskKind.target_layout`, `invalid_value`; docs/formats.md
"Tasks"): seg -1 = ignore; depth 0 = invalid; normal zero vector = invalid;
keypoints/edges negative = invalid (readers with a validity mask write -1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    """image: H x W x 3 float32 in [0, 1]; targets: task key -> H x W [x 3] array."""

    image: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = ""


def normalize_index(index: int, length: int, split: str) -> int:
    """Python-style index into a split (negative counts from the end); IndexError past it."""
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"{split} index out of range [0, {length})")
    return index

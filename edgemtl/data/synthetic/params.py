"""What determines a synthetic dataset: its parameters, label set and splits.

`GENERATOR_VERSION` is part of the cache key (`cache.dataset_key`), so it is
bumped whenever rendered output changes for the same parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from edgemtl.core.errors import UserError

#: Bump whenever rendered output changes for the same parameters: it is part of
#: the cache key, so old caches are never mistaken for new ones.
GENERATOR_VERSION = 2

CLASS_NAMES: tuple[str, ...] = ("floor", "wall", "sphere", "box", "cylinder")
FLOOR, WALL, SPHERE, BOX, CYLINDER = range(len(CLASS_NAMES))

SPLITS: dict[str, int] = {"train": 0, "val": 1}
HFOV_DEG = 65.0


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

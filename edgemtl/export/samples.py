"""Inputs for parity checks and INT8 calibration: real samples of the run's dataset.

Why: a parity gate on random noise proves little (activations of real images
differ), and INT8 calibrated on noise is wrong. The split is rebuilt from the
checkpoint's/manifest's data record through the numpy readers (so it works on
a device without torch); random normalised inputs are the last resort and are
flagged (`kind == "random"`) so the manifest says so. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.data.preprocess import InputSpec, prepare_sample


@dataclass
class SampleSet:
    """Preprocessed images (N,3,H,W) and, for real data, model-layout targets (stacked)."""

    images: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    kind: str = "dataset"  # "dataset" | "random"
    split: str = ""
    reason: str = ""  # why random inputs were used

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batches(self, size: int) -> list[np.ndarray]:
        return [self.images[i : i + size] for i in range(0, len(self), size)]

    def target_batches(self, size: int) -> list[dict[str, np.ndarray]]:
        return [
            {k: v[i : i + size] for k, v in self.targets.items()} for i in range(0, len(self), size)
        ]


def random_inputs(spec: InputSpec, count: int, seed: int = 0, reason: str = "") -> SampleSet:
    """Normalised N(0,1) images: the last resort when the dataset cannot be read."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((count, 3, spec.height, spec.width)).astype(np.float32)
    return SampleSet(images, {}, "random", "", reason)


def load_samples(
    record: dict[str, Any] | None,
    spec: InputSpec,
    task_keys: Sequence[str],
    split: str,
    count: int,
    root: str | None = None,
    allow_random: bool = True,
) -> SampleSet:
    """The first `count` samples of `split`, preprocessed exactly as eval/profile do.

    When the data cannot be found (no record, missing root, generator failure)
    and `allow_random`, returns random inputs with the reason; else re-raises.
    """
    if count < 1:
        raise UserError(f"need at least 1 {split} sample, got {count}")
    try:
        if not record:
            raise UserError("the artifact records no dataset")
        from edgemtl.data.registry import open_split

        reader = open_split(record, split, list(task_keys), root=root)
        n = min(count, len(reader))
        if n == 0:
            raise UserError(f"split {split} is empty")
        items = [prepare_sample(reader[i], spec) for i in range(n)]
    except UserError as exc:
        if not allow_random:
            raise
        return random_inputs(spec, count, reason=str(exc))
    images = np.stack([x for x, _ in items]).astype(np.float32)
    keys = [k for k in task_keys if k in items[0][1]]
    targets = {k: np.stack([t[k] for _, t in items]) for k in keys}
    return SampleSet(images, targets, "dataset", split)

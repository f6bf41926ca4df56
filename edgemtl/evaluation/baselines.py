"""Trivial reference predictors, scored with the same loop as the model.

Why: "is this model any good?" needs a floor. The summary table shows what a
constant predictor fitted on the training split scores on the val split:
majority class, mean depth, mean normal, all-zero keypoints/edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgemtl.data.preprocess import InputSpec, prepare_targets
from edgemtl.data.registry import SplitReader
from edgemtl.evaluation.scoring import HeadsBlock, score_split
from edgemtl.core.tasks import TaskSpec

NAME = "(constant)"


def fit_constants(reader: SplitReader, specs: Sequence[TaskSpec], spec: InputSpec, limit: int = 256) -> dict[str, np.ndarray]:
    """Per task, the constant (per channel) a trivial predictor outputs."""
    counts: dict[str, np.ndarray] = {}
    sums: dict[str, np.ndarray] = {}
    n = min(limit, len(reader))
    for i in range(n):
        targets = prepare_targets(reader[i].targets, spec)
        for s in specs:
            t = targets[s.key]
            if s.kind == "seg":
                valid = t[(t >= 0) & (t < s.channels)]
                counts[s.key] = counts.get(s.key, np.zeros(s.channels)) + np.bincount(valid, minlength=s.channels)
            elif s.kind == "depth":
                valid = t[t > 0]
                sums[s.key] = sums.get(s.key, np.zeros(2)) + [valid.sum(), valid.size]
            elif s.kind == "normal":
                mask = np.abs(t).sum(axis=0) > 0
                sums[s.key] = sums.get(s.key, np.zeros(3)) + t[:, mask].sum(axis=1)
    constants: dict[str, np.ndarray] = {}
    for s in specs:
        if s.kind == "seg":
            # Log class priors: argmax is the majority class, and they make a sane output bias.
            freq = counts[s.key] / max(counts[s.key].sum(), 1)
            constants[s.key] = np.log(freq + 1e-3).astype(np.float32)
        elif s.kind == "depth":
            total, count = sums[s.key]
            constants[s.key] = np.array([total / max(count, 1)], dtype=np.float32)
        elif s.kind == "normal":
            mean = sums[s.key]
            constants[s.key] = (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)
        else:
            constants[s.key] = np.zeros(1, dtype=np.float32)
    return constants


def score_constants(
    train: SplitReader, val: SplitReader, specs: Sequence[TaskSpec], spec: InputSpec, limit: int | None = None
) -> HeadsBlock:
    constants = fit_constants(train, specs, spec)

    def infer(images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        n, _, h, w = images.shape
        return {NAME: {k: np.broadcast_to(v[None, :, None, None], (n, v.size, h, w)).copy() for k, v in constants.items()}}

    return score_split(infer, val, spec, specs, [NAME], limit=limit)

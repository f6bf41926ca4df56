"""Trivial reference predictors, scored with the same loop as the model.

Why: "is this model any good?" needs a floor. The summary table shows what a
constant predictor fitted on the training split scores on the val split:
majority class, mean depth, mean normal, all-zero keypoints/edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgemtl.core.tasks import TaskSpec
from edgemtl.data.preprocess import InputSpec, prepare_targets
from edgemtl.data.registry import SplitReader
from edgemtl.evaluation.scoring import HeadsBlock, score_split

NAME = "(constant)"


def fit_constants(
    reader: SplitReader, specs: Sequence[TaskSpec], spec: InputSpec, limit: int = 256
) -> dict[str, np.ndarray]:
    """Per task, the (C,) float32 constant a trivial predictor outputs (`TaskKind.constant_fit`:
    seg log class priors, mean depth, mean normal, zero maps), from the first `limit` samples."""
    fits = {s.key: s.task_kind.constant_fit(s.channels) for s in specs}
    for i in range(min(limit, len(reader))):
        targets = prepare_targets(reader[i].targets, spec)
        for key, fit in fits.items():
            fit.add(targets[key])
    return {key: fit.result() for key, fit in fits.items()}


def score_constants(
    train: SplitReader,
    val: SplitReader,
    specs: Sequence[TaskSpec],
    spec: InputSpec,
    limit: int | None = None,
) -> HeadsBlock:
    constants = fit_constants(train, specs, spec)

    def infer(images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        n, _, h, w = images.shape
        return {
            NAME: {
                k: np.broadcast_to(v[None, :, None, None], (n, v.size, h, w)).copy()
                for k, v in constants.items()
            }
        }

    return score_split(infer, val, spec, specs, [NAME], limit=limit)

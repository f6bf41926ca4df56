"""`keypoints`: a one-channel keypoint heatmap in [0, 1], negative = invalid.

Everything it needs is the base `TaskKind` (a dense regression map): `abs_err`,
an all-zero constant predictor, max-abs / relative-difference parity, a fixed
[0, 1] colour range. Loss: L1 (edgemtl/training/task_ops.py).
"""

from __future__ import annotations

from edgemtl.core.tasks.kind import TaskKind


class KeypointsKind(TaskKind):
    name = "keypoints"
    raw_output = "keypoints"
    decoded_output = "keypoints"
    meaning = "keypoint heatmap"

"""Task metrics (numpy only) and the multi-task summary delta_m.

Why numpy and no torch: the same code scores a checkpoint in `eval`, an ONNX
export in the parity check and a TensorRT engine in `profile` on a device that
has no PyTorch, so every figure in every table comes from one definition.

Convention (docs/formats.md "Metrics"): every metric is
accumulated over the whole split -- confusion matrix, sums, histograms -- and
never as an average of per-batch averages (MTAN's way), so the value does not
depend on the batch size or on how a split is sharded. Each metric's `state()`
holds only arrays that are *summable*: the state of two shards added element by
element is the state of their union, so distributed evaluation is one
`all_reduce(sum)` per array followed by `merge_state`.

Units: `miou`, `pixel_acc` and `within_*` are percent (0-100); angles are
degrees; `cosine` is a plain mean cosine similarity in [-1, 1]; errors are in
the target's own units. A metric that saw no valid pixel returns NaN.

Each kind's accumulator lives with its kind (edgemtl/core/tasks/seg.py, ...)
and is re-exported here; this module keeps what spans tasks: `MetricSet`,
`delta_m` and the registry-backed `METRICS` / `HIGHER_IS_BETTER` tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks import get_kind, kind_names, kinds, metric_info
from edgemtl.core.tasks.depth import DepthMetric
from edgemtl.core.tasks.metric_base import AbsErrMetric, TaskMetric
from edgemtl.core.tasks.normal import ANGLE_BIN_DEG, NormalMetric
from edgemtl.core.tasks.seg import SegMetric


class _Metrics(Mapping[str, tuple[str, ...]]):
    """Task kind -> metric names in display order, over the live kind registry."""

    def __getitem__(self, kind: str) -> tuple[str, ...]:
        if kind not in kind_names():
            raise KeyError(kind)
        return tuple(m.name for m in get_kind(kind).metrics)

    def __iter__(self) -> Iterator[str]:
        return iter(kind_names())

    def __len__(self) -> int:
        return len(kind_names())


class _Directions(Mapping[str, bool]):
    """Metric name -> higher is better, from the kinds that report it (`TaskKind.metrics`)."""

    def __getitem__(self, name: str) -> bool:
        info = metric_info(name)
        if info is None:
            raise KeyError(name)
        return info.higher_is_better

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(m.name for k in kinds() for m in k.metrics))

    def __len__(self) -> int:
        return len(list(iter(self)))


METRICS: Mapping[str, tuple[str, ...]] = _Metrics()
"""Task kind -> metric names, in display order."""

HIGHER_IS_BETTER: Mapping[str, bool] = _Directions()
"""Metric directions, read from the task kinds; delta_m and best-checkpoint selection use it."""

__all__ = [
    "ANGLE_BIN_DEG",
    "HIGHER_IS_BETTER",
    "METRICS",
    "AbsErrMetric",
    "DepthMetric",
    "MetricSet",
    "NormalMetric",
    "SegMetric",
    "TaskMetric",
    "delta_m",
    "metric_for",
]


def metric_for(kind: str, num_classes: int | None = None) -> TaskMetric:
    """The metric of a registered task kind; `num_classes` is required for seg only."""
    return get_kind(kind).metric(num_classes)


class MetricSet:
    """One metric per task, updated together and reported as {task: {metric: value}}.

    `tasks` maps a task key (e.g. "seg", "depth") to (kind, num_classes); the
    key names the task in results and state, the kind picks the metric.
    """

    def __init__(self, tasks: Mapping[str, tuple[str, int | None]]) -> None:
        self.metrics: dict[str, TaskMetric] = {
            key: metric_for(kind, classes) for key, (kind, classes) in tasks.items()
        }

    def update(self, preds: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray]) -> None:
        """Add one batch; every task needs a prediction and a target (extra keys are ignored)."""
        for key, metric in self.metrics.items():
            if key not in preds:
                raise UserError(
                    f"no prediction for task '{key}' (got {', '.join(preds) or 'none'})"
                )
            if key not in targets:
                raise UserError(f"no target for task '{key}' (got {', '.join(targets) or 'none'})")
            metric.update(preds[key], targets[key])

    def compute(self) -> dict[str, dict[str, float]]:
        return {key: metric.compute() for key, metric in self.metrics.items()}

    def state(self) -> dict[str, np.ndarray]:
        """Flat summable state, keys "task/name", ready for an all_reduce per array."""
        return {
            f"{key}/{name}": value
            for key, metric in self.metrics.items()
            for name, value in metric.state().items()
        }

    def merge_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Add a flat state from `state()` (e.g. the other shards' sum)."""
        per_task: dict[str, dict[str, np.ndarray]] = {key: {} for key in self.metrics}
        for flat_key, value in state.items():
            key, sep, name = flat_key.partition("/")
            if not sep or key not in per_task:
                raise ValueError(f"metric state key {flat_key!r} names no task of this set")
            per_task[key][name] = value
        for key, metric in self.metrics.items():
            metric.merge_state(per_task[key])

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()


def delta_m(
    result: Mapping[str, Mapping[str, float]], reference: Mapping[str, Mapping[str, float]]
) -> float:
    """Mean relative improvement over a reference, in percent; positive = better.

    delta_m = (100/T) sum_t (1/M_t) sum_m s_m (M_m - R_m) / R_m, s_m = +1 if the
    metric is higher-better and -1 otherwise (HIGHER_IS_BETTER). Only tasks and
    metrics present in both dicts count; entries that are not per-task dicts
    (e.g. a stored "delta_m") are ignored. A metric whose reference is 0 or
    non-finite is skipped (the ratio is undefined), and a task left with no
    metric is not counted in T. With nothing comparable the result is NaN.
    A NaN in `result` itself propagates: a broken model must not look neutral.
    The divisor is |R_m| (same as R_m for every metric but a negative mean
    cosine), so the sign keeps meaning "better" in every case.
    """
    task_terms: list[float] = []
    for task, metrics in result.items():
        ref_metrics = reference.get(task)
        if not isinstance(metrics, Mapping) or not isinstance(ref_metrics, Mapping):
            continue
        terms: list[float] = []
        for name, value in metrics.items():
            if name not in ref_metrics:
                continue
            if name not in HIGHER_IS_BETTER:
                raise UserError(f"delta_m: metric '{name}' of task '{task}' has no known direction")
            ref = float(ref_metrics[name])
            if ref == 0 or not math.isfinite(ref):
                continue
            sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
            terms.append(sign * (float(value) - ref) / abs(ref))
        if terms:
            task_terms.append(sum(terms) / len(terms))
    if not task_terms:
        return math.nan
    return 100.0 * sum(task_terms) / len(task_terms)

"""Task metrics (numpy only) and the multi-task summary delta_m.

Why numpy and no torch: the same code scores a checkpoint in `eval`, an ONNX
export in the parity check and a TensorRT engine in `profile` on a device that
has no PyTorch, so every figure in every table comes from one definition.

Convention (INTERFACES.md "Metrics", REFERENCE.md §3): every metric is
accumulated over the whole split -- confusion matrix, sums, histograms -- and
never as an average of per-batch averages (MTAN's way), so the value does not
depend on the batch size or on how a split is sharded. Each metric's `state()`
holds only arrays that are *summable*: the state of two shards added element by
element is the state of their union, so distributed evaluation is one
`all_reduce(sum)` per array followed by `merge_state`.

Units: `miou`, `pixel_acc` and `within_*` are percent (0-100); angles are
degrees; `cosine` is a plain mean cosine similarity in [-1, 1]; errors are in
the target's own units. A metric that saw no valid pixel returns NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from edgemtl.core.errors import UserError

METRICS: dict[str, tuple[str, ...]] = {
    "seg": ("miou", "pixel_acc"),
    "depth": ("abs_err", "rel_err"),
    "normal": ("mean_deg", "median_deg", "within_11_25", "within_22_5", "within_30", "cosine"),
    "keypoints": ("abs_err",),
    "edges": ("abs_err",),
}
"""Task kind -> metric names, in display order."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "miou": True,
    "pixel_acc": True,
    "abs_err": False,
    "rel_err": False,
    "mean_deg": False,
    "median_deg": False,
    "within_11_25": True,
    "within_22_5": True,
    "within_30": True,
    "cosine": True,
}
"""The one place metric directions live; delta_m and best-checkpoint selection read it."""

ANGLE_BIN_DEG = 0.001
"""Width of the normal-angle histogram bins; bounds the error of `median_deg`."""
_ANGLE_BINS = 180_000  # [0, 180] degrees in ANGLE_BIN_DEG steps; 180 itself goes in the last bin
_WITHIN_DEG = (("within_11_25", 11.25), ("within_22_5", 22.5), ("within_30", 30.0))


@runtime_checkable
class TaskMetric(Protocol):
    """What every task metric offers: accumulate, report, and a summable state."""

    names: tuple[str, ...]

    def update(self, pred: np.ndarray, target: np.ndarray) -> None: ...

    def compute(self) -> dict[str, float]: ...

    def state(self) -> dict[str, np.ndarray]: ...

    def merge_state(self, state: Mapping[str, np.ndarray]) -> None: ...

    def reset(self) -> None: ...


class _SummableState:
    """Shared state handling: named numpy arrays that add across shards."""

    names: tuple[str, ...] = ()
    _kind: str = ""

    def __init__(self) -> None:
        self._state: dict[str, np.ndarray] = {}
        self.reset()

    def _zero_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything seen so far (start of a new evaluation)."""
        self._state = self._zero_state()

    def state(self) -> dict[str, np.ndarray]:
        """Copies of the accumulators; add them across shards, then `merge_state`."""
        return {key: value.copy() for key, value in self._state.items()}

    def merge_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Add another shard's `state()` to this one (order does not matter)."""
        if set(state) != set(self._state):
            raise ValueError(
                f"{self._kind} metric state keys {sorted(state)} do not match {sorted(self._state)}"
            )
        for key, mine in self._state.items():
            other = np.asarray(state[key])
            if other.shape != mine.shape:
                raise ValueError(
                    f"{self._kind} metric state '{key}' has shape {other.shape}, expected {mine.shape}"
                )
            self._state[key] = mine + other.astype(mine.dtype, copy=False)


def _same_shape(kind: str, pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise UserError(
            f"{kind} metric: prediction shape {pred.shape} does not match target shape {target.shape}"
        )


def _nan_result(names: tuple[str, ...]) -> dict[str, float]:
    return {name: math.nan for name in names}


class SegMetric(_SummableState):
    """mIoU and pixel accuracy from a confusion matrix over the whole split.

    pred: integer labels (N,H,W); target: labels of the same shape where -1,
    any other negative value, any value >= num_classes and NaN are ignored.
    IoU_c = diag / (row + col - diag); mIoU averages only classes whose union is
    non-zero, so a class absent from both prediction and target does not count
    as 0 (nor as 100). pixel_acc = diag.sum / valid pixels.
    """

    names = METRICS["seg"]
    _kind = "seg"

    def __init__(self, num_classes: int) -> None:
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1
        ):
            raise UserError(
                f"seg metric: num_classes must be a positive integer, got {num_classes!r}"
            )
        self.num_classes = int(num_classes)
        super().__init__()

    def _zero_state(self) -> dict[str, np.ndarray]:
        return {"confusion": np.zeros((self.num_classes, self.num_classes), dtype=np.int64)}

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one batch; rows of the confusion matrix are target, columns prediction."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        _same_shape("seg", pred, target)
        if not np.issubdtype(pred.dtype, np.integer):
            raise UserError(
                f"seg metric: prediction must hold integer class labels, got dtype {pred.dtype}"
            )
        n = self.num_classes
        valid = (target >= 0) & (target < n)  # NaN compares False: ignored too
        p = pred[valid].astype(np.int64)
        if p.size and (p.min() < 0 or p.max() >= n):
            raise UserError(
                f"seg metric: predicted label outside [0, {n - 1}] (got {p.min()}..{p.max()}); "
                "check the number of classes"
            )
        t = target[valid].astype(np.int64)
        counts = np.bincount(t * n + p, minlength=n * n)
        self._state["confusion"] += counts.reshape(n, n)

    def compute(self) -> dict[str, float]:
        conf = self._state["confusion"]
        total = conf.sum()
        if total == 0:
            return _nan_result(self.names)
        diag = np.diag(conf).astype(np.float64)
        union = conf.sum(axis=0) + conf.sum(axis=1) - diag
        present = union > 0
        iou = diag[present] / union[present]
        return {
            "miou": float(100.0 * iou.mean()),
            "pixel_acc": float(100.0 * diag.sum() / total),
        }


class DepthMetric(_SummableState):
    """Absolute and relative depth error over valid pixels (target > 0).

    abs_err = sum|p - g| / n and rel_err = sum(|p - g| / g) / n, with n the
    number of valid pixels in the whole split. A non-finite prediction on a
    valid pixel makes the result NaN rather than being skipped.
    """

    names = METRICS["depth"]
    _kind = "depth"

    def _zero_state(self) -> dict[str, np.ndarray]:
        return {
            "abs_sum": np.zeros((), dtype=np.float64),
            "rel_sum": np.zeros((), dtype=np.float64),
            "count": np.zeros((), dtype=np.int64),
        }

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one batch of (N,1,H,W) predictions and targets."""
        pred = np.asarray(pred, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        _same_shape("depth", pred, target)
        valid = target > 0
        g = target[valid]
        err = np.abs(pred[valid] - g)
        self._state["abs_sum"] += err.sum()
        self._state["rel_sum"] += (err / g).sum()
        self._state["count"] += g.size

    def compute(self) -> dict[str, float]:
        n = int(self._state["count"])
        if n == 0:
            return _nan_result(self.names)
        return {
            "abs_err": float(self._state["abs_sum"] / n),
            "rel_err": float(self._state["rel_sum"] / n),
        }


class NormalMetric(_SummableState):
    """Angular error of surface normals, in degrees, over valid pixels.

    A pixel is valid where the target vector is non-zero. Both vectors are
    re-normalised (a zero prediction counts as 90 degrees: it points nowhere);
    angle = degrees(arccos(clip(dot, -1, 1))). mean_deg and cosine (mean of the
    clipped dot) come from exact sums; within_t counts angle < t (strict), in
    percent. median_deg comes from a summable histogram of 0.001-degree bins
    over [0, 180]: each middle order statistic is placed inside its bin by
    linear interpolation of its rank, so the median is within one bin
    (0.001 degree) of the exact whole-split median (half a bin when the angles
    sit at bin edges, e.g. exactly 0 -> 0.0005).
    """

    names = METRICS["normal"]
    _kind = "normal"

    def _zero_state(self) -> dict[str, np.ndarray]:
        state = {
            "angle_sum": np.zeros((), dtype=np.float64),
            "cos_sum": np.zeros((), dtype=np.float64),
            "count": np.zeros((), dtype=np.int64),
            "hist": np.zeros(_ANGLE_BINS, dtype=np.int64),
        }
        for name, _ in _WITHIN_DEG:
            state[name] = np.zeros((), dtype=np.int64)
        return state

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one batch of (N,3,H,W) predictions and targets."""
        pred = np.asarray(pred, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        _same_shape("normal", pred, target)
        if pred.ndim != 4 or pred.shape[1] != 3:
            raise UserError(f"normal metric: expected (N,3,H,W) arrays, got shape {pred.shape}")
        g_norm = np.linalg.norm(target, axis=1)
        valid = g_norm > 0  # zero (or NaN) target vector marks an invalid pixel
        g = np.moveaxis(target, 1, -1)[valid] / g_norm[valid][:, None]
        p = np.moveaxis(pred, 1, -1)[valid]
        p_norm = np.linalg.norm(p, axis=1)
        p = p / np.where(p_norm > 0, p_norm, 1.0)[:, None]
        cos = np.clip((p * g).sum(axis=1), -1.0, 1.0)
        angle = np.degrees(np.arccos(cos))
        self._state["angle_sum"] += angle.sum()
        self._state["cos_sum"] += cos.sum()
        self._state["count"] += angle.size
        for name, limit in _WITHIN_DEG:
            self._state[name] += np.count_nonzero(angle < limit)
        finite = angle[np.isfinite(angle)]  # a NaN prediction already poisons angle_sum
        bins = np.minimum((finite * (1.0 / ANGLE_BIN_DEG)).astype(np.int64), _ANGLE_BINS - 1)
        self._state["hist"] += np.bincount(bins, minlength=_ANGLE_BINS)

    def _order_statistic(self, rank: int) -> float:
        """Estimate the rank-th smallest angle (1-based) from the histogram."""
        hist = self._state["hist"]
        cum = np.cumsum(hist)
        b = int(np.searchsorted(cum, rank, side="left"))
        before = int(cum[b] - hist[b])
        return (b + (rank - before - 0.5) / int(hist[b])) * ANGLE_BIN_DEG

    def compute(self) -> dict[str, float]:
        n = int(self._state["count"])
        if n == 0 or not math.isfinite(float(self._state["angle_sum"])):
            return _nan_result(self.names)
        if n % 2:
            median = self._order_statistic((n + 1) // 2)
        else:
            median = 0.5 * (self._order_statistic(n // 2) + self._order_statistic(n // 2 + 1))
        result = {"mean_deg": float(self._state["angle_sum"] / n), "median_deg": float(median)}
        for name, _ in _WITHIN_DEG:
            result[name] = float(100.0 * int(self._state[name]) / n)
        result["cosine"] = float(self._state["cos_sum"] / n)
        return {name: result[name] for name in self.names}


class AbsErrMetric(_SummableState):
    """Mean absolute error for heatmap regression (keypoints, edges).

    Valid pixels are those with target >= 0 (a negative target marks invalid);
    abs_err = sum|p - g| / n over the whole split.
    """

    names = METRICS["keypoints"]
    _kind = "abs_err"

    def _zero_state(self) -> dict[str, np.ndarray]:
        return {"abs_sum": np.zeros((), dtype=np.float64), "count": np.zeros((), dtype=np.int64)}

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one batch of (N,1,H,W) predictions and targets."""
        pred = np.asarray(pred, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        _same_shape("abs_err", pred, target)
        valid = target >= 0
        self._state["abs_sum"] += np.abs(pred[valid] - target[valid]).sum()
        self._state["count"] += int(np.count_nonzero(valid))

    def compute(self) -> dict[str, float]:
        n = int(self._state["count"])
        if n == 0:
            return _nan_result(self.names)
        return {"abs_err": float(self._state["abs_sum"] / n)}


def metric_for(kind: str, num_classes: int | None = None) -> TaskMetric:
    """The metric for a task kind; `num_classes` is required for seg only."""
    if kind == "seg":
        if num_classes is None:
            raise UserError("seg metric: the number of classes is required")
        return SegMetric(num_classes)
    if kind == "depth":
        return DepthMetric()
    if kind == "normal":
        return NormalMetric()
    if kind in ("keypoints", "edges"):
        return AbsErrMetric()
    raise UserError(f"unknown task kind {kind!r}; expected one of {', '.join(METRICS)}")


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

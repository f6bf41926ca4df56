"""What every task metric shares: the protocol, summable state, and `abs_err`.

Conventions (docs/formats.md "Metrics"): every metric accumulates over the
whole split (confusion matrix, sums, histograms), never as a mean of per-batch
means, so the value does not depend on the batch size or on sharding. `state()`
holds only *summable* arrays: two shards' states added element by element are
the state of their union, so distributed evaluation is one `all_reduce(sum)`
per array and `merge_state`. A metric that saw no valid pixel returns NaN.
Each kind's own accumulator lives in its file (core/tasks/seg.py, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from edgemtl.core.errors import UserError


@runtime_checkable
class TaskMetric(Protocol):
    """What every task metric offers: accumulate, report, and a summable state."""

    names: tuple[str, ...]

    def update(self, pred: np.ndarray, target: np.ndarray) -> None: ...

    def compute(self) -> dict[str, float]: ...

    def state(self) -> dict[str, np.ndarray]: ...

    def merge_state(self, state: Mapping[str, np.ndarray]) -> None: ...

    def reset(self) -> None: ...


class SummableState:
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
                    f"{self._kind} metric state '{key}' has shape {other.shape}, "
                    f"expected {mine.shape}"
                )
            self._state[key] = mine + other.astype(mine.dtype, copy=False)


def same_shape(kind: str, pred: np.ndarray, target: np.ndarray) -> None:
    """UserError unless prediction and target have one shape."""
    if pred.shape != target.shape:
        raise UserError(
            f"{kind} metric: prediction shape {pred.shape} does not match target shape "
            f"{target.shape}"
        )


def nan_result(names: tuple[str, ...]) -> dict[str, float]:
    return {name: math.nan for name in names}


def pixels(arr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Values of N×C×H×W `arr` at the valid pixels of the N×H×W `mask` (every channel)."""
    return arr[np.broadcast_to(mask[:, None], arr.shape)]


def _non_negative(target: np.ndarray) -> np.ndarray:
    return target[:, 0] >= 0


class AbsErrMetric(SummableState):
    """Mean absolute error of a dense regression map (keypoints, edges, new map kinds).

    `valid` maps the N×C×H×W target to the N×H×W mask of defined pixels (the
    kind's rule; default: a negative first channel marks invalid); abs_err =
    sum|p - g| / n over the valid values of the whole split.
    """

    names = ("abs_err",)
    _kind = "abs_err"

    def __init__(self, valid: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self._valid = valid or _non_negative
        super().__init__()

    def _zero_state(self) -> dict[str, np.ndarray]:
        return {"abs_sum": np.zeros((), dtype=np.float64), "count": np.zeros((), dtype=np.int64)}

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one batch of (N,C,H,W) predictions and targets."""
        pred = np.asarray(pred, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        same_shape("abs_err", pred, target)
        mask = self._valid(target)
        p, g = pixels(pred, mask), pixels(target, mask)
        self._state["abs_sum"] += np.abs(p - g).sum()
        self._state["count"] += int(g.size)

    def compute(self) -> dict[str, float]:
        n = int(self._state["count"])
        if n == 0:
            return nan_result(self.names)
        return {"abs_err": float(self._state["abs_sum"] / n)}

"""Parity gates: prove an exported artifact computes what its reference computes.

Why numpy-only: the same gates run when exporting from a checkpoint (reference
= torch) and from a bundle on a device (reference = the FP32 ONNX). Every gated
number is recorded as {value, tolerance, op, passed} so the manifest shows the
proof and a failure prints the numbers.

Which numbers each task is gated on is its kind's choice (`TaskKind.parity_fp32`,
`parity_fp16`, `parity_int8`); the measures and default bounds (issue 4,
overridable through `Tolerances`) are in edgemtl/core/tasks/parity.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.manifest import Check
from edgemtl.core.tasks import TaskSpec
from edgemtl.core.tasks.parity import (
    Gate,
    Tolerances,
    label_agreement,
    max_abs,
    mean_angle_deg,
    rel_diff_percent,
)

__all__ = [
    "Tolerances",
    "all_passed",
    "as_jsonable",
    "compare_fp16",
    "compare_fp32",
    "compare_int8",
    "decode_all",
    "failures",
    "label_agreement",
    "max_abs",
    "mean_angle_deg",
    "metric_deltas",
    "rel_diff_percent",
    "summary",
]


def _check(value: float, tolerance: float, op: str) -> Check:
    value = float(value)
    ok = math.isfinite(value) and (value <= tolerance if op == "<=" else value >= tolerance)
    return Check(value=value, tolerance=float(tolerance), op=op, passed=ok)  # type: ignore[arg-type]


def _pair(
    task: TaskSpec, name: str, ref: Mapping[str, np.ndarray], cand: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    if name not in cand:
        raise UserError(
            f"output {name!r} of task {task.key} is missing from the exported graph "
            f"(it has {', '.join(sorted(cand))})"
        )
    a, b = np.asarray(cand[name]), np.asarray(ref[name])
    if a.shape != b.shape:
        raise UserError(
            f"output {name!r}: exported shape {list(a.shape)} != reference {list(b.shape)}"
        )
    return a, b


def _checks(gates: Mapping[str, Gate]) -> dict[str, Check]:
    return {name: _check(*gate) for name, gate in gates.items()}


def compare_fp32(
    tasks: Mapping[str, TaskSpec],
    outputs_mode: str,
    ref: Mapping[str, np.ndarray],
    cand: Mapping[str, np.ndarray],
    tol: Tolerances,
    unpool: bool = False,
) -> dict[str, dict[str, Check]]:
    """FP32 ONNX (cand) against torch (ref), per task (`TaskKind.parity_fp32`)."""
    result: dict[str, dict[str, Check]] = {}
    for key, task in tasks.items():
        a, b = _pair(task, task.output_name(outputs_mode), ref, cand)
        result[key] = _checks(task.task_kind.parity_fp32(a, b, tol, unpool))
    return result


def compare_fp16(
    tasks: Mapping[str, TaskSpec],
    outputs_mode: str,
    ref: Mapping[str, np.ndarray],
    cand: Mapping[str, np.ndarray],
    tol: Tolerances,
) -> dict[str, dict[str, Check]]:
    """FP16 ONNX (cand) against the FP32 ONNX (ref), per task (`TaskKind.parity_fp16`)."""
    result: dict[str, dict[str, Check]] = {}
    for key, task in tasks.items():
        a, b = _pair(task, task.output_name(outputs_mode), ref, cand)
        result[key] = _checks(task.task_kind.parity_fp16(a, b, tol))
    return result


def decode_all(
    tasks: Mapping[str, TaskSpec], outputs_mode: str, outputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Graph outputs by name -> decoded predictions by task key (what metrics consume)."""
    from edgemtl.core.tasks import decode_numpy

    return {
        key: decode_numpy(task, np.asarray(outputs[task.output_name(outputs_mode)]))
        for key, task in tasks.items()
    }


def compare_int8(
    ref_metrics: Mapping[str, Mapping[str, float]],
    cand_metrics: Mapping[str, Mapping[str, float]],
    tasks: Mapping[str, TaskSpec],
    tol: Tolerances,
) -> dict[str, dict[str, Check]]:
    """Gate on metric deltas as each kind chooses (`TaskKind.parity_int8`: seg mIoU drop in
    points, depth abs error rise in percent); tasks with no gate are left out.

    The other metrics' deltas are informative: see `metric_deltas`.
    """
    result: dict[str, dict[str, Check]] = {}
    for key, task in tasks.items():
        gates = task.task_kind.parity_int8(ref_metrics.get(key, {}), cand_metrics.get(key, {}), tol)
        if gates:
            result[key] = _checks(gates)
    return result


def metric_deltas(
    ref_metrics: Mapping[str, Mapping[str, float]], cand_metrics: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """candidate - reference for every metric both have, per task."""
    return {
        task: {
            m: float(cand_metrics[task][m]) - float(v)
            for m, v in per.items()
            if m in cand_metrics.get(task, {})
        }
        for task, per in ref_metrics.items()
        if isinstance(per, Mapping)
    }


def all_passed(checks: Mapping[str, Mapping[str, Check]]) -> bool:
    return all(c.passed for per in checks.values() for c in per.values())


def failures(checks: Mapping[str, Mapping[str, Check]]) -> list[str]:
    """'task metric value op tolerance' for every failed check, for the error line."""
    return [
        f"{task} {name} {c.value:.6g} (needs {c.op} {c.tolerance:g})"
        for task, per in checks.items()
        for name, c in per.items()
        if not c.passed
    ]


def summary(checks: Mapping[str, Mapping[str, Check]]) -> str:
    """Short text for the end table: the first gated number per task."""
    parts = []
    for task, per in checks.items():
        for name, c in list(per.items())[:1]:
            parts.append(f"{task} {name}={c.value:.3g}")
    return ", ".join(parts)


def as_jsonable(checks: Mapping[str, Mapping[str, Check]]) -> dict[str, Any]:
    return {t: {n: c.model_dump(mode="json") for n, c in per.items()} for t, per in checks.items()}

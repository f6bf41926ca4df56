"""Parity gates: prove an exported artifact computes what its reference computes.

Why numpy-only: the same gates run when exporting from a checkpoint (reference
= torch) and from a bundle on a device (reference = the FP32 ONNX). Every gated
number is recorded as {value, tolerance, op, passed} so the manifest shows the
proof and a failure prints the numbers.

Bounds (issue 4, overridable through `Tolerances`):
- FP32 vs torch: max abs <= 1e-3 on logits/depth/keypoints/edges; seg label
  agreement >= 99.9 % (unpool Teachers: 99.5 %, index ties; their max abs is
  bounded by `fp32_max_abs_unpool` instead); normal mean angle <= 0.1 deg.
- FP16 vs FP32: label agreement >= 99 %; depth/keypoints/edges mean relative
  difference <= 1 % (sum |a - b| / sum |b|, robust to near-zero pixels);
  normal mean angle <= 1 deg.
- INT8 vs FP32: task metrics on the samples; mIoU may drop <= 3 points, depth
  abs error may rise <= 10 %. Other metric deltas are recorded, not gated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.manifest import Check
from edgemtl.core.tasks import TaskSpec


@dataclass(frozen=True)
class Tolerances:
    fp32_max_abs: float = 1e-3
    fp32_max_abs_unpool: float = 0.25
    fp32_label_agreement: float = 99.9
    fp32_label_agreement_unpool: float = 99.5
    fp32_normal_deg: float = 0.1
    fp16_label_agreement: float = 99.0
    fp16_rel_diff: float = 1.0
    fp16_normal_deg: float = 1.0
    int8_miou_drop: float = 3.0
    int8_depth_abs_rise: float = 10.0

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, float] | None) -> Tolerances:
        """`overrides`: {field name: value}; an unknown name is a UserError listing the known ones."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(overrides or {}) - known)
        if bad:
            raise UserError(f"unknown tolerance {bad[0]!r}: expected one of {', '.join(sorted(known))}")
        return replace(cls(), **{k: float(v) for k, v in (overrides or {}).items()})


def _check(value: float, tolerance: float, op: str) -> Check:
    value = float(value)
    ok = math.isfinite(value) and (value <= tolerance if op == "<=" else value >= tolerance)
    return Check(value=value, tolerance=float(tolerance), op=op, passed=ok)  # type: ignore[arg-type]


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def label_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Percent of pixels with the same label; `a`, `b` are logits (N,C,H,W) or labels (N,H,W)."""
    la = np.argmax(a, axis=1) if a.ndim == 4 else a
    lb = np.argmax(b, axis=1) if b.ndim == 4 else b
    return 100.0 * float(np.mean(la == lb)) if la.size else 100.0


def mean_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Mean angle between normal fields (N,3,H,W), after L2-normalising both."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64 /= np.maximum(np.linalg.norm(a64, axis=1, keepdims=True), 1e-12)
    b64 /= np.maximum(np.linalg.norm(b64, axis=1, keepdims=True), 1e-12)
    cos = np.clip(np.sum(a64 * b64, axis=1), -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos))))


def rel_diff_percent(a: np.ndarray, b: np.ndarray) -> float:
    """100 * sum|a - b| / sum|b| (b is the reference)."""
    num = float(np.sum(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    den = float(np.sum(np.abs(b.astype(np.float64))))
    return 100.0 * num / max(den, 1e-12)


def _pair(task: TaskSpec, name: str, ref: Mapping[str, np.ndarray],
          cand: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if name not in cand:
        raise UserError(f"output {name!r} of task {task.key} is missing from the exported graph "
                        f"(it has {', '.join(sorted(cand))})")
    a, b = np.asarray(cand[name]), np.asarray(ref[name])
    if a.shape != b.shape:
        raise UserError(f"output {name!r}: exported shape {list(a.shape)} != reference {list(b.shape)}")
    return a, b


def compare_fp32(tasks: Mapping[str, TaskSpec], outputs_mode: str, ref: Mapping[str, np.ndarray],
                 cand: Mapping[str, np.ndarray], tol: Tolerances, unpool: bool = False
                 ) -> dict[str, dict[str, Check]]:
    """FP32 ONNX (cand) against torch (ref), per task."""
    limit = tol.fp32_max_abs_unpool if unpool else tol.fp32_max_abs
    agree = tol.fp32_label_agreement_unpool if unpool else tol.fp32_label_agreement
    result: dict[str, dict[str, Check]] = {}
    for key, task in tasks.items():
        a, b = _pair(task, task.output_name(outputs_mode), ref, cand)
        checks: dict[str, Check] = {}
        if task.kind == "seg":
            if a.ndim == 4:
                checks["max_abs"] = _check(max_abs(a, b), limit, "<=")
            checks["label_agreement"] = _check(label_agreement(a, b), agree, ">=")
        elif task.kind == "normal":
            checks["mean_angle_deg"] = _check(mean_angle_deg(a, b), tol.fp32_normal_deg, "<=")
        else:
            checks["max_abs"] = _check(max_abs(a, b), limit, "<=")
        result[key] = checks
    return result


def compare_fp16(tasks: Mapping[str, TaskSpec], outputs_mode: str, ref: Mapping[str, np.ndarray],
                 cand: Mapping[str, np.ndarray], tol: Tolerances) -> dict[str, dict[str, Check]]:
    """FP16 ONNX (cand) against the FP32 ONNX (ref), per task."""
    result: dict[str, dict[str, Check]] = {}
    for key, task in tasks.items():
        a, b = _pair(task, task.output_name(outputs_mode), ref, cand)
        if task.kind == "seg":
            result[key] = {"label_agreement": _check(label_agreement(a, b), tol.fp16_label_agreement, ">=")}
        elif task.kind == "normal":
            result[key] = {"mean_angle_deg": _check(mean_angle_deg(a, b), tol.fp16_normal_deg, "<=")}
        else:
            result[key] = {"rel_diff_percent": _check(rel_diff_percent(a, b), tol.fp16_rel_diff, "<=")}
    return result


def decode_all(tasks: Mapping[str, TaskSpec], outputs_mode: str,
               outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Graph outputs by name -> decoded predictions by task key (what metrics consume)."""
    from edgemtl.core.tasks import decode_numpy

    return {key: decode_numpy(task, np.asarray(outputs[task.output_name(outputs_mode)]))
            for key, task in tasks.items()}


def compare_int8(ref_metrics: Mapping[str, Mapping[str, float]],
                 cand_metrics: Mapping[str, Mapping[str, float]], tasks: Mapping[str, TaskSpec],
                 tol: Tolerances) -> dict[str, dict[str, Check]]:
    """Gate on metric deltas: seg mIoU drop (points), depth abs error rise (percent).

    The other metrics' deltas are informative: see `metric_deltas`.
    """
    result: dict[str, dict[str, Check]] = {}
    for key, task in tasks.items():
        ref, cand = ref_metrics.get(key, {}), cand_metrics.get(key, {})
        checks: dict[str, Check] = {}
        if task.kind == "seg" and "miou" in ref and "miou" in cand:
            checks["miou_drop"] = _check(ref["miou"] - cand["miou"], tol.int8_miou_drop, "<=")
        if task.kind == "depth" and "abs_err" in ref and "abs_err" in cand:
            rise = 100.0 * (cand["abs_err"] - ref["abs_err"]) / max(abs(ref["abs_err"]), 1e-12)
            checks["abs_err_rise_percent"] = _check(rise, tol.int8_depth_abs_rise, "<=")
        if checks:
            result[key] = checks
    return result


def metric_deltas(ref_metrics: Mapping[str, Mapping[str, float]],
                  cand_metrics: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """candidate - reference for every metric both have, per task."""
    return {task: {m: float(cand_metrics[task][m]) - float(v) for m, v in per.items()
                   if m in cand_metrics.get(task, {})}
            for task, per in ref_metrics.items() if isinstance(per, Mapping)}


def all_passed(checks: Mapping[str, Mapping[str, Check]]) -> bool:
    return all(c.passed for per in checks.values() for c in per.values())


def failures(checks: Mapping[str, Mapping[str, Check]]) -> list[str]:
    """'task metric value op tolerance' for every failed check, for the error line."""
    return [f"{task} {name} {c.value:.6g} (needs {c.op} {c.tolerance:g})"
            for task, per in checks.items() for name, c in per.items() if not c.passed]


def summary(checks: Mapping[str, Mapping[str, Check]]) -> str:
    """Short text for the end table: the first gated number per task."""
    parts = []
    for task, per in checks.items():
        for name, c in list(per.items())[:1]:
            parts.append(f"{task} {name}={c.value:.3g}")
    return ", ".join(parts)


def as_jsonable(checks: Mapping[str, Mapping[str, Check]]) -> dict[str, Any]:
    return {t: {n: c.model_dump(mode="json") for n, c in per.items()} for t, per in checks.items()}

"""Parity measures and bounds that task kinds gate exported artifacts with (numpy).

Why here and not in export/: each kind chooses its checks (`TaskKind.parity_*`)
and a kind is one file under core/tasks/. export/parity.py turns the returned
`Gate`s into manifest `Check`s. Bounds (docs/export.md, overridable by `--tol`):

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

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import numpy as np

from edgemtl.core.errors import UserError, excerpt

#: One gated number: (value, tolerance, op) with op "<=" or ">=".
Gate = tuple[float, float, str]


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
        """`overrides`: {field name: value}; an unknown name is a UserError listing known ones."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(overrides or {}) - known)
        if bad:
            raise UserError(
                f"unknown tolerance {excerpt(bad[0])}: expected one of {', '.join(sorted(known))}"
            )
        return replace(cls(), **{k: float(v) for k, v in (overrides or {}).items()})


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

"""Which artifact to ship: the latency-vs-Δm Pareto front and the pick for a latency budget.

Every profiled artifact with accuracy gets one point: its p50 latency at the
smallest profiled batch (ms, lower is better) and its Δm (%, higher is
better; docs/formats.md "delta_m") against ONE reference shared by all points:
the `--reference` results when given, else the profiled Teacher FP32 ONNX
artifact (docs/profile.md "Choosing an artifact"). An artifact is on the front
when no other is at least as fast and at least as accurate, and strictly
better in one. `--budget-ms X` picks the most accurate artifact whose latency
is at most X (ties: the faster). Torch-free, pure functions of the result dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from edgemtl.core.errors import UserError
from edgemtl.core.heads import TEACHER
from edgemtl.evaluation.metrics import delta_m


@dataclass(frozen=True)
class Point:
    """One artifact on the latency (ms) / Δm (%) plane."""

    label: str
    latency_ms: float
    delta_m: float
    front: bool = False


def _latency_row(artifact: dict[str, Any]) -> dict[str, Any] | None:
    timed = [row for row in artifact.get("rows", []) if "latency" in row]
    return min(timed, key=lambda row: row["batch"]) if timed else None


def teacher_reference(artifacts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The profiled Teacher FP32 artifact with accuracy (ONNX preferred), or None."""
    candidates = [
        a
        for a in artifacts
        if a.get("head") == TEACHER and a.get("precision") == "fp32" and a.get("heads")
    ]
    candidates.sort(key=lambda a: a.get("format") != "onnx")
    return candidates[0] if candidates else None


def reference_for(result: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(label, {task: {metric: value}}) every point's Δm is measured against, or None.

    `--reference` (the result's `reference` block: label and metrics) wins; else the
    profiled Teacher FP32 artifact.
    """
    artifacts = result.get("artifacts", [])
    explicit = result.get("reference")
    if explicit:
        return explicit["label"], explicit["metrics"]
    teacher = teacher_reference(artifacts)
    if teacher is None:
        return None
    return teacher["label"], teacher["heads"][teacher["head"]]


def front(points: Sequence[Point]) -> list[Point]:
    """`points` with `front` set: not dominated in (lower latency, higher Δm)."""
    out = []
    for p in points:
        dominated = any(
            q.latency_ms <= p.latency_ms
            and q.delta_m >= p.delta_m
            and (q.latency_ms < p.latency_ms or q.delta_m > p.delta_m)
            for q in points
            if q is not p
        )
        out.append(Point(p.label, p.latency_ms, p.delta_m, not dominated))
    return out


def pick(points: Sequence[Point], budget_ms: float) -> Point | None:
    """The most accurate point with latency <= `budget_ms` (ties: faster), or None."""
    fits = [p for p in points if p.latency_ms <= budget_ms]
    return max(fits, key=lambda p: (p.delta_m, -p.latency_ms)) if fits else None


def analyse(result: dict[str, Any], budget_ms: float | None = None) -> dict[str, Any] | None:
    """The `pareto` block of a profile result (None when no point can be placed).

    {"reference": label, "batch": b, "points": [Point...], "budget_ms": X,
    "pick": label | None}. Raises `UserError` when `budget_ms` is set but there is
    no accuracy, or no shared reference to measure Δm against.
    """
    artifacts = result.get("artifacts", [])
    scored = [a for a in artifacts if a.get("heads")]
    if budget_ms is not None and not scored:
        raise UserError(
            "--budget-ms needs accuracy to compare artifacts: add --accuracy (or --data ROOT)"
        )
    reference = reference_for(result)
    if reference is None:
        if budget_ms is not None:
            raise UserError(
                "--budget-ms needs a Δm reference: profile the Teacher's FP32 artifact "
                "along with the others, or pass --reference RUN_OR_JSON"
            )
        return None
    label, metrics = reference
    points, batch = [], None
    for art in scored:
        row = _latency_row(art)
        if row is None:
            continue
        batch = row["batch"] if batch is None else min(batch, row["batch"])
        value = delta_m(art["heads"][art["head"]], metrics)
        points.append(Point(art["label"], float(row["latency"]["median_ms"]), float(value)))
    if not points:
        return None
    points = front(points)
    chosen = pick(points, budget_ms) if budget_ms is not None else None
    return {
        "reference": label,
        "batch": batch,
        "points": [asdict(p) for p in points],
        "budget_ms": budget_ms,
        "pick": chosen.label if chosen else None,
    }


def budget_message(block: dict[str, Any]) -> str:
    """One line naming the pick for `--budget-ms`, or saying that nothing fits."""
    budget = block["budget_ms"]
    points = {p["label"]: p for p in block["points"]}
    if block["pick"] is None:
        fastest = min(points.values(), key=lambda p: p["latency_ms"])
        return (
            f"no profiled artifact meets --budget-ms {budget:g} on this device (fastest: "
            f"{fastest['label']} at {fastest['latency_ms']:.3g} ms)"
        )
    chosen = points[block["pick"]]
    return (
        f"within {budget:g} ms: {chosen['label']} (p50 {chosen['latency_ms']:.3g} ms at batch "
        f"{block['batch']}, Δm {chosen['delta_m']:+.2f} % vs {block['reference']})"
    )

"""The Pareto front, `--budget-ms` and the latency-vs-Δm plot, from profile reports with known
numbers (docs/profile.md "Choosing an artifact")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.core.options import DataSource
from edgemtl.deploy import plot
from edgemtl.deploy.profile import pareto
from edgemtl.deploy.profile.command import ProfileOptions

TEACHER = {"seg": {"miou": 80.0}, "depth": {"abs_err": 0.5}}


def _metrics(miou: float, err: float) -> dict[str, dict[str, float]]:
    return {"seg": {"miou": miou}, "depth": {"abs_err": err}}


def _artifact(label: str, ms: float, metrics: dict | None, seed: int = 0) -> dict[str, Any]:
    head, precision, fmt = label.split()[:3]
    times = (ms * (1 + 0.05 * np.random.default_rng(seed).standard_normal(50))) * 1e6
    art: dict[str, Any] = {
        "label": label,
        "head": head,
        "precision": precision,
        "format": fmt,
        "rows": [
            {
                "batch": 1,
                "latency": {"median_ms": ms},
                "times_ns": {"wall": times.tolist(), "compute": None},
            }
        ],
    }
    if metrics is not None:
        art["heads"] = {head: metrics}
    return art


def _report() -> dict[str, Any]:
    arts = [
        _artifact("teacher fp32 onnx", 20.0, TEACHER, 1),
        _artifact("teacher int8 onnx", 10.5, _metrics(79.0, 0.52), 2),  # Δm -1.625
        _artifact("exit2 fp32 onnx", 10.0, _metrics(79.6, 0.51), 3),  # Δm -0.65: beats teacher int8
        _artifact("student fp32 onnx", 4.0, _metrics(76.0, 0.55), 4),  # Δm -7.5
        _artifact("student fp16 onnx", 4.2, _metrics(76.0, 0.55), 5),  # same Δm, slower: dominated
        _artifact("student int8 onnx", 3.0, _metrics(72.0, 0.60), 6),  # Δm -15
    ]
    return {"artifacts": arts, "conditions": {}, "environment": {"cpu": "test cpu"}}


def test_front_marks_the_non_dominated_artifacts() -> None:
    block = pareto.analyse(_report())
    assert block is not None and block["reference"] == "teacher fp32 onnx"
    front = {p["label"] for p in block["points"] if p["front"]}
    assert front == {
        "teacher fp32 onnx",
        "exit2 fp32 onnx",
        "student fp32 onnx",
        "student int8 onnx",
    }
    dm = {p["label"]: p["delta_m"] for p in block["points"]}
    assert dm["teacher fp32 onnx"] == 0.0
    assert dm["exit2 fp32 onnx"] == pytest.approx(100 * (-0.4 / 80 - 0.01 / 0.5) / 2)
    assert dm["student int8 onnx"] == pytest.approx(100 * (-8 / 80 - 0.1 / 0.5) / 2)


@pytest.mark.parametrize(
    ("budget", "pick"),
    [
        (25.0, "teacher fp32 onnx"),
        (10.0, "exit2 fp32 onnx"),
        (9.5, "student fp32 onnx"),
        (4.1, "student fp32 onnx"),
        (3.5, "student int8 onnx"),
        (2.0, None),
    ],
)
def test_budget_picks_the_most_accurate_artifact_within_it(budget: float, pick: str | None) -> None:
    block = pareto.analyse(_report(), budget_ms=budget)
    assert block is not None and block["pick"] == pick
    message = pareto.budget_message(block)
    if pick is None:
        assert message.startswith(f"no profiled artifact meets --budget-ms {budget:g}")
        assert "student int8 onnx at 3 ms" in message
    else:
        assert (
            message.startswith(f"within {budget:g} ms: {pick}")
            and "vs teacher fp32 onnx" in message
        )


def test_explicit_reference_wins_over_the_profiled_teacher() -> None:
    report = _report()
    report["reference"] = {"label": "runs/x#teacher", "metrics": _metrics(60.0, 1.0)}
    block = pareto.analyse(report, budget_ms=3.5)
    assert block is not None and block["reference"] == "runs/x#teacher"
    assert {p["label"]: p["delta_m"] for p in block["points"]}["teacher fp32 onnx"] > 0


def test_budget_without_a_reference_or_accuracy_is_one_line() -> None:
    report = _report()
    report["artifacts"] = [a for a in report["artifacts"] if a["head"] != "teacher"]
    assert pareto.analyse(report) is None  # no front without a shared reference
    with pytest.raises(UserError, match="--budget-ms needs a Δm reference"):
        pareto.analyse(report, budget_ms=5.0)
    for art in report["artifacts"]:
        del art["heads"]
    with pytest.raises(UserError, match="--budget-ms needs accuracy"):
        pareto.analyse(report, budget_ms=5.0)
    with pytest.raises(UserError, match="--budget-ms needs accuracy"):
        ProfileOptions(budget_ms=5.0)
    with pytest.raises(UserError, match="--budget-ms -1"):
        ProfileOptions(budget_ms=-1.0, data=DataSource("x"))


def test_plot_labels_every_point_without_overlap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = _report()
    report["pareto"] = pareto.analyse(report, budget_ms=5.0)
    fig, ax, texts = plot.plot_figure(report)
    assert [t.get_text() for t in texts] == [a["label"] for a in report["artifacts"]]
    boxes = plot.label_boxes(fig, texts)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert "↑" in ax.get_ylabel() and "Δm vs teacher fp32 onnx" in ax.get_ylabel()
    assert "ms" in ax.get_xlabel() and "↓" in ax.get_xlabel()
    plot.write_plot(report, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""`profile` flags an artifact slower than a higher-precision sibling of its bundle."""

from __future__ import annotations

from typing import Any

from edgemtl.deploy.profile.siblings import MARGIN, flag_slower


def _artifact(path: str, precision: str, p50: dict[int, float], fmt: str = "onnx") -> dict:
    rows: list[dict[str, Any]] = [
        {"batch": b, "latency": {"median_ms": ms}} for b, ms in p50.items()
    ]
    rows.append({"batch": 16, "skipped": "fixed batch 1"})
    head = "student"
    return {
        "label": f"{head} {precision} {fmt}",
        "path": f"{path}/{head}.{precision}.{fmt}",
        "head": head,
        "format": fmt,
        "precision": precision,
        "rows": rows,
    }


def test_int8_slower_than_fp32_is_flagged_per_batch() -> None:
    fp32 = _artifact("b", "fp32", {1: 3.0, 4: 10.0})
    fp16 = _artifact("b", "fp16", {1: 2.5, 4: 9.0})
    int8 = _artifact("b", "int8", {1: 3.3, 4: 9.1})
    warnings: list[str] = []
    flag_slower([fp32, fp16, int8], warnings)
    # batch 1: slower than both; the fastest higher-precision sibling (fp16) is named
    assert int8["rows"][0]["slower_than"] == {
        "label": "student fp16 onnx",
        "precision": "fp16",
        "ratio": 1.32,
    }
    assert "slower_than" not in int8["rows"][1]  # 9.1 vs 9.0: within the noise margin
    assert all("slower_than" not in row for a in (fp32, fp16) for row in a["rows"])
    assert warnings == [
        "student int8 onnx batch 1: p50 3.30 ms is 1.32x the student fp16 onnx (2.50 ms): "
        "int8 does not pay on this device"
    ]


def test_only_siblings_of_one_bundle_and_format_compare() -> None:
    other_bundle = _artifact("a", "fp32", {1: 1.0})
    engine = _artifact("b", "fp32", {1: 1.0}, fmt="trt")
    int8 = _artifact("b", "int8", {1: 2.0})
    warnings: list[str] = []
    flag_slower([other_bundle, engine, int8], warnings)
    assert warnings == [] and "slower_than" not in int8["rows"][0]


def test_margin_boundary() -> None:
    fp32 = _artifact("b", "fp32", {1: 1.0})
    just_within = _artifact("b", "int8", {1: 1.0 + MARGIN})
    flag_slower([fp32, just_within], [])
    assert "slower_than" not in just_within["rows"][0]
    beyond = _artifact("b", "int8", {1: 1.0 + 2 * MARGIN})
    flag_slower([fp32, beyond], [])
    assert beyond["rows"][0]["slower_than"]["ratio"] == round(1 + 2 * MARGIN, 3)

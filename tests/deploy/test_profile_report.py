"""`edgemtl profile`'s terminal report fits 80 columns with no truncated cell, on a real result.

The result comes from profiling real ONNX bundles (toy graphs, ONNX Runtime) at two batch
sizes, with the per-frame stages; its accuracy, Pareto front and power fields are then
filled with the values a 5-task run on a GPU would give, so every column the report can
show is there. Everything the terminal leaves out stays in --json and --markdown.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from edgemtl.core.tables import fmt
from edgemtl.deploy import report
from edgemtl.deploy.profile import pareto
from edgemtl.deploy.profile.command import profile_command
from edgemtl.deploy.report_terminal import print_table
from tests.helpers.profiling import fast
from tests.helpers.toy_bundle import make_toy_bundle

TASKS = {
    "seg": {"miou": 61.6, "pixel_acc": 90.1},
    "depth": {"abs_err": 0.3763, "rel_err": 0.11},
    "normal": {"mean_deg": 19.15, "median_deg": 15.2},
    "keypoints": {"abs_err": 0.02402},
    "edges": {"abs_err": 0.04404},
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("report")
    bundles = [make_toy_bundle(root / "s", "student"), make_toy_bundle(root / "t", "teacher")]
    result = profile_command(bundles, fast(batches=[1, 4]))
    for i, art in enumerate(result["artifacts"]):
        scale = 1 + 0.1 * i
        block = {t: {m: v * scale for m, v in ms.items()} for t, ms in TASKS.items()}
        art["heads"] = {art["head"]: block}
        art["samples"] = 128
        if art["head"] == "student":
            art["reference"] = "teacher fp32 onnx"
            art["deltas"] = {"delta_m": -11.47}
        for row in art["rows"]:
            row["power"] = {"measured": True, "mean_w": 17.25 + i, "mj_per_image": 93.4 + i}
    result["pareto"] = pareto.analyse(result)
    return result


def render(result: dict, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    print_table(result, console)
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_report_fits_without_truncating_a_cell(result: dict, width: int) -> None:
    text = render(result, width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    assert "…" not in text, text
    for art in result["artifacts"]:
        assert art["label"] in text and Path(art["path"]).name in text
        for row in art["rows"]:
            lat = row["latency"]
            for cell in (
                f"{lat['median_ms']:.2f}",
                f"{lat['p99_ms']:.2f}",
                f"{lat['images_per_s']:.1f}",
                f"{row['power']['mj_per_image']:.1f}",
            ):
                assert cell in text, (art["label"], cell)
        block = art["heads"][art["head"]]
        for task, metrics in block.items():
            assert fmt(next(iter(metrics.values()))) in text, task
        frame = art["frame_pipeline"]
        assert f"{frame['total_ms']:.2f}" in text
    # Every Δm names what it is measured against; the front mark is explained.
    assert "Δm % ↑ vs teacher fp32 onnx: student fp32 onnx" in text
    assert re.search(r"^\* .*teacher fp32 onnx", text, re.M)
    assert "on the Pareto front of p50 latency (batch 1) and Δm % ↑ vs teacher fp32 onnx" in text


def test_empty_columns_are_left_out_but_stay_in_markdown(result: dict) -> None:
    bare = {**result, "pareto": None}
    bare["artifacts"] = [
        {
            **{k: v for k, v in art.items() if k not in ("heads", "deltas", "frame_pipeline")},
            "rows": [
                {**row, "power": {"measured": False, "reason": "no tegrastats (not a Jetson)"}}
                for row in art["rows"]
            ],
        }
        for art in result["artifacts"]
    ]
    text = render(bare, 80)
    for gone in ("mJ/img", "Δm", "accuracy", "per frame"):
        assert gone not in text, gone
    assert "power: not measured (no tegrastats (not a Jetson))" in text
    header, body = report.rows(result)  # the full table keeps every column
    for name in ("power W", "mJ/img", "Δm %", "Δm vs", "Pareto front", "frame ms", "infer ms"):
        assert name in header
    assert len(body) == sum(len(a["rows"]) for a in result["artifacts"])

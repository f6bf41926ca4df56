"""Acceptance on the shared tiny checkpoint: its exported Student/Teacher FP32+INT8 ONNX,
profiled at once.

FP32 ONNX accuracy must agree with `eval` on the checkpoint (same split, same
metric code) within 0.1 mIoU point and 0.5 % relative on every regression metric.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from edgemtl.core.errors import UserError
from edgemtl.core.options import ArtifactChoice, DataSource, OutputFiles
from edgemtl.deploy.profile.command import profile_command
from tests.helpers.profiling import fast

LIMIT = 8


@pytest.fixture(scope="module")
def bundles(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgemtl.export.options import ExportOptions
    from edgemtl.training.export.command import export_command

    root = tmp_path_factory.mktemp("exp")
    out = {}
    for head in ("student", "teacher"):
        out[head] = root / head
        options = ExportOptions(
            head=head, int8=True, calib=8, samples=4, out=out[head], trt=False, quiet=True
        )
        export_command(tiny_checkpoint, options)
    return out


def test_student_teacher_fp32_int8_in_one_call(
    bundles: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from edgemtl.training.evaluate import evaluate_checkpoint

    report = tmp_path / "r.json"
    profile_command(
        [bundles["student"], bundles["teacher"]],
        fast(
            iterations=4,
            accuracy=True,
            data=DataSource(limit=LIMIT),
            output=OutputFiles(json=str(report), plot=str(tmp_path / "pareto.png")),
        ),
    )
    data = json.loads(report.read_text())
    by_label = {a["label"]: a for a in data["artifacts"]}
    assert set(by_label) == {
        "student fp32 onnx",
        "student int8 onnx",
        "teacher fp32 onnx",
        "teacher int8 onnx",
    }
    for art in data["artifacts"]:
        (row,) = art["rows"]
        for key in (
            "min_ms",
            "mean_ms",
            "median_ms",
            "p90_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
            "cv_percent",
            "images_per_s",
        ):
            assert math.isfinite(row["latency"][key])
    # INT8 rows carry deltas against their FP32 sibling.
    assert by_label["student int8 onnx"]["reference"] == "student fp32 onnx"
    assert "delta_m" in by_label["student int8 onnx"]["deltas"]
    # The Student graph is lighter than the Teacher's, in both precisions.
    for prec in ("fp32", "int8"):
        s, t = by_label[f"student {prec} onnx"], by_label[f"teacher {prec} onnx"]
        assert s["params"] < t["params"] and s["flops"] < t["flops"]
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # FP32 ONNX agrees with `eval` on the checkpoint.
    for head in ("student", "teacher"):
        want = evaluate_checkpoint(tiny_checkpoint, head, limit=LIMIT)["heads"][head]
        got = by_label[f"{head} fp32 onnx"]["heads"][head]
        for task, metrics in want.items():
            if not isinstance(metrics, dict):
                continue
            for name, value in metrics.items():
                if name in ("miou", "pixel_acc"):
                    assert abs(got[task][name] - value) <= 0.1, (head, task, name)
                else:
                    assert got[task][name] == pytest.approx(value, rel=5e-3, abs=1e-6), (
                        head,
                        task,
                        name,
                    )


def test_checkpoint_runner_batch_sweep(tiny_checkpoint: Path) -> None:
    student = ArtifactChoice(head="student")
    result = profile_command([tiny_checkpoint], fast(iterations=4, select=student, batches=[1, 2]))
    (art,) = result["artifacts"]
    assert art["format"] == "torch" and art["runner"] == "torch-cpu" and art["params"] > 0
    assert [r["batch"] for r in art["rows"]] == [1, 2]


def test_checkpoint_missing_head(tiny_vanilla_checkpoint: Path) -> None:
    with pytest.raises(UserError, match="has no student head: it was trained with method vanilla"):
        profile_command(
            [tiny_vanilla_checkpoint], fast(iterations=4, select=ArtifactChoice(head="student"))
        )


def test_all_formats_from_a_run_folder_exports_only_what_is_missing(
    bundles: dict[str, Path],
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edgemtl.core.io import sha256_file

    # The run's Student bundle already holds FP32 and INT8 where `export` puts it.
    monkeypatch.chdir(tmp_path)
    bundle = tmp_path / "export" / f"{tiny_checkpoint.parent.name}-student"
    shutil.copytree(bundles["student"], bundle)
    int8 = sha256_file(bundle / "student.int8.onnx")
    result = profile_command([tiny_checkpoint.parent], fast(iterations=3, all_formats=True))
    assert [a["label"] for a in result["artifacts"]] == [
        "student fp32 torch",
        "student fp32 onnx",
        "student fp16 onnx",
        "student int8 onnx",
    ]
    assert sha256_file(bundle / "student.int8.onnx") == int8  # kept, not rebuilt
    for art in result["artifacts"]:
        assert art["rows"][0]["latency"]["count"] == 3 and art["frame_pipeline"]["total_ms"] > 0
    with pytest.raises(UserError, match="--all-formats .*: expected a checkpoint"):
        profile_command([bundle / "student.fp32.onnx"], fast(all_formats=True))

"""`profile_command` end to end on real ONNX bundles (toy graphs) with real ONNX Runtime.

The acceptance run on the shared tiny checkpoint's exported bundles lives in
test_profile_checkpoint.py; these cover the mechanics with graphs built here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgemtl.core.errors import UserError
from edgemtl.core.options import ArtifactChoice, DataSource, OutputFiles
from edgemtl.deploy.profile.command import (
    parse_batches,
    parse_precisions,
    profile_command,
)
from edgemtl.deploy.runtime import RunnerOptions
from tests.helpers.profiling import fast
from tests.helpers.toy_bundle import make_toy_bundle

STATS = (
    "min_ms",
    "mean_ms",
    "median_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "std_ms",
    "cv_percent",
    "images_per_s",
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return make_toy_bundle(root / "s", "student"), make_toy_bundle(root / "t", "teacher")


def test_json_markdown_plot(bundles: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    files = OutputFiles(
        json=str(out), markdown=str(tmp_path / "r.md"), plot=str(tmp_path / "p.png")
    )
    result = profile_command(list(bundles), fast(batches=parse_batches("1,2"), output=files))
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(result))
    assert [a["label"] for a in data["artifacts"]] == ["student fp32 onnx", "teacher fp32 onnx"]
    env = data["environment"]
    for key in ("cpu", "onnxruntime", "tensorrt", "gpu", "driver", "python"):
        assert key in env
    for art in data["artifacts"]:
        assert art["device_facts"]["threads"] == 1 and art["runner"] == "ort-cpu"
        assert [r["batch"] for r in art["rows"]] == [1, 2]
        for row in art["rows"]:
            for block in ("latency", "end_to_end"):
                assert set(STATS) <= set(row[block])
            assert len(row["times_ns"]["wall"]) == 6 and row["latency"]["count"] == 6
            assert row["power"]["measured"] is False and row["power"]["reason"]
    student, teacher = data["artifacts"]
    assert student["params"] < teacher["params"] and student["flops"] < teacher["flops"]
    md = (tmp_path / "r.md").read_text()
    assert md.count("\n| student.fp32.onnx") == 2 and "p99 ms" in md
    png = (tmp_path / "p.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "p.png").shape[0] > 100


def test_interleaved_and_duration(bundles: tuple[Path, Path]) -> None:
    result = profile_command(list(bundles), fast(duration=0.2, rounds=4))
    for art in result["artifacts"]:
        (row,) = art["rows"]
        assert row["latency"]["count"] >= 3


def test_fixed_batch_row_skipped_with_reason(tmp_path: Path) -> None:
    fixed = make_toy_bundle(tmp_path / "f", dynamic=False)
    result = profile_command([fixed], fast(batches=[1, 4]))
    rows = result["artifacts"][0]["rows"]
    assert "latency" in rows[0] and "fixed batch 1" in rows[1]["skipped"]


def test_accuracy_on_synthetic_split_equals_direct_metric_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile's numbers are exactly what ORT + the shared preprocessing + MetricSet give."""
    import onnxruntime as ort

    from edgemtl.core.tasks import TaskSpec, decode_numpy
    from edgemtl.data.preprocess import InputSpec, collate, prepare_sample
    from edgemtl.data.registry import open_split
    from edgemtl.data.synthetic import CLASS_NAMES, SynthParams
    from edgemtl.evaluation.metrics import MetricSet

    monkeypatch.setenv("EDGEMTL_CACHE", str(tmp_path / "cache"))
    record = {
        "kind": "synthetic",
        "params": SynthParams(n_train=1, n_val=5, height=16, width=32, seed=3).to_dict(),
    }
    bundle = make_toy_bundle(tmp_path / "b", dataset=record, classes=list(CLASS_NAMES))
    result = profile_command([bundle], fast(accuracy=True, data=DataSource(limit=5)))
    got = result["artifacts"][0]["heads"]["student"]
    reader = open_split(record, "val", ["seg", "depth"])
    spec = InputSpec(16, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images, targets = collate([prepare_sample(reader[i], spec) for i in range(5)])
    sess = ort.InferenceSession(
        str(bundle / "student.fp32.onnx"), providers=["CPUExecutionProvider"]
    )
    seg, depth = sess.run(["seg_logits", "depth"], {"image": images})
    ms = MetricSet({"seg": ("seg", len(CLASS_NAMES)), "depth": ("depth", None)})
    seg_spec = TaskSpec("seg", "seg", len(CLASS_NAMES), tuple(CLASS_NAMES))
    ms.update({"seg": decode_numpy(seg_spec, seg), "depth": depth}, targets)
    want = ms.compute()
    for task in want:
        for metric, value in want[task].items():
            assert got[task][metric] == pytest.approx(value, rel=1e-5, abs=1e-6), (task, metric)
    assert result["artifacts"][0]["samples"] == 5


def test_dataset_mismatch_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgemtl.data.synthetic import CLASS_NAMES, SynthParams

    monkeypatch.setenv("EDGEMTL_CACHE", str(tmp_path / "cache"))
    record = {
        "kind": "synthetic",
        "params": SynthParams(n_train=1, n_val=2, height=16, width=32).to_dict(),
    }
    wrong_classes = make_toy_bundle(tmp_path / "c", dataset=record)  # 3 toy classes vs 5 synthetic
    with pytest.raises(UserError, match="dataset classes .* do not match"):
        profile_command([wrong_classes], fast(accuracy=True))
    wrong_size = make_toy_bundle(
        tmp_path / "s", dataset=record, classes=list(CLASS_NAMES), height=8, width=16
    )
    with pytest.raises(UserError, match="dataset images are 16x32.*expects 8x16"):
        profile_command([wrong_size], fast(accuracy=True))
    no_record = make_toy_bundle(tmp_path / "n")
    with pytest.raises(UserError, match="records no dataset"):
        profile_command([no_record], fast(accuracy=True))


def test_option_errors(bundles: tuple[Path, Path]) -> None:
    assert parse_batches("8,1,4,1") == [1, 4, 8]
    for bad in ("0", "a,b", ""):
        with pytest.raises(UserError, match="--batch"):
            parse_batches(bad)
    with pytest.raises(UserError, match="--device"):
        profile_command([bundles[0]], fast(runner=RunnerOptions(device="tpu")))
    with pytest.raises(UserError, match="--precision"):
        parse_precisions("fp8")
    only_int8 = ArtifactChoice(precisions=parse_precisions("int8"))
    with pytest.raises(UserError, match="no artifact matches"):
        profile_command([bundles[0]], fast(select=only_int8))
    with pytest.raises(UserError, match="--iterations"):
        profile_command([bundles[0]], fast(iterations=0))


def test_per_frame_stages(bundles: tuple[Path, Path]) -> None:
    from edgemtl.deploy.profile.frame import STAGES, parse_frame

    result = profile_command([bundles[0]], fast(frame_size=(48, 80)))
    block = result["artifacts"][0]["frame_pipeline"]
    assert block["frame"] == [48, 80] and block["iterations"] == 6
    assert set(block["stages_ms"]) == set(STAGES) and all(
        v > 0 for v in block["stages_ms"].values()
    )
    assert block["total_ms"] >= max(block["stages_ms"].values())
    assert (
        "frame_pipeline"
        not in profile_command([bundles[0]], fast(frame_pipeline=False))["artifacts"][0]
    )
    assert parse_frame("720x1280") == (720, 1280) and parse_frame(None) is None
    assert parse_frame("off") is False
    with pytest.raises(UserError, match="--frame 720: expected HxW"):
        parse_frame("720")

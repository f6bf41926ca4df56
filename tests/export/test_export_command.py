"""`export_command` end to end on the suite's tiny checkpoint: real torch export, real
onnx checker, real ONNX Runtime, real quantizer; and export from a bundle without torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgemtl.core import manifest as mf
from edgemtl.export.options import ExportOptions
from edgemtl.training.export.command import export_command
from tests.helpers.cli import REPO

RAW = {
    "seg": "seg_logits",
    "depth": "depth",
    "normal": "normal",
    "keypoints": "keypoints",
    "edges": "edges",
}


@pytest.fixture(scope="module")
def student_bundle(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("export") / "student"
    options = ExportOptions(
        head="student", fp16=True, int8=True, calib=16, samples=8, out=out, quiet=True
    )
    summary = export_command(tiny_checkpoint, options)
    return out, summary


def _initializer_fingerprints(path: Path) -> set[bytes]:
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {
        numpy_helper.to_array(t).astype(np.float32).tobytes()
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT
    }


def test_student_bundle_fp32_fp16_int8(student_bundle: tuple[Path, dict]) -> None:
    bundle, summary = student_bundle
    m = mf.load_manifest(bundle)
    assert m.head == "student" and m.outputs_mode == "raw" and m.dataset["kind"] == "synthetic"
    assert sorted(os.listdir(bundle)) == [
        "manifest.json",
        "student.fp16.onnx",
        "student.fp32.onnx",
        "student.int8.onnx",
    ]  # one file per model, no .onnx.data
    assert [a.precision for a in m.artifacts] == ["fp32", "fp16", "int8"]
    for art in m.artifacts:
        mf.verify_artifact(bundle, art)
        onnx.checker.check_model(str(bundle / art.file), full_check=True)
        proto = onnx.load(str(bundle / art.file))
        assert art.opset == mf.default_opset(proto) and art.opset >= 18
        assert art.parity is not None and art.parity.passed and art.parity.inputs == "dataset"
        assert [o.name for o in art.outputs] == [RAW[k] for k in m.tasks]
        assert [o.task for o in art.outputs] == list(m.tasks)
        assert art.batch.dynamic is False and art.batch.max == 1
        assert mf.read_metadata(bundle / art.file)["precision"] == art.precision

    fp32, fp16, int8 = m.artifacts
    checks = fp32.parity.checks
    assert fp32.parity.reference == "torch"
    assert checks["seg"]["max_abs"].tolerance == 1e-3 and checks["seg"]["max_abs"].value <= 1e-3
    assert checks["seg"]["label_agreement"].value >= 99.9
    assert checks["depth"]["max_abs"].value <= 1e-3
    assert checks["normal"]["mean_angle_deg"].value <= 0.1

    from edgemtl.export.fp16 import fp16_weight_fraction

    assert fp16_weight_fraction(onnx.load(str(bundle / fp16.file))) > 0.9
    assert fp16.parity.reference == "student.fp32.onnx" and fp16.built_from == "student.fp32.onnx"
    assert set(fp16.parity.checks["seg"]) == {"label_agreement"}

    assert int8.size_bytes < fp32.size_bytes  # the ConvTranspose weights stay float
    qdq = int8.parity.metrics["qdq"]
    assert (
        qdq["all_zero_points_zero"]
        and qdq["per_channel_weights"] > 0
        and qdq["activation_quantize_nodes"] > 0
    )
    # no INT8 ConvTranspose kernel in ONNX Runtime: every up-stage of the Student runs
    # float, and so does every Conv below int8.MIN_INT8_MACS multiply-adds per output
    from edgemtl.export.int8 import MIN_INT8_MACS, conv_macs_per_output

    graph = onnx.load(str(bundle / fp32.file)).graph
    weights = {t.name: t for t in graph.initializer}
    transposed = sum(n.op_type == "ConvTranspose" for n in graph.node)
    small = [conv_macs_per_output(n, weights) for n in graph.node]
    small_convs = sum(m is not None and m < MIN_INT8_MACS for m in small)
    assert transposed > 0 and small_convs > 0
    assert qdq["weighted_float_nodes"] == {"Conv": small_convs, "ConvTranspose": transposed}
    speed = int8.speedup
    assert speed is not None and speed.reference == "student.fp32.onnx"
    assert speed.ratio == pytest.approx(speed.reference_median_ms / speed.median_ms, rel=1e-2)
    assert speed.iterations >= 10 and speed.threads >= 1
    assert fp32.speedup is None and fp16.speedup is None
    assert int8.parity.metrics["calibration"] == {"images": 16, "inputs": "dataset"}
    assert set(int8.parity.checks["seg"]) == {"miou_drop"}
    assert "abs_err_rise_percent" in int8.parity.checks["depth"]
    delta = int8.parity.metrics["delta"]
    assert delta["seg"]["miou"] == pytest.approx(
        int8.parity.metrics["candidate"]["seg"]["miou"]
        - int8.parity.metrics["reference"]["seg"]["miou"]
    )
    assert summary["status"] == {a.file: "new" for a in m.artifacts}
    assert "fp32: torch.onnx.export" in summary["timings"]


def test_lone_onnx_describes_itself(student_bundle: tuple[Path, dict], tmp_path: Path) -> None:
    lone = tmp_path / "copy.onnx"
    shutil.copy(student_bundle[0] / "student.int8.onnx", lone)
    m = mf.manifest_from_metadata(lone)
    assert m.head == "student" and m.artifacts[0].precision == "int8"
    assert (m.input.height, m.input.width) == (32, 64) and m.input.mean == [0.5, 0.5, 0.5]
    assert m.tasks["seg"].class_names and len(m.tasks["seg"].class_names) == m.tasks["seg"].channels


def test_student_graph_holds_no_teacher_tensor(
    student_bundle: tuple[Path, dict], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """By value, not by name: no teacher parameter appears among the student graph's weights,
    while the teacher graph (positive control) does contain teacher parameters."""
    from edgemtl.training.checkpoint import load_checkpoint, model_from_checkpoint

    net = model_from_checkpoint(load_checkpoint(tiny_checkpoint))
    teacher = {p.detach().numpy().astype(np.float32).tobytes() for p in net.teacher.parameters()}
    student = {p.detach().numpy().astype(np.float32).tobytes() for p in net.student.parameters()}
    in_student_graph = _initializer_fingerprints(student_bundle[0] / "student.fp32.onnx")
    assert not teacher & in_student_graph
    assert student & in_student_graph

    options = ExportOptions(head="teacher", samples=2, out=tmp_path / "teacher", quiet=True)
    summary = export_command(tiny_checkpoint, options)
    assert summary["artifacts"][0]["parity"]["passed"]
    in_teacher_graph = _initializer_fingerprints(tmp_path / "teacher" / "teacher.fp32.onnx")
    assert teacher & in_teacher_graph and not student & in_teacher_graph
    assert (tmp_path / "teacher" / "teacher.fp32.onnx").stat().st_size > (
        student_bundle[0] / "student.fp32.onnx"
    ).stat().st_size


def test_decoded_outputs_in_graph(tiny_checkpoint: Path, tmp_path: Path) -> None:
    options = ExportOptions(
        head="student",
        outputs="decoded",
        samples=2,
        dynamic_batch=True,
        max_batch=8,
        out=tmp_path / "dec",
        quiet=True,
    )
    summary = export_command(tiny_checkpoint, options)
    m = mf.load_manifest(tmp_path / "dec")
    art = m.artifacts[0]
    assert m.outputs_mode == "decoded" and list(m.tasks)[:3] == ["seg", "depth", "normal"]
    assert [(o.name, o.dtype) for o in art.outputs][:3] == [
        ("seg_labels", "int32"),
        ("depth", "float32"),
        ("normal", "float32"),
    ]
    assert art.outputs[0].shape == ["batch", 32, 64]
    assert art.batch.dynamic and (art.batch.min, art.batch.max) == (1, 8)
    assert art.parity.checks["seg"]["label_agreement"].value >= 99.9
    assert "max_abs" not in art.parity.checks["seg"]
    from edgemtl.export import onnx_tools

    out = onnx_tools.run_batches(
        onnx_tools.session(tmp_path / "dec" / art.file), [np.zeros((3, 3, 32, 64), np.float32)]
    )
    norms = np.linalg.norm(out["normal"], axis=1)
    assert out["seg_labels"].shape == (3, 32, 64) and np.allclose(norms, 1.0, atol=1e-4)
    assert summary["status"] == {"student.fp32.onnx": "new"}


_TORCHLESS = r"""
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None
sys.meta_path.insert(0, _NoTorch())
from pathlib import Path
from edgemtl.export.command import export_command
from edgemtl.export.options import ExportOptions
options = ExportOptions(fp16=True, int8=True, calib=8, samples=4, quiet=True)
summary = export_command(Path(sys.argv[1]), options)
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
print("STATUS", summary["status"])
"""


def test_export_from_bundle_without_torch(
    student_bundle: tuple[Path, dict], tmp_path: Path
) -> None:
    bundle = tmp_path / "device-copy"
    bundle.mkdir()
    shutil.copy(student_bundle[0] / "student.fp32.onnx", bundle)
    m = mf.load_manifest(student_bundle[0])
    m.artifacts = [a for a in m.artifacts if a.precision == "fp32"]
    mf.write_manifest(bundle, m)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _TORCHLESS, str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        "'student.fp16.onnx': 'new'" in proc.stdout and "'student.int8.onnx': 'new'" in proc.stdout
    )

    after = mf.load_manifest(bundle)
    assert [a.precision for a in after.artifacts] == ["fp32", "fp16", "int8"]
    for art in after.artifacts[1:]:
        mf.verify_artifact(bundle, art)
        assert art.parity.passed and art.parity.reference == "student.fp32.onnx"
        assert art.built_from == "student.fp32.onnx"
    # the FP32 entry is untouched (its torch parity record survives)
    assert after.artifacts[0].parity.reference == "torch"
    assert json.loads((bundle / "manifest.json").read_text())["schema_version"] == mf.SCHEMA_VERSION


def test_missing_dataset_falls_back_to_flagged_random_inputs(
    student_bundle: tuple[Path, dict], tmp_path: Path
) -> None:
    bundle = tmp_path / "no-data"
    bundle.mkdir()
    shutil.copy(student_bundle[0] / "student.fp32.onnx", bundle)
    m = mf.load_manifest(student_bundle[0])
    m.artifacts = [a for a in m.artifacts if a.precision == "fp32"]
    m.dataset = {"kind": "folder", "root": str(tmp_path / "gone")}
    mf.write_manifest(bundle, m)
    # Random inputs only tell how close INT8 stays to FP32 (label agreement
    # >= 100 - int8_miou_drop); a barely trained model's near-tied logits need the
    # looser bound a user would pass too.
    options = ExportOptions(
        int8=True, calib=4, samples=2, quiet=True, tolerances={"int8_miou_drop": 10.0}
    )
    summary = export_command(bundle, options)
    int8 = mf.find_artifact(mf.load_manifest(bundle), "onnx", "int8")
    assert int8 is not None and int8.parity is not None
    assert int8.parity.inputs == "random" and int8.parity.passed
    assert int8.parity.metrics["calibration"]["inputs"] == "random"
    assert summary["parity_inputs"] == "random"
    assert any("random normalised inputs" in n for n in summary["notes"])

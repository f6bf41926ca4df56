"""Artifacts written by an older edgemtl keep working, with the same numbers.

`tests/fixtures/legacy_v1/` holds a checkpoint (paper Student, no exits,
schema 1) and a Student bundle (FP32 + INT8 ONNX, manifest schema 1) written by
edgemtl at commit 15e6182, plus what that version printed for them (its
README says how they were made). Every command goes through the real CLI so
this test does not depend on where modules live.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import REPO, run_cli

LEGACY = REPO / "tests" / "fixtures" / "legacy_v1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy, so no command can write next to the committed files."""
    root = tmp_path_factory.mktemp("legacy")
    shutil.copytree(LEGACY, root / "v1")
    return root / "v1"


def _close(actual: object, expected: object, path: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), path
        for key in expected:
            _close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-6, abs=1e-9), path
    else:
        assert actual == expected, path


def _ort_outputs(onnx_path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: image})))


def _initializers(onnx_path: Path) -> set[str]:
    import onnx

    return {init.name for init in onnx.load(str(onnx_path)).graph.initializer}


def test_checkpoint_evaluates_to_the_same_numbers(legacy: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = run_cli(
        "eval",
        str(legacy / "checkpoint.pt"),
        "--head",
        "all",
        "--json",
        str(out),
        "--quiet",
        env={"EDGEMTL_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    expected = json.loads((legacy / "expected_eval.json").read_text())
    _close(json.loads(out.read_text())["heads"], expected["heads"])


@pytest.mark.parametrize("head", ["student", "teacher"])
def test_checkpoint_exports_the_same_graph(legacy: Path, tmp_path: Path, head: str) -> None:
    bundle = tmp_path / f"{head}-bundle"
    result = run_cli(
        "export",
        str(legacy / "checkpoint.pt"),
        "--head",
        head,
        "--samples",
        "2",
        "--out",
        str(bundle),
        "--quiet",
        env={"EDGEMTL_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    image = np.load(legacy / "input.npy")
    expected = np.load(legacy / "expected_torch_outputs.npz")
    outputs = _ort_outputs(bundle / f"{head}.fp32.onnx", image)
    for task, name in (("seg", "seg_logits"), ("depth", "depth"), ("normal", "normal")):
        np.testing.assert_allclose(outputs[name], expected[f"{head}.{task}"], atol=2e-5, rtol=1e-4)
    if head == "student":
        assert _initializers(bundle / "student.fp32.onnx") == _initializers(
            legacy / "student-bundle" / "student.fp32.onnx"
        )


def test_bundle_profiles_to_the_same_accuracy(legacy: Path, tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    result = run_cli(
        "profile",
        str(legacy / "student-bundle"),
        "--accuracy",
        "-n",
        "3",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--warmup-s",
        "0",
        "--idle",
        "0",
        "--no-power",
        "--threads",
        "1",
        "--json",
        str(out),
        "--quiet",
        env={"EDGEMTL_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    expected = json.loads((legacy / "expected_profile.json").read_text())
    got = {a["label"]: a["heads"] for a in json.loads(out.read_text())["artifacts"]}
    want = {a["label"]: a["heads"] for a in expected["artifacts"]}
    assert set(got) == set(want) == {"student fp32 onnx", "student int8 onnx"}
    for label in want:
        _close(got[label], want[label], label)


def test_bundle_is_extended_without_torch_and_outputs_match(legacy: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(legacy / "student-bundle", bundle)
    result = run_cli(
        "export",
        str(bundle),
        "--fp16",
        "--samples",
        "2",
        "--quiet",
        env={"EDGEMTL_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {a["precision"] for a in manifest["artifacts"]} == {"fp32", "fp16", "int8"}
    image = np.load(legacy / "input.npy")
    expected = np.load(legacy / "expected_torch_outputs.npz")
    outputs = _ort_outputs(bundle / "student.fp32.onnx", image)
    np.testing.assert_allclose(outputs["seg_logits"], expected["student.seg"], atol=2e-5, rtol=1e-4)

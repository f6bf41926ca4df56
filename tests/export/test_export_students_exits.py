"""Every Student kind and every decoder exit exports, passes the parity gates, carries only its
own tensors, and runs through ONNX Runtime with torch blocked (docs/methods.md "Exits")."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

from edgemtl.core import manifest as mf
from edgemtl.export.options import ExportOptions
from edgemtl.training.export.command import export_command
from tests.helpers.cli import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundles(
    tiny_skip_exits_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("skip-exits")
    out = {}
    for head in ("student", "exit1", "exit2", "exit3"):
        options = ExportOptions(
            head=head, fp16=True, int8=True, calib=8, samples=4, out=root / head, quiet=True
        )
        summary = export_command(tiny_skip_exits_checkpoint, options)
        assert summary["bundle"] == str(root / head)
        out[head] = root / head
    return out


@pytest.mark.parametrize("head", ["student", "exit1", "exit2", "exit3"])
def test_each_head_passes_fp32_fp16_int8_gates(bundles: dict[str, Path], head: str) -> None:
    bundle = bundles[head]
    manifest = mf.load_manifest(bundle)
    assert manifest.head == head and manifest.schema_version == mf.SCHEMA_VERSION
    assert manifest.architecture == {
        "student": {
            "kind": "skip",
            "width": 1.0,
            "upsample": "transpose",
            "smooth": [1, 2, 3, 4],
            "shared_stages": 2,
        },
        "exits": [1, 2, 3],
    }
    assert [a.precision for a in manifest.artifacts] == ["fp32", "fp16", "int8"]
    for art in manifest.artifacts:
        onnx.checker.check_model(str(bundle / art.file), full_check=True)
        assert art.parity is not None and art.parity.passed and art.parity.inputs == "dataset"


def _names(path: Path) -> list[str]:
    """Initializers named after module parameters (exporter constants such as `val_12` aside)."""
    return [t.name for t in onnx.load(str(path)).graph.initializer if "." in t.name]


def test_bundles_hold_only_their_heads_tensors(bundles: dict[str, Path]) -> None:
    """By initializer name (the exporter keeps module paths) and count."""
    student = _names(bundles["student"] / "student.fp32.onnx")
    assert {n.split(".")[0] for n in student} == {"encoder", "student", "student_neck"}
    counts = []
    for k in (1, 2, 3):
        names = _names(bundles[f"exit{k}"] / f"exit{k}.fp32.onnx")
        counts.append(len(names))
        assert {n.split(".")[0] for n in names} == {"encoder", "teacher", "exits"}
        assert {n.split(".")[1] for n in names if n.startswith("exits.")} == {f"exit{k}"}
        teacher = [n.split(".") for n in names if n.startswith("teacher.")]
        assert {part for _, _, part, *_ in teacher} <= {"ups", "convs", "gates"}  # no output conv
        assert {int(stage) for _, _, _, stage, *_ in teacher} == set(range(k))  # stages 1..k only
    assert counts == sorted(counts) and counts[0] < counts[2]


SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import numpy as np
    from edgemtl.deploy.runtime import RunnerOptions, open_runner, resolve_artifacts
    out = {}
    for bundle in sys.argv[1:]:
        for ref in resolve_artifacts(bundle, precisions=["fp32", "int8"]):
            runner = open_runner(ref, RunnerOptions(threads=1))
            runner.load()
            h, w = ref.input_hw
            result = runner.infer(np.zeros((1, 3, h, w), np.float32))
            runner.close()
            out[ref.label] = {k: list(v.shape) for k, v in result.items()}
    print(json.dumps({"out": out, "torch": [m for m in sys.modules if m.startswith("torch.")]}))
""")


def test_skip_student_and_exits_run_without_torch(bundles: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(str, bundles.values())],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["torch"] == []
    assert set(report["out"]) == {f"{h} {p} onnx" for h in bundles for p in ("fp32", "int8")}
    for shapes in report["out"].values():
        assert shapes["seg_logits"][:2] == [1, 5] and shapes["normal"][1] == 3

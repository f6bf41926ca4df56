"""Export failure paths: a failed gate leaves nothing, bad inputs give one-line errors,
bundles are never silently replaced, unpool Teachers never reach TensorRT."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgemtl.core import manifest as mf
from edgemtl.core.errors import UserError
from edgemtl.core.io import sha256_file
from edgemtl.export.options import ExportOptions, parse_tolerances
from edgemtl.training.export import from_checkpoint as fc
from edgemtl.training.export.command import export_command


def _rewrite_checkpoint(src: Path, dst: Path, **changes: Any) -> Path:
    import torch

    from edgemtl.training.checkpoint import save_checkpoint

    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    ckpt.update(changes)
    save_checkpoint(dst, ckpt)
    return dst


@pytest.fixture(scope="module")
def unpool_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run's recipe with unpool decoders (fresh weights: only structure matters here)."""
    import torch

    from edgemtl.core.tasks import TaskSpec
    from edgemtl.training.models.network import MultiTaskNet
    from edgemtl.training.models.students import StudentShape

    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    recipe = {**ckpt["recipe"], "model": {**ckpt["recipe"]["model"], "upsampling": "unpool"}}
    specs = [TaskSpec.from_dict(t) for t in ckpt["tasks"].values()]
    torch.manual_seed(0)
    net = MultiTaskNet(
        specs,
        recipe["model"]["width"],
        "unpool",
        recipe["model"]["decoder"],
        heads=("teacher", "student"),
        student=StudentShape.of(recipe["model"].get("student")),
    )
    dst = tmp_path_factory.mktemp("unpool") / "best.pt"
    return _rewrite_checkpoint(
        tiny_checkpoint, dst, recipe=recipe, upsampling="unpool", model=net.state_dict()
    )


def test_perturbed_onnx_weight_fails_the_gate_and_leaves_no_bundle(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: shift one real weight of the exported graph before it is gated."""
    from onnx import numpy_helper

    real_finish = fc.finish_onnx

    def perturbed(ctx: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        init.CopyFrom(
            numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(0.05), init.name)
        )
        return real_finish(ctx, model, *args, **kwargs)

    monkeypatch.setattr(fc, "finish_onnx", perturbed)
    out = tmp_path / "bundles" / "student"
    with pytest.raises(UserError) as info:
        export_command(
            tiny_checkpoint, ExportOptions(head="student", samples=2, out=out, quiet=True)
        )
    message = str(info.value)
    assert message.startswith(
        "parity gate failed for student.fp32.onnx vs torch on 2 dataset samples"
    )
    assert "max_abs" in message and "(needs <= 0.001)" in message and "\n" not in message
    assert not out.exists()
    assert os.listdir(tmp_path / "bundles") == []  # no staging folder left behind either


def test_existing_bundle_is_extended_never_silently_replaced(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "b"
    export_command(tiny_checkpoint, ExportOptions(head="student", samples=2, out=out, quiet=True))
    before = sha256_file(out / "student.fp32.onnx")

    # same checkpoint, different graph (dynamic batch): refused, bundle untouched
    with pytest.raises(UserError, match="already holds a different student.fp32.onnx.*--force"):
        export_command(
            tiny_checkpoint,
            ExportOptions(head="student", samples=2, dynamic_batch=True, out=out, quiet=True),
        )
    assert sha256_file(out / "student.fp32.onnx") == before
    assert sorted(os.listdir(tmp_path)) == ["b"]

    # another checkpoint: refused up front (before any export work)
    other = _rewrite_checkpoint(tiny_checkpoint, tmp_path / "other.pt", epoch=99)
    with pytest.raises(UserError, match="existing bundle differs .*source checkpoint sha256"):
        export_command(other, ExportOptions(head="student", out=out, quiet=True))
    with pytest.raises(UserError, match="existing bundle differs .*head student != teacher"):
        export_command(tiny_checkpoint, ExportOptions(head="teacher", out=out, quiet=True))

    summary = export_command(
        other, ExportOptions(head="student", samples=2, out=out, force=True, quiet=True)
    )
    assert summary["status"] == {"student.fp32.onnx": "new"}  # --force started the bundle over
    assert mf.load_manifest(out).source.sha256 == sha256_file(other)
    assert mf.read_metadata(out / "student.fp32.onnx")["source"]["sha256"] == sha256_file(other)


def test_unpool_teacher_refused_for_tensorrt_student_accepted(
    unpool_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="cannot build the teacher head: its decoder uses unpool"):
        export_command(
            unpool_checkpoint,
            ExportOptions(head="teacher", trt=True, out=tmp_path / "t", quiet=True),
        )
    with pytest.raises(UserError, match="ensemble head: its decoder uses unpool"):
        export_command(
            unpool_checkpoint,
            ExportOptions(head="ensemble", trt=True, out=tmp_path / "e", quiet=True),
        )
    assert not (tmp_path / "t").exists()
    from edgemtl.export.tensorrt_build import availability

    if not availability()[
        0
    ]:  # the student passes the unpool check; only TensorRT's absence stops it
        with pytest.raises(UserError, match="--trt: TensorRT is not installed"):
            export_command(
                unpool_checkpoint,
                ExportOptions(head="student", trt=True, out=tmp_path / "s", quiet=True),
            )
    summary = export_command(
        unpool_checkpoint, ExportOptions(head="student", samples=2, out=tmp_path / "s", quiet=True)
    )
    art = mf.load_manifest(tmp_path / "s").artifacts[0]
    assert art.parity.passed and mf.load_manifest(tmp_path / "s").upsampling == "unpool"
    assert not any("not possible" in n for n in summary["notes"])


def test_corrupted_checkpoint_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "runs" / "x" / "best.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    with pytest.raises(
        UserError, match=r"checkpoint .*best.pt: not a readable edgemtl checkpoint"
    ) as info:
        export_command(bad, ExportOptions(head="student", out=tmp_path / "o", quiet=True))
    assert "\n" not in str(info.value) and not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="no such checkpoint file or bundle folder"):
        export_command(tmp_path / "missing.pt", ExportOptions(quiet=True))
    with pytest.raises(UserError, match="none found under"):
        export_command(None, ExportOptions(runs_dir=tmp_path / "empty", quiet=True))


def test_missing_head_names_the_method(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    recipe = {**ckpt["recipe"], "method": {"name": "vanilla"}}
    vanilla = _rewrite_checkpoint(
        tiny_checkpoint, tmp_path / "vanilla.pt", heads=["teacher"], recipe=recipe
    )
    with pytest.raises(UserError, match="has no student head: it was trained with method vanilla"):
        export_command(vanilla, ExportOptions(head="student", out=tmp_path / "o", quiet=True))
    with pytest.raises(
        UserError, match="--head tutor: expected teacher, student, ensemble, exit1, exit2 or exit3"
    ):
        export_command(vanilla, ExportOptions(head="tutor", quiet=True))


def test_tampered_onnx_is_refused_by_checksum(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    export_command(tiny_checkpoint, ExportOptions(head="student", samples=2, out=out, quiet=True))
    data = bytearray((out / "student.fp32.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "student.fp32.onnx").write_bytes(bytes(data))
    manifest_before = (out / "manifest.json").read_text()
    with pytest.raises(UserError, match=r"student.fp32.onnx: checksum mismatch") as info:
        export_command(out, ExportOptions(fp16=True, quiet=True))
    assert "\n" not in str(info.value)
    assert (out / "manifest.json").read_text() == manifest_before
    assert not (out / "student.fp16.onnx").exists()


def test_tolerance_overrides_parse() -> None:
    assert parse_tolerances(["fp32_max_abs=2e-3", "int8_miou_drop=5"]) == {
        "fp32_max_abs": 2e-3,
        "int8_miou_drop": 5.0,
    }
    with pytest.raises(UserError, match="expected NAME=NUMBER"):
        parse_tolerances(["fp32_max_abs"])
    with pytest.raises(UserError, match="unknown tolerance 'nope'"):
        parse_tolerances(["nope=1"])


def test_torch_free_side_refuses_checkpoints(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`edgemtl.export.command` never imports training: a checkpoint needs its
    `CheckpointSource`."""
    from edgemtl.export.command import export_command as bundle_export

    for source in (tiny_checkpoint, None):
        with pytest.raises(UserError, match="exporting from a checkpoint needs PyTorch") as info:
            bundle_export(source, ExportOptions(out=tmp_path / "o", runs_dir=tmp_path, quiet=True))
        assert "\n" not in str(info.value) and not (tmp_path / "o").exists()

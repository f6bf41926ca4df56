"""The ONNX Runtime runner and artifact resolution on toy bundles (tests/helpers/toy_bundle.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgemtl.core.errors import UserError
from edgemtl.deploy.runtime import RunnerOptions, open_runner, resolve_artifacts
from tests.helpers.toy_bundle import MEAN, make_toy_bundle, toy_model


def test_bundle_lone_onnx_and_runner(tmp_path: Path) -> None:
    bundle = make_toy_bundle(tmp_path / "b")
    refs = resolve_artifacts(bundle)
    assert [r.label for r in refs] == ["student fp32 onnx"]
    lone = tmp_path / "lone.onnx"
    lone.write_bytes((bundle / "student.fp32.onnx").read_bytes())
    (ref,) = resolve_artifacts(lone)
    assert ref.input_hw == (16, 32) and ref.manifest.input.mean == MEAN and ref.artifact is not None
    runner = open_runner(ref, RunnerOptions(threads=1))
    runner.load()
    x = np.random.default_rng(0).random((2, 3, 16, 32), dtype=np.float32)
    out = runner.infer(x)
    assert out["seg_logits"].shape == (2, 3, 16, 32) and out["depth"].shape == (2, 1, 16, 32)
    dec = ref.decode(out)
    assert dec["seg"].dtype == np.int32 and dec["seg"].shape == (2, 16, 32)
    np.testing.assert_array_equal(dec["seg"], out["seg_logits"].argmax(1))
    facts = runner.device_facts()
    assert facts["threads"] == 1 and facts["providers"] == ["CPUExecutionProvider"]
    assert runner.check_batch(8) is None


def test_fixed_batch_reported(tmp_path: Path) -> None:
    (ref,) = resolve_artifacts(make_toy_bundle(tmp_path / "b", dynamic=False))
    runner = open_runner(ref, RunnerOptions(threads=1))
    runner.load()
    assert runner.check_batch(1) is None
    assert "fixed batch 1" in (runner.check_batch(4) or "")


def test_resolution_errors(tmp_path: Path) -> None:
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"abc")
    with pytest.raises(UserError, match="not a model file"):
        resolve_artifacts(junk)
    with pytest.raises(UserError, match="no such file"):
        resolve_artifacts(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf")
    with pytest.raises(UserError, match="bad.onnx"):
        resolve_artifacts(bad)
    engine = tmp_path / "x.trt"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(UserError, match="no manifest.json beside this engine"):
        resolve_artifacts(engine)
    plain = tmp_path / "plain.onnx"
    onnx.save(toy_model(8, 8, 4, 1), str(plain))
    with pytest.raises(UserError, match="no edgemtl metadata"):
        resolve_artifacts(plain)
    # A tampered bundle artifact is refused by its checksum.
    bundle = make_toy_bundle(tmp_path / "t")
    with open(bundle / "student.fp32.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(UserError, match="checksum mismatch"):
        resolve_artifacts(bundle)


def test_missing_provider_says_what_to_install(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here: the CUDA provider exists")
    (ref,) = resolve_artifacts(make_toy_bundle(tmp_path / "b"))
    with pytest.raises(UserError, match="pip install onnxruntime-gpu"):
        open_runner(ref, RunnerOptions(device="cuda")).load()

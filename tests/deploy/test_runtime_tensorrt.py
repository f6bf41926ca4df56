"""TensorRT runner: the compatibility rule (pure, runs everywhere) and the real engine path (GPU
only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.deploy.runtime import resolve_artifacts
from edgemtl.deploy.runtime.trt_env import engine_mismatch, import_tensorrt, tensorrt_status

REC = {"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "flags": ["FP16"]}


def test_same_version_and_gpu_runs() -> None:
    assert engine_mismatch(REC, "10.3.0", "Orin", "8.7") is None
    assert engine_mismatch(REC, "10.3.0.30", "Orin", "8.7") is None  # build number does not matter


def test_other_tensorrt_refused_with_reason() -> None:
    reason = engine_mismatch(REC, "10.13.0.35", "Orin", "8.7")
    assert reason is not None and "TensorRT 10.3.0" in reason and "10.13.0.35" in reason


def test_other_gpu_refused_with_reason() -> None:
    reason = engine_mismatch(REC, "10.3.0", "NVIDIA H100 80GB HBM3", "9.0")
    assert reason is not None and "Orin" in reason and "9.0" in reason


def test_compatibility_flags() -> None:
    rec = {**REC, "flags": ["VERSION_COMPATIBLE", "HARDWARE_COMPATIBLE"]}
    assert engine_mismatch(rec, "10.13.0", "NVIDIA A100", "8.0") is None
    assert engine_mismatch(rec, "11.0.0", "NVIDIA A100", "8.0") is not None
    assert "8.0" in (engine_mismatch(rec, "10.13.0", "Tesla T4", "7.5") or "")
    assert "records no TensorRT" in (engine_mismatch(None, "10.3.0", "Orin", "8.7") or "")


def test_stub_only_tensorrt_not_mistaken_for_real() -> None:
    ok, reason = tensorrt_status()
    if import_tensorrt() is None:
        assert not ok and "TensorRT is not installed" in reason
    else:
        assert hasattr(import_tensorrt(), "Builder")


def test_bundle_engine_skipped_or_refused_without_tensorrt(tmp_path: Path) -> None:
    """An engine listed in a bundle: skipped (with the reason) when TensorRT is absent."""
    from edgemtl.core.io import sha256_file
    from edgemtl.core.manifest import Artifact, load_manifest, write_manifest
    from tests.helpers.toy_bundle import make_toy_bundle

    if tensorrt_status()[0]:
        pytest.skip("TensorRT runs here: nothing is skipped")
    bundle = make_toy_bundle(tmp_path / "b")
    engine = bundle / "student.fp16.trt"
    engine.write_bytes(b"not really an engine")
    manifest = load_manifest(bundle)
    manifest.artifacts.append(
        Artifact.model_validate(
            {
                "file": engine.name,
                "format": "trt",
                "precision": "fp16",
                "sha256": sha256_file(engine),
                "trt": {"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7"},
            }
        )
    )
    write_manifest(bundle, manifest)
    refs = resolve_artifacts(bundle)
    assert [r.format for r in refs] == ["onnx"]
    assert any("student.fp16.trt skipped" in n and "TensorRT" in n for n in refs[0].notes)
    # Named explicitly, the engine is resolved, and loading it says what is missing.
    from edgemtl.deploy.runtime import RunnerOptions, open_runner

    (ref,) = resolve_artifacts(engine)
    with pytest.raises(UserError, match="TensorRT is not installed|CUDA"):
        open_runner(ref, RunnerOptions(device="cuda")).load()


@pytest.mark.gpu
def test_engine_runs_and_matches_onnxruntime(tmp_path: Path) -> None:
    """Build an engine from the toy ONNX here, run it through TrtRunner (buffers, events), compare
    with ORT."""
    ok, reason = tensorrt_status()
    if not ok:
        pytest.skip(f"TensorRT engine path needs TensorRT + a CUDA GPU: {reason}")
    from edgemtl.core.io import sha256_file
    from edgemtl.core.manifest import Artifact, load_manifest, write_manifest
    from edgemtl.deploy.runtime import RunnerOptions, open_runner
    from edgemtl.deploy.runtime.trt_env import gpu_facts
    from tests.helpers.toy_bundle import make_toy_bundle

    trt = import_tensorrt()
    bundle = make_toy_bundle(tmp_path / "b", dynamic=False)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse((bundle / "student.fp32.onnx").read_bytes()), [
        str(parser.get_error(i)) for i in range(parser.num_errors)
    ]
    config = builder.create_builder_config()
    plan = builder.build_serialized_network(network, config)
    engine = bundle / "student.fp32.trt"
    engine.write_bytes(bytes(plan))
    gpu = gpu_facts()
    manifest = load_manifest(bundle)
    manifest.artifacts.append(
        Artifact.model_validate(
            {
                "file": engine.name,
                "format": "trt",
                "precision": "fp32",
                "sha256": sha256_file(engine),
                "outputs": manifest.artifacts[0].outputs,
                "batch": manifest.artifacts[0].batch,
                "trt": {
                    "version": trt.__version__,
                    "gpu": gpu["gpu"],
                    "compute_capability": gpu["compute_capability"],
                },
            }
        )
    )
    write_manifest(bundle, manifest)
    (onnx_ref,) = resolve_artifacts(bundle / "student.fp32.onnx")
    (trt_ref,) = resolve_artifacts(engine)
    x = np.random.default_rng(0).random((1, 3, 16, 32), dtype=np.float32)
    ort_runner = open_runner(onnx_ref, RunnerOptions(threads=1))
    ort_runner.load()
    ref_out = ort_runner.infer(x)
    with open_runner(trt_ref, RunnerOptions(device="cuda")) as runner:
        out = runner.infer(x)
        compute = runner.last_compute_ns()
        assert compute is not None and compute > 0
        for name, value in ref_out.items():
            np.testing.assert_allclose(out[name], value, atol=1e-3, rtol=1e-3)

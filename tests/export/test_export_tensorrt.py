"""TensorRT: the version -> build strategy rules (pure, CPU), the unpool refusal, mypy
against `tensorrt-stubs`, and a real engine build where TensorRT and a GPU exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgemtl.core.errors import UserError
from edgemtl.export import tensorrt_build as tb
from tests.helpers.cli import REPO


@pytest.mark.parametrize(
    "version, precision, onnx, flags, strongly",
    [
        ("10.3.0", "fp32", "fp32", [], False),  # JetPack 6
        ("10.3.0", "fp16", "fp32", ["FP16"], False),  # FP32 ONNX + builder flag
        ("10.13.0.35", "int8", "int8", ["INT8"], False),  # explicit quantization from QDQ
        ("11.0.0", "fp16", "fp16", ["STRONGLY_TYPED"], True),  # no FP16 flag any more
        ("11.1.2", "int8", "int8", ["STRONGLY_TYPED"], True),
        ("11.0", "fp32", "fp32", ["STRONGLY_TYPED"], True),
        ("12.0.1", "fp16", "fp16", ["STRONGLY_TYPED"], True),  # newer: as for 11, said in the note
    ],
)
def test_strategy_from_version(
    version: str, precision: str, onnx: str, flags: list[str], strongly: bool
) -> None:
    s = tb.choose_strategy(version, precision, "bilinear", "student")
    assert (s.precision, s.onnx_precision, s.flags, s.strongly_typed) == (
        precision,
        onnx,
        flags,
        strongly,
    )
    if version.startswith("12"):
        assert "newer than tested" in s.note


def test_fp16_is_never_a_silent_fp32() -> None:
    for version in ("10.0.1", "10.3.0", "11.0.0"):
        s = tb.choose_strategy(version, "fp16")
        assert "FP16" in s.builder_flags or s.onnx_precision == "fp16"


@pytest.mark.parametrize("version", ["8.6.1", "9.0", "nonsense"])
def test_unsupported_versions_are_user_errors(version: str) -> None:
    with pytest.raises(UserError, match="TensorRT"):
        tb.choose_strategy(version, "fp32")


def test_unpool_teacher_refused_student_accepted() -> None:
    for head in ("teacher", "ensemble"):
        with pytest.raises(UserError, match="unpool"):
            tb.choose_strategy("10.3.0", "fp16", "unpool", head)
        assert tb.unpool_blocked(head, "unpool")
    assert tb.choose_strategy("10.3.0", "fp16", "unpool", "student").builder_flags == ("FP16",)
    assert tb.choose_strategy("11.0.0", "int8", "bilinear", "teacher").onnx_precision == "int8"
    assert not tb.unpool_blocked("student", "unpool")
    assert tb.engine_file("student", "fp16") == "student.fp16.trt"


def test_stub_only_tensorrt_is_not_mistaken_for_the_real_thing() -> None:
    ok, why = tb.availability()
    try:
        import tensorrt
    except ImportError:
        tensorrt = None
    if tensorrt is None or not hasattr(tensorrt, "Builder"):
        assert tb.import_tensorrt() is None
        assert not ok and "not installed" in why


def _patched_stubs(dest: Path) -> Path | None:
    """Copy tensorrt-stubs' two packages to `dest` with their five syntax slips fixed.

    The wheel ships `tensorrt/` and `tensorrt_bindings/` without py.typed (so mypy
    ignores them in site-packages) and a few generated lines Python cannot parse
    (a parameter named `in`, a default-less parameter after defaulted ones).
    """
    import importlib.util

    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or not spec.origin:
        return None
    site = Path(spec.origin).parent.parent
    for name in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / name, dest / name)
    pyi = dest / "tensorrt_bindings" / "tensorrt.pyi"
    text = pyi.read_text()
    text = re.sub(r"\(self(: \w+)?, in: ", r"(self\1, in_: ", text)
    text = text.replace(
        "power: Weights = None, channel_axis: int)",
        "power: Weights = None, channel_axis: int = ...)",
    )
    pyi.write_text(text)
    return dest


def _mypy(target: Path, stubs: Path, tmp: Path) -> subprocess.CompletedProcess:
    config = tmp / "mypy.ini"
    config.write_text(
        "[mypy]\npython_version = 3.10\nignore_missing_imports = True\n"
        "[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]\nignore_errors = True\n"
    )
    env = {**os.environ, "MYPYPATH": str(stubs)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp / "cache"),
            str(target),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=REPO,
        timeout=300,
    )


def test_tensorrt_module_typechecks_against_stubs(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    stubs = _patched_stubs(tmp_path / "stubs")
    if stubs is None:
        pytest.skip("tensorrt-stubs is not installed (pip install tensorrt-stubs)")
    module = REPO / "edgemtl" / "export" / "tensorrt_build.py"
    result = _mypy(module, stubs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # and the check is live: a misspelt API call and a wrong argument type are caught
    # (each edit must apply exactly once, whatever the formatter made of the call's layout)
    text, misspelt = re.subn(
        r"config\.set_memory_pool_limit\(", "config.set_memory_pool_limt(", module.read_text()
    )
    text, wrong_type = re.subn(r"profile\.set_shape\(\s*input_name,", "profile.set_shape(0,", text)
    assert (misspelt, wrong_type) == (1, 1)
    broken = tmp_path / "broken_build.py"
    broken.write_text(text)
    result = _mypy(broken, stubs, tmp_path)
    assert result.returncode != 0
    assert "set_memory_pool_limt" in result.stdout and '"set_shape"' in result.stdout


def _tiny_onnx(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["seg_logits"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("seg_logits", TensorProto.FLOAT, ["batch", 2, 8, 8])],
        [w],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10),
        str(path),
    )


@pytest.mark.gpu
def test_real_engine_build(tmp_path: Path) -> None:
    ok, why = tb.availability()
    if not ok:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {why}")
    trt = tb.import_tensorrt()
    assert trt is not None
    _tiny_onnx(tmp_path / "m.onnx")
    strategy = tb.choose_strategy(str(trt.__version__), "fp32")
    result = tb.build_engine(
        tmp_path / "m.onnx",
        tmp_path / "m.fp32.trt",
        strategy,
        input_name="image",
        chw=(3, 8, 8),
        batch=(1, 2, 4),
        dynamic=True,
        timing_cache=tmp_path / "timing.cache",
    )
    assert result.engine.stat().st_size > 0 and (tmp_path / "timing.cache").stat().st_size > 0
    assert result.version == str(trt.__version__)
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
        result.engine.read_bytes()
    )
    assert engine is not None and engine.num_io_tensors == 2
    # parser errors are listed, not swallowed
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="parser failed"):
        tb.build_engine(
            tmp_path / "bad.onnx",
            tmp_path / "bad.trt",
            strategy,
            input_name="image",
            chw=(3, 8, 8),
            batch=(1, 1, 1),
            dynamic=False,
        )

"""Torch-free ONNX handling: check, simplify, inspect, run in ONNX Runtime.

Why separate from the torch exporter: a bundle's FP32 ONNX is re-checked,
converted and re-run on devices that have onnx/onnxruntime and no PyTorch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgemtl.core.errors import UserError
from edgemtl.core.manifest import default_opset
from edgemtl.core.threads import run_choice
from edgemtl.deploy.runtime.ort_session import build_session

#: ONNX tensor element type -> numpy dtype name, for the manifest's output records.
_ELEM_NAMES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.DOUBLE: "float64",
}


def load(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 (protobuf DecodeError, OSError, onnx's own errors)
        raise UserError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def save(model: onnx.ModelProto, path: str | Path) -> None:
    """One self-contained file (weights inline), refusing the 2 GB protobuf limit up front."""
    if model.ByteSize() >= 2**31 - 1:
        raise UserError(f"{path}: model is over 2 GB, which a single-file ONNX cannot hold")
    onnx.save_model(model, str(path), save_as_external_data=False)


def full_check(path: str | Path) -> None:
    """`onnx.checker` with full type/shape inference; a failure is a UserError naming the file."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: ONNX checker failed: {first}") from None


def simplify(
    model: onnx.ModelProto, skip_constant_folding: bool = False
) -> tuple[onnx.ModelProto, str | None]:
    """Run onnxsim; on any failure keep the original and return the reason as a warning.

    `skip_constant_folding` is for unpool graphs, where folding inflates the file.
    onnxsim is an optional dependency (the `train` extra): absent means "kept".
    """
    try:
        import onnxsim
    except ImportError:
        return model, "simplification skipped: onnxsim is not installed, kept the original"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(model, skip_constant_folding=skip_constant_folding)
    except Exception as exc:  # noqa: BLE001 (any onnxsim failure means: keep the original)
        return (
            model,
            f"simplification failed: kept the original ({type(exc).__name__}: {str(exc)[:120]})",
        )
    if not ok:
        return model, "simplification failed: kept the original (onnxsim's own check did not pass)"
    return simplified, None


def opset(model: onnx.ModelProto) -> int:
    version = default_opset(model)
    if version is None:
        raise UserError("ONNX model has no default-domain opset_import")
    return version


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def io_info(model: onnx.ModelProto) -> dict[str, list[dict[str, Any]]]:
    """Graph inputs (initializers excluded) and outputs: name, shape, dtype."""
    inits = {t.name for t in model.graph.initializer}

    def info(v: onnx.ValueInfoProto) -> dict[str, Any]:
        elem = int(v.type.tensor_type.elem_type)
        return {"name": v.name, "shape": _dims(v), "dtype": _ELEM_NAMES.get(elem, str(elem))}

    return {
        "inputs": [info(v) for v in model.graph.input if v.name not in inits],
        "outputs": [info(v) for v in model.graph.output],
    }


def initializer_arrays(model: onnx.ModelProto) -> list[np.ndarray]:
    """All weights as numpy arrays (used to prove a head holds no foreign tensor)."""
    from onnx import numpy_helper

    return [numpy_helper.to_array(t) for t in model.graph.initializer]


def session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session configured as the profiler's (`deploy.runtime.ort_session`).

    `threads` None: the run's choice from the free CPUs (`edgemtl.core.threads.run_choice`),
    spin-waiting only on an idle machine. Raises UserError naming the file when ORT
    cannot load it.
    """
    choice = run_choice()
    return build_session(path, threads or choice.threads, spin=choice.spin)


def run_batches(sess: Any, batches: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Run every batch through `sess`; outputs concatenated along the batch axis, by name."""
    input_meta = sess.get_inputs()[0]
    want_fp16 = input_meta.type == "tensor(float16)"
    names = [o.name for o in sess.get_outputs()]
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for batch in batches:
        feed = batch.astype(np.float16 if want_fp16 else np.float32, copy=False)
        for name, value in zip(names, sess.run(names, {input_meta.name: feed})):
            chunks[name].append(np.asarray(value))
    return {n: np.concatenate(v, axis=0) for n, v in chunks.items() if v}

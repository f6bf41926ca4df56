"""FP32 ONNX -> symmetric INT8 QDQ ONNX, calibrated on real images (numpy batches).

Why these settings: one QDQ graph must run in ONNX Runtime (CPU) and be
TensorRT's explicit-quantization input. TensorRT wants zero-point 0, so both
activations and weights are symmetric (ORT's default activation scheme is
asymmetric); weights are per output channel.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgemtl.core.errors import UserError


class _BatchReader:
    """`onnxruntime.quantization.CalibrationDataReader` over a list of input batches."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._input = input_name
        self._batches = list(batches)
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._batches):
            return None
        batch = self._batches[self._i].astype(np.float32, copy=False)
        self._i += 1
        return {self._input: batch}

    def rewind(self) -> None:
        self._i = 0


def quantize_int8(
    fp32_path: str | Path, out_path: str | Path, calib: Sequence[np.ndarray]
) -> onnx.ModelProto:
    """Write the INT8 QDQ model to `out_path` and return it.

    `calib`: batches shaped like the graph input (N x 3 x H x W float32, normalised).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calib:
        raise UserError("INT8 needs calibration images: --calib must be at least 1")
    model = onnx.load(str(fp32_path))
    inits = {t.name for t in model.graph.initializer}
    input_name = next(v.name for v in model.graph.input if v.name not in inits)

    class Reader(_BatchReader, CalibrationDataReader):  # type: ignore[misc]
        pass

    with tempfile.TemporaryDirectory(prefix="edgemtl-int8-") as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        # Symbolic shape inference trips on the Expand of F.normalize; ONNX's own suffices.
        quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=True)
        quantize_static(
            str(prepped),
            str(out_path),
            Reader(input_name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
    return onnx.load(str(out_path))


def qdq_summary(model: onnx.ModelProto) -> dict[str, Any]:
    """Facts that prove the graph is symmetric per-channel QDQ (used by tests and the manifest)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dequant = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    zero_points = [
        numpy_helper.to_array(inits[n.input[2]])
        for n in quant + dequant
        if len(n.input) > 2 and n.input[2] in inits
    ]
    per_channel = [
        n
        for n in dequant
        if any(a.name == "axis" for a in n.attribute)
        and n.input[0] in inits
        and numpy_helper.to_array(inits[n.input[1]]).size > 1
    ]
    weight_dq = [n for n in dequant if n.input[0] in inits]
    return {
        "quantize_nodes": len(quant),
        "dequantize_nodes": len(dequant),
        "weight_dequantize_nodes": len(weight_dq),
        "activation_quantize_nodes": len([n for n in quant if n.input[0] not in inits]),
        "per_channel_weights": len(per_channel),
        "all_zero_points_zero": all(not np.any(z) for z in zero_points),
        "int8_types": sorted({str(z.dtype) for z in zero_points}),
    }

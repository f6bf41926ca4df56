"""FP32 ONNX -> symmetric INT8 QDQ ONNX, calibrated on real images (numpy batches).

Why these settings: one QDQ graph must run in ONNX Runtime (CPU) and be
TensorRT's explicit-quantization input. TensorRT wants zero-point 0, so both
activations and weights are symmetric (ORT's default activation scheme is
asymmetric); weights are per output channel.

Why some nodes stay float (`float_nodes`), measured on ONNX Runtime's CPU provider
(docs/export.md "INT8: what stays float"):
- it has no INT8 ConvTranspose kernel, so a quantized one runs in float between
  DequantizeLinear and QuantizeLinear, its weights dequantized on every run (about
  29 % of the paper Student's INT8 time, issue 15);
- a small Conv (fewer than `MIN_INT8_MACS` multiply-adds per output value: the
  1x1 up-stage convs and the full-resolution 8-channel 3x3 convs of a narrow model)
  saves less in its INT8 kernel than the Quantize/Dequantize/layout nodes around it
  cost (`MIN_INT8_MACS` says by how much);
- a cheap op (ReLU, Add, Resize, pooling) fed only by float nodes would pay a
  Quantize and a Dequantize for one op, so it stays float too. Weighted ops are not
  swept along: a large Conv behind a float one still pays for its own Quantize.
TensorRT runs the float layers in FP16/FP32 inside an INT8 engine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgemtl.core.errors import UserError

#: Op types ONNX Runtime's CPU provider runs in float even inside a QDQ graph (no INT8
#: kernel): quantizing them only adds conversions.
NO_INT8_KERNEL: frozenset[str] = frozenset({"ConvTranspose"})

#: Ops with weights: never kept float just because their input is float.
WEIGHTED_OPS: frozenset[str] = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})

#: A Conv doing fewer multiply-adds per output value (input channels per group x kernel
#: area) stays float. `python benchmarks/int8_rule.py` (ONNX Runtime CPU, 1 thread,
#: 64x128): at width 1/8 this threshold made INT8 1.13-1.30x FP32 for the Teacher and
#: three Students, where quantizing every Conv gave 0.86-1.23x; at widths 0.25 and 1.0
#: the speed-ups were within 3 % either way.
MIN_INT8_MACS = 128


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


def conv_macs_per_output(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> int | None:
    """Multiply-adds per output value of a Conv (input channels per group x kernel area,
    from its weight initializer of dims [out, in/group, kh, kw]); None when the node is
    not a Conv or its weight is computed, not stored."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return None
    dims = list(inits[node.input[1]].dims)
    return int(np.prod(dims[1:])) if len(dims) >= 3 else None


def float_nodes(model: onnx.ModelProto, min_macs: int = MIN_INT8_MACS) -> list[str]:
    """Names of the nodes to keep float, in graph order: op types in `NO_INT8_KERNEL`,
    Convs below `min_macs` multiply-adds per output value (0: none), then, repeatedly,
    every node outside `WEIGHTED_OPS` whose activation inputs (graph inputs and
    initializers aside) all come from nodes already kept float. Expects named nodes
    (`name_nodes`)."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    kept: set[str] = set()
    for node in model.graph.node:
        macs = conv_macs_per_output(node, inits)
        if node.op_type in NO_INT8_KERNEL or (macs is not None and macs < min_macs):
            kept.add(node.name)
    changed = bool(kept)
    while changed:
        changed = False
        for node in model.graph.node:
            if node.name in kept or node.op_type in WEIGHTED_OPS:
                continue
            sources = [producer.get(i) for i in node.input if i and i not in inits]
            if sources and all(s is not None and s.name in kept for s in sources):
                kept.add(node.name)
                changed = True
    return [n.name for n in model.graph.node if n.name in kept]


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (quantize_static excludes nodes by name)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calib: Sequence[np.ndarray],
    min_macs: int = MIN_INT8_MACS,
) -> onnx.ModelProto:
    """Write the INT8 QDQ model to `out_path` and return it.

    `calib`: batches shaped like the graph input (N x 3 x H x W float32, normalised).
    `min_macs`: Convs below it stay float (`float_nodes`; benchmarks/int8_rule.py sweeps it).
    Raises UserError when `calib` is empty.
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
        prepped_model = onnx.load(str(prepped))
        name_nodes(prepped_model)
        onnx.save(prepped_model, str(prepped))
        quantize_static(
            str(prepped),
            str(out_path),
            Reader(input_name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes(prepped_model, min_macs),
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
    fed = {o for n in dequant for o in n.output}
    weighted: dict[bool, dict[str, int]] = {True: {}, False: {}}  # weight behind a DQ?
    for node in model.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1:
            counts = weighted[node.input[1] in fed]
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {
        "quantize_nodes": len(quant),
        "dequantize_nodes": len(dequant),
        "weight_dequantize_nodes": len(weight_dq),
        "activation_quantize_nodes": len([n for n in quant if n.input[0] not in inits]),
        "per_channel_weights": len(per_channel),
        "all_zero_points_zero": all(not np.any(z) for z in zero_points),
        "int8_types": sorted({str(z.dtype) for z in zero_points}),
        # weighted nodes by op type: quantized, and run as plain float (`float_nodes`)
        "weighted_int8_nodes": dict(sorted(weighted[True].items())),
        "weighted_float_nodes": dict(sorted(weighted[False].items())),
    }

"""FP32 ONNX -> FP16-typed ONNX (weights stored as FP16), for ORT and TensorRT 11.

Why a kept library: onnxruntime's converter already handles initializers,
value_info and Cast insertion at the borders of blocked ops; we only choose
what stays FP32. Inputs/outputs stay FP32 (`keep_io_types`) so callers feed
the same normalised float32 images to every precision.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx

from edgemtl.core.errors import UserError

#: Numerically sensitive ops kept in FP32: the L2 normalisation of normals
#: (sum of squares overflows/underflows in FP16), softmax/log-softmax of the
#: ensemble, and the argmax of decoded labels (ties flip in FP16).
SENSITIVE_OPS: tuple[str, ...] = (
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceSum",
    "ReduceMean",
    "Sqrt",
    "Pow",
    "Div",
    "Clip",
    "Softmax",
    "LogSoftmax",
    "ArgMax",
    "Exp",
    "Log",
)


def to_fp16(model: onnx.ModelProto, extra_block: tuple[str, ...] = ()) -> onnx.ModelProto:
    """Return the FP16 version of `model`; raises UserError if no weight became FP16."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(SENSITIVE_OPS) | set(extra_block))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    _drop_duplicate_nodes(converted)
    _fold_cast_roundtrips(converted)
    _topological_sort(converted)
    if fp16_weight_fraction(converted) == 0.0:
        raise UserError(
            "FP16 conversion produced no FP16 weights: refusing a silent FP32 'fp16' artifact"
        )
    return converted


def _drop_duplicate_nodes(model: onnx.ModelProto) -> None:
    """Remove byte-identical nodes in place.

    The converter inserts one Cast per blocked consumer of a tensor, all with the
    same name and output (e.g. the ReduceL2 and Div of F.normalize), which makes
    the graph invalid; keeping the first of each is exactly the intended graph.
    """
    seen: set[bytes] = set()
    kept = []
    for node in model.graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            kept.append(node)
    if len(kept) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(kept)


def _fold_cast_roundtrips(model: onnx.ModelProto) -> None:
    """Drop FP32 -> FP16 -> FP32 Cast pairs between two FP32-kept ops.

    The converter returns every blocked op's output to FP16 and casts it back
    for the next blocked op; for F.normalize that rounds the clamped norm
    (eps = 1e-12) to 0 in FP16 and turns zero vectors into 0/0 = NaN.
    """
    graph = model.graph
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def cast_to(node: onnx.NodeProto) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    rename: dict[str, str] = {}
    dead: set[int] = set()
    for node in graph.node:
        if cast_to(node) != onnx.TensorProto.FLOAT16 or node.output[0] in outputs:
            continue
        users = consumers.get(node.output[0], [])
        if not users or any(
            cast_to(u) != onnx.TensorProto.FLOAT or u.output[0] in outputs for u in users
        ):
            continue
        for user in users:
            rename[user.output[0]] = node.input[0]
            dead.add(id(user))
        dead.add(id(node))
    if not dead:
        return
    kept = [n for n in graph.node if id(n) not in dead]
    for node in kept:
        for i, name in enumerate(node.input):
            while name in rename:
                name = rename[name]
            node.input[i] = name
    del graph.node[:]
    graph.node.extend(kept)


def _topological_sort(model: onnx.ModelProto) -> None:
    """Reorder nodes so each comes after its inputs' producers (the converter appends the
    input Casts at the end, which ORT tolerates and onnx.checker rejects)."""
    graph = model.graph
    ready = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a dangling input: leave it to the checker
            ordered.extend(rest)
            break
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def fp16_weight_fraction(model: onnx.ModelProto) -> float:
    """Share of floating-point weight elements stored as FP16 (proof the file is FP16)."""
    import numpy as np

    half = total = 0
    for init in model.graph.initializer:
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            n = int(np.prod(init.dims)) if len(init.dims) else 1
            total += n
            half += n if init.data_type == onnx.TensorProto.FLOAT16 else 0
    return half / total if total else 0.0


def save_fp16(model: onnx.ModelProto, path: str | Path) -> None:
    from edgemtl.export.onnx_tools import save

    save(model, path)

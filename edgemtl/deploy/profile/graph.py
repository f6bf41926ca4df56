"""Parameters and FLOPs of an ONNX graph, read from the graph itself.

Why from the graph: the report compares what actually runs (a Student ONNX vs
a Teacher ONNX, FP32 vs INT8 QDQ), not what a recipe says. FLOPs count the
multiply-adds of convolutions, transposed convolutions and matrix products
(2 FLOPs per MAC) at batch 1; element-wise ops are left out, as is usual.
Parameters are the elements of the weights and biases those ops consume, seen
through DequantizeLinear in QDQ graphs so INT8 and FP32 count alike.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization"}


def graph_cost(path: str | Path, batch: int = 1) -> dict[str, int]:
    """{"params": n, "flops": n} for the ONNX model at `path` (batch-1 FLOPs unless `batch`)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path), load_external_data=False)
    _fix_batch(model, batch)
    with contextlib.suppress(Exception):  # shapes stay unknown: FLOPs of those nodes count as 0
        model = shape_inference.infer_shapes(model)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    shapes: dict[str, list[int]] = {}
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = [
            d.dim_value if d.HasField("dim_value") else 0 for d in vi.type.tensor_type.shape.dim
        ]
        shapes[vi.name] = dims

    def weight(name: str) -> Any | None:
        """The initializer behind `name`, looking through DequantizeLinear / Identity / Cast."""
        seen = 0
        while name not in inits and name in producers and seen < 4:
            node = producers[name]
            if node.op_type not in ("DequantizeLinear", "Identity", "Cast"):
                return None
            name = node.input[0]
            seen += 1
        return inits.get(name)

    params = 0
    flops = 0
    counted: set[str] = set()
    for node in graph.node:
        if node.op_type not in _WEIGHTED:
            continue
        for inp in node.input[1:]:
            init = weight(inp) if inp else None
            if init is not None and init.name not in counted:
                counted.add(init.name)
                params += int(np.prod(init.dims)) if len(init.dims) else 1
        flops += _node_flops(node, shapes, weight)
    return {"params": params, "flops": flops}


def _node_flops(node: Any, shapes: dict[str, list[int]], weight: Any) -> int:
    out = shapes.get(node.output[0], [])
    w = weight(node.input[1]) if len(node.input) > 1 else None
    if node.op_type == "Conv" and w is not None and out and all(out):
        _cout, cin_g, *k = w.dims
        return 2 * int(np.prod(out)) * int(cin_g) * int(np.prod(k))
    if node.op_type == "ConvTranspose" and w is not None:
        inp = shapes.get(node.input[0], [])
        if inp and all(inp):
            _cin, cout_g, *k = w.dims
            return 2 * int(np.prod(inp)) * int(cout_g) * int(np.prod(k))
    if node.op_type in ("Gemm", "MatMul") and w is not None and out and all(out):
        return 2 * int(np.prod(out)) * int(w.dims[0] if node.op_type == "MatMul" else w.dims[-1])
    return 0


def _fix_batch(model: Any, batch: int) -> None:
    """Pin a symbolic batch dimension so shape inference yields numbers."""
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch

"""Toy export bundles built with onnx.helper (no torch) for the deploy-side tests.

`make_toy_bundle` writes a real ONNX graph (convolutions, the output names of
docs/formats.md), its manifest and metadata_props through
`edgemtl.core.manifest`, so everything downstream runs the real ONNX Runtime on
a real file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgemtl.core.io import sha256_file
from edgemtl.core.manifest import Artifact, Manifest, embed_metadata, write_manifest

CLASSES = ["floor", "wall", "box"]
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]


def _conv(
    name: str, x: str, y: str, cin: int, cout: int, rng: np.random.Generator, inits: list
) -> onnx.NodeProto:
    w = (rng.standard_normal((cout, cin, 3, 3)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]
    return helper.make_node(
        "Conv", [x, f"{name}.w", f"{name}.b"], [y], pads=[1, 1, 1, 1], name=name
    )


def toy_model(
    height: int,
    width: int,
    hidden: int,
    depth_layers: int,
    seed: int = 0,
    dynamic: bool = True,
    n_classes: int = len(CLASSES),
) -> onnx.ModelProto:
    """image -> `depth_layers` conv+relu (hidden ch) -> seg_logits (3 ch) and depth (1 ch,
    softplus-free)."""
    rng = np.random.default_rng(seed)
    inits: list = []
    nodes = []
    cur, cin = "image", 3
    for i in range(depth_layers):
        nodes.append(_conv(f"c{i}", cur, f"h{i}", cin, hidden, rng, inits))
        nodes.append(helper.make_node("Relu", [f"h{i}"], [f"r{i}"]))
        cur, cin = f"r{i}", hidden
    nodes.append(_conv("seg", cur, "seg_logits", cin, n_classes, rng, inits))
    nodes.append(_conv("dep", cur, "depth_raw", cin, 1, rng, inits))
    nodes.append(helper.make_node("Abs", ["depth_raw"], ["depth"]))
    n: int | str = "batch" if dynamic else 1
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [n, 3, height, width])],
        [
            helper.make_tensor_value_info(
                "seg_logits", TensorProto.FLOAT, [n, n_classes, height, width]
            ),
            helper.make_tensor_value_info("depth", TensorProto.FLOAT, [n, 1, height, width]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def toy_manifest(
    head: str, height: int, width: int, dataset: dict | None = None, classes: list[str] = CLASSES
) -> Manifest:
    return Manifest.model_validate(
        {
            "head": head,
            "tasks": {
                "seg": {
                    "key": "seg",
                    "kind": "seg",
                    "channels": len(classes),
                    "class_names": list(classes),
                },
                "depth": {"key": "depth", "kind": "depth", "channels": 1, "units": "m"},
            },
            "input": {
                "shape": ["batch", 3, height, width],
                "height": height,
                "width": width,
                "mean": MEAN,
                "std": STD,
            },
            "dataset": dataset,
        }
    )


def make_toy_bundle(
    folder: Path,
    head: str = "student",
    height: int = 16,
    width: int = 32,
    dynamic: bool = True,
    dataset: dict | None = None,
    classes: list[str] = CLASSES,
) -> Path:
    """A bundle with `<head>.fp32.onnx` (Teacher: 3 hidden layers, Student: 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    layers, hidden = (3, 16) if head == "teacher" else (1, 8)
    model = toy_model(
        height,
        width,
        hidden,
        layers,
        seed=1 if head == "teacher" else 0,
        dynamic=dynamic,
        n_classes=len(classes),
    )
    manifest = toy_manifest(head, height, width, dataset, classes)
    n: int | str = "batch" if dynamic else 1
    art = Artifact.model_validate(
        {
            "file": f"{head}.fp32.onnx",
            "format": "onnx",
            "precision": "fp32",
            "sha256": "0" * 64,
            "opset": 18,
            "outputs": [
                {
                    "name": "seg_logits",
                    "task": "seg",
                    "shape": [n, len(classes), height, width],
                    "dtype": "float32",
                },
                {
                    "name": "depth",
                    "task": "depth",
                    "shape": [n, 1, height, width],
                    "dtype": "float32",
                },
            ],
            "batch": {"dynamic": dynamic, "min": 1, "opt": 1, "max": 64 if dynamic else 1},
        }
    )
    embed_metadata(model, manifest, art)
    path = folder / art.file
    onnx.save(model, str(path))
    art.sha256 = sha256_file(path)
    art.size_bytes = path.stat().st_size
    manifest.artifacts.append(art)
    write_manifest(folder, manifest)
    return folder

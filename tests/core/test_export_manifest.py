"""Manifest schema, checksums and ONNX metadata_props (torch-free)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgemtl.core import manifest as mf
from edgemtl.core.errors import UserError
from edgemtl.core.io import sha256_file


def _tiny_onnx(path: Path) -> onnx.ModelProto:
    """x (1x3x4x4) -> 1x1 conv to 2 channels named seg_logits."""
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    node = helper.make_node("Conv", ["image", "w"], ["seg_logits"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("seg_logits", TensorProto.FLOAT, [1, 2, 4, 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path))
    return model


def _manifest(sha: str = "0" * 64) -> mf.Manifest:
    return mf.manifest_from_dict(
        {
            "schema_version": 1,
            "head": "student",
            "tasks": {
                "seg": {
                    "key": "seg",
                    "kind": "seg",
                    "channels": 2,
                    "class_names": ["bg", "fg"],
                    "units": "class",
                }
            },
            "input": {"shape": [1, 3, 4, 4], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
            "dataset": {"kind": "synthetic", "params": {"seed": 3}},
            "artifacts": [
                {
                    "file": "student.fp32.onnx",
                    "format": "onnx",
                    "precision": "fp32",
                    "sha256": sha,
                    "opset": 18,
                    "outputs": [
                        {
                            "name": "seg_logits",
                            "task": "seg",
                            "shape": [1, 2, 4, 4],
                            "dtype": "float32",
                            "meaning": "raw class logits",
                        }
                    ],
                    "parity": {
                        "reference": "torch",
                        "passed": True,
                        "samples": 4,
                        "checks": {
                            "seg": {"max_abs": {"value": 1e-5, "tolerance": 1e-3, "passed": True}}
                        },
                    },
                }
            ],
        }
    )


def test_roundtrip_and_lookup(tmp_path: Path) -> None:
    m = _manifest()
    mf.write_manifest(tmp_path, m)
    back = mf.load_manifest(tmp_path)
    assert back.to_dict() == m.to_dict()
    assert (back.input.height, back.input.width) == (4, 4)
    from edgemtl.data.preprocess import InputSpec

    spec = InputSpec.from_dict(back.input.input_spec_dict())
    assert (spec.height, spec.width, spec.mean) == (4, 4, (0.5, 0.5, 0.5))
    art = mf.find_artifact(back, "onnx", "fp32")
    assert art is not None and art.parity is not None
    assert art.parity.checks["seg"]["max_abs"].op == "<="
    assert mf.find_artifact(back, "onnx", "int8") is None
    assert back.artifacts[0].batch.dynamic is False


def test_unknown_keys_survive_a_rewrite(tmp_path: Path) -> None:
    data = _manifest().to_dict()
    data["future_field"] = {"x": 1}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    mf.write_manifest(tmp_path, mf.load_manifest(tmp_path))
    assert json.loads((tmp_path / "manifest.json").read_text())["future_field"] == {"x": 1}


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d.pop("head"), "field head"),
        (lambda d: d["artifacts"][0].update(precision="fp8"), "artifacts.0.precision"),
        (lambda d: d.update(schema_version=3), "schema_version is 3, this edgemtl reads 1 and 2"),
    ],
)
def test_bad_manifest_names_file_and_field(tmp_path: Path, mutate, needle) -> None:
    data = _manifest().to_dict()
    mutate(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="manifest.json") as info:
        mf.load_manifest(tmp_path)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_broken_manifest(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no manifest.json"):
        mf.load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        mf.load_manifest(tmp_path)


def test_verify_artifact_checksum(tmp_path: Path) -> None:
    _tiny_onnx(tmp_path / "student.fp32.onnx")
    m = _manifest(sha256_file(tmp_path / "student.fp32.onnx"))
    assert mf.verify_artifact(tmp_path, m.artifacts[0]) == tmp_path / "student.fp32.onnx"
    with open(tmp_path / "student.fp32.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(UserError, match="checksum mismatch"):
        mf.verify_artifact(tmp_path, m.artifacts[0])
    (tmp_path / "student.fp32.onnx").unlink()
    with pytest.raises(UserError, match="missing from the bundle"):
        mf.verify_artifact(tmp_path, m.artifacts[0])


def test_metadata_props_make_a_lone_onnx_self_describing(tmp_path: Path) -> None:
    path = tmp_path / "lone.onnx"
    proto = _tiny_onnx(path)
    proto.metadata_props.add(key="author", value="someone")
    m = _manifest()
    mf.embed_metadata(proto, m, m.artifacts[0])
    mf.embed_metadata(proto, m, m.artifacts[0])  # idempotent: no duplicate keys
    onnx.save(proto, str(path))
    keys = [p.key for p in onnx.load(str(path)).metadata_props]
    assert len(keys) == len(set(keys)) and "author" in keys

    facts = mf.read_metadata(path)
    assert facts["head"] == "student" and facts["precision"] == "fp32" and facts["opset"] == 18
    assert facts["input"]["mean"] == [0.5, 0.5, 0.5]
    assert facts["outputs"][0]["name"] == "seg_logits"
    assert facts["tasks"]["seg"]["class_names"] == ["bg", "fg"]

    lone = mf.manifest_from_metadata(path)
    assert lone.artifacts[0].file == "lone.onnx"
    assert lone.artifacts[0].sha256 == sha256_file(path)
    assert lone.artifacts[0].opset == 18
    assert lone.dataset == {"kind": "synthetic", "params": {"seed": 3}}


def test_lone_onnx_without_metadata_is_a_user_error(tmp_path: Path) -> None:
    _tiny_onnx(tmp_path / "plain.onnx")
    with pytest.raises(UserError, match="carries no edgemtl metadata"):
        mf.manifest_from_metadata(tmp_path / "plain.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x07garbage")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        mf.read_metadata(tmp_path / "junk.onnx")

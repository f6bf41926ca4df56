"""Hostile artifacts: checkpoints, manifests and lone ONNX files with one field broken.

Classes (issue 13): `nonfinite` (item 5: NaN/Inf weights; `eval`, `export`,
`profile`, `predict` refuse them), `ckpt` (item 9: a checkpoint field malformed),
`manifest` (item 9: a bundle manifest malformed or disagreeing with its graph)
and `onnxmeta` (item 9: the same faults in a lone .onnx file's metadata_props).
Every case: exit 1, one line naming the file and the field, the artifact unchanged.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from edgemtl.core.io import sha256_file
from tests.helpers.hostile_cases import assert_hostile, tree_digest
from tests.helpers.toy_bundle import make_toy_bundle

CKPT_COMMANDS = ("eval", "export", "profile", "predict")
BUNDLE_COMMANDS = ("export", "profile", "predict")


def _args(command: str, artifact: Path, work: Path) -> list[str]:
    """The command line of `command` on `artifact`, writing (if it got that far) under `work`."""
    image = work / "frame.png"
    if not image.exists():
        Image.fromarray(np.full((24, 40, 3), 128, np.uint8)).save(image)
    return {
        "eval": ["eval", artifact, "--limit", "2", "-q"],
        "export": ["export", artifact, "--no-trt", "--samples", "1", "-q"]
        + ([] if artifact.is_dir() else ["--out", work / "bundle"]),
        "profile": ["profile", artifact, "-n", "1", "--warmup", "0", "--warmup-s", "0"]
        + ["--rounds", "1", "--no-power", "--idle", "0", "-q"],
        "predict": ["predict", artifact, image, "--out", work / "preds", "-q"],
    }[command]


# ---- checkpoints ---------------------------------------------------------------------


def _set_tensor(name_part: str, value: float, index: int = 0) -> Callable[[dict], dict]:
    def change(raw: dict) -> dict:
        model = dict(raw["model"])
        key = next(k for k in model if name_part in k and model[k].is_floating_point())
        tensor = model[key].clone()
        tensor.view(-1)[index] = value
        model[key] = tensor
        return {"model": model}

    return change


#: (case, change to the tiny checkpoint's dict, fragment the error must hold)
NONFINITE: list[tuple[str, Callable[[dict], dict], str]] = [
    ("nan-conv-weight", _set_tensor("encoder.stages.0.0.0.weight", float("nan")), "field model."),
    ("inf-bn-bias", _set_tensor("encoder.stages.1.0.1.bias", float("inf")), "field model."),
    ("nan-running-var", _set_tensor("running_var", float("nan"), 1), "field model."),
    ("neginf-student", _set_tensor("student.", float("-inf")), "field model.st"),
]


def _input(**changes: Any) -> Callable[[dict], dict]:
    return lambda raw: {"input": {**raw["input"], **changes}}


def _task(key: str, **changes: Any) -> Callable[[dict], dict]:
    def change(raw: dict) -> dict:
        tasks = copy.deepcopy(raw["tasks"])
        tasks[key].update(changes)
        for name, value in changes.items():
            if value is None:
                del tasks[key][name]
        return {"tasks": tasks}

    return change


def _wrong_shape(raw: dict) -> dict:
    model = dict(raw["model"])
    model[next(iter(model))] = torch.zeros(2)
    return {"model": model}


CKPT_FIELDS: list[tuple[str, Callable[[dict], dict], str]] = [
    ("schema-version-string", lambda raw: {"schema_version": "2"}, "field schema_version"),
    ("recipe-not-a-dict", lambda raw: {"recipe": "synthetic.yaml"}, "field recipe"),
    ("task-without-channels", _task("seg", channels=None), "field tasks.seg.channels"),
    ("empty-input", lambda raw: {"input": {}}, "field input."),
    ("mean-two-values", _input(mean=[0.5, 0.5]), "field input.mean"),
    ("std-zero", _input(std=[0.25, 0.0, 0.25]), "field input.std.1"),
    ("std-nan", _input(std=[0.25, 0.25, float("nan")]), "field input.std.2"),
    ("negative-height", _input(shape=["N", 3, -32, 64]), "field input.shape"),
    ("class-names-short", _task("seg", class_names=["floor"]), "field tasks.seg"),
    ("unknown-kind", _task("depth", kind="height"), "field tasks.depth.kind"),
    ("depth-two-channels", _task("depth", channels=2), "field tasks.depth"),
    ("seg-encoding", _task("seg", encoding="inverse_depth"), "field tasks.seg"),
    ("depth-encoding-unknown", _task("depth", encoding="log_depth"), "field tasks.depth"),
    ("model-not-a-dict", lambda raw: {"model": "weights"}, "field model"),
    ("weights-wrong-shape", _wrong_shape, "weights do not match its recipe"),
    ("data-without-kind", lambda raw: {"data": {"root": None}}, "field data.kind"),
    ("negative-epoch", lambda raw: {"epoch": -1}, "field epoch"),
]


@pytest.fixture(scope="module")
def tiny_raw(tiny_checkpoint: Path) -> dict:
    return torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)


def _broken_checkpoint(tmp_path: Path, raw: dict, change: Callable[[dict], dict]) -> Path:
    broken = dict(raw)
    broken.update(change(raw))
    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    torch.save(broken, path)
    return path


@pytest.mark.parametrize("command", CKPT_COMMANDS)
@pytest.mark.parametrize("case", [c[0] for c in NONFINITE], ids=lambda c: f"nonfinite-{c}")
def test_nonfinite_weights_are_refused(
    tiny_raw: dict, tmp_path: Path, case: str, command: str
) -> None:
    _, change, fragment = next(c for c in NONFINITE if c[0] == case)
    path = _broken_checkpoint(tmp_path, tiny_raw, change)
    assert_hostile(
        _args(command, path, tmp_path),
        f"checkpoint {path}",
        fragment,
        "NaN/Inf weights",
        unchanged=[path.parent, tmp_path / "bundle", tmp_path / "preds"],
    )


@pytest.mark.parametrize("command", CKPT_COMMANDS)
@pytest.mark.parametrize("case", [c[0] for c in CKPT_FIELDS], ids=lambda c: f"ckpt-{c}")
def test_malformed_checkpoint_field(
    tiny_raw: dict, tmp_path: Path, case: str, command: str
) -> None:
    _, change, fragment = next(c for c in CKPT_FIELDS if c[0] == case)
    path = _broken_checkpoint(tmp_path, tiny_raw, change)
    assert_hostile(
        _args(command, path, tmp_path),
        f"checkpoint {path}",
        fragment,
        unchanged=[path.parent, tmp_path / "bundle", tmp_path / "preds"],
    )


# ---- bundle manifests ------------------------------------------------------------------


def _manifest_input(**changes: Any) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        m["input"].update(changes)

    return change


def _output(index: int, **changes: Any) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        m["artifacts"][0]["outputs"][index].update(changes)

    return change


def _resized(height: int) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        m["input"]["height"] = height
        m["input"]["shape"][2] = height

    return change


def _batch(**changes: Any) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        m["artifacts"][0]["batch"].update(changes)

    return change


def _short_classes(m: dict) -> None:
    m["tasks"]["seg"]["class_names"] = m["tasks"]["seg"]["class_names"][:2]


#: (case, change to the toy bundle's manifest dict in place, fragment of the error)
MANIFEST_FIELDS: list[tuple[str, Callable[[dict], None], str]] = [
    ("height-not-the-graphs", _resized(24), "field input.height/width: 24x32 disagrees"),
    ("negative-height", _resized(-16), "field input.height"),
    ("mean-two-values", _manifest_input(mean=[0.5, 0.5]), "field input.mean"),
    ("std-zero", _manifest_input(std=[0.25, 0.0, 0.25]), "field input.std.1"),
    ("std-negative", _manifest_input(std=[-0.25, 0.25, 0.25]), "field input.std.0"),
    ("value-range-reversed", _manifest_input(value_range=[1.0, 0.0]), "field input"),
    ("output-not-in-graph", _output(0, name="seg_probs"), "field artifacts.0.outputs.0.name"),
    ("output-task-unknown", _output(1, task="height"), "field artifacts.0.outputs.1.task"),
    ("class-names-short", _short_classes, "field tasks.seg"),
    ("batch-min-above-max", _batch(min=8, max=4), "field artifacts.0.batch"),
]


@pytest.mark.parametrize("command", BUNDLE_COMMANDS)
@pytest.mark.parametrize("case", [c[0] for c in MANIFEST_FIELDS], ids=lambda c: f"manifest-{c}")
def test_malformed_manifest_field(tmp_path: Path, case: str, command: str) -> None:
    _, change, fragment = next(c for c in MANIFEST_FIELDS if c[0] == case)
    bundle = make_toy_bundle(tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    before = tree_digest(bundle)
    assert_hostile(
        _args(command, bundle, tmp_path),
        f"{bundle / 'manifest.json'}",
        fragment,
        unchanged=[tmp_path / "preds"],
    )
    assert tree_digest(bundle) == before


# ---- a lone .onnx file's metadata_props ----------------------------------------------------


def _meta(key: str, edit: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def change(facts: dict[str, Any]) -> None:
        facts[key] = edit(facts[key])

    return change


def _meta_input(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return _meta("input", lambda v: {**v, **changes})


ONNX_META: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "height-not-the-graphs",
        _meta_input(height=24, shape=["batch", 3, 24, 32]),
        "field input.height/width",
    ),
    ("mean-two-values", _meta_input(mean=[0.5, 0.5]), "field input.mean"),
    ("std-zero", _meta_input(std=[0.0, 0.25, 0.25]), "field input.std.0"),
    (
        "output-not-in-graph",
        _meta("outputs", lambda v: [{**v[0], "name": "labels"}, *v[1:]]),
        "field artifacts.0.outputs.0.name",
    ),
    (
        "unknown-kind",
        _meta("tasks", lambda v: {**v, "depth": {**v["depth"], "kind": "height"}}),
        "field tasks.depth.kind",
    ),
]


@pytest.mark.parametrize("command", ("profile", "predict"))
@pytest.mark.parametrize("case", [c[0] for c in ONNX_META], ids=lambda c: f"onnxmeta-{c}")
def test_malformed_onnx_metadata(tmp_path: Path, case: str, command: str) -> None:
    _, change, fragment = next(c for c in ONNX_META if c[0] == case)
    bundle = make_toy_bundle(tmp_path / "bundle")
    lone = tmp_path / "lone" / "model.onnx"
    lone.parent.mkdir()
    shutil.copy(bundle / "student.fp32.onnx", lone)
    proto = onnx.load(str(lone))
    facts = {p.key[len("edgemtl.") :]: json.loads(p.value) for p in proto.metadata_props}
    change(facts)
    del proto.metadata_props[:]
    for key, value in facts.items():
        proto.metadata_props.add(key=f"edgemtl.{key}", value=json.dumps(value))
    onnx.save(proto, str(lone))
    digest = sha256_file(lone)
    assert_hostile(
        _args(command, lone, tmp_path),
        f"{lone} (metadata_props)",
        fragment,
        unchanged=[tmp_path / "preds"],
    )
    assert sha256_file(lone) == digest and sorted(p.name for p in lone.parent.iterdir()) == [
        "model.onnx"
    ]

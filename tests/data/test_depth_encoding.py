"""Depth encodings are a property of the target (issue 13 item 15), not of the dataset kind.

Cityscapes' official disparity encoding, (p - 1) / 256 in a 16-bit PNG, delivered
through a Folder dataset that declares `encoding: inverse_depth`, is multiplied by
the crop scale like Cityscapes' own reader's depth (8 px -> 12.0 at 1.5, 9.6 at 1.2);
the same files declared as metric depth are divided. The encoding travels from the
reader into task specs, checkpoint records, manifests and the ONNX metadata, and
pictures read it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from edgemtl.core.checkpoint_manifest import manifest_from_checkpoint
from edgemtl.core.config import AugmentConfig
from edgemtl.core.errors import UserError
from edgemtl.core.manifest import Artifact, TaskEntry, metadata_dict
from edgemtl.core.records import TaskRecord
from edgemtl.core.tasks import get_kind, make_spec
from edgemtl.data.augment import AugmentParams, build_augmenter
from edgemtl.data.folder import FolderReader
from edgemtl.data.npy_datasets import open_cityscapes
from edgemtl.data.registry import declared_target
from edgemtl.deploy.predict_output import render
from tests.helpers.data_fixtures import write_cityscapes

H, W = 32, 48
DISPARITY_PX = 8.0


def _disparity_folder(root: Path, encoding: str | None) -> Path:
    """A Folder dataset with one task: depth as Cityscapes stores disparity, (p - 1) / 256."""
    depth: dict = {
        "folder": "disparity",
        "format": "png16",
        "scale": 1 / 256,
        "offset": -1 / 256,
        "invalid": 0,
        "units": "px (disparity)",
    }
    if encoding is not None:
        depth["encoding"] = encoding
    spec = {"image": {"folder": "image", "format": "png8"}, "tasks": {"depth": depth}}
    root.mkdir(parents=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    for split in ("train", "val"):
        (root / split / "image").mkdir(parents=True)
        (root / split / "disparity").mkdir(parents=True)
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(root / split / "image" / "a.png")
        raw = np.full((H, W), int(DISPARITY_PX * 256 + 1), np.uint16)
        raw[:2, :2] = 0  # invalid
        Image.fromarray(raw).save(root / split / "disparity" / "a.png")
    return root


def _crop(reader: FolderReader, scale: float) -> np.ndarray:
    augment = build_augmenter(AugmentConfig(scale=(scale,)), (H, W), reader.encodings)
    assert augment is not None
    crop_h, crop_w = round(H / scale), round(W / scale)
    params = AugmentParams(scale, top=H - crop_h, left=W - crop_w, crop_h=crop_h, crop_w=crop_w)
    return augment.apply(reader[0], params).targets["depth"]


def test_folder_disparity_is_multiplied_by_the_crop_scale(tmp_path: Path) -> None:
    reader = FolderReader(_disparity_folder(tmp_path / "d", "inverse_depth"), "train", ["depth"])
    assert reader.encodings == {"depth": "inverse_depth"}
    assert reader[0].targets["depth"][5, 5] == pytest.approx(DISPARITY_PX)
    assert np.unique(_crop(reader, 1.5)) == pytest.approx([12.0])
    assert np.unique(_crop(reader, 1.2)) == pytest.approx([9.6])


def test_the_same_files_declared_as_metric_depth_are_divided(tmp_path: Path) -> None:
    """What the kind-keyed rule did to disparity in a Folder dataset (the bug: 5.33 / 6.67)."""
    reader = FolderReader(_disparity_folder(tmp_path / "d", None), "train", ["depth"])
    assert reader.encodings == {}
    assert np.unique(_crop(reader, 1.5)) == pytest.approx([DISPARITY_PX / 1.5])
    assert np.unique(_crop(reader, 1.2)) == pytest.approx([DISPARITY_PX / 1.2])


def test_readers_declare_their_encoding(tmp_path: Path) -> None:
    write_cityscapes(tmp_path / "cs")
    cityscapes = open_cityscapes(tmp_path / "cs", "train", ["seg", "depth"])
    assert declared_target(cityscapes, "depth") == ("inverse depth", "inverse_depth")
    assert declared_target(cityscapes, "seg") == ("", None)
    folder = FolderReader(_disparity_folder(tmp_path / "f", "inverse_depth"), "val", ["depth"])
    assert declared_target(folder, "depth") == ("px (disparity)", "inverse_depth")


def test_the_encoding_travels_into_records_manifests_and_metadata() -> None:
    spec = make_spec("depth", units="px (disparity)", encoding="inverse_depth")
    record = TaskRecord.model_validate(spec.to_dict())
    assert record.spec() == spec
    entry = TaskEntry(**record.model_dump())
    assert entry.model_dump()["encoding"] == "inverse_depth"
    # Records without one (every file older edgemtl wrote) dump exactly as before.
    legacy = {"key": "depth", "kind": "depth", "channels": 1, "class_names": None, "units": "m"}
    assert TaskEntry.model_validate(legacy).model_dump(mode="json") == legacy
    assert "encoding" not in make_spec("depth").to_dict()
    with pytest.raises(UserError, match="encoding 'disparity' is not one of"):
        make_spec("depth", encoding="disparity")


def test_a_checkpoints_encoding_reaches_its_manifest_and_onnx_metadata(
    tiny_checkpoint: Path,
) -> None:
    from edgemtl.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt.tasks["depth"].encoding == "depth"  # the synthetic reader declares it
    manifest = manifest_from_checkpoint(ckpt, tiny_checkpoint, "student", checksum=False)
    assert manifest.tasks["depth"].encoding == "depth"
    art = Artifact(file="student.fp32.onnx", format="onnx", precision="fp32", sha256="0" * 64)
    tasks = json.loads(metadata_dict(manifest, art)["edgemtl.tasks"])
    assert tasks["depth"]["encoding"] == "depth" and "encoding" not in tasks["seg"]


def test_pictures_colour_nearness_the_same_in_both_encodings() -> None:
    depth = np.array([[1.0, 2.0, 5.0, 10.0]], np.float32)
    kind = get_kind("depth")
    metric, _ = kind.colourize(depth, encoding="depth")
    inverse, legend = kind.colourize(1 / depth, units="1/m", encoding="inverse_depth")
    np.testing.assert_allclose(metric[0, [0, -1]], inverse[0, [0, -1]], atol=1e-6)
    assert "inverse depth (1/m)" in legend[0][1] and "(near, blue)" in legend[0][1]
    image = np.zeros((1, 4, 3), np.float32)
    pixels, legend = render("depth", 1 / depth, image, units="1/m", encoding="inverse_depth")
    assert pixels.shape == (1, 4, 3) and "(far, red)" in legend[0][1]


def test_scale_crop_reads_the_encoding() -> None:
    value = np.full((2, 2), 6.0, np.float32)
    kind = get_kind("depth")
    assert kind.scale_crop(value, 1.5)[0, 0] == pytest.approx(4.0)  # default: metric depth
    assert kind.scale_crop(value, 1.5, "inverse_depth")[0, 0] == pytest.approx(9.0)
    with pytest.raises(UserError):
        kind.scale_crop(value, 1.5, "log_depth")
    assert get_kind("seg").scale_crop(value, 1.5) is value

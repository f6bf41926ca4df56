"""Readers of each real format decode what the fixtures wrote: units, masks, class ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemtl.core.config import DataConfig
from edgemtl.core.errors import UserError
from edgemtl.data.readers import detect_kind, open_reader
from edgemtl.data.registry import dataset_record, open_split
from edgemtl.data.taskonomy import TASKONOMY_CLASSES, read_split_file
from tests.helpers.data_fixtures import (
    FOLDER_CLASSES,
    write_cityscapes,
    write_folder,
    write_nyuv2,
    write_taskonomy,
)


def test_nyuv2_decodes_release_arrays(tmp_path: Path) -> None:
    written = write_nyuv2(tmp_path)
    reader = open_reader("nyuv2", tmp_path, "val", ["seg", "depth", "normal"])
    assert len(reader) == 2 and len(reader.class_names) == 13
    assert reader.class_names[0] == "bed" and reader.class_names[-1] == "window"
    s = reader[1]
    ref = written["val"][1]
    np.testing.assert_array_equal(s.image, ref["image"])
    assert s.targets["seg"].dtype == np.int64
    np.testing.assert_array_equal(s.targets["seg"], ref["label"].astype(np.int64))
    assert (s.targets["seg"][:3, :5] == -1).all()
    np.testing.assert_array_equal(s.targets["depth"], ref["depth"][..., 0])
    assert (s.targets["depth"][-4:, -6:] == 0).all()
    np.testing.assert_array_equal(s.targets["normal"], ref["normal"])
    assert detect_kind(tmp_path) == "nyuv2"
    with pytest.raises(UserError, match="has no 'keypoints' targets"):
        open_reader("nyuv2", tmp_path, "val", ["keypoints"])


@pytest.mark.parametrize(
    ("folder", "n_classes", "first"),
    [("label_7", 7, "flat"), ("label_19", 19, "road"), ("label", 7, "flat")],
)
def test_cityscapes_label_folder_is_configurable(
    tmp_path: Path, folder: str, n_classes: int, first: str
) -> None:
    written = write_cityscapes(tmp_path, label_folder=folder, n_classes=n_classes)
    cfg = DataConfig(kind="cityscapes", root=str(tmp_path), label_folder=folder, size=(32, 48))
    record = dataset_record(cfg)
    assert record["label_folder"] == folder
    reader = open_split(record, "train", ["seg", "depth"])
    assert (
        len(reader) == 4 and len(reader.class_names) == n_classes and reader.class_names[0] == first
    )
    s = reader[3]
    np.testing.assert_array_equal(s.targets["seg"], written["train"][3][folder].astype(np.int64))
    np.testing.assert_array_equal(
        s.targets["depth"], written["train"][3]["depth"][..., 0]
    )  # inverse depth as stored


def test_cityscapes_wrong_label_folder_says_which_exist(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, label_folder="label_19", n_classes=19)
    with pytest.raises(
        UserError, match=r"label folder 'label_7' not found \(this copy has label_19"
    ):
        open_reader("cityscapes", tmp_path, "train", ["seg", "depth"], {"label_folder": "label_7"})


@pytest.mark.parametrize("layout", ["building_domain", "domain_building"])
def test_taskonomy_decoding_both_layouts(tmp_path: Path, layout: str) -> None:
    written = write_taskonomy(tmp_path, layout=layout)
    tasks = ["seg", "depth", "normal", "keypoints", "edges"]
    reader = open_reader(
        "taskonomy", tmp_path, "train", tasks
    )  # layout auto-detected, splits.csv default
    assert reader.layout == layout
    assert (
        len(reader) == 4
        and reader.class_names == TASKONOMY_CLASSES
        and len(reader.class_names) == 17
    )
    s = reader[0]
    raw = written[s.name]
    valid = raw["mask_valid"] > 0
    np.testing.assert_allclose(s.image, raw["rgb"] / 255.0, atol=1e-7)
    # seg: 0 -> -1 (ignore), 1..17 -> 0..16, masked pixels -1.
    seg = s.targets["seg"]
    want = raw["segment_semantic"].astype(np.int64) - 1
    want[~valid] = -1
    np.testing.assert_array_equal(seg, want)
    assert seg.min() == -1 and seg.max() == 16
    # depth: 1/512 m; 65535 missing -> 0; masked -> 0.
    depth = s.targets["depth"]
    assert depth[10, 10] == pytest.approx(raw["depth_zbuffer"][10, 10] / 512.0)
    assert (depth[:4, :4] == 0).all() and (depth[~valid] == 0).all()
    # normals: (v - 127) / 127, unit length, masked -> zero vector.
    v = raw["normal"][20, 20].astype(np.float64)
    expect = (v - 127) / 127
    np.testing.assert_allclose(
        s.targets["normal"][20, 20], expect / np.linalg.norm(expect), atol=1e-6
    )
    assert (s.targets["normal"][~valid] == 0).all()
    # keypoints / edges: v / 65535, masked -> -1.
    assert s.targets["keypoints"][30, 30] == pytest.approx(raw["keypoints2d"][30, 30] / 65535.0)
    assert (s.targets["edges"][~valid] == -1).all()


def test_taskonomy_resizes_to_recipe_size_with_consistent_masks(tmp_path: Path) -> None:
    write_taskonomy(tmp_path)
    cfg = DataConfig(kind="taskonomy", root=str(tmp_path), size=(32, 32))
    reader = open_split(
        dataset_record(cfg), "val", ["seg", "depth", "normal", "keypoints", "edges"]
    )
    s = reader[1]
    assert s.image.shape == (32, 32, 3)
    # The 8x8 masked corner becomes 4x4 at half size, identically in every target.
    masks = {
        "seg": s.targets["seg"] == -1,
        "depth": s.targets["depth"] == 0,
        "normal": np.abs(s.targets["normal"]).sum(-1) == 0,
        "keypoints": s.targets["keypoints"] < 0,
        "edges": s.targets["edges"] < 0,
    }
    corner = np.zeros((32, 32), bool)
    corner[-4:, :4] = True
    for key, m in masks.items():
        assert m[corner].all(), key
    assert (masks["keypoints"] == corner).all() and (masks["edges"] == corner).all()
    # Same values as decoding at full size and resizing after (image bilinear, targets nearest).
    from edgemtl.data.preprocess import resize_bilinear, resize_nearest

    native = open_reader("taskonomy", tmp_path, "val", list(s.targets))[1]
    np.testing.assert_allclose(s.image, resize_bilinear(native.image, 32, 32), atol=1e-6)
    for key, value in s.targets.items():
        np.testing.assert_array_equal(value, resize_nearest(native.targets[key], 32, 32))


def test_taskonomy_split_file_forms(tmp_path: Path) -> None:
    write_taskonomy(tmp_path, split_file=None)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "val.txt").write_text("gamma\n")
    (tmp_path / "lists" / "train.txt").write_text("# two buildings\nalpha\nbeta\n")
    assert read_split_file(tmp_path, "lists/{split}.txt", "train")[1] == ["alpha", "beta"]
    (tmp_path / "flags.csv").write_text("id,train,val,test\nalpha,1,0,0\nbeta,0,0,1\ngamma,0,1,0\n")
    assert read_split_file(tmp_path, "flags.csv", "val")[1] == ["gamma"]
    reader = open_reader("taskonomy", tmp_path, "train", ["depth"], {"split_file": "flags.csv"})
    assert len(reader) == 2
    with pytest.raises(UserError, match="no split file"):
        open_reader("taskonomy", tmp_path, "train", ["depth"])
    (tmp_path / "bad.csv").write_text("alpha\n")
    with pytest.raises(UserError, match=r"bad.csv: line 1: expected 'building,split'"):
        read_split_file(tmp_path, "bad.csv", "train")


def test_taskonomy_missing_domain_file_is_named(tmp_path: Path) -> None:
    write_taskonomy(tmp_path)
    (tmp_path / "beta" / "normal" / "point_1_view_1_domain_normal.png").unlink()
    with pytest.raises(UserError, match=r"point_1_view_1_domain_normal.png: missing"):
        open_reader("taskonomy", tmp_path, "train", ["normal"])


def test_folder_dataset_decodes_scale_offset_invalid(tmp_path: Path) -> None:
    written = write_folder(tmp_path)
    reader = open_reader("folder", tmp_path, "train", ["seg", "depth", "normal"])
    assert len(reader) == 4 and reader.class_names == tuple(FOLDER_CLASSES)
    s = reader[2]
    ref = written["train"][2]
    assert s.name == "train/frame_002"
    np.testing.assert_allclose(s.image, ref["image"] / 255.0, atol=1e-7)
    seg = s.targets["seg"]
    assert (seg[:2] == -1).all()
    np.testing.assert_array_equal(seg[2:], ref["labels"][2:].astype(np.int64))
    depth = s.targets["depth"]
    assert depth[10, 10] == pytest.approx(ref["depth"][10, 10] * 0.001, rel=1e-6)  # mm -> m
    assert (depth[-3:, :4] == 0).all()
    np.testing.assert_allclose(s.targets["normal"], ref["normal"], atol=1e-6)
    assert detect_kind(tmp_path) == "folder"
    small = open_reader("folder", tmp_path, "train", ["seg", "depth"], {"size": [16, 32]})[2]
    assert small.image.shape == (16, 32, 3) and small.targets["seg"].shape == (16, 32)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda spec: spec["tasks"]["seg"].pop("classes"),
            "tasks.seg.classes: a seg task needs its class names",
        ),
        (lambda spec: spec["tasks"].update(flow={"folder": "f"}), "tasks.flow: unknown task kind"),
        (lambda spec: spec["tasks"]["depth"].update(format="png12"), "tasks.depth.format"),
        (lambda spec: spec.update(colour="yes"), "colour: unknown key"),
    ],
)
def test_folder_dataset_yaml_is_validated(tmp_path: Path, edit, fragment: str) -> None:
    import yaml

    from tests.helpers.data_fixtures import folder_spec

    write_folder(tmp_path, {"train": 1, "val": 1})
    spec = folder_spec()
    edit(spec)
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError, match="dataset.yaml: " + fragment.replace("(", r"\(")) as info:
        open_reader("folder", tmp_path, "train", ["depth"])
    assert "\n" not in str(info.value)


def test_folder_stems_must_match(tmp_path: Path) -> None:
    write_folder(tmp_path)
    (tmp_path / "val" / "depth" / "frame_001.png").rename(
        tmp_path / "val" / "depth" / "frame_009.png"
    )
    with pytest.raises(UserError, match=r"depth/frame_001.png: missing"):
        open_reader("folder", tmp_path, "val", ["depth"])


def test_missing_root_names_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEMTL_NYUV2", raising=False)
    record = dataset_record(DataConfig(kind="nyuv2", root_env="EDGEMTL_NYUV2", size=(32, 48)))
    with pytest.raises(
        UserError, match="set data.root, set the EDGEMTL_NYUV2 environment variable"
    ):
        open_split(record, "train", ["seg"])
    monkeypatch.setenv("EDGEMTL_NYUV2", str(tmp_path / "nowhere"))
    record = dataset_record(DataConfig(kind="nyuv2", root_env="EDGEMTL_NYUV2", size=(32, 48)))
    with pytest.raises(UserError, match="nowhere is not a folder"):
        open_split(record, "train", ["seg"])


def test_readers_check_and_show_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import edgemtl.data.readers, edgemtl.data.check, edgemtl.data.check_command, "
        "edgemtl.data.show, edgemtl.data.taskonomy, edgemtl.data.folder, "
        "edgemtl.data.npy_datasets, "
        "edgemtl.data.augment; assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_seg_class_check_is_order_sensitive(tmp_path: Path) -> None:
    """One check for eval, profile --accuracy: the reader's classes must equal the model's, in
    order."""
    from edgemtl.core.tasks import make_spec
    from edgemtl.data.npy_datasets import NYUV2_CLASSES
    from edgemtl.evaluation.scoring import check_seg_classes

    write_nyuv2(tmp_path)
    reader = open_reader("nyuv2", tmp_path, "val", ["seg", "depth"])
    depth = make_spec("depth", units="m")
    check_seg_classes(
        reader, [make_spec("seg", list(NYUV2_CLASSES)), depth], "model.onnx's manifest"
    )
    check_seg_classes(object(), [depth], "no seg task, nothing to compare")
    swapped = [NYUV2_CLASSES[1], NYUV2_CLASSES[0], *NYUV2_CLASSES[2:]]
    with pytest.raises(
        UserError, match=r"dataset classes \[.*\] do not match checkpoint x.pt's \["
    ):
        check_seg_classes(reader, [make_spec("seg", swapped)], "checkpoint x.pt's")
    with pytest.raises(UserError, match=r"dataset classes \[\] do not match"):
        check_seg_classes(object(), [make_spec("seg", ["a", "b"])], "model.onnx's manifest")

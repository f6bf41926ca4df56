"""NpyLayoutReader on hand-written NYUv2-layout folders: round trip and every error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.data.npy_layout import NpyLayoutReader

ALL = ["seg", "depth", "normal", "keypoints", "edges"]


def _arrays(i: int) -> dict[str, np.ndarray]:
    """Sample i of a 2x3 dataset, stored the way the NYUv2 release stores it."""
    return {
        "image": np.full((2, 3, 3), 0.1 * (i + 1), np.float32),
        "label": np.array([[0.0, 2.0, -1.0], [12.0, 1.0, -1.0]], np.float32)
        + i * np.array([[1, 1, 0], [0, 0, 0]], np.float32),
        "depth": np.array([[1.5, 0.0, 2.25], [3.0, 4.0, 0.5]], np.float32)[..., None] * (i + 1),
        "normal": np.tile(np.array([0.0, 0.6, -0.8], np.float32), (2, 3, 1)),
        "keypoints": np.array([[0.0, 1.0, 0.5], [0.25, 0.0, 0.0]], np.float32)[..., None],
        "edges": np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]], np.float32)[..., None],
    }


def _write(
    root: Path, split: str = "train", n: int = 2, rename: dict[str, str] | None = None
) -> Path:
    for i in range(n):
        for folder, arr in _arrays(i).items():
            folder = (rename or {}).get(folder, folder)
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            np.save(root / split / folder / f"{i}.npy", arr)
    return root


def test_round_trip_dtypes_shapes_and_values(tmp_path: Path) -> None:
    reader = NpyLayoutReader(_write(tmp_path), "train", ALL)
    assert len(reader) == 2
    s = reader[1]
    assert s.name == "train/1"
    assert s.image.shape == (2, 3, 3) and s.image.dtype == np.float32
    assert s.image[0, 0, 0] == pytest.approx(0.2)
    seg = s.targets["seg"]
    assert seg.dtype == np.int64
    # Stored floats [[0,2,-1],[12,1,-1]] + [[1,1,0],[0,0,0]] for i = 1; -1 stays ignore.
    np.testing.assert_array_equal(seg, [[1, 3, -1], [12, 1, -1]])
    depth = s.targets["depth"]
    assert depth.shape == (2, 3) and depth.dtype == np.float32  # trailing 1 squeezed
    np.testing.assert_array_equal(depth, [[3.0, 0.0, 4.5], [6.0, 8.0, 1.0]])
    assert s.targets["normal"].shape == (2, 3, 3)
    np.testing.assert_allclose(s.targets["normal"][1, 2], [0.0, 0.6, -0.8])
    np.testing.assert_array_equal(s.targets["keypoints"], [[0.0, 1.0, 0.5], [0.25, 0.0, 0.0]])
    np.testing.assert_array_equal(s.targets["edges"], [[0, 1, 1], [0, 0, 1]])
    # Negative index counts from the end; past the end is IndexError (ends iteration).
    np.testing.assert_array_equal(reader[-1].image, s.image)
    with pytest.raises(IndexError):
        reader[2]
    assert [x.name for x in reader] == ["train/0", "train/1"]


def test_returns_private_copies_not_memmaps(tmp_path: Path) -> None:
    root = _write(tmp_path)
    s = NpyLayoutReader(root, "train", ["depth"])[0]
    assert type(s.image) is np.ndarray and type(s.targets["depth"]) is np.ndarray
    s.targets["depth"][:] = 99.0
    s.image[:] = 0.0
    assert np.load(root / "train" / "depth" / "0.npy")[0, 0, 0] == pytest.approx(1.5)
    assert np.load(root / "train" / "image" / "0.npy")[0, 0, 0] == pytest.approx(0.1)


def test_subset_of_tasks_and_custom_folder(tmp_path: Path) -> None:
    # Cityscapes-style: labels under label_7.
    root = _write(tmp_path, split="val", rename={"label": "label_7"})
    reader = NpyLayoutReader(
        root, "val", ["seg", "depth"], folders={"seg": "label_7"}, class_names=["road", "car"]
    )
    assert reader.class_names == ("road", "car")
    s = reader[0]
    assert sorted(s.targets) == ["depth", "seg"]
    np.testing.assert_array_equal(s.targets["seg"], [[0, 2, -1], [12, 1, -1]])


def test_missing_split(tmp_path: Path) -> None:
    _write(tmp_path)
    with pytest.raises(UserError, match=r"split folder 'val' not found"):
        NpyLayoutReader(tmp_path, "val", ALL)


def test_missing_task_folder_names_it(tmp_path: Path) -> None:
    _write(tmp_path)
    with pytest.raises(UserError, match=r"folder 'label_7' for task 'seg' not found"):
        NpyLayoutReader(tmp_path, "train", ["seg"], folders={"seg": "label_7"})


def test_count_mismatch_names_folder(tmp_path: Path) -> None:
    _write(tmp_path, n=3)
    (tmp_path / "train" / "normal" / "2.npy").unlink()
    with pytest.raises(UserError, match=r"normal: holds 2 files but .* holds 3 .*2\.npy"):
        NpyLayoutReader(tmp_path, "train", ALL)
    # Tasks not asked for are not checked.
    assert len(NpyLayoutReader(tmp_path, "train", ["seg", "depth"])) == 3


def test_gap_in_image_indices(tmp_path: Path) -> None:
    _write(tmp_path, n=3)
    (tmp_path / "train" / "image" / "1.npy").unlink()
    with pytest.raises(UserError, match=r"1\.npy is missing"):
        NpyLayoutReader(tmp_path, "train", [])


def test_missing_or_empty_image_folder(tmp_path: Path) -> None:
    (tmp_path / "train" / "label").mkdir(parents=True)
    with pytest.raises(UserError, match=r"folder 'image' not found"):
        NpyLayoutReader(tmp_path, "train", ["seg"])
    (tmp_path / "train" / "image").mkdir()
    with pytest.raises(UserError, match=r"no <i>\.npy files"):
        NpyLayoutReader(tmp_path, "train", ["seg"])


def test_unknown_task(tmp_path: Path) -> None:
    _write(tmp_path)
    with pytest.raises(UserError, match=r"unknown task 'albedo'"):
        NpyLayoutReader(tmp_path, "train", ["albedo"])


def test_bad_shape_and_corrupt_file(tmp_path: Path) -> None:
    _write(tmp_path)
    np.save(tmp_path / "train" / "normal" / "0.npy", np.zeros((2, 3, 2), np.float32))
    (tmp_path / "train" / "depth" / "1.npy").write_bytes(b"not a numpy file")
    reader = NpyLayoutReader(tmp_path, "train", ["normal", "depth"])
    with pytest.raises(UserError, match=r"normal/0\.npy: shape \(2, 3, 2\); expected HxWx3"):
        reader[0]
    with pytest.raises(UserError, match=r"depth/1\.npy: cannot read"):
        reader[1]
    np.save(tmp_path / "train" / "depth" / "1.npy", np.zeros((4, 3, 1), np.float32))
    with pytest.raises(UserError, match=r"does not match its image's 2x3"):
        NpyLayoutReader(tmp_path, "train", ["depth"])[1]

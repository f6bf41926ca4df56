"""NYUv2 and Cityscapes: the preprocessed `.npy` releases (MTAN family).

Both share `{root}/{train,val}/{folder}/{i}.npy`, so both are `NpyLayoutReader`
with their own folder names, task set and class names. Units and invalid values
(docs/datasets.md, the reader table):

- NYUv2, 288x384: image float [0, 1]; depth metres, 0 = invalid; normal unit
  vectors, zero = invalid; label 13 classes, -1 = ignore.
- Cityscapes, 128x256 (a 256x512 copy exists): image float [0, 1]; depth is
  *inverse* depth (disparity-like), 0 = invalid; labels -1 = ignore, from
  `label_7` (7 categories, the default), `label_19`, `label_2` or `label`
  (copies that name the 7-class folder plainly).

numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgemtl.core.errors import UserError
from edgemtl.data.npy_layout import NpyLayoutReader

#: NYUv2 13-class mapping (Couprie et al.), stored as 0..12.
NYUV2_CLASSES: tuple[str, ...] = (
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "picture",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
)
NYUV2_TASKS: tuple[str, ...] = ("seg", "depth", "normal")

#: Cityscapes category ids 1..7 (void excluded) -> 0..6.
CITYSCAPES_7: tuple[str, ...] = (
    "flat",
    "construction",
    "object",
    "nature",
    "sky",
    "human",
    "vehicle",
)
#: The 19 evaluation classes (Cityscapes trainIds 0..18).
CITYSCAPES_19: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
#: The 2-class copy ships without names; numbered so metrics can still be labelled.
CITYSCAPES_2: tuple[str, ...] = ("class_0", "class_1")
CITYSCAPES_LABEL_FOLDERS: dict[str, tuple[str, ...]] = {
    "label_7": CITYSCAPES_7,
    "label": CITYSCAPES_7,
    "label_19": CITYSCAPES_19,
    "label_2": CITYSCAPES_2,
}
CITYSCAPES_TASKS: tuple[str, ...] = ("seg", "depth")


def _check_tasks(kind: str, tasks: Sequence[str], have: Sequence[str]) -> None:
    for task in tasks:
        if task not in have:
            raise UserError(
                f"dataset {kind} has no {task!r} targets (it provides: {', '.join(have)})"
            )


def open_nyuv2(root: str | Path, split: str, tasks: Sequence[str]) -> NpyLayoutReader:
    _check_tasks("nyuv2", tasks, NYUV2_TASKS)
    return NpyLayoutReader(
        root,
        split,
        list(tasks),
        class_names=NYUV2_CLASSES,
        units={"depth": "m"},
        encodings={"depth": "depth"},
    )


def cityscapes_classes(label_folder: str) -> tuple[str, ...]:
    if label_folder not in CITYSCAPES_LABEL_FOLDERS:
        raise UserError(
            f"data.label_folder {label_folder!r}: expected one of "
            f"{', '.join(CITYSCAPES_LABEL_FOLDERS)}"
        )
    return CITYSCAPES_LABEL_FOLDERS[label_folder]


def open_cityscapes(
    root: str | Path, split: str, tasks: Sequence[str], label_folder: str = "label_7"
) -> NpyLayoutReader:
    _check_tasks("cityscapes", tasks, CITYSCAPES_TASKS)
    classes = cityscapes_classes(label_folder)
    split_dir = Path(root) / split
    folders = {"seg": label_folder}  # the labels task reads the chosen label copy
    for task, folder in folders.items():
        if task in tasks and split_dir.is_dir() and not (split_dir / folder).is_dir():
            present = [name for name in CITYSCAPES_LABEL_FOLDERS if (split_dir / name).is_dir()]
            hint = (
                f" (this copy has {', '.join(present)}: set data.label_folder)" if present else ""
            )
            raise UserError(f"{split_dir / folder}: label folder {folder!r} not found{hint}")
    return NpyLayoutReader(
        root,
        split,
        list(tasks),
        folders=folders,
        class_names=classes,
        units={"depth": "inverse depth"},
        encodings={"depth": "inverse_depth"},  # the release stores disparity-like values
    )

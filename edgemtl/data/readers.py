"""Dataset kind -> reader, plus kind detection and each kind's task set.

Why apart from registry.py: `data check` / `data show` open a folder by kind and
options without a recipe, and `open_split` (recipes, checkpoints, manifests)
dispatches here for every on-disk kind. numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgemtl.core.errors import UserError

KINDS: tuple[str, ...] = ("nyuv2", "cityscapes", "taskonomy", "folder", "synthetic")
#: Suffixes of the files the readers read (images, arrays, specs, split files): an output
#: inside a dataset folder never replaces one of these (`edgemtl.core.paths.check_not_an_input`).
DATASET_SUFFIXES: tuple[str, ...] = (".png", ".npy", ".yaml", ".yml", ".csv", ".txt", ".json")


def open_reader(
    kind: str,
    root: Path,
    split: str,
    tasks: Sequence[str],
    options: Mapping[str, Any] | None = None,
) -> Any:
    """A split reader for `kind` at `root`; `options` as in a dataset record."""
    options = options or {}
    tasks = list(tasks)
    if kind == "nyuv2":
        from edgemtl.data.npy_datasets import open_nyuv2

        return open_nyuv2(root, split, tasks)
    if kind == "cityscapes":
        from edgemtl.data.npy_datasets import open_cityscapes

        return open_cityscapes(root, split, tasks, options.get("label_folder") or "label_7")
    if kind == "taskonomy":
        from edgemtl.data.taskonomy import TaskonomyReader

        size = options.get("size")
        return TaskonomyReader(
            root,
            split,
            tasks,
            options.get("split_file"),
            options.get("layout") or "auto",
            tuple(size) if size else None,
        )
    if kind == "folder":
        from edgemtl.data.folder import FolderReader

        size = options.get("size")
        return FolderReader(root, split, tasks, size=tuple(size) if size else None)
    if kind == "synthetic":
        from edgemtl.data.npy_layout import NpyLayoutReader

        return NpyLayoutReader(
            root,
            split,
            tasks,
            class_names=synthetic_class_names(root),
            units={"depth": "m (z-depth)"},
            encodings={"depth": "depth"},
        )
    raise UserError(f"dataset kind {kind!r} is unknown (expected one of: {', '.join(KINDS)})")


def synthetic_class_names(folder: Path) -> tuple[str, ...]:
    """Seg class names a synthetic dataset folder records in its `synthetic.json`.

    Raises UserError naming the file when it is missing or lacks `class_names`.
    """
    meta = folder / "synthetic.json"
    try:
        return tuple(json.loads(meta.read_text())["class_names"])
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(
            f"synthetic dataset {folder}: cannot read class names from {meta.name} "
            f"({exc.__class__.__name__})"
        ) from None


def detect_kind(root: Path) -> str:
    """Best guess of a folder's kind from its marker files and folders."""
    if (root / "dataset.yaml").is_file():
        return "folder"
    if (root / "synthetic.json").is_file():
        return "synthetic"
    train = root / "train"
    if train.is_dir():
        if (train / "normal").is_dir():
            return "nyuv2"
        if any((train / name).is_dir() for name in ("label_7", "label_19", "label_2")) or (
            (train / "label").is_dir() and (train / "depth").is_dir()
        ):
            return "cityscapes"
    if (root / "rgb").is_dir() or any((d / "rgb").is_dir() for d in root.iterdir() if d.is_dir()):
        return "taskonomy"
    raise UserError(f"{root}: cannot tell the dataset kind: pass --dataset ({', '.join(KINDS)})")


def kind_tasks(kind: str, root: Path) -> list[str]:
    """Every task a dataset of `kind` at `root` provides."""
    if kind == "nyuv2":
        from edgemtl.data.npy_datasets import NYUV2_TASKS

        return list(NYUV2_TASKS)
    if kind == "cityscapes":
        from edgemtl.data.npy_datasets import CITYSCAPES_TASKS

        return list(CITYSCAPES_TASKS)
    if kind == "folder":
        from edgemtl.data.folder import load_folder_spec

        return list(load_folder_spec(root).tasks)
    if kind == "taskonomy":
        from edgemtl.data.taskonomy import DOMAINS

        return list(DOMAINS)
    if kind == "synthetic":
        return ["seg", "depth", "normal", "keypoints", "edges"]
    raise UserError(f"dataset kind {kind!r} is unknown (expected one of: {', '.join(KINDS)})")

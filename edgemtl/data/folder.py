"""Folder dataset: your own data, described by `{root}/dataset.yaml`.

Layout: `{root}/{split folder}/{image or task folder}/{stem}.png|.npy`; samples
are the stems of the image folder, and every task folder must hold the same
stems. Each entry says its file format (8- or 16-bit PNG, or NPY) and how raw
values become targets: `value = raw * scale + offset`, raw == `invalid` marks
a pixel invalid (the kind's `invalid_value`: seg -1, depth 0, normal zero
vector, keypoints/edges -1). Task keys are any registered task kind
(`edgemtl.core.tasks.kind_names()`). Labels (seg) are the raw integers 0..C-1,
named by `classes`. Each map gets its kind's `normalise_frame` after
scale/offset (normals: unit length). docs/datasets.md has a worked example.
numpy + Pillow + pydantic, no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgemtl.core.config import read_yaml_file
from edgemtl.core.errors import UserError, short
from edgemtl.core.tasks import get_kind, kind_names
from edgemtl.data.imageio import read_npy, read_png
from edgemtl.data.preprocess import resize_bilinear, resize_nearest
from edgemtl.data.sample import Sample, normalize_index

SPEC_FILE = "dataset.yaml"
Format = Literal["png8", "png16", "npy"]
_EXT = {"png8": ".png", "png16": ".png", "npy": ".npy"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageEntry(_Strict):
    folder: str = "image"
    format: Format = "png8"
    #: raw * scale + offset must land in [0, 1]; default 1/255 (png8), 1/65535 (png16), 1 (npy).
    scale: float | None = None
    offset: float = 0.0

    def resolved_scale(self) -> float:
        if self.scale is not None:
            return self.scale
        return {"png8": 1 / 255.0, "png16": 1 / 65535.0, "npy": 1.0}[self.format]


class TaskEntry(_Strict):
    folder: str
    format: Format = "png8"
    scale: float = 1.0
    offset: float = 0.0
    #: Raw value marking an invalid pixel (for normals: all three channels equal to it).
    invalid: float | None = None
    #: labels kinds (seg) only: class names, label value i -> classes[i].
    classes: list[str] | None = None
    #: Free text for tables and manifests, e.g. "m".
    units: str = ""
    #: What the values store, one of the kind's encodings (depth: `depth`, or
    #: `inverse_depth` for disparity); absent: the kind's default.
    encoding: str | None = None


class FolderSpec(_Strict):
    name: str = "folder"
    #: Split name -> folder under the root.
    splits: dict[str, str] = Field(default_factory=lambda: {"train": "train", "val": "val"})
    image: ImageEntry = ImageEntry()
    tasks: dict[str, TaskEntry]

    @model_validator(mode="after")
    def _tasks_make_sense(self) -> FolderSpec:
        if not self.tasks:
            raise ValueError("tasks: at least one task is needed")
        for key, entry in self.tasks.items():
            if key not in kind_names():
                raise ValueError(
                    f"tasks.{short(key)}: unknown task kind "
                    f"(expected one of: {', '.join(kind_names())})"
                )
            if get_kind(key).labels:
                if not entry.classes:
                    raise ValueError(f"tasks.{key}.classes: a {key} task needs its class names")
                if entry.scale != 1.0 or entry.offset != 0.0:
                    raise ValueError(
                        f"tasks.{key}: labels are raw integers; scale/offset do not apply"
                    )
            elif entry.classes is not None:
                raise ValueError(f"tasks.{key}.classes: only a labels task (seg) has classes")
            encodings = get_kind(key).encodings
            if entry.encoding is not None and entry.encoding not in encodings:
                allowed = ", ".join(encodings) if encodings else f"none for a {key} task"
                raise ValueError(
                    f"tasks.{key}.encoding: {entry.encoding!r} is not one of ({allowed})"
                )
        return self


def load_folder_spec(root: Path) -> FolderSpec:
    """Read and validate `{root}/dataset.yaml`; every problem is a one-line UserError."""
    path = root / SPEC_FILE
    if not path.is_file():
        raise UserError(
            f"{path}: not found (a folder dataset is described by {SPEC_FILE}; see "
            "docs/datasets.md)"
        )
    raw = read_yaml_file(path, "dataset spec")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with keys splits, image, tasks")
    try:
        return FolderSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(short(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        raise UserError(f"{path}: {loc + ': ' if loc else ''}{msg}") from None


def _read(path: Path, fmt: str) -> np.ndarray:
    if fmt == "npy":
        return np.asarray(read_npy(path))
    raw = read_png(path)
    bits = 16 if raw.dtype == np.uint16 else 8
    want = 16 if fmt == "png16" else 8
    if bits != want:
        raise UserError(f"{path}: {bits}-bit PNG, but {SPEC_FILE} says {fmt}")
    return raw


def decode_image(raw: np.ndarray, entry: ImageEntry, path: Path) -> np.ndarray:
    """Raw image -> H x W x 3 float32 (grey is replicated, alpha dropped)."""
    if raw.ndim == 2:
        raw = np.repeat(raw[..., None], 3, axis=2)
    if raw.ndim != 3 or raw.shape[2] not in (3, 4):
        raise UserError(f"{path}: image shape {raw.shape}; expected HxW, HxWx3 or HxWx4")
    return (raw[..., :3].astype(np.float32) * entry.resolved_scale() + entry.offset).astype(
        np.float32
    )


def decode_target(task: str, raw: np.ndarray, entry: TaskEntry, path: Path) -> np.ndarray:
    """Raw task file -> channels-last target with invalid pixels marked (module doc)."""
    kind = get_kind(task)
    dtype, trailing = kind.target_layout()
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[..., 0]
    if trailing:  # a vector map (normal): at least C channels, extra ones (alpha) dropped
        if raw.ndim != 3 or raw.shape[2] < trailing[0]:
            raise UserError(f"{path}: shape {raw.shape}; expected HxWx{trailing[0]} for {task}")
        raw = raw[..., : trailing[0]]
    elif raw.ndim != 2:
        raise UserError(f"{path}: shape {raw.shape}; expected HxW for {task}")
    invalid = None
    if entry.invalid is not None:
        hit = raw == entry.invalid
        invalid = hit.all(axis=-1) if trailing else hit
    if kind.labels:
        values = np.asarray(raw, dtype=np.float64)
        labels = np.where(np.isfinite(values), np.rint(values), kind.invalid_value).astype(dtype)
        if invalid is not None:
            labels[invalid] = kind.invalid_value
        return labels
    out = (raw.astype(np.float32) * np.float32(entry.scale) + np.float32(entry.offset)).astype(
        np.float32
    )
    out = kind.normalise_frame(out)
    if invalid is not None:
        out[invalid] = kind.invalid_value
    return out


class FolderReader:
    """Random access to one split of a folder dataset; `reader[i]` -> Sample."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        tasks: list[str],
        spec: FolderSpec | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.root = Path(root)
        #: With a size, samples come resized to it (image bilinear, targets nearest: the
        #: shared preprocessing's policy), so images of any size match the model input.
        self.size = tuple(size) if size else None
        self.spec = spec or load_folder_spec(self.root)
        self.split = split
        self.tasks = list(tasks)
        spec_path = self.root / SPEC_FILE
        #: The class names of its labels task (seg), if it declares one.
        self.class_names: tuple[str, ...] = next(
            (tuple(e.classes) for e in self.spec.tasks.values() if e.classes), ()
        )
        #: What each task's targets store, as dataset.yaml declares (`data.registry`).
        self.units = {k: e.units for k, e in self.spec.tasks.items() if e.units}
        self.encodings = {k: e.encoding for k, e in self.spec.tasks.items() if e.encoding}
        for task in self.tasks:
            if task not in self.spec.tasks:
                raise UserError(
                    f"{spec_path}: declares tasks {', '.join(self.spec.tasks)}, not {task!r}"
                )
        if split not in self.spec.splits:
            raise UserError(
                f"{spec_path}: splits has no {split!r} (has: {', '.join(self.spec.splits)})"
            )
        split_dir = self.root / self.spec.splits[split]
        if not split_dir.is_dir():
            raise UserError(f"{split_dir}: split folder {split!r} not found")
        image_dir = split_dir / self.spec.image.folder
        if not image_dir.is_dir():
            raise UserError(f"{image_dir}: image folder not found")
        ext = _EXT[self.spec.image.format]
        self.stems = sorted(p.stem for p in image_dir.glob(f"*{ext}"))
        if not self.stems:
            raise UserError(f"{image_dir}: split {split!r} is empty (no *{ext} images)")
        self._image_dir = image_dir
        self._dirs: dict[str, Path] = {}
        for task in self.tasks:
            entry = self.spec.tasks[task]
            folder = split_dir / entry.folder
            if not folder.is_dir():
                raise UserError(f"{folder}: folder of task {task!r} not found")
            task_ext = _EXT[entry.format]
            have = {p.stem for p in folder.glob(f"*{task_ext}")}
            missing = [s for s in self.stems if s not in have]
            if missing:
                raise UserError(
                    f"{folder / (missing[0] + task_ext)}: missing ({len(missing)} of "
                    f"{len(self.stems)} {task} files missing for the images)"
                )
            extra = sorted(have - set(self.stems))
            if extra:
                raise UserError(
                    f"{folder / (extra[0] + task_ext)}: has no image {image_dir / (extra[0] + ext)}"
                )
            self._dirs[task] = folder

    def __len__(self) -> int:
        return len(self.stems)

    def files(self, index: int) -> dict[str, Path]:
        stem = self.stems[index]
        out = {"image": self._image_dir / f"{stem}{_EXT[self.spec.image.format]}"}
        out.update(
            {t: d / f"{stem}{_EXT[self.spec.tasks[t].format]}" for t, d in self._dirs.items()}
        )
        return out

    def __getitem__(self, index: int) -> Sample:
        index = normalize_index(index, len(self), self.split)
        files = self.files(index)
        image = decode_image(
            _read(files["image"], self.spec.image.format), self.spec.image, files["image"]
        )
        targets: dict[str, np.ndarray] = {}
        for task in self.tasks:
            entry = self.spec.tasks[task]
            target = decode_target(task, _read(files[task], entry.format), entry, files[task])
            if target.shape[:2] != image.shape[:2]:
                raise UserError(
                    f"{files[task]}: size {target.shape[:2]} does not match its image's "
                    f"{image.shape[:2]}"
                )
            targets[task] = target
        if self.size is not None:
            image = resize_bilinear(image, *self.size)
            targets = {
                task: np.ascontiguousarray(resize_nearest(t, *self.size))
                for task, t in targets.items()
            }
        return Sample(image=image, targets=targets, name=f"{self.split}/{self.stems[index]}")

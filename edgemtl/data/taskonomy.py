"""Taskonomy / Mini-Taskonomy reader: PNG domains per building, decoded to Samples.

Layouts (auto-detected): `{root}/{building}/{domain}/{file}.png` or
`{root}/{domain}/{building}/{file}.png`, files named
`point_{P}_view_{V}_domain_{domain}.png`; a sample is one (building, point,
view) present in `rgb/`. A split file picks the buildings of each split.

Decoding (docs/datasets.md), channels-last like every Sample:
- rgb: 8-bit RGB -> float [0, 1].
- segment_semantic: 0 = uncertain -> -1 (ignore); 1..17 -> 0..16
  (background + 16 object classes).
- depth_zbuffer: 16-bit, units of 1/512 m -> metres; 65535 (missing) -> 0.
- normal: 8-bit RGB centred at 127: (v - 127) / 127, re-normalised to unit
  length; a zero vector stays zero (invalid).
- keypoints2d, edge_texture: 16-bit heatmaps -> v / 65535 in [0, 1].
- mask_valid (optional, nonzero = valid): every target is marked invalid
  (seg -1, depth 0, normal 0, keypoints/edges -1) where the mask is 0.
With `size`, everything is resized to it: rgb bilinear, every target and the
mask nearest (on the raw codes, before decoding: the same result, less work),
so masks stay consistent across tasks. numpy + Pillow only.

Why this size: one on-disk format (layouts, split files, per-domain decoding,
the reader), whose parts change together when the format does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks import get_kind
from edgemtl.core.tasks.normal import unit_vectors
from edgemtl.data.imageio import read_png
from edgemtl.data.preprocess import resize_bilinear, resize_nearest
from edgemtl.data.sample import Sample, normalize_index
from edgemtl.data.split_files import read_split_file

RGB = "rgb"
MASK = "mask_valid"
#: Task key -> Taskonomy domain folder.
DOMAINS: dict[str, str] = {
    "seg": "segment_semantic",
    "depth": "depth_zbuffer",
    "normal": "normal",
    "keypoints": "keypoints2d",
    "edges": "edge_texture",
}
TASKONOMY_CLASSES: tuple[str, ...] = (
    "background",
    "bottle",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
)
DEPTH_UNITS_PER_M = 512.0
DEPTH_MISSING = 65535
NORMAL_CENTRE = 127.0
_NAME = re.compile(r"^(point_.+_view_.+)_domain_(.+)$")


# ----------------------------------------------------------------------- reader


def detect_layout(root: Path) -> str:
    """`domain_building` when `{root}/rgb/` exists, else `building_domain`."""
    return "domain_building" if (root / RGB).is_dir() else "building_domain"


def _labels(raw: np.ndarray, path: Path, domain: str) -> np.ndarray:
    if raw.ndim != 2 or raw.dtype != np.uint8:
        raise UserError(
            f"{path}: {domain} must be an 8-bit single-channel PNG, got "
            f"{raw.dtype} with shape {raw.shape}"
        )
    return raw.astype(np.int64) - 1  # 0 (uncertain) -> -1 = ignore


def _normals(raw: np.ndarray, path: Path, domain: str) -> np.ndarray:
    if raw.ndim != 3 or raw.shape[2] < 3 or raw.dtype != np.uint8:
        raise UserError(
            f"{path}: {domain} must be an 8-bit RGB PNG, got {raw.dtype} with shape {raw.shape}"
        )
    return unit_vectors((raw[..., :3].astype(np.float32) - NORMAL_CENTRE) / NORMAL_CENTRE, axis=-1)


def _uint16(raw: np.ndarray, path: Path, domain: str) -> np.ndarray:
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise UserError(
            f"{path}: {domain} must be a 16-bit single-channel PNG, got "
            f"{raw.dtype} with shape {raw.shape}"
        )
    return raw


def _depth(raw: np.ndarray, path: Path, domain: str) -> np.ndarray:
    depth = _uint16(raw, path, domain).astype(np.float32) / DEPTH_UNITS_PER_M
    depth[raw == DEPTH_MISSING] = 0.0
    return depth


def _heatmap(raw: np.ndarray, path: Path, domain: str) -> np.ndarray:
    return _uint16(raw, path, domain).astype(np.float32) / 65535.0


#: Task key -> decoder of its domain's PNG codes (module doc), in the same order as DOMAINS.
_DECODERS = {
    "seg": _labels,
    "depth": _depth,
    "normal": _normals,
    "keypoints": _heatmap,
    "edges": _heatmap,
}


def _decode(task: str, raw: np.ndarray, path: Path) -> np.ndarray:
    """One domain's raw PNG array -> the Sample target (before masking)."""
    return _DECODERS[task](raw, path, DOMAINS[task])


class TaskonomyReader:
    """Random access to one split; `reader[i]` -> channels-last Sample (see module doc)."""

    class_names: tuple[str, ...] = TASKONOMY_CLASSES
    #: What its targets store (docs/formats.md "Tasks": encodings).
    units: dict[str, str] = {"depth": "m"}
    encodings: dict[str, str] = {"depth": "depth"}

    def __init__(
        self,
        root: str | Path,
        split: str,
        tasks: Sequence[str],
        split_file: str | None = None,
        layout: str = "auto",
        size: tuple[int, int] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.tasks = list(tasks)
        self.size = tuple(size) if size else None
        for task in self.tasks:
            if task not in DOMAINS:
                raise UserError(
                    f"dataset taskonomy has no {task!r} targets (it provides: {', '.join(DOMAINS)})"
                )
        self.layout = detect_layout(self.root) if layout == "auto" else layout
        if self.layout not in ("building_domain", "domain_building"):
            raise UserError(
                f"data.layout {layout!r}: expected auto, building_domain or domain_building"
            )
        self.split_path, buildings = read_split_file(self.root, split_file, split)
        if not buildings:
            raise UserError(
                f"{self.split_path}: split {split!r} is empty (no building listed for it)"
            )
        self._items: list[tuple[str, str]] = []  # (building, "point_P_view_V")
        self._has_mask: dict[str, bool] = {}
        for building in buildings:
            self._index_building(building)
        if not self._items:
            raise UserError(
                f"taskonomy {self.root}: split {split!r} is empty: no rgb images in buildings "
                f"{', '.join(buildings)}"
            )

    def _dir(self, building: str, domain: str) -> Path:
        if self.layout == "building_domain":
            return self.root / building / domain
        return self.root / domain / building

    def _file(self, building: str, domain: str, key: str) -> Path:
        return self._dir(building, domain) / f"{key}_domain_{domain}.png"

    def _keys(self, folder: Path, domain: str) -> set[str]:
        keys = set()
        for path in folder.glob("*.png"):
            match = _NAME.match(path.stem)
            if match and match.group(2) == domain:
                keys.add(match.group(1))
        return keys

    def _index_building(self, building: str) -> None:
        rgb_dir = self._dir(building, RGB)
        if not rgb_dir.is_dir():
            raise UserError(
                f"{rgb_dir}: rgb folder of building {building!r} not found "
                f"(layout {self.layout}; listed in {self.split_path})"
            )
        keys = sorted(self._keys(rgb_dir, RGB))
        domains = [DOMAINS[t] for t in self.tasks]
        mask_dir = self._dir(building, MASK)
        self._has_mask[building] = mask_dir.is_dir()
        if self._has_mask[building]:
            domains.append(MASK)
        for domain in domains:
            folder = self._dir(building, domain)
            if not folder.is_dir():
                raise UserError(f"{folder}: {domain} folder of building {building!r} not found")
            have = self._keys(folder, domain)
            missing = [k for k in keys if k not in have]
            if missing:
                raise UserError(
                    f"{self._file(building, domain, missing[0])}: missing ({len(missing)} of "
                    f"{len(keys)} {domain} files missing for the rgb images)"
                )
        self._items.extend((building, key) for key in keys)

    def __len__(self) -> int:
        return len(self._items)

    def files(self, index: int) -> dict[str, Path]:
        building, key = self._items[index]
        out = {"image": self._file(building, RGB, key)}
        out.update({task: self._file(building, DOMAINS[task], key) for task in self.tasks})
        if self._has_mask[building]:
            out[MASK] = self._file(building, MASK, key)
        return out

    def __getitem__(self, index: int) -> Sample:
        index = normalize_index(index, len(self), self.split)
        files = self.files(index)
        raw = read_png(files["image"])
        if raw.ndim != 3 or raw.shape[2] < 3 or raw.dtype != np.uint8:
            raise UserError(
                f"{files['image']}: rgb must be an 8-bit RGB PNG, got {raw.dtype} with shape "
                f"{raw.shape}"
            )
        hw = raw.shape[:2]
        out_hw = self.size or hw

        def shrink(arr: np.ndarray) -> np.ndarray:
            # Nearest on the raw codes equals nearest after the per-pixel decoding, at a
            # quarter of the decoding work for 512 -> 256.
            return resize_nearest(arr, *out_hw)

        image = resize_bilinear(raw[..., :3].astype(np.float32) / 255.0, *out_hw)
        valid = None
        if MASK in files:
            mask = read_png(files[MASK])
            if mask.shape[:2] != hw:
                raise UserError(
                    f"{files[MASK]}: size {mask.shape[:2]} does not match its rgb's {hw}"
                )
            valid = shrink(mask if mask.ndim == 2 else mask[..., 0]) > 0
        targets: dict[str, np.ndarray] = {}
        for task in self.tasks:
            code = read_png(files[task])
            if code.shape[:2] != hw:
                raise UserError(
                    f"{files[task]}: size {code.shape[:2]} does not match its rgb's {hw}"
                )
            target = _decode(task, np.ascontiguousarray(shrink(code)), files[task])
            if valid is not None:
                target[~valid] = get_kind(task).invalid_value
            targets[task] = target
        building, key = self._items[index]
        return Sample(image=image, targets=targets, name=f"{building}/{key}")

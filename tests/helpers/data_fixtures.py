"""Tiny datasets written in each real on-disk format, with the arrays they hold.

Each writer returns what it wrote (per split, per sample, per task) in decoded
units, so tests compare the readers' output with known values. Every fixture
has invalid pixels and ignore labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

H, W = 32, 48


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([1234, *key])


def _unit_normals(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    n = rng.normal(size=(h, w, 3)).astype(np.float32)
    n[..., 2] = -np.abs(n[..., 2]) - 0.5  # facing the camera
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)


def write_npy_release(
    root: Path,
    kind: str,
    counts: dict[str, int] | None = None,
    label_folder: str = "label",
    n_classes: int = 13,
    h: int = H,
    w: int = W,
    normals: bool = True,
) -> dict[str, list[dict[str, np.ndarray]]]:
    """NYUv2/Cityscapes layout: {split}/{image,label*,depth,normal}/{i}.npy, channels-last
    floats."""
    counts = counts or {"train": 4, "val": 2}
    written: dict[str, list[dict[str, np.ndarray]]] = {}
    for s, (split, n) in enumerate(counts.items()):
        written[split] = []
        for i in range(n):
            rng = _rng(s, i, len(kind))
            image = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
            label = rng.integers(0, n_classes, (h, w)).astype(np.float32)
            label[:3, :5] = -1.0  # ignore
            depth = rng.uniform(0.5, 10.0, (h, w, 1)).astype(np.float32)
            depth[-4:, -6:] = 0.0  # invalid
            arrays = {"image": image, label_folder: label, "depth": depth}
            if normals:
                normal = _unit_normals(rng, h, w)
                normal[5:8, 10:14] = 0.0  # invalid
                arrays["normal"] = normal
            for folder, arr in arrays.items():
                (root / split / folder).mkdir(parents=True, exist_ok=True)
                np.save(root / split / folder / f"{i}.npy", arr)
            written[split].append(arrays)
    return written


def write_nyuv2(
    root: Path, counts: dict[str, int] | None = None
) -> dict[str, list[dict[str, np.ndarray]]]:
    return write_npy_release(root, "nyuv2", counts, "label", 13)


def write_cityscapes(
    root: Path,
    counts: dict[str, int] | None = None,
    label_folder: str = "label_7",
    n_classes: int = 7,
) -> dict[str, list[dict[str, np.ndarray]]]:
    return write_npy_release(root, "cityscapes", counts, label_folder, n_classes, normals=False)


# ------------------------------------------------------------------- taskonomy

TASKONOMY_SIZE = 64


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_taskonomy(
    root: Path,
    layout: str = "building_domain",
    buildings: dict[str, str] | None = None,
    per_building: int = 2,
    size: int = TASKONOMY_SIZE,
    mask: bool = True,
    split_file: str | None = "splits.csv",
) -> dict[str, dict[str, np.ndarray]]:
    """Taskonomy PNG domains; returns raw arrays per sample name `{building}/point_P_view_V`."""
    buildings = buildings or {"alpha": "train", "beta": "train", "gamma": "val"}
    written: dict[str, dict[str, np.ndarray]] = {}
    for b, building in enumerate(buildings):
        for i in range(per_building):
            rng = _rng(99, b, i)
            key = f"point_{i}_view_{b}"
            rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            seg = rng.integers(0, 18, (size, size), dtype=np.uint8)  # 0 = uncertain, 1..17 classes
            depth = rng.integers(100, 20000, (size, size), dtype=np.uint16)
            depth[:4, :4] = 65535  # missing
            normal = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            keypoints = rng.integers(0, 65536, (size, size), dtype=np.uint16)
            edges = rng.integers(0, 65536, (size, size), dtype=np.uint16)
            domains = {
                "rgb": rgb,
                "segment_semantic": seg,
                "depth_zbuffer": depth,
                "normal": normal,
                "keypoints2d": keypoints,
                "edge_texture": edges,
            }
            if mask:
                valid = np.full((size, size), 255, np.uint8)
                valid[-8:, :8] = 0
                domains["mask_valid"] = valid
            for domain, arr in domains.items():
                folder = (
                    root / building / domain
                    if layout == "building_domain"
                    else root / domain / building
                )
                _png(folder / f"{key}_domain_{domain}.png", arr)
            written[f"{building}/{key}"] = domains
    if split_file:
        lines = ["building,split"] + [f"{b},{s}" for b, s in buildings.items()]
        (root / split_file).write_text("\n".join(lines) + "\n")
    return written


# ---------------------------------------------------------------------- folder

FOLDER_CLASSES = ["road", "car", "person"]


def folder_spec() -> dict[str, Any]:
    return {
        "name": "robot-cam",
        "splits": {"train": "train", "val": "val"},
        "image": {"folder": "images", "format": "png8"},
        "tasks": {
            "seg": {
                "folder": "labels",
                "format": "png8",
                "invalid": 255,
                "classes": FOLDER_CLASSES,
            },
            "depth": {
                "folder": "depth",
                "format": "png16",
                "scale": 0.001,
                "invalid": 0,
                "units": "m",
            },
            "normal": {"folder": "normals", "format": "npy", "invalid": 0},
        },
    }


def write_folder(
    root: Path, counts: dict[str, int] | None = None, h: int = H, w: int = W
) -> dict[str, list[dict[str, np.ndarray]]]:
    """A Folder dataset: dataset.yaml + PNG images/labels/16-bit depth, NPY normals."""
    counts = counts or {"train": 4, "val": 2}
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump(folder_spec(), sort_keys=False))
    written: dict[str, list[dict[str, np.ndarray]]] = {}
    for s, (split, n) in enumerate(counts.items()):
        written[split] = []
        for i in range(n):
            rng = _rng(7, s, i)
            stem = f"frame_{i:03d}"
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            labels = rng.integers(0, 3, (h, w), dtype=np.uint8)
            labels[:2, :] = 255  # invalid
            depth = rng.integers(1, 60000, (h, w), dtype=np.uint16)  # millimetres
            depth[-3:, :4] = 0  # invalid
            normal = _unit_normals(rng, h, w)
            normal[4:6, 4:6] = 0.0
            _png(root / split / "images" / f"{stem}.png", image)
            _png(root / split / "labels" / f"{stem}.png", labels)
            _png(root / split / "depth" / f"{stem}.png", depth)
            (root / split / "normals").mkdir(parents=True, exist_ok=True)
            np.save(root / split / "normals" / f"{stem}.npy", normal)
            written[split].append(
                {"image": image, "labels": labels, "depth": depth, "normal": normal}
            )
    return written

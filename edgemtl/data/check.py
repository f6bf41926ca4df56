"""`edgemtl data check`: read every sample of every split and report what is there.

Why a separate pass over the raw files: readers convert (labels rounded, NaN
labels -> ignore, any float dtype accepted), which is right for training but
hides broken files. The check looks at each file's on-disk dtype and values
first, then at the decoded Sample, and stops at the first hard error with a
one-line UserError naming the file and what was expected. Softer findings
(non-unit normals, images of several sizes) are warnings in the report.
Training runs the same per-sample checks (`check_files`, `check_decoded`) on
what it reads, through `edgemtl.data.checked.CheckedReader`. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks import TaskKind, get_kind
from edgemtl.data.imageio import describe, read_npy
from edgemtl.data.readers import detect_kind, kind_splits, kind_tasks, open_reader

CHECK_SCHEMA_VERSION = 1
#: Image values may exceed [0, 1] by this much (float16 copies) before it is an error.
IMAGE_TOLERANCE = 1e-3


def _disk_format(path: Path) -> str:
    """On-disk type from the header only: 'float32 .npy', 'PNG I;16', ..."""
    return describe(path)


def _check_npy_raw(task: TaskKind | None, path: Path) -> None:
    """dtype and finiteness of a .npy as stored (`task` None: the image), before the reader
    converts it."""
    arr = read_npy(path)
    labels = task is not None and task.labels
    if arr.dtype.kind not in ("fiu" if labels else "f"):
        want = "float or integer labels" if labels else "floating point"
        raise UserError(f"{path}: dtype {arr.dtype}; expected {want}")
    if arr.dtype.kind == "f":
        try:
            finite = np.isfinite(arr)
        except ValueError as exc:  # a memory map cut short surfaces here
            raise UserError(
                f"{path}: cannot read its data ({exc}); the file may be truncated"
            ) from None
        if not finite.all():
            bad = int((~finite).sum())
            hint = f" (mark invalid pixels with {task.invalid_hint})" if task is not None else ""
            raise UserError(f"{path}: {bad} NaN/Inf values; expected finite numbers{hint}")


class _Stats:
    """Running min/max/mean/invalid fraction (and class histogram) of one task."""

    def __init__(self, fmt: str, n_classes: int = 0) -> None:
        self.format = fmt
        self.lo = np.inf
        self.hi = -np.inf
        self.total = 0.0
        self.count = 0
        self.invalid = 0
        self.pixels = 0
        self.hist = np.zeros(n_classes, dtype=np.int64) if n_classes else None

    def add(self, values: np.ndarray, invalid: np.ndarray) -> None:
        valid = values[~invalid] if values.ndim == invalid.ndim else values[~invalid].ravel()
        self.pixels += int(invalid.size)
        self.invalid += int(invalid.sum())
        if valid.size:
            self.lo = min(self.lo, float(valid.min()))
            self.hi = max(self.hi, float(valid.max()))
            self.total += float(valid.sum(dtype=np.float64))
            self.count += int(valid.size)

    def to_dict(self, class_names: Sequence[str] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "min": None if self.count == 0 else self.lo,
            "max": None if self.count == 0 else self.hi,
            "mean": None if self.count == 0 else self.total / self.count,
            "invalid_fraction": self.invalid / self.pixels if self.pixels else None,
        }
        if self.hist is not None:
            out["histogram"] = {name: int(n) for name, n in zip(class_names, self.hist)}
        return out


def check_files(reader: Any, index: int, keys: Sequence[str]) -> dict[str, Path]:
    """The raw checks of sample `index`'s files (dtype and finiteness of each .npy, as
    stored); returns the files (`reader.files`, empty for readers without one).

    `keys`: the task keys to check besides the image. Raises `UserError` naming the file.
    """
    files: dict[str, Path] = reader.files(index) if hasattr(reader, "files") else {}
    for key, path in files.items():
        if (key == "image" or key in keys) and path.suffix == ".npy":
            _check_npy_raw(None if key == "image" else get_kind(key), path)
    return files


def check_decoded(sample: Any, files: dict[str, Path], class_names: Sequence[str]) -> list[str]:
    """The checks of one decoded `Sample`: image H x W x 3, finite, in [0, 1]; every target by
    its kind's `check_target` (seg: class ids in 0..C-1 or -1, with C = len(class_names)).

    Raises `UserError` naming the file at the first hard error; returns the warnings.
    """
    image_path = files.get("image", Path(f"sample {sample.name}"))
    image = sample.image
    if image.ndim != 3 or image.shape[2] != 3:
        raise UserError(f"{image_path}: image shape {image.shape}; expected HxWx3")
    if not np.isfinite(image).all():
        raise UserError(f"{image_path}: NaN/Inf values; expected finite numbers in [0, 1]")
    lo, hi = float(image.min()), float(image.max())
    if lo < -IMAGE_TOLERANCE or hi > 1 + IMAGE_TOLERANCE:
        raise UserError(f"{image_path}: image values span [{lo:.4g}, {hi:.4g}]; expected [0, 1]")
    warnings: list[str] = []
    for key, target in sample.targets.items():
        path = files.get(key, Path(f"sample {sample.name} ({key})"))
        warnings.extend(get_kind(key).check_target(target, class_names, path))
    return warnings


def _check_sample(
    reader: Any,
    index: int,
    stats: dict[str, _Stats],
    shapes: set[str],
    warnings: list[str],
    class_names: Sequence[str],
) -> None:
    files = check_files(reader, index, [k for k in stats if k != "image"])
    for key, path in files.items():
        if key in stats and stats[key].format == "":
            stats[key].format = _disk_format(path)
    sample = reader[index]
    warnings.extend(check_decoded(sample, files, class_names))
    image = sample.image
    shapes.add(f"{image.shape[0]}x{image.shape[1]}")
    stats["image"].add(image, np.zeros(image.shape, bool))
    for key, target in sample.targets.items():
        kind = get_kind(key)
        invalid = ~kind.valid_sample(target, kind.output_channels(class_names or ("?",)))
        stats[key].add(target, invalid)
        hist = stats[key].hist
        if hist is not None:
            n = len(hist)
            hist += np.bincount(target[~invalid].ravel(), minlength=n)[:n]


def check_split(
    reader: Any,
    tasks: Sequence[str],
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    class_names = tuple(getattr(reader, "class_names", ()) or ())
    stats = {"image": _Stats("")}
    labels = [key for key in tasks if get_kind(key).labels]
    for key in tasks:
        stats[key] = _Stats("", len(class_names) if key in labels else 0)
    if labels and not class_names:
        raise UserError(f"dataset has a {labels[0]} task but no class names")
    shapes: set[str] = set()
    warnings: list[str] = []
    total = len(reader) if limit is None else min(limit, len(reader))
    for i in range(total):
        _check_sample(reader, i, stats, shapes, warnings, class_names)
        if progress is not None:
            progress(i + 1, total)
    if len(shapes) > 1:
        warnings.append(
            f"images come in {len(shapes)} sizes ({', '.join(sorted(shapes))}); "
            "they are resized to the recipe's data.size"
        )
    report = {
        "count": len(reader),
        "checked": total,
        "image": {"shapes": sorted(shapes), **stats["image"].to_dict()},
        "tasks": {key: stats[key].to_dict(class_names if key in labels else ()) for key in tasks},
    }
    if labels:
        report["classes"] = list(class_names)
    return report, warnings


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def check_dataset(
    root: str | Path,
    kind: str | None = None,
    tasks: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
    limit: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Check a dataset folder; returns the report, raises UserError at the first hard error."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    kind = kind or detect_kind(root)
    tasks = list(tasks) if tasks else kind_tasks(kind, root)
    if splits is None:
        splits = kind_splits(kind, root)
    report: dict[str, Any] = {
        "schema_version": CHECK_SCHEMA_VERSION,
        "dataset": kind,
        "root": str(root),
        "tasks": tasks,
        "ok": False,
        "splits": {},
        "warnings": [],
    }
    for split in splits:
        reader = open_reader(kind, root, split, tasks, options or {})
        if len(reader) == 0:
            raise UserError(f"{root}: split {split!r} is empty")

        def advance(done: int, total: int, split: str = split) -> None:
            if progress is not None:
                progress(split, done, total)

        split_report, warnings = check_split(reader, tasks, limit, advance)
        layout = getattr(reader, "layout", None)
        if layout:
            split_report["layout"] = layout
        if hasattr(reader, "files"):
            split_report["example_files"] = {
                key: _relative(path, root) for key, path in reader.files(0).items()
            }
        report["splits"][split] = split_report
        report["warnings"].extend(warnings)
    report["ok"] = True
    return report

"""Reader for the NYUv2-release folder layout: `{root}/{split}/{folder}/{i}.npy`.

Why one reader: the preprocessed NYUv2 and Cityscapes releases and our own
synthetic scenes all share this layout; only folder names differ (Cityscapes'
`label_7`), hence the `folders` mapping. Deploy side: numpy only.

Arrays are opened memory-mapped and copied out, so a dataset much larger than
RAM is fine and a Sample never aliases the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks import get_kind, kind_names
from edgemtl.data.imageio import read_npy
from edgemtl.data.sample import Sample, normalize_index

IMAGE_FOLDER = "image"

#: Task key -> folder name in the NYUv2 release (and our synthetic writer).
DEFAULT_FOLDERS: dict[str, str] = {
    "seg": "label",
    "depth": "depth",
    "normal": "normal",
    "keypoints": "keypoints",
    "edges": "edges",
}


def _indices(folder: Path) -> set[int]:
    """Indices i of the `{i}.npy` files in `folder` (other files are ignored)."""
    out: set[int] = set()
    for path in folder.glob("*.npy"):
        if path.stem.isdigit():
            out.add(int(path.stem))
    return out


class NpyLayoutReader:
    """Random access to one split; `reader[i]` -> channels-last `Sample`.

    `class_names` is carried for callers that label metrics (the layout itself
    does not store them; e.g. synthetic.json does).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        tasks: list[str],
        folders: dict[str, str] | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        self.root = Path(root)
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.split = split
        self.tasks = list(tasks)
        self.folders = {**DEFAULT_FOLDERS, **(folders or {})}
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise UserError(f"{split_dir}: split folder {split!r} not found under {self.root}")
        for task in self.tasks:
            if task not in kind_names():
                raise UserError(
                    f"{self.root}: unknown task {task!r}; expected one of {sorted(kind_names())}"
                )
            if task not in self.folders:
                raise UserError(f"{self.root}: no folder given for task {task!r}")

        image_dir = split_dir / IMAGE_FOLDER
        if not image_dir.is_dir():
            raise UserError(
                f"{image_dir}: folder {IMAGE_FOLDER!r} not found (expected "
                f"{split}/{IMAGE_FOLDER}/<i>.npy images)"
            )
        found = _indices(image_dir)
        self._n = len(found)
        if self._n == 0:
            raise UserError(f"{image_dir}: no <i>.npy files found")
        expected = set(range(self._n))
        if found != expected:
            missing = min(expected - found)
            raise UserError(
                f"{image_dir}: {missing}.npy is missing; expected files 0..{self._n - 1}.npy"
            )

        self._dirs: dict[str, Path] = {}
        for task in self.tasks:
            folder = split_dir / self.folders[task]
            if not folder.is_dir():
                raise UserError(
                    f"{folder}: folder {self.folders[task]!r} for task {task!r} not found"
                )
            have = _indices(folder)
            if have != expected:
                extra_or_missing = min(have ^ expected)
                raise UserError(
                    f"{folder}: holds {len(have)} files but {image_dir} holds {self._n} "
                    f"(first mismatch: {extra_or_missing}.npy); expected the same 0..{self._n - 1}"
                )
            self._dirs[task] = folder
        self._image_dir = image_dir

    def __len__(self) -> int:
        return self._n

    def files(self, index: int) -> dict[str, Path]:
        """The files behind sample `index`: "image" and one per task (for `data check`)."""
        out = {"image": self._image_dir / f"{index}.npy"}
        out.update({task: folder / f"{index}.npy" for task, folder in self._dirs.items()})
        return out

    def __iter__(self) -> Iterator[Sample]:
        for i in range(self._n):
            yield self[i]

    def __getitem__(self, index: int) -> Sample:
        index = normalize_index(index, self._n, self.split)
        image = self._load(self._image_dir / f"{index}.npy", np.float32, (3,))
        height, width = image.shape[:2]
        targets: dict[str, np.ndarray] = {}
        for task, folder in self._dirs.items():
            dtype, trailing = get_kind(task).target_layout()
            arr = self._load(folder / f"{index}.npy", dtype, trailing)
            if arr.shape[:2] != (height, width):
                raise UserError(
                    f"{folder / f'{index}.npy'}: shape {arr.shape} does not match "
                    f"its image's {height}x{width}"
                )
            targets[task] = arr
        return Sample(image=image, targets=targets, name=f"{self.split}/{index}")

    @staticmethod
    def _load(path: Path, dtype: type, trailing: tuple[int, ...]) -> np.ndarray:
        """Memory-mapped load, copied out as `dtype` with shape H x W + trailing."""
        mapped = read_npy(path)  # the one decoder: a bad file or one too large is one line
        arr = mapped
        if arr.ndim == 3 and arr.shape[-1] == 1 and trailing == ():
            arr = arr[..., 0]
        if arr.shape[2:] != trailing or arr.ndim != 2 + len(trailing):
            want = "HxW" + "".join(f"x{c}" for c in trailing)
            raise UserError(
                f"{path}: shape {mapped.shape}; expected {want}"
                + (" or HxWx1" if trailing == () else "")
            )
        if np.issubdtype(dtype, np.integer):
            # Labels are stored as floats (-1 = ignore); round, not truncate, and
            # treat a non-finite value as ignore.
            values = np.asarray(arr, dtype=np.float64)
            return np.where(np.isfinite(values), np.rint(values), -1).astype(dtype)
        return np.array(arr, dtype=dtype, copy=True)

"""The dataset-kind registry: kind name -> reader, task set, splits, detection, options.

A dataset reader is one `DatasetKind` given to `register_dataset`; recipes
(`data.kind`), checkpoints' data records, `data check`, `data show`, `--dataset`
and the training loop all ask this registry (docs/architecture.md "Where to
change what"). The built-in kinds are registered at the end of this module; their
reader modules are imported only when a split is opened. numpy only.

Why apart from registry.py: `data check` / `data show` open a folder by kind and
options without a recipe, and `open_split` (recipes, checkpoints, manifests)
dispatches here for every on-disk kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemtl.core.errors import UserError

#: Suffixes of the files the readers read (images, arrays, specs, split files): an output
#: inside a dataset folder never replaces one of these (`edgemtl.core.paths.check_not_an_input`).
DATASET_SUFFIXES: tuple[str, ...] = (".png", ".npy", ".yaml", ".yml", ".csv", ".txt", ".json")

#: open(root, split, tasks, options) -> a split reader (`data.registry.SplitReader`).
Opener = Callable[[Path, str, list[str], Mapping[str, Any]], Any]


def _recipe_options(data: Any) -> dict[str, Any]:
    return dict(data.options)


@dataclass(frozen=True)
class DatasetKind:
    """Everything the tool knows about one on-disk dataset kind.

    `open`: a split reader over `root` (raises UserError naming the file at fault).
    `tasks(root)`: every task key the dataset provides. `splits(root)`: the split
    names `data check` walks. `detect(root)`: True when a folder looks like this
    kind (None: never guessed; `detect_kind` tries kinds in registration order).
    `options(data)`: from a recipe's `data` section (`core.config.DataConfig`), the
    reader options a checkpoint records to reopen the split (they come back in
    `open`'s `options`, alongside `root_env`); by default the recipe's `data.options`.
    `generate(record, progress)`: the folder to read when no root is given (synthetic:
    rendered into the cache from the record's generator parameters); None: a root is
    required.
    """

    name: str
    open: Opener
    tasks: Callable[[Path], list[str]]
    detect: Callable[[Path], bool] | None = None
    options: Callable[[Any], dict[str, Any]] = _recipe_options
    splits: Callable[[Path], list[str]] = lambda root: ["train", "val"]
    generate: Callable[[Mapping[str, Any], Callable[[int, int], None] | None], Path] | None = None


_KINDS: dict[str, DatasetKind] = {}


def register_dataset(kind: DatasetKind) -> DatasetKind:
    """Make `kind` known to every command; a second kind of the same name is a ValueError."""
    if not kind.name.isidentifier() or kind.name != kind.name.lower():
        raise ValueError(f"dataset kind names are lower-case identifiers, got {kind.name!r}")
    if kind.name in _KINDS:
        raise ValueError(f"dataset kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def unregister_dataset(name: str) -> None:
    """Forget a registered kind (tests registering a toy kind clean up with this)."""
    _KINDS.pop(name, None)


def dataset_kinds() -> tuple[str, ...]:
    """The registered kind names, in registration (= detection) order."""
    return tuple(_KINDS)


def dataset_kind(name: str, what: str = "dataset kind") -> DatasetKind:
    """The registered kind `name`; a UserError naming `what` (e.g. "recipe r.yaml: data.kind")
    and the known kinds otherwise."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        known = ", ".join(_KINDS)
        raise UserError(f"{what} {name!r} is unknown (expected one of: {known})") from None


def open_reader(
    kind: str,
    root: Path,
    split: str,
    tasks: Sequence[str],
    options: Mapping[str, Any] | None = None,
) -> Any:
    """A split reader for `kind` at `root`; `options` as in a dataset record."""
    return dataset_kind(kind).open(Path(root), split, list(tasks), options or {})


def kind_tasks(kind: str, root: Path) -> list[str]:
    """Every task a dataset of `kind` at `root` provides."""
    return list(dataset_kind(kind).tasks(Path(root)))


def kind_splits(kind: str, root: Path) -> list[str]:
    """The splits a dataset of `kind` at `root` holds (what `data check` walks)."""
    return list(dataset_kind(kind).splits(Path(root)))


def detect_kind(root: Path) -> str:
    """The first registered kind whose `detect` recognises `root`; a UserError otherwise."""
    root = Path(root)
    for kind in _KINDS.values():
        if kind.detect is not None and kind.detect(root):
            return kind.name
    raise UserError(f"{root}: cannot tell the dataset kind: pass --dataset ({', '.join(_KINDS)})")


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


# --- the built-in kinds (registration order is detection order) -------------------------


def _size(options: Mapping[str, Any]) -> tuple[int, int] | None:
    size = options.get("size")
    return (int(size[0]), int(size[1])) if size else None


def _open_folder(root: Path, split: str, tasks: list[str], options: Mapping[str, Any]) -> Any:
    from edgemtl.data.folder import FolderReader

    return FolderReader(root, split, tasks, size=_size(options))


def _folder_tasks(root: Path) -> list[str]:
    from edgemtl.data.folder import load_folder_spec

    return list(load_folder_spec(root).tasks)


def _folder_splits(root: Path) -> list[str]:
    from edgemtl.data.folder import load_folder_spec

    return list(load_folder_spec(root).splits)


def _open_synthetic(root: Path, split: str, tasks: list[str], options: Mapping[str, Any]) -> Any:
    from edgemtl.data.npy_layout import NpyLayoutReader

    return NpyLayoutReader(
        root,
        split,
        tasks,
        class_names=synthetic_class_names(root),
        units={"depth": "m (z-depth)"},
        encodings={"depth": "depth"},
    )


def _open_nyuv2(root: Path, split: str, tasks: list[str], options: Mapping[str, Any]) -> Any:
    from edgemtl.data.npy_datasets import open_nyuv2

    return open_nyuv2(root, split, tasks)


def _nyuv2_tasks(root: Path) -> list[str]:
    from edgemtl.data.npy_datasets import NYUV2_TASKS

    return list(NYUV2_TASKS)


def _is_nyuv2(root: Path) -> bool:
    return (root / "train" / "normal").is_dir()


def _open_cityscapes(root: Path, split: str, tasks: list[str], options: Mapping[str, Any]) -> Any:
    from edgemtl.data.npy_datasets import open_cityscapes

    return open_cityscapes(root, split, tasks, options.get("label_folder") or "label_7")


def _cityscapes_tasks(root: Path) -> list[str]:
    from edgemtl.data.npy_datasets import CITYSCAPES_TASKS

    return list(CITYSCAPES_TASKS)


def _is_cityscapes(root: Path) -> bool:
    train = root / "train"
    return any((train / name).is_dir() for name in ("label_7", "label_19", "label_2")) or (
        (train / "label").is_dir() and (train / "depth").is_dir()
    )


def _open_taskonomy(root: Path, split: str, tasks: list[str], options: Mapping[str, Any]) -> Any:
    from edgemtl.data.taskonomy import TaskonomyReader

    return TaskonomyReader(
        root,
        split,
        tasks,
        options.get("split_file"),
        options.get("layout") or "auto",
        _size(options),
    )


def _taskonomy_tasks(root: Path) -> list[str]:
    from edgemtl.data.taskonomy import DOMAINS

    return list(DOMAINS)


def _is_taskonomy(root: Path) -> bool:
    return (root / "rgb").is_dir() or any(
        (d / "rgb").is_dir() for d in root.iterdir() if d.is_dir()
    )


register_dataset(
    DatasetKind(
        "folder",
        _open_folder,
        _folder_tasks,
        detect=lambda root: (root / "dataset.yaml").is_file(),
        options=lambda data: {"size": list(data.size)},
        splits=_folder_splits,
    )
)


def _synthetic_params(data: Any) -> dict[str, Any]:
    from edgemtl.data.synthetic import SynthParams

    synth = data.synthetic
    params = SynthParams(synth.n_train, synth.n_val, data.size[0], data.size[1], synth.seed)
    return {"params": params.to_dict()}


def _render_synthetic(
    record: Mapping[str, Any], progress: Callable[[int, int], None] | None
) -> Path:
    from edgemtl.data.synthetic import SynthParams, ensure_dataset

    return ensure_dataset(SynthParams.from_dict(record["params"]), progress=progress)


register_dataset(
    DatasetKind(
        "synthetic",
        _open_synthetic,
        lambda root: ["seg", "depth", "normal", "keypoints", "edges"],
        detect=lambda root: (root / "synthetic.json").is_file(),
        options=_synthetic_params,
        generate=_render_synthetic,
    )
)
register_dataset(DatasetKind("nyuv2", _open_nyuv2, _nyuv2_tasks, detect=_is_nyuv2))
register_dataset(
    DatasetKind(
        "cityscapes",
        _open_cityscapes,
        _cityscapes_tasks,
        detect=_is_cityscapes,
        options=lambda data: {"label_folder": data.label_folder},
    )
)
register_dataset(
    DatasetKind(
        "taskonomy",
        _open_taskonomy,
        _taskonomy_tasks,
        detect=_is_taskonomy,
        options=lambda data: {
            "split_file": data.split_file,
            "layout": data.layout,
            "size": list(data.size),
        },
    )
)

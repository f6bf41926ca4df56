"""From a recipe's `data` section (or a checkpoint's data record) to a split reader.

Why a record: a checkpoint stores `dataset_record(recipe)` so that `eval`,
`export` and `profile` can rebuild exactly the split the run was scored on
(for synthetic data: the generator's parameters, regenerated into the cache).
numpy only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from edgemtl.core.config import DataConfig
from edgemtl.core.errors import UserError
from edgemtl.data.readers import dataset_kind, open_reader
from edgemtl.data.sample import Sample


def declared_target(reader: object, task_key: str) -> tuple[str, str | None]:
    """(units, encoding) the reader declares for a task's targets ("" / None: none declared).

    Readers carry `units` and `encodings` mappings (task key -> text / one of the
    kind's `encodings`, e.g. Cityscapes' depth: "inverse_depth"; a Folder
    dataset's come from its dataset.yaml). The task spec, and so checkpoints and
    manifests, carry them on; augmentation and pictures read the encoding.
    """
    units = getattr(reader, "units", None) or {}
    encodings = getattr(reader, "encodings", None) or {}
    return str(units.get(task_key, "")), encodings.get(task_key)


class SplitReader(Protocol):
    class_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def dataset_record(cfg: DataConfig, source: str = "recipe") -> dict[str, Any]:
    """What a checkpoint stores to rebuild its splits.

    Raises UserError naming `source`'s `data.kind` when no reader is registered for it.
    """
    kind = dataset_kind(cfg.kind, f"{source}: data.kind")
    record: dict[str, Any] = {"kind": cfg.kind, "root": cfg.resolved_root()}
    if cfg.root_env:
        record["root_env"] = cfg.root_env
    options = kind.options(cfg)
    if unused := sorted(set(cfg.options) - set(options)):
        raise UserError(f"{source}: data.options: {cfg.kind} takes no option {unused[0]!r}")
    if clash := sorted(set(options) & {"kind", "root", "root_env"}):
        raise UserError(f"{source}: data.options: {clash[0]!r} is a reserved name")
    record.update(options)
    return record


def resolve_root(
    record: dict[str, Any],
    root: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """The folder holding the dataset; synthetic data is generated into the cache if needed."""
    chosen = root or record.get("root")
    generate = dataset_kind(record["kind"]).generate
    if generate is not None and not chosen:
        return generate(record, progress)
    if not chosen:
        env = record.get("root_env")
        also = f", set the {env} environment variable" if env else ""
        raise UserError(
            f"dataset {record['kind']}: no root folder given (set data.root{also}, or pass --data "
            "ROOT)"
        )
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise UserError(f"dataset {record['kind']}: root {path} is not a folder")
    return path


def open_split(
    record: dict[str, Any],
    split: str,
    task_keys: list[str],
    root: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SplitReader:
    """A reader over one split (`train` or `val`) yielding channels-last Samples."""
    folder = resolve_root(record, root, progress)
    return open_reader(record["kind"], folder, split, task_keys, record)

"""Option groups several commands share, as plain frozen dataclasses.

Why groups: `eval`, `profile`, `predict`, `export` and the `data` commands take
the same kinds of flags (where the images come from, where results go, which
artifact of a bundle); each command's options object holds these groups, the
CLI builds them from flags, and Python callers build them directly. The
runtime group is `edgemtl.deploy.runtime.base.RunnerOptions`. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgemtl.core.errors import UserError


@dataclass(frozen=True)
class DataSource:
    """Which images are scored: `--data ROOT` (None: the dataset the run or artifact
    records), `--split`, and `--limit N` (the first N images; None: all)."""

    root: str | None = None
    split: str = "val"
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit {self.limit}: expected a positive number of images")


@dataclass(frozen=True)
class OutputFiles:
    """Files a command writes its result to: `--json PATH` ('-' = the JSON on stdout
    instead of the table), `--markdown PATH` and `--plot PATH` where the command has them."""

    json: str | None = None
    markdown: str | None = None
    plot: str | None = None

    @property
    def json_to_stdout(self) -> bool:
        """True when the JSON replaces the table on stdout."""
        return self.json == "-"


@dataclass(frozen=True)
class DatasetFormat:
    """How a dataset folder is read (`data check`, `data show`): `--dataset` kind (None:
    detected) and the reader options `--label-folder`, `--split-file`, `--layout`."""

    dataset: str | None = None
    label_folder: str | None = None
    split_file: str | None = None
    layout: str | None = None

    def reader_options(self) -> dict[str, Any]:
        """The options dict the readers take (`edgemtl.data.readers.open_reader`)."""
        return {
            "label_folder": self.label_folder,
            "split_file": self.split_file,
            "layout": self.layout,
        }


@dataclass(frozen=True)
class ArtifactChoice:
    """Which artifacts a path yields (`profile`, `predict`): `--head` for checkpoints
    (None: `edgemtl.core.heads.default_head`), `--precision` and `--format` filters
    for bundle folders (None: all)."""

    head: str | None = None
    precisions: Sequence[str] | None = None
    formats: Sequence[str] | None = None


def parse_list(
    text: str | None, flag: str, allowed: Sequence[str] | None = None
) -> list[str] | None:
    """ "a, b" -> ["a", "b"] (lower-cased when `allowed` is given); None for no text.

    A value outside `allowed` is a UserError naming `flag` and the allowed values.
    """
    if not text:
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    if allowed is None:
        return values
    values = [v.lower() for v in values]
    if any(v not in allowed for v in values):
        raise UserError(f"{flag} {text!r}: expected some of {', '.join(allowed)}")
    return values

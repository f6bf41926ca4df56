"""Option groups several commands share, as plain frozen dataclasses.

Why groups: `eval`, `profile`, `predict`, `export` and the `data` commands take
the same kinds of flags (where the images come from, where results go, which
artifact of a bundle); each command's options object holds these groups, the
CLI builds them from flags, and Python callers build them directly. The
runtime group is `edgemtl.deploy.runtime.base.RunnerOptions`. Every options object
checks its values in `__post_init__` with the helpers below (`positive`,
`non_negative`, `at_least_one`, `choice`) and its output paths with
`edgemtl.core.paths`, so one flag is judged the same way by every command, before
any work starts. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgemtl.core.errors import UserError, excerpt
from edgemtl.core.paths import check_output_file

#: `--device` of the commands that run PyTorch (train, eval); the runners take cpu or cuda.
TORCH_DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
#: Suffixes `--plot` writes (matplotlib picks the format from them).
PLOT_SUFFIXES: tuple[str, ...] = (".png", ".svg", ".pdf")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def positive(value: Any, flag: str, unit: str = "") -> float:
    """`value` as a finite number > 0; else a UserError naming `flag`."""
    number = _number(value)
    if number is None or number <= 0:
        raise UserError(f"{flag} {excerpt(value)}: expected a positive number{unit}")
    return number


def non_negative(value: Any, flag: str, unit: str = "") -> float:
    """`value` as a finite number >= 0; else a UserError naming `flag`."""
    number = _number(value)
    if number is None or number < 0:
        raise UserError(f"{flag} {excerpt(value)}: expected a number >= 0{unit}")
    return number


def at_least_one(value: Any, flag: str) -> int:
    """`value` as an integer >= 1 (a count); else a UserError naming `flag`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{flag} {excerpt(value)}: expected a whole number >= 1")
    return value


def choice(value: Any, flag: str, allowed: Sequence[str]) -> str:
    """`value` when it is one of `allowed`; else a UserError naming `flag` and them."""
    if value not in allowed:
        names = ", ".join(allowed[:-1]) + (" or " if len(allowed) > 1 else "") + allowed[-1]
        raise UserError(f"{flag} {excerpt(value)}: expected {names}")
    return str(value)


@dataclass(frozen=True)
class DataSource:
    """Which images are scored: `--data ROOT` (None: the dataset the run or artifact
    records), `--split`, and `--limit N` (the first N images; None: all)."""

    root: str | None = None
    split: str = "val"
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None:
            at_least_one(self.limit, "--limit")


@dataclass(frozen=True)
class OutputFiles:
    """Files a command writes its result to: `--json PATH` ('-' = the JSON on stdout
    instead of the table), `--markdown PATH` and `--plot PATH` where the command has them."""

    json: str | None = None
    markdown: str | None = None
    plot: str | None = None

    def __post_init__(self) -> None:
        # Checked here, before any work: a bad path fails in a second, not after the run.
        if self.json and not self.json_to_stdout:
            check_output_file(self.json, "--json")
        if self.markdown:
            check_output_file(self.markdown, "--markdown")
        if self.plot:
            check_output_file(self.plot, "--plot", PLOT_SUFFIXES)

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
    if not values or any(v not in allowed for v in values):
        raise UserError(f"{flag} {excerpt(text)}: expected some of {', '.join(allowed)}")
    return values

"""The hostile-input corpus's contract (issue 13), run in-process with typer's CliRunner.

A hostile case runs one `edgemtl` command on a malformed file or option and must
end the way `edgemtl.cli.main` promises: exit 1 with one line `error: ...`
(at most 2 lines and 300 characters on stderr, no traceback) naming the file,
field or key, and every file the case names unchanged. A usage error typer
reports itself (exit 2) is acceptable too. `invoke` maps a `UserError` escaping
the app exactly as `edgemtl.cli.main` does, so the in-process outcome is what a
user sees; anything else escaping (a traceback) fails the case.

Case ids are `<class>-<command>-<what>`, so the corpus can be counted per class
and command (`pytest --collect-only -q tests/hostile`).
"""

from __future__ import annotations

import hashlib
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from edgemtl.cli import app
from edgemtl.core.errors import UserError

MAX_LINES = 2
MAX_CHARS = 300


@dataclass(frozen=True)
class Outcome:
    """What a user would see: exit code, stdout, stderr (the error line included)."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def invoke(args: Sequence[str], env: dict[str, str] | None = None) -> Outcome:
    """Run `edgemtl *args` in this process, mapping exceptions as `edgemtl.cli.main` does."""
    environ = {"EDGEMTL_DEBUG": None, "COLUMNS": "200", **(env or {})}
    result = CliRunner().invoke(app, [str(a) for a in args], env=environ)  # type: ignore[arg-type]
    stderr = result.stderr
    exc = result.exception
    if isinstance(exc, UserError):
        return Outcome(1, result.stdout, stderr + f"error: {exc}\n")
    if exc is not None and not isinstance(exc, SystemExit):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return Outcome(-1, result.stdout, stderr + tb)
    return Outcome(result.exit_code, result.stdout, stderr)


def assert_one_line(outcome: Outcome, *fragments: str) -> str:
    """Exit 1, at most `MAX_LINES` lines and `MAX_CHARS` characters on stderr, no traceback,
    an `error: ` line holding every fragment; returns that line. Exit 2 (typer's usage
    error) is accepted as is."""
    text = outcome.stderr
    assert "Traceback" not in text and "Aborted" not in text, text[-3000:]
    if outcome.exit_code == 2:
        return text
    assert outcome.exit_code == 1, (outcome.exit_code, text[-3000:])
    lines = outcome.lines
    assert 1 <= len(lines) <= MAX_LINES, text
    assert len(text.strip()) <= MAX_CHARS, f"{len(text.strip())} characters: {text}"
    error = next((line for line in lines if line.startswith("error: ")), None)
    assert error is not None, text
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    return error


def digest(paths: Iterable[Path]) -> dict[str, str]:
    """sha256 (or "absent", "dir: <names>") of every path, to prove a case changed nothing."""
    out = {}
    for path in paths:
        if path.is_file():
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[str(path)] = "dir: " + ",".join(sorted(os.listdir(path)))
        else:
            out[str(path)] = "absent"
    return out


def tree_digest(root: Path) -> dict[str, str]:
    """`digest` of every file and folder under `root` (itself included)."""
    return digest([root, *sorted(root.rglob("*"))])


def assert_hostile(
    args: Sequence[str],
    *fragments: str,
    unchanged: Iterable[Path] = (),
    env: dict[str, str] | None = None,
) -> str:
    """Run a hostile case: the one-line contract, and the files it names left as they were."""
    watched = list(unchanged)
    before = digest(watched)
    error = assert_one_line(invoke(args, env), *fragments)
    assert digest(watched) == before, "a hostile case changed a file it names"
    return error


# ---- broken datasets (issue 13 items 13 and 15), shared by `train` and the `data` commands ----

#: A change to a NYUv2-layout dataset (tests.helpers.data_fixtures.write_nyuv2), returning the
#: file it broke.
DataEdit = Callable[[Path], Path]


def _save(path: Path, array: np.ndarray) -> None:
    np.save(path, array)


def _rewrite(folder: str, index: int, edit: Callable[[np.ndarray], np.ndarray]) -> DataEdit:
    def change(root: Path) -> Path:
        path = root / "train" / folder / f"{index}.npy"
        _save(path, edit(np.load(path)))
        return path

    return change


def _zero_bytes(folder: str, index: int, split: str = "train") -> DataEdit:
    def change(root: Path) -> Path:
        path = root / split / folder / f"{index}.npy"
        path.write_bytes(b"")
        return path

    return change


def _truncated(folder: str, index: int) -> DataEdit:
    def change(root: Path) -> Path:
        path = root / "train" / folder / f"{index}.npy"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    return change


def _with(value: float, where: tuple[slice, slice] = (slice(0, 2), slice(0, 2))):
    def edit(arr: np.ndarray) -> np.ndarray:
        arr = np.array(arr)
        arr[where] = value
        return arr

    return edit


#: (case, change, fragment of the error): what `data check` rejects, and so training too.
BROKEN_NYUV2: list[tuple[str, DataEdit, str]] = [
    (
        "uint8-images",
        _rewrite("image", 1, lambda a: (np.asarray(a) * 255).astype(np.uint8)),
        "dtype uint8; expected floating point",
    ),
    (
        "images-0-255-float",
        _rewrite("image", 2, lambda a: np.asarray(a) * 255),
        "image values span",
    ),
    ("zero-byte-image", _zero_bytes("image", 1), "cannot read as a .npy array"),
    ("zero-byte-label", _zero_bytes("label", 0), "cannot read as a .npy array"),
    ("zero-byte-val-depth", _zero_bytes("depth", 1, "val"), "cannot read as a .npy array"),
    ("truncated-depth", _truncated("depth", 2), "the file may be truncated"),
    ("labels-of-40-classes", _rewrite("label", 1, _with(39.0)), "label 39 out of range"),
    ("label-nan", _rewrite("label", 3, _with(np.nan)), "NaN/Inf values"),
    ("depth-nan", _rewrite("depth", 0, _with(np.nan)), "NaN/Inf values"),
    ("depth-negative", _rewrite("depth", 1, _with(-2.0)), "negative depth -2"),
    ("image-grey", _rewrite("image", 0, lambda a: np.asarray(a)[..., 0]), "expected HxWx3"),
]


def break_nyuv2(root: Path, case: str) -> tuple[Path, str]:
    """Write a tiny NYUv2 dataset at `root` with fault `case`; (the broken file, fragment)."""
    from tests.helpers.data_fixtures import write_nyuv2

    write_nyuv2(root)
    _, change, fragment = next(c for c in BROKEN_NYUV2 if c[0] == case)
    return change(root), fragment


#: (case, dataset.yaml task edit, fragment): depth encodings declared wrong (item 15).
BAD_ENCODINGS: list[tuple[str, str, str, str]] = [
    ("depth-disparity-word", "depth", "disparity", "tasks.depth.encoding: 'disparity' is not"),
    ("seg-with-encoding", "seg", "depth", "tasks.seg.encoding: 'depth' is not one of"),
    ("normal-inverse-depth", "normal", "inverse_depth", "tasks.normal.encoding"),
]


def bad_encoding_folder(root: Path, case: str) -> tuple[Path, str]:
    """A tiny Folder dataset whose dataset.yaml declares encoding `case` wrongly."""
    import yaml

    from tests.helpers.data_fixtures import write_folder

    write_folder(root)
    _, task, encoding, fragment = next(c for c in BAD_ENCODINGS if c[0] == case)
    spec_path = root / "dataset.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["tasks"][task]["encoding"] = encoding
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec_path, fragment

"""Where commands may write, and which file names an artifact may give: checked once, here.

Why one module: every output path (`--out`, `--json`, `--markdown`, `--plot`,
`EDGEMTL_CACHE`, the `data synth` folder) is checked the same way before any
work starts (an existing file where a folder is expected and vice versa, a
folder that cannot be written, a read-only filesystem, an unsupported suffix),
and every file name read from an artifact (a manifest's `file`, `built_from`,
the parity reference) must be a plain name inside its folder before anything
reads, replaces or deletes it. A recipe's `name` becomes a run folder name
only through `safe_folder_name`. docs/formats.md "Limits and checks". Torch-free.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgemtl.core.errors import UserError, excerpt, short

#: Longest file name most filesystems take (bytes, NAME_MAX).
NAME_MAX = 255
#: Longest folder name a recipe `name` becomes (the run folder adds a time stamp).
FOLDER_NAME_MAX = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_DASHES = re.compile(r"[.-]*-[.-]*")


# ---- names from artifacts ------------------------------------------------------------


def name_problem(name: object) -> str | None:
    """Why `name` is not a plain file name (one path component), or None when it is."""
    if not isinstance(name, str) or not name:
        return "expected a non-empty file name"
    if name in (".", ".."):
        return "expected a file name, not . or .."
    if "/" in name or "\\" in name:
        return "expected a plain file name without a folder part"
    if "\x00" in name:
        return "a file name cannot hold a NUL character"
    if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        return f"longer than {NAME_MAX} bytes"
    return None


def plain_name(name: object, what: str) -> str:
    """`name` itself when it is a plain file name; else a UserError naming `what`."""
    problem = name_problem(name)
    if problem is not None:
        raise UserError(f"{what}: {excerpt(name)} is not a plain file name ({problem})")
    return str(name)


def inside(folder: str | Path, name: object, what: str) -> Path:
    """`folder / name` after checking that `name` is a plain name resolving inside `folder`.

    Called on every read, replace or delete of a file an artifact names, so a
    manifest listing `../x`, `/etc/x` or a symlink out of its bundle reaches
    nothing outside it. Raises UserError naming `what` (e.g. the manifest field).
    """
    folder = Path(folder)
    path = folder / plain_name(name, what)
    try:
        base, real = folder.resolve(), path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UserError(f"{what}: {path} cannot be resolved ({type(exc).__name__})") from None
    if real != base and base not in real.parents:
        raise UserError(f"{what}: {path} resolves to {real}, outside {folder}")
    return path


def safe_folder_name(name: str, default: str = "recipe") -> str:
    """`name` as a folder name that stays where it is put: ASCII letters, digits and `._+-`,
    other runs of characters replaced by one `-` (dots beside it go too), no leading/trailing
    dots or dashes, at most FOLDER_NAME_MAX characters; `default` when nothing is left
    (`/tmp/x` -> `tmp-x`, `a/../b` -> `a-b`)."""
    cleaned = _DASHES.sub("-", _UNSAFE.sub("-", name)).strip(".-")[:FOLDER_NAME_MAX]
    cleaned = cleaned.rstrip(".-")
    return cleaned or default


# ---- output paths --------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _unwritable(folder: Path) -> str | None:
    """Why nothing can be created in the existing `folder`, or None."""
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return f"{folder} is on a read-only filesystem"
    return f"{folder} is not writable (no permission)"


def _label(path: Path, flag: str) -> str:
    """How a message names the output: `--json out/x.json`, or the path alone (a default)."""
    shown = short(str(path), 120)
    return f"{flag} {shown}" if flag else shown


def _probe(path: Path, flag: str) -> tuple[Path, bool]:
    """(the nearest existing ancestor-or-self of `path`, whether `path` itself exists)."""
    if "\x00" in str(path):  # os.path says "does not exist"; opening it would raise
        raise UserError(f"{_label(path, flag)}: not a usable path (a NUL character)")
    try:
        existing = _nearest_existing(path)
        return existing, existing == path
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long
        raise UserError(f"{_label(path, flag)}: not a usable path ({exc})") from None


def check_output_file(path: str | Path, flag: str, suffixes: Sequence[str] | None = None) -> Path:
    """Check that a file can be written at `path` (created or replaced) before any work.

    `flag` names the option in the error (e.g. "--json"; "" for a default path);
    `suffixes` (lower-case, with the dot) are the ones the writer understands. UserError
    when `path` is a folder, has another suffix, lies under a file, or its folder cannot
    be written.
    """
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise UserError(
            f"{_label(path, flag)}: unsupported suffix {path.suffix or '(none)'!r} "
            f"(expected {', '.join(suffixes)})"
        )
    existing, exists = _probe(path, flag)
    if exists and path.is_dir():
        raise UserError(f"{_label(path, flag)}: is a folder; expected a file path")
    folder = existing.parent if exists else existing
    problem = _unwritable(folder)
    if problem is not None:
        raise UserError(f"{_label(path, flag)}: cannot write there: {problem}")
    return path


def check_output_dir(path: str | Path, flag: str) -> Path:
    """Check that `path` is, or can be created as, a folder to write into, before any work.

    UserError when `path` is a file, lies under a file, or the folder (or the
    nearest existing one above it) cannot be written.
    """
    path = Path(path)
    existing, exists = _probe(path, flag)
    if exists and not path.is_dir():
        raise UserError(f"{_label(path, flag)}: is a file; expected a folder")
    problem = _unwritable(existing)
    if problem is not None:
        raise UserError(f"{_label(path, flag)}: cannot write there: {problem}")
    return path


def check_not_an_input(
    path: str | Path,
    flag: str,
    files: Iterable[str | Path] = (),
    folders: Iterable[str | Path] = (),
    suffixes: Sequence[str] = (),
) -> Path:
    """Refuse an output that would overwrite what the command reads: `path` is one of
    `files`, or an existing file with one of `suffixes` inside one of `folders` (a dataset
    file under `data show --out`). A new file beside the inputs is fine."""
    path = Path(path)
    try:
        target = path.resolve()
        same = [f for f in files if Path(f).exists() and Path(f).resolve() == target]
        under = [
            d
            for d in folders
            if path.is_file()
            and path.suffix.lower() in suffixes
            and Path(d).resolve() in target.parents
        ]
    except (OSError, RuntimeError, ValueError):
        return path  # unresolvable paths are the output checks' to judge
    if same:
        what = f"is an input of this command ({short(str(same[0]), 80)})"
    elif under:
        what = f"would replace a file of {short(str(under[0]), 80)}, which this command reads"
    else:
        return path
    raise UserError(f"{_label(path, flag)}: {what}; choose another path")

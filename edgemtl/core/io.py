"""Atomic file and folder writes, their temporaries, and checksums.

Why: a failure half-way (NaN, Ctrl-C, full disk, failed parity gate) must never
leave a corrupt checkpoint, bundle or report where a good one stood. Everything
is written beside its final place and moved in with `os.replace`.

Temporaries and their owners: a process killed mid-write (SIGKILL, power loss)
cannot clean up, so every temporary is named `.<final name>.tmp-XXXXXXXX[...]`
and its writer holds an exclusive `flock` on it while it exists. The kernel
drops that lock when the owner dies, so `sweep_temporaries` (run by each
command on its output folders before it writes) deletes exactly the
temporaries no live process owns, however young: two trainings on one cache
(benchmarks/reproduce.py) never delete each other's work in progress, and
nothing is judged by its age. Where `fcntl` is missing (non-POSIX), nothing is
locked and nothing is swept.

The temporary files and folders are private while written (`tempfile` makes them
0600 / 0700); what is moved in gets the modes a plain `open()` / `mkdir` would have
given it under the process umask (usually 0644 / 0755).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: no locks, no sweeping
    fcntl = None  # type: ignore[assignment]

#: Marks a temporary's name: `.<final name>` + TEMP_MARK + random (+ suffix).
TEMP_MARK = ".tmp-"


def _same_entry(path: Path, fd: int) -> bool:
    """Whether `path` still names the file or folder open as `fd` (not swept meanwhile)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _hold(path: Path, fd: int) -> bool:
    """Take the owner's lock on a temporary just created as `fd`; False if it was swept first."""
    if fcntl is None:
        return True
    fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a sweeper deletes it
    return _same_entry(path, fd)


def _owned_file(directory: Path, prefix: str, suffix: str) -> tuple[Path, int]:
    """A new temporary file `prefix` + TEMP_MARK + random + `suffix`, created and locked."""
    while True:
        fd, name = tempfile.mkstemp(prefix=prefix + TEMP_MARK, suffix=suffix, dir=directory)
        if _hold(Path(name), fd):
            return Path(name), fd
        os.close(fd)


class TempDir:
    """A temporary folder beside its final place, owned (locked) until `release()`.

    `prefix` + TEMP_MARK + random names it; `path` is where to write.
    """

    def __init__(self, parent: Path, prefix: str) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        while True:
            self.path = Path(tempfile.mkdtemp(prefix=prefix + TEMP_MARK, dir=parent))
            self._fd: int | None = os.open(self.path, os.O_RDONLY)
            if _hold(self.path, self._fd):
                return
            os.close(self._fd)

    def release(self, remove: bool = True) -> None:
        """Drop the lock; with `remove`, delete the folder first if it is still there."""
        if remove and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sweep_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temporaries in `folder` whose owner is gone; return what was deleted.

    A temporary is an entry named `.<final name>` + TEMP_MARK + ... (`name` given:
    only those of that final name); it is deleted when its owner's lock can be
    taken, i.e. no live process holds it (module doc). Symlinks are never followed.
    """
    folder = Path(folder)
    if fcntl is None or not folder.is_dir():
        return []
    start = f".{name}." if name is not None else "."
    removed = []
    for entry in folder.iterdir():
        if not entry.name.startswith(start) or TEMP_MARK not in entry.name:
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # a symlink, or gone meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive
            if not _same_entry(entry, fd):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, then put it back
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new file under the umask: 0o666 & ~umask (0o644 with the usual 022)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """Mode of a new folder under the umask: 0o777 & ~umask (0o755 with the usual 022)."""
    return 0o777 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _owned_file(path.parent, f".{path.name}", ".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:  # closing it releases the lock, after the rename
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(tmp, file_mode())  # mkstemp makes 0600
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`.

    For writers that insist on a file name (torch.save, onnx.save, savefig).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path, fd = _owned_file(path.parent, f".{path.name}", path.suffix or ".tmp")
    try:
        yield tmp_path
        os.chmod(tmp_path, file_mode())  # mkstemp makes 0600
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Build a folder in a temp sibling; on success rename it to `final`.

    If `final` appeared meanwhile (a parallel builder won the race), the new copy
    is discarded and the existing one kept: callers build deterministic content.
    """
    final = Path(final)
    temp = TempDir(final.parent, f".{final.name}")
    try:
        yield temp.path
        os.chmod(temp.path, dir_mode())  # mkdtemp makes 0700
        try:
            os.rename(temp.path, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        temp.release()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()

"""Temporaries of atomic writes: swept once their owner is dead, never while it lives.

Owners are real processes: one holds a temporary (file or folder) open in the
middle of a write while another sweeps; then the owner is SIGKILLed and the
next sweep removes what it left (core/io.py: owners hold a flock, not an age).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgemtl.core.io import TempDir, atomic_dir, atomic_file, atomic_write_text, sweep_temporaries
from tests.helpers.killed import kill, start_hanging, temporaries

_FILE_OWNER = """
import sys, time
from edgemtl.core.io import atomic_file
with atomic_file({path!r}) as tmp:
    tmp.write_bytes(b"half a file")
    print("HANGING", flush=True)
    time.sleep(600)
"""

_DIR_OWNER = """
import time
from edgemtl.core.io import atomic_dir
with atomic_dir({path!r}) as tmp:
    (tmp / "part.npy").write_bytes(b"x")
    print("HANGING", flush=True)
    time.sleep(600)
"""


def test_a_live_owners_file_is_kept_and_a_dead_ones_swept(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    owner = start_hanging(_FILE_OWNER.format(path=str(target)))
    try:
        (left,) = temporaries(tmp_path)
        assert left.startswith(".last.pt.tmp-") and left.endswith(".pt")
        assert sweep_temporaries(tmp_path) == []  # alive: however young, it stays
        assert temporaries(tmp_path) == [left]
    finally:
        kill(owner)
    assert temporaries(tmp_path) == [left]  # a SIGKILLed writer cannot clean up
    assert [p.name for p in sweep_temporaries(tmp_path, "last.pt")] == [left]
    assert temporaries(tmp_path) == [] and not target.exists()


def test_a_live_owners_folder_is_kept_and_a_dead_ones_swept(tmp_path: Path) -> None:
    final = tmp_path / "cache" / "abc"
    owner = start_hanging(_DIR_OWNER.format(path=str(final)))
    try:
        (left,) = temporaries(final.parent)
        assert sweep_temporaries(final.parent) == []
        assert (final.parent / left / "part.npy").is_file()
    finally:
        kill(owner)
    assert [p.name for p in sweep_temporaries(final.parent)] == [left]
    assert os.listdir(final.parent) == []


def test_sweeping_is_scoped_and_never_follows_links(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / ".x.tmp-link").symlink_to(victim)  # looks like a temporary; is a link
    (folder / ".other.tmp-abc").write_text("dead, but of another final name")
    (folder / "report.tmp-notours").write_text("not hidden: not ours")
    assert sweep_temporaries(folder, "x") == []
    assert (victim / "keep.txt").read_text() == "mine"
    assert [p.name for p in sweep_temporaries(folder)] == [".other.tmp-abc"]
    assert sorted(os.listdir(folder)) == [".x.tmp-link", "report.tmp-notours"]


def test_writes_in_one_process_leave_nothing_and_hold_no_lock(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.json", "{}")
    with atomic_file(tmp_path / "b.png") as tmp:
        tmp.write_bytes(b"png")
        assert sweep_temporaries(tmp_path) == []  # our own, held: kept
    with atomic_dir(tmp_path / "c") as tmp:
        (tmp / "f").write_text("1")
    staging = TempDir(tmp_path, ".d.staging")
    assert sweep_temporaries(tmp_path) == [] and staging.path.is_dir()
    staging.release()
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.png", "c"]
    assert temporaries(tmp_path) == []

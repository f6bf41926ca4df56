"""Files and folders the atomic writers publish get the modes a plain open()/mkdir would
give them under the process umask, not the private 0600/0700 of their temporary names."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgemtl.core.io import atomic_dir, atomic_file, atomic_write_json


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_modes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        with atomic_file(tmp_path / "b.png") as tmp:
            tmp.write_bytes(b"png")
        with atomic_dir(tmp_path / "bundle") as folder:
            (folder / "model.onnx").write_bytes(b"onnx")
        (tmp_path / "plain.txt").write_text("reference")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)

    def mode(name: str) -> int:
        return stat.S_IMODE(os.stat(tmp_path / name).st_mode)

    assert mode("a.json") == mode("b.png") == mode("plain.txt") == 0o666 & ~umask
    assert mode("bundle") == mode("plain") == 0o777 & ~umask
    assert mode("bundle/model.onnx") == 0o666 & ~umask

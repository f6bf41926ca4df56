"""Training's reader runs `data check`'s per-sample checks once per sample (data/checked.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.data.checked import MAX_WARNINGS, CheckedReader
from edgemtl.data.npy_datasets import open_nyuv2
from tests.helpers.data_fixtures import write_nyuv2


def test_checks_run_on_the_first_read_and_warnings_are_capped(tmp_path: Path) -> None:
    write_nyuv2(tmp_path, {"train": 6, "val": 1})
    for i in range(6):  # normals of length 2: a warning per sample, as data check gives
        path = tmp_path / "train" / "normal" / f"{i}.npy"
        np.save(path, np.load(path) * 2)
    warned: list[str] = []
    reader = CheckedReader(open_nyuv2(tmp_path, "train", ["seg", "depth", "normal"]), ["normal"])
    assert len(reader) == 6 and reader.class_names == open_nyuv2(tmp_path, "val", []).class_names
    reader.warn = warned.append
    for i in range(6):
        reader[i]
    assert len(warned) == MAX_WARNINGS + 1 and "are not unit length" in warned[0]
    assert "run `edgemtl data check`" in warned[-1]
    # A file broken after its sample was checked is not looked at again (one look per sample)...
    np.save(tmp_path / "train" / "image" / "0.npy", np.zeros((32, 48, 3), np.uint8))
    reader[0]
    # ...but the first read of a sample is, through its negative index too.
    np.save(tmp_path / "train" / "label" / "5.npy", np.full((32, 48), 20.0, np.float32))
    fresh = CheckedReader(open_nyuv2(tmp_path, "train", ["seg"]), ["seg"], warn=warned.append)
    with pytest.raises(UserError, match=r"label/5\.npy: label 20 out of range"):
        fresh[-1]

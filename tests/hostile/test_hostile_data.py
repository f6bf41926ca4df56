"""Hostile datasets for the `data` commands: the same broken files training refuses.

Classes (issue 13): `data` (item 13: what `data check` rejects, `data show`
refuses too when it reads the broken sample) and `encoding` (item 15: a wrong
depth encoding in dataset.yaml). Every case: exit 1, one line naming the file,
the dataset unchanged and no report or picture written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.hostile_cases import (
    BAD_ENCODINGS,
    BROKEN_NYUV2,
    assert_hostile,
    bad_encoding_folder,
    break_nyuv2,
    tree_digest,
)


@pytest.mark.parametrize("case", [c[0] for c in BROKEN_NYUV2], ids=lambda c: f"data-check-{c}")
def test_data_check_rejects(tmp_path: Path, case: str) -> None:
    root = tmp_path / "nyuv2"
    broken, fragment = break_nyuv2(root, case)
    before = tree_digest(root)
    report = tmp_path / "check.json"
    assert_hostile(
        ["data", "check", root, "--dataset", "nyuv2", "--json", report, "-q"],
        str(broken),
        fragment,
        unchanged=[report],
    )
    assert tree_digest(root) == before


@pytest.mark.parametrize("case", [c[0] for c in BROKEN_NYUV2], ids=lambda c: f"data-show-{c}")
def test_data_show_refuses_the_broken_sample(tmp_path: Path, case: str) -> None:
    root = tmp_path / "nyuv2"
    broken, fragment = break_nyuv2(root, case)
    split, _, index = broken.relative_to(root).parts
    before = tree_digest(root)
    picture = tmp_path / "sample.png"
    assert_hostile(
        ["data", "show", root, "--dataset", "nyuv2", "--split", split]
        + ["--index", Path(index).stem, "--out", picture, "-q"],
        str(broken),
        fragment,
        unchanged=[picture],
    )
    assert tree_digest(root) == before


@pytest.mark.parametrize("command", ("check", "show"))
@pytest.mark.parametrize("case", [c[0] for c in BAD_ENCODINGS], ids=lambda c: f"encoding-{c}")
def test_wrong_encoding_in_dataset_yaml(tmp_path: Path, case: str, command: str) -> None:
    root = tmp_path / "folder"
    spec, fragment = bad_encoding_folder(root, case)
    before = tree_digest(root)
    out = tmp_path / ("check.json" if command == "check" else "sample.png")
    args = ["data", command, root, "--dataset", "folder", "-q"]
    args += ["--json", out] if command == "check" else ["--out", out]
    assert_hostile(args, str(spec), fragment, unchanged=[out])
    assert tree_digest(root) == before

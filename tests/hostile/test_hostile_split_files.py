"""Taskonomy split files (issue 13, class 16): their form is read from the file alone, and
every malformed file is one line naming it.

A headerless `building,split` CSV whose first row is `b1,train` once lost that row
for `train` only, because the header was guessed from the split asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgemtl.data.split_files import read_split_file, split_file_form
from tests.helpers.data_fixtures import write_taskonomy


@pytest.mark.parametrize(
    ("text", "train", "val"),
    [
        ("alpha,train\nbeta,train\ngamma,val\n", ["alpha", "beta"], ["gamma"]),
        ("building,split\nalpha,train\ngamma,val\n", ["alpha"], ["gamma"]),
        ("gamma,val\nalpha,train\n", ["alpha"], ["gamma"]),
        ("alpha,train\n", ["alpha"], []),
        ("id,train,val,test\nalpha,1,0,0\ngamma,0,1,0\n", ["alpha"], ["gamma"]),
        ("ID,Train,Val\nalpha,yes,no\ngamma,no,yes\n", ["alpha"], ["gamma"]),
    ],
    ids=["headerless", "header", "headerless-val-first", "one-row", "flags", "flags-words"],
)
def test_the_form_does_not_depend_on_the_split_asked(
    tmp_path: Path, text: str, train: list[str], val: list[str]
) -> None:
    (tmp_path / "s.csv").write_text(text)
    assert read_split_file(tmp_path, "s.csv", "train")[1] == train
    assert read_split_file(tmp_path, "s.csv", "val")[1] == val


def test_forms() -> None:
    assert split_file_form([["b1", "train"], ["b2", "val"]]) == "pairs"
    assert split_file_form([["b1", "train"]]) == "pairs"
    assert split_file_form([["building", "split"], ["b1", "val"]]) == "pairs_header"
    assert split_file_form([["id", "train", "val", "test"]]) == "flags"
    assert split_file_form([["id", "train", "val"], ["b1", "1", "0"]]) == "flags"


def test_headerless_first_row_trains(hostile) -> None:
    """The issue's case end to end: `data check` sees the first row's building in train."""
    write_taskonomy(hostile.folder / "tk", per_building=1, split_file=None)
    Path("tk/splits.csv").write_text("alpha,train\nbeta,train\ngamma,val\n")
    outcome = hostile.run("data", "check", "tk", "--dataset", "taskonomy", "--json", "-")
    assert outcome.code == 0, outcome.describe()
    report = json.loads(outcome.stdout)
    assert report["splits"]["train"]["count"] == 2  # alpha and beta, one sample each
    assert report["splits"]["val"]["count"] == 1


SPLITS = {
    "not-utf8": (b"alpha,train\n\xff\xfe,val\n", "cannot read split file (UnicodeDecodeError)"),
    "three-columns": (b"alpha,train\nbeta,val,extra\n", "line 2: expected 'building,split'"),
    "one-column": (b"alpha\nbeta\n", "line 1: expected 'building,split'"),
    "empty": (b"\n# only a comment\n", "split file is empty"),
    "missing-column": (b"id,train,test\nalpha,1,0\ngamma,0,1\n", "no column 'val'"),
    "too-large": (b"alpha,train\n" * (400 * 1024), "larger than 4 MiB"),
    "empty-building": (b",train\n,val\n", "line 1: expected 'building,split'"),
    "traversal": (b"../../etc,train\n../..,val\n", "rgb folder of building '../.."),
}


@pytest.mark.parametrize("case", sorted(SPLITS))
@pytest.mark.parametrize("command", ["check", "show"])
def test_data_commands_refuse_malformed_split_files(hostile, command: str, case: str) -> None:
    data, fragment = SPLITS[case]
    write_taskonomy(hostile.folder / "tk", per_building=1, split_file=None)
    Path("tk/splits.csv").write_bytes(data)
    args = ("data", command, "tk", "--dataset", "taskonomy")
    if command == "show":
        args += ("--split", "val")
    hostile.refuses(*args, says=(fragment,), unchanged=["tk"])
    assert not Path("sample.png").exists()


@pytest.mark.parametrize(
    ("split_file", "fragment"),
    [("lists", "lists: split file not found"), ("nope/{split}.txt", "split file not found")],
)
def test_split_file_that_is_not_a_file(hostile, split_file: str, fragment: str) -> None:
    write_taskonomy(hostile.folder / "tk", per_building=1)
    Path("tk/lists").mkdir()
    args = ("data", "check", "tk", "--dataset", "taskonomy", "--split-file", split_file)
    hostile.refuses(*args, says=(fragment,))

"""Hostile YAML and wrong shapes (issue 13, classes 3 and 10): recipes, `--set` values and a
Folder dataset's `dataset.yaml`.

Anchors and aliases are refused outright (nested aliases expand exponentially), files
are bounded (docs/formats.md "Limits and checks"), every wrong shape of value is one
line naming the key, and no message echoes more than a short excerpt of the input.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgemtl.core.config import MAX_RECIPE_BYTES, MAX_SET_CHARS
from tests.helpers.data_fixtures import folder_spec, write_folder


def laughs(levels: int) -> str:
    """The "billion laughs": each level an anchor listing the previous one nine times."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join([*lines, f"name: *l{levels}", "tasks: [seg]"]) + "\n"


RECIPES: dict[str, tuple[bytes, str]] = {
    "laughs-7": (laughs(7).encode(), "anchors and aliases"),
    "laughs-9": (laughs(9).encode(), "anchors and aliases"),
    "alias": (b"base: &b {epochs: 2}\ntasks: [seg]\ntrain: *b\n", "anchors and aliases"),
    "merge-key": (b"b: &b {epochs: 2}\ntasks: [seg]\ntrain: {<<: *b}\n", "anchors and aliases"),
    "too-large": (b"# " + b"x" * MAX_RECIPE_BYTES + b"\ntasks: [seg]\n", "larger than 64 KiB"),
    "deep": (b"tasks: " + b"[" * 20000 + b"]" * 20000 + b"\n", "recipe r.yaml"),
    "not-utf8": (b"tasks: [seg]\nname: \xff\xfe\n", "cannot read (UnicodeDecodeError)"),
    "binary": (bytes(range(256)) * 4, "recipe r.yaml"),
    "python-tag": (b"tasks: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
    "list": (b"- tasks\n- seg\n", "expected a mapping"),
    "scalar": (b"42\n", "expected a mapping"),
    "long-key": (b"tasks: [seg]\n" + b"k" * 1000 + b": 1\n", "unknown key"),
    "long-value": (b"tasks: [seg]\ntrain: {epochs: '" + b"9" * 20000 + b"x'}\n", "train.epochs"),
    "unhashable-key": (b"tasks: {[seg]: {}}\n", "invalid YAML"),
}


@pytest.mark.parametrize("case", sorted(RECIPES))
def test_train_refuses_hostile_recipes(hostile, case: str) -> None:
    data, fragment = RECIPES[case]
    Path("r.yaml").write_bytes(data)
    outcome = hostile.refuses("train", "r.yaml", says=(fragment,), unchanged=["r.yaml"])
    assert not Path("runs").exists()
    assert "lol" not in outcome.stderr  # no expansion echoed


def test_train_refuses_a_folder_or_device_as_recipe(hostile) -> None:
    Path("folder.yaml").mkdir()
    hostile.refuses("train", "folder.yaml", says=("not a regular file",))
    hostile.refuses("train", "/dev/zero", says=("not a regular file",))
    hostile.refuses("train", "missing.yaml", says=("no such file",))


SETS: dict[str, tuple[str, str]] = {
    "alias": ("tasks=*a", "anchors and aliases"),
    "anchor": ("tasks=&a [seg]", "anchors and aliases"),
    "too-long": ("name=" + "x" * MAX_SET_CHARS, f"longer than {MAX_SET_CHARS}"),
    "deep": ("data.size=" + "[" * 1500 + "]" * 1500, "nested too deeply"),
    "no-equals": ("train.epochs", "expected key.path=value"),
    "empty-key": ("=3", "empty key path"),
    "not-a-section": ("train.epochs.x=1", "train.epochs is not a section"),
    "bad-yaml": ("tasks=[seg", "invalid YAML"),
    "long-bad-yaml": ("tasks=[" + "seg," * 500, "invalid YAML"),
}


@pytest.mark.parametrize("case", sorted(SETS))
def test_train_refuses_hostile_set_values(hostile, recipe: Path, case: str) -> None:
    assignment, fragment = SETS[case]
    hostile.refuses("train", "r.yaml", "--set", assignment, says=(fragment,))
    assert not Path("runs").exists()


SHAPES: dict[str, tuple[str, str]] = {
    "tasks-nested-list": ("tasks=[[seg]]", "tasks: expected a list of task names"),
    "tasks-number": ("tasks=5", "tasks:"),
    "tasks-map-list": ("tasks={seg: [1]}", "tasks.seg"),
    "tasks-unknown-number": ("tasks=[1]", "tasks: expected a list of task names"),
    "data-list": ("data=[1]", "data:"),
    "size-nested": ("data.size=[[16]]", "data.size"),
    "size-scalar": ("data.size=16", "data.size"),
    "size-three": ("data.size=[16, 16, 16]", "data.size"),
    "width-map": ("model.width={a: 1}", "model.width"),
    "method-list": ("method=[sd]", "method"),
    "method-name-map": ("method={name: {x: 1}}", "method"),
    "optimizer-string": ("train.optimizer=adam", "train.optimizer"),
    "epochs-list": ("train.epochs=[1]", "train.epochs"),
    "name-list": ("name=[x]", "name"),
    "reference-map": ("train.reference={a: 1}", "train.reference"),
    "scale-nested": ("data.augment.scale=[[1]]", "data.augment.scale"),
    "std-zero": ("data.std=[0, 0, 0]", "data.std"),
    "epochs-inf": ("train.epochs=.inf", "train.epochs"),
    "lr-nan": ("train.optimizer.lr=.nan", "train.optimizer.lr"),
    "name-map": ("name={a: 1}", "name"),
    "binary-epochs": ("train.epochs=!!binary aGVsbG8=", "train.epochs"),
}


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_train_refuses_every_wrong_shape(hostile, recipe: Path, case: str) -> None:
    assignment, fragment = SHAPES[case]
    hostile.refuses("train", "r.yaml", "--set", assignment, says=(f"recipe r.yaml: {fragment}",))


DATASET_YAMLS: dict[str, tuple[bytes, str]] = {
    "alias": (b"base: &b {folder: images}\nimage: *b\ntasks: {}\n", "anchors and aliases"),
    "laughs": (laughs(8).encode(), "anchors and aliases"),
    "too-large": (b"#" * (MAX_RECIPE_BYTES + 10) + b"\n", "larger than 64 KiB"),
    "long-task-key": (
        yaml.safe_dump({**folder_spec(), "tasks": {"t" * 5000: {"folder": "x"}}}).encode(),
        "unknown task kind",
    ),
    "not-a-map": (b"[1, 2]\n", "expected a mapping"),
}


@pytest.mark.parametrize("case", sorted(DATASET_YAMLS))
@pytest.mark.parametrize("command", ["check", "show"])
def test_data_commands_refuse_hostile_dataset_yaml(hostile, command: str, case: str) -> None:
    write_folder(hostile.folder / "fd", {"train": 1, "val": 1}, h=16, w=16)
    data, fragment = DATASET_YAMLS[case]
    Path("fd/dataset.yaml").write_bytes(data)
    args = ("data", command, "fd", "--dataset", "folder")
    hostile.refuses(*args, says=(fragment,), unchanged=["fd"])
    assert not Path("sample.png").exists()

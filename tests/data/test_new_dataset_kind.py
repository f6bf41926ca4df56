"""A new dataset reader is one registration, nothing else.

A toy "npzset" kind (one `{split}.npz` per split holding images and depth maps,
recognised by its `npzset.json` marker, with a `depth_scale` reader option) is
registered *in this test* with `edgemtl.data.readers.register_dataset`. It then
goes through the real CLI in this process: `data check` (kind detected),
`train` from a recipe with `data.kind: npzset` and `data.options`, and `eval`,
which reopens the split from the checkpoint's data record. No other module knows
the kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from edgemtl.core.errors import UserError
from edgemtl.data.readers import (
    DatasetKind,
    dataset_kinds,
    detect_kind,
    open_reader,
    register_dataset,
    unregister_dataset,
)
from edgemtl.data.sample import Sample
from tests.helpers.cli import run_cli

H, W = 32, 48


class NpzReader:
    """One split of an npzset folder; depth is multiplied by the `depth_scale` option."""

    class_names: tuple[str, ...] = ()
    units = {"depth": "m"}
    encodings = {"depth": "depth"}

    def __init__(self, root: Path, split: str, tasks: list[str], depth_scale: float) -> None:
        if set(tasks) - {"depth"}:
            raise UserError(f"npzset {root}: provides depth only, not {sorted(tasks)}")
        with np.load(root / f"{split}.npz") as arrays:
            self.images = arrays["images"]
            self.depth = arrays["depth"] * depth_scale

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        return Sample(self.images[index], {"depth": self.depth[index]}, f"{index}")


def _open(root: Path, split: str, tasks: list[str], options: Mapping[str, Any]) -> NpzReader:
    return NpzReader(root, split, tasks, float(options.get("depth_scale", 1.0)))


NPZSET = DatasetKind(
    "npzset",
    _open,
    tasks=lambda root: ["depth"],
    detect=lambda root: (root / "npzset.json").is_file(),
)


@pytest.fixture
def npzset() -> Iterator[None]:
    register_dataset(NPZSET)
    try:
        yield
    finally:
        unregister_dataset("npzset")


def _write(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "npzset.json").write_text("{}")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        images = rng.uniform(0, 1, (n, H, W, 3)).astype(np.float32)
        depth = (1.0 + 4.0 * images[..., 0]).astype(np.float32)  # learnable from the image
        np.savez(root / f"{split}.npz", images=images, depth=depth)


def _cli(*args: str, code: int = 0) -> Any:
    from edgemtl.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, result.output
    return result


def test_registry_lookups(npzset: None, tmp_path: Path) -> None:
    root = tmp_path / "d"
    _write(root)
    assert dataset_kinds()[-1] == "npzset"
    assert detect_kind(root) == "npzset"
    reader = open_reader("npzset", root, "val", ["depth"], {"depth_scale": 2.0})
    assert len(reader) == 2 and float(reader[0].targets["depth"].min()) >= 2.0
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(NPZSET)


def test_reserved_option_names(npzset: None) -> None:
    from edgemtl.core.config import DataConfig
    from edgemtl.data.registry import dataset_record

    record = dataset_record(DataConfig(kind="npzset", options={"depth_scale": 2.0}))
    assert record == {"kind": "npzset", "root": None, "depth_scale": 2.0}
    with pytest.raises(UserError, match="data.options: 'root' is a reserved name"):
        dataset_record(DataConfig(kind="npzset", options={"root": "x"}), "recipe r.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "npzset"}, "data.kind 'npzset' is unknown (expected one of: folder, synthetic"),
        ({"options": {"label_folder": "x"}}, "data.options: synthetic takes no option"),
    ],
)
def test_bad_data_section_is_one_line(tmp_path: Path, data: dict, message: str) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"data": data, "tasks": {"depth": {}}}))
    proc = run_cli("train", str(recipe), "--out", str(tmp_path / "run"))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and f"recipe {recipe}: {message}" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_new_kind_checks_trains_and_evaluates(npzset: None, tmp_path: Path) -> None:
    root = tmp_path / "data"
    _write(root)
    report = tmp_path / "check.json"
    _cli("data", "check", str(root), "--json", str(report), "-q")  # detected, no --dataset
    checked = json.loads(report.read_text())
    assert checked["dataset"] == "npzset" and checked["ok"]
    assert set(checked["splits"]) == {"train", "val"}

    recipe = tmp_path / "toy.yaml"
    data = {"kind": "npzset", "root": str(root), "size": [H, W], "workers": 0}
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "toy-npzset",
                "data": {**data, "options": {"depth_scale": 2.0}},
                "tasks": {"depth": {}},
                "model": {"width": 0.125},
                "method": {"name": "sd"},
                "train": {"epochs": 1, "batch_size": 2, "threads": 1, "checkpoint_every": 0},
            }
        )
    )
    run = tmp_path / "run"
    _cli("train", str(recipe), "--out", str(run), "-q")
    scores = tmp_path / "eval.json"
    _cli("eval", str(run / "best.pt"), "--head", "teacher", "--json", str(scores), "-q")
    assert json.loads(scores.read_text())["heads"]["teacher"]["depth"]["abs_err"] >= 0
    from edgemtl.training.checkpoint import load_checkpoint

    record = load_checkpoint(run / "best.pt").data.to_dict()  # what eval reopened
    assert record["kind"] == "npzset" and record["depth_scale"] == 2.0

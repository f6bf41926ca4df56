"""A 2-step `edgemtl train` on each real-format fixture with its real recipe, and the
recipe-level errors (missing / malformed root) as one line, exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgemtl.training.checkpoint import load_checkpoint
from tests.helpers.cli import REPO, run_cli
from tests.helpers.data_fixtures import write_cityscapes, write_folder, write_nyuv2, write_taskonomy

SMALL = [
    "model.width=0.125",
    "train.epochs=1",
    "train.batch_size=2",
    "data.workers=0",
    "train.threads=1",
    "train.eval_limit=2",
    "train.checkpoint_every=0",
]

CASES = {
    # recipe: (writer, size override, extra overrides)
    "nyuv2": (
        write_nyuv2,
        "[32,48]",
        ["data.augment={scale: [1.0, 1.5], flip: true, jitter: 0.2}"],
    ),
    "cityscapes": (write_cityscapes, "[32,64]", []),
    "taskonomy": (write_taskonomy, "[32,32]", []),
    "folder": (write_folder, "[32,48]", ["tasks=[seg, depth, normal]"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", list(CASES))
def test_two_step_train_on_fixture(tmp_path: Path, recipe: str) -> None:
    writer, size, extra = CASES[recipe]
    root = tmp_path / "data"
    writer(root)
    out = tmp_path / "run"
    sets = [f"data.root={root}", f"data.size={size}", *SMALL, *extra]
    args = ["train", str(REPO / "recipes" / f"{recipe}.yaml"), "--out", str(out), "-q"]
    for item in sets:
        args += ["--set", item]
    proc = run_cli(*args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.position is not None
    assert ckpt.position.global_step == 2  # 4 training images / batch 2
    data = ckpt.data.to_dict()
    assert data["kind"] == recipe and data["root"] == str(root)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert set(rows[0]["heads"]) == {"teacher", "student", "ensemble"}
    if recipe == "taskonomy":
        assert data["size"] == [32, 32] and len(ckpt.tasks["seg"].class_names or []) == 17
    if recipe == "folder":
        assert data["size"] == [32, 48]
        assert ckpt.tasks["seg"].class_names == ["road", "car", "person"]
    if recipe == "cityscapes":
        assert data["label_folder"] == "label_7" and ckpt.tasks["depth"].units == "inverse depth"
        assert ckpt.tasks["depth"].encoding == "inverse_depth"  # declared by the reader
    if recipe != "taskonomy":
        return
    # The checkpoint rebuilds its split (resized to the recorded size): eval needs nothing else.
    proc = run_cli(
        "eval", str(out / "best.pt"), "--head", "student", "--limit", "2", "--json", "-", "-q"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "student" in json.loads(proc.stdout)["heads"]


def _one_line(proc) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_paper_recipe_without_root_names_the_env_var(tmp_path: Path) -> None:
    env = {"EDGEMTL_NYUV2": ""}
    line = _one_line(
        run_cli(
            "train",
            str(REPO / "recipes" / "nyuv2.yaml"),
            "--out",
            str(tmp_path / "r"),
            "-q",
            env=env,
        )
    )
    assert "no root folder given" in line and "EDGEMTL_NYUV2" in line


def test_paper_recipe_with_malformed_root(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    write_cityscapes(root, label_folder="label_19", n_classes=19)
    line = _one_line(
        run_cli(
            "train",
            str(REPO / "recipes" / "cityscapes.yaml"),
            "--out",
            str(tmp_path / "r"),
            "-q",
            env={"EDGEMTL_CITYSCAPES": str(root)},
        )
    )
    assert (
        "label folder 'label_7' not found (this copy has label_19: set data.label_folder)" in line
    )
    line = _one_line(
        run_cli(
            "train",
            str(REPO / "recipes" / "taskonomy.yaml"),
            "--out",
            str(tmp_path / "r"),
            "-q",
            "--set",
            f"data.root={root}",
        )
    )
    assert "no split file" in line

"""Hostile names: artifact file names that leave their bundle (issue 13, class 1) and recipe
names that leave `runs/` (class 2).

A manifest's `file`, `built_from` or parity reference, a symlinked artifact or an
ONNX file's external data must never make `export --force` delete, or any command
read, a file outside the bundle: each is refused with one line before anything is
touched (`edgemtl.core.paths.inside`). A recipe `name` becomes a safe folder name.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from edgemtl.core.config import recipe_from_dict
from edgemtl.core.paths import safe_folder_name
from tests.helpers.cli import REPO
from tests.helpers.tiny_run import TINY_OVERRIDES

FAST_PROFILE = ("-n", "1", "--warmup", "0", "--warmup-s", "0", "--rounds", "1", "--no-power")
FAST_PROFILE += ("--idle", "0")


def tamper(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _set_file(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["artifacts"][0]["file"] = name

    return edit


def _bad_names(folder: Path) -> dict[str, str]:
    return {
        "parent": "../victim.txt",
        "absolute": str(folder / "victim.txt"),
        "nested": "x/../../victim.txt",
        "dotdot": "..",
        "nul": "student\x00.onnx",
    }


COMMANDS = {
    "export-force": ("export", "b", "--force", "--fp16"),
    "profile": ("profile", "b", *FAST_PROFILE),
    "predict": ("predict", "b", "img.png", "--out", "o"),
}


@pytest.mark.parametrize("name", ["parent", "absolute", "nested", "dotdot", "nul"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_manifest_file_outside_the_bundle(
    hostile, bundle: Path, image: Path, victim: Path, command: str, name: str
) -> None:
    tamper(bundle, _set_file(_bad_names(hostile.folder)[name]))
    hostile.refuses(
        *COMMANDS[command],
        says=("manifest.json: field artifacts.0.file",),
        unchanged=[victim, bundle],
    )
    assert not (hostile.folder / "o").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_symlinked_artifact_out_of_the_bundle(
    hostile, bundle: Path, image: Path, victim: Path, command: str
) -> None:
    """The manifest is clean, but its artifact is a link to a file outside: refused."""
    artifact = bundle / "student.fp32.onnx"
    outside = Path("outside.onnx")
    shutil.move(artifact, outside)
    artifact.symlink_to(Path("..") / outside)
    hostile.refuses(
        *COMMANDS[command], says=("resolves to", "outside b"), unchanged=[outside, victim, bundle]
    )


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("built_from", lambda d: d["artifacts"][0].update(built_from="../victim.txt")),
        (
            "parity.reference",
            lambda d: d["artifacts"][0].update(parity={"reference": "/x/y", "passed": True}),
        ),
        (
            "trt.built_from",
            lambda d: d["artifacts"][0].update(
                trt={"version": "10", "gpu": "x", "compute_capability": "8.7", "built_from": ".."}
            ),
        ),
    ],
)
@pytest.mark.parametrize("command", ["profile", "export-force"])
def test_other_file_fields_are_plain_names(
    hostile, bundle: Path, victim: Path, command: str, field: str, edit: Callable
) -> None:
    tamper(bundle, edit)
    hostile.refuses(*COMMANDS[command], says=(f"artifacts.0.{field}",), unchanged=[victim, bundle])


def _external_data_onnx(bundle: Path, target: Path) -> Path:
    """A copy of the bundle's ONNX (metadata kept) whose first weight lives in `../<target>`."""
    model = onnx.load(str(bundle / "student.fp32.onnx"))
    tensor = model.graph.initializer[0]
    data = onnx.numpy_helper.to_array(tensor).tobytes()
    target.write_bytes(data)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entries = {"location": f"../{target.name}", "offset": "0", "length": str(len(data))}
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    tensor.ClearField("raw_data")
    lone = Path("lone")
    lone.mkdir()
    onnx.save(model, str(lone / "m.onnx"))
    return lone / "m.onnx"


@pytest.mark.parametrize(
    "args",
    [
        ("profile", "lone/m.onnx", *FAST_PROFILE),
        ("predict", "lone/m.onnx", "img.png", "--out", "o"),
    ],
    ids=["profile", "predict"],
)
def test_onnx_external_data_outside_its_folder(
    hostile, bundle: Path, image: Path, args: tuple[str, ...]
) -> None:
    weights = Path("weights.bin")
    _external_data_onnx(bundle, weights)
    hostile.refuses(*args, says=("lone/m.onnx",), unchanged=[weights])


# ---- recipe names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("/tmp/x", "tmp-x"),
        ("../../escape", "escape"),
        ("a/../../b", "a-b"),
        (".hidden", "hidden"),
        ("runs/*[x]?", "runs-x"),
        ("..", "recipe"),
        ("", "recipe"),
        ("é" * 100, "recipe"),
        ("x" * 200, "x" * 64),
    ],
)
def test_recipe_names_become_safe_folder_names(name: str, folder: str) -> None:
    raw = {"name": name, "tasks": ["seg"]}
    assert recipe_from_dict(raw).name == folder
    assert safe_folder_name(folder) == folder  # stable


@pytest.mark.parametrize("name", ["OUT/x", "../../escape", "a/../../b/*[x]"])
def test_train_resume_with_a_hostile_name(hostile, name: str) -> None:
    """`--resume` looks for runs of the safe name under runs/ only; nothing is created."""
    recipe = Path("r.yaml")
    shutil.copy(REPO / "recipes" / "synthetic.yaml", recipe)
    name = name.replace("OUT", str(hostile.folder / "outside"))
    hostile.refuses(
        "train", "r.yaml", "--set", f"name={name}", "--resume", says=("--resume: no run of recipe",)
    )
    assert sorted(p.name for p in hostile.folder.iterdir()) == ["r.yaml"]


@pytest.mark.slow
def test_a_run_named_with_an_absolute_path_stays_in_runs(hostile) -> None:
    """A real (tiny) training named `<case>/outside/x`: its folder is runs/<safe name>-<time>."""
    import torch

    shutil.copy(REPO / "recipes" / "synthetic.yaml", "r.yaml")
    outside = hostile.folder / "outside"
    tiny = [o for o in TINY_OVERRIDES if not o.startswith(("train.epochs", "data.synthetic"))]
    sets = [*tiny, "train.epochs=1", "data.synthetic.n_train=4", "data.synthetic.n_val=2"]
    args = [a for s in [*sets, f"name={outside}/x"] for a in ("--set", s)]
    threads = torch.get_num_threads()
    try:
        outcome = hostile.run("train", "r.yaml", *args, "--quiet")
    finally:
        torch.set_num_threads(threads)
    assert outcome.code == 0, outcome.describe()
    assert not outside.exists()
    (run_dir,) = (hostile.folder / "runs").iterdir()
    safe = safe_folder_name(f"{outside}/x")
    assert run_dir.name.startswith(safe + "-") and (run_dir / "best.pt").is_file()
    assert np.isfinite(json.loads((run_dir / "summary.json").read_text())["wall_time_s"])

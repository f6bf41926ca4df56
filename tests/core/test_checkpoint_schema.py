"""The typed checkpoint schema: malformed fields are one error line naming file and field.

Every case starts from the committed legacy checkpoint (tests/fixtures/legacy_v1,
schema 1, written by an older edgemtl) with one field broken, written with plain
`torch.save` as a buggy or foreign writer would, then read by every reader: the
real CLI (`eval`, `export`, `profile`), resume and the frozen teachers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from edgemtl.core.checkpoint_schema import SCHEMA_VERSION, Checkpoint, checkpoint_from_dict
from edgemtl.core.errors import UserError
from edgemtl.training.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers.cli import REPO, run_cli

LEGACY = REPO / "tests" / "fixtures" / "legacy_v1" / "checkpoint.pt"


def _legacy() -> dict[str, Any]:
    return torch.load(LEGACY, map_location="cpu", weights_only=True)


def _without_channels(raw: dict[str, Any]) -> Any:
    tasks = copy.deepcopy(raw["tasks"])
    del tasks["seg"]["channels"]
    return tasks


#: (case id, change to the legacy checkpoint, the field the error must name)
MALFORMED: list[tuple[str, Any, str]] = [
    ("schema-version-string", lambda raw: {"schema_version": "1"}, "field schema_version:"),
    ("recipe-not-a-dict", lambda raw: {"recipe": "synthetic.yaml"}, "field recipe:"),
    (
        "task-without-channels",
        lambda raw: {"tasks": _without_channels(raw)},
        "field tasks.seg.channels:",
    ),
    ("empty-input", lambda raw: {"input": {}}, "field input.shape:"),
    (
        "zero-std",
        lambda raw: {"input": {**raw["input"], "std": [0.25, 0.0, 0.25]}},
        "field input.std.1:",
    ),
    ("heads-not-a-list", lambda raw: {"heads": "student"}, "field heads:"),
    (
        "recipe-bad-key",
        lambda raw: {"recipe": {**raw["recipe"], "model": {"width": "wide"}}},
        "field recipe.model.width:",
    ),
    ("no-data", lambda raw: {"data": None}, "field data:"),
]
IDS = [case[0] for case in MALFORMED]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One malformed copy of the legacy checkpoint per case, at runs/<case>/best.pt."""
    root = tmp_path_factory.mktemp("broken")
    paths = {}
    for name, change, _ in MALFORMED:
        raw = _legacy()
        raw.update(change(raw))
        path = root / "runs" / name / "best.pt"
        path.parent.mkdir(parents=True)
        torch.save(raw, path)
        paths[name] = path
    return paths


def _assert_one_line(proc: Any, *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize(("name", "change", "field"), MALFORMED, ids=IDS)
def test_eval_names_file_and_field(
    broken: dict[str, Path], name: str, change: Any, field: str
) -> None:
    path = broken[name]
    _assert_one_line(run_cli("eval", str(path), "--quiet"), f"checkpoint {path}: {field}")


@pytest.mark.parametrize(("name", "change", "field"), MALFORMED, ids=IDS)
def test_export_names_file_and_field(
    broken: dict[str, Path], tmp_path: Path, name: str, change: Any, field: str
) -> None:
    path, out = broken[name], tmp_path / "bundle"
    proc = run_cli("export", str(path), "--out", str(out), "--quiet")
    _assert_one_line(proc, f"checkpoint {path}: {field}")
    assert not out.exists()


def test_profile_and_predict_name_file_and_field(broken: dict[str, Path], tmp_path: Path) -> None:
    path = broken["zero-std"]
    proc = run_cli(
        "profile", str(path), "-n", "1", "--rounds", "1", "--no-power", "--idle", "0", "--quiet"
    )
    _assert_one_line(proc, f"checkpoint {path}: field input.std.1:")
    path = broken["heads-not-a-list"]
    image = REPO / "tests" / "fixtures" / "legacy_v1" / "input.npy"
    proc = run_cli("predict", str(path), str(image), "--out", str(tmp_path / "p"), "--quiet")
    _assert_one_line(proc, f"checkpoint {path}: field heads:")


def test_frozen_teacher_names_file_and_field(broken: dict[str, Path]) -> None:
    from edgemtl.core.tasks import make_spec
    from edgemtl.training.methods.frozen import load_teachers

    path = broken["task-without-channels"]
    spec = make_spec("seg", ["floor", "wall", "sphere", "box", "cylinder"])
    with pytest.raises(UserError, match=f"checkpoint {path}: field tasks.seg.channels:"):
        load_teachers({"seg": str(path)}, [spec], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_resume_needs_the_optimizer_state_old_checkpoints_lack(tmp_path: Path) -> None:
    """The legacy checkpoint evaluates and exports, but was written without optimizer state."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(LEGACY.read_bytes())
    proc = run_cli(
        "train",
        str(REPO / "recipes" / "synthetic.yaml"),
        "--resume",
        "--out",
        str(run),
        "--quiet",
        env={"EDGEMTL_CACHE": str(tmp_path / "cache")},
    )
    _assert_one_line(
        proc, f"checkpoint {run / 'last.pt'}: field optimizer: missing, needed to resume"
    )


def test_newer_schema_and_foreign_files_are_refused(tmp_path: Path) -> None:
    raw = _legacy()
    with pytest.raises(
        UserError, match=f"schema_version {SCHEMA_VERSION + 1} is newer than this edgemtl"
    ):
        checkpoint_from_dict({**raw, "schema_version": SCHEMA_VERSION + 1}, "x.pt")
    with pytest.raises(UserError, match="x.pt: not an edgemtl checkpoint"):
        checkpoint_from_dict({**raw, "format": "other"}, "x.pt")
    with pytest.raises(UserError, match="field tasks.seg.key: is 'depth', expected 'seg'"):
        checkpoint_from_dict(
            {**raw, "tasks": {**raw["tasks"], "seg": {**raw["tasks"]["seg"], "key": "depth"}}},
            "x.pt",
        )
    with pytest.raises(
        UserError, match=r"field tasks: \['depth', 'normal'\] differ from recipe.tasks"
    ):
        checkpoint_from_dict(
            {**raw, "tasks": {k: v for k, v in raw["tasks"].items() if k != "seg"}}, "x.pt"
        )


def test_legacy_checkpoint_reads_into_typed_fields() -> None:
    ckpt = load_checkpoint(LEGACY)
    assert isinstance(ckpt, Checkpoint) and ckpt.path == str(LEGACY)
    assert (
        ckpt.schema_version == 1 and ckpt.optimizer is None
    )  # written before optimizer state was kept
    assert ckpt.heads == ["teacher", "student", "ensemble"] and ckpt.selected_head == "student"
    assert [s.key for s in ckpt.task_specs()] == ["seg", "depth", "normal"]
    assert ckpt.tasks["seg"].class_names == ["floor", "wall", "sphere", "box", "cylinder"]
    assert (ckpt.input.height, ckpt.input.width, ckpt.input.std) == (32, 64, (0.25, 0.25, 0.25))
    assert ckpt.upsampling_mode == "bilinear" and ckpt.recipe.model.width == 0.0625
    assert ckpt.position is not None and ckpt.position.global_step == 24
    facts = ckpt.without_tensors()
    assert facts.model == {} and facts.path == ckpt.path and len(ckpt.model) == 498


def test_a_writer_bug_is_caught_before_the_file_is_written(tmp_path: Path) -> None:
    raw = _legacy()
    raw["input"] = {**raw["input"], "std": [0.25, 0.25, -1.0]}
    path = tmp_path / "bad.pt"
    with pytest.raises(UserError, match=r"bad.pt \(being written\): field input.std.2:"):
        save_checkpoint(path, raw)
    assert not path.exists()

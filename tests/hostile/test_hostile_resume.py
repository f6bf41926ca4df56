"""Hostile `--resume`: torn or foreign metrics.jsonl lines, recipes the state does not fit,
and broken last.pt files (issue 13 item 7; class `resume`).

A torn last line (the run was killed while appending it) is dropped with a note
and the run continues; any other case is exit 1, one line naming the file (or
the recipe keys that differ from the checkpoint's) and the run folder unchanged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import REPO
from tests.helpers.hostile_cases import assert_hostile, invoke, tree_digest
from tests.helpers.tiny_run import TINY_OVERRIDES

#: One epoch of 2 steps; resuming asks for a second.
RUN = [*TINY_OVERRIDES, "data.synthetic.n_train=8", "data.synthetic.n_val=4", "train.epochs=1"]


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch tiny run folder (last.pt, best.pt, metrics.jsonl with one row)."""
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("resume") / "run"
    outcome = invoke(_train(out, RUN))
    torch.set_num_threads(threads)
    assert outcome.exit_code == 0, outcome.stderr[-3000:]
    return out


def _train(out: Path, sets: list[str], resume: bool = False) -> list[str]:
    args = ["train", str(REPO / "recipes" / "synthetic.yaml"), "--out", str(out), "-q"]
    for item in sets:
        args += ["--set", item]
    return args + (["--resume"] if resume else [])


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


#: (case, bytes appended to metrics.jsonl): a line cut short by a kill.
TORN = [
    ("cut-json", b'{"schema_version": 1, "epoch": 1, "split": "va'),
    ("garbage-bytes", b"\x00\x00\xff\xfe\x00"),
    ("row-without-heads", b'{"schema_version": 1, "epoch": 1}'),
]


@pytest.mark.parametrize("case", [c[0] for c in TORN], ids=lambda c: f"resume-torn-{c}")
def test_torn_last_line_is_dropped_with_a_note(
    finished_run: Path, tmp_path: Path, case: str
) -> None:
    run = _copy(finished_run, tmp_path)
    metrics = run / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes() + dict(TORN)[case])
    outcome = invoke(_train(run, [*RUN[:-1], "train.epochs=2"], resume=True))
    assert outcome.exit_code == 0, outcome.stderr[-3000:]
    assert f"note: {metrics}: dropped its torn last line 2" in outcome.stderr
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]


def _prepend(line: bytes):
    def change(run: Path) -> Path:
        path = run / "metrics.jsonl"
        path.write_bytes(line + b"\n" + path.read_bytes())
        return path

    return change


def _last(content: bytes):
    def change(run: Path) -> Path:
        path = run / "last.pt"
        path.write_bytes(content)
        return path

    return change


def _nan_last(run: Path) -> Path:
    path = run / "last.pt"
    raw = torch.load(path, weights_only=True)
    key = next(iter(raw["model"]))
    raw["model"][key] = torch.full_like(raw["model"][key], float("nan"))
    torch.save(raw, path)
    return path


def _no_last(run: Path) -> Path:
    (run / "last.pt").unlink()
    return run / "last.pt"


#: (case, change to the run folder -> the file to name, fragment of the error)
BROKEN_RUN = [
    ("foreign-first-line", _prepend(b"# metrics"), "line 1 is not a metrics row"),
    ("row-without-epoch", _prepend(b'{"heads": {}}'), "line 1 is not a metrics row"),
    ("last-pt-garbage", _last(b"not a checkpoint"), "not a readable edgemtl checkpoint"),
    ("last-pt-empty", _last(b""), "not a readable edgemtl checkpoint"),
    ("last-pt-nan-weights", _nan_last, "NaN/Inf weights"),
    ("last-pt-missing", _no_last, "not found"),
]


@pytest.mark.parametrize("case", [c[0] for c in BROKEN_RUN], ids=lambda c: f"resume-file-{c}")
def test_broken_run_folder(finished_run: Path, tmp_path: Path, case: str) -> None:
    run = _copy(finished_run, tmp_path)
    _, change, fragment = next(c for c in BROKEN_RUN if c[0] == case)
    named = change(run)
    before = tree_digest(run)
    assert_hostile(_train(run, [*RUN[:-1], "train.epochs=2"], resume=True), str(named), fragment)
    assert tree_digest(run) == before


#: (case, --set overrides on resume, the keys the error must name first)
INCOMPATIBLE = [
    ("wider", ["model.width=0.25"], "model.width 0.125 -> 0.25"),
    ("fewer-tasks", ["tasks=[seg, depth]"], "tasks.edges (removed), tasks.keypoints (removed)"),
    ("unet-decoder", ["model.decoder=unet"], "model.decoder 'attention' -> 'unet'"),
    ("vanilla-method", ["method={name: vanilla}"], "method.name 'sd' -> 'vanilla'"),
    ("unpool", ["model.upsampling=unpool"], "model.upsampling 'bilinear' -> 'unpool'"),
    ("decoder-exits", ["model.exits=[2]"], "model.exits [] -> [2]"),
]


@pytest.mark.parametrize("case", [c[0] for c in INCOMPATIBLE], ids=lambda c: f"resume-recipe-{c}")
def test_incompatible_resume_names_the_recipe_keys(
    finished_run: Path, tmp_path: Path, case: str
) -> None:
    run = _copy(finished_run, tmp_path)
    _, sets, fragment = next(c for c in INCOMPATIBLE if c[0] == case)
    before = tree_digest(run)
    error = assert_hostile(
        _train(run, [*RUN[:-1], "train.epochs=2", *sets], resume=True),
        f"--resume: {run / 'last.pt'}: its state does not fit a different recipe (",
        fragment,
    )
    assert "drop those --set overrides" in error
    assert tree_digest(run) == before

"""Hostile training: data `data check` rejects, wrong depth encodings, diverging settings.

Classes (issue 13): `data` (item 13: training reads through `data check`'s
per-sample checks and stops naming the file), `encoding` (item 15: a dataset.yaml
declaring an encoding its task does not have) and `nonfinite` (item 5: a step
that turns the weights NaN/Inf stops training and writes no checkpoint). Every
case: exit 1, one line, the dataset unchanged, no checkpoint written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import REPO
from tests.helpers.hostile_cases import (
    BAD_ENCODINGS,
    BROKEN_NYUV2,
    assert_hostile,
    bad_encoding_folder,
    break_nyuv2,
    invoke,
    tree_digest,
)
from tests.helpers.tiny_run import TINY_OVERRIDES

SMALL = [
    "model.width=0.125",
    "train.epochs=1",
    "train.batch_size=2",
    "data.workers=0",
    "train.threads=1",
    "train.eval_limit=2",
]


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    """In-process training sets torch's thread count; give the next test its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _train(recipe: str, out: Path, sets: list[str]) -> list[str]:
    args = ["train", str(REPO / "recipes" / recipe), "--out", str(out), "-q"]
    for item in sets:
        args += ["--set", item]
    return args


@pytest.mark.parametrize("case", [c[0] for c in BROKEN_NYUV2], ids=lambda c: f"data-train-{c}")
def test_training_stops_on_data_that_data_check_rejects(tmp_path: Path, case: str) -> None:
    root = tmp_path / "nyuv2"
    broken, fragment = break_nyuv2(root, case)
    before = tree_digest(root)
    out = tmp_path / "run"
    assert_hostile(
        _train("nyuv2.yaml", out, [f"data.root={root}", "data.size=[32,48]", *SMALL]),
        str(broken),
        fragment,
    )
    assert tree_digest(root) == before
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


@pytest.mark.parametrize("case", [c[0] for c in BAD_ENCODINGS], ids=lambda c: f"encoding-train-{c}")
def test_training_refuses_a_wrong_encoding(tmp_path: Path, case: str) -> None:
    root = tmp_path / "folder"
    spec, fragment = bad_encoding_folder(root, case)
    before = tree_digest(root)
    sets = [f"data.root={root}", "data.size=[32,48]", "tasks=[seg, depth, normal]", *SMALL]
    assert_hostile(_train("folder.yaml", tmp_path / "run", sets), str(spec), fragment)
    assert tree_digest(root) == before and not (tmp_path / "run").exists()


#: (case, overrides): one step per epoch that turns the weights NaN/Inf with a finite loss.
DIVERGING = [
    ("adam-lr-inf", ["train.optimizer.lr=.inf"]),
    ("sgd-lr-inf", ["train.optimizer={name: sgd, lr: .inf}"]),
    ("adamw-lr-inf", ["train.optimizer={name: adamw, lr: .inf}"]),
]


@pytest.mark.parametrize("case", [c[0] for c in DIVERGING], ids=lambda c: f"nonfinite-train-{c}")
def test_nan_weights_stop_training_and_write_no_checkpoint(tmp_path: Path, case: str) -> None:
    sets = dict(DIVERGING)[case]
    out = tmp_path / "run"
    one_step = [
        *TINY_OVERRIDES,
        "data.synthetic.n_train=4",
        "data.synthetic.n_val=4",
        "train.batch_size=4",
        "train.epochs=2",
    ]
    error = assert_hostile(
        _train("synthetic.yaml", out, [*one_step, *sets]),
        "training stopped: weight",
        "is NaN/Inf at epoch 1, batch 1",
        "no checkpoint written",
    )
    assert "lower train.optimizer.lr" in error
    assert sorted(p.name for p in out.glob("*.pt")) == []


def test_finite_divergence_is_a_warning_in_the_log_and_summary(tmp_path: Path) -> None:
    """Adam at lr 1e6: weights explode with finite losses; exit 0, warned by the rule."""
    out = tmp_path / "run"
    sets = [
        *TINY_OVERRIDES,
        "data.synthetic.n_train=8",
        "data.synthetic.n_val=4",
        "train.batch_size=4",
        "train.optimizer.lr=1e6",
    ]
    outcome = invoke(_train("synthetic.yaml", out, sets))
    assert outcome.exit_code == 0, outcome.stderr[-2000:]
    assert "the run is diverging" in outcome.stdout + outcome.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert any("in magnitude (> 10000)" in w for w in summary["warnings"]), summary["warnings"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["warnings"] and all(isinstance(r["loss_median"], float) for r in rows)
    # The same training at a sane learning rate gets none.
    sane = invoke(_train("synthetic.yaml", tmp_path / "sane", sets[:-1]))
    assert sane.exit_code == 0, sane.stderr[-2000:]
    assert json.loads((tmp_path / "sane" / "summary.json").read_text())["warnings"] == []

"""What `edgemtl train` shows while it runs: one plain line per epoch when stdout is not a
terminal, the validation metric per head under each epoch's bar in one, `curves.png` in the
run folder, and `--data ROOT` as the missing-data error suggests."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

from PIL import Image
from rich.console import Console

from edgemtl.core.io import file_mode
from edgemtl.training.epoch_report import EpochReporter, clock, epoch_line
from tests.helpers.cli import run_cli
from tests.helpers.tiny_run import TINY_OVERRIDES

LINE = re.compile(
    r"^epoch (?P<epoch>\d+)/2"
    r" \| loss (?P<loss>[\d.]+) \(seg [\d.e-]+, depth [\d.e-]+, normal [\d.e-]+,"
    r" keypoints [\d.e-]+, edges [\d.e-]+\)"
    r" \| val Δm vs epoch-1 student % ↑: (?P<heads>.+)"
    r" \| (?P<rate>[\d.]+) img/s"
    r" \| ETA (?P<eta>\d+:\d\d:\d\d)$"
)
HEAD = re.compile(r"^(teacher|student|ensemble) [+-]\d+\.\d\d( \(best\))?$")


def test_non_tty_training_prints_one_line_per_epoch_and_draws_curves(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [a for o in TINY_OVERRIDES for a in ("--set", o)]
    proc = run_cli("train", "recipes/synthetic.yaml", *args, "--out", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2, proc.stdout
    for i, line in enumerate(lines):
        match = LINE.match(line)
        assert match, line
        assert int(match["epoch"]) == i + 1 and float(match["rate"]) > 0
        heads = match["heads"].split(", ")
        assert [h.split()[0] for h in heads] == ["teacher", "student", "ensemble"], line
        assert all(HEAD.match(h) for h in heads), heads
    assert lines[-1].endswith("ETA 0:00:00")
    assert "student +0.00 (best)" in lines[0]  # epoch 1 is its own reference, and best so far
    # The per-epoch values are the metrics.jsonl rows.
    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for line, row in zip(lines, rows):
        assert f"loss {row['losses']['total']:.4g} " in line
        assert f"teacher {row['heads']['teacher']['delta_m']:+.2f}" in line
    # The final table names Δm's reference.
    assert "Δm % ↑ vs epoch-1 student" in proc.stdout
    curves = run_dir / "curves.png"
    with Image.open(curves) as img:
        # losses, Δm and five tasks: 2 rows of 4 panels of 340 x 250 px.
        assert img.format == "PNG" and img.size == (1360, 560)
    assert os.stat(curves).st_mode & 0o777 == file_mode()
    assert os.stat(run_dir / "best.pt").st_mode & 0o777 == file_mode()


def _row(delta: dict[str, float]) -> dict:
    return {
        "losses": {"seg.teacher": 1.0, "seg.student": 0.5, "depth.teacher": 0.25, "total": 1.75},
        "heads": {h: {"seg": {"miou": 50.0}, "delta_m": d} for h, d in delta.items()},
    }


def test_terminal_shows_each_heads_metric_under_the_bar_and_no_plain_line() -> None:
    term = io.StringIO()
    console = Console(file=term, force_terminal=True, width=100, color_system=None)
    stream = io.StringIO()  # not a TTY: would get the plain line...
    stream.isatty = lambda: True  # type: ignore[method-assign]  # ...but it is a terminal here
    reporter = EpochReporter(
        console, False, 3, "delta_m", "student", "Δm vs epoch-1 student", stream
    )
    reporter.epoch_started()
    reporter.training_done(64)
    reporter.epoch_done(0, _row({"teacher": 1.5, "student": 0.0}), best=True)
    shown = term.getvalue()
    assert "val Δm vs epoch-1 student % ↑: teacher +1.50  student +0.00 (best)" in shown
    assert stream.getvalue() == ""


def test_quiet_prints_nothing_and_a_metric_selection_names_its_metric() -> None:
    term, stream = io.StringIO(), io.StringIO()
    console = Console(file=term, force_terminal=True)
    reporter = EpochReporter(console, True, 2, "delta_m", "student", "Δm", stream)
    reporter.epoch_started()
    reporter.epoch_done(0, _row({"student": 1.0}), best=False)
    assert term.getvalue() == "" and stream.getvalue() == ""
    line = epoch_line(0, 2, _row({"teacher": 2.0}), "seg.miou", "Δm", "teacher", False, 9.5, 75)
    assert line == (
        "epoch 1/2 | loss 1.75 (seg 1.5, depth 0.25) | val seg mIoU % ↑: teacher 50 | "
        "9.5 img/s | ETA 0:01:15"
    )
    assert clock(3725.4) == "1:02:05"


def test_train_data_root_is_the_recipe_root(tmp_path: Path) -> None:
    missing = tmp_path / "no such dataset"
    proc = run_cli("train", "recipes/nyuv2.yaml", "--data", str(missing), "--out", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: dataset nyuv2: root {missing} is not a folder"

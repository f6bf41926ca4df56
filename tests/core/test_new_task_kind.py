"""A new task kind is one definition plus a registration, nothing else.

A toy "saliency" kind (one channel in [0, 1], 255 = invalid in its PNGs) is
defined and registered *in this test*: its numpy side in the task-kind registry
(`edgemtl.core.tasks`, with its own metric), its torch side in
`edgemtl.training.task_ops` (sigmoid output, default L1 loss). A Folder dataset
declaring only that task then goes through the real CLI, in this process so the
registration is seen: `data check`, `train` (2 steps), `eval`, `export` (FP32
and FP16 parity gates), `profile` (ONNX Runtime, with accuracy) and `predict`.
No other module knows the kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from edgemtl.core.tasks import MetricInfo, TaskKind, register_kind, unregister_kind
from edgemtl.core.tasks.metric_base import SummableState, TaskMetric, nan_result, pixels

pytestmark = pytest.mark.slow
H, W = 32, 48


class SaliencyMAE(SummableState):
    """Mean absolute saliency error over valid pixels, in percent of the [0, 1] range."""

    names = ("sal_mae",)
    _kind = "saliency"

    def _zero_state(self) -> dict[str, np.ndarray]:
        return {"abs_sum": np.zeros((), np.float64), "count": np.zeros((), np.int64)}

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
        mask = SALIENCY.valid(target, 1)
        self._state["abs_sum"] += np.abs(pixels(pred, mask) - pixels(target, mask)).sum()
        self._state["count"] += int(mask.sum())

    def compute(self) -> dict[str, float]:
        n = int(self._state["count"])
        if n == 0:
            return nan_result(self.names)
        return {"sal_mae": 100.0 * float(self._state["abs_sum"]) / n}


class SaliencyKind(TaskKind):
    """The whole numpy side of the new kind: names, meaning, its metric (rest inherited)."""

    name = "saliency"
    raw_output = "saliency"
    decoded_output = "saliency"
    meaning = "saliency in [0, 1]"
    metrics = (MetricInfo("sal_mae", False, "MAE %"),)

    def metric(self, channels: int | None = None) -> TaskMetric:
        return SaliencyMAE()


SALIENCY = SaliencyKind()


@pytest.fixture
def saliency_kind() -> Iterator[None]:
    import torch

    from edgemtl.training.task_ops import TaskOps, register_ops, unregister_ops

    register_kind(SALIENCY)
    register_ops("saliency", TaskOps(activate=torch.sigmoid))
    try:
        yield
    finally:
        unregister_ops("saliency")
        unregister_kind("saliency")


def _write_dataset(root: Path) -> None:
    """dataset.yaml + PNG images and 8-bit saliency maps (bright blob = salient, 255 invalid)."""
    spec = {
        "name": "toy-saliency",
        "image": {"folder": "images"},
        "tasks": {
            "saliency": {"folder": "sal", "format": "png8", "scale": 1 / 254, "invalid": 255}
        },
    }
    root.mkdir(parents=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    yy, xx = np.mgrid[0:H, 0:W]
    for split, n in (("train", 4), ("val", 2)):
        for i in range(n):
            rng = np.random.default_rng([3, n, i])
            cy, cx = rng.integers(8, H - 8), rng.integers(8, W - 8)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)
            image = np.clip(rng.normal(0.3, 0.05, (H, W, 3)) + 0.6 * blob[..., None], 0, 1)
            sal = np.rint(blob * 254).astype(np.uint8)
            sal[:2, :] = 255  # invalid rows
            for folder, arr in (("images", (image * 255).astype(np.uint8)), ("sal", sal)):
                (root / split / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(root / split / folder / f"f{i}.png")


def _cli(*args: str) -> Any:
    from edgemtl.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def test_new_kind_trains_evaluates_exports_and_profiles(
    saliency_kind: None, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    _write_dataset(root)
    report = tmp_path / "check.json"
    _cli("data", "check", str(root), "--json", str(report), "-q")
    checked = json.loads(report.read_text())["splits"]["val"]["tasks"]["saliency"]
    assert checked["invalid_fraction"] == pytest.approx(2 / H)  # the 255 rows

    recipe = tmp_path / "toy.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "toy-saliency",
                "data": {"kind": "folder", "root": str(root), "size": [H, W], "workers": 0},
                "tasks": {"saliency": {}},
                "model": {"width": 0.125},
                "method": {"name": "sd"},
                "train": {
                    "epochs": 1,
                    "batch_size": 2,
                    "threads": 1,
                    "eval_limit": 2,
                    "checkpoint_every": 0,
                },
            }
        )
    )
    run = tmp_path / "run"
    _cli("train", str(recipe), "--out", str(run), "-q")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert set(rows[-1]["heads"]) == {"teacher", "student", "ensemble"}

    scores = tmp_path / "eval.json"
    _cli("eval", str(run / "best.pt"), "--head", "all", "--json", str(scores), "-q")
    heads = json.loads(scores.read_text())["heads"]
    for head in ("teacher", "student", "ensemble"):
        assert 0.0 <= heads[head]["saliency"]["sal_mae"] <= 100.0

    bundle = tmp_path / "bundle"
    _cli(
        "export",
        str(run / "best.pt"),
        "--head",
        "student",
        "--fp16",
        "--no-trt",
        "--out",
        str(bundle),
        "--samples",
        "2",
        "-q",
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    fp32 = next(a for a in manifest["artifacts"] if a["precision"] == "fp32")
    fp16 = next(a for a in manifest["artifacts"] if a["precision"] == "fp16")
    (output,) = fp32["outputs"]
    assert output["name"] == "saliency" and output["meaning"] == "saliency in [0, 1]"
    assert fp32["parity"]["passed"] and set(fp32["parity"]["checks"]["saliency"]) == {"max_abs"}
    assert fp16["parity"]["passed"]
    assert set(fp16["parity"]["checks"]["saliency"]) == {"rel_diff_percent"}

    profiled = tmp_path / "profile.json"
    _cli(
        "profile",
        str(bundle),
        "--precision",
        "fp32",
        "--accuracy",
        "--iterations",
        "2",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--warmup-s",
        "0",
        "--no-power",
        "--idle",
        "0",
        "--threads",
        "1",
        "--json",
        str(profiled),
        "-q",
    )
    (art,) = json.loads(profiled.read_text())["artifacts"]
    onnx_mae = art["heads"]["student"]["saliency"]["sal_mae"]
    assert onnx_mae == pytest.approx(heads["student"]["saliency"]["sal_mae"], abs=1e-3)

    preds = tmp_path / "preds"
    _cli("predict", str(bundle), str(root / "val" / "images" / "f0.png"), "--out", str(preds), "-q")
    saliency = np.load(preds / "f0.npz")["saliency"]
    assert saliency.shape == (H, W) and 0.0 <= saliency.min() and saliency.max() <= 1.0  # sigmoid
    assert (preds / "f0.saliency.png").is_file()

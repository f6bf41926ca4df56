"""CUDA paths of training and of the torch runner: where CUDA exists they must give the CPU's
numbers (to TF32 / bf16 accuracy); elsewhere these tests skip with the reason.

The time-capped, device-sized version of these checks is scripts/gpu_check.sh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.training.evaluate import evaluate_checkpoint
from edgemtl.training.train_command import TrainOptions, run_training
from tests.helpers.cli import REPO
from tests.helpers.tiny_run import TINY_OVERRIDES

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@CUDA
def test_a_bf16_channels_last_cuda_run_scores_the_same_on_the_cpu(tmp_path: Path) -> None:
    """Pinned-memory loading with a worker, bf16 autocast and NHWC on CUDA; the checkpoint
    loads on the CPU and scores what the run logged (evaluation is fp32 on both)."""
    overrides = [
        *TINY_OVERRIDES,
        "train.epochs=1",
        "data.workers=1",
        "train.amp=bf16",
        "train.channels_last=true",
    ]
    run = tmp_path / "run"
    recipe = REPO / "recipes" / "synthetic.yaml"
    options = TrainOptions.from_file(recipe, overrides, out=run, device="cuda", quiet=True)
    summary = run_training(options)
    assert summary["device"].startswith("cuda")
    on_cpu = evaluate_checkpoint(run / "last.pt", device="cpu")["heads"]
    for head, tasks in summary["final"].items():
        for task, metrics in tasks.items():
            if not isinstance(metrics, dict):
                continue  # delta_m and other head-level numbers
            for name, value in metrics.items():
                cpu = on_cpu[head][task][name]
                tol = 0.5 if name in ("miou", "pixel_acc") else 1e-2 * abs(cpu) + 1e-4
                assert abs(value - cpu) <= tol, f"{head}.{task}.{name}: cuda {value}, cpu {cpu}"


@pytest.mark.gpu
@CUDA
def test_torch_runner_on_cuda_matches_the_cpu_and_times_with_events(
    tiny_checkpoint: Path,
) -> None:
    from edgemtl.deploy.runtime.base import RunnerOptions
    from edgemtl.training.torch_runner import TorchRunner, checkpoint_ref

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 64)).astype(np.float32)
    outs = {}
    for head in ("student", "teacher"):
        ref = checkpoint_ref(tiny_checkpoint, head)
        for device in ("cpu", "cuda"):
            with TorchRunner(ref, RunnerOptions(device=device)) as runner:
                outs[head, device] = runner.infer(x)
                compute = runner.last_compute_ns()
                if device == "cuda":
                    assert compute is not None and compute > 0  # CUDA events around the forward
                    assert runner.device_facts()["gpu"] == torch.cuda.get_device_name(0)
                else:
                    assert compute is None
        for name, cpu in outs[head, "cpu"].items():
            np.testing.assert_allclose(
                outs[head, "cuda"][name], cpu, rtol=1e-2, atol=1e-3, err_msg=f"{head} {name}"
            )

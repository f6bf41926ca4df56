"""Distributed training: real `torchrun` with 2 CPU processes (gloo) against single-process runs.

The equivalence under test (edgemtl/training/distributed.py): W processes with global
batch B train exactly like one process with the same B and
`train.micro_batches = W` (BatchNorm statistics and loss means per chunk).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemtl.core.config import AGGREGATOR_NAMES
from edgemtl.core.errors import UserError
from edgemtl.training.bn_stats import RunningStats
from edgemtl.training.checkpoint import load_checkpoint
from edgemtl.training.data import epoch_permutation, rank_batches
from edgemtl.training.distributed import Dist
from edgemtl.training.evaluate import evaluate_checkpoint
from edgemtl.training.sharding import TRACE_ENV, ShardReader, check_batch, eval_shard
from edgemtl.training.train_command import TrainOptions, run_training
from tests.helpers.cli import REPO
from tests.helpers.ddp_balancers import two_steps

RECIPE = REPO / "recipes" / "synthetic.yaml"
N_TRAIN, N_VAL, BATCH = 16, 7, 4  # odd val split: shards of 4 and 3
BASE = [
    "data.size=[32,64]",
    "data.workers=0",
    "model.width=0.125",
    f"train.batch_size={BATCH}",
    "train.threads=1",
    "train.optimizer.lr=0.002",
]

#: Why SGD in the per-task balancer checks: 2 ranks and 2 micro-batches sum the same gradients in
#: a different order (float rounding); Adam's first steps (about lr x sign(g)) blow that up on
#: near-zero gradients, e.g. the skip Student's shared up-stages, where the tasks' plain-sum
#: gradients nearly cancel. SGD keeps a gradient mismatch visible at its own size.
SGD = "train.optimizer.name=sgd"


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def torchrun(
    target: list[str], env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "EDGEMTL_DEBUG"}
    full_env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(REPO), full_env.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
            "COLUMNS": "120",
            **(env or {}),
        }
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        *target,
    ]
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=full_env, cwd=REPO, timeout=timeout
    )


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgemtl.data.synthetic import SynthParams, write_dataset

    return write_dataset(
        tmp_path_factory.mktemp("ddp") / "data", SynthParams(N_TRAIN, N_VAL, 32, 64, seed=1)
    )


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Path]:
    """Epoch 1 under torchrun, then `--resume` under torchrun for epoch 2, tracing each rank's
    samples."""
    root = tmp_path_factory.mktemp("ddp-run")
    run, trace = root / "run", root / "trace"
    sets = _sets([*BASE, f"data.root={data_root}", "train.epochs=1"])
    env = {TRACE_ENV: str(trace)}
    first = torchrun(["-m", "edgemtl", "train", str(RECIPE), "--out", str(run), *sets], env)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.copytree(run, root / "after-epoch-1")
    second = torchrun(
        [
            "-m",
            "edgemtl",
            "train",
            str(RECIPE),
            "--out",
            str(run),
            "--resume",
            *_sets(["train.epochs=2"]),
        ],
        env,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    (root / "stdout.txt").write_text(first.stdout + second.stdout)
    (root / "stderr.txt").write_text(second.stderr)
    return {"run": run, "trace": trace, "root": root}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """One process, same global batch, micro_batches = 2, two epochs straight through."""
    run = tmp_path_factory.mktemp("single") / "run"
    threads = torch.get_num_threads()
    try:
        overrides = [*BASE, f"data.root={data_root}", "train.epochs=2", "train.micro_batches=2"]
        run_training(TrainOptions.from_file(RECIPE, overrides, out=run, quiet=True))
    finally:
        torch.set_num_threads(threads)
    return run


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_checkpoint(a).model, load_checkpoint(b).model
    assert wa.keys() == wb.keys()
    for key in wa:  # BN running stats and num_batches_tracked included
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6, msg=key)


# ------------------------------------------------------------- torchrun runs
@pytest.mark.slow
def test_ranks_train_on_disjoint_slices_of_the_global_batch(ddp_run: dict[str, Path]) -> None:
    traces = [
        [
            json.loads(line)
            for line in (ddp_run["trace"] / f"rank{r}.jsonl").read_text().splitlines()
        ]
        for r in (0, 1)
    ]
    assert len(traces[0]) == len(traces[1]) == 2 * (N_TRAIN // BATCH)
    for step0, step1 in zip(*traces):
        assert (step0["epoch"], step0["batch"]) == (step1["epoch"], step1["batch"])
        assert not set(step0["indices"]) & set(step1["indices"])
        perm = epoch_permutation(N_TRAIN, 0, step0["epoch"])
        b = step0["batch"]
        assert step0["indices"] + step1["indices"] == perm[b * BATCH : (b + 1) * BATCH].tolist()


@pytest.mark.slow
def test_rank0_alone_writes(ddp_run: dict[str, Path]) -> None:
    run = ddp_run["run"]
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt",
        "curves.png",
        "last.pt",
        "metrics.jsonl",
        "recipe.yaml",
        "summary.json",
        "tensorboard",
    ]
    assert [row["epoch"] for row in _rows(run)] == [
        0,
        1,
    ]  # two ranks appending would give four rows
    assert len(list((run / "tensorboard").iterdir())) == 2  # one events file per launch, rank 0's
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    stdout = (ddp_run["root"] / "stdout.txt").read_text()
    assert stdout.count("final epoch, val split") == 2  # one table per launch, not per rank


@pytest.mark.slow
def test_resumed_ddp_run_matches_single_process_run(
    ddp_run: dict[str, Path], single_run: Path
) -> None:
    ckpt = load_checkpoint(ddp_run["run"] / "last.pt")
    assert ckpt.position is not None and ckpt.distributed is not None
    assert ckpt.position.model_dump() == {"epoch": 2, "batch": 0, "global_step": 8}
    assert ckpt.distributed.model_dump() == {"world_size": 2, "micro_batches": 1}
    _assert_same_weights(ddp_run["run"] / "last.pt", single_run / "last.pt")
    for got, want in zip(_rows(ddp_run["run"]), _rows(single_run)):
        assert got["losses"] == pytest.approx(want["losses"], rel=1e-6)
        assert got["heads"]["student"]["seg"] == pytest.approx(
            want["heads"]["student"]["seg"], rel=1e-6
        )


@pytest.mark.slow
def test_ddp_checkpoint_resumes_in_one_process_with_micro_batches(
    ddp_run: dict[str, Path], single_run: Path
) -> None:
    run = ddp_run["root"] / "after-epoch-1"  # written by 2 processes; continued by one
    threads = torch.get_num_threads()
    try:
        overrides = ["train.epochs=2", "train.micro_batches=2"]
        run_training(TrainOptions.from_file(RECIPE, overrides, out=run, resume=True, quiet=True))
    finally:
        torch.set_num_threads(threads)
    _assert_same_weights(run / "last.pt", single_run / "last.pt")


@pytest.mark.slow
def test_distributed_eval_equals_single_process_eval(ddp_run: dict[str, Path]) -> None:
    logged = _rows(ddp_run["run"])[-1]["heads"]  # scored on shards of 4 and 3 images, states summed
    result = evaluate_checkpoint(ddp_run["run"] / "last.pt", "all", batch_size=8)
    assert result["samples"] == N_VAL
    for head, tasks in logged.items():
        for task, values in tasks.items():
            if isinstance(values, dict):
                for name, value in values.items():
                    assert result["heads"][head][task][name] == pytest.approx(
                        value, rel=1e-6, abs=1e-9
                    ), (head, task, name)


@pytest.mark.slow
def test_nan_on_rank1_stops_both_ranks_with_the_message(tmp_path: Path, data_root: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(data_root, data)
    for i in epoch_permutation(N_TRAIN, 0, 0)[
        BATCH // 2 : BATCH
    ]:  # rank 1's half of the first batch
        path = data / "train" / "image" / f"{i}.npy"
        image = np.load(path)
        image[0, 0, 0] = np.nan
        np.save(path, image)
    proc = torchrun(
        [
            "-m",
            "edgemtl",
            "train",
            str(RECIPE),
            "--out",
            str(tmp_path / "run"),
            # data.check=false: the NaN guard behind the data checks (they refuse NaN images)
            *_sets([*BASE, f"data.root={data}", "train.epochs=1", "data.check=false"]),
        ],
        timeout=180,
    )
    assert proc.returncode != 0
    message = "on rank 1 at epoch 1, batch 1; last good checkpoint:"
    assert (
        proc.stderr.count("error: training stopped: loss is nan") == 2
        and proc.stderr.count(message) == 2
    )  # both ranks
    assert (
        "Traceback" not in proc.stderr.split("training stopped")[0]
    )  # no rank crashed before agreeing
    assert (
        tmp_path / "run" / "last.pt"
    ).is_file()  # the untouched initial weights, written by rank 0


@pytest.mark.slow
def test_pcgrad_under_ddp_matches_single_process(tmp_path: Path, data_root: Path) -> None:
    """PCGrad projects the global batch's per-task gradients (rank-averaged) on every rank."""
    sets = _sets(
        [
            *BASE,
            f"data.root={data_root}",
            "train.epochs=1",
            "train.balancer={name: pcgrad, seed: 3}",
            SGD,
        ]
    )
    proc = torchrun(
        ["-m", "edgemtl", "train", str(RECIPE), "--out", str(tmp_path / "ddp"), "--quiet", *sets]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgemtl",
            "train",
            str(RECIPE),
            "--out",
            str(tmp_path / "one"),
            "--quiet",
            *sets,
            "--set",
            "train.micro_batches=2",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,  # a loaded CI machine: these take ~30 s when idle
    )
    assert single.returncode == 0, single.stderr[-3000:]
    _assert_same_weights(tmp_path / "ddp" / "last.pt", tmp_path / "one" / "last.pt")
    rows = [
        json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    ]
    assert set(rows[0]["weights"]) == {"seg", "depth", "normal", "keypoints", "edges"}


#: Per-task-gradient balancers besides PCGrad (its own test above): every torchjd aggregator,
#: MGDA-UB and GradNorm, all in one torchrun launch.
PER_TASK = ["mgda", "gradnorm", *AGGREGATOR_NAMES]


@pytest.mark.slow
def test_per_task_balancers_under_ddp_match_single_process(tmp_path: Path, data_root: Path) -> None:
    """Each rank combines the same rank-averaged per-task gradients (aggregators, MGDA's Gram,
    GradNorm's norms), so 2 processes == 1 process with 2 micro-batches, random draws included.
    Heads start random here (no constant-predictor init), so step 1 has non-zero gradients."""
    sets = [*BASE, f"data.root={data_root}", "train.balancer.seed=4", SGD]
    proc = torchrun(
        [str(REPO / "tests" / "helpers" / "ddp_balancers.py"), str(tmp_path), str(RECIPE)]
        + [",".join(PER_TASK), *sets]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in PER_TASK:
        ddp = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        one = two_steps(
            RECIPE, [*sets, "train.micro_batches=2", f"train.balancer.name={name}"], tmp_path
        )
        for key, value in one["model"].items():
            torch.testing.assert_close(
                ddp["model"][key], value, rtol=1e-5, atol=1e-6, msg=f"{name}: {key}"
            )
        for got, want in zip(ddp["logged"], one["logged"]):  # losses: rank 0's half only
            weights = {k: v for k, v in want.items() if k.startswith("weight.")}
            assert {k: got[k] for k in weights} == pytest.approx(weights, rel=1e-5), name


# ------------------------------------------------------------ pieces, no torchrun
def test_rank_batches_of_one_process_are_the_single_process_order() -> None:
    # 23 samples, batch 5: 4 full batches; resuming at batch 2 leaves batches 2 and 3 of the
    # permutation.
    order = epoch_permutation(23, 4, 3).tolist()
    assert rank_batches(23, 5, 4, 3, start_batch=2, rank=0, world_size=1) == [
        order[10:15],
        order[15:20],
    ]


def test_rank_slices_partition_each_global_batch() -> None:
    ranks = [rank_batches(22, 6, 0, 1, 0, r, 3) for r in range(3)]
    perm = epoch_permutation(22, 0, 1)
    for i in range(22 // 6):
        assert ranks[0][i] + ranks[1][i] + ranks[2][i] == perm[i * 6 : (i + 1) * 6].tolist()


def test_global_batch_must_split_into_chunks() -> None:
    assert check_batch(8, 2, 2) == 2
    with pytest.raises(
        UserError,
        match=r"train.batch_size 6 is the global batch: .* processes \(2\) x train.micro_batches "
        r"\(2\) = 4",
    ):
        check_batch(6, 2, 2)


def test_eval_shards_cover_the_split_once_without_padding() -> None:
    shards = [eval_shard(7, r, 2) for r in range(2)]
    assert [s.tolist() for s in shards] == [[0, 1, 2, 3], [4, 5, 6]]
    assert [len(eval_shard(2, r, 3)) for r in range(3)] == [1, 1, 0]

    class Reader:
        class_names = ("a",)

        def __getitem__(self, i: int) -> int:
            return i * 10

    view = ShardReader(Reader(), shards[1])
    assert len(view) == 3 and view[2] == 60 and view.class_names == ("a",)


def test_running_stats_move_by_the_mean_of_chunk_updates() -> None:
    bn = torch.nn.BatchNorm2d(1, momentum=0.5)
    stats = RunningStats(bn)
    chunks = [
        torch.full((2, 1, 1, 1), 2.0) + torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1),  # mean 2, var 2
        torch.full((2, 1, 1, 1), 6.0),
    ]  # mean 6, var 0
    stats.begin()
    for x in chunks:
        stats.before_chunk()
        bn(x)
        stats.after_chunk()
    stats.finish(Dist())
    # each chunk from (0, 1): mean 0.5*2=1 and 0.5*6=3 -> 2; var 0.5+0.5*2=1.5 and 0.5 -> 1.0
    assert bn.running_mean.item() == pytest.approx(2.0) and bn.running_var.item() == pytest.approx(
        1.0
    )
    assert int(bn.num_batches_tracked) == 1


@pytest.mark.gpu
@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (NCCL + SyncBatchNorm under torchrun)"
)
def test_nccl_sync_bn_run_on_two_gpus(tmp_path: Path, data_root: Path) -> None:
    sets = _sets(
        [*BASE, f"data.root={data_root}", "train.epochs=1", "train.sync_bn=true", "train.amp=bf16"]
    )
    proc = torchrun(
        [
            "-m",
            "edgemtl",
            "train",
            str(RECIPE),
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cuda",
            *sets,
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt.distributed is not None and ckpt.distributed.world_size == 2
    assert all(torch.isfinite(v).all() for v in ckpt.model.values() if v.is_floating_point())

"""Reproduction benchmark: the two papers' method grid on synthetic data, 3 seeds, mean ± std.

    python benchmarks/reproduce.py --preset cpu [--jobs 2] [--runs-dir runs/reproduce-cpu]
    python benchmarks/reproduce.py --preset smoke          # same grid, tiny budget (minutes)
    python benchmarks/reproduce.py --preset cpu --missing  # only rows the result JSON lacks
    python benchmarks/reproduce.py --preset paper          # plan + one step of each run on fixtures

Grid (recipes/synthetic-*.yaml): single-task networks (the Δm reference, one per
task), vanilla (Baseline-1), λ = 0 (Baseline-2), two-stage KD (Baseline-3, its
stage 1 is the vanilla run of the same seed), no attention (Baseline-4), U-Net,
SD Eq. 5, SD Eq. 6, single-task SD (seg, depth), KD4MTL and BAM (teachers: the
single-task runs of the same seed), and each loss balancer and torchjd aggregator on
the vanilla network.
Every run gets the same fixed budget (epochs × steps, input size, width). Δm of a
row is measured per seed against that seed's single-task runs, then averaged.
A claim "A beats B" counts as reproduced only when mean Δm(A) − mean Δm(B) exceeds
2 × the larger of the two standard deviations; "contradicted" when B wins by that
margin; otherwise "inconclusive". Writes benchmarks/results/reproduce_<preset>.json
and .md. Finished runs are kept (summary.json) and skipped when run again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edgemtl.core.config import (  # noqa: E402 (after the path insert)
    AGGREGATOR_NAMES,
    LOSS_BALANCER_NAMES,
)

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = ("seg", "depth", "normal", "keypoints", "edges")
SEEDS = (0, 1, 2)

#: Fixed per-run budgets. cpu: measured to fit the grid in <= 3 h on 2 cores (see docs/methods.md).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "size": [64, 128],
        "width": 0.125,
        "n_train": 256,
        "n_val": 64,
        "epochs": 6,
        "batch": 8,
        "lr": 1e-3,
        "step_size": 4,
    },
    "smoke": {
        "size": [32, 64],
        "width": 0.125,
        "n_train": 16,
        "n_val": 8,
        "epochs": 1,
        "batch": 4,
        "lr": 2e-3,
        "step_size": 1,
    },
}


@dataclass
class Run:
    key: str
    recipe: str
    seed: int
    overrides: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)  # run keys (same seed) that must finish first

    def folder(self, runs_dir: Path) -> Path:
        return runs_dir / f"{self.key}-s{self.seed}"


#: The torchjd aggregators' table labels and papers (one run each on the vanilla network).
AGGREGATOR_LABELS = {
    "upgrad": "UPGrad",
    "aligned_mtl": "Aligned-MTL",
    "cagrad": "CAGrad",
    "dualproj": "DualProj",
    "imtl_g": "IMTL-G",
    "nash_mtl": "Nash-MTL",
    "graddrop": "GradDrop",
    "config": "ConFIG",
    "gradvac": "GradVac",
    "fairgrad": "FairGrad",
    "excess_mtl": "ExcessMTL",
    "rlw": "RLW",
}

#: Table rows: (label, run key, head).
ROWS: list[tuple[str, str, str]] = [
    ("Single-task networks (reference)", "stl", "teacher"),
    ("Baseline-1: vanilla (Teacher network)", "vanilla", "teacher"),
    ("Baseline-2: λ = 0", "lambda0", "teacher"),
    ("Baseline-2: λ = 0", "lambda0", "student"),
    ("Baseline-3: two-stage KD", "kd-two-stage", "student"),
    ("Baseline-4: no attention (Eq. 5)", "no-attention", "teacher"),
    ("Baseline-4: no attention (Eq. 5)", "no-attention", "student"),
    ("U-Net (Eq. 5)", "unet", "teacher"),
    ("U-Net (Eq. 5)", "unet", "student"),
    ("SD-MTCNN Eq. 5", "sd", "teacher"),
    ("SD-MTCNN Eq. 5", "sd", "student"),
    ("SD-MTCNN Eq. 6", "sd-ensemble", "teacher"),
    ("SD-MTCNN Eq. 6", "sd-ensemble", "student"),
    ("SD-MTCNN Eq. 6", "sd-ensemble", "ensemble"),
    ("Single-task SD, seg (Eq. 5)", "single-sd-seg", "teacher"),
    ("Single-task SD, seg (Eq. 5)", "single-sd-seg", "student"),
    ("Single-task SD, depth (Eq. 5)", "single-sd-depth", "teacher"),
    ("Single-task SD, depth (Eq. 5)", "single-sd-depth", "student"),
    ("Uncertainty weighting", "uncertainty", "teacher"),
    ("DWA", "dwa", "teacher"),
    ("GradNorm", "gradnorm", "teacher"),
    ("MGDA-UB", "mgda", "teacher"),
    ("PCGrad", "pcgrad", "teacher"),
    *((f"{AGGREGATOR_LABELS[name]} (torchjd)", name, "teacher") for name in AGGREGATOR_NAMES),
    ("BAM", "bam", "teacher"),
    ("KD4MTL", "kd4mtl", "teacher"),
]

#: Claims: (paper, statement, (run, head) of A, (run, head) of B) -> "A beats B" on Δm.
CLAIMS: list[tuple[str, str, tuple[str, str], tuple[str, str]]] = [
    (
        "SD-MTCNN",
        "Eq. 5 Teacher beats Baseline-1 (vanilla)",
        ("sd", "teacher"),
        ("vanilla", "teacher"),
    ),
    (
        "SD-MTCNN",
        "Eq. 5 Teacher beats Baseline-2 Teacher (λ = 0)",
        ("sd", "teacher"),
        ("lambda0", "teacher"),
    ),
    (
        "SD-MTCNN",
        "Eq. 5 Student beats Baseline-2 Student (λ = 0)",
        ("sd", "student"),
        ("lambda0", "student"),
    ),
    (
        "SD-MTCNN",
        "Eq. 5 Student beats Baseline-3 (two-stage KD Student)",
        ("sd", "student"),
        ("kd-two-stage", "student"),
    ),
    (
        "SD-MTCNN",
        "Eq. 5 Teacher beats Baseline-4 (no attention)",
        ("sd", "teacher"),
        ("no-attention", "teacher"),
    ),
    (
        "SD-MTCNN",
        "Eq. 6 Student beats Baseline-1 (vanilla)",
        ("sd-ensemble", "student"),
        ("vanilla", "teacher"),
    ),
    (
        "SD-MTCNN",
        "Eq. 5 Teacher beats Eq. 6 Teacher",
        ("sd", "teacher"),
        ("sd-ensemble", "teacher"),
    ),
    (
        "SD-MTCNN",
        "Eq. 5 Student beats Eq. 6 Student",
        ("sd", "student"),
        ("sd-ensemble", "student"),
    ),
    (
        "SD-MTCNN",
        "single-task SD Teacher beats the single-task network (seg)",
        ("single-sd-seg", "teacher"),
        ("stl", "teacher"),
    ),
    (
        "SD-MTCNN",
        "single-task SD Teacher beats the single-task network (depth)",
        ("single-sd-depth", "teacher"),
        ("stl", "teacher"),
    ),
    (
        "KD4MTL",
        "KD4MTL beats uniform weighting (vanilla)",
        ("kd4mtl", "teacher"),
        ("vanilla", "teacher"),
    ),
    (
        "KD4MTL",
        "KD4MTL beats the best loss balancer",
        ("kd4mtl", "teacher"),
        ("best-balancer", "teacher"),
    ),
    ("KD4MTL", "KD4MTL beats BAM", ("kd4mtl", "teacher"), ("bam", "teacher")),
    ("KD4MTL", "BAM beats uniform weighting (vanilla)", ("bam", "teacher"), ("vanilla", "teacher")),
]
# Each aggregator paper's central claim: its combination beats uniform weighting.
CLAIMS += [
    (
        AGGREGATOR_LABELS[name],
        f"{AGGREGATOR_LABELS[name]} beats uniform weighting (vanilla)",
        (name, "teacher"),
        ("vanilla", "teacher"),
    )
    for name in AGGREGATOR_NAMES
]
#: The papers' loss balancers but `equal` (the vanilla run): one recipe each. "The best loss
#: balancer" of the KD4MTL claim is the best of these.
BALANCER_RUNS = tuple(name for name in LOSS_BALANCER_NAMES if name != "equal")
#: The torchjd aggregators: the vanilla recipe with `train.balancer.name` set.
AGGREGATOR_RUNS = tuple(AGGREGATOR_NAMES)


def grid(seeds: tuple[int, ...] = SEEDS) -> list[Run]:
    runs: list[Run] = []
    for seed in seeds:
        stl = [f"stl-{t}" for t in TASKS]
        runs += [Run(f"stl-{t}", "synthetic-single-vanilla", seed, [f"tasks=[{t}]"]) for t in TASKS]
        for key in ("vanilla", "lambda0", "no-attention", "unet", "sd-ensemble", *BALANCER_RUNS):
            runs.append(Run(key, f"synthetic-{key}", seed))
        runs += [
            Run(name, "synthetic-vanilla", seed, [f"train.balancer.name={name}"])
            for name in AGGREGATOR_RUNS
        ]
        # The papers' Eq. 5 network: the paper Student (recipes/synthetic.yaml ships the skip one).
        runs.append(Run("sd", "synthetic", seed, ["model.student.kind=paper"]))
        runs += [
            Run(f"single-sd-{t}", "synthetic-single", seed, [f"tasks=[{t}]"])
            for t in ("seg", "depth")
        ]
        runs.append(Run("kd-two-stage", "synthetic-kd-two-stage", seed, needs=["vanilla"]))
        runs.append(Run("kd4mtl", "synthetic-kd4mtl", seed, needs=stl))
        runs.append(Run("bam", "synthetic-bam", seed, needs=stl))
    return runs


def budget_overrides(preset: dict[str, Any], seed: int, threads: int) -> list[str]:
    return [
        "data.kind=synthetic",
        f"data.size={preset['size']}",
        f"data.synthetic={{n_train: {preset['n_train']}, n_val: {preset['n_val']}, seed: 0}}",
        "data.workers=0",
        f"model.width={preset['width']}",
        f"train.epochs={preset['epochs']}",
        f"train.batch_size={preset['batch']}",
        f"train.optimizer.lr={preset['lr']}",
        f"train.scheduler.step_size={preset['step_size']}",
        f"train.seed={seed}",
        f"train.threads={threads}",
        "train.reference=null",
    ]


def run_overrides(run: Run, runs_dir: Path) -> list[str]:
    """Dependencies become teacher paths: same seed's vanilla run / single-task runs."""

    def best(key: str) -> str:
        return str(Run(key, "", run.seed).folder(runs_dir) / "best.pt")

    if run.key == "kd-two-stage":
        return [f"method.teacher={best('vanilla')}"]
    if run.key in ("kd4mtl", "bam"):
        return ["method.teachers={" + ", ".join(f"{t}: {best(f'stl-{t}')}" for t in TASKS) + "}"]
    return []


def train_one(run: Run, preset: dict[str, Any], runs_dir: Path, threads: int, log: Path) -> float:
    folder = run.folder(runs_dir)
    if (folder / "summary.json").is_file():
        return 0.0
    if (folder / "last.pt").is_file():  # an interrupted run: start it again from scratch
        import shutil

        shutil.rmtree(folder)
    sets = (
        budget_overrides(preset, run.seed, threads) + run.overrides + run_overrides(run, runs_dir)
    )
    cmd = [
        sys.executable,
        "-m",
        "edgemtl",
        "train",
        str(ROOT / "recipes" / f"{run.recipe}.yaml"),
        "--out",
        str(folder),
        "--quiet",
    ]
    for item in sets:
        cmd += ["--set", item]
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(cmd)}\n")
        handle.flush()
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{folder.name} failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def run_grid(
    runs: list[Run], preset: dict[str, Any], runs_dir: Path, jobs: int, log: Path
) -> dict[str, float]:
    """Independent runs first, then the ones that need them; `jobs` runs at a time, one thread
    each."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    threads = 1 if jobs > 1 else 2
    for phase in (False, True):
        todo = [r for r in runs if bool(r.needs) == phase]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                r.folder(runs_dir).name: pool.submit(train_one, r, preset, runs_dir, threads, log)
                for r in todo
            }
            for i, (name, future) in enumerate(futures.items(), 1):
                timings[name] = round(future.result(), 1)
                print(
                    f"[{'2' if phase else '1'}] {i}/{len(todo)} {name}: {timings[name]:.0f} s",
                    file=sys.stderr,
                )
    return timings


# ------------------------------------------------------------------- scoring
def final_metrics(folder: Path, head: str) -> dict[str, dict[str, float]]:
    summary = json.loads((folder / "summary.json").read_text())
    block = summary["final"][head]
    return {t: m for t, m in block.items() if isinstance(m, dict)}


def _done(runs_dir: Path, key: str, seeds: tuple[int, ...]) -> bool:
    keys = [f"stl-{t}" for t in TASKS] if key == "stl" else [key]
    return all(
        (Run(k, "", seed).folder(runs_dir) / "summary.json").is_file()
        for k in keys
        for seed in seeds
    )


def collect(
    runs_dir: Path, seeds: tuple[int, ...], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per row and seed: final-epoch metrics of the row's head and Δm against that seed's
    single-task runs. Rows whose runs are not all finished (a partial grid) are left out,
    unless `previous` (the rows of an earlier result JSON) has them: those are kept, and
    its single-task reference metrics stand in when the single-task runs are not on disk."""
    from edgemtl.evaluation.metrics import delta_m

    previous = previous or {}
    rows: dict[str, Any] = {}
    if _done(runs_dir, "stl", seeds):
        references = {}
        for seed in seeds:
            reference: dict[str, dict[str, float]] = {}
            for t in TASKS:
                reference.update(
                    final_metrics(Run(f"stl-{t}", "", seed).folder(runs_dir), "teacher")
                )
            references[seed] = reference
    elif "stl/teacher" in previous:
        references = {s["seed"]: s["metrics"] for s in previous["stl/teacher"]["seeds"]}
    else:
        return dict(previous)
    for label, key, head in ROWS:
        name = f"{key}/{head}"
        if not _done(runs_dir, key, seeds):
            if name in previous:
                rows[name] = previous[name]
            continue
        per_seed: list[dict[str, Any]] = []
        for seed in seeds:
            if key == "stl":
                metrics = references[seed]
            else:
                metrics = final_metrics(Run(key, "", seed).folder(runs_dir), head)
            per_seed.append(
                {"seed": seed, "metrics": metrics, "delta_m": delta_m(metrics, references[seed])}
            )
        rows[name] = {
            "label": label,
            "run": key,
            "head": head,
            "seeds": per_seed,
            **mean_std([s["delta_m"] for s in per_seed]),
        }
    if all(f"{k}/teacher" in rows for k in BALANCER_RUNS):
        best = max(BALANCER_RUNS, key=lambda k: rows[f"{k}/teacher"]["mean"])
        rows["best-balancer/teacher"] = {
            **rows[f"{best}/teacher"],
            "label": f"best balancer ({best})",
        }
    return rows


def same_code_check(
    previous: dict[str, Any], preset: dict[str, Any], runs_dir: Path, log: Path
) -> str | None:
    """Retrain the vanilla run of seed 0 (in its own folder) and compare it with `previous`.

    Merging new rows into an earlier grid is only fair if today's code trains the
    earlier rows the same way; returns what differs (None: the same, to 1e-4).
    """
    row = previous.get("vanilla/teacher")
    if row is None:
        return None
    check = Run("vanilla", "synthetic-vanilla", 0)
    check.key = "check-vanilla"
    import shutil

    shutil.rmtree(check.folder(runs_dir), ignore_errors=True)  # never an earlier check's result
    train_one(check, preset, runs_dir, 1, log)
    now = final_metrics(check.folder(runs_dir), "teacher")
    then = next(s["metrics"] for s in row["seeds"] if s["seed"] == 0)
    for task, metrics in then.items():
        for name, value in metrics.items():
            got = now.get(task, {}).get(name)
            if got is None or abs(got - value) > 1e-4 * max(1.0, abs(value)):
                return f"vanilla seed 0 {task}.{name} is {got} now, {value} in the result"
    return None


def missing_runs(runs: list[Run], previous: dict[str, Any]) -> list[Run]:
    """The runs of table rows an earlier result JSON lacks (e.g. balancers added since)."""
    keys = {key for _, key, head in ROWS if f"{key}/{head}" not in previous}
    chosen = [r for r in runs if r.key in keys]
    if any(r.needs for r in chosen):  # teachers from runs that may be gone: run them too
        needed = {n for r in chosen for n in r.needs}
        chosen = [r for r in runs if r.key in keys | needed]
    return chosen


def mean_std(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)]
    mean = statistics.fmean(finite) if finite else math.nan
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return {"mean": mean, "std": std}


def judge(rows: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts = []
    for paper, text, a, b in CLAIMS:
        if f"{a[0]}/{a[1]}" not in rows or f"{b[0]}/{b[1]}" not in rows:
            verdicts.append(
                {
                    "paper": paper,
                    "claim": text,
                    "a": a[0],
                    "b": b[0],
                    "gap": None,
                    "margin_2std": None,
                    "verdict": "not run",
                }
            )
            continue
        ra, rb = rows[f"{a[0]}/{a[1]}"], rows[f"{b[0]}/{b[1]}"]
        gap = ra["mean"] - rb["mean"]
        margin = 2 * max(ra["std"], rb["std"])
        verdict = (
            "reproduced" if gap > margin else "contradicted" if -gap > margin else "inconclusive"
        )
        verdicts.append(
            {
                "paper": paper,
                "claim": text,
                "a": ra["label"] + f" ({a[1]})",
                "b": rb["label"] + f" ({b[1]})",
                "gap": gap,
                "margin_2std": margin,
                "verdict": verdict,
            }
        )
    return verdicts


COLUMNS = [
    ("seg", "miou", "seg mIoU ↑"),
    ("seg", "pixel_acc", "seg pix acc ↑"),
    ("depth", "abs_err", "depth abs ↓"),
    ("depth", "rel_err", "depth rel ↓"),
    ("normal", "mean_deg", "normal mean° ↓"),
    ("normal", "median_deg", "normal median° ↓"),
    ("normal", "within_11_25", "normal <11.25° ↑"),
    ("keypoints", "abs_err", "keypoints abs ↓"),
    ("edges", "abs_err", "edges abs ↓"),
]


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    stats = mean_std(values)
    digits = 2 if abs(stats["mean"]) >= 1 else 4
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    cfg = result["preset"]
    lines = [
        f"Synthetic data ({cfg['n_train']} train / {cfg['n_val']} val images at "
        f"{cfg['size'][0]}x{cfg['size'][1]}), "
        f"width {cfg['width']}, {cfg['epochs']} epochs × {cfg['n_train'] // cfg['batch']} steps "
        f"of batch {cfg['batch']} "
        f"per run, seeds {', '.join(map(str, result['seeds']))}; final-epoch val metrics, mean ± "
        "std over seeds. "
        "Δm (%, higher = better) against the same seed's single-task networks.",
        "",
        "| method | head | " + " | ".join(c[2] for c in COLUMNS) + " | Δm % ↑ |",
        "|---|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for key, row in result["rows"].items():
        if key.startswith("best-balancer"):
            continue
        cells = []
        for task, metric, _ in COLUMNS:
            cells.append(
                _cell([s["metrics"][task][metric] for s in row["seeds"] if task in s["metrics"]])
            )
        dm = f"{row['mean']:+.2f} ± {row['std']:.2f}"
        lines.append(f"| {row['label']} | {row['head']} | " + " | ".join(cells) + f" | {dm} |")
    lines += ["", "| paper | claim | gap in Δm | 2 × std | verdict |", "|---|---|---:|---:|---|"]
    for v in result["claims"]:
        if v["verdict"] == "not run":
            lines.append(f"| {v['paper']} | {v['claim']} | - | - | not run |")
        else:
            lines.append(
                f"| {v['paper']} | {v['claim']} | {v['gap']:+.2f} | {v['margin_2std']:.2f} | "
                f"{v['verdict']} |"
            )
    if result.get("wall_time_s"):
        lines += [
            "",
            f"Grid wall time: {result['wall_time_s'] / 3600:.2f} h "
            f"({result['jobs']} parallel runs).",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- paper plan
PAPER_DATASETS: dict[str, dict[str, Any]] = {
    "nyuv2": {"n_train": 795, "tasks": ["seg", "depth", "normal"]},
    "cityscapes": {"n_train": 2975, "tasks": ["seg", "depth"]},
}


def training_gflops(recipe_path: Path, tasks: list[str]) -> float:
    """GFLOPs per training image at the recipe's size: 3 x the trained network's forward
    (forward + backward) + 1 x the frozen teachers' forward (counted on the meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edgemtl.core.config import load_recipe
    from edgemtl.core.tasks import make_spec
    from edgemtl.training.models.network import MultiTaskNet

    recipe = load_recipe(recipe_path, [f"tasks={tasks}"])
    specs = [
        make_spec(t, [f"c{i}" for i in range(13)]) if t == "seg" else make_spec(t) for t in tasks
    ]
    name, cfg = recipe.method.name, recipe.model
    heads = {
        "vanilla": ("teacher",),
        "kd4mtl": ("teacher",),
        "bam": ("teacher",),
        "kd_two_stage": ("student",),
    }.get(name, ("teacher", "student"))

    def forward_gflops(net: MultiTaskNet, run: Any) -> float:
        counter = FlopCounterMode(display=False)
        with counter:
            run(net)
        return counter.get_total_flops() / 1e9

    with torch.device("meta"):
        x = torch.empty(1, 3, *recipe.data.size)
        trained = forward_gflops(
            MultiTaskNet(specs, cfg.width, cfg.upsampling, cfg.decoder, heads=heads),
            lambda n: n(x, heads=heads),
        )
        frozen = 0.0
        if name == "kd_two_stage":  # the multi-task Teacher network
            frozen = forward_gflops(
                MultiTaskNet(specs, cfg.width, cfg.upsampling, cfg.decoder, heads=("teacher",)),
                lambda n: n(x),
            )
        elif name in (
            "kd4mtl",
            "bam",
        ):  # one single-task network per task (KD4MTL: its encoder only)
            for spec in specs:
                single = MultiTaskNet(
                    [spec], cfg.width, cfg.upsampling, cfg.decoder, heads=("teacher",)
                )
                frozen += forward_gflops(
                    single, (lambda n: n.encoder(x)) if name == "kd4mtl" else (lambda n: n(x))
                )
    return 3 * trained + frozen


def paper_plan(gpu_tflops: float) -> list[dict[str, Any]]:
    from edgemtl.core.config import load_recipe

    plan = []
    for ds, info in PAPER_DATASETS.items():
        variants = [("stl-" + t, f"{ds}-single-vanilla", [t]) for t in info["tasks"]]
        variants += [
            (k, f"{ds}-{k}" if k != "sd" else ds, info["tasks"])
            for k in (
                "vanilla",
                "lambda0",
                "kd-two-stage",
                "no-attention",
                "unet",
                "sd",
                "sd-ensemble",
                "kd4mtl",
                "bam",
                *BALANCER_RUNS,
            )
        ]
        variants += [(f"single-sd-{t}", f"{ds}-single", [t]) for t in info["tasks"][:2]]
        for key, recipe_name, tasks in variants:
            path = ROOT / "recipes" / f"{recipe_name}.yaml"
            recipe = load_recipe(path, [f"tasks={tasks}"])
            gflops = training_gflops(path, tasks)
            images = info["n_train"] * recipe.train.epochs
            hours = 3 * images * gflops / (gpu_tflops * 1e3) / 3600  # 3 seeds
            plan.append(
                {
                    "dataset": ds,
                    "run": key,
                    "recipe": f"recipes/{recipe_name}.yaml",
                    "tasks": tasks,
                    "size": list(recipe.data.size),
                    "width": recipe.model.width,
                    "epochs": recipe.train.epochs,
                    "batch": recipe.train.batch_size,
                    "train_gflops_per_image": round(gflops, 1),
                    "gpu_hours_3_seeds": round(hours, 2),
                }
            )
    return plan


def one_step_each(plan: list[dict[str, Any]]) -> list[str]:
    """Run one training step of every planned run on fixtures (tiny synthetic data, untrained
    teachers)."""
    import tempfile

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step import write_teachers

    from edgemtl.core.config import load_recipe
    from edgemtl.training.data import PreparedSplit, train_loader
    from edgemtl.training.methods import StepContext
    from edgemtl.training.trainer import Trainer

    torch.set_num_threads(1)
    done = []
    with tempfile.TemporaryDirectory() as tmp:
        teachers = write_teachers(Path(tmp), 0.125)
        for item in plan:
            tiny = [
                "data.kind=synthetic",
                "data.root_env=null",
                "data.size=[32,64]",
                "data.synthetic={n_train: 2, n_val: 2}",
                "data.workers=0",
                "model.width=0.125",
                "train.batch_size=2",
                "train.reference=null",
                f"tasks={item['tasks']}",
            ]
            name = Path(item["recipe"]).stem
            if "kd4mtl" in name or "bam" in name:
                tiny.append(
                    "method.teachers={"
                    + ", ".join(f"{t}: {teachers[t]}" for t in item["tasks"])
                    + "}"
                )
            if "two-stage" in name:
                tiny.append(f"method.teacher={teachers['mt']}")
            recipe = load_recipe(ROOT / item["recipe"], tiny)
            trainer = Trainer(recipe, Path(tmp) / "run", quiet=True)
            images, targets = next(
                iter(
                    train_loader(
                        PreparedSplit(trainer.train_reader, trainer.input_spec), 2, 0, 0, 0, 0
                    )
                )
            )
            logged = trainer.train_step(images, targets, StepContext(0, 1, 0, 1))
            if not math.isfinite(logged["total"]):
                raise RuntimeError(f"{item['dataset']} {item['run']}: non-finite loss")
            done.append(f"{item['dataset']}/{item['run']}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["cpu", "smoke", "paper"], default="cpu")
    parser.add_argument("--jobs", type=int, default=2, help="Runs in parallel (one thread each).")
    parser.add_argument(
        "--runs-dir", type=Path, help="Where the runs go (default runs/reproduce-<preset>)."
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="Seeds (the cpu preset needs exactly 3)."
    )
    parser.add_argument(
        "--gpu-tflops",
        type=float,
        default=100.0,
        help="paper: effective training TFLOP/s assumed per GPU.",
    )
    parser.add_argument(
        "--out", type=Path, help="Result JSON (default benchmarks/results/reproduce_<preset>.json)."
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="Only tabulate the finished runs in --runs-dir (a partial grid too).",
    )
    parser.add_argument(
        "--missing",
        action="store_true",
        help="Train only the rows the result JSON (--out) lacks, e.g. newly added balancers, "
        "and merge them into it (the other rows, timings and the single-task reference stay).",
    )
    parser.add_argument(
        "--only",
        help="Train just these runs (folder names, e.g. vanilla-s0,stl-seg-s0) and report their "
        "times.",
    )
    args = parser.parse_args()
    from edgemtl.core.io import atomic_write_json, atomic_write_text

    out = args.out or RESULTS / f"reproduce_{args.preset}.json"
    if args.preset == "paper":
        plan = paper_plan(args.gpu_tflops)
        total = sum(p["gpu_hours_3_seeds"] for p in plan)
        for p in plan:
            print(
                f"{p['dataset']:10s} {p['run']:16s} {p['recipe']:38s} {p['epochs']} ep, batch "
                f"{p['batch']}, "
                f"{p['size'][0]}x{p['size'][1]}, {p['train_gflops_per_image']:8.1f} GFLOP/img -> "
                f"{p['gpu_hours_3_seeds']:6.1f} GPU h"
            )
        print(
            f"{len(plan)} runs x 3 seeds: about {total:.0f} GPU hours at {args.gpu_tflops:g} "
            "effective TFLOP/s (an estimate)"
        )
        steps = one_step_each(plan)
        print(f"one training step on fixtures: {len(steps)} runs OK")
        atomic_write_json(
            out,
            {
                "preset": "paper",
                "gpu_tflops_assumed": args.gpu_tflops,
                "plan": plan,
                "gpu_hours_total": total,
                "one_step_ok": steps,
            },
        )
        return
    if args.preset == "cpu" and args.seeds != 3:
        parser.error("--preset cpu runs exactly 3 seeds")
    preset = PRESETS[args.preset]
    seeds = tuple(range(args.seeds))
    runs_dir = args.runs_dir or ROOT / "runs" / f"reproduce-{args.preset}"
    if args.report:
        rows = collect(runs_dir, seeds)
        result = {
            "schema_version": 1,
            "preset": {"name": args.preset, **preset},
            "seeds": list(seeds),
            "jobs": args.jobs,
            "partial": len(rows) < len(ROWS),
            "rows": rows,
            "claims": judge(rows),
        }
        if out.is_file():  # re-judging finished runs keeps the timings of the run that trained them
            previous = json.loads(out.read_text())
            result.update({k: previous[k] for k in ("wall_time_s", "run_times_s") if k in previous})
        atomic_write_json(out, result)
        atomic_write_text(out.with_suffix(".md"), markdown(result))
        print(markdown(result))
        return
    start = time.perf_counter()
    runs = grid(seeds)
    if args.missing:
        previous = json.loads(out.read_text()) if out.is_file() else {}
        log = runs_dir.parent / f"reproduce-{args.preset}.log"
        changed = same_code_check(previous.get("rows", {}), preset, runs_dir, log)
        if changed:
            sys.exit(
                f"--missing: {changed}; the code no longer reproduces {out.name}: run the "
                "whole grid instead (without --missing, in a new --runs-dir)"
            )
        chosen = missing_runs(runs, previous.get("rows", {}))
        print(f"missing rows: {len(chosen)} runs to train", file=sys.stderr)
        timings = run_grid(
            chosen, preset, runs_dir, args.jobs, runs_dir.parent / f"reproduce-{args.preset}.log"
        )
        rows = collect(runs_dir, seeds, previous.get("rows", {}))
        result = {
            "schema_version": 1,
            "preset": {"name": args.preset, **preset},
            "seeds": list(seeds),
            "jobs": args.jobs,
            "wall_time_s": round(previous.get("wall_time_s", 0.0) + time.perf_counter() - start, 1),
            "run_times_s": {**previous.get("run_times_s", {}), **timings},
            "rows": rows,
            "claims": judge(rows),
        }
        atomic_write_json(out, result)
        atomic_write_text(out.with_suffix(".md"), markdown(result))
        print(markdown(result))
        return
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [r for r in runs if r.folder(runs_dir).name in wanted]
        for r in chosen:
            r.needs = []
        timings = run_grid(
            chosen, preset, runs_dir, args.jobs, runs_dir.parent / f"reproduce-{args.preset}.log"
        )
        print(json.dumps({"preset": args.preset, "jobs": args.jobs, "run_times_s": timings}))
        return
    timings = run_grid(
        runs, preset, runs_dir, args.jobs, runs_dir.parent / f"reproduce-{args.preset}.log"
    )
    rows = collect(runs_dir, seeds)
    result = {
        "schema_version": 1,
        "preset": {"name": args.preset, **preset},
        "seeds": list(seeds),
        "jobs": args.jobs,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "run_times_s": timings,
        "rows": rows,
        "claims": judge(rows),
    }
    atomic_write_json(out, result)
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

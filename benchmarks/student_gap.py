"""Student-Teacher gap: how close each Student design gets to its Teacher, and at what cost.

    python benchmarks/student_gap.py [--jobs 2] [--work ~/student-gap]     # quick-start budget
    python benchmarks/student_gap.py --preset smoke --work /tmp/sg         # the same steps, tiny
    nohup python benchmarks/student_gap.py --jobs 2 > sg.log 2>&1 &        # in the background

Every configuration trains `recipes/synthetic.yaml` at the quick-start budget
(12 epochs, 512 images, 64x128, width 1/8) with the overrides of `CONFIGS`: the
default Student (`DEFAULT`), the first default (`skip-s2-transpose`) and the
paper Student with 3 seeds, every other configuration with 1. Each run's Teacher
is compared with the paper-Student run's Teacher of the same seed.
Each run's `best.pt` (selected on the validation split) is scored on a separate
test split (256 synthetic scenes of another generator seed, never seen by
training or selection), every head is exported to FP32 ONNX, and all heads of
the run are timed together with ONNX Runtime on the CPU (batch 1, 1 thread, heads
interleaved, >= 300 iterations each) after every training has finished, so no
training competes with the timing. Per head: params, GFLOPs, p50 latency, every
task metric, each task's Δm term and Δm against the same run's Teacher
(docs/formats.md "delta_m"). Then one `edgemtl profile` of the paper Student and
the exits run's Student (FP32 and INT8), exits and Teacher draws the Pareto
plot. Writes benchmarks/results/student_gap.{json,md} and student_gap_pareto.png.

Resumable: every finished step leaves a file in the work folder (summary.json,
test_eval.json, bundles, profile.json) and is skipped when run again.
"""

from __future__ import annotations

import argparse
import json
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
from edgemtl.core.heads import STUDENT, TEACHER  # noqa: E402 (after the path insert)
from edgemtl.evaluation.metrics import delta_m  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECIPE = ROOT / "recipes" / "synthetic.yaml"
SEEDS = (0, 1, 2)
TEST_SEED = 1000  # generator seed of the test split (training data uses seed 0)

#: Budgets. quickstart: recipes/synthetic.yaml as the quick start trains it.
PRESETS: dict[str, dict[str, Any]] = {
    "quickstart": {"overrides": [], "test_images": 256, "iterations": 300},
    "smoke": {
        "overrides": [
            "data.size=[32,64]",
            "data.synthetic.n_train=16",
            "data.synthetic.n_val=8",
            "train.epochs=1",
            "train.batch_size=4",
        ],
        "test_images": 8,
        "iterations": 5,
    },
}

SKIP = ["model.student.kind=skip"]


@dataclass(frozen=True)
class Config:
    """One Student design: recipe overrides on top of recipes/synthetic.yaml."""

    name: str
    what: str
    overrides: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)


#: The default Student of recipes/synthetic.yaml (docs/methods.md "Student kinds" says why).
DEFAULT = "skip-default"
S2 = (*SKIP, "model.student.shared_stages=2")  # the first default; the variants below start from it
CONFIGS: list[Config] = [
    Config(
        DEFAULT,
        "skip, shared stage 1, per-task 2-4, conv1x1 + bilinear Resize, smoothing",
        (*SKIP, "model.student.shared_stages=1", "model.student.upsample=resize"),
        SEEDS,
    ),
    Config(
        "skip-s2-transpose",
        "skip, shared stages 1-2, per-task 3-4, ConvTranspose, smoothing",
        S2,
        SEEDS,
    ),
    Config(
        "paper",
        "SD-MTCNN Student (1/16 bottleneck only)",
        ("model.student.kind=paper",),
        SEEDS,  # its Teachers are the reference of every other run's Teacher, seed by seed
    ),
    Config(
        "skip-per-task",
        "skip, all stages per task, ConvTranspose",
        (*SKIP, "model.student.shared_stages=0"),
    ),
    Config(
        "skip-shared-neck",
        "skip, one shared neck, per-task output convs, ConvTranspose",
        (*SKIP, "model.student.shared_stages=4"),
    ),
    Config(
        "skip-resize",
        "skip-s2-transpose with conv1x1 + bilinear Resize up-stages",
        (*S2, "model.student.upsample=resize"),
    ),
    Config(
        "skip-no-smooth",
        "skip-s2-transpose without the conv3x3 after each skip",
        (*S2, "model.student.smooth=false"),
    ),
    Config(
        "skip-half-width",
        "skip-s2-transpose at half the Student width",
        (*S2, "model.student.width=0.5"),
    ),
    Config(
        "skip-feature-kd",
        "skip-s2-transpose + feature distillation (weight 1, all taps)",
        (*S2, "method.feature_distill.weight=1"),
    ),
    Config(
        "skip-exits",
        "skip-s2-transpose + decoder exits 1-3",
        (*S2, "model.exits=[1,2,3]"),
    ),
]


@dataclass
class Run:
    config: Config
    seed: int
    folder: Path
    log: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.config.name}-s{self.seed}"


def _cli(args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    """`python -m edgemtl ARGS`, output appended to `log`; a failure raises with its last lines."""
    full_env = {**os.environ, **(env or {}), "COLUMNS": "120"}
    with open(log, "a") as out:
        out.write(f"$ edgemtl {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(
            [sys.executable, "-m", "edgemtl", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-5:]
        raise RuntimeError(f"edgemtl {args[0]} failed ({proc.returncode}): " + " | ".join(tail))


def bundle_dir(folder: Path, head: str) -> Path:
    """Where a run's head is exported: `<run>/bundles/<run>-<head>` (profile labels show it)."""
    return folder / "bundles" / f"{folder.name}-{head}"


def _heads(folder: Path) -> list[str]:
    summary = json.loads((folder / "summary.json").read_text())
    return list(summary["final"])


def train_and_export(run: Run, preset: dict[str, Any], test_root: Path, threads: int) -> None:
    """Train (1 thread per job), score best.pt on the test split, export every head (FP32)."""
    folder, log = run.folder, run.folder.with_suffix(".log")
    if not (folder / "summary.json").is_file():
        overrides = [
            *preset["overrides"],
            *run.config.overrides,
            f"train.seed={run.seed}",
            f"train.threads={threads}",
            "data.workers=0",
        ]
        sets = [item for o in overrides for item in ("--set", o)]
        resume = ["--resume"] if (folder / "last.pt").is_file() else []
        _cli(["train", str(RECIPE), "--out", str(folder), "--quiet", *resume, *sets], log)
    if not (folder / "test_eval.json").is_file():
        _cli(
            [
                "eval",
                str(folder / "best.pt"),
                "--head",
                "all",
                "--data",
                str(test_root),
                "--json",
                str(folder / "test_eval.json"),
                "--quiet",
            ],
            log,
        )
    for head in _heads(folder):
        bundle = bundle_dir(folder, head)
        if not (bundle / "manifest.json").is_file():
            _cli(
                [
                    "export",
                    str(folder / "best.pt"),
                    "--head",
                    head,
                    "--out",
                    str(bundle),
                    "--samples",
                    "2",
                    "--no-trt",
                    "--quiet",
                ],
                log,
            )


def profile_run(run: Run, preset: dict[str, Any]) -> None:
    """All heads of one run timed together: ONNX Runtime CPU, batch 1, 1 thread."""
    out = run.folder / "profile.json"
    if out.is_file():
        return
    bundles = [str(bundle_dir(run.folder, head)) for head in _heads(run.folder)]
    _cli(
        [
            "profile",
            *bundles,
            "--precision",
            "fp32",
            "--threads",
            "1",
            "-n",
            str(preset["iterations"]),
            "--rounds",
            "5",
            "--warmup",
            "20",
            "--no-power",
            "--idle",
            "0",
            "--json",
            str(out),
            "--quiet",
        ],
        run.folder.with_suffix(".log"),
    )


def run_result(run: Run) -> dict[str, Any]:
    """Per head: params, GFLOPs, p50 ms, metrics, Δm terms and Δm vs the run's Teacher."""
    scores = json.loads((run.folder / "test_eval.json").read_text())["heads"]
    profile = json.loads((run.folder / "profile.json").read_text())
    timing = {a["head"]: a for a in profile["artifacts"]}
    teacher = scores[TEACHER]
    teacher_ms = timing[TEACHER]["rows"][0]["latency"]["median_ms"]
    heads: dict[str, Any] = {}
    for head, metrics in scores.items():
        art = timing[head]
        ms = art["rows"][0]["latency"]["median_ms"]
        tasks = {t: m for t, m in metrics.items() if isinstance(m, dict)}
        heads[head] = {
            "params": art["params"],
            "gflops": (art["flops"] or 0) / 1e9,
            "p50_ms": ms,
            "latency_ratio": ms / teacher_ms,
            "metrics": tasks,
            "delta_m_terms": {t: delta_m({t: m}, {t: teacher[t]}) for t, m in tasks.items()},
            "delta_m_vs_teacher": delta_m(tasks, teacher),
        }
    summary = json.loads((run.folder / "summary.json").read_text())
    return {
        "config": run.config.name,
        "seed": run.seed,
        "heads": heads,
        "train_wall_s": summary["wall_time_s"],
        "best_epoch": summary["best_epoch"],
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per configuration and head: mean (and std over seeds) of the run results."""
    out: dict[str, Any] = {}
    for config in CONFIGS:
        mine = [r for r in runs if r["config"] == config.name]
        if not mine:
            continue
        heads: dict[str, Any] = {}
        for head in mine[0]["heads"]:
            rows = [r["heads"][head] for r in mine if head in r["heads"]]
            dm, dm_std = _mean_std([r["delta_m_vs_teacher"] for r in rows])
            heads[head] = {
                "delta_m_vs_teacher": dm,
                "delta_m_std": dm_std,
                "delta_m_terms": {
                    t: statistics.fmean(r["delta_m_terms"][t] for r in rows)
                    for t in rows[0]["delta_m_terms"]
                },
                "latency_ratio": statistics.fmean(r["latency_ratio"] for r in rows),
                "p50_ms": statistics.fmean(r["p50_ms"] for r in rows),
                "params": rows[0]["params"],
                "gflops": rows[0]["gflops"],
            }
        teacher_vs_paper = None
        paper = {r["seed"]: r for r in runs if r["config"] == "paper"}
        if paper and config.name != "paper":
            # seed-matched: the same seed gives both runs the same data order and encoder
            # initialisation, so the difference is the Student's doing, not the seed's
            teacher_vs_paper = statistics.fmean(
                delta_m(
                    r["heads"][TEACHER]["metrics"],
                    paper.get(r["seed"], paper[min(paper)])["heads"][TEACHER]["metrics"],
                )
                for r in mine
            )
        out[config.name] = {
            "what": config.what,
            "overrides": list(config.overrides),
            "seeds": [r["seed"] for r in mine],
            "heads": heads,
            "teacher_delta_m_vs_paper_teacher": teacher_vs_paper,
        }
    return out


def default_block(configs: dict[str, Any]) -> dict[str, Any] | None:
    """The acceptance figures of the default Student (mean of its seeds)."""
    block = configs.get(DEFAULT)
    if block is None:
        return None
    student = block["heads"][STUDENT]
    return {
        "config": DEFAULT,
        "overrides": block["overrides"],
        "seeds": block["seeds"],
        "student_delta_m_vs_teacher": student["delta_m_vs_teacher"],
        "std": student["delta_m_std"],
        "delta_m_terms": student["delta_m_terms"],
        "latency_ratio": student["latency_ratio"],
        "teacher_delta_m_vs_paper_teacher": block["teacher_delta_m_vs_paper_teacher"],
    }


def pareto_profile(work: Path, preset: dict[str, Any], test_root: Path) -> Path | None:
    """One profile of the paper Student and the exits run's Student (FP32, INT8), exits and
    Teacher, accuracy on the test split, Δm against that Teacher: the README's Pareto plot."""
    exits = work / "runs" / "skip-exits-s0"
    paper = work / "runs" / "paper-s0"
    if not (exits / "summary.json").is_file() or not (paper / "summary.json").is_file():
        return None
    student = bundle_dir(exits, STUDENT)
    log = work / "pareto.log"
    if not (student / f"{STUDENT}.int8.onnx").is_file():
        _cli(["export", str(student), "--int8", "--calib", "64", "--samples", "2", "--quiet"], log)
    out = work / "pareto.json"
    plot = RESULTS / (
        "student_gap_pareto.png"
        if preset is PRESETS["quickstart"]
        else "student_gap_pareto_smoke.png"
    )
    if not out.is_file():
        bundles = [str(bundle_dir(exits, h)) for h in _heads(exits) if h != "ensemble"]
        _cli(
            [
                "profile",
                *bundles,
                str(bundle_dir(paper, STUDENT)),
                "--accuracy",
                "--data",
                str(test_root),
                "--threads",
                "1",
                "-n",
                str(preset["iterations"]),
                "--rounds",
                "5",
                "--warmup",
                "20",
                "--no-power",
                "--idle",
                "0",
                "--json",
                str(out),
                "--plot",
                str(plot),
                "--quiet",
            ],
            log,
        )
    return plot


def markdown(result: dict[str, Any]) -> str:
    """The README table: one row per configuration and head (Students, exits, Teacher)."""
    lines = [
        f"Test split ({result['test_images']} synthetic scenes of generator seed {TEST_SEED}), "
        f"best.pt of each run; latency: ONNX Runtime {result['onnxruntime']} CPU FP32, batch 1, "
        f"1 thread, heads of a run interleaved ({result['iterations']} iterations); "
        f"{result['machine']}. Δm vs the same run's Teacher, mean over seeds (± std).",
        "",
        "| configuration | head | seeds | Δm vs Teacher % | seg | depth | normal | keypoints | "
        "edges | latency × Teacher | p50 ms | params M | GFLOPs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, block in result["configs"].items():
        for head, h in block["heads"].items():
            if head in ("ensemble",) or (head == TEACHER and name != DEFAULT):
                continue
            terms = [
                f"{h['delta_m_terms'].get(t, float('nan')):+.1f}"
                for t in ("seg", "depth", "normal", "keypoints", "edges")
            ]
            std = f" ± {h['delta_m_std']:.1f}" if len(block["seeds"]) > 1 else ""
            label = f"**{name}**" if name == DEFAULT else name
            lines.append(
                f"| {label} | {head} | {len(block['seeds'])} | "
                f"{h['delta_m_vs_teacher']:+.1f}{std} | "
                + " | ".join(terms)
                + f" | {h['latency_ratio']:.2f} | {h['p50_ms']:.2f} | {h['params'] / 1e6:.3f} | "
                f"{h['gflops']:.3f} |"
            )
    lines += ["", "Configurations (overrides of recipes/synthetic.yaml):", ""]
    lines += [
        f"- `{name}`: {block['what']} (`{' '.join(block['overrides'])}`)"
        for name, block in result["configs"].items()
    ]
    d = result.get("default")
    if d:
        paper = d["teacher_delta_m_vs_paper_teacher"]
        lines += [
            "",
            f"Default (`{d['config']}`): Student Δm {d['student_delta_m_vs_teacher']:+.2f} % "
            f"± {d['std']:.2f} vs its Teacher at {d['latency_ratio']:.2f}× the Teacher's "
            "latency"
            + (
                ""
                if paper is None
                else f"; its Teacher is {paper:+.2f} % (Δm) from the paper-Student runs' Teachers "
                "of the same seeds"
            )
            + ".",
        ]
    teachers = [
        f"{name} {block['teacher_delta_m_vs_paper_teacher']:+.2f} %"
        for name, block in result["configs"].items()
        if block.get("teacher_delta_m_vs_paper_teacher") is not None
    ]
    if teachers:
        lines += [
            "",
            "Each run's Teacher against the paper-Student run's Teacher of the same seed (Δm, "
            "mean over seeds; a seed without a paper run is compared with paper seed 0; exits "
            "train the first Teacher stages too): " + ", ".join(teachers) + ".",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quickstart")
    parser.add_argument("--work", type=Path, default=Path.home() / "edgemtl-student-gap")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (1 thread each)")
    parser.add_argument("--only", nargs="*", help="configuration names (default: all)")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    work = args.work / args.preset
    (work / "runs").mkdir(parents=True, exist_ok=True)
    env_cache = os.environ.setdefault("EDGEMTL_CACHE", str(work / "cache"))
    test_root = work / "test"
    if not (test_root / "val").is_dir():
        size = "32x64" if args.preset == "smoke" else "64x128"
        _cli(
            [
                "data",
                "synth",
                str(test_root),
                "--n-train",
                "1",
                "--n-val",
                str(preset["test_images"]),
                "--size",
                size,
                "--seed",
                str(TEST_SEED),
                "--quiet",
            ],
            work / "test.log",
        )
    runs = [
        Run(c, s, work / "runs" / f"{c.name}-s{s}")
        for c in CONFIGS
        for s in c.seeds
        if not args.only or c.name in args.only
    ]
    start = time.time()
    print(f"{len(runs)} runs in {work} (cache {env_cache}), {args.jobs} at a time", flush=True)

    def one(run: Run) -> None:
        t0 = time.time()
        train_and_export(run, preset, test_root, threads=1 if args.jobs > 1 else 2)
        print(f"trained {run.key} in {time.time() - t0:.0f} s", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, runs))
    for run in runs:  # timing alone, one run after the other
        profile_run(run, preset)
        print(f"profiled {run.key}", flush=True)
    results = [run_result(run) for run in runs]
    configs = aggregate(results)
    plot = pareto_profile(work, preset, test_root)
    import platform

    import onnxruntime

    result = {
        "preset": args.preset,
        "test_images": preset["test_images"],
        "iterations": preset["iterations"],
        "onnxruntime": onnxruntime.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "wall_s": round(time.time() - start, 1),
        "default": default_block(configs),
        "configs": configs,
        "runs": results,
        "pareto_plot": None if plot is None else str(plot.relative_to(ROOT)),
    }
    name = "student_gap" if args.preset == "quickstart" else f"student_gap_{args.preset}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

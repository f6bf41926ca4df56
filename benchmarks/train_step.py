"""Training-step cost of every method and loss balancer: seconds per step, img/s and peak memory.

A step is what the trainer does (`edgemtl.training.step.TrainStep`): the method's
forward (frozen teachers included), its loss terms, the balancer's backward
(per-task gradients for GradNorm, MGDA-UB, PCGrad and the torchjd aggregators)
and an Adam step. Every balancer has a row on the vanilla network. Same width,
input size, batch and threads for every row; each row runs in its own
subprocess (a clean peak-memory figure);
warm-up steps are excluded. Teachers are untrained checkpoints of the same width:
their cost does not depend on training. Writes benchmarks/results/train_step.json;
`python benchmarks/readme_tables.py` renders the README table from it.

    python benchmarks/train_step.py [--steps 10] [--width 0.125] [--size 64x128] [--batch 8] \
        [--threads 2] [--repeats 3]     # about 17 minutes on an idle 2-core machine
    python benchmarks/train_step.py --rows vanilla,sd --device cuda --out /tmp/train_step_cuda.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgemtl.core.config import BALANCER_NAMES

RESULTS = Path(__file__).resolve().parent / "results" / "train_step.json"
TASKS = ["seg", "depth", "normal", "keypoints", "edges"]

#: row name -> (method section, balancer name). "{mt}" / "{st}" name the teacher
#: checkpoints written below.
ROWS: dict[str, tuple[dict[str, Any], str]] = {
    "vanilla": ({"name": "vanilla"}, "equal"),
    "sd": ({"name": "sd"}, "equal"),
    "sd_ensemble": ({"name": "sd_ensemble"}, "equal"),
    "kd_two_stage": ({"name": "kd_two_stage", "teacher": "{mt}"}, "equal"),
    "kd4mtl": ({"name": "kd4mtl", "teachers": "{st}"}, "equal"),
    "kd4mtl mid+last nonlinear": (
        {"name": "kd4mtl", "teachers": "{st}", "layers": "mid+last", "adaptor": "nonlinear"},
        "equal",
    ),
    "bam": ({"name": "bam", "teachers": "{st}"}, "equal"),
    **{f"vanilla + {b}": ({"name": "vanilla"}, b) for b in BALANCER_NAMES if b != "equal"},
    "sd + mgda": ({"name": "sd"}, "mgda"),
    "sd + pcgrad": ({"name": "sd"}, "pcgrad"),
}

#: What a row's optimizer trains, for the table.
TRAINED = {
    "vanilla": "teacher",
    "sd": "teacher + student",
    "sd_ensemble": "teacher + student",
    "kd_two_stage": "stage-2 student network",
    "kd4mtl": "teacher + adaptors",
    "bam": "teacher",
}


def specs():  # type: ignore[no-untyped-def]
    from edgemtl.core.tasks import make_spec
    from edgemtl.data.synthetic import CLASS_NAMES

    return [make_spec("seg", list(CLASS_NAMES))] + [make_spec(k) for k in TASKS[1:]]


def write_teachers(folder: Path, width: float) -> dict[str, str]:
    """Untrained teacher checkpoints: one 5-task network, one single-task network per task."""
    from edgemtl.core.config import recipe_from_dict
    from edgemtl.data.preprocess import InputSpec
    from edgemtl.training.checkpoint import save_checkpoint
    from edgemtl.training.models.network import MultiTaskNet

    all_specs = specs()
    paths = {}
    for name, chosen in [("mt", all_specs)] + [(s.key, [s]) for s in all_specs]:
        recipe = recipe_from_dict(
            {
                "tasks": [s.key for s in chosen],
                "model": {"width": width},
                "method": {"name": "vanilla"},
            }
        )
        net = MultiTaskNet(chosen, width, heads=("teacher",))
        path = folder / f"{name}.pt"
        save_checkpoint(
            path,
            {
                "recipe": recipe.dump(),
                "tasks": {s.key: s.to_dict() for s in chosen},
                "heads": ["teacher"],
                "model": net.state_dict(),
                "data": {"kind": "synthetic"},
                "select": {"head": "teacher", "metric": "delta_m"},
                "input": InputSpec(
                    64, 128
                ).to_dict(),  # fully convolutional: the size is only recorded
            },
        )
        paths[name] = str(path)
    return paths


def measure(
    row: str,
    teachers: dict[str, str],
    width: float,
    height: int,
    width_px: int,
    batch: int,
    steps: int,
    warmup: int,
    threads: int,
    device: str,
) -> dict[str, Any]:
    """One row's steps in this process (called in a child)."""
    import torch

    from edgemtl.core.config import recipe_from_dict
    from edgemtl.training.amp import Precision
    from edgemtl.training.distributed import Dist
    from edgemtl.training.methods import StepContext, build_method
    from edgemtl.training.methods.balancers import build_balancer
    from edgemtl.training.step import TrainStep

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    method_cfg, balancer = ROWS[row]
    method_cfg = dict(method_cfg)
    if method_cfg.get("teacher") == "{mt}":
        method_cfg["teacher"] = teachers["mt"]
    if method_cfg.get("teachers") == "{st}":
        method_cfg["teachers"] = {k: teachers[k] for k in TASKS}
    recipe = recipe_from_dict(
        {
            "tasks": TASKS,
            "model": {"width": width},
            "method": method_cfg,
            "train": {"balancer": {"name": balancer}, "batch_size": batch},
            "data": {"size": [height, width_px], "mean": [0.5] * 3, "std": [0.25] * 3},
        }
    )
    all_specs = specs()
    method = build_method(recipe, all_specs)
    net = method.build_model().to(device).train()
    bal = build_balancer(recipe.train.balancer, {k: 1.0 for k in TASKS})
    method.cut_shared = bal.needs_representation
    groups = method.parameter_groups(net)
    seen = {id(p) for g in groups for p in g["params"]}
    for module in (method.extra_module(), bal.module()):
        if module is not None:
            module.to(device)
            extra = [p for p in module.parameters() if id(p) not in seen]
            if extra:
                groups.append({"params": extra})
    optimizer = torch.optim.Adam(groups, lr=1e-4)
    x = torch.randn(batch, 3, height, width_px, device=device)
    targets = {
        "seg": torch.randint(0, all_specs[0].channels, (batch, height, width_px), device=device),
        "depth": torch.rand(batch, 1, height, width_px, device=device) + 1,
        "normal": torch.nn.functional.normalize(
            torch.randn(batch, 3, height, width_px, device=device), dim=1
        ),
        "keypoints": torch.rand(batch, 1, height, width_px, device=device),
        "edges": torch.rand(batch, 1, height, width_px, device=device),
    }
    ctx = StepContext(0, 2, 1, 2)
    train_step = TrainStep(
        recipe.train,
        net,
        method,
        bal,
        optimizer,
        Precision("off", torch.device(device)),
        Dist(),
    )

    def step() -> None:
        train_step(x, targets, ctx)

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times = [], []
    for _ in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    times.sort()
    cpu_times.sort()
    median = times[len(times) // 2]
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "row": row,
        "method": recipe.method.name,
        "balancer": balancer,
        "s_per_step_median": median,
        "s_per_step_mean": sum(times) / len(times),
        "cpu_s_per_step_median": cpu_times[len(cpu_times) // 2],
        "img_per_s": batch / median,
        "peak_mem_mib": round(peak, 1),
        "peak_mem_kind": "cuda max_memory_allocated" if device == "cuda" else "process max RSS",
        "trained_params_m": sum(p.numel() for g in groups for p in g["params"]) / 1e6,
    }


def combine(rounds: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """One row from its rounds: median of the per-round medians, the largest peak memory."""
    row = dict(rounds[0])
    for key in ("s_per_step_median", "cpu_s_per_step_median"):
        row[key] = statistics.median(r[key] for r in rounds)
    row["s_per_step_mean"] = statistics.fmean(r["s_per_step_mean"] for r in rounds)
    row["s_per_step_rounds"] = [round(r["s_per_step_median"], 4) for r in rounds]
    row["img_per_s"] = batch / row["s_per_step_median"]
    row["peak_mem_mib"] = max(r["peak_mem_mib"] for r in rounds)
    return row


def markdown(result: dict[str, Any]) -> str:
    """The README table (regenerated by benchmarks/readme_tables.py)."""
    cfg, env = result["config"], result["environment"]
    base = result["rows"][0]["s_per_step_median"]
    lines = [
        f"width {cfg['width']}, {cfg['size']}, batch {cfg['batch']}, 5 tasks, {cfg['threads']} "
        f"thread(s), {cfg['device']} "
        f"({env['cpu']}, load average {env['loadavg']} at start), median wall time of "
        f"{cfg['steps']} steps after "
        f"{cfg['warmup']} warm-up"
        + (
            f", median of {cfg['repeats']} rounds over all rows (rows interleaved)"
            if cfg.get("repeats", 1) > 1
            else ""
        )
        + ":",
        "",
        "| method | balancer | trains | trained params M | s/step | × vanilla | img/s "
        "| peak memory MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        label = row["row"].split(" + ")[0]
        lines.append(
            f"| {label} | {row['balancer']} | {TRAINED[row['method']]} | "
            f"{row['trained_params_m']:.2f} "
            f"| {row['s_per_step_median']:.3f} | {row['s_per_step_median'] / base:.2f} | "
            f"{row['img_per_s']:.1f} "
            f"| {row['peak_mem_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--size", default="64x128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--rows",
        help="Comma-separated subset of rows, the first is the × baseline (default: all of "
        f"{', '.join(ROWS)}).",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds over all rows (rows interleaved, so a slow spell of a shared machine "
        "does not land on one row); a row's figure is the median of its rounds",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--teachers", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from edgemtl.core.threads import openmp_like_the_cli

    openmp_like_the_cli()  # before PyTorch loads, as the CLI does (children inherit it)
    height, width_px = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        row = measure(
            args.child,
            json.loads(args.teachers),
            args.width,
            height,
            width_px,
            args.batch,
            args.steps,
            args.warmup,
            args.threads,
            args.device,
        )
        print(json.dumps(row))
        return
    names = args.rows.split(",") if args.rows else list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(
            f"--rows: unknown row(s) {', '.join(unknown)}; expected some of: {', '.join(ROWS)}"
        )
    runs: dict[str, list[dict[str, Any]]] = {}
    load_start = os.getloadavg()[0]
    # Only KD rows read teacher checkpoints; at full width each one is hundreds of MB.
    needs_teachers = any("{" in str(v) for n in names for v in ROWS[n][0].values())
    with tempfile.TemporaryDirectory() as tmp:
        teachers = write_teachers(Path(tmp), args.width) if needs_teachers else {}
        for round_, name in ((r, n) for r in range(args.repeats) for n in names):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                name,
                "--teachers",
                json.dumps(teachers),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--width",
                str(args.width),
                "--size",
                args.size,
                "--batch",
                str(args.batch),
                "--threads",
                str(args.threads),
                "--device",
                args.device,
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs.setdefault(name, []).append(json.loads(out.strip().splitlines()[-1]))
            print(
                f"round {round_ + 1}/{args.repeats} {name}: "
                f"{runs[name][-1]['s_per_step_median']:.3f} s/step, "
                f"{runs[name][-1]['peak_mem_mib']:.0f} MiB",
                file=sys.stderr,
            )
    rows = [combine(runs[name], args.batch) for name in names]
    import torch

    from edgemtl.core.io import atomic_write_json

    result = {
        "schema_version": 2,
        "config": {
            "width": args.width,
            "size": args.size,
            "batch": args.batch,
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "threads": args.threads,
            "device": args.device,
        },
        "environment": {
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "loadavg": round(load_start, 2),
        },
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    print(markdown(result))


if __name__ == "__main__":
    main()

"""Training-step cost of every method and loss balancer: seconds per step and peak memory.

Complements benchmarks/train_step.py (vanilla vs sd): same width, input size,
batch and thread defaults, one subprocess per row (a clean peak-memory figure),
warm-up steps excluded. A step is what the trainer does: the method's forward
(frozen teachers included), its loss terms, the balancer's backward (per-task
gradients for GradNorm / MGDA-UB / PCGrad) and an Adam step. Teachers are
untrained checkpoints of the same width: their cost does not depend on training.
Writes benchmarks/results/train_step_methods.json (+ .md).

    python benchmarks/train_step_methods.py [--steps 10] [--width 0.125] [--size 64x128] [--batch 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "train_step_methods.json"
TASKS = ["seg", "depth", "normal", "keypoints", "edges"]

#: row name -> (method section, balancer name)
ROWS: dict[str, tuple[dict, str]] = {
    "vanilla": ({"name": "vanilla"}, "equal"),
    "sd (Eq. 5)": ({"name": "sd"}, "equal"),
    "sd_ensemble (Eq. 6)": ({"name": "sd_ensemble"}, "equal"),
    "kd_two_stage (stage 2)": ({"name": "kd_two_stage", "teacher": "{mt}"}, "equal"),
    "kd4mtl last, linear": ({"name": "kd4mtl", "teachers": "{st}"}, "equal"),
    "kd4mtl mid+last, nonlinear": ({"name": "kd4mtl", "teachers": "{st}", "layers": "mid+last", "adaptor": "nonlinear"}, "equal"),
    "bam": ({"name": "bam", "teachers": "{st}"}, "equal"),
    "vanilla + uncertainty": ({"name": "vanilla"}, "uncertainty"),
    "vanilla + dwa": ({"name": "vanilla"}, "dwa"),
    "vanilla + gradnorm": ({"name": "vanilla"}, "gradnorm"),
    "vanilla + mgda": ({"name": "vanilla"}, "mgda"),
    "vanilla + pcgrad": ({"name": "vanilla"}, "pcgrad"),
    "sd + mgda": ({"name": "sd"}, "mgda"),
    "sd + pcgrad": ({"name": "sd"}, "pcgrad"),
}


def specs():  # type: ignore[no-untyped-def]
    from edgemtl.data.synthetic import CLASS_NAMES
    from edgemtl.tasks import make_spec

    return [make_spec("seg", list(CLASS_NAMES))] + [make_spec(k) for k in TASKS[1:]]


def write_teachers(folder: Path, width: float) -> dict[str, str]:
    """Untrained teacher checkpoints: one 5-task network, one single-task network per task."""
    from edgemtl.checkpoint import save_checkpoint
    from edgemtl.config import recipe_from_dict
    from edgemtl.models.network import MultiTaskNet

    all_specs = specs()
    paths = {}
    for name, chosen in [("mt", all_specs)] + [(s.key, [s]) for s in all_specs]:
        recipe = recipe_from_dict({"tasks": [s.key for s in chosen], "model": {"width": width}, "method": {"name": "vanilla"}})
        net = MultiTaskNet(chosen, width, heads=("teacher",))
        path = folder / f"{name}.pt"
        save_checkpoint(path, {
            "recipe": recipe.dump(), "tasks": {s.key: s.to_dict() for s in chosen}, "heads": ["teacher"],
            "model": net.state_dict(), "data": {"kind": "synthetic"}, "select": {"head": "teacher"},
            "input": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        })
        paths[name] = str(path)
    return paths


def measure(row: str, teachers: dict[str, str], width: float, height: int, width_px: int, batch: int, steps: int,
            warmup: int, threads: int, device: str) -> dict:
    """One row's steps in this process (called in a child)."""
    import torch

    from edgemtl.config import recipe_from_dict
    from edgemtl.methods import StepContext, build_method
    from edgemtl.methods.balancers import build_balancer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    method_cfg, balancer = ROWS[row]
    method_cfg = dict(method_cfg)
    if method_cfg.get("teacher") == "{mt}":
        method_cfg["teacher"] = teachers["mt"]
    if method_cfg.get("teachers") == "{st}":
        method_cfg["teachers"] = {k: teachers[k] for k in TASKS}
    recipe = recipe_from_dict({
        "tasks": TASKS, "model": {"width": width}, "method": method_cfg, "train": {"balancer": {"name": balancer}},
        "data": {"size": [height, width_px], "mean": [0.5] * 3, "std": [0.25] * 3},
    })
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
        "normal": torch.nn.functional.normalize(torch.randn(batch, 3, height, width_px, device=device), dim=1),
        "keypoints": torch.rand(batch, 1, height, width_px, device=device),
        "edges": torch.rand(batch, 1, height, width_px, device=device),
    }
    ctx = StepContext(0, 2, 1, 2)
    shared = [p for p in net.encoder.parameters() if p.requires_grad]

    def step() -> None:
        terms = method.loss_terms(method.forward(net, x, ctx), targets, ctx)
        optimizer.zero_grad(set_to_none=True)
        bal.backward({t: sum(g.values()) for t, g in terms.items()}, shared, method.shared_cut)  # type: ignore[misc]
        optimizer.step()

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
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trained = sum(p.numel() for g in groups for p in g["params"])
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
        "trained_params_m": trained / 1e6,
    }


def markdown(result: dict) -> str:
    cfg = result["config"]
    # CPU time per step is the figure that survives a shared machine (wall time also counts the neighbours).
    key = "cpu_s_per_step_median" if cfg["device"] == "cpu" else "s_per_step_median"
    base = result["rows"][0][key]
    env = result["environment"]
    lines = [
        f"width {cfg['width']}, {cfg['size']}, batch {cfg['batch']}, 5 tasks, {cfg['threads']} thread(s), {cfg['device']} "
        f"({env['cpu']}, load average {env.get('loadavg', '?')} at start), median of {cfg['steps']} steps after "
        f"{cfg['warmup']} warm-up; s/step is {'process CPU time' if key.startswith('cpu') else 'wall time'}:",
        "",
        "| method | balancer | trained params M | s/step | × vanilla | wall s/step | peak memory MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        label = row["row"].split(" + ")[0]
        lines.append(
            f"| {label} | {row['balancer']} | {row['trained_params_m']:.2f} | {row[key]:.3f} "
            f"| {row[key] / base:.2f} | {row['s_per_step_median']:.3f} | {row['peak_mem_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--size", default="64x128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", help="Comma-separated subset of rows (default: all).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--teachers", help=argparse.SUPPRESS)
    args = parser.parse_args()
    height, width_px = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        row = measure(args.child, json.loads(args.teachers), args.width, height, width_px, args.batch, args.steps,
                      args.warmup, args.threads, args.device)
        print(json.dumps(row))
        return
    names = args.rows.split(",") if args.rows else list(ROWS)
    rows = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        teachers = write_teachers(Path(tmp), args.width)
        for name in names:
            cmd = [sys.executable, __file__, "--child", name, "--teachers", json.dumps(teachers), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--width", str(args.width), "--size", args.size, "--batch", str(args.batch),
                   "--threads", str(args.threads), "--device", args.device]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"{name}: {rows[-1]['s_per_step_median']:.3f} s/step, {rows[-1]['peak_mem_mib']:.0f} MiB", file=sys.stderr)
    import torch

    from edgemtl.io import atomic_write_json, atomic_write_text

    result = {
        "schema_version": 1,
        "config": {"width": args.width, "size": args.size, "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
                   "threads": args.threads, "device": args.device},
        "environment": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                        "python": platform.python_version(), "loadavg": round(load_start, 2)},
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    atomic_write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

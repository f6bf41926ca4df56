"""Where an Eq. 5 (`sd`) training step spends its time next to a vanilla step, before and after
the issue-15 changes, phase by phase.

Rows, all built in this one process and stepped in turn (interleaved, so load
drift hits all alike), each with its own network, Adam optimizer and the
synthetic recipe's shapes (5 tasks, width 0.125, 64x128, batch 8):

- `vanilla`, `sd` (paper Student), `sd skip` (the skip Student, `model.student.kind: skip`);
- `... (before)`: the same with the code as it was before issue 15 put back for
  the step: the paper Student's convolutions in NCHW while training, and unit
  normals through `F.normalize` (whose vector norm is the slow part).

Phases: forward (`Method.forward`), loss terms, backward (the balancer's), the
optimizer step; medians over `--steps` of wall time and of process CPU time.
Writes benchmarks/results/step_breakdown.json; benchmarks/README.md renders it.

    python benchmarks/step_breakdown.py [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "step_breakdown.json"
TASKS = ["seg", "depth", "normal", "keypoints", "edges"]
PHASES = ("forward", "loss", "backward", "optimizer")

#: row -> (method, model.student section or None, the pre-issue-15 code?)
ROWS: dict[str, tuple[str, dict[str, Any] | None, bool]] = {
    "vanilla (before)": ("vanilla", None, True),
    "sd (before)": ("sd", None, True),
    "vanilla": ("vanilla", None, False),
    "sd": ("sd", None, False),
    "sd skip": ("sd", {"kind": "skip"}, False),
}


@contextlib.contextmanager
def before_issue_15() -> Iterator[None]:
    """The paper Student in NCHW while training and `F.normalize` unit normals, for one step."""
    import torch.nn.functional as F

    from edgemtl.training import task_ops
    from edgemtl.training.models.decoders import StudentHead

    def nchw(self: Any, enc: Any) -> Any:
        return enc.bottleneck

    def unit(raw: Any) -> Any:
        return F.normalize(raw, dim=1, eps=1e-12)

    def ensemble(teacher: Any, student: Any) -> Any:
        return F.normalize(0.5 * (teacher + student), dim=1, eps=1e-12)

    saved_input, saved_ops = StudentHead.head_input, task_ops.get_ops("normal")
    StudentHead.head_input = nchw  # type: ignore[method-assign]
    task_ops.register_ops(
        "normal", dataclasses.replace(saved_ops, activate=unit, ensemble=ensemble), replace=True
    )
    try:
        yield
    finally:
        StudentHead.head_input = saved_input  # type: ignore[method-assign]
        task_ops.register_ops("normal", saved_ops, replace=True)


def make_step(
    method_name: str, student: dict[str, Any] | None, batch: int, size: tuple[int, int]
) -> Callable[[dict[str, list[float]], dict[str, list[float]]], None]:
    """One row's step; it appends each phase's wall and CPU seconds to the dicts given."""
    import torch

    from edgemtl.core.config import recipe_from_dict
    from edgemtl.core.tasks import make_spec
    from edgemtl.data.synthetic import CLASS_NAMES
    from edgemtl.training.methods import StepContext, build_method
    from edgemtl.training.methods.balancers import build_balancer

    torch.manual_seed(0)
    model: dict[str, Any] = {"width": 0.125}
    if student is not None:
        model["student"] = student
    h, w = size
    recipe = recipe_from_dict(
        {
            "tasks": TASKS,
            "model": model,
            "method": {"name": method_name},
            "data": {"size": [h, w], "mean": [0.5] * 3, "std": [0.25] * 3},
        }
    )
    specs = [make_spec("seg", list(CLASS_NAMES))] + [make_spec(k) for k in TASKS[1:]]
    method = build_method(recipe, specs)
    net = method.build_model().train()
    balancer = build_balancer(recipe.train.balancer, {k: 1.0 for k in TASKS})
    optimizer = torch.optim.Adam(method.parameter_groups(net), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, h, w, generator=gen)
    targets = {
        "seg": torch.randint(0, specs[0].channels, (batch, h, w), generator=gen),
        "depth": torch.rand(batch, 1, h, w, generator=gen) + 1,
        "normal": torch.nn.functional.normalize(torch.randn(batch, 3, h, w, generator=gen), dim=1),
        "keypoints": torch.rand(batch, 1, h, w, generator=gen),
        "edges": torch.rand(batch, 1, h, w, generator=gen),
    }
    ctx = StepContext(0, 2, 1, 2)
    shared = [p for p in net.encoder.parameters() if p.requires_grad]

    def step(wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
        marks = [(time.perf_counter(), time.process_time())]
        outputs = method.forward(net, x, ctx)
        marks.append((time.perf_counter(), time.process_time()))
        terms = method.loss_terms(outputs, targets, ctx)
        marks.append((time.perf_counter(), time.process_time()))
        optimizer.zero_grad(set_to_none=True)
        losses = {t: sum(g.values()) for t, g in terms.items()}
        balancer.backward(losses, shared, method.shared_cut)  # type: ignore[arg-type]
        marks.append((time.perf_counter(), time.process_time()))
        optimizer.step()
        marks.append((time.perf_counter(), time.process_time()))
        for i, phase in enumerate(PHASES):
            wall[phase].append(marks[i + 1][0] - marks[i][0])
            cpu[phase].append(marks[i + 1][1] - marks[i][1])

    return step


def markdown(result: dict[str, Any]) -> str:
    """The benchmarks/README.md table (benchmarks/readme_tables.py renders it)."""
    cfg, env = result["config"], result["environment"]
    lines = [
        f"width {cfg['width']}, {cfg['size']}, batch {cfg['batch']}, 5 tasks, {cfg['threads']} "
        f"thread(s), {env['cpu']}, load average {env['loadavg_at_start']} at start; median of "
        f"{cfg['steps']} interleaved steps after {cfg['warmup']} warm-up, ms (wall; CPU in "
        "the last columns):",
        "",
        "| row | forward | loss terms | backward | optimizer | step | × vanilla | step CPU "
        "| CPU × vanilla |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        wall = row["wall_ms"]
        lines.append(
            f"| {row['row']} | "
            + " | ".join(f"{wall[p]:.0f}" for p in PHASES)
            + f" | {row['step_ms']:.0f} | {row['vs_vanilla']:.2f} | {row['cpu_step_ms']:.0f} "
            f"| {row['cpu_vs_vanilla']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", default="64x128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", help=f"comma-separated subset of: {', '.join(ROWS)}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from edgemtl.core.threads import openmp_like_the_cli

    openmp_like_the_cli()  # before PyTorch loads, as the CLI does (children inherit it)
    import torch

    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    names = args.rows.split(",") if args.rows else list(ROWS)
    steps = {n: make_step(ROWS[n][0], ROWS[n][1], args.batch, size) for n in names}  # type: ignore[arg-type]
    wall = {n: {p: [] for p in PHASES} for n in names}
    cpu = {n: {p: [] for p in PHASES} for n in names}
    load = os.getloadavg()[0]
    for i in range(args.warmup + args.steps):
        for name in names:
            target = (wall[name], cpu[name]) if i >= args.warmup else ({p: [] for p in PHASES},) * 2
            with before_issue_15() if ROWS[name][2] else contextlib.nullcontext():
                steps[name](*target)
    rows = []
    for name in names:
        step_wall = [sum(v) for v in zip(*wall[name].values())]
        step_cpu = [sum(v) for v in zip(*cpu[name].values())]
        rows.append(
            {
                "row": name,
                "method": ROWS[name][0],
                "student": ROWS[name][1] or {"kind": "paper"},
                "before_issue_15": ROWS[name][2],
                "wall_ms": {p: 1e3 * statistics.median(v) for p, v in wall[name].items()},
                "cpu_ms": {p: 1e3 * statistics.median(v) for p, v in cpu[name].items()},
                "step_ms": 1e3 * statistics.median(step_wall),
                "cpu_step_ms": 1e3 * statistics.median(step_cpu),
            }
        )
    for row in rows:  # against the vanilla row of the same code
        base_name = "vanilla (before)" if row["before_issue_15"] else "vanilla"
        base = next((r for r in rows if r["row"] == base_name), row)
        row["vs_vanilla"] = round(row["step_ms"] / base["step_ms"], 3)
        row["cpu_vs_vanilla"] = round(row["cpu_step_ms"] / base["cpu_step_ms"], 3)
    from edgemtl.core.io import atomic_write_json

    result = {
        "schema_version": 1,
        "config": {
            "width": 0.125,
            "size": args.size,
            "batch": args.batch,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        },
        "environment": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": len(os.sched_getaffinity(0)),
            "torch": torch.__version__,
            "loadavg_at_start": round(load, 2),
        },
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

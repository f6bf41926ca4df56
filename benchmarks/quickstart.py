"""Quick-start figures: train recipes/synthetic.yaml (or read a finished run) and
record per-head metrics, the constant predictor, the acceptance ratios and wall time.

    python benchmarks/quickstart.py                 # trains (about 10 min on 2 cores)
    python benchmarks/quickstart.py --run runs/X    # summarise an existing run

Writes benchmarks/results/quickstart.json; the README table is rendered from it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quickstart.json"

#: Acceptance: model metric vs constant predictor (ratio bound, lower-is-better?).
CHECKS = [
    ("seg", "miou", "≥ 2x", lambda m, c: m >= 2 * c),
    ("depth", "abs_err", "≤ 0.7x", lambda m, c: m <= 0.7 * c),
    ("normal", "mean_deg", "≤ 0.8x", lambda m, c: m <= 0.8 * c),
    ("keypoints", "abs_err", "< 1x", lambda m, c: m < c),
    ("edges", "abs_err", "< 1x", lambda m, c: m < c),
]


def summarise(run: Path, wall_s: float | None) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    final, constant = summary["final"], summary["constant_predictor"]
    checks = []
    for task, metric, bound, ok in CHECKS:
        for head in ("teacher", "student"):
            value, ref = final[head][task][metric], constant[task][metric]
            checks.append(
                {
                    "head": head,
                    "task": task,
                    "metric": metric,
                    "value": value,
                    "constant": ref,
                    "bound": bound,
                    "passed": bool(ok(value, ref)),
                }
            )
    return {
        "schema_version": 1,
        "command": "bash scripts/quickstart.sh",
        "recipe": "recipes/synthetic.yaml",
        "wall_time_s": round(wall_s, 1) if wall_s is not None else None,
        "train_time_s": summary["wall_time_s"],
        "train_images_per_s": summary["train_images_per_s"],
        "threads": summary["threads"],
        "cpu": platform.processor() or platform.machine(),
        "final": final,
        "constant_predictor": constant,
        "checks": checks,
        "all_passed": all(c["passed"] for c in checks),
    }


def markdown(result: dict) -> str:
    lines = [
        f"`{result['command']}` on a 2-core CPU ({result['cpu']}, {result['threads']} "
        f"thread{'' if result['threads'] == 1 else 's'}): "
        f"{result['wall_time_s']:.0f} s end to end, of which training and per-epoch evaluation "
        f"{result['train_time_s']:.0f} s ({result['train_images_per_s']:.1f} img/s). "
        "Validation split:",
        "",
        "| task | metric | teacher | student | ensemble | constant predictor "
        "| bound (each head) | met |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    final, constant = result["final"], result["constant_predictor"]
    for task, metric, bound, _ in CHECKS:
        met = all(c["passed"] for c in result["checks"] if c["task"] == task)
        lines.append(
            f"| {task} | {metric} | {final['teacher'][task][metric]:.4g} | "
            f"{final['student'][task][metric]:.4g} "
            f"| {final['ensemble'][task][metric]:.4g} | {constant[task][metric]:.4g} | {bound} "
            f"constant | {'yes' if met else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="summarise this finished run instead of training")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    wall = None
    run = args.run
    if run is None:
        run = ROOT / "runs" / f"quickstart-bench-{time.strftime('%Y%m%d-%H%M%S')}"
        start = time.perf_counter()
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "quickstart.sh"), "--out", str(run)], check=True
        )
        wall = time.perf_counter() - start
    result = summarise(run, wall)
    sys.path.insert(0, str(ROOT))
    from edgemtl.core.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(markdown(result))


if __name__ == "__main__":
    main()

"""Training throughput beside competing load: the automatic thread choice vs fixed counts.

For 0, 1 and 3 competitors (each a pure-Python busy loop in its own process,
started before and kept running through the block of runs), trains
recipes/synthetic.yaml for one epoch through the real CLI, once with the
default (automatic) threads and once per fixed `--set train.threads=K`,
K = 1 .. CPUs; settings interleaved inside each block, blocks repeated
`--repeats` times. img/s is summary.json's `train_images_per_s` (training and
one 8-image evaluation). Each row: median over repeats; target (issue 15): the
default reaches at least 0.9x the best fixed setting in every row. A benchmark,
not a CI test.

    python benchmarks/contention.py                       # ~10 min on an idle 2-core machine
    python benchmarks/contention.py --n-train 16 --repeats 1 --competitors 0,1 \
        --out /tmp/contention.json                        # a quick try (no README update)

Writes benchmarks/results/contention.json (or --out); with the default path it
also renders the table in benchmarks/README.md (benchmarks/readme_tables.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "contention.json"
README = ROOT / "benchmarks" / "README.md"
TARGET = 0.9


@contextmanager
def competitors(count: int, settle_s: float) -> Iterator[None]:
    """`count` busy-loop processes for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(settle_s if count else 0)
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def train_once(args: argparse.Namespace, threads: int | None, out: Path, cache: Path) -> dict:
    """One epoch through `python -m edgemtl train`; the run's summary facts."""
    sets = [
        f"data.synthetic.n_train={args.n_train}",
        "train.epochs=1",
        "train.eval_limit=8",
        f"train.batch_size={args.batch}",
    ]
    if threads is not None:
        sets.append(f"train.threads={threads}")
    cmd = [sys.executable, "-m", "edgemtl", "train", str(ROOT / "recipes" / "synthetic.yaml")]
    for item in sets:
        cmd += ["--set", item]
    cmd += ["--out", str(out), "--quiet"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["EDGEMTL_CACHE"] = str(cache)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    return {
        "img_per_s": summary["train_images_per_s"],
        "train_s": summary["wall_time_s"],
        "process_s": round(wall, 2),
        "threads": summary["threads"],
        "choice": summary.get("thread_choice"),
    }


def rows(runs: list[dict], settings: list[int | None], counts: list[int]) -> list[dict]:
    """Median img/s per (competitors, setting); the default against the best fixed count."""
    out = []
    for count in counts:
        median: dict[str, float] = {}
        chosen: list[int] = []
        for setting in settings:
            mine = [r for r in runs if r["competitors"] == count and r["setting"] == setting]
            median[str(setting)] = statistics.median(r["img_per_s"] for r in mine)
            if setting is None:
                chosen = sorted({r["threads"] for r in mine})
        fixed = {k: v for k, v in median.items() if k != "None"}
        best = max(fixed, key=lambda k: fixed[k])
        ratio = median["None"] / fixed[best]
        out.append(
            {
                "competitors": count,
                "default_img_per_s": median["None"],
                "default_threads": chosen,
                "fixed_img_per_s": fixed,
                "best_fixed_threads": int(best),
                "ratio": round(ratio, 3),
                "met": ratio >= TARGET,
            }
        )
    return out


def markdown(result: dict[str, Any]) -> str:
    """The benchmarks/README.md table (benchmarks/readme_tables.py renders it)."""
    cfg, env = result["config"], result["environment"]
    fixed = [str(k) for k in cfg["fixed_threads"]]
    lines = [
        f"recipes/synthetic.yaml, 1 epoch of {cfg['n_train']} images (batch {cfg['batch']}), "
        f"{env['cpus']} CPUs ({env['cpu']}), median img/s of {cfg['repeats']} interleaved "
        f"repeats; competitors are pure-Python busy loops; target: default ≥ {TARGET}x the "
        "best fixed count:",
        "",
        "| competitors | default img/s (threads chosen) | "
        + " | ".join(f"{k} thread{'s' if k != '1' else ''}" for k in fixed)
        + " | default / best fixed | met |",
        "|---:|---:|" + "---:|" * len(fixed) + "---:|---|",
    ]
    for row in result["rows"]:
        chosen = ", ".join(str(t) for t in row["default_threads"])
        cells = [f"{row['fixed_img_per_s'][k]:.1f}" for k in fixed]
        lines.append(
            f"| {row['competitors']} | {row['default_img_per_s']:.1f} ({chosen}) | "
            + " | ".join(cells)
            + f" | {row['ratio']:.2f} | {'yes' if row['met'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def update_readme() -> None:
    """Put the table into benchmarks/README.md (its pending marker becomes a bench block)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import readme_tables

    README.write_text(readme_tables.updated(README.read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=96, help="training images (one epoch)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--competitors", default="0,1,3", help="comma-separated counts")
    parser.add_argument(
        "--fixed", help="comma-separated fixed thread counts (default: 1 .. CPUs of this process)"
    )
    parser.add_argument("--settle-s", type=float, default=2.0, help="competitors run this first")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    fixed = [int(k) for k in args.fixed.split(",")] if args.fixed else list(range(1, cpus + 1))
    counts = [int(k) for k in args.competitors.split(",")]
    settings: list[int | None] = [None, *fixed]
    load_start = os.getloadavg()[0]
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgemtl-contention-") as tmp:
        cache = Path(tmp) / "cache"
        train_once(args, 1, Path(tmp) / "warmup", cache)  # renders the data into the cache
        for repeat in range(args.repeats):
            for count in counts:
                with competitors(count, args.settle_s):
                    for setting in settings:
                        out = Path(tmp) / f"r{repeat}-c{count}-t{setting}"
                        run = train_once(args, setting, out, cache)
                        run.update(repeat=repeat, competitors=count, setting=setting)
                        runs.append(run)
                        label = "default" if setting is None else f"{setting} thread(s)"
                        print(
                            f"repeat {repeat + 1}, {count} competitor(s), {label}: "
                            f"{run['img_per_s']:.1f} img/s ({run['threads']} threads)",
                            file=sys.stderr,
                        )
    import torch

    from edgemtl.core.io import atomic_write_json

    result = {
        "schema_version": 1,
        "config": {
            "recipe": "recipes/synthetic.yaml",
            "n_train": args.n_train,
            "batch": args.batch,
            "repeats": args.repeats,
            "competitors": counts,
            "fixed_threads": fixed,
            "settle_s": args.settle_s,
            "target": TARGET,
        },
        "environment": {
            "cpus": cpus,
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "loadavg_at_start": round(load_start, 2),
        },
        "rows": rows(runs, settings, counts),
        "runs": runs,
    }
    atomic_write_json(args.out, result)
    if args.out.resolve() == RESULTS.resolve():
        update_readme()
    print(markdown(result))
    return 0 if all(r["met"] for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

"""Training-step throughput per speed option -> benchmarks/results/train_step_speed.json.

Times the trainer's own step (`Trainer.train_step`: forward, losses, balancer
backward, optimizer step, with autocast / GradScaler / channels_last /
torch.compile as the recipe asks) on one fixed synthetic batch, so the figure
is the product's step, not a hand-made loop. Rows are merged into the JSON by
(device, option), so a GPU run adds CUDA rows beside the CPU ones.

    python benchmarks/train_step_speed.py                      # CPU rows
    python benchmarks/train_step_speed.py --device cuda --width 1 --size 288x384 --batch 8
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgemtl.core.config import load_recipe
from edgemtl.core.io import atomic_write_json, atomic_write_text
from edgemtl.training.data import PreparedSplit
from edgemtl.training.methods import StepContext
from edgemtl.training.trainer import Trainer

RESULT = REPO / "benchmarks" / "results" / "train_step_speed.json"
OPTIONS: dict[str, list[str]] = {
    "fp32": [],
    "bf16": ["train.amp=bf16"],
    "fp16": ["train.amp=fp16"],
    "channels_last": ["train.channels_last=true"],
    "channels_last+bf16": ["train.channels_last=true", "train.amp=bf16"],
    "compile": ["train.compile=true"],
}


def measure(option: str, args: argparse.Namespace, data_root: Path) -> dict[str, object]:
    height, width = (int(v) for v in args.size.split("x"))
    overrides = [
        f"data.root={data_root}",
        f"data.size=[{height},{width}]",
        "data.workers=0",
        f"model.width={args.width}",
        f"train.batch_size={args.batch}",
        f"train.threads={args.threads}",
        "train.epochs=1",
        *OPTIONS[option],
    ]
    recipe = load_recipe(REPO / "recipes" / "synthetic.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(recipe, Path(tmp), device=args.device, quiet=True)
        batch = torch.utils.data.DataLoader(
            PreparedSplit(trainer.train_reader, trainer.input_spec), batch_size=args.batch
        )
        images, targets = next(iter(batch))
        images = images.to(trainer.device)
        targets = {k: v.to(trainer.device) for k, v in targets.items()}
        ctx = StepContext(0, 1, 0, 1)
        trainer.model.train()
        if trainer.device.type == "cuda":  # each option's own peak, not the process's so far
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

        def sync() -> None:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()

        start = time.perf_counter()
        for _ in range(args.warmup):
            trainer.train_step(images, targets, ctx)
        sync()
        warmup_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(images, targets, ctx)
        sync()
        elapsed = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**20 if trainer.device.type == "cuda" else None
    return {
        "device": str(trainer.device.type),
        "option": option,
        "overrides": OPTIONS[option],
        "images_per_s": round(args.batch * args.steps / elapsed, 2),
        "step_ms": round(1000 * elapsed / args.steps, 1),
        "warmup_s": round(warmup_s, 2),
        "peak_mem_mib": round(peak, 1) if peak is not None else None,
        "batch": args.batch,
        "size": [height, width],
        "width": args.width,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--options",
        default=",".join(OPTIONS),
        help="comma-separated subset of: " + ", ".join(OPTIONS),
    )
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", default="64x128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    from edgemtl.data.synthetic import SynthParams, write_dataset

    height, width = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(
            Path(tmp) / "data", SynthParams(max(args.batch, 8), 4, height, width, seed=0)
        )
        for option in args.options.split(","):
            row = measure(option, args, root)
            print(
                f"{row['device']:5s} {option:20s} {row['images_per_s']:8.2f} img/s  "
                f"{row['step_ms']:8.1f} ms/step  "
                f"(warm-up {row['warmup_s']} s)",
                flush=True,
            )
            rows.append(row)
    old = []
    if args.out.is_file():
        import json

        old = json.loads(args.out.read_text()).get("rows", [])
    done = {(r["device"], r["option"]) for r in rows}
    merged = [r for r in old if (r["device"], r["option"]) not in done] + rows
    data = {
        "schema_version": 1,
        "what": "Trainer.train_step throughput (sd, 5 tasks, Adam) on one fixed synthetic batch",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "rows": merged,
    }
    atomic_write_json(args.out, data)
    atomic_write_text(args.out.with_suffix(".md"), markdown(data))


def markdown(data: dict) -> str:
    """The JSON as a Markdown table (pasted into docs/deploy.md)."""
    lines = [
        f"torch {data['torch']}, {data['machine']}"
        + (f", {data['gpu']}" if data.get("gpu") else ""),
        "",
        "| device | option | img/s | ms/step | vs fp32 | batch | size | width | threads "
        "| load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r["device"]: r["images_per_s"] for r in data["rows"] if r["option"] == "fp32"}
    for r in data["rows"]:
        ratio = f"{r['images_per_s'] / base[r['device']]:.2f}x" if r["device"] in base else "-"
        lines.append(
            f"| {r['device']} | {r['option']} | {r['images_per_s']} | {r['step_ms']} | {ratio} | "
            f"{r['batch']} | "
            f"{r['size'][0]}x{r['size'][1]} | {r['width']} | {r['threads']} | "
            f"{r.get('load_avg_1min', '-')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

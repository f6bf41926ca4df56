"""Where `edgemtl eval` spends its time, per image, next to a training step's forward pass.

Trains a tiny `sd` run of recipes/synthetic.yaml (a checkpoint and the val
split in a temporary cache; evaluation cost does not depend on the weights),
then:

- end to end: `edgemtl eval CKPT --head all --limit N` in a subprocess (wall
  seconds, process start and checkpoint load included);
- in process, over the same N val images in the command's batches of 8, medians
  of `--repeats` passes: reading + preprocessing, the forward pass of every head
  (teacher, student, ensemble; inference mode), decoding + metric accumulation;
  and a training forward pass (train mode, autograd on: what `sd` runs per step)
  on batches of the same size, for the per-image comparison of issue 15.

Writes benchmarks/results/eval_speed.json; benchmarks/README.md renders it.

    python benchmarks/eval_speed.py [--limit 128] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "eval_speed.json"
PARTS = ("read + preprocess", "forward (3 heads)", "decode + metrics")


def tiny_run(folder: Path, env: dict[str, str], threads: int) -> Path:
    """best.pt of a 1-epoch run on 16 training images (the val split: 128 images)."""
    cmd = [sys.executable, "-m", "edgemtl", "train", str(ROOT / "recipes" / "synthetic.yaml")]
    for item in (
        "data.synthetic.n_train=16",
        "train.epochs=1",
        "train.eval_limit=8",
        f"train.threads={threads}",
    ):
        cmd += ["--set", item]
    subprocess.run([*cmd, "--out", str(folder), "--quiet"], check=True, env=env, cwd=ROOT)
    return folder / "best.pt"


def in_process(ckpt_path: Path, limit: int, repeats: int) -> dict[str, Any]:
    """Seconds per image of each part (medians over `repeats` passes), wall and CPU."""
    import numpy as np
    import torch

    from edgemtl.core.tasks import decode_numpy
    from edgemtl.data.preprocess import collate, prepare_sample
    from edgemtl.data.registry import open_split
    from edgemtl.evaluation.scoring import metric_set
    from edgemtl.training.checkpoint import input_spec, load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    specs = ckpt.task_specs()
    spec = input_spec(ckpt)
    reader = open_split(ckpt.data.to_dict(), "val", [s.key for s in specs])
    net = model_from_checkpoint(ckpt).eval()
    train_net = model_from_checkpoint(ckpt).train()
    heads = ("teacher", "student", "ensemble")
    total = min(limit, len(reader))
    starts = list(range(0, total, 8))
    clocks = (time.perf_counter, time.process_time)
    passes: dict[str, list[tuple[float, float]]] = {p: [] for p in (*PARTS, "training forward")}
    for _ in range(repeats + 1):  # the first pass warms up
        spent = {p: [0.0, 0.0] for p in passes}
        sets = {h: metric_set(specs) for h in heads}
        for start in starts:
            marks = [tuple(c() for c in clocks)]
            items = [prepare_sample(reader[i], spec) for i in range(start, min(start + 8, total))]
            images, targets = collate(items)
            marks.append(tuple(c() for c in clocks))
            with torch.inference_mode():
                out = net(torch.from_numpy(images), heads=heads)
                arrays = {h: {k: v.float().numpy() for k, v in t.items()} for h, t in out.items()}
            marks.append(tuple(c() for c in clocks))
            for head in heads:
                decoded = {s.key: decode_numpy(s, arrays[head][s.key]) for s in specs}
                sets[head].update(decoded, targets)
            marks.append(tuple(c() for c in clocks))
            enc = train_net.encoder(torch.from_numpy(np.ascontiguousarray(images)))
            train_net.forward_with_taps(enc, ("teacher", "student"))
            marks.append(tuple(c() for c in clocks))
            for i, part in enumerate((*PARTS, "training forward")):
                for k in (0, 1):
                    spent[part][k] += marks[i + 1][k] - marks[i][k]
        for set_ in sets.values():
            set_.compute()
        for part, (wall, cpu) in spent.items():
            passes[part].append((wall / total, cpu / total))
    return {
        part: {
            "wall_ms_per_image": 1e3 * statistics.median(w for w, _ in values[1:]),
            "cpu_ms_per_image": 1e3 * statistics.median(c for _, c in values[1:]),
        }
        for part, values in passes.items()
    }


def markdown(result: dict[str, Any]) -> str:
    """The benchmarks/README.md table (benchmarks/readme_tables.py renders it)."""
    cfg, env, parts = result["config"], result["environment"], result["parts"]
    scoring = sum(parts[p]["wall_ms_per_image"] for p in PARTS)
    scoring_cpu = sum(parts[p]["cpu_ms_per_image"] for p in PARTS)
    lines = [
        f"`edgemtl eval --head all --limit {cfg['limit']}` of a width-0.125 `sd` checkpoint "
        f"(64x128, batches of 8), {cfg['threads']} thread(s), {env['cpu']}, load average "
        f"{env['loadavg_at_start']} at start: {result['end_to_end_s']:.1f} s end to end "
        f"(process start and checkpoint load included). In process, median of "
        f"{cfg['repeats']} passes, ms per image:",
        "",
        "| part | wall | CPU |",
        "|---|---:|---:|",
    ]
    for part in (*PARTS, "training forward"):
        label = "training forward (sd, for comparison)" if part == "training forward" else part
        lines.append(
            f"| {label} | {parts[part]['wall_ms_per_image']:.1f} "
            f"| {parts[part]['cpu_ms_per_image']:.1f} |"
        )
    lines.append(f"| **evaluation, all parts** | **{scoring:.1f}** | **{scoring_cpu:.1f}** |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from edgemtl.core.threads import openmp_like_the_cli

    openmp_like_the_cli()  # before PyTorch loads, as the CLI does (children inherit it)
    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="edgemtl-eval-speed-") as tmp:
        env = {**os.environ, "EDGEMTL_CACHE": str(Path(tmp) / "cache")}
        ckpt = tiny_run(Path(tmp) / "run", env, args.threads)
        cmd = [sys.executable, "-m", "edgemtl", "eval", str(ckpt), "--head", "all"]
        cmd += ["--limit", str(args.limit), "--json", str(Path(tmp) / "eval.json"), "--quiet"]
        subprocess.run(cmd, check=True, env=env, cwd=ROOT)  # warm: page cache, imports
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=ROOT)
        end_to_end = time.perf_counter() - start
        os.environ["EDGEMTL_CACHE"] = env["EDGEMTL_CACHE"]
        parts = in_process(ckpt, args.limit, args.repeats)
    from edgemtl.core.io import atomic_write_json

    result = {
        "schema_version": 1,
        "config": {"limit": args.limit, "repeats": args.repeats, "threads": args.threads},
        "environment": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": len(os.sched_getaffinity(0)),
            "torch": torch.__version__,
            "loadavg_at_start": round(load, 2),
        },
        "end_to_end_s": round(end_to_end, 2),
        "parts": parts,
    }
    atomic_write_json(args.out, result)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

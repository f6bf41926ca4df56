"""`edgemtl export` benchmark: time per export step, file sizes, parity numbers, and
ONNX Runtime CPU latency FP32 vs FP16 vs INT8 for the Student and the Teacher.

Writes benchmarks/results/export.json.

- Model: a short `sd` run of the synthetic recipe (both heads; real images, so the
  INT8 metric deltas mean something), or `--checkpoint PATH`.
- Export: the real command (`export_command`), one bundle per head, FP32 + FP16 +
  INT8 (calibrated on `--calib` training images, gated on `--samples` val images).
- Latency: each bundle's ONNX files in ONNX Runtime (CPU EP, ORT_ENABLE_ALL,
  explicit intra-op threads), batch 1, `--warmup` runs then `--iterations` timed
  runs, interleaved across files so drift hits all alike; host wall time per run.

Run: .venv/bin/python benchmarks/export.py [--epochs 2] [--threads 1] [--iterations 30]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train_checkpoint(work: Path, epochs: int, width: float, size: tuple[int, int]) -> Path:
    import torch

    from edgemtl.training.train_command import TrainOptions, run_training

    torch.set_num_threads(1)
    overrides = [
        f"data.size=[{size[0]},{size[1]}]",
        "data.synthetic.n_train=64",
        "data.synthetic.n_val=16",
        "data.workers=0",
        f"model.width={width}",
        f"train.epochs={epochs}",
        "train.batch_size=8",
        "train.threads=1",
    ]
    recipe = REPO / "recipes" / "synthetic.yaml"
    run_training(TrainOptions.from_file(recipe, overrides, out=work / "run", quiet=True))
    return work / "run" / "best.pt"


def latency(
    paths: dict[str, Path], threads: int, warmup: int, iterations: int
) -> dict[str, dict[str, float]]:
    """Interleaved batch-1 wall times per file (ms): median, mean, p90, min, cv."""
    from edgemtl.export import onnx_tools

    sessions = {k: onnx_tools.session(p, threads=threads) for k, p in paths.items()}
    feeds = {}
    for key, sess in sessions.items():
        meta = sess.get_inputs()[0]
        shape = [1 if not isinstance(d, int) else d for d in meta.shape]
        feeds[key] = {meta.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    for _ in range(warmup):
        for key, sess in sessions.items():
            sess.run(None, feeds[key])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(iterations):
        for key, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, feeds[key])
            times[key].append((time.perf_counter() - start) * 1e3)
    out = {}
    for key, values in times.items():
        arr = np.asarray(values)
        out[key] = {
            "median_ms": round(float(np.median(arr)), 3),
            "mean_ms": round(float(arr.mean()), 3),
            "p90_ms": round(float(np.percentile(arr, 90)), 3),
            "min_ms": round(float(arr.min()), 3),
            "cv": round(float(arr.std() / arr.mean()), 3),
        }
    return out


def parity_numbers(artifact: dict[str, Any]) -> dict[str, Any]:
    proof = artifact.get("parity") or {}
    checks = {
        task: {name: round(c["value"], 6) for name, c in per.items()}
        for task, per in (proof.get("checks") or {}).items()
    }
    result = {"reference": proof.get("reference"), "passed": proof.get("passed"), "checks": checks}
    metrics = proof.get("metrics") or {}
    if "delta" in metrics:
        result["int8_metric_delta"] = metrics["delta"]
    return result


def markdown(result: dict[str, Any]) -> str:
    """README table: export time, file sizes, parity and ORT CPU latency per head and precision."""
    st = result["settings"]
    lines = [
        f"Width {st['width']}, {st['size'][0]}x{st['size'][1]}, {st['epochs']}-epoch synthetic "
        "checkpoint; "
        f"{result['latency_method']}.",
        "",
        "| head | precision | file MB | parity vs | parity passed | ORT CPU median ms "
        "| speed vs FP32 | export s (all precisions) |",
        "|---|---|---:|---|---|---:|---:|---:|",
    ]
    for head, info in result["heads"].items():
        for file, meta in info["files"].items():
            precision = meta["precision"]
            parity = info["parity"].get(precision, {})
            lat = info["ort_cpu_latency"].get(precision, {})
            lines.append(
                f"| {head} | {precision} | {meta['bytes'] / 1e6:.2f} | "
                f"{parity.get('reference', '-')} "
                f"| {'yes' if parity.get('passed') else 'no'} | "
                f"{lat.get('median_ms', float('nan')):.2f} "
                f"| {info['speedup_vs_fp32'].get(precision, float('nan')):.2f}x | "
                f"{info['export_total_s']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 128))
    parser.add_argument("--calib", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "export.json")
    args = parser.parse_args()

    from edgemtl.core.io import atomic_write_json
    from edgemtl.export.options import ExportOptions
    from edgemtl.training.export.command import export_command

    with tempfile.TemporaryDirectory(prefix="edgemtl-bench-export-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        ckpt = args.checkpoint or train_checkpoint(work, args.epochs, args.width, tuple(args.size))
        train_s = time.perf_counter() - start
        heads: dict[str, Any] = {}
        for head in ("student", "teacher"):
            start = time.perf_counter()
            options = ExportOptions(
                head=head,
                fp16=True,
                int8=True,
                calib=args.calib,
                samples=args.samples,
                out=work / head,
                trt=False,
                quiet=True,
            )
            summary = export_command(ckpt, options)
            total = time.perf_counter() - start
            arts = summary["artifacts"]
            paths = {a["precision"]: work / head / a["file"] for a in arts if a["format"] == "onnx"}
            lat = latency(paths, args.threads, args.warmup, args.iterations)
            fp32_ms = lat["fp32"]["median_ms"]
            heads[head] = {
                "export_total_s": round(total, 2),
                "steps_s": summary["timings"],
                "files": {
                    a["file"]: {"precision": a["precision"], "bytes": a["size_bytes"]} for a in arts
                },
                "parity": {a["precision"]: parity_numbers(a) for a in arts},
                "parity_inputs": summary["parity_inputs"],
                "ort_cpu_latency": lat,
                "speedup_vs_fp32": {p: round(fp32_ms / v["median_ms"], 2) for p, v in lat.items()},
            }
        result = {
            "benchmark": "export",
            "schema_version": 1,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "python": platform.python_version(),
            },
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "checkpoint_training_s": round(train_s, 1) if args.checkpoint is None else None,
            "latency_method": (
                "ONNX Runtime CPU EP, ORT_ENABLE_ALL, "
                f"intra_op_num_threads={args.threads}, batch 1, "
                f"{args.warmup} warm-up + {args.iterations} interleaved timed runs, host wall time"
            ),
            "heads": heads,
        }
    import onnxruntime
    import torch

    result["versions"] = {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}
    atomic_write_json(args.out, result)
    for head, block in heads.items():
        lat = block["ort_cpu_latency"]
        print(
            f"{head}: export {block['export_total_s']} s; ORT ms fp32 {lat['fp32']['median_ms']}, "
            f"fp16 {lat['fp16']['median_ms']}, int8 {lat['int8']['median_ms']} "
            f"(int8 x{block['speedup_vs_fp32']['int8']})"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Latency of Student vs Teacher x FP32/INT8 through `edgemtl profile`, and the runner's overhead.

Writes benchmarks/results/latency.json and latency.md (the README table).

- Models: randomly initialised MultiTaskNet heads at a small width (latency does
  not depend on the weight values), exported with the project's own exporter
  (`export_head`) and INT8 QDQ quantiser (`quantize_int8`, calibrated on random
  normal inputs: fine for timing, not for accuracy).
- Resolutions: the synthetic recipe's (5 tasks, 64x128) and Cityscapes' (seg 7
  classes + depth, 128x256).
- Backends: ONNX Runtime CPU, plus its CUDA / TensorRT providers where
  onnxruntime-gpu is installed. All artifacts of one resolution are timed in one
  interleaved `run_profile` call.
- Overhead: `OrtRunner.infer` vs a bare `InferenceSession.run` on the same
  session, paired and interleaved (ABBA order per pair), on the small Student.

Run: .venv/bin/python benchmarks/latency.py [--width 0.25] [--iterations 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETTINGS = {
    "synthetic": {
        "size": (64, 128),
        "tasks": ["seg", "depth", "normal", "keypoints", "edges"],
        "classes": ["floor", "wall", "sphere", "box", "cylinder"],
    },
    "cityscapes": {
        "size": (128, 256),
        "tasks": ["seg", "depth"],
        "classes": ["void", "flat", "construction", "object", "nature", "sky", "human"],
    },
}


def build_bundle(folder: Path, setting: str, head: str, width: float, int8: bool) -> Path:
    """Export `head` of a random-init net to a bundle with FP32 (+ INT8) ONNX and a manifest."""
    import onnx
    import torch

    from edgemtl.core.io import sha256_file
    from edgemtl.core.manifest import Artifact, Manifest, embed_metadata, write_manifest
    from edgemtl.core.tasks import make_spec
    from edgemtl.export.int8 import quantize_int8
    from edgemtl.training.export.torch_onnx import export_head
    from edgemtl.training.models.network import MultiTaskNet

    cfg = SETTINGS[setting]
    h, w = cfg["size"]
    specs = [make_spec(k, cfg["classes"] if k == "seg" else None) for k in cfg["tasks"]]
    torch.manual_seed(0)
    net = MultiTaskNet(specs, width=width).eval()
    module = net.head_module(head, "raw")
    names = net.output_names(head, "raw")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.model_validate(
        {
            "head": head,
            "tasks": {s.key: s.to_dict() for s in specs},
            "input": {
                "shape": [1, 3, h, w],
                "height": h,
                "width": w,
                "mean": [0.5] * 3,
                "std": [0.25] * 3,
            },
            "dataset": None,
            "source": {"recipe": f"benchmark {setting} width {width}"},
        }
    )
    fp32 = folder / f"{head}.fp32.onnx"
    export_head(module, names, h, w, fp32)
    files = [("fp32", fp32)]
    if int8:
        calib = [
            np.random.default_rng(i).standard_normal((1, 3, h, w), dtype=np.float32)
            for i in range(4)
        ]
        q = folder / f"{head}.int8.onnx"
        quantize_int8(fp32, q, calib)
        files.append(("int8", q))
    for precision, path in files:
        model = onnx.load(str(path))
        outs = [
            {
                "name": o.name,
                "task": specs[i].key,
                "shape": [1, specs[i].channels, h, w],
                "dtype": "float32",
            }
            for i, o in enumerate(model.graph.output)
        ]
        art = Artifact.model_validate(
            {
                "file": path.name,
                "format": "onnx",
                "precision": precision,
                "sha256": "0" * 64,
                "outputs": outs,
            }
        )
        embed_metadata(model, manifest, art)
        onnx.save(model, str(path))
        art.sha256 = sha256_file(path)
        art.size_bytes = path.stat().st_size
        manifest.artifacts.append(art)
    write_manifest(folder, manifest)
    return folder


def providers() -> list[str]:
    import onnxruntime as ort

    have = ort.get_available_providers()
    out = ["cpu"]
    if "CUDAExecutionProvider" in have:
        out.append("cuda")
    if "TensorrtExecutionProvider" in have:
        out.append("tensorrt")
    return out


def overhead(bundle: Path, pairs: int, threads: int) -> dict[str, float]:
    """Runner vs bare InferenceSession.run on the same session; ABBA-interleaved pairs."""
    from edgemtl.deploy.runtime import RunnerOptions, open_runner, resolve_artifacts

    ref = next(r for r in resolve_artifacts(bundle) if r.precision == "fp32")
    runner = open_runner(ref, RunnerOptions(threads=threads))
    runner.load()
    sess = runner.session  # type: ignore[attr-defined]
    name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]
    h, w = ref.input_hw
    x = np.random.default_rng(0).standard_normal((1, 3, h, w), dtype=np.float32)
    clock = time.perf_counter_ns

    def bare() -> int:
        t0 = clock()
        sess.run(outs, {name: x})
        return clock() - t0

    def wrapped() -> int:
        t0 = clock()
        runner.infer(x)
        return clock() - t0

    for _ in range(10):
        bare(), wrapped()
    a, b = [], []
    for i in range(pairs):
        if i % 2 == 0:
            a.append(bare())
            b.append(wrapped())
        else:
            b.append(wrapped())
            a.append(bare())
    a_ms, b_ms = np.array(a) / 1e6, np.array(b) / 1e6
    ratio = b_ms / a_ms
    return {
        "model": f"{ref.label} {h}x{w}",
        "pairs": pairs,
        "bare_median_ms": float(np.median(a_ms)),
        "runner_median_ms": float(np.median(b_ms)),
        "overhead_percent_of_medians": float(100 * (np.median(b_ms) / np.median(a_ms) - 1)),
        "overhead_percent_median_pair": float(100 * (np.median(ratio) - 1)),
        "overhead_us_median_pair": float(np.median(b_ms - a_ms) * 1000),
        "target_percent": 3.0,
    }


def markdown(result: dict) -> str:
    lines = [
        (
            f"ONNX Runtime {result['environment']['onnxruntime']}, {result['environment']['cpu']}, "
            f"{result['threads']} thread(s), width {result['width']}, batch 1, "
            f"{result['iterations']} interleaved iterations (p50 / p99 ms)."
        ),
        "",
        "| setting | size | provider | head | precision | params M | GFLOPs "
        "| p50 ms | p99 ms | img/s |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['setting']} | {row['size']} | {row['provider']} | {row['head']} | "
            f"{row['precision']} | "
            f"{row['params'] / 1e6:.3f} | {row['flops'] / 1e9:.3f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['images_per_s']:.1f} |"
        )
    o = result["overhead"]
    lines += [
        "",
        (
            "Runner overhead vs bare `InferenceSession.run` "
            f"({o['model']}, {o['pairs']} ABBA pairs): "
            f"{o['overhead_percent_median_pair']:+.2f} % (median pair ratio), "
            f"{o['overhead_us_median_pair']:+.1f} µs per call; "
            f"target < {o['target_percent']:.0f} %."
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "latency.json"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from edgemtl.core.io import atomic_write_text
    from edgemtl.deploy.profile.command import ProfileOptions, run_profile
    from edgemtl.deploy.profile.env import environment
    from edgemtl.deploy.profile.timing import TimingConfig
    from edgemtl.deploy.runtime import RunnerOptions

    rows, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="edgemtl-bench-") as tmp:
        t_build = time.perf_counter()
        bundles = {
            (s, hd): build_bundle(Path(tmp) / s / hd, s, hd, args.width, int8=True)
            for s in SETTINGS
            for hd in ("student", "teacher")
        }
        build_s = time.perf_counter() - t_build
        for setting in SETTINGS:
            for provider in providers():
                gpu = provider != "cpu"
                timing = TimingConfig(warmup_iterations=5, warmup_s=1.0, iterations=args.iterations)
                runner = RunnerOptions(
                    device="cuda" if gpu else "cpu", provider=provider, threads=args.threads
                )
                opts = ProfileOptions(
                    batches=[1],
                    timing=timing,
                    rounds=5,
                    runner=runner,
                    power=gpu,
                    idle_s=1.0 if gpu else 0.0,
                )
                result = run_profile(
                    [bundles[(setting, "student")], bundles[(setting, "teacher")]], opts
                )
                raw[f"{setting}/{provider}"] = result
                for art in result["artifacts"]:
                    lat = art["rows"][0]["latency"]
                    rows.append(
                        {
                            "setting": setting,
                            "size": "x".join(map(str, SETTINGS[setting]["size"])),
                            "provider": provider,
                            "head": art["head"],
                            "precision": art["precision"],
                            "params": art["params"],
                            "flops": art["flops"],
                            "size_bytes": art["size_bytes"],
                            "p50_ms": lat["median_ms"],
                            "p99_ms": lat["p99_ms"],
                            "mean_ms": lat["mean_ms"],
                            "cv_percent": lat["cv_percent"],
                            "images_per_s": lat["images_per_s"],
                        }
                    )
        over = overhead(bundles[("synthetic", "student")], args.pairs, args.threads)
    result = {
        "schema_version": 1,
        "width": args.width,
        "threads": args.threads,
        "iterations": args.iterations,
        "python": platform.python_version(),
        "environment": environment(),
        "build_s": build_s,
        "rows": rows,
        "overhead": over,
        "profiles": raw,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

"""Synthetic renderer throughput on one core -> benchmarks/results/synthetic_speed.json.

Why CPU time as the headline: the figure is "images per second on ONE core",
and wall time on a shared machine measures the neighbours too. Both are written.

    python benchmarks/synthetic_speed.py [--n 300] [--height 64] [--width 128]
"""

from __future__ import annotations

import os

# Pin BLAS/OpenMP pools to one thread before numpy loads (the renderer is
# elementwise numpy, but a 3x3 matmul could otherwise wake a thread pool).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from edgemtl.core.io import atomic_write_json
from edgemtl.data.synthetic import GENERATOR_VERSION, SynthParams, render_sample

RESULT = Path(__file__).resolve().parent / "results" / "synthetic_speed.json"


def measure(n: int, height: int, width: int) -> dict[str, object]:
    params = SynthParams(n_train=n, n_val=1, height=height, width=width, seed=0)
    for i in range(min(10, n)):  # warm-up: imports, ray cache
        render_sample(params, "train", i)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(n):
        render_sample(params, "train", i)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "size": [height, width],
        "images_per_s": round(n / cpu, 1),
        "images_per_s_wall": round(n / wall, 1),
        "ms_per_image": round(1000.0 * cpu / n, 3),
        "n_images": n,
        "threads": 1,
        "generator_version": GENERATOR_VERSION,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    result = measure(args.n, args.height, args.width)
    atomic_write_json(args.out, result)
    print(
        f"{result['images_per_s']} images/s (CPU time, 1 thread), "
        f"{result['images_per_s_wall']} wall, at {args.height}x{args.width} -> {args.out}"
    )


if __name__ == "__main__":
    main()

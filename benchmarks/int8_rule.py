"""Which Convs the INT8 quantiser should leave float: a sweep of `int8.MIN_INT8_MACS`.

Writes benchmarks/results/int8_rule.json and int8_rule.md (a table in
benchmarks/README.md).

- Models: randomly initialised MultiTaskNet heads (latency does not depend on the
  weight values) of the synthetic recipe's 5 tasks at 64x128: the Teacher and three
  Students (the recipe's default, the former default `skip-s2-transpose`, `paper`),
  at `--widths`.
- For each, the FP32 ONNX and one INT8 QDQ ONNX per threshold (`quantize_int8(...,
  min_macs=T)`: Convs below T multiply-adds per output value stay float; 0 quantizes
  every Conv but ConvTranspose), calibrated on random normal inputs.
- Latency: ONNX Runtime CPU, `--threads` intra-op threads, batch 1, all files of a
  model interleaved (`edgemtl.export.speed.interleaved_medians_ms`), median.

Run: .venv/bin/python benchmarks/int8_rule.py [--widths 0.125,0.25,1.0] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZE = (64, 128)
THRESHOLDS = (0, 64, 128, 256)


def models() -> dict[str, tuple[str, Any]]:
    """(head, Student shape) by label: the Teacher, the synthetic recipe's default Student,
    then the two Students it replaced."""
    from edgemtl.core.config import load_recipe
    from edgemtl.training.models.students import StudentShape

    recipe = load_recipe(REPO / "recipes" / "synthetic.yaml")
    return {
        "teacher": ("teacher", None),
        "student (default)": ("student", StudentShape.of(recipe.model.student)),
        "student (skip-s2-transpose)": ("student", StudentShape(kind="skip", shared_stages=2)),
        "student (paper)": ("student", StudentShape()),
    }


def export_fp32(path: Path, head: str, student: Any, width: float) -> Path:
    """FP32 ONNX of one randomly initialised head (the synthetic 5 tasks, 64x128) at `path`."""
    import torch

    from edgemtl.core.config import load_recipe
    from edgemtl.core.tasks import make_spec
    from edgemtl.data.synthetic.params import CLASS_NAMES
    from edgemtl.training.export.torch_onnx import export_head
    from edgemtl.training.models.network import MultiTaskNet

    tasks = load_recipe(REPO / "recipes" / "synthetic.yaml").tasks
    specs = [make_spec(k, CLASS_NAMES) for k in tasks]
    torch.manual_seed(0)
    net = MultiTaskNet(specs, width=width, student=student).eval()
    export_head(net.head_module(head, "raw"), net.output_names(head, "raw"), *SIZE, path)
    return path


def sweep(fp32: Path, seconds: float, threads: int) -> dict[str, Any]:
    """Speed-up of INT8 over FP32 (`fp32`, an ONNX file) per threshold, and how many Convs
    each quantizes."""
    import onnx

    from edgemtl.export.int8 import qdq_summary, quantize_int8
    from edgemtl.export.speed import interleaved_medians_ms

    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((1, 3, *SIZE), dtype=np.float32) for _ in range(4)]
    paths, facts = [fp32], []
    for t in THRESHOLDS:
        path = fp32.with_name(fp32.name.replace(".fp32.", f".int8-{t}."))
        summary = qdq_summary(quantize_int8(fp32, path, calib, min_macs=t))
        paths.append(path)
        facts.append(
            {
                "int8_convs": summary["weighted_int8_nodes"].get("Conv", 0),
                "float_convs": summary["weighted_float_nodes"].get("Conv", 0),
            }
        )
    medians = interleaved_medians_ms(paths, calib[0], threads, spin=False, duration_s=seconds)
    fp32_ms = medians[0][0]
    rows = {
        str(t): {
            "median_ms": round(ms, 3),
            "iterations": n,
            "speedup_vs_fp32": round(fp32_ms / ms, 3),
            **fact,
        }
        for t, (ms, n), fact in zip(THRESHOLDS, medians[1:], facts)
    }
    convs = sum(n.op_type == "Conv" for n in onnx.load(str(fp32)).graph.node)
    return {
        "convs": convs,
        "fp32_median_ms": round(fp32_ms, 3),
        "fp32_iterations": medians[0][1],
        "thresholds": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    """Table: INT8 speed-up over FP32 per model and threshold (the shipped one in bold)."""
    shipped = str(result["shipped_min_macs"])
    cols = list(result["rows"][0]["thresholds"])
    head = " | ".join(
        (f"**{c}** (shipped)" if c == shipped else c) + (" (all Convs)" if c == "0" else "")
        for c in cols
    )
    lines = [
        f"ONNX Runtime CPU, {result['threads']} thread, batch 1, {SIZE[0]}x{SIZE[1]}, "
        "randomly initialised heads; INT8 speed-up over FP32 (> 1 = faster) for each "
        "`MIN_INT8_MACS` threshold (Convs with fewer multiply-adds per output value stay "
        "float); in brackets, Convs quantized of all.",
        "",
        f"| model | width | FP32 ms | {head} |",
        "|---|---:|---:|" + "---:|" * len(cols),
    ]
    for row in result["rows"]:
        cells = []
        for c in cols:
            r = row["thresholds"][c]
            cell = f"{r['speedup_vs_fp32']:.2f}x ({r['int8_convs']}/{row['convs']})"
            cells.append(f"**{cell}**" if c == shipped else cell)
        lines.append(
            f"| {row['model']} | {row['width']} | {row['fp32_median_ms']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="0.125,0.25,1.0")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per file")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "int8_rule.json"
    )
    args = parser.parse_args()

    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    from edgemtl.core.io import atomic_write_text
    from edgemtl.export.int8 import MIN_INT8_MACS

    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgemtl-int8-rule-") as tmp:
        for width in (float(w) for w in args.widths.split(",")):
            for i, (label, (head, student)) in enumerate(models().items()):
                fp32 = export_fp32(Path(tmp) / f"model{i}-{width}.fp32.onnx", head, student, width)
                row = {"model": label, "width": width, **sweep(fp32, args.seconds, args.threads)}
                best = max(row["thresholds"], key=lambda t: row["thresholds"][t]["speedup_vs_fp32"])
                print(f"width {width} {label}: fp32 {row['fp32_median_ms']:.2f} ms, best T={best}")
                rows.append(row)
    result = {
        "benchmark": "int8_rule",
        "schema_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__},
        "threads": args.threads,
        "seconds_per_file": args.seconds,
        "shipped_min_macs": MIN_INT8_MACS,
        "wall_s": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

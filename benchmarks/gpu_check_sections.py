"""The sections of the GPU check (benchmarks/gpu_check.py), each run in its own child process.

    python benchmarks/gpu_check_sections.py SECTION --part FILE --work DIR --device cuda [--smoke]

A child writes its part JSON (`facts`, `rows`) after every row, so a section
stopped at its time cap keeps what it measured; the parent merges the part
into the check's result. Settings: `FULL` (what the H200 run measures) and
`SMOKE` (tiny, seconds on a CPU: the test suite's run of the same code).
Why this size: every section is one function over the same `Plan`, and the two
plans side by side are the place to read what the check measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "synthetic.yaml"


@dataclass(frozen=True)
class Plan:
    """What each section runs. Sizes are HxW; widths are the model's channel multiplier."""

    #: `train`: overrides of recipes/synthetic.yaml, and one extra override set per setting.
    train_overrides: tuple[str, ...]
    train_settings: dict[str, tuple[str, ...]]
    #: `train_full`: benchmarks/train_step_speed.py (the trainer's own step) per option.
    full_args: tuple[str, ...]
    #: `train_step`: benchmarks/train_step.py configs (width, size, batch) and its step counts.
    step_configs: tuple[tuple[float, str, int], ...]
    step_args: tuple[str, ...]
    #: `profile`: checkpoints of this width at each size (one step of this batch); torch
    #: runner batches, timing and CPU threads (None: all).
    profile_width: float
    profile_train_batch: int
    profile_sizes: tuple[tuple[int, int], ...]
    profile_batches: tuple[int, ...]
    profile_timing: dict[str, Any]
    profile_power: bool
    profile_threads: int | None
    #: `cuda_mem`: bytes of the round-trip buffer.
    cuda_mem_bytes: int


SETTINGS = {
    "fp32": (),
    "bf16": ("train.amp=bf16",),
    "fp32 channels_last": ("train.channels_last=true",),
    "bf16 channels_last": ("train.amp=bf16", "train.channels_last=true"),
}
FULL = Plan(
    train_overrides=("train.epochs=2",),
    train_settings=SETTINGS,
    full_args=(
        "--width=1",
        "--size=288x384",
        "--batch=8",
        "--steps=10",
        "--warmup=3",
        "--options=fp32,bf16,channels_last,channels_last+bf16",
    ),
    step_configs=((1.0, "64x128", 8), (1.0, "288x384", 2), (1.0, "288x384", 8)),
    step_args=("--steps=10", "--warmup=3", "--repeats=1"),
    profile_width=1.0,
    profile_train_batch=8,
    profile_sizes=((128, 256), (288, 384)),
    profile_batches=(1, 4, 8),
    profile_timing={"warmup_iterations": 10, "warmup_s": 1.0, "iterations": 100},
    profile_power=True,
    profile_threads=None,
    cuda_mem_bytes=256 * 2**20,
)
SMOKE = Plan(
    train_overrides=(
        "train.epochs=2",
        "data.size=[32,64]",
        "data.synthetic.n_train=8",
        "data.synthetic.n_val=4",
        "data.workers=0",
        "train.batch_size=4",
        "train.threads=1",
    ),
    train_settings={k: SETTINGS[k] for k in ("fp32", "bf16 channels_last")},
    full_args=(
        "--width=0.125",
        "--size=32x64",
        "--batch=2",
        "--steps=1",
        "--warmup=1",
        "--threads=1",
        "--options=fp32,channels_last+bf16",
    ),
    step_configs=((0.125, "32x64", 2),),
    step_args=("--steps=1", "--warmup=0", "--threads=1", "--repeats=1"),
    profile_width=0.125,
    profile_train_batch=2,
    profile_sizes=((32, 64),),
    profile_batches=(1, 2),
    profile_timing={"warmup_iterations": 1, "warmup_s": 0.0, "iterations": 3},
    profile_power=False,
    profile_threads=1,
    cuda_mem_bytes=2**20,
)


class Part:
    """The section's part file: rewritten (atomically) after every row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"facts": {}, "rows": []}

    def fact(self, **facts: Any) -> None:
        self.data["facts"].update(facts)
        self.flush()

    def row(self, row: dict[str, Any]) -> None:
        self.data["rows"].append(row)
        self.flush()

    def flush(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


def section_env(plan: Plan, part: Part, device: str, work: Path) -> None:
    """Versions and device facts; `cuda_available` / `cuda_binding` decide which sections run."""
    import importlib.metadata as md

    import torch

    from edgemtl.deploy.runtime.trt_env import cuda_binding, gpu_facts, import_tensorrt

    def version(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "device_count": torch.cuda.device_count(),
        "cuda_binding": cuda_binding(),
        "tensorrt": import_tensorrt() is not None,
        "packages": {
            n: version(n)
            for n in (
                "edgemtl",
                "numpy",
                "onnx",
                "onnxruntime",
                "onnxscript",
                "onnxsim",
                "pydantic",
                "cuda-bindings",
                "nvidia-ml-py",
            )
        },
    }
    if facts["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        facts.update(
            gpu=torch.cuda.get_device_name(0),
            compute_capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            bf16_supported=torch.cuda.is_bf16_supported(),
            allow_tf32={
                "matmul": torch.backends.cuda.matmul.allow_tf32,
                "cudnn": torch.backends.cudnn.allow_tf32,
            },
        )
        if facts["cuda_binding"]:
            facts["cuda_driver"] = gpu_facts().get("cuda_driver")
    import onnxruntime

    facts["onnxruntime_providers"] = onnxruntime.get_available_providers()
    part.fact(**facts)


def section_cuda_mem(plan: Plan, part: Part, device: str, work: Path) -> None:
    """The TensorRT runner's buffer path (`CudaApi`) without TensorRT: pinned host buffers,
    a device buffer, H2D and D2H copies on a stream, CUDA events around each copy."""
    import numpy as np

    from edgemtl.deploy.runtime.cuda_mem import open_cuda
    from edgemtl.deploy.runtime.trt_env import gpu_facts

    part.fact(**gpu_facts())
    n = plan.cuda_mem_bytes // 4
    api = open_cuda()
    try:
        src, back = api.pinned((n,), np.float32), api.pinned((n,), np.float32)
        src[:] = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        dev, stream = api.malloc(src.nbytes), api.stream()
        marks = [api.event() for _ in range(3)]
        for repeat in range(5):
            back[:] = 0
            api.record(marks[0], stream)
            api.htod(dev, src, stream)
            api.record(marks[1], stream)
            api.dtoh(back, dev, stream)
            api.record(marks[2], stream)
            api.sync(stream)
            h2d, d2h = api.elapsed_ms(marks[0], marks[1]), api.elapsed_ms(marks[1], marks[2])
            part.row(
                {
                    "kind": "pinned",
                    "repeat": repeat,
                    "bytes": int(src.nbytes),
                    "round_trip_equal": bool(np.array_equal(src, back)),
                    "h2d_ms": h2d,
                    "d2h_ms": d2h,
                    "h2d_gb_s": src.nbytes / h2d / 1e6 if h2d > 0 else None,
                    "d2h_gb_s": src.nbytes / d2h / 1e6 if d2h > 0 else None,
                }
            )
        small = np.arange(4096, dtype=np.float32)  # pageable (ordinary numpy) host memory
        small_back = np.zeros_like(small)
        api.htod(dev, small, stream)
        api.dtoh(small_back, dev, stream)
        api.sync(stream)
        part.row(
            {
                "kind": "pageable",
                "bytes": int(small.nbytes),
                "round_trip_equal": bool(np.array_equal(small, small_back)),
            }
        )
        api.free(dev)
    finally:
        api.close()
    if not all(r["round_trip_equal"] for r in part.data["rows"]):
        raise SystemExit("cuda_mem: a round trip did not return the bytes it sent")


def section_train(plan: Plan, part: Part, device: str, work: Path) -> None:
    """`edgemtl train recipes/synthetic.yaml` (the trainer's fit) per setting: img/s, peak memory.

    `img_per_s_steady`: batch / median interval between steps of the last epoch
    (data loading, host->device copies from pinned memory, the step);
    `img_per_s_fit`: summary.json's training images / fit wall time (evaluation
    and checkpoint saves included).
    """
    import shutil
    import statistics

    import torch

    from edgemtl.core.config import load_recipe
    from edgemtl.training.checkpoint import load_checkpoint
    from edgemtl.training.trainer import Position, Trainer

    for label, extra in plan.train_settings.items():
        recipe = load_recipe(RECIPE, [*plan.train_overrides, *extra])
        stamps: list[tuple[int, float]] = []

        def stamp(position: Position) -> None:
            stamps.append((position.epoch, time.perf_counter()))

        run_dir = work / "train" / label.replace(" ", "-")
        trainer = Trainer(recipe, run_dir, device=device, quiet=True, step_callback=stamp)
        trainer.init_from_data()
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        summary = trainer.fit()
        last = recipe.train.epochs - 1
        times = [t for e, t in stamps if e == last]
        gaps = [b - a for a, b in zip(times, times[1:])]
        steady = statistics.median(gaps) if gaps else None
        ckpt = load_checkpoint(run_dir / "last.pt")  # on the CPU, weights_only
        finite = all(
            bool(torch.isfinite(v).all()) for v in ckpt.model.values() if v.is_floating_point()
        )
        final = summary["final"]
        part.row(
            {
                "setting": label,
                "overrides": list(extra),
                "device": str(trainer.device),
                "width": recipe.model.width,
                "size": list(recipe.data.size),
                "batch": recipe.train.batch_size,
                "epochs": recipe.train.epochs,
                "steps": len(stamps),
                "img_per_s_steady": recipe.train.batch_size / steady if steady else None,
                "img_per_s_fit": summary["train_images_per_s"],
                "fit_s": summary["wall_time_s"],
                "peak_mem_mib": torch.cuda.max_memory_allocated() / 2**20
                if device == "cuda"
                else None,
                "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20
                if device == "cuda"
                else None,
                "pin_memory": trainer.device.type == "cuda",
                "checkpoint_finite": finite,
                "final_seg_miou": {h: final[h]["seg"]["miou"] for h in final if "seg" in final[h]},
            }
        )
        del trainer
        shutil.rmtree(run_dir, ignore_errors=True)
        if device == "cuda":
            torch.cuda.empty_cache()
        if not finite:
            raise SystemExit(f"train {label}: non-finite weights in last.pt")


def _script(args: list[str], out: Path) -> dict[str, Any]:
    """Run a benchmarks/ script with `--out out` in a child; its JSON result."""
    proc = subprocess.run(
        [sys.executable, *args, "--out", str(out)], cwd=REPO, capture_output=True, text=True
    )
    sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} exited {proc.returncode}")
    return json.loads(out.read_text())


def section_train_full(plan: Plan, part: Part, device: str, work: Path) -> None:
    """The trainer's own step at full width per speed option (benchmarks/train_step_speed.py)."""
    script = str(REPO / "benchmarks" / "train_step_speed.py")
    result = _script([script, "--device", device, *plan.full_args], work / "train_full.json")
    part.fact(torch=result["torch"], gpu=result["gpu"])
    for row in result["rows"]:
        part.row(row)


def section_train_step(plan: Plan, part: Part, device: str, work: Path) -> None:
    """vanilla vs sd training steps (benchmarks/train_step.py) per (width, size, batch)."""
    script = str(REPO / "benchmarks" / "train_step.py")
    for i, (width, size, batch) in enumerate(plan.step_configs):
        args = [script, "--device", device, "--rows", "vanilla,sd", *plan.step_args]
        args += ["--width", str(width), "--size", size, "--batch", str(batch)]
        result = _script(args, work / f"train_step_{i}.json")
        for row in result["rows"]:
            part.row({"width": width, "size": size, "batch": batch, **row})


def _one_step_checkpoint(plan: Plan, size: tuple[int, int], device: str, work: Path) -> Path:
    """last.pt after one optimizer step of the sd method (both heads) at `size`."""
    from edgemtl.core.config import load_recipe
    from edgemtl.training.trainer import Position, Trainer, TrainingInterrupted

    overrides = [
        f"model.width={plan.profile_width}",
        f"data.size=[{size[0]},{size[1]}]",
        f"data.synthetic.n_train={plan.profile_train_batch}",
        "data.synthetic.n_val=2",
        "data.workers=0",
        f"train.batch_size={plan.profile_train_batch}",
        "train.epochs=1",
    ]
    if plan.profile_threads:
        overrides.append(f"train.threads={plan.profile_threads}")

    def stop(position: Position) -> None:
        if position.global_step == 1:
            raise KeyboardInterrupt

    run_dir = work / f"ckpt-{size[0]}x{size[1]}"
    trainer = Trainer(load_recipe(RECIPE, overrides), run_dir, device, True, step_callback=stop)
    trainer.init_from_data()
    try:
        trainer.fit()
    except TrainingInterrupted:
        pass
    return run_dir / "last.pt"


def section_profile(plan: Plan, part: Part, device: str, work: Path) -> None:
    """Student and Teacher of one-step checkpoints through the torch runner (CUDA events):
    p50 / p99 ms per batch at each size."""
    from edgemtl.core.options import ArtifactChoice
    from edgemtl.deploy.profile.command import ProfileOptions, run_profile
    from edgemtl.deploy.profile.timing import TimingConfig
    from edgemtl.deploy.runtime.base import RunnerOptions

    for size in plan.profile_sizes:
        ckpt = _one_step_checkpoint(plan, size, device, work)
        for head in ("student", "teacher"):
            options = ProfileOptions(
                batches=plan.profile_batches,
                timing=TimingConfig(**plan.profile_timing),
                runner=RunnerOptions(device=device, threads=plan.profile_threads),
                select=ArtifactChoice(head=head),
                power=plan.profile_power,
                idle_s=1.0,
                quiet=True,
            )
            result = run_profile([ckpt], options)
            artifact = result["artifacts"][0]
            part.fact(environment=result["environment"])
            for row in artifact["rows"]:
                if "skipped" in row:
                    part.row({"size": list(size), "head": head, **row})
                    continue
                lat, e2e = row["latency"], row["end_to_end"]
                part.row(
                    {
                        "size": list(size),
                        "width": plan.profile_width,
                        "head": head,
                        "params_m": (artifact["params"] or 0) / 1e6,
                        "batch": row["batch"],
                        "latency_kind": row["latency_kind"],
                        "p50_ms": lat["median_ms"],
                        "p99_ms": lat["p99_ms"],
                        "cv_percent": lat["cv_percent"],
                        "img_per_s": lat["images_per_s"],
                        "count": lat["count"],
                        "e2e_p50_ms": e2e["median_ms"],
                        "e2e_p99_ms": e2e["p99_ms"],
                        "power": row.get("power"),
                    }
                )
        ckpt.unlink()


SECTIONS = {
    "env": section_env,
    "cuda_mem": section_cuda_mem,
    "train": section_train,
    "train_full": section_train_full,
    "train_step": section_train_step,
    "profile": section_profile,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--part", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    part = Part(args.part)
    part.flush()
    SECTIONS[args.section](SMOKE if args.smoke else FULL, part, args.device, args.work)


if __name__ == "__main__":
    main()

"""The torch-free export stages: finish an ONNX file, derive FP16/INT8, build engines.

Why torch-free: exactly these stages run from a bundle on a device without
PyTorch, with the FP32 ONNX as the reference; from a checkpoint the same code
runs after the torch exporter has produced and gated the FP32 ONNX.
Every stage writes into the bundle writer's staging folder and returns the
manifest entry, gate results included; a failed gate raises UserError.

Why this size: the stages (finish, FP16, INT8, engine) share `Context` and the
proof/gate helpers and run in sequence, so they read as one pipeline here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.io import sha256_file
from edgemtl.core.manifest import (
    Artifact,
    BatchEntry,
    Check,
    OutputEntry,
    Parity,
    Precision,
    TrtInfo,
    embed_metadata,
)
from edgemtl.core.tasks import TaskSpec
from edgemtl.data.preprocess import InputSpec
from edgemtl.export import onnx_tools, parity
from edgemtl.export.bundle import BundleWriter
from edgemtl.export.samples import SampleSet


@dataclass
class Context:
    """What every stage needs; built once per `export` run."""

    writer: BundleWriter
    tasks: dict[str, TaskSpec]
    spec: InputSpec
    tol: parity.Tolerances
    samples: SampleSet
    feed: int = 1  # parity batch size (the fixed batch, or a small one for dynamic graphs)
    max_batch: int = 1
    unpool: bool = False
    say: Callable[[str], None] = lambda _msg: None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return self.writer.manifest.outputs_mode

    @property
    def head(self) -> str:
        return self.writer.manifest.head

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.say(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)


def onnx_name(head: str, precision: str) -> str:
    return f"{head}.{precision}.onnx"


def output_entries(tasks: dict[str, TaskSpec], mode: str, model: Any) -> list[OutputEntry]:
    shapes = {o["name"]: o for o in onnx_tools.io_info(model)["outputs"]}
    entries = []
    for key, task in tasks.items():
        name = task.output_name(mode)
        if name not in shapes:
            raise UserError(
                f"exported graph has no output {name!r} for task {key} (it has {', '.join(shapes)})"
            )
        entries.append(
            OutputEntry(
                name=name,
                task=key,
                shape=shapes[name]["shape"],
                dtype=shapes[name]["dtype"],
                meaning=task.task_kind.output_meaning(mode),
            )
        )
    return entries


def batch_entry(model: Any, ctx: Context) -> BatchEntry:
    first = onnx_tools.io_info(model)["inputs"][0]["shape"][0]
    if isinstance(first, int) and first > 0:
        return BatchEntry(dynamic=False, min=first, opt=first, max=first)
    return BatchEntry(
        dynamic=True, min=1, opt=max(1, min(ctx.feed, ctx.max_batch)), max=ctx.max_batch
    )


def finish_onnx(
    ctx: Context, model: Any, precision: str, proof: Parity | None, built_from: str | None = None
) -> Artifact:
    """Embed metadata, save to staging, checksum; the manifest entry (not yet registered)."""
    name = onnx_name(ctx.head, precision)
    art = Artifact(
        file=name,
        format="onnx",
        precision=cast(Precision, precision),
        sha256="",
        opset=onnx_tools.opset(model),
        outputs=output_entries(ctx.tasks, ctx.mode, model),
        batch=batch_entry(model, ctx),
        parity=proof,
        built_from=built_from,
    )
    embed_metadata(model, ctx.writer.manifest, art)
    path = ctx.writer.path(name)
    onnx_tools.save(model, path)
    onnx_tools.full_check(path)
    art.sha256 = sha256_file(path)
    art.size_bytes = path.stat().st_size
    return art


def run_onnx(ctx: Context, path: Path) -> dict[str, np.ndarray]:
    sess = onnx_tools.session(path)
    return onnx_tools.run_batches(sess, ctx.samples.batches(ctx.feed))


def proof(
    ctx: Context,
    reference: str,
    checks: dict[str, dict[str, Check]],
    metrics: dict[str, Any] | None = None,
) -> Parity:
    return Parity(
        reference=reference,
        inputs="random" if ctx.samples.kind == "random" else "dataset",
        samples=len(ctx.samples),
        passed=parity.all_passed(checks),
        checks=checks,
        metrics=metrics,
    )


def gate(what: str, result: Parity) -> None:
    """Raise with every failed number; nothing staged reaches the bundle."""
    if not result.passed:
        raise UserError(
            f"parity gate failed for {what} vs {result.reference} on {result.samples} "
            f"{result.inputs} samples: " + "; ".join(parity.failures(result.checks))
        )


def derive_fp16(ctx: Context, fp32_path: Path, reference: dict[str, np.ndarray]) -> Artifact:
    from edgemtl.export.fp16 import to_fp16

    with ctx.step("fp16: convert"):
        model = to_fp16(onnx_tools.load(fp32_path))
        art = finish_onnx(ctx, model, "fp16", None, built_from=fp32_path.name)
    with ctx.step("fp16: parity"):
        outputs = run_onnx(ctx, ctx.writer.path(art.file))
        art.parity = proof(
            ctx,
            fp32_path.name,
            parity.compare_fp16(ctx.tasks, ctx.mode, reference, outputs, ctx.tol),
        )
    gate(art.file, art.parity)
    return art


def sample_metrics(ctx: Context, outputs: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    from edgemtl.evaluation.scoring import metric_set

    metrics = metric_set(list(ctx.tasks.values()))
    metrics.update(parity.decode_all(ctx.tasks, ctx.mode, outputs), ctx.samples.targets)
    return metrics.compute()


def derive_int8(
    ctx: Context, fp32_path: Path, reference: dict[str, np.ndarray], calib: SampleSet
) -> Artifact:
    from edgemtl.export.int8 import qdq_summary, quantize_int8

    name = onnx_name(ctx.head, "int8")
    with ctx.step(f"int8: calibrate on {len(calib)} {calib.kind} images"):
        raw = ctx.writer.path(name + ".raw")
        model = quantize_int8(fp32_path, raw, calib.batches(ctx.feed))
        raw.unlink(missing_ok=True)
        art = finish_onnx(ctx, model, "int8", None, built_from=fp32_path.name)
    with ctx.step("int8: parity"):
        outputs = run_onnx(ctx, ctx.writer.path(art.file))
        facts: dict[str, Any] = {
            "qdq": qdq_summary(model),
            "calibration": {"images": len(calib), "inputs": calib.kind},
        }
        if ctx.samples.kind == "dataset" and ctx.samples.targets:
            ref_m, cand_m = sample_metrics(ctx, reference), sample_metrics(ctx, outputs)
            checks = parity.compare_int8(ref_m, cand_m, ctx.tasks, ctx.tol)
            facts.update(
                reference=ref_m, candidate=cand_m, delta=parity.metric_deltas(ref_m, cand_m)
            )
        else:  # no targets: closeness to FP32 with the looser INT8 reading of the FP16 bounds
            loose = parity.Tolerances.with_overrides(
                {
                    "fp16_label_agreement": 100.0 - ctx.tol.int8_miou_drop,
                    "fp16_rel_diff": ctx.tol.int8_depth_abs_rise,
                    "fp16_normal_deg": 5.0,
                }
            )
            checks = parity.compare_fp16(ctx.tasks, ctx.mode, reference, outputs, loose)
        art.parity = proof(ctx, fp32_path.name, checks, facts)
    gate(art.file, art.parity)
    with ctx.step("int8: speed vs fp32 (ONNX Runtime CPU)"):
        from edgemtl.export.speed import measure_speedup

        batch = np.ascontiguousarray(ctx.samples.batches(ctx.feed)[0], dtype=np.float32)
        art.speedup = measure_speedup(ctx.writer.path(art.file), fp32_path, batch)
    return art


def build_engine_artifact(
    ctx: Context,
    precision: str,
    onnx_paths: dict[str, Path],
    reference: dict[str, np.ndarray],
    upsampling: str,
) -> Artifact:
    """Build `<head>.<precision>.trt` from the ONNX the strategy names, then check it on the GPU."""
    from edgemtl.export import tensorrt_build as tb

    trt = tb.import_tensorrt()
    if trt is None:
        raise UserError("TensorRT is not installed here")
    strategy = tb.choose_strategy(str(trt.__version__), precision, upsampling, ctx.head)
    source = onnx_paths.get(strategy.onnx_precision)
    if source is None:
        raise UserError(
            f"TensorRT {trt.__version__} builds {precision} from the {strategy.onnx_precision} "
            "ONNX, "
            f"which this bundle lacks: add --{strategy.onnx_precision}"
        )
    name = tb.engine_file(ctx.head, precision)
    fp32_model = onnx_tools.load(onnx_paths["fp32"])
    batch = batch_entry(fp32_model, ctx)
    with ctx.step(f"tensorrt: build {name}"):
        result = tb.build_engine(
            source,
            ctx.writer.path(name),
            strategy,
            input_name=onnx_tools.io_info(fp32_model)["inputs"][0]["name"],
            chw=(3, ctx.spec.height, ctx.spec.width),
            batch=(batch.min, batch.opt, batch.max),
            dynamic=batch.dynamic,
            timing_cache=ctx.writer.path("timing.cache"),
        )
    art = Artifact(
        file=name,
        format="trt",
        precision=cast(Precision, precision),
        sha256=sha256_file(result.engine),
        size_bytes=result.engine.stat().st_size,
        outputs=output_entries(ctx.tasks, ctx.mode, fp32_model),
        batch=batch,
        built_from=source.name,
    )
    art.trt = TrtInfo(**result.trt_record(strategy, source.name))
    with ctx.step(f"tensorrt: parity {name}"):
        outputs = _run_engine(ctx, art)
        if outputs is None:
            ctx.notes.append(
                f"{name}: no CUDA binding to run the engine here, parity not checked "
                "(run edgemtl profile on it)"
            )
            return art
        if precision == "int8" and ctx.samples.targets:
            ref_m, cand_m = sample_metrics(ctx, reference), sample_metrics(ctx, outputs)
            checks = parity.compare_int8(ref_m, cand_m, ctx.tasks, ctx.tol)
        else:  # TF32/FP16 kernels: the FP16 bounds against the FP32 ONNX
            checks = parity.compare_fp16(ctx.tasks, ctx.mode, reference, outputs, ctx.tol)
        art.parity = proof(ctx, onnx_paths["fp32"].name, checks)
    gate(name, art.parity)
    return art


def _run_engine(ctx: Context, art: Artifact) -> dict[str, np.ndarray] | None:
    from edgemtl.deploy.runtime.base import ModelRef, RunnerOptions
    from edgemtl.deploy.runtime.trt_env import cuda_binding

    if cuda_binding() is None:
        return None
    from edgemtl.deploy.runtime.tensorrt_runner import TrtRunner

    manifest = ctx.writer.manifest.model_copy(deep=True)
    manifest.artifacts = [art]
    ref = ModelRef(
        path=ctx.writer.path(art.file),
        format="trt",
        manifest=manifest,
        artifact=art,
        bundle=ctx.writer.stage,
        precision=art.precision,
    )
    chunks: dict[str, list[np.ndarray]] = {}
    with TrtRunner(ref, RunnerOptions(device="cuda")) as runner:
        for batch in ctx.samples.batches(ctx.feed):
            for key, value in runner.infer(batch).items():
                chunks.setdefault(key, []).append(np.asarray(value))
    return {k: np.concatenate(v) for k, v in chunks.items()}

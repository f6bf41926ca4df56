"""What both sources of `edgemtl export` share: engine plan, FP16/INT8/engines, summary.

Why apart from command.py: the checkpoint source lives on the torch side
(`edgemtl.training.export.command`), the bundle source here; both derive the
same artifacts from their FP32 ONNX and end with the same table (docs/export.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edgemtl.core.errors import UserError
from edgemtl.core.manifest import Artifact
from edgemtl.core.tasks import TaskSpec
from edgemtl.data.preprocess import InputSpec
from edgemtl.export import parity
from edgemtl.export.bundle import BundleWriter
from edgemtl.export.options import ExportOptions
from edgemtl.export.pipeline import (
    Context,
    build_engine_artifact,
    derive_fp16,
    derive_int8,
    onnx_name,
)
from edgemtl.export.samples import SampleSet, load_samples


def trt_plan(requested: bool | None, head: str, upsampling: str) -> tuple[bool, str]:
    """(build engines?, note). Refuses up front when engines were demanded but cannot be built."""
    from edgemtl.export import tensorrt_build as tb

    if requested is False:
        return False, ""
    if tb.unpool_blocked(head, upsampling):
        if requested:
            tb.refuse_unpool(head, upsampling)
        return False, f"TensorRT: not possible for the unpool {head} head (ONNX Runtime only)"
    ok, why = tb.availability()
    if not ok and requested:
        raise UserError(
            f"--trt: {why}; export without --trt here and build the engine on the target device"
        )
    return ok, "" if ok else why


def new_context(
    writer: BundleWriter,
    spec: InputSpec,
    tol: parity.Tolerances,
    sample_set: SampleSet,
    dynamic: bool,
    max_batch: int,
    upsampling: str,
    console: Console,
    say: Callable[[str], None],
) -> Context:
    """The export run's Context; random parity inputs are noted and warned about here.

    `dynamic`: the FP32 ONNX has a dynamic batch (feeds min(4, max_batch) at once).
    """
    from edgemtl.export.tensorrt_build import unpool_blocked

    tasks = {
        k: TaskSpec.from_dict(t.model_dump(mode="json")) for k, t in writer.manifest.tasks.items()
    }
    feed = min(4, max_batch) if dynamic else 1
    ctx = Context(
        writer,
        tasks,
        spec,
        tol,
        sample_set,
        feed=feed,
        max_batch=max_batch if dynamic else 1,
        unpool=unpool_blocked(writer.manifest.head, upsampling),
        say=say,
    )
    if sample_set.kind == "random":
        note = f"parity on random normalised inputs (dataset unavailable: {sample_set.reason})"
        ctx.notes.append(note)
        console.print(f"[yellow]warning:[/] {note}")
    return ctx


def derive(
    ctx: Context,
    fp32_path: Path,
    reference: dict[str, Any],
    opts: ExportOptions,
    build_trt: bool,
    upsampling: str,
    default_engines: tuple[str, ...],
) -> None:
    """FP16/INT8 ONNX as `opts` asks (kept when already in the bundle, unless --force), then
    engines: the requested precisions, else `default_engines`."""
    writer = ctx.writer
    onnx_paths = {"fp32": fp32_path}
    requested = (("fp16", opts.fp16), ("int8", opts.int8))
    for precision, wanted in requested:
        name = onnx_name(ctx.head, precision)
        old = writer.existing(name)
        if (
            old is not None
            and not writer.force
            and (not wanted or old.built_from == fp32_path.name)
        ):
            onnx_paths[precision] = writer.final / name
            continue
        if not wanted:
            continue
        if precision == "fp16":
            art = derive_fp16(ctx, fp32_path, reference)
        else:
            keys = list(ctx.tasks)
            calib_set = load_samples(
                writer.manifest.dataset, ctx.spec, keys, "train", opts.calib, opts.data_root
            )
            if calib_set.kind == "random":
                ctx.notes.append(
                    f"INT8 calibrated on random inputs (dataset unavailable: {calib_set.reason})"
                )
            art = derive_int8(ctx, fp32_path, reference, calib_set)
        writer.add(art)
        onnx_paths[precision] = writer.path(name) if name in writer.staged else writer.final / name
    if not build_trt:
        return
    precisions = [p for p, w in requested if w] or list(default_engines)
    cache = writer.final / "timing.cache"
    if cache.is_file():
        shutil.copy2(cache, writer.path("timing.cache"))
    for precision in precisions:
        from edgemtl.export.tensorrt_build import engine_file

        if writer.existing(engine_file(ctx.head, precision)) is not None and not writer.force:
            ctx.notes.append(
                f"{engine_file(ctx.head, precision)}: already in the bundle (--force to rebuild)"
            )
            continue
        art = build_engine_artifact(ctx, precision, onnx_paths, reference, upsampling)
        writer.add(art, extra_files=("timing.cache",))


# ---- the end of the run ------------------------------------------------------------------


def summary(ctx: Context, writer: BundleWriter) -> dict[str, Any]:
    """The command's result: bundle, head, artifacts, status, timings, notes, parity_inputs."""
    return {
        "bundle": str(writer.final),
        "head": writer.manifest.head,
        "artifacts": [a.model_dump(mode="json") for a in writer.manifest.artifacts],
        "status": dict(writer.status),
        "timings": dict(ctx.timings),
        "notes": list(ctx.notes),
        "parity_inputs": ctx.samples.kind,
    }


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def print_end(result: dict[str, Any], console: Console) -> None:
    """The closing table (file, size, precision, parity, speed-up where measured, status),
    notes and next commands."""
    table = Table(title=f"export bundle {result['bundle']}")
    table.add_column("file", no_wrap=True)
    for col in ("size", "precision", "parity", "speed", "status"):
        table.add_column(col)
    slower = []
    for raw in result["artifacts"]:
        art = Artifact.model_validate(raw)
        if art.parity is None:
            verdict = "not checked"
        else:
            verdict = ("pass" if art.parity.passed else "FAIL") + f" vs {art.parity.reference}"
            if art.parity.inputs == "random":
                verdict += " (random inputs)"
        speed = ""
        if art.speedup is not None:
            speed = f"{art.speedup.ratio:.2f}x"
            if art.speedup.ratio < 1:
                slower.append(art)
        table.add_row(
            art.file,
            _size(art.size_bytes),
            art.precision,
            verdict,
            speed,
            result["status"].get(art.file, "kept"),
        )
    console.print(table)
    for art in slower:
        assert art.speedup is not None
        console.print(
            f"note: {art.file} ran at {art.speedup.ratio:.2f}x the speed of "
            f"{art.speedup.reference} here ({art.speedup.median_ms:.2f} vs "
            f"{art.speedup.reference_median_ms:.2f} ms, ONNX Runtime CPU, "
            f"{art.speedup.threads} thread(s)): {art.precision} does not pay on this machine"
        )
    for note in result["notes"]:
        console.print(f"note: {note}")
    bundle = result["bundle"]
    console.print(f"next: edgemtl profile {bundle}")
    if not any(a["format"] == "trt" for a in result["artifacts"]) and not any(
        "not possible" in n for n in result["notes"]
    ):
        console.print(
            f"on the target device (TensorRT + GPU): edgemtl export {bundle} --fp16   "
            f"(or --int8; builds {result['head']}.<precision>.trt from this bundle)"
        )

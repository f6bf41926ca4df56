"""`edgemtl export`: a checkpoint or a bundle in, a gated bundle out.

Torch-free at import: the checkpoint path imports `from_checkpoint` (torch)
only when a checkpoint is given, so `edgemtl export BUNDLE` runs on a device
without PyTorch. The lead's typer wrapper calls `export_command`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edgemtl.core.errors import UserError
from edgemtl.core.heads import bundle_head
from edgemtl.core.manifest import (
    MANIFEST_NAME,
    Artifact,
    find_artifact,
    load_manifest,
    verify_artifact,
)
from edgemtl.core.tasks import TaskSpec
from edgemtl.data.preprocess import InputSpec
from edgemtl.export import parity
from edgemtl.export.bundle import BundleWriter, open_existing
from edgemtl.export.options import ExportOptions
from edgemtl.export.pipeline import (
    Context,
    build_engine_artifact,
    derive_fp16,
    derive_int8,
    onnx_name,
    run_onnx,
)
from edgemtl.export.samples import SampleSet, load_samples


def export_command(source: Path | None, options: ExportOptions) -> dict[str, Any]:
    """Export one head; returns a summary (bundle, artifacts, timings, notes).

    `source`: checkpoint file, bundle folder, or None (newest `options.runs_dir/*/best.pt`).
    """
    console = Console(stderr=True, quiet=options.quiet)
    tol = parity.Tolerances.with_overrides(dict(options.tolerances))
    if source is None:
        from edgemtl.training.checkpoint import latest_best

        source = latest_best(options.runs_dir)
        console.print(f"exporting the newest checkpoint: {source}")
    source = Path(source)
    out = options.out
    if not source.exists():
        raise UserError(f"{source}: no such checkpoint file or bundle folder")
    if source.is_dir() and out is not None and Path(out).resolve() != source.resolve():
        raise UserError(f"--out {out}: exporting from bundle {source} adds to that bundle; "
                        "copy it first")
    if source.is_dir() and options.dynamic_batch:
        raise UserError(f"--dynamic-batch: {source} is a bundle, whose batch mode was fixed "
                        "when its FP32 ONNX was exported; re-export from the checkpoint")
    with console.status("export", spinner="dots") as status:
        def say(msg: str) -> None:
            status.update(f"export: {msg}")

        if source.is_dir():
            result = _from_bundle(source, options, tol, console, say)
        else:
            result = _from_checkpoint(source, options, tol, console, say)
    _print_end(result, Console(quiet=options.quiet))
    return result


# ---- the two entry points ----------------------------------------------------------------


def _trt_plan(requested: bool | None, head: str, upsampling: str) -> tuple[bool, str]:
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
        raise UserError(f"--trt: {why}; export without --trt here and build the engine on the target device")
    return ok, "" if ok else why


def _context(writer: BundleWriter, spec: InputSpec, tol: parity.Tolerances, sample_set: SampleSet,
             dynamic: bool, max_batch: int, upsampling: str, console: Console,
             say: Callable[[str], None]) -> Context:
    tasks = {k: TaskSpec.from_dict(t.model_dump(mode="json")) for k, t in writer.manifest.tasks.items()}
    feed = min(4, max_batch) if dynamic else 1
    from edgemtl.export.tensorrt_build import unpool_blocked

    unpool = unpool_blocked(writer.manifest.head, upsampling)
    ctx = Context(writer, tasks, spec, tol, sample_set, feed=feed,
                  max_batch=max_batch if dynamic else 1, unpool=unpool, say=say)
    if sample_set.kind == "random":
        note = f"parity on random normalised inputs (dataset unavailable: {sample_set.reason})"
        ctx.notes.append(note)
        console.print(f"[yellow]warning:[/] {note}")
    return ctx


def _from_checkpoint(path: Path, opts: ExportOptions, tol: parity.Tolerances, console: Console,
                     say: Callable[[str], None]) -> dict[str, Any]:
    from edgemtl.core.checkpoint_manifest import manifest_from_checkpoint
    from edgemtl.training.checkpoint import load_checkpoint
    from edgemtl.training.export import from_checkpoint as fc

    ckpt = load_checkpoint(path)
    fresh = manifest_from_checkpoint(ckpt, path, opts.head, opts.outputs)
    head, upsampling = fresh.head, fresh.upsampling
    build_trt, trt_note = _trt_plan(opts.trt, head, upsampling)
    suffix = "-decoded" if opts.outputs == "decoded" else ""
    final = opts.out or opts.export_dir / f"{path.parent.name}-{head}{suffix}"
    manifest = open_existing(final, fresh, opts.force)
    writer = BundleWriter(final, manifest, opts.force)
    try:
        spec = InputSpec.from_dict(fresh.input.input_spec_dict())
        keys = list(fresh.tasks)
        sample_set = load_samples(fresh.dataset, spec, keys, "val", opts.samples, opts.data_root)
        ctx = _context(writer, spec, tol, sample_set, opts.dynamic_batch, opts.max_batch,
                       upsampling, console, say)
        if trt_note:
            ctx.notes.append(trt_note)
        art, reference = fc.export_fp32(ctx, ckpt, opts.simplify, opts.dynamic_batch)
        writer.add(art)
        if writer.status[art.file] == "replaced":
            writer.drop_derived_from(art.file)
        fp32_path = writer.path(art.file) if art.file in writer.staged else final / art.file
        _derive(ctx, fp32_path, reference, opts, build_trt, upsampling, default_engines=("fp32",))
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return _summary(ctx, writer)


def _from_bundle(bundle: Path, opts: ExportOptions, tol: parity.Tolerances, console: Console,
                 say: Callable[[str], None]) -> dict[str, Any]:
    manifest = load_manifest(bundle)
    bundle_head(bundle, manifest.head, opts.head)
    if opts.outputs != "raw" and opts.outputs != manifest.outputs_mode:
        raise UserError(f"{bundle}: this bundle's outputs are {manifest.outputs_mode}; "
                        "re-export from the checkpoint")
    for art in manifest.artifacts:
        verify_artifact(bundle, art)
    fp32 = find_artifact(manifest, "onnx", "fp32")
    if fp32 is None:
        raise UserError(f"{bundle / MANIFEST_NAME}: no fp32 ONNX artifact to derive from")
    build_trt, trt_note = _trt_plan(opts.trt, manifest.head, manifest.upsampling)
    writer = BundleWriter(bundle, manifest, opts.force)
    try:
        spec = InputSpec.from_dict(manifest.input.input_spec_dict())
        sample_set = load_samples(manifest.dataset, spec, list(manifest.tasks), "val", opts.samples,
                                  opts.data_root)
        ctx = _context(writer, spec, tol, sample_set, fp32.batch.dynamic, max(fp32.batch.max, 1),
                       manifest.upsampling, console, say)
        if trt_note:
            ctx.notes.append(trt_note)
        fp32_path = bundle / fp32.file
        with ctx.step("fp32: reference outputs (ONNX Runtime)"):
            reference = run_onnx(ctx, fp32_path)
        present = tuple(a.precision for a in manifest.artifacts if a.format == "onnx")
        _derive(ctx, fp32_path, reference, opts, build_trt, manifest.upsampling,
                default_engines=present)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return _summary(ctx, writer)


def _derive(ctx: Context, fp32_path: Path, reference: dict[str, Any], opts: ExportOptions,
            build_trt: bool, upsampling: str, default_engines: tuple[str, ...]) -> None:
    """FP16/INT8 ONNX (kept when already in the bundle, unless --force), then engines."""
    writer = ctx.writer
    onnx_paths = {"fp32": fp32_path}
    requested = (("fp16", opts.fp16), ("int8", opts.int8))
    for precision, wanted in requested:
        name = onnx_name(ctx.head, precision)
        old = writer.existing(name)
        if old is not None and not writer.force and (not wanted or old.built_from == fp32_path.name):
            onnx_paths[precision] = writer.final / name
            continue
        if not wanted:
            continue
        if precision == "fp16":
            art = derive_fp16(ctx, fp32_path, reference)
        else:
            keys = list(ctx.tasks)
            calib_set = load_samples(writer.manifest.dataset, ctx.spec, keys, "train", opts.calib,
                                     opts.data_root)
            if calib_set.kind == "random":
                ctx.notes.append("INT8 calibrated on random inputs "
                                 f"(dataset unavailable: {calib_set.reason})")
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
            ctx.notes.append(f"{engine_file(ctx.head, precision)}: already in the bundle (--force to rebuild)")
            continue
        art = build_engine_artifact(ctx, precision, onnx_paths, reference, upsampling)
        writer.add(art, extra_files=("timing.cache",))


# ---- the end of the run ------------------------------------------------------------------


def _summary(ctx: Context, writer: BundleWriter) -> dict[str, Any]:
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


def _print_end(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"export bundle {result['bundle']}")
    for col in ("file", "size", "precision", "parity", "status"):
        table.add_column(col)
    for raw in result["artifacts"]:
        art = Artifact.model_validate(raw)
        if art.parity is None:
            verdict = "not checked"
        else:
            verdict = ("pass" if art.parity.passed else "FAIL") + f" vs {art.parity.reference}"
            if art.parity.inputs == "random":
                verdict += " (random inputs)"
        table.add_row(art.file, _size(art.size_bytes), art.precision, verdict,
                      result["status"].get(art.file, "kept"))
    console.print(table)
    for note in result["notes"]:
        console.print(f"note: {note}")
    bundle = result["bundle"]
    console.print(f"next: edgemtl profile {bundle}")
    if not any(a["format"] == "trt" for a in result["artifacts"]) and not any(
            "not possible" in n for n in result["notes"]):
        console.print(f"on the target device (TensorRT + GPU): edgemtl export {bundle} --fp16   "
                      f"(or --int8; builds {result['head']}.<precision>.trt from this bundle)")

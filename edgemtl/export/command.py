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

from edgemtl.data.preprocess import InputSpec
from edgemtl.core.errors import UserError
from edgemtl.export import parity
from edgemtl.export.bundle import BundleWriter, open_existing
from edgemtl.core.manifest import (
    MANIFEST_NAME,
    Artifact,
    find_artifact,
    load_manifest,
    verify_artifact,
)
from edgemtl.export.pipeline import (
    Context,
    build_engine_artifact,
    derive_fp16,
    derive_int8,
    onnx_name,
    run_onnx,
)
from edgemtl.export.samples import SampleSet, load_samples
from edgemtl.core.tasks import TaskSpec

HEADS = ("teacher", "student", "ensemble")


def parse_tolerances(items: list[str] | None) -> dict[str, float]:
    """`--tol fp32_max_abs=2e-3` items -> {name: value} (names: `parity.Tolerances` fields)."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"--tol {item!r}: expected NAME=NUMBER, e.g. fp32_max_abs=2e-3") from None
    parity.Tolerances.with_overrides(out)  # validates names
    return out


def export_command(
    source: Path | None = None,
    head: str | None = None,
    outputs: str = "raw",
    fp16: bool = False,
    int8: bool = False,
    calib: int = 64,
    dynamic_batch: bool = False,
    max_batch: int = 16,
    simplify: bool = True,
    data: str | None = None,
    out: Path | None = None,
    force: bool = False,
    tolerances: dict[str, float] | None = None,
    samples: int = 8,
    trt: bool | None = None,
    quiet: bool = False,
    runs_dir: Path = Path("runs"),
    export_dir: Path = Path("export"),
) -> dict[str, Any]:
    """Export one head; returns a summary (bundle, artifacts, timings, notes).

    `source`: checkpoint file, bundle folder, or None (newest runs/*/best.pt).
    `trt`: True = must build engines (error if impossible), None = where possible, False = never.
    """
    console = Console(stderr=True, quiet=quiet)
    if outputs not in ("raw", "decoded"):
        raise UserError(f"--outputs {outputs}: expected raw or decoded")
    if head is not None and head not in HEADS:
        raise UserError(f"--head {head}: expected teacher, student or ensemble")
    if calib < 1 or samples < 1 or max_batch < 1:
        raise UserError("--calib, --samples and --max-batch must be at least 1")
    tol = parity.Tolerances.with_overrides(tolerances)
    if source is None:
        from edgemtl.training.checkpoint import latest_best

        source = latest_best(runs_dir)
        console.print(f"exporting the newest checkpoint: {source}")
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source}: no such checkpoint file or bundle folder")
    if source.is_dir() and out is not None and Path(out).resolve() != source.resolve():
        raise UserError(f"--out {out}: exporting from bundle {source} adds to that bundle; copy it first")
    if source.is_dir() and dynamic_batch:
        raise UserError(f"--dynamic-batch: {source} is a bundle, whose batch mode was fixed when its FP32 ONNX "
                        "was exported; re-export from the checkpoint")
    with console.status("export", spinner="dots") as status:
        def say(msg: str) -> None:
            status.update(f"export: {msg}")

        if source.is_dir():
            result = _from_bundle(source, head, outputs, fp16, int8, calib, data, force, tol, samples, trt,
                                  max_batch, console, say)
        else:
            result = _from_checkpoint(source, head, outputs, fp16, int8, calib, dynamic_batch, max_batch,
                                      simplify, data, out, force, tol, samples, trt, export_dir, console, say)
    _print_end(result, Console(quiet=quiet))
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
    ctx = Context(writer, tasks, spec, tol, sample_set, feed=feed, max_batch=max_batch if dynamic else 1,
                  unpool=upsampling == "unpool" and writer.manifest.head in ("teacher", "ensemble"),
                  say=say)
    if sample_set.kind == "random":
        note = f"parity on random normalised inputs (dataset unavailable: {sample_set.reason})"
        ctx.notes.append(note)
        console.print(f"[yellow]warning:[/] {note}")
    return ctx


def _from_checkpoint(path: Path, head: str | None, outputs: str, fp16: bool, int8: bool, calib: int,
                     dynamic_batch: bool, max_batch: int, simplify: bool, data: str | None, out: Path | None,
                     force: bool, tol: parity.Tolerances, samples: int, trt: bool | None, export_dir: Path,
                     console: Console, say: Callable[[str], None]) -> dict[str, Any]:
    from edgemtl.training.export import from_checkpoint as fc

    ckpt, head = fc.load(path, head)
    upsampling = fc.upsampling_of(ckpt)
    build_trt, trt_note = _trt_plan(trt, head, upsampling)
    fresh = fc.fresh_manifest(ckpt, path, head, outputs)
    final = out or export_dir / f"{path.parent.name}-{head}{'-decoded' if outputs == 'decoded' else ''}"
    manifest = open_existing(final, fresh, force)
    writer = BundleWriter(final, manifest, force)
    try:
        spec = InputSpec.from_dict(fresh.input.input_spec_dict())
        keys = list(fresh.tasks)
        sample_set = load_samples(fresh.dataset, spec, keys, "val", samples, data)
        ctx = _context(writer, spec, tol, sample_set, dynamic_batch, max_batch, upsampling, console, say)
        if trt_note:
            ctx.notes.append(trt_note)
        art, reference = fc.export_fp32(ctx, ckpt, simplify, dynamic_batch)
        writer.add(art)
        if writer.status[art.file] == "replaced":
            writer.drop_derived_from(art.file)
        fp32_path = writer.path(art.file) if art.file in writer.staged else final / art.file
        _derive(ctx, fp32_path, reference, fp16, int8, calib, data, build_trt, upsampling,
                default_engines=("fp32",))
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return _summary(ctx, writer)


def _from_bundle(bundle: Path, head: str | None, outputs: str, fp16: bool, int8: bool, calib: int,
                 data: str | None, force: bool, tol: parity.Tolerances, samples: int, trt: bool | None,
                 max_batch: int, console: Console, say: Callable[[str], None]) -> dict[str, Any]:
    manifest = load_manifest(bundle)
    if head is not None and head != manifest.head:
        raise UserError(f"{bundle}: this bundle holds the {manifest.head} head, not {head}")
    if outputs != "raw" and outputs != manifest.outputs_mode:
        raise UserError(f"{bundle}: this bundle's outputs are {manifest.outputs_mode}; re-export from the checkpoint")
    for art in manifest.artifacts:
        verify_artifact(bundle, art)
    fp32 = find_artifact(manifest, "onnx", "fp32")
    if fp32 is None:
        raise UserError(f"{bundle / MANIFEST_NAME}: no fp32 ONNX artifact to derive from")
    build_trt, trt_note = _trt_plan(trt, manifest.head, manifest.upsampling)
    writer = BundleWriter(bundle, manifest, force)
    try:
        spec = InputSpec.from_dict(manifest.input.input_spec_dict())
        sample_set = load_samples(manifest.dataset, spec, list(manifest.tasks), "val", samples, data)
        ctx = _context(writer, spec, tol, sample_set, fp32.batch.dynamic, max(fp32.batch.max, 1),
                       manifest.upsampling, console, say)
        if trt_note:
            ctx.notes.append(trt_note)
        fp32_path = bundle / fp32.file
        with ctx.step("fp32: reference outputs (ONNX Runtime)"):
            reference = run_onnx(ctx, fp32_path)
        present = tuple(a.precision for a in manifest.artifacts if a.format == "onnx")
        _derive(ctx, fp32_path, reference, fp16, int8, calib, data, build_trt, manifest.upsampling,
                default_engines=present)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return _summary(ctx, writer)


def _derive(ctx: Context, fp32_path: Path, reference: dict[str, Any], fp16: bool, int8: bool, calib: int,
            data: str | None, build_trt: bool, upsampling: str, default_engines: tuple[str, ...]) -> None:
    """FP16/INT8 ONNX (kept when already in the bundle, unless --force), then engines."""
    writer = ctx.writer
    onnx_paths = {"fp32": fp32_path}
    for precision, wanted in (("fp16", fp16), ("int8", int8)):
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
            calib_set = load_samples(writer.manifest.dataset, ctx.spec, keys, "train", calib, data)
            if calib_set.kind == "random":
                ctx.notes.append(f"INT8 calibrated on random inputs (dataset unavailable: {calib_set.reason})")
            art = derive_int8(ctx, fp32_path, reference, calib_set)
        writer.add(art)
        onnx_paths[precision] = writer.path(name) if name in writer.staged else writer.final / name
    if not build_trt:
        return
    precisions = [p for p, w in (("fp16", fp16), ("int8", int8)) if w] or list(default_engines)
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

"""`edgemtl export`: a bundle in, a gated bundle out; the checkpoint source plugs in.

Torch-free, and never imports the training side: exporting from a checkpoint
(or from the newest runs/*/best.pt) is `edgemtl.training.export.command`, which
calls `export_command` here with its `CheckpointSource`. cli.py sends a bundle
folder here and everything else there, so `edgemtl export BUNDLE` runs on a
device without PyTorch (docs/export.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from edgemtl.core.errors import UserError
from edgemtl.core.manifest import MANIFEST_NAME, find_artifact, load_manifest, verify_artifact
from edgemtl.data.preprocess import InputSpec
from edgemtl.export import parity
from edgemtl.export.bundle import BundleWriter
from edgemtl.export.derive import derive, new_context, print_end, summary, trt_plan
from edgemtl.export.pipeline import run_onnx
from edgemtl.export.samples import load_samples

HEADS = ("teacher", "student", "ensemble")


@dataclass(frozen=True)
class CheckpointSource:
    """The checkpoint half of the command, which needs PyTorch (edgemtl.training.export.command).

    `latest(runs_dir)` -> the newest `runs_dir/*/best.pt` (UserError when none);
    `export(path, head, outputs, fp16, int8, calib, dynamic_batch, max_batch, simplify,
    data, out, force, tol, samples, trt, export_dir, console, say)` -> the summary dict.
    """

    latest: Callable[[Path], Path]
    export: Callable[..., dict[str, Any]]


def _checkpoint_side(checkpoints: CheckpointSource | None, what: str) -> CheckpointSource:
    if checkpoints is None:
        raise UserError(f"{what}: exporting from a checkpoint needs PyTorch and the training side "
                        "(edgemtl.training.export.command); this side takes bundle folders")
    return checkpoints


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
    *,
    checkpoints: CheckpointSource | None = None,
) -> dict[str, Any]:
    """Export one head; returns a summary (bundle, artifacts, timings, notes).

    `source`: bundle folder; a checkpoint file or None (newest runs/*/best.pt) needs
    `checkpoints`, the torch side's `CheckpointSource` (else UserError).
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
        source = _checkpoint_side(checkpoints, "no source given").latest(runs_dir)
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
            result = _checkpoint_side(checkpoints, str(source)).export(
                source, head, outputs, fp16, int8, calib, dynamic_batch, max_batch, simplify, data,
                out, force, tol, samples, trt, export_dir, console, say)
    print_end(result, Console(quiet=quiet))
    return result


# ---- the bundle source -------------------------------------------------------------------


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
    build_trt, trt_note = trt_plan(trt, manifest.head, manifest.upsampling)
    writer = BundleWriter(bundle, manifest, force)
    try:
        spec = InputSpec.from_dict(manifest.input.input_spec_dict())
        sample_set = load_samples(manifest.dataset, spec, list(manifest.tasks), "val", samples, data)
        ctx = new_context(writer, spec, tol, sample_set, fp32.batch.dynamic, max(fp32.batch.max, 1),
                          manifest.upsampling, console, say)
        if trt_note:
            ctx.notes.append(trt_note)
        fp32_path = bundle / fp32.file
        with ctx.step("fp32: reference outputs (ONNX Runtime)"):
            reference = run_onnx(ctx, fp32_path)
        present = tuple(a.precision for a in manifest.artifacts if a.format == "onnx")
        derive(ctx, fp32_path, reference, fp16, int8, calib, data, build_trt, manifest.upsampling,
               default_engines=present)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return summary(ctx, writer)

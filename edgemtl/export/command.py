"""`edgemtl export`: a bundle in, a gated bundle out; the checkpoint source plugs in.

Torch-free, and never imports the training side: exporting from a checkpoint
(or from the newest runs/*/best.pt) is `edgemtl.training.export.command`, which
calls `export_command` here with its `CheckpointSource`. cli.py sends a bundle
folder here and everything else there, so `edgemtl export BUNDLE` runs on a
device without PyTorch (docs/export.md). Both sources take the same
`ExportOptions` (edgemtl.export.options).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from edgemtl.core.errors import UserError
from edgemtl.core.heads import bundle_head
from edgemtl.core.manifest import (
    MANIFEST_NAME,
    artifact_path,
    check_onnx_artifact,
    find_artifact,
    load_manifest,
    verify_artifact,
)
from edgemtl.core.paths import check_output_dir
from edgemtl.data.preprocess import InputSpec
from edgemtl.export import parity
from edgemtl.export.bundle import BundleWriter
from edgemtl.export.derive import derive, new_context, print_end, summary, trt_plan
from edgemtl.export.options import ExportOptions
from edgemtl.export.pipeline import run_onnx
from edgemtl.export.samples import load_samples

#: `export(path, options, tol, console, say)` -> the summary dict (see `CheckpointSource`).
CheckpointExport = Callable[
    [Path, ExportOptions, parity.Tolerances, Console, Callable[[str], None]], dict[str, Any]
]


@dataclass(frozen=True)
class CheckpointSource:
    """The checkpoint half of the command, which needs PyTorch (edgemtl.training.export.command).

    `latest(runs_dir)` -> the newest `runs_dir/*/best.pt` (UserError when none);
    `export(path, options, tol, console, say)` -> the summary dict, with `tol` the
    options' tolerances resolved and `say` the status-line callback.
    """

    latest: Callable[[Path], Path]
    export: CheckpointExport


def _checkpoint_side(checkpoints: CheckpointSource | None, what: str) -> CheckpointSource:
    if checkpoints is None:
        raise UserError(
            f"{what}: exporting from a checkpoint needs PyTorch and the training side "
            "(edgemtl.training.export.command); this side takes bundle folders"
        )
    return checkpoints


def export_command(
    source: Path | None, options: ExportOptions, *, checkpoints: CheckpointSource | None = None
) -> dict[str, Any]:
    """Export one head; returns a summary (bundle, artifacts, timings, notes).

    `source`: bundle folder; a checkpoint file or None (newest
    `options.runs_dir/*/best.pt`) needs `checkpoints`, the torch side's
    `CheckpointSource` (else UserError).
    """
    console = Console(stderr=True, quiet=options.quiet)
    tol = parity.Tolerances.with_overrides(dict(options.tolerances))
    if source is None:
        source = _checkpoint_side(checkpoints, "no source given").latest(options.runs_dir)
        console.print(f"exporting the newest checkpoint: {source}")
    source = Path(source)
    out = options.out
    if not source.exists():
        raise UserError(f"{source}: no such checkpoint file or bundle folder")
    if source.is_dir() and out is not None and Path(out).resolve() != source.resolve():
        raise UserError(
            f"--out {out}: exporting from bundle {source} adds to that bundle; copy it first"
        )
    if source.is_dir():  # export from a bundle writes into it
        check_output_dir(source, "")
    elif out is None:
        check_output_dir(options.export_dir, "")
    if source.is_dir() and options.dynamic_batch:
        raise UserError(
            f"--dynamic-batch: {source} is a bundle, whose batch mode was fixed "
            "when its FP32 ONNX was exported; re-export from the checkpoint"
        )
    with console.status("export", spinner="dots") as status:

        def say(msg: str) -> None:
            status.update(f"export: {msg}")

        if source.is_dir():
            result = _from_bundle(source, options, tol, console, say)
        else:
            export = _checkpoint_side(checkpoints, str(source)).export
            result = export(source, options, tol, console, say)
    print_end(result, Console(quiet=options.quiet))
    return result


def export_all_precisions(source: Path, head: str | None, out: Path | None, quiet: bool) -> Path:
    """`profile --all-formats`' exporter of a bundle folder (named in
    `edgemtl.deploy.profile.all_formats.EXPORTERS`): derive its missing FP16 and INT8
    ONNX (and engines where TensorRT runs) in place; returns the bundle folder."""
    options = ExportOptions(head=head, fp16=True, int8=True, out=out, quiet=quiet)
    return Path(export_command(source, options)["bundle"])


# ---- the bundle source -------------------------------------------------------------------


def _from_bundle(
    bundle: Path,
    opts: ExportOptions,
    tol: parity.Tolerances,
    console: Console,
    say: Callable[[str], None],
) -> dict[str, Any]:
    manifest = load_manifest(bundle)
    bundle_head(bundle, manifest.head, opts.head)
    if opts.outputs != "raw" and opts.outputs != manifest.outputs_mode:
        raise UserError(
            f"{bundle}: this bundle's outputs are {manifest.outputs_mode}; "
            "re-export from the checkpoint"
        )
    for art in manifest.artifacts:
        path = verify_artifact(bundle, art)
        if art.format == "onnx":
            check_onnx_artifact(str(bundle / MANIFEST_NAME), manifest, art, path)
    fp32 = find_artifact(manifest, "onnx", "fp32")
    if fp32 is None:
        raise UserError(f"{bundle / MANIFEST_NAME}: no fp32 ONNX artifact to derive from")
    build_trt, trt_note = trt_plan(opts.trt, manifest.head, manifest.upsampling)
    writer = BundleWriter(bundle, manifest, opts.force)
    try:
        spec = InputSpec.from_dict(manifest.input.input_spec_dict())
        sample_set = load_samples(
            manifest.dataset, spec, list(manifest.tasks), "val", opts.samples, opts.data_root
        )
        ctx = new_context(
            writer,
            spec,
            tol,
            sample_set,
            fp32.batch.dynamic,
            max(fp32.batch.max, 1),
            manifest.upsampling,
            console,
            say,
        )
        if trt_note:
            ctx.notes.append(trt_note)
        fp32_path = artifact_path(bundle, fp32.file)
        with ctx.step("fp32: reference outputs (ONNX Runtime)"):
            reference = run_onnx(ctx, fp32_path)
        present = tuple(a.precision for a in manifest.artifacts if a.format == "onnx")
        derive(
            ctx, fp32_path, reference, opts, build_trt, manifest.upsampling, default_engines=present
        )
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return summary(ctx, writer)

"""`edgemtl export` from a checkpoint: the torch half of the export command.

Why here and not in `edgemtl.export`: the layers point one way (training may
import export, never the reverse), so the checkpoint source plugs into the
torch-free `edgemtl.export.command.export_command` as a `CheckpointSource`, and
takes the same `ExportOptions`; the checkpoint's manifest comes from the one
builder, `edgemtl.core.checkpoint_manifest.manifest_from_checkpoint`.
cli.py sends a checkpoint file, or no source (the newest runs/*/best.pt), here;
a bundle folder goes to `edgemtl.export.command` directly (docs/export.md).
Importing this module does not import torch (only an export does), so a
missing checkpoint is still a one-line error on a machine without PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from edgemtl.core.checkpoint_manifest import manifest_from_checkpoint
from edgemtl.core.paths import check_output_dir
from edgemtl.data.preprocess import InputSpec
from edgemtl.export import command, parity
from edgemtl.export.bundle import BundleWriter, open_existing
from edgemtl.export.derive import derive, new_context, summary, trt_plan
from edgemtl.export.options import ExportOptions
from edgemtl.export.samples import load_samples


def export_command(source: Path | None, options: ExportOptions) -> dict[str, Any]:
    """`edgemtl.export.command.export_command` (same arguments) with checkpoints enabled.

    `source`: a checkpoint file, a bundle folder, or None (the newest
    `options.runs_dir/*/best.pt`). Returns the summary dict (bundle, artifacts,
    status, timings, notes, parity_inputs).
    """
    return command.export_command(source, options, checkpoints=CHECKPOINTS)


def export_all_precisions(source: Path, head: str | None, out: Path | None, quiet: bool) -> Path:
    """`profile --all-formats`' exporter of a checkpoint (named in
    `edgemtl.deploy.profile.all_formats.EXPORTERS`): `head` to `out` with FP32, FP16 and
    INT8 ONNX (and engines where TensorRT runs), keeping what the bundle already has;
    returns the bundle folder."""
    options = ExportOptions(head=head, fp16=True, int8=True, out=out, quiet=quiet)
    return Path(export_command(source, options)["bundle"])


def _latest(runs_dir: Path) -> Path:
    from edgemtl.training.checkpoint import latest_best

    return latest_best(runs_dir)


def _from_checkpoint(
    path: Path,
    opts: ExportOptions,
    tol: parity.Tolerances,
    console: Console,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from edgemtl.training.checkpoint import load_checkpoint
    from edgemtl.training.export import from_checkpoint as fc

    ckpt = load_checkpoint(path)
    fresh = manifest_from_checkpoint(ckpt, path, opts.head, opts.outputs)
    head, upsampling = fresh.head, fresh.upsampling
    build_trt, trt_note = trt_plan(opts.trt, head, upsampling)
    suffix = "-decoded" if opts.outputs == "decoded" else ""
    final = opts.out or check_output_dir(opts.export_dir / f"{path.parent.name}-{head}{suffix}", "")
    manifest = open_existing(final, fresh, opts.force)
    writer = BundleWriter(final, manifest, opts.force)
    try:
        spec = InputSpec.from_dict(fresh.input.input_spec_dict())
        keys = list(fresh.tasks)
        sample_set = load_samples(fresh.dataset, spec, keys, "val", opts.samples, opts.data_root)
        ctx = new_context(
            writer,
            spec,
            tol,
            sample_set,
            opts.dynamic_batch,
            opts.max_batch,
            upsampling,
            console,
            say,
        )
        if trt_note:
            ctx.notes.append(trt_note)
        art, reference = fc.export_fp32(ctx, ckpt, opts.simplify, opts.dynamic_batch)
        writer.add(art)
        if writer.status[art.file] == "replaced":
            writer.drop_derived_from(art.file)
        fp32_path = writer.path(art.file) if art.file in writer.staged else final / art.file
        derive(ctx, fp32_path, reference, opts, build_trt, upsampling, default_engines=("fp32",))
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return summary(ctx, writer)


CHECKPOINTS = command.CheckpointSource(latest=_latest, export=_from_checkpoint)

"""`edgemtl export` from a checkpoint: the torch half of the export command.

Why here and not in `edgemtl.export`: the layers point one way (training may
import export, never the reverse), so the checkpoint source plugs into the
torch-free `edgemtl.export.command.export_command` as a `CheckpointSource`.
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

from edgemtl.data.preprocess import InputSpec
from edgemtl.export import command, parity
from edgemtl.export.bundle import BundleWriter, open_existing
from edgemtl.export.derive import derive, new_context, summary, trt_plan
from edgemtl.export.samples import load_samples


def export_command(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """`edgemtl.export.command.export_command` (same arguments) with checkpoints enabled.

    `source`: a checkpoint file, a bundle folder, or None (the newest runs/*/best.pt).
    Returns the summary dict (bundle, artifacts, status, timings, notes, parity_inputs).
    """
    return command.export_command(*args, checkpoints=CHECKPOINTS, **kwargs)


def _latest(runs_dir: Path) -> Path:
    from edgemtl.training.checkpoint import latest_best

    return latest_best(runs_dir)


def _from_checkpoint(path: Path, head: str | None, outputs: str, fp16: bool, int8: bool, calib: int,
                     dynamic_batch: bool, max_batch: int, simplify: bool, data: str | None, out: Path | None,
                     force: bool, tol: parity.Tolerances, samples: int, trt: bool | None, export_dir: Path,
                     console: Console, say: Callable[[str], None]) -> dict[str, Any]:
    from edgemtl.training.export import from_checkpoint as fc

    ckpt, head = fc.load(path, head)
    upsampling = fc.upsampling_of(ckpt)
    build_trt, trt_note = trt_plan(trt, head, upsampling)
    fresh = fc.fresh_manifest(ckpt, path, head, outputs)
    final = out or export_dir / f"{path.parent.name}-{head}{'-decoded' if outputs == 'decoded' else ''}"
    manifest = open_existing(final, fresh, force)
    writer = BundleWriter(final, manifest, force)
    try:
        spec = InputSpec.from_dict(fresh.input.input_spec_dict())
        keys = list(fresh.tasks)
        sample_set = load_samples(fresh.dataset, spec, keys, "val", samples, data)
        ctx = new_context(writer, spec, tol, sample_set, dynamic_batch, max_batch, upsampling, console, say)
        if trt_note:
            ctx.notes.append(trt_note)
        art, reference = fc.export_fp32(ctx, ckpt, simplify, dynamic_batch)
        writer.add(art)
        if writer.status[art.file] == "replaced":
            writer.drop_derived_from(art.file)
        fp32_path = writer.path(art.file) if art.file in writer.staged else final / art.file
        derive(ctx, fp32_path, reference, fp16, int8, calib, data, build_trt, upsampling,
               default_engines=("fp32",))
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    return summary(ctx, writer)


CHECKPOINTS = command.CheckpointSource(latest=_latest, export=_from_checkpoint)

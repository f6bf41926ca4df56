"""Checkpoint -> gated FP32 ONNX in the staging folder (the only torch-using export step).

Why separate: `export` from a bundle never imports this module, so it runs
without PyTorch; everything after the FP32 gate is shared (`pipeline`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgemtl.core.checkpoint_schema import Checkpoint
from edgemtl.export import onnx_tools, parity
from edgemtl.export.pipeline import Context, finish_onnx, gate, proof, run_onnx


def export_fp32(
    ctx: Context, ckpt: Checkpoint, simplify: bool, dynamic_batch: bool
) -> tuple[Any, dict[str, np.ndarray]]:
    """Trace the head, check, simplify, gate against torch; returns (artifact, FP32 ONNX
    outputs)."""
    import torch

    from edgemtl.core.threads import run_choice
    from edgemtl.training.checkpoint import model_from_checkpoint
    from edgemtl.training.export.torch_onnx import export_head, run_torch

    torch.set_num_threads(min(4, run_choice().threads))  # the parity reference run
    module = model_from_checkpoint(ckpt).head_module(ctx.head, ctx.mode).eval()
    names = list(module.output_names)
    raw = ctx.writer.path(f"{ctx.head}.fp32.raw.onnx")
    with ctx.step("fp32: torch.onnx.export"):
        export_head(
            module,
            names,
            ctx.spec.height,
            ctx.spec.width,
            raw,
            batch=ctx.feed if not dynamic_batch else 1,
            dynamic_batch=dynamic_batch,
        )
        onnx_tools.full_check(raw)
        model = onnx_tools.load(raw)
        raw.unlink()
    if simplify:
        with ctx.step("fp32: onnxsim"):
            model, warning = onnx_tools.simplify(model, skip_constant_folding=ctx.unpool)
            if warning:
                ctx.notes.append(warning)
                ctx.say(warning)
    with ctx.step("fp32: parity vs torch"):
        art = finish_onnx(ctx, model, "fp32", None)
        batches = ctx.samples.batches(ctx.feed)
        reference = run_torch(module, names, batches)
        outputs = run_onnx(ctx, ctx.writer.path(art.file))
        checks = parity.compare_fp32(
            ctx.tasks, ctx.mode, reference, outputs, ctx.tol, unpool=ctx.unpool
        )
        art.parity = proof(ctx, "torch", checks)
    gate(art.file, art.parity)
    return art, outputs

"""`edgemtl eval`: score a checkpoint's heads on a split with the shared loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from edgemtl.core.checkpoint_schema import Checkpoint
from edgemtl.core.errors import UserError
from edgemtl.core.io import atomic_write_text
from edgemtl.core.tables import heads_table
from edgemtl.data.registry import open_split
from edgemtl.evaluation.scoring import check_seg_classes, score_split, with_delta_m
from edgemtl.training.checkpoint import input_spec, load_checkpoint, model_from_checkpoint
from edgemtl.training.device import pick_device
from edgemtl.training.run_log import METRICS_SCHEMA_VERSION


def resolve_heads(ckpt: Checkpoint, head: str) -> list[str]:
    """The heads `--head` names in `ckpt` ("all": every head it has)."""
    if head == "all":
        return list(ckpt.heads)
    if head not in ("teacher", "student", "ensemble"):
        raise UserError(f"--head {head}: expected teacher, student, ensemble or all")
    ckpt.require_head(head)
    return [head]


def evaluate_checkpoint(
    path: Path,
    head: str = "all",
    data_root: str | None = None,
    split: str = "val",
    limit: int | None = None,
    device: str | None = None,
    batch_size: int = 8,
    reference: dict[str, dict[str, float]] | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Scores per head; Δm against `reference`, else against the run's own reference."""
    ckpt = load_checkpoint(path)
    heads = resolve_heads(ckpt, head)
    specs = ckpt.task_specs()
    net = model_from_checkpoint(ckpt).to(pick_device(device))
    dev = next(net.parameters()).device
    spec = input_spec(ckpt)
    reader = open_split(ckpt.data.to_dict(), split, [s.key for s in specs], root=data_root)
    check_seg_classes(reader, specs, f"checkpoint {path}'s")

    @torch.no_grad()
    def infer(images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        outputs = net(torch.from_numpy(images).to(dev), heads=heads)
        return {h: {k: v.float().cpu().numpy() for k, v in t.items()} for h, t in outputs.items()}

    from edgemtl.core.progress import bar

    total = len(reader) if limit is None else min(limit, len(reader))
    with bar(console, f"eval {Path(path).name} ({split})", total) as advance:
        block = score_split(infer, reader, spec, specs, heads, batch_size=batch_size, limit=limit, progress=advance)
    ref = reference if reference is not None else (ckpt.select.reference if ckpt.select else None)
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "checkpoint": str(path),
        "epoch": ckpt.epoch,
        "split": split,
        "samples": total,
        "heads": with_delta_m(block, ref),
    }


def eval_command(
    checkpoint: Path, head: str, data: str | None, split: str, limit: int | None, json_path: str | None,
    device: str | None, quiet: bool, reference: list[str] | None = None,
) -> dict[str, Any]:
    console = Console(stderr=True, quiet=quiet)
    ref = None
    if reference:
        from edgemtl.evaluation.reference import load_reference

        ref = load_reference(reference, load_checkpoint)
    result = evaluate_checkpoint(checkpoint, head, data, split, limit, device, reference=ref, console=console)
    if reference:
        result["reference"] = list(reference)
    if json_path == "-":
        print(json.dumps(result, indent=2))
    else:
        if json_path:
            atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
        Console(quiet=quiet).print(heads_table(result["heads"], title=f"{checkpoint} ({split}, {result['samples']} images)"))
    return result

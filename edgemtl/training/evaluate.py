"""`edgemtl eval`: score a checkpoint's heads on a split with the shared loop."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from edgemtl.core.checkpoint_schema import Checkpoint
from edgemtl.core.heads import ALL, checkpoint_heads, parse_head, require_checkpoint_head
from edgemtl.core.io import atomic_write_text
from edgemtl.core.options import TORCH_DEVICES, DataSource, OutputFiles, choice
from edgemtl.core.paths import check_not_an_input
from edgemtl.core.tables import heads_table
from edgemtl.core.threads import run_choice
from edgemtl.data.registry import open_split
from edgemtl.evaluation.reference import reference_name
from edgemtl.evaluation.scoring import check_seg_classes, score_split, with_delta_m
from edgemtl.training.checkpoint import input_spec, load_checkpoint, model_from_checkpoint
from edgemtl.training.device import pick_device
from edgemtl.training.run_log import METRICS_SCHEMA_VERSION


@dataclass(frozen=True)
class EvalOptions:
    """What `eval_command` takes besides the checkpoint (the CLI maps one flag each).

    head: a head name or "all" (every head the checkpoint has); device: cpu,
    cuda or auto (None: cuda when available); reference: the results Δm is
    measured against (`edgemtl.evaluation.reference.resolve_reference`; None:
    the run's own reference).
    """

    head: str = ALL
    data: DataSource = field(default_factory=DataSource)
    output: OutputFiles = field(default_factory=OutputFiles)
    device: str | None = None
    reference: Sequence[str] | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.device is not None:
            choice(self.device, "--device", TORCH_DEVICES)


#: What a run folder holds besides the checkpoint scored (docs/formats.md "Run folder").
RUN_FILES = ("last.pt", "best.pt", "recipe.yaml", "metrics.jsonl", "summary.json")


def resolve_heads(ckpt: Checkpoint, head: str) -> list[str]:
    """The heads to score: every head of the checkpoint for "all", else `head` (validated)."""
    if parse_head(head, allow_all=True) == ALL:
        return list(checkpoint_heads(ckpt))
    require_checkpoint_head(ckpt, head)
    return [head]


def evaluate_checkpoint(
    path: Path,
    head: str = ALL,
    data_root: str | None = None,
    split: str = "val",
    limit: int | None = None,
    device: str | None = None,
    batch_size: int = 8,
    reference: dict[str, dict[str, float]] | None = None,
    console: Console | None = None,
    reference_label: str = "",
) -> dict[str, Any]:
    """Scores per head; Δm against `reference` (named `reference_label`), else against the
    run's own reference; `delta_m_vs` names it."""
    ckpt = load_checkpoint(path)
    heads = resolve_heads(ckpt, head)
    specs = ckpt.task_specs()
    net = model_from_checkpoint(ckpt).to(pick_device(device))
    dev = next(net.parameters()).device
    torch.set_num_threads(run_choice(dev.type).threads)
    spec = input_spec(ckpt)
    reader = open_split(ckpt.data.to_dict(), split, [s.key for s in specs], root=data_root)
    check_seg_classes(reader, specs, f"checkpoint {path}'s")

    @torch.inference_mode()
    def infer(images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        outputs = net(torch.from_numpy(images).to(dev), heads=heads)
        return {h: {k: v.float().cpu().numpy() for k, v in t.items()} for h, t in outputs.items()}

    from edgemtl.core.progress import bar

    total = len(reader) if limit is None else min(limit, len(reader))
    with bar(console, f"eval {Path(path).name} ({split})", total) as advance:
        block = score_split(
            infer, reader, spec, specs, heads, batch_size=batch_size, limit=limit, progress=advance
        )
    ref = reference if reference is not None else (ckpt.select.reference if ckpt.select else None)
    if reference is None and ref is not None:
        reference_label = reference_name(
            ckpt.recipe.train.reference, ckpt.select.head if ckpt.select else None
        )
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "checkpoint": str(path),
        "epoch": ckpt.epoch,
        "split": split,
        "samples": total,
        "heads": with_delta_m(block, ref),
        "delta_m_vs": reference_label if ref is not None else None,
    }


def eval_command(checkpoint: Path, options: EvalOptions) -> dict[str, Any]:
    """`edgemtl eval`: score, print a table per head (or the JSON), write `--json`."""
    if options.output.json and not options.output.json_to_stdout:  # never over the run's files
        run_files = [checkpoint, *(checkpoint.parent / name for name in RUN_FILES)]
        check_not_an_input(options.output.json, "--json", run_files)
    console = Console(stderr=True, quiet=options.quiet)
    ref = None
    if options.reference:
        from edgemtl.evaluation.reference import load_reference

        ref = load_reference(options.reference, load_checkpoint)
    data = options.data
    result = evaluate_checkpoint(
        checkpoint,
        options.head,
        data.root,
        data.split,
        data.limit,
        options.device,
        reference=ref,
        console=console,
        reference_label=reference_name(options.reference),
    )
    if options.reference:
        result["reference"] = list(options.reference)
    text = json.dumps(result, indent=2)
    if options.output.json_to_stdout:
        print(text)
        return result
    if options.output.json:
        atomic_write_text(options.output.json, text + "\n")
    title = f"{checkpoint} ({data.split}, {result['samples']} images)"
    vs = result["delta_m_vs"]
    table = heads_table(result["heads"], title=title, delta_label=f"Δm vs {vs}" if vs else "")
    Console(quiet=options.quiet).print(table)
    return result

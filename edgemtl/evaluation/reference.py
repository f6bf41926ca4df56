"""Δm references: metrics to compare a run against, read from what earlier commands wrote.

Why several sources merged task-wise: the multi-task literature measures Δm against
single-task networks, i.e. one run per task (`--reference runs/st-seg --reference
runs/st-depth`). Each source is a run folder (its summary.json, else best.pt), a
summary.json, an eval/metrics JSON (`{"heads": {...}}`), a checkpoint (.pt), or a
plain `{task: {metric: value}}` JSON. `PATH#head` picks a head; otherwise the
head that run selected, or its only head. Torch-free: reading a .pt needs the
training side's `load_checkpoint`, which its callers (train, eval) pass in as
`read_checkpoint`; without it a checkpoint source is a one-line UserError.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgemtl.core.errors import UserError

Reference = dict[str, dict[str, float]]
#: path -> the checkpoint dict (edgemtl.training.checkpoint.load_checkpoint).
CheckpointReader = Callable[[Path], Any]  # returns a core.checkpoint_schema.Checkpoint


def _pick_head(source: str, heads: dict[str, Any], wanted: str | None, selected: str | None) -> dict[str, Any]:
    for head in (wanted, selected):
        if head is not None:
            if head not in heads:
                raise UserError(f"reference {source}: no head {head!r} (it has: {', '.join(heads)})")
            return heads[head]
    if len(heads) == 1:
        return next(iter(heads.values()))
    raise UserError(f"reference {source}: several heads ({', '.join(heads)}): name one as {source}#HEAD")


def _from_json(source: str, data: Any, head: str | None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UserError(f"reference {source}: expected a JSON object")
    if "final" in data and "select" in data:  # summary.json
        block = data.get("best") or data["final"]
        return _pick_head(source, block, head, (data.get("select") or {}).get("head"))
    if isinstance(data.get("heads"), dict):  # eval JSON, metrics.jsonl row
        return _pick_head(source, data["heads"], head, None)
    if data and all(isinstance(v, dict) for v in data.values()):  # {task: {metric: value}}
        return data
    raise UserError(f"reference {source}: not a summary.json, eval JSON or {{task: {{metric: value}}}} object")


def _from_checkpoint(source: str, path: Path, head: str | None,
                     read_checkpoint: CheckpointReader | None) -> dict[str, Any]:
    if read_checkpoint is None:
        raise UserError(f"reference {source}: reading a checkpoint needs PyTorch (the training side); "
                        "pass its run's summary.json or an eval JSON instead")
    ckpt = read_checkpoint(path)
    if ckpt.metrics is None:
        raise UserError(f"reference {source}: checkpoint holds no evaluation")
    return _pick_head(source, ckpt.metrics.heads, head, ckpt.selected_head)


def load_one(source: str, read_checkpoint: CheckpointReader | None = None) -> Reference:
    """One source's metrics as {task: {metric: value}} (non-task entries dropped).

    `read_checkpoint` loads a .pt source (UserError without it). Bad sources are
    one-line UserErrors naming the source.
    """
    text, _, head = str(source).partition("#")
    path = Path(text)
    if path.is_dir():
        if (path / "summary.json").is_file():
            path = path / "summary.json"
        elif (path / "best.pt").is_file():
            path = path / "best.pt"
        else:
            raise UserError(f"reference {source}: folder has neither summary.json nor best.pt")
    if not path.is_file():
        raise UserError(f"reference {source}: no such file or run folder")
    if path.suffix == ".pt":
        block = _from_checkpoint(source, path, head or None, read_checkpoint)
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"reference {source}: not readable JSON ({exc.__class__.__name__})") from None
        block = _from_json(source, data, head or None)
    return {task: {k: float(v) for k, v in metrics.items()} for task, metrics in block.items() if isinstance(metrics, dict)}


def load_reference(sources: Sequence[str],
                   read_checkpoint: CheckpointReader | None = None) -> Reference:
    """Merge sources task-wise; the first source that has a task gives it, so
    `--reference runs/single-seg --reference runs/vanilla` takes seg from the first.

    `read_checkpoint` as in `load_one` (the training side passes `load_checkpoint`).
    """
    merged: Reference = {}
    for source in sources:
        for task, metrics in load_one(source, read_checkpoint).items():
            merged.setdefault(task, metrics)
    if not merged:
        raise UserError("reference: no task metrics found in " + ", ".join(map(str, sources)))
    return merged

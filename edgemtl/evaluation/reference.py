"""References: the results Δm (and accuracy deltas) are measured against.

One meaning for `eval --reference`, `profile --reference` and the recipe key
`train.reference`. A source is
- a run folder: its `summary.json`, else its `best.pt`;
- a JSON file: a run's `summary.json`, an eval JSON or metrics.jsonl row
  (`{"heads": ...}`), a profile JSON (the scores of its artifacts), or a plain
  `{task: {metric: value}}` object;
- a checkpoint (`.pt`): the evaluation it records;
- (profile only) one of the artifacts being profiled, by path (its file, or
  the bundle folder for that bundle's FP32 ONNX) or by label (`student fp32
  onnx`): the scores measured in that same run, on the same images.
`SOURCE#NAME` picks a head (a profile JSON: an artifact label or head);
otherwise the head that run selected, or its only head. Several sources merge
task-wise, the first source that has a task giving it: the multi-task
literature measures Δm against single-task networks, one run per task
(docs/methods.md "Δm against a reference").

Torch-free, and never imports the training side: reading a .pt needs the
training side's `load_checkpoint`, which its callers (train, eval) pass in as
`read_checkpoint`; without it (profile, on the deploy side) a checkpoint
source is a one-line UserError, unless it is one of the profiled artifacts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemtl.core.errors import UserError

Reference = dict[str, dict[str, float]]
#: Files that are models, not results (a profiled one is named by path instead).
_MODEL_SUFFIXES = (".onnx", ".trt", ".engine", ".plan")
#: path -> the typed checkpoint (edgemtl.training.checkpoint.load_checkpoint).
CheckpointReader = Callable[[Path], Any]  # returns a core.checkpoint_schema.Checkpoint


@dataclass(frozen=True)
class Measured:
    """A result the running command measured, which a reference may name.

    label: e.g. "student fp32 onnx"; paths: the resolved paths that name it;
    metrics: {task: {metric: value}} (other entries are ignored).
    """

    label: str
    paths: tuple[Path, ...]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class ResolvedReference:
    """Merged reference metrics and a label for what they are (tables, JSON)."""

    metrics: Reference
    label: str


def _pick_head(
    source: str, heads: dict[str, Any], wanted: str | None, selected: str | None
) -> dict[str, Any]:
    for head in (wanted, selected):
        if head is not None:
            if head not in heads:
                have = ", ".join(heads)
                raise UserError(f"reference {source}: no head {head!r} (it has: {have})")
            return heads[head]
    if len(heads) == 1:
        return next(iter(heads.values()))
    raise UserError(
        f"reference {source}: several heads ({', '.join(heads)}): name one as {source}#HEAD"
    )


def _from_profile(source: str, data: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    scored = [a for a in data.get("artifacts") or [] if isinstance(a, dict) and a.get("heads")]
    if not scored:
        raise UserError(
            f"reference {source}: the profile measured no accuracy "
            "(profile with --accuracy or --data)"
        )
    if wanted is not None:
        scored = [a for a in scored if wanted in (a.get("label"), a.get("head"))]
        if not scored:
            raise UserError(f"reference {source}: no scored artifact labelled {wanted!r}")
    if len(scored) > 1:
        labels = ", ".join(str(a.get("label")) for a in scored)
        raise UserError(
            f"reference {source}: several scored artifacts ({labels}): name one as {source}#LABEL"
        )
    return scored[0]["heads"][scored[0]["head"]]


def _from_json(source: str, data: Any, head: str | None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UserError(f"reference {source}: expected a JSON object")
    if "final" in data and "select" in data:  # summary.json
        block = data.get("best") or data["final"]
        return _pick_head(source, block, head, (data.get("select") or {}).get("head"))
    if data.get("kind") == "edgemtl-profile":
        return _from_profile(source, data, head)
    if isinstance(data.get("heads"), dict):  # eval JSON, metrics.jsonl row
        return _pick_head(source, data["heads"], head, None)
    if data and all(isinstance(v, dict) for v in data.values()):  # {task: {metric: value}}
        return data
    raise UserError(
        f"reference {source}: not a summary.json, eval or profile JSON, "
        "or {task: {metric: value}} object"
    )


def _from_checkpoint(
    source: str, path: Path, head: str | None, read_checkpoint: CheckpointReader | None
) -> dict[str, Any]:
    if read_checkpoint is None:
        raise UserError(
            f"reference {source}: reading a checkpoint needs PyTorch (the training "
            "side); pass its run's summary.json or an eval JSON instead"
        )
    ckpt = read_checkpoint(path)
    if ckpt.metrics is None:
        raise UserError(f"reference {source}: checkpoint holds no evaluation")
    return _pick_head(source, ckpt.metrics.heads, head, ckpt.selected_head)


def _stored(source: str, read_checkpoint: CheckpointReader | None) -> dict[str, Any]:
    """A source's recorded results (not a measured one)."""
    text, _, head = str(source).partition("#")
    path = Path(text)
    if path.is_dir():
        if (path / "summary.json").is_file():
            path = path / "summary.json"
        elif (path / "best.pt").is_file():
            path = path / "best.pt"
        elif (path / "manifest.json").is_file():
            path = path / "manifest.json"
        else:
            raise UserError(f"reference {source}: folder has neither summary.json nor best.pt")
    if not path.is_file():
        raise UserError(f"reference {source}: no such file or run folder")
    if path.suffix.lower() in _MODEL_SUFFIXES or path.name == "manifest.json":
        raise UserError(
            f"reference {source}: a model, not results: profile it along with the "
            "others (it is then scored on the same images), or pass its profile JSON"
        )
    if path.suffix == ".pt":
        return _from_checkpoint(source, path, head or None, read_checkpoint)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        why = exc.__class__.__name__
        raise UserError(f"reference {source}: not readable JSON ({why})") from None
    return _from_json(source, data, head or None)


def _find_measured(source: str, measured: Sequence[Measured]) -> Measured | None:
    for item in measured:
        if source == item.label:
            return item
    text = str(source).partition("#")[0]
    if not measured or not Path(text).exists():
        return None
    target = Path(text).resolve()
    return next((item for item in measured if target in item.paths), None)


def _tasks_only(block: dict[str, Any]) -> Reference:
    return {
        task: {k: float(v) for k, v in metrics.items()}
        for task, metrics in block.items()
        if isinstance(metrics, dict)
    }


def resolve_reference(
    sources: Sequence[str],
    measured: Sequence[Measured] = (),
    read_checkpoint: CheckpointReader | None = None,
) -> ResolvedReference:
    """Parse and load every source (see the module docstring) and merge them task-wise.

    `measured`: results the calling command measured (profile: its scored
    artifacts), which a source may name by path or label. `read_checkpoint`
    loads a .pt source (the training side passes `load_checkpoint`; UserError
    without it). Returns the merged {task: {metric: value}} and a label: the
    measured labels and other sources, comma-separated. UserError for an
    unreadable source, an ambiguous head, or no task metrics at all.
    """
    merged: Reference = {}
    labels: list[str] = []
    for source in sources:
        found = _find_measured(str(source), measured)
        block = found.metrics if found is not None else _stored(str(source), read_checkpoint)
        labels.append(found.label if found is not None else str(source))
        for task, metrics in _tasks_only(block).items():
            merged.setdefault(task, metrics)
    if not merged:
        raise UserError("reference: no task metrics found in " + ", ".join(map(str, sources)))
    return ResolvedReference(merged, ", ".join(labels))


def load_reference(
    sources: Sequence[str], read_checkpoint: CheckpointReader | None = None
) -> Reference:
    """The merged metrics of stored sources (`resolve_reference` without measured results);
    `--reference runs/single-seg --reference runs/vanilla` takes seg from the first."""
    return resolve_reference(sources, read_checkpoint=read_checkpoint).metrics


def reference_name(sources: Sequence[str] | None, head: str | None = None) -> str:
    """What a run's or command's Δm is measured against, in words: the `--reference` /
    `train.reference` sources, comma-separated; without any, the run's own reference,
    the first evaluation of its selected `head` ("epoch-1 student"); "" when unknown."""
    if sources:
        return ", ".join(map(str, sources))
    return f"epoch-1 {head}" if head else ""


def delta_m_label(sources: Sequence[str] | None, head: str | None = None) -> str:
    """ "Δm vs <reference_name>" for tables and logs, e.g. "Δm vs runs/x", "Δm vs epoch-1
    student" ("Δm" alone when the reference is unknown)."""
    name = reference_name(sources, head)
    return f"Δm vs {name}" if name else "Δm"

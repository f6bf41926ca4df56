"""Accuracy of any runner over a dataset split, through the one scoring loop.

Why `edgemtl.evaluation.scoring.score_split`: `edgemtl eval` scores checkpoints with it,
so an ONNX/engine row and the checkpoint's `eval` come from the same
preprocessing and metric code. Here the infer function wraps a runner;
`score_artifacts` is `edgemtl profile`'s accuracy stage (scores and deltas).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.options import DataSource
from edgemtl.deploy.runtime.base import ModelRef, Runner
from edgemtl.evaluation.metrics import delta_m

if TYPE_CHECKING:
    from edgemtl.evaluation.reference import ResolvedReference


def dataset_record(ref: ModelRef, data_root: str | Path | None) -> dict[str, Any]:
    """The artifact's dataset record; `--data ROOT` supplies or overrides its folder."""
    record = dict(ref.manifest.dataset or {})
    if not record.get("kind"):
        if data_root is None:
            raise UserError(f"{ref.path}: the artifact records no dataset: pass --data ROOT")
        raise UserError(
            f"{ref.path}: the artifact records no dataset kind, so --data {data_root} cannot be "
            "read"
        )
    return record


def open_reader(
    ref: ModelRef,
    data_root: str | Path | None,
    split: str,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Open the split and check it matches the artifact (classes and image size)."""
    from edgemtl.data.registry import open_split
    from edgemtl.evaluation.scoring import check_seg_classes

    record = dataset_record(ref, data_root)
    reader = open_split(
        record, split, [t.key for t in ref.tasks], root=data_root, progress=progress
    )
    check_seg_classes(reader, ref.tasks, f"{ref.path}'s manifest")
    if len(reader) == 0:
        raise UserError(f"dataset split {split!r} is empty")
    h, w = ref.input_hw
    shape = tuple(reader[0].image.shape[:2])
    if shape != (h, w):
        raise UserError(
            f"dataset images are {shape[0]}x{shape[1]}, {ref.path} expects {h}x{w} "
            "(manifest input size): use the matching dataset copy"
        )
    return reader


def score_runner(
    runner: Runner,
    reader: Any,
    limit: int | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """{task: {metric: value}} of the runner's artifact over the reader."""
    from edgemtl.data.preprocess import InputSpec
    from edgemtl.evaluation.scoring import score_split

    ref = runner.ref
    low, high = runner.batch_limits()
    size = min(max(batch_size, low), high)
    names = ref.output_for_task()
    spec = InputSpec(
        ref.input_hw[0],
        ref.input_hw[1],
        tuple(ref.manifest.input.mean),  # type: ignore[arg-type]
        tuple(ref.manifest.input.std),  # type: ignore[arg-type]
    )

    def infer(images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        n = images.shape[0]
        if n < low:  # a fixed-batch artifact: pad the last batch, drop the padding after
            pad = np.repeat(images[-1:], low - n, axis=0)
            images = np.concatenate([images, pad])
        outs = runner.infer(np.ascontiguousarray(images, dtype=np.float32))
        return {ref.head: {t.key: outs[names[t.key]][:n] for t in ref.tasks}}

    block = score_split(
        infer, reader, spec, ref.tasks, [ref.head], batch_size=size, limit=limit, progress=progress
    )
    return block[ref.head]


def deltas(result: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Per-metric differences (candidate - reference) and delta_m (percent, positive = better)."""
    diff: dict[str, Any] = {}
    for task, metrics in result.items():
        if isinstance(metrics, dict) and isinstance(reference.get(task), dict):
            diff[task] = {
                m: float(v) - float(reference[task][m])
                for m, v in metrics.items()
                if m in reference[task]
            }
    plain = {t: m for t, m in result.items() if isinstance(m, dict)}
    ref_plain = {t: m for t, m in reference.items() if isinstance(m, dict)}
    diff["delta_m"] = delta_m(plain, ref_plain)
    return diff


def score_artifacts(
    refs: list[ModelRef],
    runners: list[Runner],
    artifacts: list[dict[str, Any]],
    data: DataSource,
    reference: Sequence[str] | None,
    console: Any,
) -> ResolvedReference | None:
    """`profile --accuracy`: score each runner over the split, into its artifact's facts;
    returns the resolved `--reference` (None without one).

    Fills `heads` ({head: {task: {metric: value}}}) and `samples` of every
    `artifacts` entry (parallel to `refs` and `runners`); `reference` and
    `deltas` against `--reference` (`reference`), else for an FP16/INT8
    artifact against the FP32 ONNX of its bundle. Artifacts that share a dataset
    record, input size and tasks share one reader.
    """
    from edgemtl.core.progress import bar

    readers: dict[str, Any] = {}
    for ref, runner, facts in zip(refs, runners, artifacts):
        key = json.dumps(
            [ref.manifest.dataset, list(ref.input_hw), [t.key for t in ref.tasks]], sort_keys=True
        )
        if key not in readers:
            readers[key] = open_reader(ref, data.root, data.split)
        reader = readers[key]
        total = len(reader) if data.limit is None else min(data.limit, len(reader))
        with bar(console, f"accuracy {ref.label}", total) as advance:
            facts["heads"] = {ref.head: score_runner(runner, reader, data.limit, progress=advance)}
        facts["samples"] = total
    # Deltas: against --reference, else the fp32 artifact of the same head and source.
    if reference:
        explicit = _explicit_reference(reference, refs, artifacts)
        for ref, facts in zip(refs, artifacts):
            facts["reference"] = explicit.label
            facts["deltas"] = deltas(facts["heads"][ref.head], explicit.metrics)
        return explicit
    for ref, facts in zip(refs, artifacts):
        mine = facts["heads"][ref.head]
        for other_ref, other in zip(refs, artifacts):
            if (
                other is not facts
                and other_ref.head == ref.head
                and other_ref.precision == "fp32"
                and ref.precision != "fp32"
                and other_ref.bundle == ref.bundle
            ):
                facts["reference"] = other["label"]
                facts["deltas"] = deltas(mine, other["heads"][other_ref.head])
                break
    return None


def _explicit_reference(
    sources: Sequence[str], refs: list[ModelRef], artifacts: list[dict[str, Any]]
) -> ResolvedReference:
    """`--reference` resolved with this run's scored artifacts as measured candidates.

    A bundle folder names its FP32 ONNX (else its first artifact) as profiled here.
    """
    from edgemtl.evaluation.reference import Measured, resolve_reference

    main: dict[Path, int] = {}
    for i, ref in enumerate(refs):
        if ref.bundle is not None:
            folder = ref.bundle.resolve()
            if folder not in main or (ref.format == "onnx" and ref.precision == "fp32"):
                main[folder] = i
    measured = []
    for i, (ref, facts) in enumerate(zip(refs, artifacts)):
        paths = [ref.path.resolve()] + [folder for folder, j in main.items() if j == i]
        measured.append(Measured(facts["label"], tuple(paths), facts["heads"][ref.head]))
    return resolve_reference(sources, measured)

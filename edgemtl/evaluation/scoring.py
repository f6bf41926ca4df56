"""Score any model over a split: the one evaluation loop (numpy side).

`edgemtl eval` (PyTorch), the trainer's per-epoch evaluation and
`edgemtl profile --data` (ONNX Runtime / TensorRT) all call `score_split` with
their own `infer` function, so the same split gives the same inputs (shared
preprocessing) and the same figures (shared metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.tasks import TaskSpec, decode_numpy
from edgemtl.data.preprocess import InputSpec, collate, prepare_sample
from edgemtl.data.registry import SplitReader
from edgemtl.evaluation.metrics import MetricSet, delta_m

#: infer(images N x 3 x H x W float32) -> {head: {task key: raw or decoded array}}
InferFn = Callable[[np.ndarray], dict[str, dict[str, np.ndarray]]]
HeadsBlock = dict[str, dict[str, Any]]


def check_seg_classes(reader: Any, specs: Sequence[TaskSpec], model: str) -> None:
    """UserError unless each seg task's class names equal the dataset reader's, in order.

    Order matters: label i means `class_names[i]` on both sides, so a reordered
    list would score the wrong classes. `reader.class_names` may be absent
    (treated as none). `model` names the other side in the message, e.g.
    "checkpoint runs/x/best.pt's" or "model.onnx's manifest".
    """
    have = tuple(getattr(reader, "class_names", ()) or ())
    for spec in specs:
        if spec.task_kind.labels and have != tuple(spec.class_names or ()):
            raise UserError(
                f"dataset classes {list(have)} do not match {model} {list(spec.class_names or ())}"
            )


def metric_set(specs: Sequence[TaskSpec]) -> MetricSet:
    """One accumulator per task, as its kind defines it (`TaskKind.metric`)."""
    return MetricSet({s.key: (s.kind, s.channels) for s in specs})


def score_split(
    infer: InferFn,
    reader: SplitReader,
    input_spec: InputSpec,
    specs: Sequence[TaskSpec],
    heads: Sequence[str],
    batch_size: int = 8,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    sets: dict[str, MetricSet] | None = None,
) -> HeadsBlock:
    """Run `infer` over the first `limit` samples; return {head: {task: {metric: value}}}.

    Pass `sets` to accumulate into existing MetricSets (e.g. to reduce across ranks
    before computing).
    """
    total = len(reader) if limit is None else min(limit, len(reader))
    sets = sets if sets is not None else {head: metric_set(specs) for head in heads}
    for start in range(0, total, batch_size):
        items = [
            prepare_sample(reader[i], input_spec)
            for i in range(start, min(start + batch_size, total))
        ]
        images, targets = collate(items)
        outputs = infer(images)
        for head in heads:
            decoded = {s.key: decode_numpy(s, outputs[head][s.key]) for s in specs}
            sets[head].update(decoded, targets)
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return {head: sets[head].compute() for head in heads}


def with_delta_m(block: HeadsBlock, reference: dict[str, dict[str, float]] | None) -> HeadsBlock:
    """Add `delta_m` (percent, positive = better) to each head against one reference."""
    if reference is None:
        return block
    return {
        head: {**metrics, "delta_m": delta_m(metrics, reference)} for head, metrics in block.items()
    }

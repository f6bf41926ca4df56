"""Per-epoch validation: every evaluated head on the val split, sharded across ranks.

Under torchrun each rank scores its own contiguous shard (no padding) and the
metric states are summed across ranks before the metrics are computed, so the
numbers are those of one process scoring the whole split (docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich.progress import Progress

from edgemtl.core.tasks import TaskSpec
from edgemtl.data.preprocess import InputSpec
from edgemtl.evaluation.scoring import HeadsBlock, metric_set, score_split
from edgemtl.training.distributed import Dist
from edgemtl.training.sharding import ShardReader, eval_shard

InferFn = Callable[[np.ndarray], dict[str, dict[str, np.ndarray]]]


def validate(
    infer: InferFn,
    reader: Any,
    input_spec: InputSpec,
    specs: Sequence[TaskSpec],
    heads: Sequence[str],
    dist: Dist,
    limit: int | None,
    batch_size: int,
    progress: Progress | None = None,
) -> HeadsBlock:
    """{head: {task: {metric: value}}} over the first `limit` val images (all when None).

    `infer` maps a preprocessed N x 3 x H x W float32 batch to each head's raw
    outputs; `progress` (optional) shows a transient "eval" bar.
    """
    total = len(reader) if limit is None else min(limit, len(reader))
    if dist.active:  # this rank's shard; states are summed below
        reader = ShardReader(reader, eval_shard(total, dist.rank, dist.world_size))
        total, limit = len(reader), None
    sets = {head: metric_set(specs) for head in heads}
    task_id = progress.add_task("  eval", total=total, loss="") if progress is not None else None

    def advance(done: int, _total: int) -> None:
        if progress is not None and task_id is not None:
            progress.update(task_id, completed=done)

    try:
        block = score_split(
            infer,
            reader,
            input_spec,
            specs,
            heads,
            batch_size=batch_size,
            limit=limit,
            progress=advance,
            sets=sets,
        )
    finally:
        if progress is not None and task_id is not None:
            progress.remove_task(task_id)
    if not dist.active:
        return block
    merged_block: HeadsBlock = {}
    for head in heads:
        merged = metric_set(specs)
        merged.merge_state(dist.sum_state(sets[head].state()))
        merged_block[head] = merged.compute()
    return merged_block

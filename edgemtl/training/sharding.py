"""Slicing work across ranks and chunks: the global batch, the val split, sample traces.

Conventions: `edgemtl.training.distributed` (docs/deploy.md "Distributed training").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgemtl.core.errors import UserError
from edgemtl.data.sample import Sample

#: Env var naming a folder where each rank appends the sample indices it trains on
#: (`rank<R>.jsonl`, one line per step): a debug aid to check data sharding.
TRACE_ENV = "EDGEMTL_TRACE_SAMPLES"


def check_batch(batch_size: int, world_size: int, micro_batches: int) -> int:
    """The chunk size of one micro-batch; the global batch must split evenly."""
    chunks = world_size * micro_batches
    if batch_size % chunks:
        raise UserError(
            f"train.batch_size {batch_size} is the global batch: it must be divisible by "
            f"processes ({world_size}) x train.micro_batches ({micro_batches}) = {chunks}"
        )
    return batch_size // chunks


def eval_shard(total: int, rank: int, world_size: int) -> np.ndarray:
    """A contiguous, disjoint shard of the first `total` indices (sizes differ by <= 1)."""
    return np.array_split(np.arange(total), world_size)[rank]


class ShardReader:
    """A split reader restricted to some indices (keeps the reader protocol)."""

    def __init__(self, reader: Any, indices: Sequence[int] | np.ndarray) -> None:
        self.reader = reader
        self.indices = [int(i) for i in indices]
        self.class_names = reader.class_names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.reader[self.indices[index]]


class SampleTrace:
    """Appends `{"epoch", "batch", "indices"}` per step to `$EDGEMTL_TRACE_SAMPLES/rank<R>.jsonl`.

    A no-op when the variable is unset.
    """

    def __init__(self, rank: int) -> None:
        folder = os.environ.get(TRACE_ENV)
        self.path = Path(folder) / f"rank{rank}.jsonl" if folder else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, epoch: int, batch: int, indices: Sequence[int]) -> None:
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(
                    json.dumps({"epoch": epoch, "batch": batch, "indices": list(indices)}) + "\n"
                )


def split_chunks(
    images: torch.Tensor, targets: dict[str, torch.Tensor], chunks: int
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The micro-batches of this rank's slice, in order."""
    parts = images.chunk(chunks)
    split = {k: v.chunk(chunks) for k, v in targets.items()}
    for i, x in enumerate(parts):
        yield x, {k: v[i] for k, v in split.items()}

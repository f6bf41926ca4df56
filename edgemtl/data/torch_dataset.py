"""Training-side glue: numpy split reader -> torch Dataset and a resumable loader.

Why a custom sampler: `--resume` must continue mid-epoch with the exact batch
order, so the permutation is a pure function of (seed, epoch) and the loader can
start at any batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from edgemtl.data.preprocess import InputSpec, prepare_sample
from edgemtl.data.registry import SplitReader


class PreparedSplit(Dataset):
    """Reader + the shared preprocessing, as tensors.

    With `augment` (training split only), sample i of epoch e is augmented from
    `augment_rng(seed, e, i)`: a pure function, so resume and workers replay it.
    """

    def __init__(self, reader: SplitReader, spec: InputSpec, augment: Any = None, seed: int = 0) -> None:
        self.reader = reader
        self.spec = spec
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sample = self.reader[index]
        if self.augment is not None:
            from edgemtl.data.augment import augment_rng

            sample = self.augment(sample, augment_rng(self.seed, self.epoch, index))
        image, targets = prepare_sample(sample, self.spec)
        return torch.from_numpy(image), {k: torch.from_numpy(v) for k, v in targets.items()}


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


class EpochSampler(Sampler[int]):
    """Shuffled order for one epoch, skipping the first `start` batches' samples."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        self.order = epoch_permutation(n, seed, epoch)[start:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


def train_loader(
    dataset: Dataset, batch_size: int, seed: int, epoch: int, start_batch: int, workers: int, pin_memory: bool = False
) -> DataLoader:
    sampler = EpochSampler(len(dataset), seed, epoch, start_batch * batch_size)  # type: ignore[arg-type]
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs["persistent_workers"] = False
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=pin_memory,
        **kwargs,
    )


def steps_per_epoch(n: int, batch_size: int) -> int:
    return n // batch_size

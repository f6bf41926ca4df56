"""Training-side glue: numpy split reader -> torch Dataset and a resumable loader.

Why a custom sampler: `--resume` must continue mid-epoch with the exact batch
order, so the permutation is a pure function of (seed, epoch) and the loader can
start at any batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from edgemtl.core.errors import UserError
from edgemtl.data.preprocess import InputSpec, prepare_sample
from edgemtl.data.registry import SplitReader


class PreparedSplit(Dataset):
    """Reader + the shared preprocessing, as tensors.

    With `augment` (training split only), sample i of epoch e is augmented from
    `augment_rng(seed, e, i)`: a pure function, so resume and workers replay it.
    """

    def __init__(
        self, reader: SplitReader, spec: InputSpec, augment: Any = None, seed: int = 0
    ) -> None:
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


def rank_batches(
    n: int,
    batch_size: int,
    seed: int,
    epoch: int,
    start_batch: int,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[int]]:
    """This rank's sample indices for each remaining global batch of the epoch.

    Global batch i is `perm[i*B:(i+1)*B]` of the (seed, epoch) permutation (the
    single-process order); rank r takes the r-th of `world_size` equal contiguous
    slices. Incomplete last batches are dropped, as in single-process training.
    """
    perm = epoch_permutation(n, seed, epoch)
    per_rank = batch_size // world_size
    out = []
    for i in range(start_batch, n // batch_size):
        lo = i * batch_size + rank * per_rank
        out.append(perm[lo : lo + per_rank].tolist())
    return out


def train_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    start_batch: int,
    workers: int,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Loader over this rank's remaining batches of `epoch` (`loader.batch_sampler` lists their
    indices)."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)  # augmentation draws depend on (seed, epoch, index)
    batches = rank_batches(len(dataset), batch_size, seed, epoch, start_batch, rank, world_size)  # type: ignore[arg-type]
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return n // batch_size


_T = TypeVar("_T")


def one_line_errors(batches: Iterable[_T]) -> Iterator[_T]:
    """`batches`, with a `UserError` raised in a DataLoader worker re-raised as its own line.

    torch re-raises a worker's exception with the worker's whole traceback in the
    message ("Caught UserError in DataLoader worker process 0. Original Traceback
    ..."); the user's line is the part after the last "UserError: ".
    """
    try:
        yield from batches
    except UserError as exc:
        text = str(exc)
        if "Original Traceback" not in text:
            raise
        raise UserError(text.rsplit("UserError: ", 1)[-1]) from None

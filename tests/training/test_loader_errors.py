"""A UserError in a DataLoader worker reaches the user as its own one line (training/data.py)."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader, Dataset

from edgemtl.core.errors import UserError
from edgemtl.training.data import one_line_errors


class _Broken(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        if index == 2:
            raise UserError("data/train/image/2.npy: dtype uint8; expected floating point")
        return index


def test_worker_error_is_one_line() -> None:
    loader = DataLoader(_Broken(), batch_size=1, num_workers=1)
    with pytest.raises(UserError) as info:
        list(one_line_errors(loader))
    assert str(info.value) == "data/train/image/2.npy: dtype uint8; expected floating point"


def test_other_errors_pass_unchanged() -> None:
    def batches():
        yield 1
        raise UserError("training stopped: loss is nan")

    with pytest.raises(UserError, match="^training stopped: loss is nan$"):
        list(one_line_errors(batches()))

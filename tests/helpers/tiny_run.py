"""The override set of the suite's tiny training runs (tests/conftest.py trains them once)."""

from __future__ import annotations

#: Small enough to train in seconds on one core; both heads present.
TINY_OVERRIDES = [
    "data.size=[32,64]",
    "data.synthetic.n_train=32",
    "data.synthetic.n_val=12",
    "data.workers=0",
    "model.width=0.125",
    "train.epochs=2",
    "train.batch_size=4",
    "train.optimizer.lr=0.002",
    "train.threads=1",
]

"""The override set of the suite's tiny training runs (tests/conftest.py trains them once), and
a tiny synthetic batch for single steps."""

from __future__ import annotations

import torch

from edgemtl.core.tasks import make_spec

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


def tiny_batch(keys: list[str], n: int = 2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    from edgemtl.data.preprocess import InputSpec, collate, prepare_sample
    from edgemtl.data.synthetic import SynthParams, render_sample

    params = SynthParams(n_train=n, n_val=1, height=32, width=64, seed=7)
    spec = InputSpec(32, 64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images, targets = collate(
        [prepare_sample(render_sample(params, "train", i), spec) for i in range(n)]
    )
    return torch.from_numpy(images), {k: torch.from_numpy(targets[k]) for k in keys}


def specs_for(keys: list[str]) -> list:
    from edgemtl.data.synthetic import CLASS_NAMES

    return [make_spec(k, list(CLASS_NAMES)) if k == "seg" else make_spec(k) for k in keys]

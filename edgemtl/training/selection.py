"""Which epoch's weights become best.pt, and the reference Δm is measured against.

The rule (docs/formats.md "Run folder"): each evaluation scores the selected
head by `train.select.metric`: Δm (docs/methods.md; positive = better)
against `train.reference` or, without one, against the selected head's first
evaluation; or one `<task>.<metric>` with the metric's own direction. A strictly
better score rewrites best.pt. Torch-free.

Validity rule of the first-evaluation reference: a metric whose first value is 0
or not finite (an empty class set, a head that predicts nothing yet) has no
defined relative change, so Δm skips it (`metrics.delta_m`); instead of skipping
it for the whole run, its reference is the first later evaluation where it is
finite and non-zero (from that epoch on it counts, starting at 0). A
`train.reference` given by the user is taken as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgemtl.core.checkpoint_schema import SelectRecord
from edgemtl.core.config import Recipe
from edgemtl.core.errors import UserError
from edgemtl.core.heads import default_head
from edgemtl.evaluation.metrics import HIGHER_IS_BETTER
from edgemtl.evaluation.scoring import HeadsBlock, with_delta_m


@dataclass
class Selection:
    """How best.pt is chosen, the Δm reference, and the best score so far."""

    head: str
    metric: str
    reference: dict[str, dict[str, float]] | None = None
    best_value: float | None = None
    best_epoch: int | None = None
    #: The reference is the run's own first evaluation (filled per metric; module docstring).
    own_reference: bool = True

    @classmethod
    def for_recipe(cls, recipe: Recipe, heads: Sequence[str]) -> Selection:
        """A fresh run's selection: the recipe's head, else `heads.default_head` of the heads
        the method evaluates (`heads`; Student when trained, else Teacher).

        Raises `UserError` for a metric that is neither delta_m nor `<task>.<metric>`
        of the recipe's tasks, and for an unreadable `train.reference`.
        """
        cfg = recipe.train
        head = default_head(heads, cfg.select.head)
        selection = cls(head=head, metric=cfg.select.metric, own_reference=not cfg.reference)
        if cfg.reference:
            from edgemtl.evaluation.reference import load_reference
            from edgemtl.training.checkpoint import load_checkpoint

            selection.reference = load_reference(cfg.reference, load_checkpoint)
        selection.check_metric(list(recipe.tasks))
        return selection

    @classmethod
    def from_record(cls, record: SelectRecord, own_reference: bool = True) -> Selection:
        """A resumed run's selection; `own_reference`: the recipe has no `train.reference`."""
        return cls(
            record.head,
            record.metric,
            record.reference,
            record.best_value,
            record.best_epoch,
            own_reference,
        )

    def check_metric(self, tasks: list[str]) -> None:
        if self.metric == "delta_m":
            return
        task, _, name = self.metric.partition(".")
        if task not in tasks or name not in HIGHER_IS_BETTER:
            raise UserError(
                f"train.select.metric {self.metric!r}: expected delta_m or <task>.<metric>, "
                "e.g. seg.miou"
            )

    def add_delta_m(self, block: HeadsBlock) -> HeadsBlock:
        """`block` with each head's Δm; without a reference the first block seen becomes it
        (metric by metric: the first finite, non-zero value of each)."""
        if self.reference is None:
            self.reference = {}
        if self.own_reference:
            for task, metrics in block[self.head].items():
                if not isinstance(metrics, dict):
                    continue
                kept = self.reference.setdefault(task, {})
                for name, value in metrics.items():
                    old = kept.get(name)
                    valid = old is not None and math.isfinite(old) and old != 0
                    if not valid and value is not None:
                        kept[name] = float(value)
        return with_delta_m(block, self.reference)

    def score(self, block: HeadsBlock) -> float:
        """The selected head's score in `block` (higher = better)."""
        metrics = block[self.head]
        if self.metric == "delta_m":
            return float(metrics["delta_m"])
        task, _, name = self.metric.partition(".")
        value = float(metrics[task][name])
        return value if HIGHER_IS_BETTER[name] else -value

    def improves(self, epoch: int, block: HeadsBlock) -> bool:
        """Record `epoch` as the best and return True when it scores strictly better."""
        value = self.score(block)
        if self.best_value is not None and not value > self.best_value:  # NaN never wins
            return False
        self.best_value, self.best_epoch = value, epoch
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "metric": self.metric,
            "reference": self.reference,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
        }

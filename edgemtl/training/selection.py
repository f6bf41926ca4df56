"""Which epoch's weights become best.pt, and the reference Δm is measured against.

The rule (docs/formats.md "Run folder"): each evaluation scores the selected
head by `train.select.metric`: Δm (docs/methods.md; positive = better)
against `train.reference` or, without one, against the selected head's first
evaluation; or one `<task>.<metric>` with the metric's own direction. A strictly
better score rewrites best.pt. Torch-free.
"""

from __future__ import annotations

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

    @classmethod
    def for_recipe(cls, recipe: Recipe, heads: Sequence[str]) -> Selection:
        """A fresh run's selection: the recipe's head, else `heads.default_head` of the heads
        the method evaluates (`heads`; Student when trained, else Teacher).

        Raises `UserError` for a metric that is neither delta_m nor `<task>.<metric>`
        of the recipe's tasks, and for an unreadable `train.reference`.
        """
        cfg = recipe.train
        head = default_head(heads, cfg.select.head)
        selection = cls(head=head, metric=cfg.select.metric)
        if cfg.reference:
            from edgemtl.evaluation.reference import load_reference
            from edgemtl.training.checkpoint import load_checkpoint

            selection.reference = load_reference(cfg.reference, load_checkpoint)
        selection.check_metric(list(recipe.tasks))
        return selection

    @classmethod
    def from_record(cls, record: SelectRecord) -> Selection:
        return cls(
            record.head, record.metric, record.reference, record.best_value, record.best_epoch
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
        """`block` with each head's Δm; without a reference the first block seen becomes it."""
        if self.reference is None:
            self.reference = block[self.head]
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

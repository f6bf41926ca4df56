"""Divergence watch: NaN/Inf weights stop a run; finite divergence is a warning.

Why both: the NaN guard in `step` stops on a non-finite *loss* before the step,
but a step can turn the weights non-finite while its loss was still finite (an
infinite learning rate), and Adam at a huge learning rate drives weights to
~1e30 with finite losses (BatchNorm hides the scale), so the run ends with exit
0 and meaningless heads. The rule (docs/methods.md "Divergence"), checked after
every epoch:

- any weight NaN/Inf: training stops with one line; no checkpoint is written
  (`edgemtl.training.checkpoint.save_checkpoint` refuses one as well);
- any model parameter above `WEIGHT_LIMIT` in magnitude, or the epoch's median
  step loss above `LOSS_FACTOR` x the first epoch's median step loss: a warning
  in the console, the epoch's metrics.jsonl row (`warnings`) and summary.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from edgemtl.core.checkpoint_schema import Position
from edgemtl.core.errors import UserError

#: A weight this large (in magnitude) means the run diverged: trained weights of these
#: networks stay below ~10 (BatchNorm-normalised convs).
WEIGHT_LIMIT = 1e4
#: The epoch's median step loss above this multiple of the first epoch's median: diverging.
LOSS_FACTOR = 100.0


def non_finite_parameter(model: nn.Module) -> str | None:
    """Name of the first parameter or buffer holding NaN/Inf (None when all are finite)."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def stop_if_non_finite(model: nn.Module, last: Path, position: Position) -> None:
    """Raise the one-line stop (`UserError`) when `model` holds NaN/Inf; `last`: the run's
    last.pt (named when it exists: it was written while the weights were finite)."""
    bad = non_finite_parameter(model)
    if bad is None:
        return
    kept = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint written"
    raise UserError(
        f"training stopped: weight {bad} is NaN/Inf at epoch {position.epoch + 1}, batch "
        f"{position.batch} (a step diverged: lower train.optimizer.lr or set train.grad_clip); "
        f"{kept}"
    )


def largest_weight(model: nn.Module) -> tuple[str, float]:
    """(name, value) of the parameter entry largest in magnitude ("", 0.0 without parameters)."""
    best = ("", 0.0)
    for name, param in model.named_parameters():
        if param.numel():
            value = float(param.detach().abs().max())
            if value > best[1]:
                best = (name, value)
    return best


def median(values: Sequence[float]) -> float | None:
    """Median of the finite `values` (None when there are none)."""
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return None
    mid = len(finite) // 2
    return finite[mid] if len(finite) % 2 else 0.5 * (finite[mid - 1] + finite[mid])


def divergence_warnings(
    epoch: int, model: nn.Module, step_losses: Sequence[float], history: Sequence[dict]
) -> tuple[float | None, list[str]]:
    """(the epoch's median step loss, the warnings of the module rule) for 0-based `epoch`.

    `step_losses`: this epoch's step losses; `history`: the metrics.jsonl rows so far
    (the first row's `loss_median` is the reference; none on the first epoch).
    """
    loss_median = median(step_losses)
    first = history[0].get("loss_median") if history else None
    out = []
    name, value = largest_weight(model)
    if value > WEIGHT_LIMIT:
        out.append(
            f"epoch {epoch + 1}: weight {name} reaches {value:.3g} in magnitude "
            f"(> {WEIGHT_LIMIT:g}): the run is diverging (lower train.optimizer.lr)"
        )
    if loss_median is not None and first and first > 0 and loss_median > LOSS_FACTOR * first:
        out.append(
            f"epoch {epoch + 1}: median loss {loss_median:.3g} is over {LOSS_FACTOR:g}x the "
            f"first epoch's ({first:.3g}): the run is diverging"
        )
    return loss_median, out

"""Per-task gradients on the shared encoder, cheaply, unscaled and checked.

Balancers that combine per-task gradients (PCGrad, the torchjd aggregators) need
the T x P matrix J of each task loss's gradient with respect to the P shared
(encoder) parameters. T full backward passes through decoders and encoder cost
about T plain steps. With the shared representation cut out of the graph
(`Method.cut_shared`, `SharedCut`), each task's backward stops at the cut (its
own decoder only), and one batched vector-Jacobian product carries all T
representation gradients through the encoder at once
(`torch.autograd.grad(..., is_grads_batched=True)`, a vmap over the backward).

Mixed precision: backward passes run on `scale * loss` (the fp16 GradScaler's
scale, so fp16 gradients keep their range) and the matrix is divided by
`scale` before anyone reasons on it; `finite` says whether it is usable. Under
torchrun the matrix is the mean over ranks (`mean_across_ranks`), so every rank
combines the same matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgemtl.training.distributed import mean_across_ranks
from edgemtl.training.methods.base import SharedCut


def flat_grads(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """d loss / d inputs, flattened into one vector (zeros where an input is unused)."""
    grads = torch.autograd.grad(loss, list(inputs), retain_graph=True, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(x)).reshape(-1) for g, x in zip(grads, inputs)]
    )


def cut_tensors(cuts: Sequence[SharedCut]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(originals, cuts) of every chunk's cut, in one flat order."""
    originals = [t for cut in cuts for t in cut.originals]
    leaves = [t for cut in cuts for t in cut.cuts]
    return originals, leaves


def representation_grads(
    losses: Sequence[torch.Tensor], cuts: Sequence[SharedCut], scale: float, accumulate: bool
) -> list[list[torch.Tensor]]:
    """Per task, d(scale * L_t) / d(each cut tensor), in `cut_tensors` order.

    `accumulate=True`: by `backward` (the parameters after the cut, i.e. the
    task-specific ones, accumulate the gradient of scale * sum_t L_t in `.grad`,
    at no extra cost); False: by `autograd.grad` (no `.grad` is touched).
    """
    _, leaves = cut_tensors(cuts)
    rows: list[list[torch.Tensor]] = []
    for loss in losses:
        if accumulate:
            for leaf in leaves:
                leaf.grad = None
            (scale * loss).backward(retain_graph=True)
            grads = [leaf.grad for leaf in leaves]
        else:
            grads = list(
                torch.autograd.grad(scale * loss, leaves, retain_graph=True, allow_unused=True)
            )
        rows.append([torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves)])
    for leaf in leaves:
        leaf.grad = None
    return rows


def encoder_jacobian(
    cuts: Sequence[SharedCut], rows: list[list[torch.Tensor]], shared: Sequence[nn.Parameter]
) -> torch.Tensor:
    """T x P: each task's representation gradient carried through the encoder, batched.

    One vector-Jacobian product for all T rows (vmap over the encoder's
    backward). Shapes: `rows[t][i]` matches the i-th cut tensor; P is the
    total number of elements of `shared`; dtype float32.
    """
    originals, _ = cut_tensors(cuts)
    stacked = [torch.stack([row[i] for row in rows]) for i in range(len(originals))]
    grads = torch.autograd.grad(
        originals, list(shared), stacked, allow_unused=True, is_grads_batched=True
    )
    t = len(rows)
    return torch.cat(
        [
            (torch.zeros(t, p.numel(), device=p.device) if g is None else g.reshape(t, -1)).float()
            for g, p in zip(grads, shared)
        ],
        dim=1,
    )


def shared_jacobian(
    losses: Sequence[torch.Tensor],
    shared: Sequence[nn.Parameter],
    cuts: Sequence[SharedCut],
    scale: float = 1.0,
) -> torch.Tensor:
    """T x P float32 Jacobian of the task losses on the shared parameters, unscaled, averaged
    over ranks.

    Side effect: every parameter after the cut gets `.grad` += the gradient of
    scale * sum_t L_t (the plain sum's, for task-specific parameters); the
    shared parameters' `.grad` is left for the caller to set (`set_shared_grads`).
    Without cuts (a method that does not cut), T backward passes through the
    whole network, then one of the plain sum.
    """
    if cuts:
        rows = representation_grads(losses, cuts, scale, accumulate=True)
        jac = encoder_jacobian(cuts, rows, shared)
    else:
        jac = torch.stack([flat_grads(scale * loss, shared).float() for loss in losses])
        (scale * sum(losses)).backward()  # type: ignore[union-attr]
    return mean_across_ranks(jac / scale)


def finite_jacobian(
    losses: Sequence[torch.Tensor],
    shared: Sequence[nn.Parameter],
    cuts: Sequence[SharedCut],
    scale: float = 1.0,
) -> torch.Tensor | None:
    """`shared_jacobian`, or None after `poison(shared)` when it holds NaN/Inf (overflowed
    fp16 gradients): the caller then leaves its state as it was and the step is skipped."""
    jac = shared_jacobian(losses, shared, cuts, scale)
    if not torch.isfinite(jac).all():
        poison(shared)
        return None
    return jac


def set_shared_grads(shared: Sequence[nn.Parameter], vector: torch.Tensor, scale: float) -> None:
    """Write the combined P-vector into the shared parameters' `.grad`, times `scale`.

    Why times `scale`: the step then unscales every gradient alike (GradScaler.unscale_);
    the scale is a power of two, so the round trip is exact.
    """
    offset = 0
    for p in shared:
        size = p.numel()
        p.grad = (vector[offset : offset + size] * scale).view_as(p).to(p.dtype).clone()
        offset += size


def poison(shared: Sequence[nn.Parameter]) -> None:
    """Mark this step's gradients non-finite so the GradScaler skips it (and lowers its scale).

    Used when per-task gradients overflowed: the balancer does not combine them
    (its state stays as it was) and the optimizer step is skipped exactly as the
    scaler skips any overflowing fp16 step. Without a scaler (fp32) the update
    is non-finite, and the next step's loss check stops training.
    """
    for p in shared:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        p.grad.fill_(float("nan"))

"""Feature self-distillation: Student (and exit) up-stages regress the Teacher decoder's features.

Recipe: `method.feature_distill: {weight, taps}` (docs/methods.md "Feature
distillation"). Tap s (1 = the coarsest up-stage at 1/8 scale, 4 = full size)
of the Student, and of each exit whose own branch has that stage, passes
through a 1x1 adaptor to the Teacher's channel count and is compared with the
same task's Teacher decoder feature at that scale by the KD4MTL distance
(ECCVW 2020, §3): both normalised over channels at each pixel
(f / sqrt(sum_c f^2 + 1e-6)), squared difference summed over channels, mean
over pixels; the Teacher side is detached. The adaptors are training-only:
they live in the method's extra module (saved in checkpoints, never in the
network, so no export carries them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgemtl.core.heads import STUDENT, TEACHER, exit_stage
from edgemtl.training.models.network import MultiTaskNet, Taps

#: Name of a feature-distillation loss term: "<head>.feat" ("feat" for the Student).
FEAT = "feat"


def normalise(feature: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> unit length over C at every pixel (KD4MTL's eps 1e-6 under the root)."""
    return feature / torch.sqrt(feature.pow(2).sum(dim=1, keepdim=True) + 1e-6)


def feature_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KD4MTL distance of two N x C x H x W features (scalar): see the module docstring."""
    return (normalise(student) - normalise(teacher)).pow(2).sum(dim=1).mean()


def head_taps(head: str, taps: Sequence[int]) -> list[tuple[int, int]]:
    """(tap stage 1..4, index into that head's tap list) for the stages this head has.

    The Student has all four up-stages; an exit after Teacher stage k has stages
    k+1..4 (its first k are the Teacher's own features: distilling them is zero).
    """
    first = (exit_stage(head) or 0) + 1
    return [(stage, stage - first) for stage in taps if stage >= first]


def term_name(head: str) -> str:
    return FEAT if head == STUDENT else f"{head}.{FEAT}"


class FeatureAdaptors(nn.Module):
    """One 1x1 conv per (head, task, tap stage), from the head's channels to the Teacher's."""

    def __init__(
        self, model: MultiTaskNet, heads: Sequence[str], taps: Sequence[int], size: tuple[int, int]
    ) -> None:
        super().__init__()
        self.taps = tuple(taps)
        self.heads = tuple(h for h in heads if h != TEACHER)
        channels = _tap_channels(model, (TEACHER, *self.heads), size)
        self.convs = nn.ModuleDict()
        for head in self.heads:
            for key in channels[head]:
                for stage, index in head_taps(head, self.taps):
                    source = channels[head][key][index]
                    target = channels[TEACHER][key][stage - 1]
                    self.convs[self._name(head, key, stage)] = nn.Conv2d(source, target, 1)

    @staticmethod
    def _name(head: str, key: str, stage: int) -> str:
        return f"{head}__{key}__{stage}"

    def losses(self, taps: Taps) -> dict[str, dict[str, torch.Tensor]]:
        """{task: {term name: mean distance over this head's taps}} for every distilled head."""
        teacher = taps[TEACHER]
        out: dict[str, dict[str, torch.Tensor]] = {}
        for head in self.heads:
            for key, features in taps[head].items():
                pairs = head_taps(head, self.taps)
                if not pairs:
                    continue
                distances = [
                    feature_distance(
                        self.convs[self._name(head, key, stage)](features[index]),
                        teacher[key][stage - 1].detach(),
                    )
                    for stage, index in pairs
                ]
                out.setdefault(key, {})[term_name(head)] = torch.stack(distances).mean()
        return out


@torch.no_grad()
def _tap_channels(
    model: MultiTaskNet, heads: Sequence[str], size: tuple[int, int]
) -> dict[str, dict[str, list[int]]]:
    """Channel counts of every head's taps, read off one small forward pass in eval mode."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        probe = torch.zeros(1, 3, *size, device=device)
        _, taps = model.forward_with_taps(model.encoder(probe), tuple(heads))
    finally:
        model.train(was_training)
    return {
        head: {key: [f.shape[1] for f in feats] for key, feats in per_task.items()}
        for head, per_task in taps.items()
    }

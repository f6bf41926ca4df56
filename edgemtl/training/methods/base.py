"""The method interface the trainer drives.

Why this shape: later methods need (a) extra forward outputs (frozen external
teachers' features, adaptors), (b) their own parameters and optimizer settings,
(c) schedules over training (teacher annealing), (d) several stages (two-stage
KD). The trainer only ever calls the hooks below, and every method returns its
loss terms grouped by task so loss balancers can weigh whole tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edgemtl.core.config import Recipe
from edgemtl.core.heads import TEACHER, available
from edgemtl.core.tasks import TaskSpec
from edgemtl.training.models.encoder import EncoderOutput
from edgemtl.training.models.network import MultiTaskNet, Outputs

#: task key -> term name -> scalar tensor (e.g. {"seg": {"teacher": .., "student": .., "kd": ..}}).
LossTerms = dict[str, dict[str, torch.Tensor]]


@dataclass
class StepContext:
    """Where training is: methods with schedules read it."""

    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]."""
        total = max(1, self.epochs * self.steps_per_epoch)
        return min(1.0, (self.epoch * self.steps_per_epoch + self.step) / total)


@dataclass
class SharedCut:
    """The shared representation cut out of the autograd graph (MGDA-UB).

    Decoders read `cuts` (detached copies that require grad), so a task loss's
    gradient with respect to the representation is `autograd.grad(loss, cuts)`
    without touching the encoder; `originals` carry that gradient on into it.
    """

    originals: list[torch.Tensor]
    cuts: list[torch.Tensor]


class Method:
    """Base objective. Subclasses set `model_heads` and implement `loss_terms`."""

    #: Trained heads the MultiTaskNet must hold (names from `edgemtl.core.heads`).
    model_heads: tuple[str, ...] = (TEACHER,)
    #: Set by the trainer when its balancer needs gradients on the shared representation.
    cut_shared: bool = False
    #: The last forward's cut (only while `cut_shared`).
    shared_cut: SharedCut | None = None

    def __init__(self, recipe: Recipe, specs: Sequence[TaskSpec]) -> None:
        self.recipe = recipe
        self.specs = list(specs)

    @property
    def eval_heads(self) -> tuple[str, ...]:
        """Heads evaluated each epoch: the trained ones plus derived ones (`heads.available`)."""
        return available(self.model_heads)

    @property
    def train_heads(self) -> tuple[str, ...]:
        return tuple(self.model_heads)

    def build_model(self) -> MultiTaskNet:
        cfg = self.recipe.model
        return MultiTaskNet(
            self.specs, cfg.width, cfg.upsampling, cfg.decoder, heads=self.model_heads
        )

    def extra_module(self) -> nn.Module | None:
        """Trainable modules outside the network (adaptors); saved in checkpoints."""
        return None

    def parameter_groups(self, model: MultiTaskNet) -> list[dict]:
        """Optimizer parameter groups; extra keys (lr, weight_decay) override the recipe's."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def encode(self, model: MultiTaskNet, images: torch.Tensor) -> EncoderOutput:
        """The shared encoding decoders read (cut out of the graph when `cut_shared`)."""
        enc = model.encoder(images)
        if not self.cut_shared:
            self.shared_cut = None
            return enc
        originals = [*enc.skips, enc.bottleneck]
        cuts = [t.detach().requires_grad_() for t in originals]
        self.shared_cut = SharedCut(originals, cuts)
        return EncoderOutput(cuts[:-1], enc.indices, cuts[-1])

    def forward(self, model: MultiTaskNet, images: torch.Tensor, ctx: StepContext) -> Outputs:
        return model.forward_from_encoding(self.encode(model, images), self.train_heads)

    def loss_terms(
        self, outputs: Outputs, targets: dict[str, torch.Tensor], ctx: StepContext
    ) -> LossTerms:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for per-epoch schedules."""

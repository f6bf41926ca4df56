"""SD-MTCNN objectives: vanilla (Teacher alone), Eq. 5 and Eq. 6, with optional decoder exits
and feature self-distillation (docs/methods.md).

Baseline-2 is Eq. 5 or Eq. 6 with lambda = 0: the KD terms are still computed
(and logged) but weigh nothing, so they contribute no gradient. Exits get the
Student's terms: their task loss and, except under vanilla, lambda times the
distillation loss against the Teacher ("<exit>" and "<exit>.kd"); their losses
reach the Teacher stages they run on (deep supervision).
"""

from __future__ import annotations

from torch import nn

from edgemtl.core.heads import ENSEMBLE, STUDENT, TEACHER
from edgemtl.training.losses import distill_loss, task_loss
from edgemtl.training.methods.base import LossTerms, Method, StepContext
from edgemtl.training.methods.feature_kd import FeatureAdaptors
from edgemtl.training.models.network import MultiTaskNet, Outputs, ensemble


class Vanilla(Method):
    """Baseline-1: Teacher network, task losses only (exits: their task losses too)."""

    model_heads = (TEACHER,)

    def loss_terms(self, outputs: Outputs, targets, ctx: StepContext) -> LossTerms:
        return {
            s.key: {
                head: task_loss(s, outputs[head][s.key], targets[s.key])
                for head in self.trained_heads
            }
            for s in self.specs
        }


class SelfDistillation(Method):
    """`sd` (Eq. 5): sum_t L_t^T + L_t^S + lambda KD_t; `sd_ensemble` (Eq. 6): sum_t
    L_t(ensemble) + lambda KD_t. Exits add L_t^exit + lambda KD_t(exit); feature
    distillation adds weight * (mean KD4MTL distance over the taps) per head."""

    model_heads = (TEACHER, STUDENT)

    def __init__(self, recipe, specs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(recipe, specs)
        feature = recipe.method.feature_distill
        self.feature_weight = float(feature.weight)
        self.wants_taps = self.feature_weight > 0
        self.adaptors: FeatureAdaptors | None = None

    def build_model(self) -> MultiTaskNet:
        model = super().build_model()
        if self.wants_taps:
            size = (16, 16)  # the smallest input four 2x2 pools take: channels are what matter
            taps = self.recipe.method.feature_distill.taps  # type: ignore[union-attr]
            self.adaptors = FeatureAdaptors(model, self.trained_heads, taps, size)
        return model

    def extra_module(self) -> nn.Module | None:
        return self.adaptors

    def loss_terms(self, outputs: Outputs, targets, ctx: StepContext) -> LossTerms:
        cfg = self.recipe.method
        lam = float(cfg.lambda_)  # type: ignore[union-attr]
        teacher, student = outputs[TEACHER], outputs[STUDENT]
        mixed = ensemble(self.specs, teacher, student) if cfg.name == "sd_ensemble" else None
        terms: LossTerms = {}
        for spec in self.specs:
            target = targets[spec.key]
            kd = distill_loss(
                spec, student[spec.key], teacher[spec.key], target, cfg.tau, cfg.detach_teacher
            )
            if mixed is not None:
                group = {ENSEMBLE: task_loss(spec, mixed[spec.key], target)}
            else:
                group = {
                    TEACHER: task_loss(spec, teacher[spec.key], target),
                    STUDENT: task_loss(spec, student[spec.key], target),
                }
            group["kd"] = lam * kd
            for head in self.exit_heads:
                out = outputs[head][spec.key]
                group[head] = task_loss(spec, out, target)
                group[f"{head}.kd"] = lam * distill_loss(
                    spec, out, teacher[spec.key], target, cfg.tau, cfg.detach_teacher
                )
            terms[spec.key] = group
        if self.adaptors is not None and self.taps is not None:
            for key, group in self.adaptors.losses(self.taps).items():
                terms[key].update(
                    {name: self.feature_weight * value for name, value in group.items()}
                )
        return terms

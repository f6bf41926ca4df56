"""SD-MTCNN objectives: vanilla (Teacher alone), Eq. 5 and Eq. 6.

Baseline-2 is Eq. 5 or Eq. 6 with lambda = 0: the KD terms are still computed
(and logged) but weigh nothing, so they contribute no gradient.
"""

from __future__ import annotations

from edgemtl.training.losses import distill_loss, task_loss
from edgemtl.training.methods.base import LossTerms, Method, StepContext
from edgemtl.training.models.network import Outputs, ensemble


class Vanilla(Method):
    """Baseline-1: Teacher network, task losses only."""

    model_heads = ("teacher",)

    def loss_terms(self, outputs: Outputs, targets, ctx: StepContext) -> LossTerms:
        return {s.key: {"teacher": task_loss(s, outputs["teacher"][s.key], targets[s.key])} for s in self.specs}


class SelfDistillation(Method):
    """`sd` (Eq. 5): sum_t L_t^T + L_t^S + lambda KD_t; `sd_ensemble` (Eq. 6): sum_t L_t(ensemble) + lambda KD_t."""

    model_heads = ("teacher", "student")

    def loss_terms(self, outputs: Outputs, targets, ctx: StepContext) -> LossTerms:
        cfg = self.recipe.method
        lam = float(cfg.lambda_)  # type: ignore[union-attr]
        teacher, student = outputs["teacher"], outputs["student"]
        mixed = ensemble(self.specs, teacher, student) if cfg.name == "sd_ensemble" else None
        terms: LossTerms = {}
        for spec in self.specs:
            target = targets[spec.key]
            kd = distill_loss(spec, student[spec.key], teacher[spec.key], target, cfg.tau, cfg.detach_teacher)
            if mixed is not None:
                group = {"ensemble": task_loss(spec, mixed[spec.key], target)}
            else:
                group = {
                    "teacher": task_loss(spec, teacher[spec.key], target),
                    "student": task_loss(spec, student[spec.key], target),
                }
            group["kd"] = lam * kd
            terms[spec.key] = group
        return terms

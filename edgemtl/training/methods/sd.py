"""SD-MTCNN objectives: vanilla (Teacher alone), Eq. 5 and Eq. 6.

Baseline-2 is Eq. 5 or Eq. 6 with lambda = 0: the KD terms are still computed
(and logged) but weigh nothing, so they contribute no gradient.
"""

from __future__ import annotations

from edgemtl.core.heads import ENSEMBLE, STUDENT, TEACHER
from edgemtl.training.losses import distill_loss, task_loss
from edgemtl.training.methods.base import LossTerms, Method, StepContext
from edgemtl.training.models.network import Outputs, ensemble


class Vanilla(Method):
    """Baseline-1: Teacher network, task losses only."""

    model_heads = (TEACHER,)

    def loss_terms(self, outputs: Outputs, targets, ctx: StepContext) -> LossTerms:
        return {
            s.key: {TEACHER: task_loss(s, outputs[TEACHER][s.key], targets[s.key])}
            for s in self.specs
        }


class SelfDistillation(Method):
    """`sd` (Eq. 5): sum_t L_t^T + L_t^S + lambda KD_t; `sd_ensemble` (Eq. 6): sum_t L_t(ensemble) +
    lambda KD_t."""

    model_heads = (TEACHER, STUDENT)

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
            terms[spec.key] = group
        return terms

"""Baseline-3, traditional two-stage KD: a separate Student network against a frozen Teacher.

Stage 1 (a `vanilla` run of the same recipe, see `edgemtl.training.stages`) trains the
Teacher network. This method is stage 2: the trained network is a MultiTaskNet
holding only Student heads on its own, freshly initialised encoder, so its
checkpoint exports like any other `student` head. The Teacher comes from a
checkpoint, frozen (eval mode, no grad, not saved with the Student).
"""

from __future__ import annotations

from edgemtl.core.errors import UserError
from edgemtl.core.heads import STUDENT
from edgemtl.training.losses import distill_loss, task_loss
from edgemtl.training.methods.base import LossTerms, Method, StepContext
from edgemtl.training.methods.frozen import FrozenNet, load_teachers
from edgemtl.training.models.network import MultiTaskNet, Outputs

#: Key of the frozen Teacher's predictions inside the forward outputs.
FROZEN = "frozen_teacher"


class TwoStageKD(Method):
    """Stage 2: sum_t L_t^S + lambda KD_t(Student, frozen Teacher)."""

    model_heads = (STUDENT,)

    def __init__(self, recipe, specs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(recipe, specs)
        cfg = recipe.method
        if not cfg.teacher:
            raise UserError(
                "method.teacher: kd_two_stage needs the stage-1 Teacher checkpoint "
                "(`edgemtl train` trains stage 1 first when it is not set)"
            )
        teachers = load_teachers(
            {s.key: cfg.teacher for s in self.specs}, self.specs, recipe.data.mean, recipe.data.std
        )
        self.teacher: FrozenNet = teachers[self.specs[0].key]
        self.teacher.require_head(cfg.teacher_head, "method.teacher")
        self.teacher_head = cfg.teacher_head

    def forward(self, model: MultiTaskNet, images, ctx: StepContext) -> Outputs:  # type: ignore[no-untyped-def]
        outputs = super().forward(model, images, ctx)
        outputs[FROZEN] = self.teacher.predict(images, self.teacher_head)[self.teacher_head]
        return outputs

    def loss_terms(self, outputs: Outputs, targets, ctx: StepContext) -> LossTerms:  # type: ignore[no-untyped-def]
        cfg = self.recipe.method
        lam = float(cfg.lambda_)  # type: ignore[union-attr]
        student, teacher = outputs[STUDENT], outputs[FROZEN]
        terms: LossTerms = {}
        for spec in self.specs:
            target = targets[spec.key]
            kd = distill_loss(spec, student[spec.key], teacher[spec.key], target, cfg.tau, True)
            terms[spec.key] = {STUDENT: task_loss(spec, student[spec.key], target), "kd": lam * kd}
        return terms

"""BAM (Clark et al., 2019): distil single-task teachers' predictions with teacher annealing.

Per task with a teacher: g(p) * L_t(y, gt) + (1 - g(p)) * KD_t(y, y_teacher), where
g moves linearly from `anneal_start` to `anneal_end` over training progress p
(0 -> 1: from pure teacher targets to pure ground truth). KD_t is the project's
distillation loss (seg: tau^2 KL, regression: per-pixel L2), so the seg term is
the cross-entropy against the teacher/ground-truth mixture up to a constant.
"""

from __future__ import annotations

from edgemtl.core.heads import TEACHER
from edgemtl.training.losses import distill_loss, task_loss
from edgemtl.training.methods.base import LossTerms, Method, StepContext
from edgemtl.training.methods.frozen import FrozenNet, load_teachers
from edgemtl.training.models.network import MultiTaskNet, Outputs

TARGETS = "bam_teacher"


def ground_truth_share(progress: float, start: float = 0.0, end: float = 1.0) -> float:
    """Teacher annealing: the weight of the ground-truth loss at training progress p in [0, 1]."""
    p = min(1.0, max(0.0, progress))
    return start + (end - start) * p


class BAM(Method):
    model_heads = (TEACHER,)

    def __init__(self, recipe, specs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(recipe, specs)
        cfg = recipe.method
        self.teachers: dict[str, FrozenNet] = load_teachers(
            cfg.teachers, self.specs, recipe.data.mean, recipe.data.std
        )
        self.heads: dict[str, str] = {}
        for key, frozen in self.teachers.items():
            head = cfg.teacher_head or frozen.selected_head
            frozen.require_head(head, f"method.teachers.{key}")
            self.heads[key] = head

    def forward(self, model: MultiTaskNet, images, ctx: StepContext) -> Outputs:  # type: ignore[no-untyped-def]
        outputs = super().forward(model, images, ctx)
        cache: dict[tuple[int, str], dict] = {}
        predictions = {}
        for key, frozen in self.teachers.items():
            slot = (id(frozen), self.heads[key])
            if slot not in cache:
                cache[slot] = frozen.predict(images, self.heads[key])[self.heads[key]]
            predictions[key] = cache[slot][key]
        outputs[TARGETS] = predictions
        return outputs

    def loss_terms(self, outputs: Outputs, targets, ctx: StepContext) -> LossTerms:  # type: ignore[no-untyped-def]
        cfg = self.recipe.method
        share = ground_truth_share(ctx.progress, cfg.anneal_start, cfg.anneal_end)  # type: ignore[union-attr]
        terms: LossTerms = {}
        for spec in self.specs:
            pred, target = outputs[TEACHER][spec.key], targets[spec.key]
            if spec.key not in self.teachers:
                terms[spec.key] = {TEACHER: task_loss(spec, pred, target)}
                continue
            kd = distill_loss(spec, pred, outputs[TARGETS][spec.key], target, cfg.tau, True)
            terms[spec.key] = {
                "gt": share * task_loss(spec, pred, target),
                "distill": (1.0 - share) * kd,
            }
        return terms

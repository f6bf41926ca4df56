"""Running heads: every trained head once, then the derived ones (docs/methods.md "Heads").

Why one function for the network and for each exported head: training,
evaluation and export must compute a head the same way. The Teacher decoder
runs once and only as deep as needed (an exit after stage k needs its first k
stages); its stage features feed the exits and, when asked for, feature
distillation (`Taps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from edgemtl.core.heads import ENSEMBLE, STUDENT, TEACHER, exit_stage, get, needs
from edgemtl.core.tasks import TaskSpec
from edgemtl.training.models.encoder import EncoderOutput
from edgemtl.training.models.students import SharedNeck, student_forward, student_taps
from edgemtl.training.task_ops import get_ops

#: head -> task -> N x C x H x W output (activated: unit normals, seg logits).
Outputs = dict[str, dict[str, torch.Tensor]]
#: head -> task -> its up-stage features, coarse to fine (Teacher, Student: 1/8 .. full;
#: an exit after stage k: the Teacher's first k stages' features are the Teacher's own,
#: so only the exit's 4 - k branch stages are listed).
Taps = dict[str, dict[str, list[torch.Tensor]]]


def activate(spec: TaskSpec, raw: torch.Tensor) -> torch.Tensor:
    """Output activation of the task's kind (`TaskOps.activate`): unit normals; seg stays logits."""
    return get_ops(spec.kind).activate(raw)


def ensemble(
    specs: Sequence[TaskSpec], teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The `ensemble` head (Eq. 6 and inference alike), per kind (`TaskOps.ensemble`).

    seg: log of the mean of both softmax probabilities (log-probabilities are
    valid logits: softmax(log p) = p and argmax is unchanged); normal: mean,
    re-normalised; the rest: mean.
    """
    return {s.key: get_ops(s.kind).ensemble(teacher[s.key], student[s.key]) for s in specs}


#: Derived head -> how its outputs are computed from its trained heads' (in `built_from` order).
COMBINE = {ENSEMBLE: ensemble}


@dataclass
class HeadParts:
    """The modules heads are decoded from: a whole network's, or the subset one head's export
    holds. `teacher[task]` has `features(enc, stages)` (a `TeacherDecoder`, or an exit's
    `TeacherPrefix`) and, for the Teacher head, `output`; `exits[name][task]` is an `ExitBranch`."""

    specs: list[TaskSpec]
    teacher: nn.ModuleDict
    student: nn.ModuleDict
    student_neck: SharedNeck | None = None
    exits: dict[str, nn.ModuleDict] = field(default_factory=dict)


def teacher_depth(heads: Sequence[str]) -> int:
    """How many Teacher decoder stages `heads` need run (0 = none)."""
    depths = [4 if head == TEACHER else exit_stage(head) or 0 for head in heads]
    return max(depths, default=0)


def decode_heads(
    parts: HeadParts, enc: EncoderOutput, heads: Sequence[str], with_taps: bool = False
) -> tuple[Outputs, Taps]:
    """Outputs of exactly `heads` ({head: {task: N x C x H x W}}, activated), and, `with_taps`,
    the up-stage features of every trained head that ran (see `Taps`; else only exits').

    Without taps the Teacher and Student run their modules' own `forward` (exactly what the
    older single-head code ran), unless an exit needs the Teacher's stage features.
    """
    trained = needs(heads)
    keys = [spec.key for spec in parts.specs]
    out: Outputs = {}
    taps: Taps = {}
    exits_depth = teacher_depth([name for name in trained if name != TEACHER])
    depth = teacher_depth(trained) if with_taps or exits_depth else 0
    teacher_feats = {key: parts.teacher[key].features(enc, depth) for key in keys} if depth else {}
    for name in trained:
        if name == TEACHER and not teacher_feats:
            raw = {key: parts.teacher[key](enc) for key in keys}
        elif name == TEACHER:
            raw = {key: parts.teacher[key].output(teacher_feats[key][-1]) for key in keys}
            taps[name] = teacher_feats
        elif name == STUDENT and not with_taps:
            raw = student_forward(parts.student, parts.student_neck, enc, keys)
        elif name == STUDENT:
            raw, taps[name] = student_taps(parts.student, parts.student_neck, enc, keys)
        else:
            stage = exit_stage(name)
            assert stage is not None, name
            branches = parts.exits[name]
            taps[name] = {
                key: branches[key].features(teacher_feats[key][stage - 1], enc) for key in keys
            }
            raw = {key: branches[key].output(taps[name][key][-1]) for key in keys}
        out[name] = {spec.key: activate(spec, raw[spec.key]) for spec in parts.specs}
    for head in heads:
        if head not in out:
            out[head] = COMBINE[head](parts.specs, *(out[part] for part in get(head).built_from))
    return {head: out[head] for head in heads}, taps

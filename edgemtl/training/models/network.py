"""MultiTaskNet: one shared encoder, a Teacher decoder and a Student head per task, and
optional decoder exits (docs/methods.md "Heads", "Student kinds", "Exits").

`forward(x, heads=...)` runs the encoder once and only the decoders the named
heads need; `head_module(head)` returns a standalone module holding the encoder
and that head's parameters alone, which is what export traces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from edgemtl.core.heads import (
    STUDENT,
    TEACHER,
    available,
    exit_name,
    exit_stage,
    missing_message,
    needs,
)
from edgemtl.core.tasks import TaskSpec
from edgemtl.training.models.decode import HeadParts, decode_heads
from edgemtl.training.models.decode import Outputs as Outputs  # re-exported for methods
from edgemtl.training.models.decode import Taps as Taps
from edgemtl.training.models.decode import activate as activate
from edgemtl.training.models.decode import ensemble as ensemble
from edgemtl.training.models.decoders import TeacherDecoder
from edgemtl.training.models.encoder import Encoder, EncoderOutput
from edgemtl.training.models.exits import ExitBranch, TeacherPrefix
from edgemtl.training.models.students import StudentShape, build_student
from edgemtl.training.task_ops import get_ops


class MultiTaskNet(nn.Module):
    """Encoder + per-task Teacher decoders + the Student + exits, as `heads` and the
    recipe's `model` section ask (`student`: `StudentShape`; `exits`: stages 1..3)."""

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        width: float = 1.0,
        upsampling: str = "bilinear",
        decoder: str = "attention",
        heads: Iterable[str] = (TEACHER, STUDENT),
        student: StudentShape | None = None,
        exits: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.specs = list(tasks)
        self.width = width
        self.upsampling = upsampling
        self.decoder = decoder
        self.student_shape = student or StudentShape()
        trained = needs(heads)
        self.encoder = Encoder(width, keep_indices=upsampling == "unpool")
        bottleneck = self.encoder.bottleneck_channels
        self.teacher = nn.ModuleDict()
        self.student = nn.ModuleDict()
        self.student_neck = None
        self.exits = nn.ModuleDict()
        if TEACHER in trained or exits:
            for spec in self.specs:
                self.teacher[spec.key] = TeacherDecoder(
                    spec.channels, width, bottleneck, upsampling, decoder
                )
        if STUDENT in trained:
            self.student, self.student_neck = build_student(
                self.specs, width, bottleneck, self.encoder.channels, self.student_shape
            )
        for stage in exits:
            self.exits[exit_name(stage)] = nn.ModuleDict(
                {
                    spec.key: ExitBranch(
                        stage, spec.channels, width, self.encoder.channels, self.student_shape
                    )
                    for spec in self.specs
                }
            )

    @torch.no_grad()
    def init_outputs(self, constants: dict[str, np.ndarray]) -> None:
        """Start every head exactly at the constant predictor (class log-priors, mean depth...).

        The output convolutions get zero weights and the constant as bias, so
        training starts from the trivial predictor's error and every step that
        lowers the loss improves on it. Why: with L1 losses and Adam a bias
        starting at 0 needs thousands of steps to reach a depth scale of metres,
        and random output weights on sparse maps (keypoints, edges) start far
        worse than predicting zero; short CPU runs would spend their budget there.
        """
        for decoders in self.trained_modules().values():
            for key, decoder in decoders.items():
                output: nn.Conv2d = decoder.output  # type: ignore[assignment]
                if key in constants and output.bias is not None:
                    output.weight.zero_()
                    output.bias.copy_(torch.as_tensor(constants[key], dtype=output.bias.dtype))

    def trained_modules(self) -> dict[str, nn.ModuleDict]:
        """Trained head name -> its per-task modules (each ends in `output`)."""
        return {TEACHER: self.teacher, STUDENT: self.student, **dict(self.exits.items())}

    @property
    def heads(self) -> tuple[str, ...]:
        """Heads this network can produce (`edgemtl.core.heads.available`)."""
        return available(name for name, modules in self.trained_modules().items() if len(modules))

    def require_heads(self, heads: Iterable[str]) -> None:
        """ValueError (a programming error, not user input) for a head this network lacks."""
        for head in heads:
            if head not in self.heads:
                raise ValueError(missing_message(head, self.heads, "this network"))

    def parts(self) -> HeadParts:
        return HeadParts(
            self.specs, self.teacher, self.student, self.student_neck, dict(self.exits.items())
        )

    def forward_with_taps(self, enc: EncoderOutput, heads: Sequence[str]) -> tuple[Outputs, Taps]:
        """Outputs of `heads` and the up-stage features of each trained head that ran."""
        self.require_heads(heads)
        return decode_heads(self.parts(), enc, heads, with_taps=True)

    def forward_from_encoding(self, enc: EncoderOutput, heads: Sequence[str]) -> Outputs:
        self.require_heads(heads)
        return decode_heads(self.parts(), enc, heads)[0]

    def forward(self, x: torch.Tensor, heads: Sequence[str] = (TEACHER,)) -> Outputs:
        return self.forward_from_encoding(self.encoder(x), tuple(heads))

    def output_names(self, head: str, outputs: str = "raw") -> list[str]:
        return [spec.output_name(outputs) for spec in self.specs]

    def head_module(self, head: str, outputs: str = "raw") -> HeadModule:
        self.require_heads((head,))
        return HeadModule(self, head, outputs)


class HeadModule(nn.Module):
    """Encoder + one head, returning a tuple in `output_names` order (for export).

    It registers only the encoder and the modules that head uses: a Student
    export carries no Teacher tensor, and an exit's carries the first k stages
    of each Teacher decoder (no later stage, no Teacher output) and its branch.
    """

    def __init__(self, net: MultiTaskNet, head: str, outputs: str = "raw") -> None:
        super().__init__()
        if outputs not in ("raw", "decoded"):
            raise ValueError(f"outputs must be raw or decoded, got {outputs!r}")
        self.specs = net.specs
        self.head = head
        self.outputs = outputs
        self.encoder = net.encoder
        used = needs((head,))
        stage = exit_stage(head)
        self.teacher = net.teacher if TEACHER in used else nn.ModuleDict()
        if stage is not None:
            self.teacher = nn.ModuleDict(
                {key: TeacherPrefix(decoder, stage) for key, decoder in net.teacher.items()}
            )
        self.student = net.student if STUDENT in used else nn.ModuleDict()
        self.student_neck = net.student_neck if STUDENT in used else None
        self.exits = nn.ModuleDict({name: net.exits[name] for name in used if name in net.exits})
        self.output_names = net.output_names(head, outputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = HeadParts(
            self.specs, self.teacher, self.student, self.student_neck, dict(self.exits.items())
        )
        result = decode_heads(parts, self.encoder(x), (self.head,))[0][self.head]
        values = []
        for spec in self.specs:
            value = result[spec.key]
            if self.outputs == "decoded":  # seg: argmax labels in-graph; others unchanged
                value = get_ops(spec.kind).decode(value)
            values.append(value)
        return tuple(values)

"""MultiTaskNet: one shared encoder, a Teacher decoder and a Student head per task.

`forward(x, heads=...)` runs the encoder once and only the decoders the named
heads need; `head_module(head)` returns a standalone module holding the encoder
and that head's parameters alone, which is what export traces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from edgemtl.core.heads import ENSEMBLE, STUDENT, TEACHER, available, get, missing_message, needs
from edgemtl.core.tasks import TaskSpec
from edgemtl.training.models.decoders import StudentHead, TeacherDecoder
from edgemtl.training.models.encoder import Encoder, EncoderOutput
from edgemtl.training.task_ops import get_ops

Outputs = dict[str, dict[str, torch.Tensor]]


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


class MultiTaskNet(nn.Module):
    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        width: float = 1.0,
        upsampling: str = "bilinear",
        decoder: str = "attention",
        heads: Iterable[str] = (TEACHER, STUDENT),
    ) -> None:
        super().__init__()
        self.specs = list(tasks)
        self.width = width
        self.upsampling = upsampling
        self.decoder = decoder
        trained = needs(heads)
        self.encoder = Encoder(width, keep_indices=upsampling == "unpool")
        bottleneck = self.encoder.bottleneck_channels
        self.teacher = nn.ModuleDict()
        self.student = nn.ModuleDict()
        if TEACHER in trained:
            for spec in self.specs:
                self.teacher[spec.key] = TeacherDecoder(
                    spec.channels, width, bottleneck, upsampling, decoder
                )
        if STUDENT in trained:
            for spec in self.specs:
                self.student[spec.key] = StudentHead(spec.channels, width, bottleneck)

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
        for decoders in (self.teacher, self.student):
            for key, decoder in decoders.items():
                output: nn.Conv2d = decoder.output  # type: ignore[assignment]
                if key in constants and output.bias is not None:
                    output.weight.zero_()
                    output.bias.copy_(torch.as_tensor(constants[key], dtype=output.bias.dtype))

    def trained_modules(self) -> dict[str, nn.ModuleDict]:
        """Trained head name -> its per-task modules (empty when not trained)."""
        return {TEACHER: self.teacher, STUDENT: self.student}

    @property
    def heads(self) -> tuple[str, ...]:
        """Heads this network can produce (`edgemtl.core.heads.available`)."""
        return available(name for name, modules in self.trained_modules().items() if len(modules))

    def require_heads(self, heads: Iterable[str]) -> None:
        """ValueError (a programming error, not user input) for a head this network lacks."""
        for head in heads:
            if head not in self.heads:
                raise ValueError(missing_message(head, self.heads, "this network"))

    def forward_from_encoding(self, enc: EncoderOutput, heads: Sequence[str]) -> Outputs:
        self.require_heads(heads)
        return decode_heads(self.specs, self.trained_modules(), enc, heads)

    def forward(self, x: torch.Tensor, heads: Sequence[str] = (TEACHER,)) -> Outputs:
        return self.forward_from_encoding(self.encoder(x), tuple(heads))

    def output_names(self, head: str, outputs: str = "raw") -> list[str]:
        return [spec.output_name(outputs) for spec in self.specs]

    def head_module(self, head: str, outputs: str = "raw") -> HeadModule:
        self.require_heads((head,))
        return HeadModule(self, head, outputs)


class HeadModule(nn.Module):
    """Encoder + one head, returning a tuple in `output_names` order (for export).

    It registers only the encoder and the decoders that head uses, so a Student
    export carries no Teacher tensor.
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
        self.teacher = net.teacher if TEACHER in used else nn.ModuleDict()
        self.student = net.student if STUDENT in used else nn.ModuleDict()
        self.output_names = net.output_names(head, outputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        modules = {TEACHER: self.teacher, STUDENT: self.student}
        result = decode_heads(self.specs, modules, self.encoder(x), (self.head,))[self.head]
        values = []
        for spec in self.specs:
            value = result[spec.key]
            if self.outputs == "decoded":  # seg: argmax labels in-graph; others unchanged
                value = get_ops(spec.kind).decode(value)
            values.append(value)
        return tuple(values)


#: Derived head -> how its outputs are computed from its trained heads' (in `built_from` order).
COMBINE = {ENSEMBLE: ensemble}


def decode_heads(
    specs: Sequence[TaskSpec],
    modules: dict[str, nn.ModuleDict],
    enc: EncoderOutput,
    heads: Sequence[str],
) -> Outputs:
    """Run each trained head that `heads` need once, then combine the derived ones.

    `modules`: trained head name -> its per-task decoders. Returns {head: {task:
    N x C x H x W}} for exactly `heads`, activated (`activate`).
    """
    out: Outputs = {}
    for name in needs(heads):
        out[name] = {spec.key: activate(spec, modules[name][spec.key](enc)) for spec in specs}
    for head in heads:
        if head not in out:
            out[head] = COMBINE[head](specs, *(out[part] for part in get(head).built_from))
    return {head: out[head] for head in heads}

"""MultiTaskNet: one shared encoder, a Teacher decoder and a Student head per task.

`forward(x, heads=...)` runs the encoder once and only the decoders the named
heads need; `head_module(head)` returns a standalone module holding the encoder
and that head's parameters alone, which is what export traces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from edgemtl.training.models.decoders import StudentHead, TeacherDecoder
from edgemtl.training.models.encoder import Encoder, EncoderOutput
from edgemtl.core.tasks import TaskSpec

HEADS: tuple[str, ...] = ("teacher", "student", "ensemble")
Outputs = dict[str, dict[str, torch.Tensor]]


def activate(spec: TaskSpec, raw: torch.Tensor) -> torch.Tensor:
    """Output activation: unit normals; every other task is linear (seg stays logits)."""
    if spec.kind == "normal":
        return F.normalize(raw, dim=1, eps=1e-12)
    return raw


def ensemble(specs: Sequence[TaskSpec], teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `ensemble` head (Eq. 6 and inference alike).

    seg: log of the mean of both softmax probabilities (log-probabilities are
    valid logits: softmax(log p) = p and argmax is unchanged); normal: mean,
    re-normalised; the rest: mean.
    """
    out: dict[str, torch.Tensor] = {}
    for spec in specs:
        t, s = teacher[spec.key], student[spec.key]
        if spec.kind == "seg":
            probs = 0.5 * (F.softmax(t, dim=1) + F.softmax(s, dim=1))
            out[spec.key] = torch.log(probs.clamp_min(1e-12))
        elif spec.kind == "normal":
            out[spec.key] = F.normalize(0.5 * (t + s), dim=1, eps=1e-12)
        else:
            out[spec.key] = 0.5 * (t + s)
    return out


class MultiTaskNet(nn.Module):
    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        width: float = 1.0,
        upsampling: str = "bilinear",
        decoder: str = "attention",
        heads: Iterable[str] = ("teacher", "student"),
    ) -> None:
        super().__init__()
        self.specs = list(tasks)
        self.width = width
        self.upsampling = upsampling
        self.decoder = decoder
        trained = set(heads)
        self.encoder = Encoder(width, keep_indices=upsampling == "unpool")
        bottleneck = self.encoder.bottleneck_channels
        self.teacher = nn.ModuleDict()
        self.student = nn.ModuleDict()
        if "teacher" in trained:
            for spec in self.specs:
                self.teacher[spec.key] = TeacherDecoder(spec.channels, width, bottleneck, upsampling, decoder)
        if "student" in trained:
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

    @property
    def heads(self) -> tuple[str, ...]:
        """Heads this network can produce."""
        present = []
        if len(self.teacher):
            present.append("teacher")
        if len(self.student):
            present.append("student")
        if len(present) == 2:
            present.append("ensemble")
        return tuple(present)

    def _decode(self, decoders: nn.ModuleDict, enc: EncoderOutput) -> dict[str, torch.Tensor]:
        return {spec.key: activate(spec, decoders[spec.key](enc)) for spec in self.specs}

    def forward_from_encoding(self, enc: EncoderOutput, heads: Sequence[str]) -> Outputs:
        missing = [h for h in heads if h not in self.heads]
        if missing:
            raise ValueError(f"this network has no {missing[0]} head (it has: {', '.join(self.heads)})")
        out: Outputs = {}
        if "teacher" in heads or "ensemble" in heads:
            out["teacher"] = self._decode(self.teacher, enc)
        if "student" in heads or "ensemble" in heads:
            out["student"] = self._decode(self.student, enc)
        if "ensemble" in heads:
            out["ensemble"] = ensemble(self.specs, out["teacher"], out["student"])
        return {head: out[head] for head in heads}

    def forward(self, x: torch.Tensor, heads: Sequence[str] = ("teacher",)) -> Outputs:
        return self.forward_from_encoding(self.encoder(x), tuple(heads))

    def output_names(self, head: str, outputs: str = "raw") -> list[str]:
        return [spec.output_name(outputs) for spec in self.specs]

    def head_module(self, head: str, outputs: str = "raw") -> HeadModule:
        if head not in self.heads:
            raise ValueError(f"this network has no {head} head (it has: {', '.join(self.heads)})")
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
        self.teacher = net.teacher if head in ("teacher", "ensemble") else nn.ModuleDict()
        self.student = net.student if head in ("student", "ensemble") else nn.ModuleDict()
        self.output_names = net.output_names(head, outputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        enc = self.encoder(x)
        teacher = {s.key: activate(s, self.teacher[s.key](enc)) for s in self.specs} if len(self.teacher) else {}
        student = {s.key: activate(s, self.student[s.key](enc)) for s in self.specs} if len(self.student) else {}
        if self.head == "ensemble":
            result = ensemble(self.specs, teacher, student)
        else:
            result = teacher if self.head == "teacher" else student
        values = []
        for spec in self.specs:
            value = result[spec.key]
            if self.outputs == "decoded" and spec.kind == "seg":
                value = torch.argmax(value, dim=1).to(torch.int32)
            values.append(value)
        return tuple(values)

"""Decoder exits: pseudo-Teachers from intermediate decoder stages (docs/methods.md "Exits").

SD-MTCNN's conclusion (BMVC 2020, §5) names intermediate decoders as the next
step. Exit k of a task runs the first k stages of that task's Teacher decoder
(attention gates included), then the remaining 4 - k up-stages of the Student's
`skip` design with encoder skips at their scales, then a conv3x3 output. The
Teacher stages are the Teacher's own modules, so exit losses also train them
(deep supervision). `TeacherPrefix` is what an exit's export carries of the
Teacher: the first k stages and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgemtl.training.models.decoders import DecoderStages, TeacherDecoder
from edgemtl.training.models.encoder import EncoderOutput
from edgemtl.training.models.students import StudentShape, skip_stages


class ExitBranch(nn.Module):
    """The part of exit `stage` a task owns: 4 - stage skip up-stages, then conv3x3.

    Input: the task's Teacher decoder feature after stage `stage` (channels
    `encoder_channels[4 - stage]`, at encoder scale index 4 - stage).
    """

    def __init__(
        self,
        stage: int,
        out_channels: int,
        model_width: float,
        encoder_channels: Sequence[int],
        shape: StudentShape,
    ) -> None:
        super().__init__()
        self.stage = stage
        self.branch = skip_stages(
            model_width, encoder_channels[4 - stage], encoder_channels, shape, stage + 1, 4
        )
        self.output = nn.Conv2d(self.branch.out_channels, out_channels, 3, padding=1)

    def features(self, teacher_feature: torch.Tensor, enc: EncoderOutput) -> list[torch.Tensor]:
        """Outputs of this exit's own up-stages (Student up-stages stage+1 .. 4)."""
        return self.branch(teacher_feature, enc)

    def forward(self, teacher_feature: torch.Tensor, enc: EncoderOutput) -> torch.Tensor:
        return self.output(self.features(teacher_feature, enc)[-1])


class TeacherPrefix(DecoderStages, nn.Module):
    """The first `stages` stages of a Teacher decoder (the same modules, no output conv)."""

    def __init__(self, decoder: TeacherDecoder, stages: int) -> None:
        super().__init__()
        self.decoder = decoder.decoder
        self.ups = nn.ModuleList(decoder.ups[:stages])
        self.convs = nn.ModuleList(decoder.convs[:stages])
        self.gates = nn.ModuleList(decoder.gates[:stages])

"""Per-task heads: the deep Teacher decoder and the light Student head.

Teacher stage k (k = 1..4, coarse to fine): upsample x2, conv stack to the
mirrored channel count, then a skip from the encoder feature of that scale:
- attention: mask = sigmoid(BN(conv(ReLU(BN(conv([dec; enc])))))), dec += mask * enc
- unet: [up; enc] concatenated before the conv stack (ungated)
- plain: no skip (Baseline-4)
`unpool` upsampling reuses the encoder's max-pool indices; the tensor fed to
MaxUnpool must have the pooled feature's channel count, so a 1x1 conv projects it
first (a documented detail of ours: the spec's bottleneck doubles the channels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgemtl.training.models.blocks import BASE_CHANNELS, TEACHER_LAYERS, conv_stack, scaled
from edgemtl.training.models.encoder import EncoderOutput


class AttentionGate(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mask = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.Sigmoid(),
        )

    def forward(self, decoded: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return decoded + self.mask(torch.cat([decoded, skip], dim=1)) * skip


class Upsample(nn.Module):
    """x2 upsampling by interpolation or by max-unpooling with encoder indices."""

    def __init__(self, mode: str, in_channels: int, pooled_channels: int) -> None:
        super().__init__()
        self.mode = mode
        self.project = nn.Conv2d(in_channels, pooled_channels, 1) if mode == "unpool" else None
        self.out_channels = pooled_channels if mode == "unpool" else in_channels

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor | None, size: torch.Size
    ) -> torch.Tensor:
        if self.mode == "unpool":
            assert self.project is not None and indices is not None
            return F.max_unpool2d(self.project(x), indices, (2, 2), (2, 2), output_size=size)
        if self.mode == "nearest":
            return F.interpolate(x, size=size, mode="nearest")
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DecoderStages:
    """Teacher decoder stages as a sequence: shared by the full decoder and an exit's prefix.

    Needs `ups`, `convs`, `gates` (nn.ModuleList, one entry per stage) and `decoder`.
    """

    ups: nn.ModuleList
    convs: nn.ModuleList
    gates: nn.ModuleList
    decoder: str

    def stage(self, index: int, x: torch.Tensor, enc: EncoderOutput) -> torch.Tensor:
        """Decoder stage `index` (0 = from the 1/16 bottleneck to 1/8, ..., 3 = to full size)."""
        skip = enc.skips[3 - index]
        x = self.ups[index](x, enc.indices[3 - index], skip.shape[-2:])
        if self.decoder == "unet":
            x = torch.cat([x, skip], dim=1)
        x = self.convs[index](x)
        if self.decoder == "attention":
            x = self.gates[index](x, skip)
        return x

    def features(self, enc: EncoderOutput, stages: int | None = None) -> list[torch.Tensor]:
        """Outputs of the first `stages` decoder stages (what exits branch from, and what
        feature distillation regresses): 1/8, 1/4, 1/2, full scale."""
        out, x = [], enc.bottleneck
        for index in range(len(self.ups) if stages is None else stages):
            x = self.stage(index, x, enc)
            out.append(x)
        return out


class TeacherDecoder(DecoderStages, nn.Module):
    def __init__(
        self,
        out_channels: int,
        width: float,
        bottleneck_channels: int,
        upsampling: str,
        decoder: str,
    ) -> None:
        super().__init__()
        self.decoder = decoder
        enc_channels = [scaled(c, width) for c in BASE_CHANNELS]
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        self.gates = nn.ModuleList()
        in_channels = bottleneck_channels
        for stage, layers in enumerate(TEACHER_LAYERS):
            skip_channels = enc_channels[3 - stage]
            up = Upsample(upsampling, in_channels, skip_channels)
            conv_in = up.out_channels + (skip_channels if decoder == "unet" else 0)
            self.ups.append(up)
            self.convs.append(conv_stack(conv_in, skip_channels, layers))
            self.gates.append(
                AttentionGate(skip_channels) if decoder == "attention" else nn.Identity()
            )
            in_channels = skip_channels
        self.output = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, enc: EncoderOutput) -> torch.Tensor:
        return self.output(self.features(enc)[-1])


class StudentHead(nn.Module):
    """Four ConvTranspose2d(k=2, s=2)-BN-ReLU stages from the bottleneck, then conv3x3."""

    def __init__(self, out_channels: int, width: float, bottleneck_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = bottleneck_channels
        for base in reversed(BASE_CHANNELS):
            channels = scaled(base, width)
            layers += [
                nn.ConvTranspose2d(in_channels, channels, 2, stride=2, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = channels
        self.up = nn.Sequential(*layers)
        self.output = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def head_input(self, enc: EncoderOutput) -> torch.Tensor:
        """The bottleneck, in channels_last memory while training.

        Why: oneDNN runs this head's few-channel, full-resolution convolutions
        several times faster in channels_last than in NCHW on CPU (the Student's
        share of an Eq. 5 step, benchmarks/README.md "Training step"). Evaluation
        and export keep NCHW, so their numbers and graphs do not change.
        """
        x = enc.bottleneck
        return x.contiguous(memory_format=torch.channels_last) if self.training else x

    def features(self, enc: EncoderOutput) -> list[torch.Tensor]:
        """The four up-stages' outputs (1/8 .. full scale), for feature distillation."""
        out, x = [], self.head_input(enc)
        for index in range(0, len(self.up), 3):  # ConvTranspose, BN, ReLU per stage
            x = self.up[index + 2](self.up[index + 1](self.up[index](x)))
            out.append(x)
        return out

    def forward(self, enc: EncoderOutput) -> torch.Tensor:
        return self.output(self.up(self.head_input(enc)))

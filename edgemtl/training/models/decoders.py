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


class TeacherDecoder(nn.Module):
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
        x = enc.bottleneck
        for stage in range(4):
            skip = enc.skips[3 - stage]
            x = self.ups[stage](x, enc.indices[3 - stage], skip.shape[-2:])
            if self.decoder == "unet":
                x = torch.cat([x, skip], dim=1)
            x = self.convs[stage](x)
            if self.decoder == "attention":
                x = self.gates[stage](x, skip)
        return self.output(x)


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

    def forward(self, enc: EncoderOutput) -> torch.Tensor:
        return self.output(self.up(enc.bottleneck))

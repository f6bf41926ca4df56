"""The shared SegNet-style encoder (docs/formats.md, "Architecture"; SD-MTCNN, BMVC 2020)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgemtl.training.models.blocks import (
    BASE_CHANNELS,
    BOTTLENECK_CHANNELS,
    ENCODER_LAYERS,
    conv_bn_relu,
    conv_stack,
    scaled,
)


@dataclass
class EncoderOutput:
    """What decoders need: per-stage features before pooling (full, 1/2, 1/4, 1/8
    resolution), the pooling indices (for `unpool`), and the 1/16 bottleneck."""

    skips: list[torch.Tensor]
    indices: list[torch.Tensor | None]
    bottleneck: torch.Tensor


class Encoder(nn.Module):
    def __init__(self, width: float = 1.0, keep_indices: bool = False) -> None:
        super().__init__()
        self.channels = [scaled(c, width) for c in BASE_CHANNELS]
        self.bottleneck_channels = scaled(BOTTLENECK_CHANNELS, width)
        self.keep_indices = keep_indices
        in_channels = 3
        stages = []
        for out_channels, layers in zip(self.channels, ENCODER_LAYERS):
            stages.append(conv_stack(in_channels, out_channels, layers))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.bottleneck = conv_bn_relu(in_channels, self.bottleneck_channels)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        skips: list[torch.Tensor] = []
        indices: list[torch.Tensor | None] = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
            if self.keep_indices:
                x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
                indices.append(idx)
            else:
                x = F.max_pool2d(x, 2, 2)
                indices.append(None)
        return EncoderOutput(skips, indices, self.bottleneck(x))

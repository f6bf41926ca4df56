"""Small building blocks shared by the encoder and both decoders."""

from __future__ import annotations

from torch import nn

#: Encoder stage channels before the width multiplier (docs/formats.md, "Architecture").
BASE_CHANNELS: tuple[int, int, int, int] = (64, 128, 256, 512)
BOTTLENECK_CHANNELS = 1024
ENCODER_LAYERS: tuple[int, int, int, int] = (2, 2, 3, 4)
TEACHER_LAYERS: tuple[int, int, int, int] = (4, 3, 2, 2)


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (never below 4)."""
    return max(4, int(round(channels * width)))


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def conv_stack(in_channels: int, out_channels: int, layers: int) -> nn.Sequential:
    """`layers` conv3x3-BN-ReLU; the first changes the channel count."""
    blocks = [conv_bn_relu(in_channels, out_channels)]
    blocks += [conv_bn_relu(out_channels, out_channels) for _ in range(layers - 1)]
    return nn.Sequential(*blocks)

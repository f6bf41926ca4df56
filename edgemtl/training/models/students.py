"""Student heads: the paper's ConvTranspose head and the skip-connected Student.

`paper` (SD-MTCNN §3, docs/methods.md): per task, four ConvTranspose2d(k=2,
s=2)-BN-ReLU stages from the 1/16 bottleneck, then a conv3x3. It sees no
encoder feature finer than 1/16, which is why it trails the Teacher most on
thin structures (edges, keypoints).

`skip` (ours, docs/methods.md "Student kinds"): each of the four up-stages is
followed by adding a 1x1 conv + BN projection of the encoder feature at that
scale (FPN / LinkNet style), then optionally a conv3x3-BN-ReLU smoothing the
sum. Up-stages are ConvTranspose2d(k=2, s=2)-BN-ReLU (`transpose`) or a 1x1
conv-BN-ReLU at the coarse scale followed by a bilinear x2 Resize (`resize`:
ONNX Runtime has no INT8 ConvTranspose kernel; TensorRT runs both). The stages
are per task (`neck: per_task`) or shared by all tasks with one output conv
per task (`neck: shared`). Every op is Conv, ConvTranspose, BatchNorm (folded
on export), Relu, Add or Resize: what ONNX, onnxsim, ONNX Runtime's QDQ
quantiser and TensorRT 10/11 all handle.

Every head ends in `output` (a conv), so `MultiTaskNet.init_outputs` starts it
at the constant predictor like any other head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgemtl.core.tasks import TaskSpec
from edgemtl.training.models.blocks import BASE_CHANNELS, conv_bn_relu, scaled
from edgemtl.training.models.decoders import StudentHead
from edgemtl.training.models.encoder import EncoderOutput


@dataclass(frozen=True)
class StudentShape:
    """How a Student is built (`model.student` in a recipe; docs/formats.md)."""

    kind: str = "paper"  # paper | skip
    width: float = 1.0  # multiplier on the model's width, for the Student's channels only
    upsample: str = "transpose"  # transpose | resize
    smooth: bool = True
    neck: str = "per_task"  # per_task | shared

    @classmethod
    def of(cls, config: Any) -> StudentShape:
        """From a recipe's `model.student` (`core.config.StudentConfig`), a dict, or None (paper)."""
        if config is None:
            return cls()
        data = config if isinstance(config, dict) else config.model_dump()
        return cls(**data)


def stage_channels(model_width: float, student_width: float) -> list[int]:
    """Channels of the four up-stages, coarse to fine (512, 256, 128, 64 x widths)."""
    return [scaled(base, model_width * student_width) for base in reversed(BASE_CHANNELS)]


class UpStage(nn.Module):
    """x2 up-stage: ConvTranspose(k2, s2)-BN-ReLU, or conv1x1-BN-ReLU then bilinear Resize."""

    def __init__(self, in_channels: int, out_channels: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            self.body = nn.Sequential(
                nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )
        elif mode == "resize":
            self.body = conv_bn_relu(in_channels, out_channels, kernel=1)
        else:
            raise ValueError(f"unknown Student upsampling {mode!r}")

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        x = self.body(x)
        if self.mode == "resize":
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
        return x


class SkipStage(nn.Module):
    """Up-stage, + BN(conv1x1(encoder feature)), then conv3x3-BN-ReLU (or ReLU when not smoothing)."""

    def __init__(self, in_channels: int, out_channels: int, skip_channels: int, mode: str,
                 smooth: bool) -> None:
        super().__init__()
        self.up = UpStage(in_channels, out_channels, mode)
        self.project = nn.Sequential(nn.Conv2d(skip_channels, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels))
        self.smooth = conv_bn_relu(out_channels, out_channels) if smooth else nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.smooth(self.up(x, skip.shape[-2:]) + self.project(skip))


class SkipStages(nn.Module):
    """The last `len(channels)` up-stages of a skip Student, from a feature of `in_channels`.

    `first_scale` is the encoder scale index (3 = 1/8, ..., 0 = full) the first
    stage's skip comes from; a full Student starts at 3, an exit after Teacher
    stage k at 3 - k. `forward` returns every stage's output (the taps feature
    distillation reads); the last one feeds the output conv.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], encoder_channels: Sequence[int],
                 first_scale: int, mode: str, smooth: bool) -> None:
        super().__init__()
        self.first_scale = first_scale
        stages = []
        for i, out_channels in enumerate(channels):
            stages.append(SkipStage(in_channels, out_channels, encoder_channels[first_scale - i], mode,
                                    smooth))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor, enc: EncoderOutput) -> list[torch.Tensor]:
        taps = []
        for i, stage in enumerate(self.stages):
            x = stage(x, enc.skips[self.first_scale - i])
            taps.append(x)
        return taps


class SkipStudentHead(nn.Module):
    """A per-task skip Student: four skip stages from the bottleneck, then conv3x3."""

    def __init__(self, out_channels: int, model_width: float, bottleneck_channels: int,
                 encoder_channels: Sequence[int], shape: StudentShape) -> None:
        super().__init__()
        self.branch = SkipStages(bottleneck_channels, stage_channels(model_width, shape.width),
                                 encoder_channels, 3, shape.upsample, shape.smooth)
        self.output = nn.Conv2d(self.branch.out_channels, out_channels, 3, padding=1)

    def features(self, enc: EncoderOutput) -> list[torch.Tensor]:
        return self.branch(enc.bottleneck, enc)

    def forward(self, enc: EncoderOutput) -> torch.Tensor:
        return self.output(self.features(enc)[-1])


class SharedNeck(nn.Module):
    """Skip stages shared by every task (`neck: shared`); per-task heads are output convs."""

    def __init__(self, model_width: float, bottleneck_channels: int, encoder_channels: Sequence[int],
                 shape: StudentShape) -> None:
        super().__init__()
        self.branch = SkipStages(bottleneck_channels, stage_channels(model_width, shape.width),
                                 encoder_channels, 3, shape.upsample, shape.smooth)
        self.out_channels = self.branch.out_channels

    def forward(self, enc: EncoderOutput) -> list[torch.Tensor]:
        return self.branch(enc.bottleneck, enc)


class OutputHead(nn.Module):
    """A task's output conv3x3 on the shared neck's finest feature."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.output = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.output(feature)


def build_student(specs: Sequence[TaskSpec], model_width: float, bottleneck_channels: int,
                  encoder_channels: Sequence[int],
                  shape: StudentShape) -> tuple[nn.ModuleDict, SharedNeck | None]:
    """The Student's per-task modules (each ends in `output`) and its shared neck, if any."""
    heads = nn.ModuleDict()
    if shape.kind == "paper":
        for spec in specs:
            heads[spec.key] = StudentHead(spec.channels, model_width, bottleneck_channels)
        return heads, None
    if shape.kind != "skip":
        raise ValueError(f"unknown Student kind {shape.kind!r}")
    if shape.neck == "shared":
        neck = SharedNeck(model_width, bottleneck_channels, encoder_channels, shape)
        for spec in specs:
            heads[spec.key] = OutputHead(neck.out_channels, spec.channels)
        return heads, neck
    for spec in specs:
        heads[spec.key] = SkipStudentHead(spec.channels, model_width, bottleneck_channels,
                                          encoder_channels, shape)
    return heads, None


def student_taps(heads: nn.ModuleDict, neck: SharedNeck | None, enc: EncoderOutput,
                 keys: Sequence[str]) -> tuple[dict[str, torch.Tensor], dict[str, list[torch.Tensor]]]:
    """Run the Student once: raw outputs per task and each task's up-stage outputs (taps).

    With a shared neck every task's taps are the same four tensors.
    """
    raw: dict[str, torch.Tensor] = {}
    taps: dict[str, list[torch.Tensor]] = {}
    shared = neck(enc) if neck is not None else None
    for key in keys:
        head = heads[key]
        if shared is not None:
            taps[key] = shared
            raw[key] = head(shared[-1])
        else:
            taps[key] = head.features(enc)  # type: ignore[operator]
            raw[key] = head.output(taps[key][-1])  # type: ignore[operator]
    return raw, taps

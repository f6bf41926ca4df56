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
are per task, or the first `shared_stages` of them are one neck shared by all
tasks (4: a shared neck with one output conv per task). Every op is Conv,
ConvTranspose, BatchNorm (folded on export), Relu, Add or Resize: what ONNX,
onnxsim, ONNX Runtime's QDQ quantiser and TensorRT 10/11 all handle.

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
    """How a Student is built (`model.student` in a recipe; docs/formats.md).

    `smooth`: the up-stages (1 = coarsest .. 4 = full size) with a conv3x3
    after the skip addition. `shared_stages`: the first N up-stages are one neck
    shared by every task; the rest, and the output conv, are per task (0: per-task
    branches; 4: a shared neck with per-task output convs).
    """

    kind: str = "paper"  # paper | skip
    width: float = 1.0  # multiplier on the model's width, for the Student's channels only
    upsample: str = "transpose"  # transpose | resize
    smooth: tuple[int, ...] = (1, 2, 3, 4)
    shared_stages: int = 0

    @classmethod
    def of(cls, config: Any) -> StudentShape:
        """From a recipe's `model.student` (`core.config.StudentConfig`), a dict or None (paper)."""
        if config is None:
            return cls()
        data = dict(config if isinstance(config, dict) else config.model_dump())
        if isinstance(data.get("smooth"), bool):
            data["smooth"] = (1, 2, 3, 4) if data["smooth"] else ()
        data["smooth"] = tuple(data.get("smooth", (1, 2, 3, 4)))
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
    """Up-stage + BN(conv1x1(encoder feature)), then conv3x3-BN-ReLU (ReLU when not smoothing)."""

    def __init__(
        self, in_channels: int, out_channels: int, skip_channels: int, mode: str, smooth: bool
    ) -> None:
        super().__init__()
        self.up = UpStage(in_channels, out_channels, mode)
        self.project = nn.Sequential(
            nn.Conv2d(skip_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.smooth = conv_bn_relu(out_channels, out_channels) if smooth else nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.smooth(self.up(x, skip.shape[-2:]) + self.project(skip))


class SkipStages(nn.Module):
    """Up-stages `first..first+len(channels)-1` (1-based, 1 = to 1/8 scale) of a skip Student.

    Input: a feature of `in_channels` at the scale before stage `first` (the
    bottleneck for stage 1). Stage s adds the encoder feature of scale index
    4 - s (3 = 1/8 .. 0 = full). `forward` returns every stage's output (the taps
    feature distillation reads); the last one feeds the output conv.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        encoder_channels: Sequence[int],
        first: int,
        mode: str,
        smooth: Sequence[int],
    ) -> None:
        super().__init__()
        self.first = first
        stages = []
        for i, out_channels in enumerate(channels):
            stage = first + i
            stages.append(
                SkipStage(
                    in_channels, out_channels, encoder_channels[4 - stage], mode, stage in smooth
                )
            )
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor, enc: EncoderOutput) -> list[torch.Tensor]:
        taps = []
        for i, stage in enumerate(self.stages):
            x = stage(x, enc.skips[4 - (self.first + i)])
            taps.append(x)
        return taps


def skip_stages(
    model_width: float,
    in_channels: int,
    encoder_channels: Sequence[int],
    shape: StudentShape,
    first: int,
    last: int,
) -> SkipStages:
    """Up-stages first..last (1-based, inclusive) of the skip design `shape` describes."""
    channels = stage_channels(model_width, shape.width)[first - 1 : last]
    return SkipStages(in_channels, channels, encoder_channels, first, shape.upsample, shape.smooth)


class SkipStudentHead(nn.Module):
    """A task's own part of a skip Student: the up-stages after the shared ones, then conv3x3.

    Input: the bottleneck (no shared stages) or the shared neck's last feature.
    """

    def __init__(
        self,
        out_channels: int,
        model_width: float,
        in_channels: int,
        encoder_channels: Sequence[int],
        shape: StudentShape,
    ) -> None:
        super().__init__()
        self.branch = skip_stages(
            model_width, in_channels, encoder_channels, shape, shape.shared_stages + 1, 4
        )
        self.output = nn.Conv2d(self.branch.out_channels, out_channels, 3, padding=1)

    def features(self, x: torch.Tensor, enc: EncoderOutput) -> list[torch.Tensor]:
        return self.branch(x, enc)

    def forward(self, x: torch.Tensor, enc: EncoderOutput) -> torch.Tensor:
        taps = self.features(x, enc)
        return self.output(taps[-1] if taps else x)


class SharedNeck(nn.Module):
    """The first `shape.shared_stages` up-stages, shared by every task."""

    def __init__(
        self,
        model_width: float,
        bottleneck_channels: int,
        encoder_channels: Sequence[int],
        shape: StudentShape,
    ) -> None:
        super().__init__()
        self.branch = skip_stages(
            model_width, bottleneck_channels, encoder_channels, shape, 1, shape.shared_stages
        )
        self.out_channels = self.branch.out_channels

    def forward(self, enc: EncoderOutput) -> list[torch.Tensor]:
        return self.branch(enc.bottleneck, enc)


def build_student(
    specs: Sequence[TaskSpec],
    model_width: float,
    bottleneck_channels: int,
    encoder_channels: Sequence[int],
    shape: StudentShape,
) -> tuple[nn.ModuleDict, SharedNeck | None]:
    """The Student's per-task modules (each ends in `output`) and its shared neck, if any."""
    heads = nn.ModuleDict()
    if shape.kind == "paper":
        for spec in specs:
            heads[spec.key] = StudentHead(spec.channels, model_width, bottleneck_channels)
        return heads, None
    if shape.kind != "skip":
        raise ValueError(f"unknown Student kind {shape.kind!r}")
    neck = None
    in_channels = bottleneck_channels
    if shape.shared_stages:
        neck = SharedNeck(model_width, bottleneck_channels, encoder_channels, shape)
        in_channels = neck.out_channels
    for spec in specs:
        heads[spec.key] = SkipStudentHead(
            spec.channels, model_width, in_channels, encoder_channels, shape
        )
    return heads, neck


def student_forward(
    heads: nn.ModuleDict, neck: SharedNeck | None, enc: EncoderOutput, keys: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Raw Student outputs per task (the modules' own `forward`s)."""
    if isinstance(next(iter(heads.values()), None), StudentHead):
        return {key: heads[key](enc) for key in keys}
    x = neck(enc)[-1] if neck is not None else enc.bottleneck
    return {key: heads[key](x, enc) for key in keys}


def student_taps(
    heads: nn.ModuleDict, neck: SharedNeck | None, enc: EncoderOutput, keys: Sequence[str]
) -> tuple[dict[str, torch.Tensor], dict[str, list[torch.Tensor]]]:
    """Run the Student once: raw outputs per task and each task's four up-stage outputs (taps;
    the shared stages' outputs are the same tensors for every task)."""
    raw: dict[str, torch.Tensor] = {}
    taps: dict[str, list[torch.Tensor]] = {}
    shared = neck(enc) if neck is not None else []
    x = shared[-1] if shared else enc.bottleneck
    for key in keys:
        head = heads[key]
        if isinstance(head, StudentHead):
            taps[key] = head.features(enc)
        else:
            taps[key] = [*shared, *head.features(x, enc)]
        raw[key] = head.output(taps[key][-1])
    return raw, taps

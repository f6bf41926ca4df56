"""KD4MTL (Li & Bilen, ECCVW 2020): frozen single-task networks as feature teachers.

Per task t with a teacher, the multi-task network's shared feature f passes a
task-specific adaptor A_t and is pulled towards the teacher's feature g_t:
d(A_t f, g_t) with both L2-normalised over channels at every pixel. Layers:
`last` = the bottleneck; `mid+last` adds encoder stage 2's output. (The authors
distil the last layer of a *shared* decoder; edgemtl's decoders are per task, so
it uses these two encoder features: a documented deviation.) The adaptors are
trained with their own learning rate and weight decay; the teachers never train.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgemtl.core.errors import UserError
from edgemtl.core.heads import TEACHER
from edgemtl.training.losses import task_loss
from edgemtl.training.methods.base import LossTerms, Method, StepContext
from edgemtl.training.methods.frozen import FrozenNet, load_teachers
from edgemtl.training.models.encoder import Encoder, EncoderOutput
from edgemtl.training.models.network import MultiTaskNet, Outputs

#: Output keys: the network's own features, and each task teacher's features.
FEATURES = "features"
TEACHER_FEATURES = "teacher_features."


def layer_features(enc: EncoderOutput, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """`mid` = encoder stage 2's output (1/2 resolution), `last` = the bottleneck (1/16)."""
    table = {"mid": enc.skips[1], "last": enc.bottleneck}
    return {name: table[name] for name in layers}


def layer_channels(encoder: Encoder, layer: str) -> int:
    return encoder.channels[1] if layer == "mid" else encoder.bottleneck_channels


def normalised(f: torch.Tensor) -> torch.Tensor:
    return f / torch.sqrt(f.pow(2).sum(dim=1, keepdim=True) + 1e-6)


def feature_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Both L2-normalised over channels per pixel; squared difference summed over channels,
    averaged over pixels (and the batch)."""
    return (normalised(student) - normalised(teacher)).pow(2).sum(dim=1).mean()


def make_adaptor(kind: str, in_channels: int, out_channels: int) -> nn.Module:
    if kind == "linear":
        return nn.Conv2d(in_channels, out_channels, 1)
    if kind == "nonlinear":
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
        )
    if in_channels != out_channels:
        raise UserError(
            f"method.adaptor none: features have {in_channels} channels but the teacher's have "
            f"{out_channels} "
            "(use adaptor linear or nonlinear, or teachers of the same width)"
        )
    return nn.Identity()


class KD4MTL(Method):
    """Teacher-decoder multi-task network + per-task feature distillation through adaptors."""

    model_heads = (TEACHER,)

    def __init__(self, recipe, specs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(recipe, specs)
        cfg = recipe.method
        self.layers: tuple[str, ...] = ("last",) if cfg.layers == "last" else ("mid", "last")
        self.teachers: dict[str, FrozenNet] = load_teachers(
            cfg.teachers, self.specs, recipe.data.mean, recipe.data.std
        )
        own = Encoder(recipe.model.width)
        self.adaptors = nn.ModuleDict()
        for key, frozen in self.teachers.items():
            self.adaptors[key] = nn.ModuleDict(
                {
                    layer: make_adaptor(
                        cfg.adaptor,
                        layer_channels(own, layer),
                        layer_channels(frozen.net.encoder, layer),
                    )
                    for layer in self.layers
                }
            )

    def extra_module(self) -> nn.Module:
        return self.adaptors

    def parameter_groups(self, model: MultiTaskNet) -> list[dict]:
        opt = self.recipe.method.adaptor_optimizer  # type: ignore[union-attr]
        groups: list[dict[str, Any]] = [
            {"params": [p for p in model.parameters() if p.requires_grad]}
        ]
        adaptor_params = list(self.adaptors.parameters())
        if adaptor_params:
            groups.append(
                {"params": adaptor_params, "lr": opt.lr, "weight_decay": opt.weight_decay}
            )
        return groups

    def forward(self, model: MultiTaskNet, images: torch.Tensor, ctx: StepContext) -> Outputs:
        enc = self.encode(model, images)
        outputs = model.forward_from_encoding(enc, self.train_heads)
        outputs[FEATURES] = layer_features(enc, self.layers)
        done: dict[int, dict[str, torch.Tensor]] = {}
        for key, frozen in self.teachers.items():
            if id(frozen) not in done:
                done[id(frozen)] = layer_features(frozen.encode(images), self.layers)
            outputs[TEACHER_FEATURES + key] = done[id(frozen)]
        return outputs

    def loss_terms(self, outputs: Outputs, targets, ctx: StepContext) -> LossTerms:  # type: ignore[no-untyped-def]
        weights = self.recipe.method.weights  # type: ignore[union-attr]
        terms: LossTerms = {}
        for spec in self.specs:
            group = {TEACHER: task_loss(spec, outputs[TEACHER][spec.key], targets[spec.key])}
            if spec.key in self.teachers:
                ours, theirs = outputs[FEATURES], outputs[TEACHER_FEATURES + spec.key]
                adaptors: Any = self.adaptors[spec.key]
                distance = torch.stack(
                    [
                        feature_distance(adaptors[layer](ours[layer]), theirs[layer])
                        for layer in self.layers
                    ]
                ).sum()
                group["feat"] = float(weights.get(spec.key, 1.0)) * distance
            terms[spec.key] = group
        return terms

"""The records checkpoints and bundle manifests share: one task, the input normalisation.

Why one module: a checkpoint (`core/checkpoint_schema.py`) and a manifest
(`core/manifest.py`, also the ONNX metadata of a lone file) describe the same
tasks and the same `(x - mean) / std` input, and must refuse the same
malformed values (an unknown kind, class names that disagree with the channels,
`mean` with 2 values, a `std` of 0 that turns every input into inf, a
non-positive size) with the same words. Both schemas build on these types.
Torch-free.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from edgemtl.core.tasks import TaskSpec, get_kind, kind_names


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


def _positive_finite(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a finite number > 0, got {value}")
    return value


Finite = Annotated[float, AfterValidator(_finite)]
PositiveFinite = Annotated[float, AfterValidator(_positive_finite)]
#: Per-channel RGB values: exactly three (tuples in checkpoints, lists in manifests).
RGBMean = tuple[Finite, Finite, Finite]
RGBStd = tuple[PositiveFinite, PositiveFinite, PositiveFinite]
RGBMeanList = Annotated[list[Finite], Field(min_length=3, max_length=3)]
RGBStdList = Annotated[list[PositiveFinite], Field(min_length=3, max_length=3)]
#: A positive pixel count (input height, width).
Side = Annotated[int, Field(gt=0)]


class TaskRecord(BaseModel):
    """One task as a network predicts it (`TaskSpec.to_dict`); unknown keys are kept.

    `encoding` (optional; docs/formats.md "Tasks"): what a depth-like target
    stores, e.g. `inverse_depth` for Cityscapes' disparity; absent = the kind's
    default. It is left out of dumps when absent, so older files round-trip
    byte for byte.
    """

    model_config = ConfigDict(extra="allow")

    key: str
    kind: str
    channels: int = Field(ge=1)
    class_names: list[str] | None = None
    units: str = ""
    encoding: str | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in kind_names():  # registered kinds, a test's toy kind included
            raise ValueError(
                f"unknown task kind {kind!r} (expected one of: {', '.join(kind_names())})"
            )
        return kind

    @model_validator(mode="after")
    def _consistent(self) -> TaskRecord:
        kind = get_kind(self.kind)
        if self.class_names is not None and len(self.class_names) != self.channels:
            raise ValueError(f"{len(self.class_names)} class_names for {self.channels} channels")
        if kind.labels and self.class_names is None:
            raise ValueError(f"a {self.kind} task needs class_names")
        if kind.channels is not None and self.channels != kind.channels:
            raise ValueError(
                f"a {self.kind} task has {kind.channels} channels, not {self.channels}"
            )
        if self.encoding is not None and self.encoding not in kind.encodings:
            allowed = ", ".join(kind.encodings) or "none"
            raise ValueError(
                f"encoding {self.encoding!r} is not one of a {self.kind} task's ({allowed})"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_unset_encoding(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("encoding") is None:
            data.pop("encoding", None)
        return data

    def spec(self) -> TaskSpec:
        return TaskSpec.from_dict(self.model_dump())

"""Task specs and task kinds: what each dense task is, independent of any framework.

Why here and numpy-only: training, `eval`, export's parity gates, `profile`,
`predict` and the `data` commands need the same facts (channels, class names,
output names, valid pixels, decoding, metrics, colours) and the deploy side has
no torch. A *kind* (seg, depth, normal, keypoints, edges, or one you register)
is a `TaskKind` in its own module here; a *spec* is one task of a model: its
key, kind, channels and class names. The torch side of a kind (loss,
distillation, activation, ensemble) is `edgemtl.training.task_ops`.
docs/datasets.md "Adding a new task kind" walks through a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np

from edgemtl.core.tasks.depth import DepthKind
from edgemtl.core.tasks.edges import EdgesKind
from edgemtl.core.tasks.keypoints import KeypointsKind
from edgemtl.core.tasks.kind import ConstantFit, Legend, MetricInfo, TaskKind
from edgemtl.core.tasks.normal import NormalKind
from edgemtl.core.tasks.registry import (
    get_kind,
    kind_names,
    kinds,
    metric_info,
    metric_label,
    register_kind,
    unregister_kind,
)
from edgemtl.core.tasks.seg import SegKind

for _builtin in (SegKind(), DepthKind(), NormalKind(), KeypointsKind(), EdgesKind()):
    register_kind(_builtin)

#: The built-in kinds (registered kinds: `kind_names()`).
TASK_KINDS: tuple[str, ...] = kind_names()

_V = TypeVar("_V")


class _KindView(Mapping[str, _V]):
    """Read-only {kind name: fact} over the live registry (names older modules import)."""

    def __init__(self, fact: Callable[[TaskKind], _V | None]) -> None:
        self._fact = fact

    def _items(self) -> dict[str, _V]:
        return {k.name: v for k in kinds() if (v := self._fact(k)) is not None}

    def __getitem__(self, name: str) -> _V:
        return self._items()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


#: kind -> (raw output name, decoded output name).
OUTPUT_NAMES: Mapping[str, tuple[str, str]] = _KindView(lambda k: (k.raw_output, k.decoded_output))
#: Fixed channel counts; a labels kind's (seg) comes from its class list.
FIXED_CHANNELS: Mapping[str, int] = _KindView(lambda k: k.channels)
#: What a raw output means, for manifests and reports.
MEANINGS: Mapping[str, str] = _KindView(lambda k: k.meaning)


@dataclass(frozen=True)
class TaskSpec:
    """One dense task of a model: its key, kind, output channels and labels."""

    key: str
    kind: str
    channels: int
    class_names: tuple[str, ...] | None = None
    units: str = ""
    #: What the target stores, as the dataset declared it (one of the kind's `encodings`,
    #: e.g. "inverse_depth" for Cityscapes' disparity); None: the kind's default.
    encoding: str | None = None

    @property
    def task_kind(self) -> TaskKind:
        """The registered `TaskKind` (UserError if this kind is not registered)."""
        return get_kind(self.kind)

    def output_name(self, outputs: str = "raw") -> str:
        return self.task_kind.output_name(outputs)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoints, manifests); `encoding` only when declared."""
        data = asdict(self)
        data["class_names"] = list(self.class_names) if self.class_names is not None else None
        if data["encoding"] is None:
            del data["encoding"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        names = data.get("class_names")
        return cls(
            key=str(data["key"]),
            kind=str(data["kind"]),
            channels=int(data["channels"]),
            class_names=tuple(names) if names is not None else None,
            units=str(data.get("units", "")),
            encoding=data.get("encoding"),
        )


def make_spec(
    key: str,
    class_names: list[str] | tuple[str, ...] | None = None,
    units: str = "",
    encoding: str | None = None,
) -> TaskSpec:
    """The spec of a registered kind (the key is the kind).

    A labels kind (seg) takes its channels from `class_names` (ValueError when
    empty); other kinds ignore `class_names`. `encoding`: what the dataset says
    its targets store (UserError when the kind has no such encoding). An unknown
    key is a UserError.
    """
    kind = get_kind(key)
    if encoding is not None:
        kind.encoding_of(encoding)
    if kind.labels:
        names = tuple(class_names or ())
        return TaskSpec(key, key, kind.output_channels(names), names, units, encoding)
    return TaskSpec(key, key, kind.output_channels(), None, units, encoding)


def decode_numpy(spec: TaskSpec, raw: np.ndarray) -> np.ndarray:
    """Raw head output (N,C,H,W) -> what metrics and users consume (`TaskKind.decode`).

    seg: argmax labels (N,H,W) int32; normal: L2-normalised over C; others unchanged.
    """
    return spec.task_kind.decode(raw)


__all__ = [
    "FIXED_CHANNELS",
    "MEANINGS",
    "OUTPUT_NAMES",
    "TASK_KINDS",
    "ConstantFit",
    "Legend",
    "MetricInfo",
    "TaskKind",
    "TaskSpec",
    "decode_numpy",
    "get_kind",
    "kind_names",
    "kinds",
    "make_spec",
    "metric_info",
    "metric_label",
    "register_kind",
    "unregister_kind",
]

"""Task specs: what each dense task is, independent of any framework.

Why here and numpy-only: training, `eval`, export's parity check and `profile`
all need the same facts (channels, class names, output names, decoding) and the
deploy side has no torch. Losses live in `losses.py` (torch), metrics in
`metrics.py` (numpy); both are keyed by `TaskSpec.kind`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: task kind -> (raw output name, decoded output name); INTERFACES.md.
OUTPUT_NAMES: dict[str, tuple[str, str]] = {
    "seg": ("seg_logits", "seg_labels"),
    "depth": ("depth", "depth"),
    "normal": ("normal", "normal"),
    "keypoints": ("keypoints", "keypoints"),
    "edges": ("edges", "edges"),
}

#: Fixed channel counts; seg's comes from its class list.
FIXED_CHANNELS: dict[str, int] = {"depth": 1, "normal": 3, "keypoints": 1, "edges": 1}

#: What a raw output means, for manifests and reports.
MEANINGS: dict[str, str] = {
    "seg": "per-class logits (argmax = label)",
    "depth": "depth map",
    "normal": "unit surface normals, camera frame",
    "keypoints": "keypoint heatmap",
    "edges": "edge map",
}

TASK_KINDS: tuple[str, ...] = tuple(OUTPUT_NAMES)


@dataclass(frozen=True)
class TaskSpec:
    """One dense task of a model: its key, kind, output channels and labels."""

    key: str
    kind: str
    channels: int
    class_names: tuple[str, ...] | None = None
    units: str = ""

    def output_name(self, outputs: str = "raw") -> str:
        raw, decoded = OUTPUT_NAMES[self.kind]
        return raw if outputs == "raw" else decoded

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_names"] = list(self.class_names) if self.class_names is not None else None
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
        )


def make_spec(key: str, class_names: list[str] | tuple[str, ...] | None = None, units: str = "") -> TaskSpec:
    """Build the spec of a built-in task kind (the key is the kind)."""
    if key not in OUTPUT_NAMES:
        raise KeyError(key)
    if key == "seg":
        if not class_names:
            raise ValueError("a seg task needs class names")
        return TaskSpec(key, key, len(class_names), tuple(class_names), units)
    return TaskSpec(key, key, FIXED_CHANNELS[key], None, units)


def decode_numpy(spec: TaskSpec, raw: np.ndarray) -> np.ndarray:
    """Raw head output (N,C,H,W) -> what metrics and users consume.

    seg: argmax labels (N,H,W) int32; normal: L2-normalised over C; others unchanged.
    """
    if spec.kind == "seg":
        if raw.ndim == 3:  # already decoded labels
            return raw.astype(np.int32, copy=False)
        return np.argmax(raw, axis=1).astype(np.int32)
    if spec.kind == "normal":
        norm = np.sqrt(np.sum(np.square(raw, dtype=np.float32), axis=1, keepdims=True))
        return (raw / np.maximum(norm, 1e-12)).astype(np.float32)
    return raw.astype(np.float32, copy=False)

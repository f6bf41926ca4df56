"""The runner interface and the description of a model every runner shares.

Why one `ModelRef` for all three backends: profile, predict and the accuracy
loop only need "what goes in, what comes out, what it means", whichever of
ONNX/engine/checkpoint it came from. For bundles and lone ONNX files that is the
export manifest; for checkpoints a manifest-shaped record built from the
checkpoint (no artifacts list).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.options import at_least_one, choice
from edgemtl.core.tasks import TaskSpec, decode_numpy

if TYPE_CHECKING:
    from edgemtl.core.manifest import Artifact, Manifest

FORMATS = ("onnx", "trt", "torch")
#: `--device` of the runners (profile, predict).
DEVICES: tuple[str, ...] = ("cpu", "cuda")
#: `--provider` (ONNX Runtime execution providers, `onnxruntime_runner.PROVIDERS`).
PROVIDERS: tuple[str, ...] = ("cpu", "cuda", "tensorrt")
ENGINE_SUFFIXES = (".trt", ".engine", ".plan")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


@dataclass
class ModelRef:
    """One artifact to run, with what its manifest (or checkpoint) says about it.

    `artifact` is None for checkpoints; `precision` then says how torch runs it
    (fp32, or fp16 autocast).
    """

    path: Path
    format: str
    manifest: Manifest
    artifact: Artifact | None = None
    bundle: Path | None = None
    precision: str = "fp32"
    head: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.head:
            self.head = self.manifest.head

    @property
    def tasks(self) -> list[TaskSpec]:
        return [TaskSpec.from_dict(t.model_dump(mode="json")) for t in self.manifest.tasks.values()]

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.manifest.input.height), int(self.manifest.input.width)

    @property
    def label(self) -> str:
        """Short row label, e.g. `student fp32 onnx`."""
        return f"{self.head} {self.precision} {self.format}"

    def output_for_task(self) -> dict[str, str]:
        """task key -> output tensor name (from the artifact's outputs, else the task kind's
        default)."""
        by_task: dict[str, str] = {}
        if self.artifact is not None:
            for out in self.artifact.outputs:
                by_task[out.task] = out.name
        mode = self.manifest.outputs_mode
        for spec in self.tasks:
            by_task.setdefault(spec.key, spec.output_name(mode))
        return by_task

    def decode(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runner outputs -> decoded per-task arrays (seg N,H,W int32; others N,C,H,W)."""
        names = self.output_for_task()
        decoded: dict[str, np.ndarray] = {}
        for spec in self.tasks:
            name = names[spec.key]
            if name not in outputs:
                raise UserError(
                    f"{self.path}: output {name!r} for task {spec.key} missing "
                    f"(the model gave {sorted(outputs)})"
                )
            decoded[spec.key] = decode_numpy(spec, np.asarray(outputs[name]))
        return decoded


@dataclass(frozen=True)
class RunnerOptions:
    """Backend choices the user makes on the command line.

    device: "cpu" or "cuda"; provider (ONNX Runtime): "cpu", "cuda" or
    "tensorrt"; threads: CPU intra-op threads (None = the free CPUs,
    `edgemtl.core.threads.run_choice`; recorded);
    fp16: autocast for the torch runner.
    """

    device: str = "cpu"
    provider: str | None = None
    threads: int | None = None
    fp16: bool = False

    def __post_init__(self) -> None:
        choice(self.device, "--device", DEVICES)
        if self.provider is not None:
            choice(self.provider, "--provider", PROVIDERS)
        if self.threads is not None:
            at_least_one(self.threads, "--threads")


class Runner(abc.ABC):
    """Load once, then `infer` numpy batches; report what ran where.

    `infer` takes an N x 3 x H x W float32 batch (already preprocessed) and
    returns host numpy arrays keyed by output name. `last_compute_ns` is the
    device-side compute time of the last `infer` (CUDA events) or None where
    the host wall time is all there is.
    """

    backend: str = ""

    def __init__(self, ref: ModelRef, options: RunnerOptions) -> None:
        self.ref = ref
        self.options = options

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.options.device}"

    @abc.abstractmethod
    def load(self) -> None: ...

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def last_compute_ns(self) -> int | None:
        return None

    @abc.abstractmethod
    def device_facts(self) -> dict[str, Any]:
        """Backend, versions, device name, threads: recorded in the report."""

    def batch_limits(self) -> tuple[int, int]:
        """(min, max) batch this artifact accepts; (1, large) when dynamic."""
        art = self.ref.artifact
        if art is None:
            return 1, 1 << 16
        if art.batch.dynamic:
            return art.batch.min, art.batch.max
        return art.batch.max, art.batch.max

    def check_batch(self, batch: int) -> str | None:
        """None if `batch` runs here, else the reason it does not."""
        low, high = self.batch_limits()
        if not low <= batch <= high:
            if low == high:
                return f"fixed batch {low} (export with --dynamic-batch to sweep)"
            return f"batch range {low}..{high}"
        return None

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        h, w = self.ref.input_hw
        return batch, 3, h, w

    def close(self) -> None:
        return None

    def __enter__(self) -> Runner:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

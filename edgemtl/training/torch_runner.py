"""PyTorch reference runner: a checkpoint's head on CPU or CUDA, optional FP16 autocast.

The only runtime module that touches torch, and only inside functions: the
deploy side imports `edgemtl.deploy.runtime` without it. The head is the same
`net.head_module(head, "raw")` that export traces, so a checkpoint row and its
ONNX rows in one report differ only by the backend.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np

from edgemtl.core.checkpoint_schema import Checkpoint
from edgemtl.core.errors import TRAIN_EXTRA, UserError
from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions

_CACHE: dict[tuple[str, float], Checkpoint] = {}


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise UserError(
            f"profiling a checkpoint (.pt) needs PyTorch: {TRAIN_EXTRA}, "
            "or profile an exported bundle instead"
        ) from None
    return torch


def _load(path: Path) -> Checkpoint:
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _CACHE:
        import_torch()
        from edgemtl.training.checkpoint import load_checkpoint

        _CACHE.clear()
        _CACHE[key] = load_checkpoint(path)
    return _CACHE[key]


def checkpoint_ref(path: Path, head: str | None, fp16: bool = False) -> ModelRef:
    """A `ModelRef` whose manifest is the one export would write for this head
    (`manifest_from_checkpoint`; `head` None: the checkpoint's default head)."""
    from edgemtl.core.checkpoint_manifest import manifest_from_checkpoint

    manifest = manifest_from_checkpoint(_load(path), path, head, checksum=False)
    return ModelRef(
        path=path,
        format="torch",
        manifest=manifest,
        head=manifest.head,
        precision="fp16" if fp16 else "fp32",
    )


class TorchRunner(Runner):
    backend = "torch"

    def __init__(self, ref: ModelRef, options: RunnerOptions) -> None:
        super().__init__(ref, options)
        self.torch: Any = None
        self.module: Any = None
        self.output_names: list[str] = []
        self._device: Any = None
        self._events: tuple[Any, Any] | None = None
        self._last_compute_ns: int | None = None
        self.fp16 = options.fp16 or ref.precision == "fp16"

    @property
    def name(self) -> str:
        return f"torch-{self.options.device}"

    def load(self) -> None:
        torch = import_torch()
        self.torch = torch
        if self.options.device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: this PyTorch sees no CUDA GPU")
        from edgemtl.core.threads import run_choice

        torch.set_num_threads(self.options.threads or run_choice(self.options.device).threads)
        from edgemtl.training.checkpoint import model_from_checkpoint

        net = model_from_checkpoint(_load(self.ref.path))
        self.output_names = list(net.output_names(self.ref.head, "raw"))
        self._device = torch.device(self.options.device)
        self.module = net.head_module(self.ref.head, "raw").to(self._device).eval()
        if self.options.device == "cuda":
            self._events = (
                torch.cuda.Event(enable_timing=True),
                torch.cuda.Event(enable_timing=True),
            )

    def params(self) -> int:
        return int(sum(p.numel() for p in self.module.parameters()))

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(
            self._device, non_blocking=True
        )
        with (
            torch.inference_mode(),
            torch.autocast(self._device.type, dtype=torch.float16, enabled=self.fp16),
        ):
            if self._events is not None:
                start, end = self._events
                start.record()
                outs = self.module(x)
                end.record()
            else:
                outs = self.module(x)
        if not isinstance(outs, (tuple, list)):
            outs = (outs,)
        result = {n: o.float().cpu().numpy() for n, o in zip(self.output_names, outs)}
        if self._events is not None:
            self._events[1].synchronize()
            self._last_compute_ns = int(self._events[0].elapsed_time(self._events[1]) * 1e6)
        return result

    def last_compute_ns(self) -> int | None:
        return self._last_compute_ns

    def device_facts(self) -> dict[str, Any]:
        torch = self.torch or import_torch()
        facts: dict[str, Any] = {
            "backend": self.backend,
            "runner": self.name,
            "torch": torch.__version__,
            "device": self.options.device,
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "autocast_fp16": self.fp16,
        }
        if self.options.device == "cuda":
            facts["gpu"] = torch.cuda.get_device_name(0)
            facts["copies_included"] = "end_to_end only (compute uses CUDA events)"
        return facts

"""ONNX Runtime runner: CPU always; CUDA / TensorRT providers with onnxruntime-gpu.

Why explicit threads and ORT_ENABLE_ALL: timings must be reproducible and
comparable between artifacts, so the session is configured the same way for
each (`ort_session.build_session`, shared with export's parity runs) and the
thread count is recorded rather than left to ORT's default: `--threads`, else
one choice per run from the free CPUs (`edgemtl.core.threads.run_choice`),
spin-waiting only when nobody else was using them.
"""

from __future__ import annotations

import platform
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.core.threads import run_choice
from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.ort_session import build_session, import_onnxruntime

#: provider option -> ONNX Runtime execution providers, in priority order.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


class OrtRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, ref: ModelRef, options: RunnerOptions) -> None:
        super().__init__(ref, options)
        # RunnerOptions checked the name against base.PROVIDERS, the keys of PROVIDERS.
        self.provider = options.provider or ("cuda" if options.device == "cuda" else "cpu")
        choice = run_choice()
        self.threads = options.threads or choice.threads
        self.spin = choice.spin
        self.session: Any = None
        self.input_name = "image"
        self._output_names: list[str] = []

    @property
    def name(self) -> str:
        return f"ort-{self.provider}"

    def load(self) -> None:
        ort = import_onnxruntime()
        wanted = PROVIDERS[self.provider]
        available = ort.get_available_providers()
        if wanted[0] not in available:
            raise UserError(
                f"ONNX Runtime has no {wanted[0]} here (available: {', '.join(available)}): "
                "pip install onnxruntime-gpu (with a matching CUDA) for --provider "
                f"{self.provider}"
            )
        providers = [p for p in wanted if p in available]
        self.session = build_session(self.ref.path, self.threads, providers, self.spin)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise UserError(
                f"{self.ref.path}: expected one image input, the graph has {len(inputs)}"
            )
        self.input_name = inputs[0].name
        self._output_names = [o.name for o in self.session.get_outputs()]

    def batch_limits(self) -> tuple[int, int]:
        """From the graph itself (a symbolic N is dynamic), whatever the manifest says."""
        if self.session is None:
            return super().batch_limits()
        dim = self.session.get_inputs()[0].shape[0]
        if isinstance(dim, int) and dim > 0:
            return dim, dim
        return 1, 1 << 16

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(self._output_names, {self.input_name: batch})
        return dict(zip(self._output_names, outs))

    def device_facts(self) -> dict[str, Any]:
        ort = import_onnxruntime()
        providers = (
            self.session.get_providers()
            if self.session is not None
            else list(PROVIDERS[self.provider])
        )
        return {
            "backend": self.backend,
            "runner": self.name,
            "onnxruntime": ort.__version__,
            "providers": providers,
            "device": "cpu" if providers[0] == "CPUExecutionProvider" else "cuda",
            "cpu": platform.processor() or platform.machine(),
            "threads": self.threads,
            "spin_wait": self.spin,
            "graph_optimization": "ORT_ENABLE_ALL",
            "copies_included": providers[0] != "CPUExecutionProvider",
        }

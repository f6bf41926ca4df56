"""TensorRT engine runner (TensorRT 10.x / 11.x Python API).

Run path, as NVIDIA documents it: deserialize_cuda_engine -> one execution
context -> `set_tensor_address` for every I/O tensor, bound by name ->
`execute_async_v3(stream)`. Device memory comes from cuda-python or pycuda
(`cuda_mem`). Per call, CUDA events around `execute_async_v3` give the
compute-only time; the host wall time of `infer` (measured by the timing loop)
is end to end: H2D copy, compute, D2H copy and the stream synchronisation.

Before loading, the manifest's TensorRT version and GPU are compared with the
running ones; a mismatch is refused with the reason (`trt_env.engine_mismatch`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgemtl.core.errors import UserError
from edgemtl.deploy.runtime.base import ModelRef, Runner, RunnerOptions
from edgemtl.deploy.runtime.cuda_mem import CudaApi, open_cuda
from edgemtl.deploy.runtime.trt_env import engine_mismatch, gpu_facts, require_tensorrt


class _Binding:
    """One I/O tensor: its device buffer and (for outputs) page-locked host copy."""

    def __init__(self, name: str, is_input: bool, dtype: np.dtype) -> None:
        self.name = name
        self.is_input = is_input
        self.dtype = dtype
        self.shape: tuple[int, ...] = ()
        self.capacity = 0
        self.device = 0
        self.host: np.ndarray | None = None


class TrtRunner(Runner):
    backend = "tensorrt"

    def __init__(self, ref: ModelRef, options: RunnerOptions) -> None:
        super().__init__(ref, options)
        self.trt: Any = None
        self.cuda: CudaApi | None = None
        self.engine: Any = None
        self.context: Any = None
        self.stream = 0
        self.bindings: dict[str, _Binding] = {}
        self.input_name = ""
        self._gpu: dict[str, Any] = {}
        self._events: tuple[Any, Any] | None = None
        self._last_compute_ns: int | None = None
        self._batch = 0

    @property
    def name(self) -> str:
        return "tensorrt-cuda"

    def load(self) -> None:
        trt = require_tensorrt()
        self.trt = trt
        self._gpu = gpu_facts()
        recorded = (
            self.ref.artifact.trt.model_dump(mode="json")
            if self.ref.artifact and self.ref.artifact.trt
            else None
        )
        reason = engine_mismatch(
            recorded, str(trt.__version__), self._gpu["gpu"], self._gpu["compute_capability"]
        )
        if reason is not None:
            raise UserError(f"{self.ref.path}: {reason}")
        self.cuda = open_cuda()
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(self.ref.path.read_bytes())
        if self.engine is None:
            raise UserError(
                f"{self.ref.path}: TensorRT could not deserialize this engine (corrupt, or built "
                "by another TensorRT/GPU)"
            )
        self.context = self.engine.create_execution_context()
        self.stream = self.cuda.stream()
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            self.bindings[name] = _Binding(name, is_input, dtype)
            if is_input:
                if self.input_name:
                    raise UserError(
                        f"{self.ref.path}: expected one image input, the engine has several"
                    )
                self.input_name = name
        if not self.input_name:
            raise UserError(f"{self.ref.path}: the engine has no input tensor")
        self._events = (self.cuda.event(), self.cuda.event())

    def batch_limits(self) -> tuple[int, int]:
        if self.engine is None or not self.input_name:
            return super().batch_limits()
        shape = tuple(self.engine.get_tensor_shape(self.input_name))
        if shape and shape[0] >= 0:
            return int(shape[0]), int(shape[0])
        low, _opt, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
        return int(low[0]), int(high[0])

    def _prepare(self, batch_shape: tuple[int, ...]) -> None:
        """Set the input shape and (re)allocate buffers when the batch changes."""
        assert self.cuda is not None
        if not self.context.set_input_shape(self.input_name, batch_shape):
            raise UserError(
                f"{self.ref.path}: the engine does not accept input shape {batch_shape}"
            )
        for b in self.bindings.values():
            shape = tuple(
                int(d)
                for d in (batch_shape if b.is_input else self.context.get_tensor_shape(b.name))
            )
            nbytes = int(np.prod(shape)) * b.dtype.itemsize
            if nbytes > b.capacity:
                if b.device:
                    self.cuda.free(b.device)
                b.device = self.cuda.malloc(nbytes)
                b.capacity = nbytes
            if not b.is_input:
                b.host = self.cuda.pinned(shape, b.dtype)
            b.shape = shape
            self.context.set_tensor_address(b.name, b.device)
        self._batch = batch_shape[0]

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        assert self.cuda is not None and self._events is not None
        inp = self.bindings[self.input_name]
        if batch.shape != inp.shape:
            self._prepare(tuple(batch.shape))
        data = np.ascontiguousarray(batch, dtype=inp.dtype)
        cuda, stream = self.cuda, self.stream
        cuda.htod(inp.device, data, stream)
        start, end = self._events
        cuda.record(start, stream)
        if not self.context.execute_async_v3(stream):
            raise RuntimeError(f"{self.ref.path}: execute_async_v3 failed")
        cuda.record(end, stream)
        outputs: dict[str, np.ndarray] = {}
        for b in self.bindings.values():
            if not b.is_input:
                assert b.host is not None
                cuda.dtoh(b.host, b.device, stream)
                outputs[b.name] = b.host
        cuda.sync(stream)
        self._last_compute_ns = int(cuda.elapsed_ms(start, end) * 1e6)
        return {k: v.copy() for k, v in outputs.items()}

    def last_compute_ns(self) -> int | None:
        return self._last_compute_ns

    def device_facts(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "runner": self.name,
            "tensorrt": str(self.trt.__version__) if self.trt is not None else None,
            "device": "cuda",
            **self._gpu,
            "copies_included": "end_to_end only (compute uses CUDA events)",
        }

    def close(self) -> None:
        if self.cuda is not None:
            for b in self.bindings.values():
                if b.device:
                    self.cuda.free(b.device)
                    b.device = 0
            self.context = None
            self.engine = None
            self.cuda.close()
            self.cuda = None

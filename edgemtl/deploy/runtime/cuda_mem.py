"""Device buffers, streams and events over cuda-python or pycuda, behind one tiny API.

Why: TensorRT's Python API takes raw device pointers and a stream handle;
NVIDIA's samples moved from pycuda to cuda-python (`cuda.bindings`) in
TensorRT 10.13, while Jetson images often only have pycuda. The runner talks
to `CudaApi` and never to either binding directly.
"""

from __future__ import annotations

import abc
import ctypes
from typing import Any

import numpy as np

from edgemtl.core.errors import UserError


class CudaApi(abc.ABC):
    """Pointers and handles are plain ints; host buffers are page-locked numpy arrays."""

    binding = ""

    @abc.abstractmethod
    def malloc(self, nbytes: int) -> int: ...
    @abc.abstractmethod
    def free(self, ptr: int) -> None: ...
    @abc.abstractmethod
    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray: ...
    @abc.abstractmethod
    def stream(self) -> int: ...
    @abc.abstractmethod
    def htod(self, dst: int, src: np.ndarray, stream: int) -> None: ...
    @abc.abstractmethod
    def dtoh(self, dst: np.ndarray, src: int, stream: int) -> None: ...
    @abc.abstractmethod
    def sync(self, stream: int) -> None: ...
    @abc.abstractmethod
    def event(self) -> Any: ...
    @abc.abstractmethod
    def record(self, event: Any, stream: int) -> None: ...
    @abc.abstractmethod
    def elapsed_ms(self, start: Any, end: Any) -> float: ...
    @abc.abstractmethod
    def close(self) -> None: ...


class CudaPython(CudaApi):
    """NVIDIA cuda-python: every call returns (error, *values)."""

    binding = "cuda-python"

    def __init__(self) -> None:
        from edgemtl.deploy.runtime.trt_env import cudart_module

        self.rt = cudart_module()
        self._host: list[int] = []
        self._streams: list[int] = []
        self._events: list[Any] = []

    def _check(self, result: Any, what: str) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, name = self.rt.cudaGetErrorName(err)
            raise RuntimeError(
                f"CUDA {what} failed: {name.decode() if isinstance(name, bytes) else name}"
            )
        return values[0] if len(values) == 1 else values

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._check(self.rt.cudaFree(ptr), "cudaFree")

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)
        ptr = int(self._check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        self._host.append(ptr)
        raw = (ctypes.c_byte * nbytes).from_address(ptr)
        return np.frombuffer(memoryview(raw), dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def stream(self) -> int:
        handle = self._check(self.rt.cudaStreamCreate(), "cudaStreamCreate")
        self._streams.append(handle)
        return int(handle)

    def htod(self, dst: int, src: np.ndarray, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(
            self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream),
            "cudaMemcpyAsync H2D",
        )

    def dtoh(self, dst: np.ndarray, src: int, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(
            self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream),
            "cudaMemcpyAsync D2H",
        )

    def sync(self, stream: int) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def event(self) -> Any:
        ev = self._check(self.rt.cudaEventCreate(), "cudaEventCreate")
        self._events.append(ev)
        return ev

    def record(self, event: Any, stream: int) -> None:
        self._check(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def elapsed_ms(self, start: Any, end: Any) -> float:
        self._check(self.rt.cudaEventSynchronize(end), "cudaEventSynchronize")
        return float(self._check(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def close(self) -> None:
        for ev in self._events:
            self.rt.cudaEventDestroy(ev)
        for s in self._streams:
            self.rt.cudaStreamDestroy(s)
        for ptr in self._host:
            self.rt.cudaFreeHost(ptr)
        self._events, self._streams, self._host = [], [], []


class PyCuda(CudaApi):
    """pycuda with a context made current for this runner's lifetime."""

    binding = "pycuda"

    def __init__(self) -> None:
        import pycuda.driver as drv

        drv.init()
        self.drv = drv
        self.ctx = drv.Device(0).retain_primary_context()
        self.ctx.push()
        self._allocs: dict[int, Any] = {}
        self._streams: dict[int, Any] = {}

    def malloc(self, nbytes: int) -> int:
        alloc = self.drv.mem_alloc(max(nbytes, 1))
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        alloc = self._allocs.pop(ptr, None)
        if alloc is not None:
            alloc.free()

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, dtype)

    def stream(self) -> int:
        s = self.drv.Stream()
        self._streams[int(s.handle)] = s
        return int(s.handle)

    def htod(self, dst: int, src: np.ndarray, stream: int) -> None:
        self.drv.memcpy_htod_async(dst, src, self._streams[stream])

    def dtoh(self, dst: np.ndarray, src: int, stream: int) -> None:
        self.drv.memcpy_dtoh_async(dst, src, self._streams[stream])

    def sync(self, stream: int) -> None:
        self._streams[stream].synchronize()

    def event(self) -> Any:
        return self.drv.Event()

    def record(self, event: Any, stream: int) -> None:
        event.record(self._streams[stream])

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        return float(end.time_since(start))

    def close(self) -> None:
        for alloc in self._allocs.values():
            alloc.free()
        self._allocs.clear()
        self._streams.clear()
        self.ctx.pop()


def open_cuda() -> CudaApi:
    from edgemtl.deploy.runtime.trt_env import cuda_binding

    binding = cuda_binding()
    if binding == "cuda-python":
        return CudaPython()
    if binding == "pycuda":
        return PyCuda()
    raise UserError("no CUDA binding for TensorRT buffers: pip install cuda-python (or pycuda)")

"""Is real TensorRT here, which CUDA binding drives it, and may this engine run here?

Why separate from the runner: the checks are cheap and needed on machines
without TensorRT (to skip bundle engines with a reason, to test the
compatibility rule on CPU). `tensorrt-stubs` installs a stub-only `tensorrt`
folder that imports as a namespace package, so "import works" is not enough:
real TensorRT has `Builder`.
"""

from __future__ import annotations

from typing import Any

from edgemtl.core.errors import UserError


def import_tensorrt() -> Any | None:
    """The real `tensorrt` module, or None (absent, or only its type stubs)."""
    try:
        import tensorrt as trt
    except Exception:  # noqa: BLE001 - ImportError, or a broken install raising OSError on its libraries
        return None
    return trt if hasattr(trt, "Builder") and hasattr(trt, "Runtime") else None


def cuda_binding() -> str | None:
    """ "cuda-python" (NVIDIA's `cuda.bindings`, preferred) or "pycuda", whichever imports."""
    try:
        from cuda.bindings import runtime  # noqa: F401

        return "cuda-python"
    except Exception:  # noqa: BLE001, S110 - absent or broken: try the next binding
        pass
    try:
        from cuda import cudart  # noqa: F401  (cuda-python < 12.6 layout)

        return "cuda-python"
    except Exception:  # noqa: BLE001, S110 - absent or broken: try the next binding
        pass
    try:
        import pycuda.driver  # noqa: F401

        return "pycuda"
    except Exception:  # noqa: BLE001 - pycuda raises at import without a driver
        return None


def tensorrt_status() -> tuple[bool, str]:
    """(True, "") when engines can run here, else (False, what is missing and what to install)."""
    trt = import_tensorrt()
    if trt is None:
        return False, (
            "TensorRT is not installed (only its type stubs, or nothing): install TensorRT "
            "for your CUDA (JetPack ships it; on x86: pip install tensorrt)"
        )
    if cuda_binding() is None:
        return False, "no CUDA binding for TensorRT buffers: pip install cuda-python (or pycuda)"
    try:
        gpu_facts()
    except UserError as exc:
        return False, str(exc)
    return True, ""


def require_tensorrt() -> Any:
    ok, reason = tensorrt_status()
    if not ok:
        raise UserError(reason)
    return import_tensorrt()


def gpu_facts(device: int = 0) -> dict[str, Any]:
    """Name, compute capability and driver of the GPU, via whichever CUDA binding is present."""
    binding = cuda_binding()
    if binding == "cuda-python":
        cudart = cudart_module()
        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or count < 1:
            raise UserError("no CUDA GPU visible (cudaGetDeviceCount failed or returned 0)")
        err, props = cudart.cudaGetDeviceProperties(device)
        _, driver = cudart.cudaDriverGetVersion()
        name = (
            props.name.decode(errors="replace")
            if isinstance(props.name, bytes)
            else str(props.name)
        )
        return {
            "gpu": name.strip("\x00 "),
            "compute_capability": f"{props.major}.{props.minor}",
            "cuda_driver": _cuda_version(driver),
            "cuda_binding": binding,
        }
    if binding == "pycuda":
        import pycuda.driver as drv

        try:
            drv.init()
            dev = drv.Device(device)
        except Exception as exc:  # noqa: BLE001 - pycuda's driver errors
            raise UserError(f"no CUDA GPU visible to pycuda ({exc})") from None
        major, minor = dev.compute_capability()
        return {
            "gpu": dev.name(),
            "compute_capability": f"{major}.{minor}",
            "cuda_driver": _cuda_version(drv.get_driver_version()),
            "cuda_binding": binding,
        }
    raise UserError("no CUDA binding: pip install cuda-python (or pycuda)")


def cudart_module() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    return cudart


def _cuda_version(code: int) -> str:
    return f"{code // 1000}.{(code % 1000) // 10}"


def engine_mismatch(
    recorded: dict[str, Any] | None, trt_version: str, gpu: str, compute_capability: str
) -> str | None:
    """Why an engine built with `recorded` cannot run here.

    `recorded` is the manifest's {version, gpu, compute_capability, flags}.
    TensorRT deserialises only engines of its own version (major.minor.patch;
    same major with the VERSION_COMPATIBLE flag) built for the same GPU
    (compute capability >= 8.0 with a hardware-compatible build). None = runs.
    """
    if not recorded:
        return (
            "the manifest records no TensorRT version/GPU for this engine: "
            "rebuild it with edgemtl export"
        )
    flags = {str(f).upper() for f in recorded.get("flags", [])}
    built = str(recorded.get("version", ""))
    want = built.split(".")[: 1 if "VERSION_COMPATIBLE" in flags else 3]
    have = trt_version.split(".")[: len(want)]
    if want != have:
        return (
            f"engine built with TensorRT {built}, this machine runs TensorRT {trt_version}: "
            "rebuild it here (edgemtl export BUNDLE)"
        )
    built_cc = str(recorded.get("compute_capability", ""))
    if flags & {"HARDWARE_COMPATIBLE", "AMPERE_PLUS"}:
        if _cc(compute_capability) < (8, 0):
            return (
                "hardware-compatible engine needs compute capability >= 8.0, "
                f"this GPU ({gpu}) is {compute_capability}"
            )
        return None
    if built_cc != compute_capability or str(recorded.get("gpu", "")) != gpu:
        return (
            f"engine built for {recorded.get('gpu')} (compute {built_cc}), this GPU is {gpu} "
            f"(compute {compute_capability}): rebuild it here (edgemtl export BUNDLE)"
        )
    return None


def _cc(text: str) -> tuple[int, int]:
    try:
        major, minor = text.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)

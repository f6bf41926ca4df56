"""The machine a profile ran on: recorded beside every number so results can be compared.

Torch-free; each probe is best-effort and says "unknown" rather than failing.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - a broken optional package reports as absent
        return None
    return str(getattr(mod, "__version__", "unknown"))


def gpu_summary() -> dict[str, Any]:
    """GPU name and driver via nvidia-smi where present (no CUDA binding needed)."""
    if not shutil.which("nvidia-smi"):
        return {}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode != 0 or not out.stdout.strip():
        return {}
    name, _, driver = out.stdout.strip().splitlines()[0].partition(",")
    return {"gpu": name.strip(), "driver": driver.strip()}


def environment() -> dict[str, Any]:
    from edgemtl import __version__
    from edgemtl.deploy.profile.power import jetson_modes
    from edgemtl.deploy.runtime.trt_env import import_tensorrt

    trt = import_tensorrt()
    env: dict[str, Any] = {
        "edgemtl": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "tensorrt": str(trt.__version__) if trt is not None else None,
        "gpu": None,
        "driver": None,
    }
    env.update(gpu_summary())
    if os.path.exists("/etc/nv_tegra_release") or shutil.which("tegrastats"):
        env.update(jetson_modes())
    return env

"""Board / GPU power during the timed loop, an idle window before it, and energy per image.

Why a background sampler: power must be read while the model runs, not after.
On a Jetson, `tegrastats` streams board rails; elsewhere NVML gives the GPU's
own draw. Samples carry `perf_counter_ns` stamps so each artifact's timed
slices (interleaved runs) get their own samples. Where nothing can measure,
the report says so and why, rather than printing a zero.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from edgemtl.deploy.profile.jetson_clocks import clocks_state
from edgemtl.deploy.profile.tegrastats import parse_line


@dataclass(frozen=True)
class PowerReading:
    t_ns: int
    watts: float


class PowerSampler:
    """Base: `start()`, `stop()`, `readings` (board or GPU watts with timestamps)."""

    source = ""

    def __init__(self, interval_ms: int = 100) -> None:
        self.interval_ms = interval_ms
        self.readings: list[PowerReading] = []
        self.facts: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"power-{self.source}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _add(self, watts: float) -> None:
        with self._lock:
            self.readings.append(PowerReading(time.perf_counter_ns(), watts))

    def between(self, start_ns: int, end_ns: int) -> list[float]:
        with self._lock:
            return [r.watts for r in self.readings if start_ns <= r.t_ns <= end_ns]

    def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class TegrastatsSampler(PowerSampler):
    """Runs `tegrastats --interval N` and parses its lines as they arrive."""

    source = "tegrastats"

    def __init__(self, interval_ms: int = 100, binary: str = "tegrastats") -> None:
        super().__init__(interval_ms)
        self.binary = binary
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--interval", str(self.interval_ms)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        super().start()

    def _run(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        terms: tuple[str, ...] = ()
        for line in self.proc.stdout:
            sample = parse_line(line)
            if sample is not None:
                if not terms:  # the first line fixes what "board power" adds up
                    terms = sample.terms
                    self.facts.setdefault("rail", sample.source)
                total = sample.total(terms)
                if total is not None:
                    self._add(total / 1000.0)
                else:
                    self.facts["lines_skipped"] = self.facts.get("lines_skipped", 0) + 1
            if self._stop.is_set():
                break

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        super().stop()


class NvmlSampler(PowerSampler):
    """Polls `nvmlDeviceGetPowerUsage` (GPU board power, mW) every interval."""

    source = "nvml"

    def __init__(self, interval_ms: int = 50, index: int = 0) -> None:
        super().__init__(interval_ms)
        import pynvml

        self.nvml = pynvml
        pynvml.nvmlInit()
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(self.handle)
        self.facts = {
            "rail": "GPU (NVML power usage)",
            "gpu": name.decode() if isinstance(name, bytes) else name,
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            self._add(self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0)
            time.sleep(self.interval_ms / 1000.0)

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(
            Exception
        ):  # shutting down twice or after a driver error is harmless
            self.nvml.nvmlShutdown()


def open_sampler(device: str) -> tuple[PowerSampler | None, str]:
    """The sampler for this machine, or (None, why power is not measured)."""
    if shutil.which("tegrastats"):
        return TegrastatsSampler(), ""
    if device != "cuda":
        return None, "no tegrastats (not a Jetson) and a CPU run: NVML only measures GPUs"
    try:
        import pynvml  # noqa: F401
    except ImportError:
        return None, "no tegrastats and no NVML binding: pip install nvidia-ml-py"
    try:
        sampler = NvmlSampler()
        sampler.nvml.nvmlDeviceGetPowerUsage(sampler.handle)
    except Exception as exc:  # noqa: BLE001 - NVMLError_NotSupported on Jetson / some vGPUs, no driver ...
        return None, f"NVML power unavailable ({type(exc).__name__})"
    return sampler, ""


def _run_quiet(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def jetson_modes() -> dict[str, str]:
    """nvpmodel mode and jetson_clocks state; "unknown" where they are absent or need root."""
    mode = "unknown"
    out = _run_quiet(["nvpmodel", "-q"])
    if out:
        for line in out.splitlines():
            if "Power Mode" in line and ":" in line:
                mode = line.split(":", 1)[1].strip()
                break
    out = _run_quiet(["jetson_clocks", "--show"])
    clocks = clocks_state(out) if out else "unknown"
    return {"nvpmodel": mode, "jetson_clocks": clocks}


@dataclass
class PowerSummary:
    """Power of one artifact x batch row. Energy in mJ per image; None where not measured."""

    measured: bool
    reason: str = ""
    source: str = ""
    samples: int = 0
    mean_w: float | None = None
    peak_w: float | None = None
    idle_w: float | None = None
    mj_per_image: float | None = None
    dynamic_mj_per_image: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def summarize(
    watts: list[float], idle: list[float], latency_ms: float, batch: int, source: str
) -> PowerSummary:
    """mJ/img = mean W x latency ms / batch; the dynamic part uses (mean - idle) W."""
    if not watts:
        return PowerSummary(
            False, "no power sample inside the timed loop: run longer (--duration)", source
        )
    mean = sum(watts) / len(watts)
    idle_w = sum(idle) / len(idle) if idle else None
    return PowerSummary(
        True,
        "",
        source,
        len(watts),
        mean,
        max(watts),
        idle_w,
        mean * latency_ms / batch,
        (mean - idle_w) * latency_ms / batch if idle_w is not None else None,
    )

"""What a derived artifact buys on this machine: an interleaved ONNX Runtime timing.

Why at export time: whether INT8 pays depends on the machine and the graph (ONNX
Runtime's CPU provider has no INT8 kernel for some ops, and a small model is
dominated by the Quantize/Dequantize around them), so `export` times the new
artifact against its FP32 source for a fraction of a second and says so next to
the parity numbers; `edgemtl profile` is the full measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgemtl.core.manifest import Speedup
from edgemtl.core.threads import run_choice
from edgemtl.deploy.profile.timing import TimingConfig, time_interleaved
from edgemtl.deploy.runtime.ort_session import build_session

#: Timed seconds per artifact (after a short warm-up), cut into `ROUNDS` interleaved slices.
DURATION_S = 0.25
ROUNDS = 10


class _Session:
    """An ORT session as the timing loop's runner (`infer`, no compute-only clock)."""

    def __init__(self, path: Path, threads: int, spin: bool) -> None:
        self.session = build_session(path, threads, spin=spin)
        self.input_name = self.session.get_inputs()[0].name
        self.fp16 = self.session.get_inputs()[0].type == "tensor(float16)"

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        feed = batch.astype(np.float16) if self.fp16 else batch
        return dict(enumerate(self.session.run(None, {self.input_name: feed})))  # type: ignore[arg-type]

    def last_compute_ns(self) -> int | None:
        return None


def interleaved_medians_ms(
    paths: Sequence[Path],
    batch: np.ndarray,
    threads: int,
    spin: bool,
    duration_s: float = DURATION_S,
) -> list[tuple[float, int]]:
    """(median ms, timed iterations) per ONNX file in `paths`, timed round-robin on ONNX
    Runtime's CPU provider on `batch` (N x 3 x H x W float32; cast for FP16 inputs) with
    `threads` intra-op threads, spin-waiting if `spin`. About len(paths) x `duration_s`
    seconds plus warm-up."""
    jobs = [(_Session(p, threads, spin), batch) for p in paths]
    config = TimingConfig(
        warmup_iterations=3, warmup_s=0.05, duration_s=duration_s, min_iterations=ROUNDS
    )
    results = time_interleaved(jobs, config, rounds=ROUNDS)
    return [(float(np.median(r.wall_ns)) / 1e6, len(r.wall_ns)) for r in results]


def measure_speedup(
    candidate: Path, reference: Path, batch: np.ndarray, duration_s: float = DURATION_S
) -> Speedup:
    """Median latency of `candidate` vs `reference` (ONNX files) on `batch` (N x 3 x H x W
    float32), interleaved on ONNX Runtime's CPU provider with the run's threads
    (`edgemtl.core.threads.run_choice`). About 2 x `duration_s` seconds plus warm-up."""
    choice = run_choice()
    (median, iterations), (ref_median, _) = interleaved_medians_ms(
        [candidate, reference], batch, choice.threads, choice.spin, duration_s
    )
    return Speedup(
        reference=reference.name,
        ratio=round(ref_median / median, 3),
        median_ms=round(median, 4),
        reference_median_ms=round(ref_median, 4),
        threads=choice.threads,
        iterations=iterations,
    )

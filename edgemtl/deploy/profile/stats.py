"""trtexec-style latency statistics from per-iteration times.

Why its own module: the figures printed, written to JSON and plotted must all
come from one definition, and that definition is tested against numpy on a
known list of times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: Coefficient of variation above which a run is flagged as noisy (percent).
CV_WARN_PERCENT = 5.0

#: Percentiles reported, in order, as (field name, percentile).
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("median", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
)


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one batch in milliseconds, plus throughput in images per second.

    `cv_percent` is std / mean x 100 (population std, as trtexec); `noisy` is
    True when it exceeds `CV_WARN_PERCENT`.
    """

    count: int
    batch: int
    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    cv_percent: float
    images_per_s: float
    noisy: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def latency_stats(times_ns: Sequence[int] | np.ndarray, batch: int = 1) -> LatencyStats:
    """Summarise per-iteration times (nanoseconds, one entry per batch) of a timed loop.

    Percentiles use numpy's default linear interpolation; throughput is
    batch / mean latency, i.e. what the loop actually sustained.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    if ms.ndim != 1 or ms.size == 0:
        raise ValueError("latency_stats needs a non-empty 1-D list of times")
    mean = float(ms.mean())
    std = float(ms.std())
    pct = {name: float(np.percentile(ms, q)) for name, q in PERCENTILES}
    cv = 100.0 * std / mean if mean > 0 else 0.0
    return LatencyStats(
        count=int(ms.size),
        batch=int(batch),
        min_ms=float(ms.min()),
        mean_ms=mean,
        median_ms=pct["median"],
        p90_ms=pct["p90"],
        p95_ms=pct["p95"],
        p99_ms=pct["p99"],
        max_ms=float(ms.max()),
        std_ms=std,
        cv_percent=cv,
        images_per_s=batch * 1000.0 / mean if mean > 0 else float("inf"),
        noisy=cv > CV_WARN_PERCENT,
    )

"""Latency statistics against numpy and hand-worked values on a known list of times."""

from __future__ import annotations

import numpy as np
import pytest

from edgemtl.deploy.profile.stats import latency_stats

# 1..10 ms, as nanoseconds.
TIMES_NS = [k * 1_000_000 for k in (3, 1, 4, 10, 5, 9, 2, 6, 8, 7)]


def test_stats_equal_numpy_and_hand_values() -> None:
    s = latency_stats(TIMES_NS, batch=4)
    ms = np.array(TIMES_NS, dtype=np.float64) / 1e6
    assert s.count == 10 and s.batch == 4
    # Hand-worked: sorted 1..10; mean 5.5; median (5+6)/2 = 5.5;
    # p90 at rank 0.9*9 = 8.1 -> 9 + 0.1*(10-9) = 9.1; p95 rank 8.55 -> 9.55; p99 rank 8.91 -> 9.91.
    # population variance = mean(k^2) - 5.5^2 = 38.5 - 30.25 = 8.25; std = 2.8723; CV = 52.22 %.
    # img/s = 4 images / 5.5 ms = 727.27.
    assert s.min_ms == 1.0 and s.max_ms == 10.0
    assert s.mean_ms == pytest.approx(5.5)
    assert s.median_ms == pytest.approx(5.5)
    assert s.p90_ms == pytest.approx(9.1)
    assert s.p95_ms == pytest.approx(9.55)
    assert s.p99_ms == pytest.approx(9.91)
    assert s.std_ms == pytest.approx(8.25**0.5)
    assert s.cv_percent == pytest.approx(100 * 8.25**0.5 / 5.5)
    assert s.images_per_s == pytest.approx(4000 / 5.5)
    assert s.noisy
    # ...and numpy's own functions agree.
    assert s.mean_ms == pytest.approx(float(np.mean(ms)))
    assert s.median_ms == pytest.approx(float(np.median(ms)))
    for field, q in (("p90_ms", 90), ("p95_ms", 95), ("p99_ms", 99)):
        assert getattr(s, field) == pytest.approx(float(np.percentile(ms, q)))
    assert s.std_ms == pytest.approx(float(np.std(ms)))


def test_stable_run_not_noisy_and_dict_complete() -> None:
    s = latency_stats([1_000_000, 1_010_000, 990_000, 1_000_000])
    assert not s.noisy and s.cv_percent < 5
    d = s.to_dict()
    for key in (
        "min_ms",
        "mean_ms",
        "median_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "std_ms",
        "cv_percent",
        "images_per_s",
    ):
        assert key in d


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        latency_stats([])
    with pytest.raises(ValueError):
        latency_stats([1], batch=0)

"""The timed loop on a real ONNX Runtime runner: warm-up bounds, counts, duration, interleaving."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgemtl.core.errors import UserError
from edgemtl.deploy.profile.timing import TimingConfig, time_interleaved, time_runner
from edgemtl.deploy.runtime import RunnerOptions, open_runner, resolve_artifacts
from edgemtl.deploy.runtime.onnxruntime_runner import OrtRunner
from tests.helpers.toy_bundle import make_toy_bundle


class InnerTimedRunner(OrtRunner):
    """An ORT runner that also reports a 'compute' time measured inside infer (as CUDA events
    would)."""

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        t0 = time.perf_counter_ns()
        out = super().infer(batch)
        self._compute = time.perf_counter_ns() - t0
        return out

    def last_compute_ns(self) -> int | None:
        return self._compute


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> OrtRunner:
    (ref,) = resolve_artifacts(make_toy_bundle(tmp_path_factory.mktemp("t") / "b"))
    r = open_runner(ref, RunnerOptions(threads=1))
    r.load()
    assert isinstance(r, OrtRunner)
    return r


X = np.zeros((1, 3, 16, 32), np.float32)


def test_counts_and_warmup_by_count_and_time(runner: OrtRunner) -> None:
    res = time_runner(runner, X, TimingConfig(warmup_iterations=3, warmup_s=0.0, iterations=7))
    assert res.warmup_iterations == 3 and len(res.wall_ns) == 7 and res.compute_ns == []
    assert all(t > 0 for t in res.wall_ns)
    res = time_runner(runner, X, TimingConfig(warmup_iterations=1, warmup_s=0.1, iterations=2))
    assert res.warmup_ns >= 0.1e9 and res.warmup_iterations > 1  # time bound kept it warming up


def test_duration_mode(runner: OrtRunner) -> None:
    t0 = time.perf_counter()
    res = time_runner(runner, X, TimingConfig(warmup_iterations=0, warmup_s=0.0, duration_s=0.15))
    assert time.perf_counter() - t0 >= 0.15 and len(res.wall_ns) > 3
    ((start, end),) = res.windows
    assert end - start >= 0.15e9


def test_interleaved_slices_alternate(runner: OrtRunner) -> None:
    other = InnerTimedRunner(runner.ref, RunnerOptions(threads=1))
    other.load()
    seen: list[int] = []
    a, b = time_interleaved(
        [(runner, X), (other, X)],
        TimingConfig(warmup_iterations=1, warmup_s=0.0, iterations=10),
        rounds=5,
        on_iteration=seen.append,
    )
    assert len(a.wall_ns) == len(b.wall_ns) == 10 and seen == list(range(1, 21))
    assert len(a.windows) == len(b.windows) == 5
    # Slices alternate in time: a0 < b0 < a1 < b1 ...
    starts = sorted([(s, "a") for s, _ in a.windows] + [(s, "b") for s, _ in b.windows])
    assert "".join(tag for _, tag in starts) == "ab" * 5
    assert len(b.compute_ns) == 10 and all(c <= w for c, w in zip(b.compute_ns, b.wall_ns))


def test_bad_config() -> None:
    with pytest.raises(UserError):
        TimingConfig(iterations=0)
    with pytest.raises(UserError):
        TimingConfig(duration_s=-1.0)

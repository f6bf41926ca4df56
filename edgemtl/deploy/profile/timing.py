"""The timed loop: warm up by count AND time, then a fixed count or a duration.

Why both warm-up bounds: a count alone is too short on a GPU that is still
clocking up, a time alone too few iterations on a slow CPU model. Each
iteration records host wall time (`perf_counter_ns`, which includes any
host<->device copies a runner makes) and, where the runner measures it with
CUDA events, the compute-only time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edgemtl.core.options import at_least_one, non_negative, positive


@dataclass(frozen=True)
class TimingConfig:
    """`iterations` or `duration_s` (seconds) ends the timed part; duration wins when set.

    `min_iterations` keeps a duration run meaningful on a model slower than the
    duration itself.
    """

    warmup_iterations: int = 5
    warmup_s: float = 0.5
    iterations: int = 50
    duration_s: float | None = None
    min_iterations: int = 3

    def __post_init__(self) -> None:
        non_negative(self.warmup_iterations, "--warmup")
        non_negative(self.warmup_s, "--warmup-s", " of seconds")
        if self.duration_s is None:
            at_least_one(self.iterations, "--iterations")
        else:
            positive(self.duration_s, "--duration", " of seconds")


@dataclass
class TimingResult:
    """Per-iteration times in nanoseconds; `compute_ns` is empty where the runner has no events."""

    wall_ns: list[int] = field(default_factory=list)
    compute_ns: list[int] = field(default_factory=list)
    warmup_iterations: int = 0
    warmup_ns: int = 0
    #: (start, end) perf_counter_ns of each timed slice: power samples are attributed by them.
    windows: list[tuple[int, int]] = field(default_factory=list)


class TimedRunner(Protocol):
    """What the loop needs of a runner (the full interface lives in `edgemtl.deploy.runtime`)."""

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def last_compute_ns(self) -> int | None: ...


def warm_up(step: Callable[[], None], config: TimingConfig) -> tuple[int, int]:
    """Run `step` until both warm-up bounds are met; return (iterations, elapsed ns)."""
    start = time.perf_counter_ns()
    deadline = start + int(config.warmup_s * 1e9)
    count = 0
    while count < config.warmup_iterations or time.perf_counter_ns() < deadline:
        step()
        count += 1
    return count, time.perf_counter_ns() - start


def time_runner(
    runner: TimedRunner,
    batch: np.ndarray,
    config: TimingConfig,
    on_iteration: Callable[[int], None] | None = None,
) -> TimingResult:
    """Warm up, then time `runner.infer(batch)` per iteration (one artifact alone)."""
    return time_interleaved([(runner, batch)], config, rounds=1, on_iteration=on_iteration)[0]


def time_interleaved(
    jobs: Sequence[tuple[TimedRunner, np.ndarray]],
    config: TimingConfig,
    rounds: int = 5,
    on_iteration: Callable[[int], None] | None = None,
) -> list[TimingResult]:
    """Time several (runner, batch) jobs round-robin, so drift hits all alike.

    Drift: heat, clocks, other load.

    Each job is warmed up, then the timed budget (iterations or duration) is cut
    into `rounds` slices run job after job. `on_iteration(n)` gets the running
    total of timed iterations over all jobs; its cost is outside every interval.
    """
    results = [TimingResult() for _ in jobs]
    for (runner, batch), res in zip(jobs, results):
        res.warmup_iterations, res.warmup_ns = warm_up(_step(runner, batch), config)
    rounds = max(1, rounds if config.duration_s is not None else min(rounds, config.iterations))
    total = 0
    for k in range(rounds):
        for (runner, batch), res in zip(jobs, results):
            if config.duration_s is not None:
                slice_ns = int(config.duration_s * 1e9 / rounds)
                floor = -(-config.min_iterations // rounds)
                total = _run_slice(runner, batch, res, None, slice_ns, floor, total, on_iteration)
            else:
                count = config.iterations * (k + 1) // rounds - config.iterations * k // rounds
                total = _run_slice(runner, batch, res, count, None, 0, total, on_iteration)
    return results


def _run_slice(
    runner: TimedRunner,
    batch: np.ndarray,
    res: TimingResult,
    count: int | None,
    budget_ns: int | None,
    floor: int,
    total: int,
    on_iteration: Callable[[int], None] | None,
) -> int:
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + budget_ns if budget_ns is not None else None
    i = 0
    while True:
        if deadline is None:
            if count is not None and i >= count:
                break
        elif i >= floor and clock() >= deadline:
            break
        t0 = clock()
        runner.infer(batch)
        t1 = clock()
        res.wall_ns.append(t1 - t0)
        compute = runner.last_compute_ns()
        if compute is not None:
            res.compute_ns.append(int(compute))
        i += 1
        total += 1
        if on_iteration is not None:
            on_iteration(total)
    res.windows.append((start, clock()))
    return total


def _step(runner: TimedRunner, batch: np.ndarray) -> Callable[[], None]:
    def step() -> None:
        runner.infer(batch)

    return step

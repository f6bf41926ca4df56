"""`edgemtl profile`'s timed rows: per artifact and batch size, latency statistics and power.

Why interleaved: every artifact is timed in the same rounds (`time_interleaved`),
so drift (heat, clocks, other load) hits all alike and the rows compare fairly
(docs/profile.md). Torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgemtl.deploy.profile.stats import latency_stats
from edgemtl.deploy.profile.timing import TimingConfig, time_interleaved
from edgemtl.deploy.runtime.base import ModelRef, Runner


def _input_batch(ref: ModelRef, batch: int, seed: int) -> np.ndarray:
    h, w = ref.input_hw
    return np.random.default_rng(seed).standard_normal((batch, 3, h, w), dtype=np.float32)


def _power_row(
    sampler: Any, windows: list[tuple[int, int]], idle: list[float], latency_ms: float, batch: int
) -> dict[str, Any]:
    from edgemtl.deploy.profile.power import summarize

    watts = [w for start, end in windows for w in sampler.between(start, end)]
    summary = summarize(watts, idle, latency_ms, batch, sampler.source)
    summary.extra = dict(sampler.facts)
    return summary.to_dict()


def time_rows(
    refs: list[ModelRef],
    runners: list[Runner],
    artifacts: list[dict[str, Any]],
    *,
    batches: Sequence[int],
    timing: TimingConfig,
    rounds: int,
    seed: int,
    power: bool,
    device: str,
    idle_s: float,
    console: Any,
    warnings: list[str],
) -> None:
    """Time every runner at every batch size, interleaved; append the rows to `artifacts`.

    Each `artifacts[i]["rows"]` gets one dict per batch: `latency` (compute time
    where the runner measures it, else host wall time), `end_to_end`, raw
    `times_ns` and `power` (measured over the timed windows against an idle
    window of `idle_s` seconds, or why not), or `skipped` with the reason when
    the runner cannot take that batch. Inputs are random normal N x 3 x H x W
    float32 (seeded by `seed`). A noisy row (CV > 5 %) adds a line to `warnings`.
    """
    from edgemtl.core.progress import bar
    from edgemtl.deploy.profile.power import open_sampler

    sampler, reason = open_sampler(device) if power else (None, "disabled (--no-power)")
    idle: list[float] = []
    if sampler is not None:
        sampler.start()
        t0 = time.perf_counter_ns()
        time.sleep(idle_s)
        idle = sampler.between(t0, time.perf_counter_ns())
    try:
        for facts in artifacts:
            facts["rows"] = []
        for batch in batches:
            jobs, owners = [], []
            for i, (ref, runner) in enumerate(zip(refs, runners)):
                why = runner.check_batch(batch)
                if why is not None:
                    artifacts[i]["rows"].append({"batch": batch, "skipped": why})
                    continue
                jobs.append((runner, _input_batch(ref, batch, seed)))
                owners.append(i)
            if not jobs:
                continue
            cfg = timing
            total = (cfg.iterations * len(jobs)) if cfg.duration_s is None else 0
            with bar(console, f"timing batch {batch}", total) as advance:
                tick = (lambda n, a=advance, t=total: a(n, t)) if total else None
                results = time_interleaved(jobs, cfg, rounds=rounds, on_iteration=tick)
            for i, res in zip(owners, results):
                wall = latency_stats(res.wall_ns, batch)
                compute = latency_stats(res.compute_ns, batch) if res.compute_ns else None
                row: dict[str, Any] = {
                    "batch": batch,
                    "latency": (compute or wall).to_dict(),
                    "latency_kind": "compute (CUDA events)" if compute else "host wall time",
                    "end_to_end": wall.to_dict(),
                    "compute": compute.to_dict() if compute else None,
                    "warmup_iterations": res.warmup_iterations,
                    "times_ns": {"wall": res.wall_ns, "compute": res.compute_ns},
                }
                if (compute or wall).noisy:
                    warnings.append(
                        f"{artifacts[i]['label']} batch {batch}: CV "
                        f"{(compute or wall).cv_percent:.1f} % "
                        "> 5 %: noisy timings (other load? raise --warmup / --iterations)"
                    )
                if sampler is not None:
                    row["power"] = _power_row(sampler, res.windows, idle, wall.mean_ms, batch)
                else:
                    row["power"] = {"measured": False, "reason": reason}
                artifacts[i]["rows"].append(row)
    finally:
        if sampler is not None:
            sampler.stop()

"""Profile options for tests: short timing, no idle window, one thread."""

from __future__ import annotations

from edgemtl.deploy.profile.command import ProfileOptions
from edgemtl.deploy.profile.timing import TimingConfig
from edgemtl.deploy.runtime import RunnerOptions


def fast(iterations: int = 6, duration: float | None = None, **kw: object) -> ProfileOptions:
    """Short timing, no idle window, one thread; `kw` overrides any other option."""
    timing = TimingConfig(
        warmup_iterations=1, warmup_s=0.0, iterations=iterations, duration_s=duration
    )
    base: dict = {
        "timing": timing,
        "idle_s": 0.0,
        "runner": RunnerOptions(threads=1),
        "rounds": 2,
        "quiet": True,
    }
    return ProfileOptions(**{**base, **kw})

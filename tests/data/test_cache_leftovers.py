"""A synthetic build killed mid-render leaves its temp folder in the cache; the next build
(of any parameters) removes it, but never the temp folder of a build still running
(benchmarks/reproduce.py trains two runs at once on one cache). Real SIGKILLed processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgemtl.data.synthetic import SynthParams, ensure_dataset
from tests.helpers.killed import kill, start_hanging, temporaries

pytestmark = pytest.mark.slow

#: A build of `params` that hangs after rendering two samples.
_HANG_MID_RENDER = """
import time
import edgemtl.data.synthetic.cache as cache
real = cache.render_sample
done = []
def render(*args, **kwargs):
    done.append(1)
    if len(done) == 3:
        print("HANGING", flush=True)
        time.sleep(600)
    return real(*args, **kwargs)
cache.render_sample = render
cache.ensure_dataset(cache.SynthParams(n_train=4, n_val=2, height=16, width=32, seed={seed}))
"""


def test_a_killed_build_is_swept_and_a_running_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEMTL_CACHE", str(tmp_path))
    folder = tmp_path / "synthetic"
    env = {"EDGEMTL_CACHE": str(tmp_path)}
    running = start_hanging(_HANG_MID_RENDER.format(seed=1), env=env)
    killed = start_hanging(_HANG_MID_RENDER.format(seed=2), env=env)
    try:
        first, second = temporaries(folder)
        kill(killed)
        dead = next(name for name in (first, second) if _owner_seed(name, folder) == 2)
        # Another process builds other parameters meanwhile: the dead build's folder goes,
        # the live one's stays.
        built = ensure_dataset(SynthParams(n_train=2, n_val=1, height=16, width=32, seed=3))
        assert built.is_dir()
        assert temporaries(folder) == sorted({first, second} - {dead})
    finally:
        kill(running)
    ensure_dataset(SynthParams(n_train=2, n_val=1, height=16, width=32, seed=3))
    assert temporaries(folder) == []


def _owner_seed(name: str, folder: Path) -> int:
    """Which build a temp folder belongs to: its final name is the params' cache key."""
    from edgemtl.data.synthetic.cache import dataset_key

    for seed in (1, 2):
        key = dataset_key(SynthParams(n_train=4, n_val=2, height=16, width=32, seed=seed))
        if name.startswith(f".{key}."):
            return seed
    raise AssertionError(name)

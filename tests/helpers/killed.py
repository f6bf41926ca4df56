"""Processes killed in the middle of a write: the leftovers tests' subprocess driver.

`start_hanging(script)` runs a Python snippet in a real subprocess; the snippet
patches one function to print `HANGING` and sleep at the moment to interrupt
(mid-checkpoint, mid-export, mid-render), then runs real edgemtl code. The test
waits for that line and then kills the process with SIGKILL, so nothing in it
can clean up: exactly what a crash, the OOM killer or a pulled plug leaves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.cli import REPO

MARK = "HANGING"


def start_hanging(
    script: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.Popen:
    """Run `script` (it must print `MARK` when it reaches the hang) and wait until it does.

    Raises AssertionError with its output when it exits or times out first.
    """
    full_env = {k: v for k, v in os.environ.items() if k != "EDGEMTL_DEBUG"}
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if MARK in line:
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    proc.wait()
    raise AssertionError("the process ended before it hung:\n" + "".join(seen)[-3000:])


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL: the process gets no chance to clean up; wait until it is gone."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    if proc.stdout is not None:
        proc.stdout.close()


def temporaries(folder: Path) -> list[str]:
    """Names of the temporaries (`.<name>.tmp-...`, core/io.py) in `folder`."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)

"""How many CPU threads a run should use: from the CPUs it may use and how busy they are.

Why: on a machine shared with other jobs, a PyTorch or ONNX Runtime process
that starts one spinning thread per core loses most of its time to the other
jobs (and takes theirs): beside one busy process on 2 cores, a training epoch
took 30 s with 2 threads and 16 s with 1 (issue 15). So every command that
runs a model (train, eval, export's parity gates, profile, predict) and
scripts/test.sh's pytest workers ask `run_choice` once per run:

    CPUs we may use   = |sched_getaffinity| capped by the cgroup CPU quota (v1
                        cpu.cfs_quota_us / cpu.cfs_period_us, v2 cpu.max; the
                        process's cgroup and its parents: the smallest wins)
    CPUs others use   = busy time of our CPUs in /proc/stat over a short sample
                        (`cpus.SAMPLE_S`, while this process sleeps); without
                        /proc/stat, the 1-minute load average
    threads           = round(CPUs we may use - CPUs others use), at least 1

/proc/pressure/cpu adds one rule: when runnable tasks waited for a CPU during
most of the same sample ("some" stall >= `SATURATED_PRESSURE` percent; the
"avg10" figure where the kernel gives no total), the CPUs are oversubscribed
by the others alone, so one thread. Why /proc/stat first: pressure does not
see a competitor that fits beside us (one busy process on two idle cores
stalls nobody), and the load average trails the last minute.

Spin-waiting (OpenMP's OMP_WAIT_POLICY, ONNX Runtime's
`session.intra_op.allow_spinning`) burns a core per waiting thread: OpenMP is
made passive before PyTorch loads (`passive_openmp`, edgemtl.cli) unless the
sample found our CPUs idle (`openmp_for_run`, for train, eval and export), and
ONNX Runtime spins only then too (`ThreadChoice.spin`).

The facts come from `edgemtl.core.cpus.probe` (this machine, or a fake tree in
tests); the decision here is pure, except `run_choice`, which probes once per
process and caches the choice. `train.threads` / `--threads` override it; a
resumed run reuses its checkpoint's (docs/formats.md "Checkpoint", `threads`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from edgemtl.core.cpus import CpuFacts, probe

#: Stall share of /proc/pressure/cpu "some" (percent) from which the CPUs count as
#: oversubscribed.
SATURATED_PRESSURE = 40.0
#: Spin-waiting is allowed only when other processes keep less than this many of our CPUs busy.
IDLE_CPUS = 0.25
#: DataLoader workers chosen automatically never exceed this.
MAX_WORKERS = 4


@dataclass(frozen=True)
class ThreadChoice:
    """Threads for one run. threads: PyTorch / ONNX Runtime intra-op threads; workers:
    DataLoader worker processes (what `data.workers` means when unset); spin: whether
    ONNX Runtime may spin-wait; source: who chose ("auto", "train.threads",
    "--threads", "checkpoint", "torch default"); facts: the probe behind "auto"."""

    threads: int
    workers: int = 0
    spin: bool = False
    source: str = "auto"
    facts: CpuFacts | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record written to checkpoints and summary.json (plain JSON types)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThreadChoice:
        """Inverse of `to_dict`; unknown keys (a newer writer's) are ignored."""
        facts = data.get("facts")
        known = {f for f in CpuFacts.__dataclass_fields__}
        return cls(
            threads=int(data["threads"]),
            workers=int(data.get("workers", 0)),
            spin=bool(data.get("spin", False)),
            source=str(data.get("source", "auto")),
            facts=CpuFacts(**{k: v for k, v in facts.items() if k in known}) if facts else None,
        )

    def overridden(self, threads: int | None, source: str) -> ThreadChoice:
        """This choice with `threads` set by `source` (e.g. "--threads"); None keeps it."""
        if threads is None:
            return self
        return replace(self, threads=threads, source=source)

    def describe(self) -> str:
        """One line for logs, e.g. "1 thread (auto: 2 CPUs, others busy on 1.0 (stat))"."""
        text = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        why = self.source
        if self.source == "auto" and self.facts is not None:
            why += ": " + self.facts.describe()
        return f"{text} ({why})"


def free_cpus(facts: CpuFacts) -> int:
    """CPUs left for this process: round(cpus - busy), 1 .. cpus; 1 when pressure says
    the CPUs are oversubscribed."""
    if facts.pressure is not None and facts.pressure >= SATURATED_PRESSURE:
        return 1
    busy = facts.busy or 0.0
    return max(1, min(facts.cpus, math.floor(facts.cpus - busy + 0.5)))


def choose(facts: CpuFacts, device: str = "cpu") -> ThreadChoice:
    """The thread choice for `facts` (see the module docstring).

    device "cpu": every free CPU computes (threads = free CPUs) and the data is
    loaded in the main process (workers 0), so loading never competes with the
    compute threads. device "cuda": the GPU computes; up to `MAX_WORKERS`
    loader processes take half the free CPUs and the rest run CPU-side ops.
    """
    free = free_cpus(facts)
    if device == "cuda":
        workers = min(MAX_WORKERS, max(1, free // 2))
        threads = max(1, free - workers)
    else:
        workers, threads = 0, free
    idle = facts.busy is not None and facts.busy < IDLE_CPUS
    spin = idle and (facts.pressure is None or facts.pressure < SATURATED_PRESSURE)
    return ThreadChoice(threads=threads, workers=workers, spin=spin, source="auto", facts=facts)


_CHOICES: dict[str, ThreadChoice] = {}


def run_choice(device: str = "cpu") -> ThreadChoice:
    """This process's automatic choice for `device`: probed on the first call, then reused,
    so every part of one run (and every session of one `profile`) agrees."""
    if device not in _CHOICES:
        _CHOICES[device] = choose(probe(), device)
    return _CHOICES[device]


def passive_openmp(env: MutableMapping[str, str] = os.environ) -> bool:
    """Make OpenMP threads sleep, not spin, between parallel regions, unless the user chose.

    Sets OMP_WAIT_POLICY=PASSIVE when unset; it only takes effect when set before
    PyTorch (and its OpenMP runtime) loads. Returns whether it was set here.
    """
    if "OMP_WAIT_POLICY" in env:
        return False
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def openmp_for_run(choice: ThreadChoice, env: MutableMapping[str, str] = os.environ) -> str | None:
    """Before PyTorch loads for a run (train, eval, export), when `passive_openmp` set the
    policy: lift it if `choice.spin` (our CPUs were idle), so OpenMP keeps its default
    (spin a moment, then sleep). Measured on 2 idle cores (benchmarks/README.md
    "Contention"): a training step at 2 threads took 0.53 s, against 0.58-0.63 s passive.
    Returns the policy left in `env` (None: OpenMP's default).
    """
    if choice.spin and env.get("OMP_WAIT_POLICY") == "PASSIVE":
        del env["OMP_WAIT_POLICY"]
    return env.get("OMP_WAIT_POLICY")


def openmp_like_the_cli() -> str | None:
    """What `edgemtl train` / `eval` / `export` do before PyTorch loads, for benchmark
    scripts: `passive_openmp`, lifted by `openmp_for_run` on idle CPUs."""
    if passive_openmp():
        return openmp_for_run(run_choice())
    return os.environ.get("OMP_WAIT_POLICY")


def main(argv: list[str] | None = None) -> int:
    """`python -m edgemtl.core.threads [--count]`: the choice here, described; `--count`
    prints the number alone (scripts/test.sh: pytest's workers) and the reason on stderr."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    choice = run_choice()
    if "--count" in args:
        print(f"threads: {choice.describe()}", file=sys.stderr)
        print(choice.threads)
    else:
        print(choice.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

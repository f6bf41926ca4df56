"""CPU facts (cgroup quotas, /proc parsing, on fake trees) and the thread choice made from them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgemtl.core import cpus, threads
from edgemtl.core.cpus import CpuFacts
from edgemtl.core.threads import ThreadChoice

# Two CPUs; between the samples cpu0 spends 20 of 20 jiffies busy, cpu1 2 of 20.
STAT_BEFORE = """cpu  300 0 100 1000 0 0 0 0 0 0
cpu0 100 0 50 500 0 0 0 0 0 0
cpu1 200 0 50 500 0 0 0 0 0 0
intr 1 2 3
"""
STAT_AFTER = """cpu  322 0 100 1018 0 0 0 0 0 0
cpu0 115 0 55 500 0 0 0 0 0 0
cpu1 202 0 50 518 0 0 0 0 0 0
intr 1 2 3
"""
V1_MOUNTINFO = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
)
V2_MOUNTINFO = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_parsers_read_kernel_text() -> None:
    assert cpus.parse_cfs_quota("150000\n", "100000\n") == 1.5
    assert cpus.parse_cfs_quota("-1\n", "100000\n") is None
    assert cpus.parse_cpu_max("200000 100000\n") == 2.0
    assert cpus.parse_cpu_max("max 100000\n") is None
    assert cpus.parse_pressure(
        "some avg10=12.50 avg60=3.00 avg300=1.00 total=123456\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    ) == (12.5, 123456)
    assert cpus.parse_pressure("") == (None, None)
    assert cpus.parse_loadavg("1.25 0.50 0.10 3/120 999\n") == 1.25
    assert cpus.stall_percent(1_000_000, 1_150_000, 0.2) == pytest.approx(75.0)


def test_busy_cpus_counts_only_the_process_cpus() -> None:
    before, after = cpus.parse_stat(STAT_BEFORE), cpus.parse_stat(STAT_AFTER)
    assert before == {0: (150, 650), 1: (250, 750)}
    assert cpus.busy_cpus(before, after, {0, 1}) == pytest.approx(22 / 40 * 2)
    assert cpus.busy_cpus(before, after, {0}) == pytest.approx(1.0)
    assert cpus.busy_cpus(before, after, {7}) is None  # no such CPU in the sample


def test_v1_quota_of_a_parent_cgroup_limits_the_process(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "/proc/self/cgroup": "4:cpuset:/\n3:cpu,cpuacct:/jobs/job7\n0::/\n",
            "/proc/self/mountinfo": V1_MOUNTINFO,
            # the job's own cgroup has no limit; its parent allows 1.5 CPUs
            "/sys/fs/cgroup/cpu,cpuacct/jobs/job7/cpu.cfs_quota_us": "-1\n",
            "/sys/fs/cgroup/cpu,cpuacct/jobs/job7/cpu.cfs_period_us": "100000\n",
            "/sys/fs/cgroup/cpu,cpuacct/jobs/cpu.cfs_quota_us": "150000\n",
            "/sys/fs/cgroup/cpu,cpuacct/jobs/cpu.cfs_period_us": "100000\n",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cpus.cgroup_quota(root) == 1.5
    facts = cpus.probe(root, cpus={0, 1, 2, 3}, sample_s=0)
    assert (facts.cpus, facts.affinity, facts.quota) == (1, 4, 1.5)
    assert threads.choose(facts).threads == 1


def test_v2_quota_and_namespaced_paths(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "/proc/self/cgroup": "0::/user.slice/job.scope\n",
            "/proc/self/mountinfo": V2_MOUNTINFO,
            "/sys/fs/cgroup/user.slice/job.scope/cpu.max": "300000 100000\n",
            "/sys/fs/cgroup/user.slice/cpu.max": "max 100000\n",
        },
    )
    assert cpus.cgroup_quota(root) == 3.0
    # A container's cgroup namespace mounts its own cgroup as the root: path "/" there.
    inner = _tree(
        tmp_path / "container",
        {
            "/proc/self/cgroup": "0::/\n",
            "/proc/self/mountinfo": V2_MOUNTINFO,
            "/sys/fs/cgroup/cpu.max": "50000 100000\n",
        },
    )
    assert cpus.cgroup_quota(inner) == 0.5
    assert cpus.probe(inner, cpus={0, 1}, sample_s=0).cpus == 1  # never below one


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cpus.cgroup_quota(tmp_path) is None
    facts = cpus.probe(tmp_path, cpus={0, 1}, sample_s=0)
    assert facts == CpuFacts(cpus=2, affinity=2)
    assert threads.choose(facts).threads == 2


def test_probe_samples_stat_and_pressure_while_it_sleeps(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "/proc/stat": STAT_BEFORE,
            "/proc/pressure/cpu": "some avg10=90.00 avg60=0 avg300=0 total=5000000\n",
            "/proc/loadavg": "3.00 2.00 1.00 2/100 5\n",
        },
    )

    def sleep(seconds: float) -> None:  # the machine moves on while the probe sleeps
        (root / "proc" / "stat").write_text(STAT_AFTER)
        (root / "proc" / "pressure" / "cpu").write_text(
            "some avg10=90.00 avg60=0 avg300=0 total=5010000\n"
        )

    facts = cpus.probe(root, cpus={0}, sample_s=0.1, sleep=sleep)
    assert facts.busy == 1.0 and facts.busy_source == "stat"
    # 10 ms of stall in the 100 ms sample: the stale avg10=90 from before does not count.
    assert facts.pressure == pytest.approx(10.0, abs=0.5)
    assert facts.loadavg == 3.0


def test_load_average_is_the_fallback_without_stat(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"/proc/loadavg": "1.20 0.5 0.1 2/100 5\n"})
    facts = cpus.probe(root, cpus={0, 1, 2, 3}, sample_s=0.01, sleep=lambda s: None)
    assert (facts.busy, facts.busy_source) == (1.2, "loadavg")
    assert threads.choose(facts).threads == 3


@pytest.mark.parametrize(
    ("facts", "threads_wanted", "spin"),
    [
        (CpuFacts(cpus=2, affinity=2, busy=0.05, busy_source="stat"), 2, True),
        # issue 15: one busy competitor on 2 cores -> 1 thread, no spinning
        (CpuFacts(cpus=2, affinity=2, busy=1.0, busy_source="stat"), 1, False),
        (CpuFacts(cpus=2, affinity=2, busy=2.0, busy_source="stat"), 1, False),
        (CpuFacts(cpus=16, affinity=16, busy=3.4, busy_source="stat"), 13, False),
        # the stall says oversubscribed although the sample missed the competitors
        (CpuFacts(cpus=8, affinity=8, busy=0.0, busy_source="stat", pressure=80.0), 1, False),
        (CpuFacts(cpus=4, affinity=4), 4, False),  # nothing known: all of them, no spinning
    ],
)
def test_choose_threads(facts: CpuFacts, threads_wanted: int, spin: bool) -> None:
    choice = threads.choose(facts)
    assert (choice.threads, choice.workers, choice.spin) == (threads_wanted, 0, spin)
    assert choice.source == "auto" and choice.facts == facts


def test_cuda_runs_give_loader_workers_half_the_free_cpus() -> None:
    choice = threads.choose(CpuFacts(cpus=16, affinity=16, busy=0.0, busy_source="stat"), "cuda")
    assert (choice.workers, choice.threads) == (4, 12)
    small = threads.choose(CpuFacts(cpus=2, affinity=2, busy=1.0, busy_source="stat"), "cuda")
    assert (small.workers, small.threads) == (1, 1)


def test_choice_round_trips_through_its_record() -> None:
    choice = threads.choose(CpuFacts(cpus=2, affinity=2, busy=1.0, busy_source="stat"))
    assert ThreadChoice.from_dict(choice.to_dict()) == choice
    assert ThreadChoice.from_dict({"threads": 3, "newer_field": 1}) == ThreadChoice(threads=3)
    fixed = choice.overridden(2, "train.threads")
    assert (fixed.threads, fixed.source) == (2, "train.threads")
    assert choice.overridden(None, "x") is choice
    assert choice.describe() == "1 thread (auto: 2 CPUs, others busy on 1.0 (stat))"


def test_passive_openmp_respects_the_users_setting() -> None:
    env: dict[str, str] = {}
    assert threads.passive_openmp(env) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert not threads.passive_openmp(env) and env == {"OMP_WAIT_POLICY": "ACTIVE"}


@pytest.mark.parametrize(
    ("busy", "before", "after"),
    [
        (0.05, "PASSIVE", None),  # idle CPUs: OpenMP's own default (spin a moment)
        (1.0, "PASSIVE", "PASSIVE"),  # a competitor: stay passive
        (0.05, "ACTIVE", "ACTIVE"),  # the user's choice stays
    ],
)
def test_openmp_for_run_lifts_passive_only_on_idle_cpus(
    busy: float, before: str, after: str | None
) -> None:
    choice = threads.choose(CpuFacts(cpus=2, affinity=2, busy=busy, busy_source="stat"))
    env = {"OMP_WAIT_POLICY": before}
    assert threads.openmp_for_run(choice, env) == after
    assert env.get("OMP_WAIT_POLICY") == after


def test_cli_sets_openmp_passive_before_torch_loads() -> None:
    code = (
        "import os, sys; import edgemtl.cli; "
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["PASSIVE", "False"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["ACTIVE", "False"]


def test_module_prints_a_count_for_scripts() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edgemtl.core.threads", "--count"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert 1 <= int(out.stdout) <= len(os.sched_getaffinity(0))

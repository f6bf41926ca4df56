"""What this process may use of the CPUs, and how busy other processes keep them (Linux).

Pure parsers of the kernel's text (/proc/stat, /proc/pressure/cpu,
/proc/loadavg, /proc/self/cgroup, /proc/self/mountinfo, cgroup v1
cpu.cfs_quota_us / cpu.cfs_period_us and v2 cpu.max), and `probe`, which reads
them under a root folder (tests give it a fake tree) and samples /proc/stat
and the pressure counter while it sleeps. Missing files mean "unknown", never
an error. The decision made from these facts: `edgemtl.core.threads`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Seconds /proc/stat is sampled for (a longer sample is steadier; every model command pays it).
SAMPLE_S = 0.2


def parse_cfs_quota(quota_us: str, period_us: str) -> float | None:
    """cgroup v1 quota in CPUs (cpu.cfs_quota_us / cpu.cfs_period_us); None = no limit (-1)."""
    quota, period = int(quota_us.strip()), int(period_us.strip())
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max` ("QUOTA PERIOD", QUOTA "max" = no limit) in CPUs."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = int(fields[1]) if len(fields) > 1 else 100_000
    return int(fields[0]) / period if period > 0 else None


def parse_pressure(text: str) -> tuple[float | None, int | None]:
    """The "some" line of /proc/pressure/cpu: (avg10 in percent, total stall in µs)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "some":
            values = dict(field.partition("=")[::2] for field in fields[1:])
            avg10, total = values.get("avg10"), values.get("total")
            return (
                float(avg10) if avg10 is not None else None,
                int(total) if total is not None else None,
            )
    return None, None


def stall_percent(before: int | None, after: int | None, seconds: float) -> float | None:
    """Share of `seconds` during which some runnable task waited for a CPU (PSI "some")."""
    if before is None or after is None or seconds <= 0:
        return None
    return min(100.0, max(0.0, 100.0 * (after - before) / (seconds * 1e6)))


def parse_loadavg(text: str) -> float:
    """The 1-minute load average of /proc/loadavg."""
    return float(text.split()[0])


def parse_stat(text: str) -> dict[int, tuple[int, int]]:
    """/proc/stat per-CPU lines -> {cpu id: (busy jiffies, total jiffies)}.

    Idle time is the `idle` and `iowait` columns; `guest` columns are already
    counted in `user`/`nice`, so they are left out of the total.
    """
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        values = [int(v) for v in fields[:8]]
        total = sum(values)
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        out[int(name[3:])] = (total - idle, total)
    return out


def busy_cpus(
    before: Mapping[int, tuple[int, int]], after: Mapping[int, tuple[int, int]], cpus: set[int]
) -> float | None:
    """CPUs (of `cpus`) kept busy between two `parse_stat` samples; None without data."""
    busy = total = 0
    count = 0
    for cpu in cpus:
        if cpu in before and cpu in after:
            busy += after[cpu][0] - before[cpu][0]
            total += after[cpu][1] - before[cpu][1]
            count += 1
    if count == 0 or total <= 0:
        return None
    return count * busy / total


def cgroup_dirs(proc_cgroup: str, mountinfo: str) -> list[tuple[int, str, str]]:
    """(cgroup version, mount point, folder) of this process's CPU cgroup in each hierarchy.

    `proc_cgroup`: the text of /proc/self/cgroup; `mountinfo`: of /proc/self/mountinfo.
    `folder` lies under `mount point`; `cgroup_chain` lists it and its parents.
    """
    paths: dict[str, str] = {}  # "v2" or "cpu" (the v1 controller) -> path in its hierarchy
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths["v2"] = path
        elif "cpu" in controllers.split(","):
            paths["cpu"] = path
    found: list[tuple[int, str, str]] = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        root, mount = fields[3], fields[4].rstrip("/") or "/"
        fstype, options = tail[0], tail[2].split(",")
        if fstype == "cgroup" and "cpu" in options and "cpu" in paths:
            version, path = 1, paths["cpu"]
        elif fstype == "cgroup2" and "v2" in paths:
            version, path = 2, paths["v2"]
        else:
            continue
        if root != "/" and (path == root or path.startswith(root + "/")):
            path = path[len(root) :]  # the mount shows the hierarchy from `root` down
        found.append((version, mount, f"{mount.rstrip('/')}/{path.strip('/')}".rstrip("/")))
    return found


def cgroup_chain(mount: str, folder: str) -> list[str]:
    """`folder`, then each parent up to and including `mount` (all of them limit the CPU)."""
    chain, path = [], Path(folder)
    top = Path(mount)
    while True:
        chain.append(str(path))
        if path == top or top not in path.parents:
            return chain
        path = path.parent


@dataclass(frozen=True)
class CpuFacts:
    """What `probe` found. cpus: CPUs this process may use (affinity capped by the quota,
    at least 1); quota: the cgroup quota in CPUs (None = none); busy: CPUs other
    processes keep busy (None = unknown); busy_source: "stat", "loadavg" or "none";
    pressure: /proc/pressure/cpu "some avg10" percent (None = absent)."""

    cpus: int
    affinity: int
    quota: float | None = None
    busy: float | None = None
    busy_source: str = "none"
    pressure: float | None = None
    loadavg: float | None = None

    def describe(self) -> str:
        """One line for logs: "2 CPUs, others busy on 1.0 (stat), pressure 3%"."""
        text = f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}"
        if self.quota is not None:
            text += f" (quota {self.quota:g})"
        if self.busy is not None:
            text += f", others busy on {self.busy:.1f} ({self.busy_source})"
        if self.pressure is not None:
            text += f", pressure {self.pressure:.0f}%"
        return text


def _read(root: Path, path: str) -> str | None:
    try:
        return (root / path.lstrip("/")).read_text()
    except OSError:
        return None


def cgroup_quota(root: Path = Path("/")) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup or its parents; None = none.

    Reads /proc/self/cgroup, /proc/self/mountinfo and the quota files under `root`.
    """
    proc_cgroup, mountinfo = _read(root, "/proc/self/cgroup"), _read(root, "/proc/self/mountinfo")
    if proc_cgroup is None or mountinfo is None:
        return None
    quotas: list[float] = []
    for version, mount, folder in cgroup_dirs(proc_cgroup, mountinfo):
        for path in cgroup_chain(mount, folder):
            value = None
            if version == 1:
                quota_text = _read(root, f"{path}/cpu.cfs_quota_us")
                period_text = _read(root, f"{path}/cpu.cfs_period_us")
                if quota_text is not None and period_text is not None:
                    value = parse_cfs_quota(quota_text, period_text)
            elif (text := _read(root, f"{path}/cpu.max")) is not None:
                value = parse_cpu_max(text)
            if value is not None:
                quotas.append(value)
    return min(quotas) if quotas else None


def _pressure(root: Path) -> tuple[float | None, int | None]:
    text = _read(root, "/proc/pressure/cpu")
    return parse_pressure(text) if text else (None, None)


def affinity_cpus() -> set[int]:
    """CPU ids this process may run on (all online CPUs where the OS does not say)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return set(range(os.cpu_count() or 1))


def probe(
    root: Path = Path("/"),
    cpus: set[int] | None = None,
    sample_s: float = SAMPLE_S,
    sleep: Callable[[float], None] = time.sleep,
) -> CpuFacts:
    """Read this machine (or a fake tree under `root`): CPUs, quota, others' load.

    `cpus`: the affinity set (default: `os.sched_getaffinity`); the /proc/stat
    sample covers those CPUs only. Missing files mean "unknown", never an error.
    """
    cpu_set = affinity_cpus() if cpus is None else set(cpus)
    quota = cgroup_quota(root)
    limit = len(cpu_set) if quota is None else min(len(cpu_set), max(1, math.floor(quota)))
    load_text = _read(root, "/proc/loadavg")
    loadavg = parse_loadavg(load_text) if load_text else None
    stat_before, pressure_before = _read(root, "/proc/stat"), _pressure(root)
    start = time.monotonic()
    if sample_s > 0:
        sleep(sample_s)
    elapsed = max(time.monotonic() - start, sample_s)
    stat_after, pressure_after = _read(root, "/proc/stat"), _pressure(root)
    busy, source = None, "none"
    if stat_before is not None and stat_after is not None and sample_s > 0:
        busy = busy_cpus(parse_stat(stat_before), parse_stat(stat_after), cpu_set)
        source = "stat" if busy is not None else "none"
    # During the sample this process slept: a stall then is other processes' own crowding.
    pressure = stall_percent(pressure_before[1], pressure_after[1], elapsed)
    if pressure is None:
        pressure = pressure_after[0]
    if busy is None and loadavg is not None:
        busy, source = min(loadavg, float(len(cpu_set))), "loadavg"
    if busy is not None and quota is not None:
        busy = max(0.0, busy - (len(cpu_set) - limit))  # others beyond our share do not count
    return CpuFacts(
        cpus=max(1, limit),
        affinity=len(cpu_set),
        quota=quota,
        busy=None if busy is None else round(busy, 2),
        busy_source=source,
        pressure=pressure,
        loadavg=loadavg,
    )
